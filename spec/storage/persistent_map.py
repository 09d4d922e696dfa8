"""The persistent map: which blocks the local disk holds, kept on the disk itself.

Layout. The reserved region behind the guest's disk holds two slots; each slot
is one header sector followed by the bitmap sectors (bit b of byte b // 8,
least significant first, is block b). Header fields, little endian:

| offset | bytes | field | why |
|---|---|---|---|
| 0 | 8 | magic `STORVMAP` | a disk that never held a map is recognised as such |
| 8 | 4 | version (1) | a newer layout is never misread; an unknown version is empty |
| 12 | 32 | image identity | a map written for another image is never trusted |
| 44 | 8 | generation | of two valid slots the newer wins |
| 52 | 1 | policy (1 cache, 2 install) | an install map forbids booting into network or cache |
| 53 | 1 | clean (0 or 1) | a cache map is trusted only if no guest write followed its commit |
| 54 | 2 | zero | |
| 56 | 4 | sectors per block | a map of another geometry is never trusted |
| 60 | 4 | block count | |
| 64 | 4 | CRC-32 (IEEE 802.3) of bytes 0-63 and of the bitmap sectors | a torn or corrupt slot is rejected |

Order of writes (`commit`, driven by the manager): (1) flush the local disk,
so the data of every block about to be marked present is durable; (2) write
the slot that does not hold the newest valid map, header and bitmap of the
blocks that were present when (1) was issued; (3) flush again. A power cut
before (3) completes leaves the older slot valid, and it marks present only
blocks whose data was already durable. This is the order dm-clone commits its
region bitmap in, with a second slot instead of a metadata journal.

Recovery reads both slots, decodes each, and keeps the valid one with the
higher generation. It is trusted if it is an install map, or a cache map
committed clean; anything else is treated as an empty map.
"""

import struct
import zlib
from dataclasses import dataclass
from enum import Enum

from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.parameters import BlockIndex, Geometry, MAP_SLOTS
from spec.storage.policy import Policy

MAP_MAGIC = b"STORVMAP"
MAP_VERSION = 1
IDENTITY_BYTES = 32  # room for a SHA-256 of the server image, or its AoE shelf.slot and serial
HEADER = struct.Struct("<8sI32sQBBxxII")  # every field before the checksum
CHECKSUM = struct.Struct("<I")
POLICY_CODES = {Policy.CACHE: 1, Policy.INSTALL: 2}
POLICY_BY_CODE = {code: policy for policy, code in POLICY_CODES.items()}


@dataclass(frozen=True)
class MapRecord:
    generation: int
    policy: Policy  # CACHE or INSTALL; network keeps no map, passthrough keeps the install map
    clean: bool
    present: frozenset[BlockIndex]


class MapRejection(Enum):
    """Why a slot is treated as empty; every reason is a specified outcome, not a crash."""

    NO_MAGIC = "no map magic"
    UNKNOWN_VERSION = "unknown map version"
    BAD_CHECKSUM = "checksum mismatch"
    FOREIGN_IMAGE = "map belongs to another image"
    OTHER_GEOMETRY = "map has another block geometry"
    UNKNOWN_POLICY = "unknown policy code"


def normalize_identity(identity: bytes) -> bytes:
    """Identities shorter than the field are padded with zeros; longer ones are an error of configuration."""
    if len(identity) > IDENTITY_BYTES:
        raise ValueError(f"image identity longer than {IDENTITY_BYTES} bytes")
    return identity.ljust(IDENTITY_BYTES, b"\0")


