"""AoE frames: the layout of every message and its pure encode/decode (AoEr11 §2–§3).

A frame is an Ethernet header, the AoE header and one argument whose layout the
header's command selects. Decoding is layered, outermost first, so a receiver
can stop at the layer it needs (a target answers a wrong version after reading
only the header). A frame that does not fit its layout never decodes to a
value: it raises `MalformedFrame` carrying one `FrameDefect`, whose text is the
canonical message. Trailing bytes after a complete argument are Ethernet
padding and are ignored, except for ATA, whose data runs to the end of the frame.

Every function here is pure; the `pre:`/`post:` lines are contracts that
crosshair checks.
"""

from dataclasses import dataclass, field
from enum import Enum

from spec.aoe.constants import (
    AOE_HEADER_BYTES,
    ATA_ARG_BYTES,
    CONFIG_ARG_BYTES,
    CONFIG_STRING_MAX,
    ETHERNET_HEADER_BYTES,
    ETHERNET_MIN_FRAME_BYTES,
    ETHERTYPE_AOE,
    MAC_BYTES,
    MASK_ARG_BYTES,
    MASK_DIRECTIVE_BYTES,
    RESERVE_ARG_BYTES,
    AoeCommand,
)


class FrameDefect(Enum):
    """Why a byte string is not a well-formed AoE frame; the value is the canonical message."""

    TRUNCATED_ETHERNET_HEADER = "frame shorter than the 14-byte Ethernet header"
    NOT_AOE = "ethertype is not AoE (0x88A2)"
    TRUNCATED_AOE_HEADER = "frame ends inside the 10-byte AoE header"
    TRUNCATED_ATA_ARGUMENT = "frame ends inside the 12-byte ATA argument"
    TRUNCATED_CONFIG_ARGUMENT = "frame ends inside the 8-byte Query Config argument"
    CONFIG_STRING_TOO_LONG = "config string length exceeds 1024"
    TRUNCATED_CONFIG_STRING = "frame ends inside the config string"
    TRUNCATED_MASK_ARGUMENT = "frame ends inside the 4-byte MAC Mask List argument"
    TRUNCATED_MASK_DIRECTIVES = "frame ends inside the MAC Mask List directives"
    TRUNCATED_RESERVE_ARGUMENT = "frame ends inside the 2-byte Reserve/Release argument"
    TRUNCATED_RESERVE_MACS = "frame ends inside the Reserve/Release MAC list"


class MalformedFrame(ValueError):
    """A frame that does not fit its layout; `defect` says which way."""

    def __init__(self, defect: FrameDefect):
        super().__init__(defect.value)
        self.defect = defect


def _mac(value: bytes) -> bool:
    return len(value) == MAC_BYTES


@dataclass(frozen=True)
class EthernetHeader:
    destination: bytes  # 6 bytes
    source: bytes  # 6 bytes
    ethertype: int = ETHERTYPE_AOE


@dataclass(frozen=True)
class AoeHeader:
    """AoEr11 §2: the common header of every AoE message."""

    version: int  # 4 bits
    flags: int  # 4 bits: HeaderFlag.RESPONSE | HeaderFlag.ERROR
    error: int  # AoeError when flags has ERROR, else 0
    major: int  # shelf, 16 bits
    minor: int  # slot, 8 bits
    command: int  # AoeCommand or vendor specific
    tag: int  # 32 bits, chosen by the initiator and echoed by the target


@dataclass(frozen=True)
class AtaArgument:
    """AoEr11 §3.1: ATA registers, then the data (write request or read response)."""

    aflags: int  # AtaFlag bits
    err_feature: int  # Features in a request, Error register in a response
    sector_count: int
    cmd_status: int  # Command in a request, Status register in a response
    lba: int  # 48 bits, lba0 (least significant) first on the wire
    reserved: int = 0  # 16 bits, sent as 0
    data: bytes = b""


@dataclass(frozen=True)
class ConfigArgument:
    """AoEr11 §3.2: Query Config Information."""

    buffer_count: int  # 16 bits: requests the target can queue
    firmware_version: int  # 16 bits
    sector_count: int  # 8 bits: maximum sectors per ATA command, 0 means 2
    aoe_version: int  # 4 bits
    ccmd: int  # 4 bits: ConfigCommand
    config: bytes = b""  # the config string, at most CONFIG_STRING_MAX bytes


@dataclass(frozen=True)
class MaskDirective:
    """AoEr11 §3.3: one 8-byte entry of a MAC Mask List message."""

    dcmd: int  # MaskDirective code
    mac: bytes  # 6 bytes
    reserved: int = 0


