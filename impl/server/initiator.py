"""An AoE initiator for tests and benchmarks: builds requests, matches responses by tag, retransmits.

`Link`s carry frames (UDP datagrams to a server, or raw Ethernet on an
interface); `Initiator` is one client (one MAC) with blocking calls for tests;
`loadgen.py` drives many clients with many requests outstanding.
"""

import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from spec.aoe.constants import (
    AOE_VERSION,
    BROADCAST_MAC,
    ETHERTYPE_AOE,
    SECTOR_BYTES,
    AoeCommand,
    AtaFlag,
    HeaderFlag,
)

from .frames import (
    AOE_HEADER,
    ATA_ARG,
    ATA_HEADER_BYTES,
    CONFIG_ARG,
    CONFIG_HEADER_BYTES,
    ETHERNET,
    HEADER_BYTES,
    MASK_ARG,
    MASK_DIRECTIVE,
    MASK_HEADER_BYTES,
    RESERVE_ARG,
    RESERVE_HEADER_BYTES,
    VERSION_SHIFT,
)

MAX_FRAME_BYTES = 65536


def request_frame(dst: bytes, src: bytes, major: int, minor: int, command: int, tag: int, body: bytes = b"", version: int = AOE_VERSION, flags: int = 0) -> bytes:
    return ETHERNET.pack(dst, src, ETHERTYPE_AOE) + AOE_HEADER.pack(version << VERSION_SHIFT | flags, 0, major, minor, command, tag) + body


def ata_body(cmd: int, lba: int, count: int, data: bytes = b"", write: bool = False, extended: bool = True, feature: int = 0) -> bytes:
    aflags = (AtaFlag.EXTENDED if extended else 0) | (AtaFlag.WRITE if write else 0)
    return ATA_ARG.pack(aflags, feature, count, cmd, lba.to_bytes(6, "little")) + data


@dataclass(frozen=True)
class Response:
    """A decoded response: the AoE header and the command's own fields (AoEr11 §2–§3.4)."""

    src: bytes
    dst: bytes
    flags: int
    error: int
    major: int
    minor: int
    command: int
    tag: int
    fields: tuple  # the argument's fields, decoded per command
    data: bytes  # data or config string or list that follows the argument

    def key(self, ignore: frozenset[str] = frozenset()) -> tuple:
        """What differential tests compare: the semantic content, without padding."""
        parts = {"flags": self.flags, "error": self.error, "major": self.major, "minor": self.minor,
                 "command": self.command, "tag": self.tag, "fields": self.fields, "data": self.data}
        return tuple((k, v) for k, v in parts.items() if k not in ignore)


def parse_response(frame: bytes) -> Response | None:
    """None for anything that is not an AoE response; the command's fields only when E is clear."""
    if len(frame) < HEADER_BYTES:
        return None
    dst, src, ethertype = ETHERNET.unpack_from(frame)
    first, error, major, minor, command, tag = AOE_HEADER.unpack_from(frame, 14)
    if ethertype != ETHERTYPE_AOE or not first & HeaderFlag.RESPONSE:
        return None
    flags = first & 0x0F
    fields: tuple = ()
    data = b""
    if not flags & HeaderFlag.ERROR:
        if command == AoeCommand.ATA and len(frame) >= ATA_HEADER_BYTES:
            fields = ATA_ARG.unpack_from(frame, HEADER_BYTES)
            data = bytes(frame[ATA_HEADER_BYTES:])
        elif command == AoeCommand.QUERY_CONFIG and len(frame) >= CONFIG_HEADER_BYTES:
            fields = CONFIG_ARG.unpack_from(frame, HEADER_BYTES)
            data = bytes(frame[CONFIG_HEADER_BYTES : CONFIG_HEADER_BYTES + fields[4]])
        elif command == AoeCommand.MAC_MASK_LIST and len(frame) >= MASK_HEADER_BYTES:
            fields = MASK_ARG.unpack_from(frame, HEADER_BYTES)
            data = bytes(frame[MASK_HEADER_BYTES : MASK_HEADER_BYTES + 8 * fields[2]]) if fields[1] == 0 else b""
        elif command == AoeCommand.RESERVE_RELEASE and len(frame) >= RESERVE_HEADER_BYTES:
            fields = RESERVE_ARG.unpack_from(frame, HEADER_BYTES)
            data = bytes(frame[RESERVE_HEADER_BYTES : RESERVE_HEADER_BYTES + 6 * fields[1]])
    return Response(src, dst, flags, error, major, minor, command, tag, fields, data)


def wait_readable(link, seconds: float) -> None:
    """Until the link has a frame or `seconds` pass; poll(2), because select(2) refuses descriptors
    past FD_SETSIZE (1024), which a long-running process reaches."""
    poller = select.poll()
    poller.register(link.fileno(), select.POLLIN)
    poller.poll(max(0.0, seconds) * 1000)


