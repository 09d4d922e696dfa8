"""Hypothesis strategies for AoE request frames aimed at one small target."""

from hypothesis import strategies as st

from impl.server.initiator import ata_body, request_frame
from spec.aoe.constants import BROADCAST_MAC, SECTOR_BYTES, AoeCommand

DISK_SECTORS = 64
SERVER_MAC = bytes.fromhex("025356000001")
CLIENTS = (bytes.fromhex("020000000001"), bytes.fromhex("020000000002"))
STRANGER = bytes.fromhex("02000000000f")  # not assigned to any target
READ_WRITE = (0x20, 0x24, 0x30, 0x34)
OTHER_ATA = (0xEC, 0xE5, 0xE7, 0xEA, 0xC8, 0x00)


def base_image(sectors: int = DISK_SECTORS) -> bytes:
    return b"".join(bytes([lba & 0xFF]) * SECTOR_BYTES for lba in range(sectors))


lbas = st.sampled_from([0, 1, DISK_SECTORS - 2, DISK_SECTORS - 1, DISK_SECTORS, 2**28 - 1, (0xE << 28) | 5, 2**48 - 1]) | st.integers(0, DISK_SECTORS + 2)


@st.composite
def ata_requests(draw, max_sectors: int = 2):
    cmd = draw(st.sampled_from(READ_WRITE * 3 + OTHER_ATA + (0xE7, 0xEA) * 2))
    count = draw(st.sampled_from([1, max_sectors]) | st.integers(0, max_sectors + 1))
    writing = cmd in (0x30, 0x34)
    write_flag = writing if draw(st.integers(0, 9)) else not writing
    data = b""
    if writing:
        data = bytes([draw(st.integers(0, 255))]) * (count * SECTOR_BYTES)
        if not draw(st.integers(0, 9)):
            data = data[: draw(st.integers(0, len(data)))]
    return ata_body(cmd, draw(lbas), count, data, write=write_flag, extended=cmd in (0x24, 0x34))


config_strings = st.sampled_from([b"", b"a", b"ab", b"abc"])


@st.composite
def config_requests(draw):
    string = draw(config_strings)
    ccmd = draw(st.sampled_from([0, 0, 1, 2, 3, 3, 4, 4, 9]))
    length = len(string) if draw(st.integers(0, 9)) else draw(st.sampled_from([len(string) + 3, 1025, 0xFFFF]))
    return bytes([0, 0, 0, 0, 0, 0x10 | ccmd]) + length.to_bytes(2, "big") + string


@st.composite
def mask_requests(draw):
    directives = draw(st.lists(st.tuples(st.sampled_from([0, 1, 1, 1, 2, 7]), st.sampled_from(CLIENTS + (STRANGER,))), max_size=3))
    mcmd = draw(st.sampled_from([0, 1, 1, 1, 2]))
    count = len(directives) if draw(st.integers(0, 9)) else len(directives) + 1
    return bytes([0, mcmd, 0, count]) + b"".join(bytes([0, d]) + m for d, m in directives)


@st.composite
def reserve_requests(draw):
    macs = draw(st.lists(st.sampled_from(CLIENTS + (STRANGER,)), max_size=2))
    rcmd = draw(st.sampled_from([0, 1, 1, 2, 3]))
    count = len(macs) if draw(st.integers(0, 9)) else len(macs) + 1
    return bytes([rcmd, count]) + b"".join(macs)


@st.composite
def requests(draw, clients=CLIENTS * 4 + (STRANGER,), max_sectors: int = 2, shelf: int = 0, slot: int = 0):
    """One request frame: mostly well-formed and addressed to the target, sometimes not."""
    command = draw(st.sampled_from([AoeCommand.ATA] * 6 + [AoeCommand.QUERY_CONFIG, AoeCommand.MAC_MASK_LIST, AoeCommand.RESERVE_RELEASE, 0xF1, 7]))
    body = {
        AoeCommand.ATA: lambda: draw(ata_requests(max_sectors)),
        AoeCommand.QUERY_CONFIG: lambda: draw(config_requests()),
        AoeCommand.MAC_MASK_LIST: lambda: draw(mask_requests()),
        AoeCommand.RESERVE_RELEASE: lambda: draw(reserve_requests()),
    }.get(command, lambda: draw(st.binary(max_size=8)))()
    if not draw(st.integers(0, 14)):
        body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    src = draw(st.sampled_from(clients))
    dst = draw(st.sampled_from([SERVER_MAC] * 8 + [BROADCAST_MAC, bytes.fromhex("02aaaaaaaaaa")]))
    major = draw(st.sampled_from([shelf] * 8 + [0xFFFF, shelf + 1]))
    minor = draw(st.sampled_from([slot] * 8 + [0xFF, slot + 1]))
    version = draw(st.sampled_from([1] * 15 + [0, 2]))
    flags = draw(st.sampled_from([0] * 15 + [0x8]))
    tag = draw(st.integers(0, 2**32 - 1))
    return request_frame(dst, src, major, minor, command, tag, body, version=version, flags=flags)
