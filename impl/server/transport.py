"""How frames reach the server: UDP datagrams that each carry one Ethernet frame, or raw Ethernet.

UDP is what QEMU's `-netdev socket,udp=...` and `-netdev dgram` speak: every
datagram is one whole Ethernet frame; the answer goes back to the sender's
address. Raw Ethernet is an AF_PACKET socket bound to one interface and to the
AoE ethertype (needs root or CAP_NET_RAW).

Both move frames in batches through the C data path (`datapath/link.c`): one
recvmmsg (or a receive ring on raw Ethernet) takes every waiting frame, each
answer is built in a buffer of the batch, and one sendmmsg sends them all, so
a burst of requests costs one receive and one send system call instead of one
of each per frame, and plain transfers are answered without Python at all.

On UDP a datagram's Ethernet source says nothing about who sent it, so a client
MAC belongs to the address that used it first until that address has been
silent for 30 seconds (`spec/aoe/udp_peers.py`, `datapath/peers.c`):
a QEMU restarted on a new port gets its disk back, and no other sender reaches
that client's overlay meanwhile. Frames naming a MAC another address owns are dropped.
"""

import errno
import logging
import os
import socket
import struct

from spec.aoe.constants import ETHERNET_MIN_FRAME_BYTES as MINIMUM_FRAME_BYTES
from spec.aoe.constants import ETHERNET_HEADER_BYTES, ETHERTYPE_AOE
from spec.aoe import udp_peers

from .datapath import library

log = logging.getLogger("storvisor.server")
RECEIVE_BUFFER_BYTES = 8 << 20  # room for many clients' outstanding requests (AoEr11 §3.2 buffer count)
MAX_FRAME_BYTES = 65536
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux ≥ 4.20: our own transmissions are not handed back to us
BATCH_FRAMES = 64  # frames taken from the socket per system call
RING_FRAMES = 512  # raw Ethernet: receive ring slots, room for many clients' outstanding requests
VLAN_TAG_BYTES = 4
SOCKADDR_IN = struct.Struct("=H2s4s8x")  # family, port (network order), IPv4 address: a UDP peer as recvmmsg reports it
SOCKADDR_IN6 = struct.Struct("=H2s4x16s4x")  # family, port (network order), flow label, IPv6 address, scope


def peer_text(peer) -> str:
    """A UDP peer's address, as HOST:PORT or [HOST]:PORT, for the log ("-" for none)."""
    peer = bytes(peer)
    if not any(peer):
        return "-"
    if int.from_bytes(peer[:2], "little") == socket.AF_INET6:
        _family, port, host = SOCKADDR_IN6.unpack(peer[: SOCKADDR_IN6.size])
        return f"[{socket.inet_ntop(socket.AF_INET6, host)}]:{int.from_bytes(port, 'big')}"
    _family, port, host = SOCKADDR_IN.unpack(peer[: SOCKADDR_IN.size])
    return f"{socket.inet_ntoa(host)}:{int.from_bytes(port, 'big')}"


def udp_socket(host: str) -> socket.socket:
    """A UDP socket of the host's family: IPv6 for an address with a colon, else IPv4."""
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)