def encode_bitmap(present: frozenset[BlockIndex], geometry: Geometry) -> bytes:
    bitmap = bytearray(geometry.bitmap_sectors * SECTOR_BYTES)
    for block in present:
        bitmap[block // 8] |= 1 << (block % 8)
    return bytes(bitmap)


def decode_bitmap(bitmap: bytes, geometry: Geometry) -> frozenset[BlockIndex]:
    return frozenset(b for b in range(geometry.block_count) if bitmap[b // 8] >> (b % 8) & 1)


def encode_map(record: MapRecord, geometry: Geometry, identity: bytes) -> bytes:
    """One slot's sectors: header sector then bitmap sectors."""
    fields = HEADER.pack(
        MAP_MAGIC,
        MAP_VERSION,
        normalize_identity(identity),
        record.generation,
        POLICY_CODES[record.policy],
        int(record.clean),
        geometry.sectors_per_block,
        geometry.block_count,
    )
    bitmap = encode_bitmap(record.present, geometry)
    checksum = CHECKSUM.pack(zlib.crc32(fields + bitmap))
    return (fields + checksum).ljust(SECTOR_BYTES, b"\0") + bitmap


def decode_map(raw: bytes, geometry: Geometry, identity: bytes) -> MapRecord | MapRejection:
    """A slot's record, or why it must not be trusted; checks run from the cheapest to the most specific."""
    assert len(raw) == geometry.slot_sectors * SECTOR_BYTES, "the caller reads exactly one slot"
    fields, bitmap = raw[: HEADER.size], raw[SECTOR_BYTES:]
    magic, version, stored_identity, generation, policy_code, clean, spb, blocks = HEADER.unpack(fields)
    # A disk that never held a map, or was overwritten.
    if magic != MAP_MAGIC:
        return MapRejection.NO_MAGIC
    # A layout this specification does not know is never guessed at.
    if version != MAP_VERSION:
        return MapRejection.UNKNOWN_VERSION
    # A torn or corrupted slot.
    (stored_checksum,) = CHECKSUM.unpack_from(raw, HEADER.size)
    if stored_checksum != zlib.crc32(fields + bitmap):
        return MapRejection.BAD_CHECKSUM
    # The local disk was filled from another image.
    if stored_identity != normalize_identity(identity):
        return MapRejection.FOREIGN_IMAGE
    # Bits would name other sectors.
    if (spb, blocks) != (geometry.sectors_per_block, geometry.block_count):
        return MapRejection.OTHER_GEOMETRY
    if policy_code not in POLICY_BY_CODE or clean > 1:
        return MapRejection.UNKNOWN_POLICY
    return MapRecord(generation, POLICY_BY_CODE[policy_code], bool(clean), decode_bitmap(bitmap, geometry))


def is_trusted(record: MapRecord) -> bool:
    """Whether the blocks a valid map marks present may be read locally after a restart."""
    # A dirty cache map was written before guest writes whose local copies may be older than the server's.
    return record.policy is Policy.INSTALL or record.clean


@dataclass(frozen=True)
class Recovery:
    newest: MapRecord | None  # the valid slot with the highest generation
    slot: int | None  # the slot it came from
    rejections: tuple[MapRejection | None, ...]  # per slot: why it is not valid, None if valid

    @property
    def record(self) -> MapRecord | None:
        """The map the manager starts from, or None: every block absent."""
        return self.newest if self.newest is not None and is_trusted(self.newest) else None

    @property
    def present(self) -> frozenset[BlockIndex]:
        return frozenset() if self.record is None else self.record.present

    @property
    def next_slot(self) -> int:
        """The slot the next commit overwrites: never the one holding the newest valid map."""
        return 0 if self.slot is None else 1 - self.slot

    @property
    def next_generation(self) -> int:
        return 1 if self.newest is None else self.newest.generation + 1


def recover_map(slots: tuple[bytes, ...], geometry: Geometry, identity: bytes) -> Recovery:
    """The newest valid map among the slots; it is trusted, or the start is from an empty map."""
    assert len(slots) == MAP_SLOTS, "both slots are read at start"
    decoded = [decode_map(raw, geometry, identity) for raw in slots]
    valid = [(record.generation, slot, record) for slot, record in enumerate(decoded) if isinstance(record, MapRecord)]
    rejections = tuple(None if isinstance(d, MapRecord) else d for d in decoded)
    if not valid:
        return Recovery(None, None, rejections)
    # The newest wins even when it is an untrusted dirty cache map: the older clean one is out of date.
    _, slot, newest = max(valid, key=lambda v: (v[0], -v[1]))
    return Recovery(newest, slot, rejections)
