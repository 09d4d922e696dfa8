"""The byte layout of AoE messages, as the server reads and writes them (AoEr11 §2–§3.4).

Precompiled `struct` layouts for the hot path: one unpack per request header and
one pack per response header. Every number comes from `spec.aoe.constants`.
"""

import struct

from spec.aoe.constants import (
    AOE_HEADER_BYTES,
    AOE_VERSION,
    ATA_ARG_BYTES,
    CONFIG_ARG_BYTES,
    ETHERNET_HEADER_BYTES,
    ETHERTYPE_AOE,
    MAC_BYTES,
    MASK_ARG_BYTES,
    MASK_DIRECTIVE_BYTES,
    RESERVE_ARG_BYTES,
    HeaderFlag,
)

ETHERNET = struct.Struct("!6s6sH")  # destination, source, ethertype
AOE_HEADER = struct.Struct("!BBHBBI")  # ver/flags, error, major, minor, command, tag (AoEr11 §2)
ATA_ARG = struct.Struct("!BBBB6s2x")  # aflags, err/feature, count, cmd/status, lba0..5 little-endian (§3.1)
CONFIG_ARG = struct.Struct("!HHBBH")  # buffer count, firmware, sector count, ver/ccmd, string length (§3.2)
MASK_ARG = struct.Struct("!xBBB")  # reserved, mcmd, merror, directive count (§3.3)
MASK_DIRECTIVE = struct.Struct("!xB6s")  # reserved, dcmd, MAC (§3.3)
RESERVE_ARG = struct.Struct("!BB")  # rcmd, MAC count (§3.4)

HEADER_BYTES = ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES  # 24: everything before a command's argument
ATA_HEADER_BYTES = HEADER_BYTES + ATA_ARG_BYTES  # 36: an ATA message without its data
CONFIG_HEADER_BYTES = HEADER_BYTES + CONFIG_ARG_BYTES  # 32
MASK_HEADER_BYTES = HEADER_BYTES + MASK_ARG_BYTES  # 28
RESERVE_HEADER_BYTES = HEADER_BYTES + RESERVE_ARG_BYTES  # 26
VERSION_SHIFT = 4  # the version is the high nibble of the first header byte (AoEr11 §2)
RESPONSE_FIRST_BYTE = (AOE_VERSION << VERSION_SHIFT) | HeaderFlag.RESPONSE
ERROR_FIRST_BYTE = RESPONSE_FIRST_BYTE | HeaderFlag.ERROR
ETHERTYPE_BYTES = ETHERTYPE_AOE.to_bytes(2, "big")

LAYOUT_SIZES = {ETHERNET: ETHERNET_HEADER_BYTES, AOE_HEADER: AOE_HEADER_BYTES, ATA_ARG: ATA_ARG_BYTES, CONFIG_ARG: CONFIG_ARG_BYTES,
                MASK_ARG: MASK_ARG_BYTES, MASK_DIRECTIVE: MASK_DIRECTIVE_BYTES, RESERVE_ARG: RESERVE_ARG_BYTES}
assert all(layout.size == size for layout, size in LAYOUT_SIZES.items()), "a layout disagrees with spec.aoe.constants"


def response_header(dst: bytes, src: bytes, error: int, major: int, minor: int, command: int, tag: int) -> bytes:
    """Ethernet and AoE header of a response: R set, and E set when `error` is not zero (AoEr11 §2)."""
    first = ERROR_FIRST_BYTE if error else RESPONSE_FIRST_BYTE
    return ETHERNET.pack(dst, src, ETHERTYPE_AOE) + AOE_HEADER.pack(first, error, major, minor, command, tag)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    """'52:54:00:12:34:56' (or with '-') to six bytes; ValueError with the reason otherwise."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != MAC_BYTES or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address (six two-digit hex bytes separated by ':'): {text!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"not a MAC address (non-hex digit): {text!r}") from None