def address_text(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


class TransportError(Exception):
    """The transport cannot be opened; the message says what to change."""


class LinkTransport:
    """A socket served by the data path's batch loop (`self.link`, `datapath/link.c`)."""

    name = ""

    def fileno(self) -> int:
        return self.sock.fileno()

    def open_batches(self, answer_bytes: int) -> None:
        """The batches exist since the socket was opened; every answer must fit in their buffers."""
        if answer_bytes > MAX_FRAME_BYTES:
            raise ValueError(f"an answer of {answer_bytes} bytes does not fit the {self.name} transport's {MAX_FRAME_BYTES}-byte buffers")

    def close(self) -> None:
        if getattr(self, "link", None):
            self.lib.dp_link_free(self.link)
            self.link = None
        self.sock.close()


def bind_udp(sock: socket.socket, host: str, port: int) -> None:
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        where = f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise TransportError(f"UDP port {where} is busy: another server is listening there; choose --listen HOST:PORT") from None
        raise TransportError(f"cannot listen on UDP {where}: {e.strerror}") from None


class UdpTransport(LinkTransport):
    name = "udp"

    def __init__(self, host: str, port: int, reuse_port: bool = False):
        """With `reuse_port`, one of several sockets on the address (SO_REUSEPORT), one per worker."""
        self.sock = udp_socket(host)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        if reuse_port:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        bind_udp(self.sock, host, port)
        self.sock.setblocking(False)
        self.address = address_text(self.sock)
        self.lib = library()
        self.peers = self.lib.dp_peers_new(udp_peers.TAKEOVER_SECONDS, udp_peers.CAPACITY)
        self.link = self.lib.dp_link_new(self.sock.fileno(), BATCH_FRAMES, MAX_FRAME_BYTES, 0)  # QEMU's NICs pad short frames
        if not self.peers or not self.link or self.lib.dp_link_use_peers(self.link, self.peers):
            self.close()
            raise MemoryError("no memory for the UDP transport's batches")

    def refusals(self):
        """How many frames named a MAC another address owns, and what the last one claimed (`datapath.Refusals`)."""
        return self.lib.dp_peers_refusals(self.peers).contents

    def close(self) -> None:
        super().close()
        if getattr(self, "peers", None):
            self.lib.dp_peers_free(self.peers)
            self.peers = None


def udp_group(host: str, port: int, count: int) -> list[UdpTransport]:
    """`count` sockets on one UDP address, in one SO_REUSEPORT group, in this order (`fanout.py` steers it).
    The address is first bound alone: a port another server holds is busy even when that server shares
    it among workers of its own, which a socket with SO_REUSEPORT would silently join."""
    probe = udp_socket(host)
    bind_udp(probe, host, port)
    port = probe.getsockname()[1]  # port 0: the one the kernel chose, for every worker
    probe.close()
    transports: list[UdpTransport] = []
    try:
        for _ in range(count):
            transports.append(UdpTransport(host, port, reuse_port=True))
    except BaseException:
        for transport in transports:
            transport.close()
        raise
    return transports


def interface_mtu(interface: str) -> int:
    with open(f"/sys/class/net/{interface}/mtu") as f:
        return int(f.read())


class RawTransport(LinkTransport):
    name = "raw"

    def __init__(self, interface: str):
        if not interface or "/" in interface or not os.path.exists(f"/sys/class/net/{interface}"):
            names = ", ".join(sorted(os.listdir("/sys/class/net"))) if os.path.isdir("/sys/class/net") else "?"
            raise TransportError(f"network interface {interface!r} does not exist (interfaces here: {names})")
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_AOE))
        except PermissionError:
            raise TransportError("the raw transport needs root (or CAP_NET_RAW); use --transport udp otherwise") from None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            self.sock.bind((interface, ETHERTYPE_AOE))
        except OSError as e:
            self.sock.close()
            raise TransportError(f"cannot bind to interface {interface}: {e.strerror}") from None
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass  # older kernels hand our answers back to us; they carry R and are dropped as responses
        self.sock.setblocking(False)
        self.interface = interface
        self.mac = self.sock.getsockname()[4]
        self.mtu = interface_mtu(interface)
        self.address = interface
        self.open_link()

    def open_link(self) -> None:
        """The data path's batches of BATCH_FRAMES answers (padded to the Ethernet minimum) and its
        receive ring. The ring is made here, before the socket joins a fanout group (`fanout.py`):
        making it re-registers the socket, which moves it within its group, and the group's order
        is what sends each client to its worker."""
        self.lib = library()
        self.link = self.lib.dp_link_new(self.sock.fileno(), BATCH_FRAMES, MAX_FRAME_BYTES, MINIMUM_FRAME_BYTES)
        if not self.link:
            self.sock.close()
            raise MemoryError("no memory for the raw transport's batches")
        error = self.lib.dp_link_use_ring(self.link, self.mtu + ETHERNET_HEADER_BYTES + VLAN_TAG_BYTES, RING_FRAMES)
        self.ring = not error  # else recvmmsg, as on UDP
        if error:
            log.warning("event=receive-ring-unavailable interface=%s reason=%r: receiving with recvmmsg", self.interface, os.strerror(-error))