@dataclass(frozen=True)
class MaskArgument:
    """AoEr11 §3.3: MAC Mask List."""

    mcmd: int  # MaskCommand
    merror: int  # MaskError in a response
    directives: tuple[MaskDirective, ...] = ()
    reserved: int = 0


@dataclass(frozen=True)
class ReserveArgument:
    """AoEr11 §3.4: Reserve/Release."""

    rcmd: int  # ReserveCommand
    macs: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class OpaqueArgument:
    """The bytes after the header of a command this codec has no layout for (vendor or unknown)."""

    payload: bytes = b""


Argument = AtaArgument | ConfigArgument | MaskArgument | ReserveArgument | OpaqueArgument


@dataclass(frozen=True)
class Frame:
    ethernet: EthernetHeader
    header: AoeHeader
    argument: Argument = field(default_factory=OpaqueArgument)


# Encoding.


def encode_ethernet_header(h: EthernetHeader) -> bytes:
    """The 14-byte Ethernet header.

    pre: len(h.destination) == 6 and len(h.source) == 6
    pre: 0 <= h.ethertype <= 0xFFFF
    post: len(__return__) == 14
    """
    return h.destination + h.source + h.ethertype.to_bytes(2, "big")


def encode_aoe_header(h: AoeHeader) -> bytes:
    """The 10-byte AoE header; multi-byte fields are big-endian (AoEr11 §2).

    pre: 0 <= h.version <= 0xF and 0 <= h.flags <= 0xF
    pre: 0 <= h.error <= 0xFF and 0 <= h.major <= 0xFFFF and 0 <= h.minor <= 0xFF
    pre: 0 <= h.command <= 0xFF and 0 <= h.tag <= 0xFFFFFFFF
    post: len(__return__) == 10
    """
    return (
        bytes([h.version << 4 | h.flags, h.error])
        + h.major.to_bytes(2, "big")
        + bytes([h.minor, h.command])
        + h.tag.to_bytes(4, "big")
    )


def encode_ata_argument(a: AtaArgument) -> bytes:
    """The ATA argument; the LBA is little-endian, lba0 first (AoEr11 §3.1).

    pre: 0 <= a.aflags <= 0xFF and 0 <= a.err_feature <= 0xFF
    pre: 0 <= a.sector_count <= 0xFF and 0 <= a.cmd_status <= 0xFF
    pre: 0 <= a.lba < 2 ** 48 and 0 <= a.reserved <= 0xFFFF
    post: len(__return__) == 12 + len(a.data)
    """
    return (
        bytes([a.aflags, a.err_feature, a.sector_count, a.cmd_status])
        + a.lba.to_bytes(6, "little")
        + a.reserved.to_bytes(2, "big")
        + a.data
    )


def encode_config_argument(a: ConfigArgument) -> bytes:
    """The Query Config argument and its config string (AoEr11 §3.2).

    pre: 0 <= a.buffer_count <= 0xFFFF and 0 <= a.firmware_version <= 0xFFFF
    pre: 0 <= a.sector_count <= 0xFF and 0 <= a.aoe_version <= 0xF and 0 <= a.ccmd <= 0xF
    pre: len(a.config) <= 1024
    post: len(__return__) == 8 + len(a.config)
    """
    return (
        a.buffer_count.to_bytes(2, "big")
        + a.firmware_version.to_bytes(2, "big")
        + bytes([a.sector_count, a.aoe_version << 4 | a.ccmd])
        + len(a.config).to_bytes(2, "big")
        + a.config
    )


def encode_mask_argument(a: MaskArgument) -> bytes:
    """The MAC Mask List argument and its directives (AoEr11 §3.3).

    pre: 0 <= a.reserved <= 0xFF and 0 <= a.mcmd <= 0xFF and 0 <= a.merror <= 0xFF
    pre: len(a.directives) <= 0xFF
    pre: all(len(d.mac) == 6 and 0 <= d.dcmd <= 0xFF and 0 <= d.reserved <= 0xFF for d in a.directives)
    post: len(__return__) == 4 + 8 * len(a.directives)
    """
    return bytes([a.reserved, a.mcmd, a.merror, len(a.directives)]) + b"".join(
        bytes([d.reserved, d.dcmd]) + d.mac for d in a.directives
    )


def encode_reserve_argument(a: ReserveArgument) -> bytes:
    """The Reserve/Release argument and its MAC list (AoEr11 §3.4).

    pre: 0 <= a.rcmd <= 0xFF and len(a.macs) <= 0xFF
    pre: all(len(m) == 6 for m in a.macs)
    post: len(__return__) == 2 + 6 * len(a.macs)
    """
    return bytes([a.rcmd, len(a.macs)]) + b"".join(a.macs)