class UdpLink:
    """Ethernet frames as UDP datagrams to and from one server address."""

    def __init__(self, server: tuple[str, int]):
        """`server`: (host, port); a host with a colon is IPv6."""
        self.server = server
        v6 = ":" in server[0]
        self.sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("::" if v6 else "0.0.0.0", 0))  # the kernel picks the source address that reaches the server
        self.sock.setblocking(False)

    def send(self, frame: bytes) -> None:
        self.sock.sendto(frame, self.server)

    def receive(self) -> bytes | None:
        try:
            return self.sock.recv(MAX_FRAME_BYTES)
        except BlockingIOError:
            return None

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class RawLink:
    """Raw AoE frames on one interface (root)."""

    def __init__(self, interface: str):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_AOE))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((interface, ETHERTYPE_AOE))
        self.sock.setblocking(False)
        self.mac = self.sock.getsockname()[4]

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def receive(self) -> bytes | None:
        while True:
            try:
                frame, address = self.sock.recvfrom(MAX_FRAME_BYTES)
            except BlockingIOError:
                return None
            if address[2] != socket.PACKET_OUTGOING:
                return frame

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class Timeout(Exception):
    pass


class Initiator:
    """One client: blocking request/response with retransmission under a new tag (as Linux's aoe does)."""

    def __init__(self, link, mac: bytes, server_mac: bytes = BROADCAST_MAC, shelf: int = 0, slot: int = 0, timeout: float = 0.5, tries: int = 6):
        self.link, self.mac, self.server_mac = link, mac, server_mac
        self.shelf, self.slot, self.timeout, self.tries = shelf, slot, timeout, tries
        self.next_tag = int.from_bytes(os.urandom(2), "big") << 8

    def new_tag(self) -> int:
        self.next_tag = (self.next_tag + 1) & 0xFFFFFFFF
        return self.next_tag

    def exchange(self, command: int, body: bytes, **frame_options) -> Response:
        """Send until a response with the request's tag arrives; every try has a fresh tag."""
        for _ in range(self.tries):
            tag = self.new_tag()
            self.link.send(request_frame(self.server_mac, self.mac, self.shelf, self.slot, command, tag, body, **frame_options))
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                wait_readable(self.link, left)
                while (frame := self.link.receive()) is not None:
                    response = parse_response(frame)
                    if response is not None and response.tag == tag and response.dst == self.mac:
                        return response
        raise Timeout(f"no response to command {command} after {self.tries} tries")

    def send_only(self, frame: bytes) -> None:
        self.link.send(frame)

    def collect(self, seconds: float) -> list[Response]:
        """Every response addressed to this client that arrives within `seconds`."""
        responses = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            wait_readable(self.link, left)
            while (frame := self.link.receive()) is not None:
                response = parse_response(frame)
                if response is not None and response.dst == self.mac:
                    responses.append(response)
        return responses

    def ata(self, cmd: int, lba: int = 0, count: int = 0, data: bytes = b"", write: bool = False, extended: bool = True) -> Response:
        return self.exchange(AoeCommand.ATA, ata_body(cmd, lba, count, data, write, extended))

    def read(self, lba: int, count: int) -> bytes:
        r = self.ata(0x24, lba, count)
        if r.flags & HeaderFlag.ERROR or r.fields[3] & 0x01:
            status = f"{r.fields[3]:#x}" if r.fields else "none"
            raise IOError(f"read lba={lba} count={count}: AoE error {r.error}, ATA status {status}")
        return r.data[: count * SECTOR_BYTES]

    def write(self, lba: int, data: bytes) -> None:
        r = self.ata(0x34, lba, len(data) // SECTOR_BYTES, data, write=True)
        if r.flags & HeaderFlag.ERROR or r.fields[3] & 0x01:
            status = f"{r.fields[3]:#x}" if r.fields else "none"
            raise IOError(f"write lba={lba}: AoE error {r.error}, ATA status {status}")

    def flush(self) -> Response:
        return self.ata(0xEA)

    def query_config(self, ccmd: int = 0, string: bytes = b"") -> Response:
        return self.exchange(AoeCommand.QUERY_CONFIG, CONFIG_ARG.pack(0, 0, 0, AOE_VERSION << 4 | ccmd, len(string)) + string)

    def mask(self, mcmd: int, directives: list[tuple[int, bytes]] = ()) -> Response:
        body = MASK_ARG.pack(mcmd, 0, len(directives)) + b"".join(MASK_DIRECTIVE.pack(d, m) for d, m in directives)
        return self.exchange(AoeCommand.MAC_MASK_LIST, body)

    def reserve(self, rcmd: int, macs: list[bytes] = ()) -> Response:
        return self.exchange(AoeCommand.RESERVE_RELEASE, RESERVE_ARG.pack(rcmd, len(macs)) + b"".join(macs))


def client_mac(number: int) -> bytes:
    """A locally administered MAC for test/benchmark client `number`."""
    return b"\x02\x00" + struct.pack("!I", number)
