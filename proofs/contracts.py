"""Thin, pure wrappers whose `pre:`/`post:` contracts crosshair checks against the spec's functions.

Each wrapper calls the spec and states, as postconditions, the property the
spec must have: a frame decodes to what was encoded, a map slot decodes to
the record written and a damaged one is rejected, a request splits into
pieces that cover it exactly once, a PRD walk never exceeds the transfer.
The spec's own contracts (`spec/ata/addressing.py`, `spec/aoe/frames.py`)
are checked in place; see `test_contracts.py` for the targets and bounds.
"""

from types import SimpleNamespace

from spec.aoe.constants import ETHERTYPE_AOE, AoeCommand
from spec.aoe.frames import AoeHeader, AtaArgument, EthernetHeader, Frame, decode_frame, encode_frame
from spec.aoe.initiator import AoeInitiator, Kind, Request
from spec.ata.prd import PrdWalk, WalkOutcome, crosses_64k, decode_prd_entry, walk_prd
from spec.storage.parameters import SMALL, Geometry
from spec.storage.persistent_map import MapRecord, MapRejection, decode_map, encode_map
from spec.storage.policy import Policy
from spec.storage.routing import split_by_block

SOURCE_MAC = bytes.fromhex("020000000001")
TARGET_MAC = bytes.fromhex("0200000000aa")
IDENTITY = b"image:proofs"


def ata_frame_round_trip(tag: int, flags: int, lba: int, sector_count: int, command: int, data: bytes) -> Frame:
    """An ATA message survives encoding and decoding unchanged (AoEr11 §2, §3.1).

    pre: 0 <= tag <= 0xFFFFFFFF and 0 <= flags <= 0xF and 0 <= lba < 2**48
    pre: 0 <= sector_count <= 0xFF and 0 <= command <= 0xFF and len(data) <= 1024
    post: __return__ == Frame(EthernetHeader(TARGET_MAC, SOURCE_MAC), AoeHeader(1, flags, 0, 7, 1, AoeCommand.ATA, tag), AtaArgument(0x40, 0, sector_count, command, lba, 0, data))
    """
    sent = Frame(
        EthernetHeader(TARGET_MAC, SOURCE_MAC, ETHERTYPE_AOE),
        AoeHeader(1, flags, 0, 7, 1, AoeCommand.ATA, tag),
        AtaArgument(0x40, 0, sector_count, command, lba, 0, data),
    )
    return decode_frame(encode_frame(sent))


def map_round_trip(generation: int, install: bool, clean: bool, present_bits: int) -> MapRecord | MapRejection:
    """A map slot decodes to the record written into it (`persistent_map.py`), on the proofs' small geometry.

    pre: 0 <= generation < 2**64 and 0 <= present_bits < 2**4
    post: __return__ == MapRecord(generation, Policy.INSTALL if install else Policy.CACHE, clean, frozenset(b for b in range(4) if present_bits >> b & 1))
    """
    geometry = SMALL.geometry
    present = frozenset(b for b in range(geometry.block_count) if present_bits >> b & 1)
    record = MapRecord(generation, Policy.INSTALL if install else Policy.CACHE, clean, present)
    return decode_map(encode_map(record, geometry, IDENTITY), geometry, IDENTITY)


def damaged_map_rejected(generation: int, present_bits: int, offset: int, flip: int) -> MapRecord | MapRejection:
    """A slot with one damaged byte anywhere is rejected, or still decodes to the very record written.

    pre: 0 <= generation < 2**64 and 0 <= present_bits < 2**4
    pre: 0 <= offset < 1024 and 1 <= flip <= 0xFF
    post: isinstance(__return__, MapRejection) or __return__ == MapRecord(generation, Policy.INSTALL, True, frozenset(b for b in range(4) if present_bits >> b & 1))
    """
    geometry = SMALL.geometry
    present = frozenset(b for b in range(geometry.block_count) if present_bits >> b & 1)
    raw = encode_map(MapRecord(generation, Policy.INSTALL, True, present), geometry, IDENTITY)
    damaged = raw[:offset] + bytes([raw[offset] ^ flip]) + raw[offset + 1 :]
    return decode_map(damaged, geometry, IDENTITY)


def block_pieces(lba: int, count: int, shift: int) -> list[tuple[int, int, int]]:
    """`split_by_block`: pieces in one block each, adjacent, covering the request once.

    pre: 0 <= lba < 2**48 and 1 <= count <= 512 and 0 <= shift <= 4
    post: __return__[0][1] == lba and sum(n for _, _, n in __return__) == count
    post: all(n >= 1 and first >> shift == block == (first + n - 1) >> shift for block, first, n in __return__)
    post: all(a[1] + a[2] == b[1] for a, b in zip(__return__, __return__[1:]))
    """
    return [(p.block, p.lba, p.count) for p in split_by_block(Geometry(1 << shift, 1), lba, count)]


def frame_fragments(lba: int, count: int, max_sectors: int) -> list[tuple[int, int]]:
    """`AoeInitiator.split`: fragments of at most `max_sectors`, adjacent, covering the request once.

    pre: 0 <= lba < 2**48 - 512 and 1 <= count <= 512 and 1 <= max_sectors <= 255
    post: __return__[0][0] == lba and sum(n for _, n in __return__) == count
    post: all(1 <= n <= max_sectors for _, n in __return__)
    post: all(a[0] + a[1] == b[0] for a, b in zip(__return__, __return__[1:]))
    """
    holder = SimpleNamespace(max_sectors=max_sectors, pending=[])
    request = Request(1, Kind.WRITE, lba, count, b"", 0)
    AoeInitiator.split(holder, request)
    return [(f.lba, f.count) for f in request.fragments]


def walk_decoded_table(raw: bytes, transfer_bytes: int) -> PrdWalk:
    """A PRD walk over descriptors as the bus master decodes them (PIIX, bus master IDE).

    pre: len(raw) % 8 == 0 and len(raw) <= 32 and 1 <= transfer_bytes <= 2**18
    post: sum(length for _, length in __return__.segments) <= transfer_bytes
    post: (__return__.outcome in (WalkOutcome.EXACT, WalkOutcome.TABLE_LONGER)) == (sum(length for _, length in __return__.segments) == transfer_bytes)
    post: not any(crosses_64k(address, length) for address, length in __return__.segments)
    post: all(address % 2 == 0 and length >= 1 for address, length in __return__.segments)
    """
    entries = [decode_prd_entry(raw[i : i + 8]) for i in range(0, len(raw), 8)]
    return walk_prd(entries, transfer_bytes)
