"""Many frames per system call: Linux's recvmmsg(2) and sendmmsg(2) through ctypes.

A `FrameBatches` owns fixed receive and send buffers and the `mmsghdr` arrays
that point at them, built once. `receive()` takes every waiting frame (up to
the batch size) with one recvmmsg and returns each as bytes with its sender's
address; the loop builds answers straight into `outgoing[i]` and `send(n)`
hands the first n to the kernel with one sendmmsg. Lengths and addresses are
written through memoryviews over the ctypes arrays, not attribute by
attribute, and the calls go through ctypes without argument types, with
their arguments built once (half the cost of a typed call), because this
runs once per frame or burst.
"""

import ctypes
import errno
import os

MSG_DONTWAIT = 0x40
NAME_BYTES = 16  # struct sockaddr_in; AF_PACKET sockets bound to one interface need no address


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32), ("msg_iov", ctypes.POINTER(IoVec)),
                ("msg_iovlen", ctypes.c_size_t), ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


LIBC = ctypes.CDLL(None, use_errno=True)
recvmmsg, sendmmsg = LIBC.recvmmsg, LIBC.sendmmsg  # int recvmmsg(int fd, struct mmsghdr *, unsigned n, int flags, struct timespec *)
MSG_LEN_WORD = MMsgHdr.msg_len.offset // 4  # msg_len as an index into the array seen as 32-bit words
MMSG_WORDS = ctypes.sizeof(MMsgHdr) // 4
IOV_LEN_WORD = IoVec.iov_len.offset // 8
IOV_WORDS = ctypes.sizeof(IoVec) // 8
assert ctypes.sizeof(MMsgHdr) % 8 == 0 and ctypes.sizeof(IoVec) % 8 == 0


class Messages:
    """`count` mmsghdrs, each with one iovec over a buffer of `frame_bytes` and, with names, an address."""

    def __init__(self, count: int, frame_bytes: int, names: bool):
        self.headers = (MMsgHdr * count)()
        self.iovecs = (IoVec * count)()
        self.buffers = [bytearray(frame_bytes) for _ in range(count)]
        self.names = bytearray(NAME_BYTES * count) if names else None
        self._anchors = [(ctypes.c_char * frame_bytes).from_buffer(b) for b in self.buffers]  # fixed addresses
        names_base = ctypes.addressof((ctypes.c_char * len(self.names)).from_buffer(self.names)) if names else 0
        for i in range(count):
            self.iovecs[i].iov_base = ctypes.addressof(self._anchors[i])
            self.iovecs[i].iov_len = frame_bytes
            header = self.headers[i].msg_hdr
            header.msg_iov = ctypes.pointer(self.iovecs[i])
            header.msg_iovlen = 1
            if names:
                header.msg_name = names_base + i * NAME_BYTES
                header.msg_namelen = NAME_BYTES
        self.words = memoryview(self.headers).cast("B").cast("I")
        self.iov_words = memoryview(self.iovecs).cast("B").cast("Q")
        self.name_view = memoryview(self.names) if names else None
        self.views = [memoryview(b) for b in self.buffers]
        self.addresses = [ctypes.addressof(a) for a in self._anchors]  # where each buffer lives, for C to write into
        self.address = ctypes.addressof(self.headers)


class FrameBatches:
    """Receive and send buffers for one socket: up to `count` frames per call, received frames of up to
    `receive_bytes` (longer ones are cut), answers of up to `send_bytes`."""

    def __init__(self, fd: int, count: int, receive_bytes: int, send_bytes: int, names: bool = False):
        self.fd = fd
        self.count = count
        self.incoming = Messages(count, receive_bytes, names)
        self.out = Messages(count, send_bytes, names)
        self.outgoing = self.out.buffers
        self.outgoing_addresses = self.out.addresses
        self.send_bytes = send_bytes
        self.names = names
        self.receive_arguments = (fd, ctypes.c_void_p(self.incoming.address), count, MSG_DONTWAIT, None)
        self.send_address = ctypes.c_void_p(self.out.address)

    def receive(self) -> list[tuple[bytes, object]]:
        """Every waiting frame, up to `count`, as (bytes, sender address or None); [] when none waits."""
        n = recvmmsg(*self.receive_arguments)
        if n <= 0:
            if n < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EINTR):
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return []
        incoming = self.incoming
        words, views = incoming.words, incoming.views
        if self.names:
            names = incoming.name_view
            return [(bytes(views[i][: words[i * MMSG_WORDS + MSG_LEN_WORD]]), bytes(names[i * NAME_BYTES : (i + 1) * NAME_BYTES])) for i in range(n)]
        if n == 1:
            return [(bytes(views[0][: words[MSG_LEN_WORD]]), None)]
        return [(bytes(views[i][: words[i * MMSG_WORDS + MSG_LEN_WORD]]), None) for i in range(n)]

    def set_length(self, i: int, length: int, name: bytes | None = None) -> None:
        """outgoing[i] holds an answer of `length` bytes (to `name`, on a socket with addresses)."""
        self.out.iov_words[i * IOV_WORDS + IOV_LEN_WORD] = length
        if name is not None:
            self.out.name_view[i * NAME_BYTES : (i + 1) * NAME_BYTES] = name

    def send(self, n: int) -> None:
        """Send outgoing[0..n) with as few sendmmsg calls as the kernel allows; what it refuses is lost
        (AoEr11 §1: delivery is best effort; the initiator retransmits)."""
        sent = 0
        while sent < n:
            address = self.send_address if not sent else ctypes.c_void_p(self.out.address + sent * ctypes.sizeof(MMsgHdr))
            done = sendmmsg(self.fd, address, n - sent, 0)
            if done <= 0:
                if done < 0 and ctypes.get_errno() == errno.EINTR:
                    continue
                if done < 0 and sent + 1 < n:
                    sent += 1  # skip the frame the kernel refused (sendmmsg reports the first failure)
                    continue
                return
            sent += done