def encode_argument(a: Argument) -> bytes:
    """The argument's bytes, by its layout."""
    match a:
        case AtaArgument():
            return encode_ata_argument(a)
        case ConfigArgument():
            return encode_config_argument(a)
        case MaskArgument():
            return encode_mask_argument(a)
        case ReserveArgument():
            return encode_reserve_argument(a)
        case OpaqueArgument():
            return a.payload


def is_encodable(f: Frame) -> bool:
    """Every field of the frame fits its width on the wire."""
    e, h, a = f.ethernet, f.header, f.argument
    fits = _mac(e.destination) and _mac(e.source) and 0 <= e.ethertype <= 0xFFFF
    fits = fits and 0 <= h.version <= 0xF and 0 <= h.flags <= 0xF and 0 <= h.error <= 0xFF
    fits = fits and 0 <= h.major <= 0xFFFF and 0 <= h.minor <= 0xFF and 0 <= h.tag <= 0xFFFFFFFF
    fits = fits and 0 <= h.command <= 0xFF
    match a:
        case AtaArgument():
            registers = (a.aflags, a.err_feature, a.sector_count, a.cmd_status)
            return fits and all(0 <= r <= 0xFF for r in registers) and 0 <= a.lba < 2**48 and 0 <= a.reserved <= 0xFFFF
        case ConfigArgument():
            return (
                fits
                and 0 <= a.buffer_count <= 0xFFFF
                and 0 <= a.firmware_version <= 0xFFFF
                and 0 <= a.sector_count <= 0xFF
                and 0 <= a.aoe_version <= 0xF
                and 0 <= a.ccmd <= 0xF
                and len(a.config) <= CONFIG_STRING_MAX
            )
        case MaskArgument():
            entries = all(_mac(d.mac) and 0 <= d.dcmd <= 0xFF and 0 <= d.reserved <= 0xFF for d in a.directives)
            header = all(0 <= v <= 0xFF for v in (a.reserved, a.mcmd, a.merror))
            return fits and header and len(a.directives) <= 0xFF and entries
        case ReserveArgument():
            return fits and 0 <= a.rcmd <= 0xFF and len(a.macs) <= 0xFF and all(_mac(m) for m in a.macs)
        case _:
            return fits


def encode_frame(f: Frame) -> bytes:
    """The whole frame, unpadded: the network pads short frames to 60 bytes.

    pre: is_encodable(f)
    post: len(__return__) >= 24
    """
    return encode_ethernet_header(f.ethernet) + encode_aoe_header(f.header) + encode_argument(f.argument)


# Decoding, outermost layer first.


def decode_ethernet_header(frame: bytes) -> EthernetHeader:
    """The Ethernet header of an AoE frame.

    raises: MalformedFrame
    post: __return__.ethertype == 0x88A2
    """
    if len(frame) < ETHERNET_HEADER_BYTES:
        raise MalformedFrame(FrameDefect.TRUNCATED_ETHERNET_HEADER)
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype != ETHERTYPE_AOE:
        raise MalformedFrame(FrameDefect.NOT_AOE)
    return EthernetHeader(bytes(frame[0:6]), bytes(frame[6:12]), ethertype)


def decode_aoe_header(frame: bytes) -> AoeHeader:
    """The AoE header of a frame whose Ethernet header is valid.

    raises: MalformedFrame
    post: 0 <= __return__.version <= 15 and 0 <= __return__.tag <= 0xFFFFFFFF
    """
    decode_ethernet_header(frame)
    h = frame[ETHERNET_HEADER_BYTES : ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES]
    if len(h) < AOE_HEADER_BYTES:
        raise MalformedFrame(FrameDefect.TRUNCATED_AOE_HEADER)
    return AoeHeader(
        version=h[0] >> 4,
        flags=h[0] & 0xF,
        error=h[1],
        major=int.from_bytes(h[2:4], "big"),
        minor=h[4],
        command=h[5],
        tag=int.from_bytes(h[6:10], "big"),
    )


def decode_ata_argument(body: bytes) -> AtaArgument:
    """The ATA argument from the bytes after the AoE header; the data is the rest.

    raises: MalformedFrame
    post: len(__return__.data) == len(body) - 12
    """
    if len(body) < ATA_ARG_BYTES:
        raise MalformedFrame(FrameDefect.TRUNCATED_ATA_ARGUMENT)
    return AtaArgument(
        aflags=body[0],
        err_feature=body[1],
        sector_count=body[2],
        cmd_status=body[3],
        lba=int.from_bytes(body[4:10], "little"),
        reserved=int.from_bytes(body[10:12], "big"),
        data=bytes(body[ATA_ARG_BYTES:]),
    )


def decode_config_argument(body: bytes) -> ConfigArgument:
    """The Query Config argument; bytes after the config string are padding.

    raises: MalformedFrame
    post: len(__return__.config) <= 1024
    """
    if len(body) < CONFIG_ARG_BYTES:
        raise MalformedFrame(FrameDefect.TRUNCATED_CONFIG_ARGUMENT)
    length = int.from_bytes(body[6:8], "big")
    if length > CONFIG_STRING_MAX:
        raise MalformedFrame(FrameDefect.CONFIG_STRING_TOO_LONG)
    if len(body) < CONFIG_ARG_BYTES + length:
        raise MalformedFrame(FrameDefect.TRUNCATED_CONFIG_STRING)
    return ConfigArgument(
        buffer_count=int.from_bytes(body[0:2], "big"),
        firmware_version=int.from_bytes(body[2:4], "big"),
        sector_count=body[4],
        aoe_version=body[5] >> 4,
        ccmd=body[5] & 0xF,
        config=bytes(body[CONFIG_ARG_BYTES : CONFIG_ARG_BYTES + length]),
    )


def decode_mask_argument(body: bytes) -> MaskArgument:
    """The MAC Mask List argument and its dir-count directives; later bytes are padding.

    raises: MalformedFrame
    post: len(__return__.directives) <= 255
    """
    if len(body) < MASK_ARG_BYTES:
        raise MalformedFrame(FrameDefect.TRUNCATED_MASK_ARGUMENT)
    count = body[3]
    end = MASK_ARG_BYTES + count * MASK_DIRECTIVE_BYTES
    if len(body) < end:
        raise MalformedFrame(FrameDefect.TRUNCATED_MASK_DIRECTIVES)
    directives = tuple(
        MaskDirective(dcmd=body[i + 1], mac=bytes(body[i + 2 : i + 8]), reserved=body[i])
        for i in range(MASK_ARG_BYTES, end, MASK_DIRECTIVE_BYTES)
    )
    return MaskArgument(mcmd=body[1], merror=body[2], directives=directives, reserved=body[0])


def decode_reserve_argument(body: bytes) -> ReserveArgument:
    """The Reserve/Release argument and its nmacs MACs; later bytes are padding.

    raises: MalformedFrame
    post: len(__return__.macs) <= 255
    """
    if len(body) < RESERVE_ARG_BYTES:
        raise MalformedFrame(FrameDefect.TRUNCATED_RESERVE_ARGUMENT)
    count = body[1]
    end = RESERVE_ARG_BYTES + count * MAC_BYTES
    if len(body) < end:
        raise MalformedFrame(FrameDefect.TRUNCATED_RESERVE_MACS)
    macs = tuple(bytes(body[i : i + MAC_BYTES]) for i in range(RESERVE_ARG_BYTES, end, MAC_BYTES))
    return ReserveArgument(rcmd=body[0], macs=macs)


def decode_argument(command: int, body: bytes) -> Argument:
    """The argument whose layout `command` selects; unknown commands keep their bytes.

    raises: MalformedFrame
    """
    match command:
        case AoeCommand.ATA:
            return decode_ata_argument(body)
        case AoeCommand.QUERY_CONFIG:
            return decode_config_argument(body)
        case AoeCommand.MAC_MASK_LIST:
            return decode_mask_argument(body)
        case AoeCommand.RESERVE_RELEASE:
            return decode_reserve_argument(body)
        case _:
            return OpaqueArgument(bytes(body))


def decode_frame(frame: bytes) -> Frame:
    """Every layer of a frame. The version is not checked here: a wrong one is the receiver's to answer.

    raises: MalformedFrame
    """
    ethernet = decode_ethernet_header(frame)
    header = decode_aoe_header(frame)
    body = frame[ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES :]
    return Frame(ethernet, header, decode_argument(header.command, body))


def pad_to_minimum(frame: bytes) -> bytes:
    """The frame as it travels: zero-padded to the Ethernet minimum of 60 bytes (IEEE 802.3 §3.2.8).

    post: len(__return__) == max(60, len(frame)) and __return__[: len(frame)] == frame
    """
    return frame + bytes(max(0, ETHERNET_MIN_FRAME_BYTES - len(frame)))


def argument_bytes(frame: bytes) -> bytes:
    """The raw bytes after the AoE header (an error response echoes them).

    pre: len(frame) >= 24
    post: len(__return__) == len(frame) - 24
    """
    return bytes(frame[ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES :])
