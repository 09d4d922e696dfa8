"""Notation, units and the two parameter presets of the storage manager.

A *block* is the unit the storage manager tracks: a power-of-two number of
512-byte sectors (one sector is allowed). The guest's disk is `data_sectors`
long; behind it, at the end of the local disk, the VMM reserves two map slots
(`persistent_map.py`). Every size here is derived from `Geometry`, so the small
preset for proofs and the realistic one for tests come from one definition.
"""

from dataclasses import dataclass

from spec.ata.backing_store import SECTOR_BYTES

Lba = int  # a sector address, 0-based
BlockIndex = int  # a block address, 0-based

MAP_HEADER_SECTORS = 1  # one sector: magic, version, identity, generation, geometry, checksum
MAP_SLOTS = 2  # two alternating slots: a torn map write leaves the other slot valid


@dataclass(frozen=True)
class Geometry:
    """The shape of the guest's disk and of the reserved region behind it."""

    sectors_per_block: int  # a power of two, at least 1
    block_count: int  # blocks the guest's disk holds

    def __post_init__(self) -> None:
        # A block is a power of two of sectors so an LBA splits into block and offset by shifting.
        if self.sectors_per_block < 1 or self.sectors_per_block & (self.sectors_per_block - 1):
            raise ValueError(f"sectors_per_block must be a power of two, got {self.sectors_per_block}")
        # An empty disk has nothing to serve.
        if self.block_count < 1:
            raise ValueError(f"block_count must be at least 1, got {self.block_count}")

    @property
    def data_sectors(self) -> int:
        """The capacity the guest sees (IDENTIFY words 60-61 and 100-103)."""
        return self.sectors_per_block * self.block_count

    @property
    def bitmap_sectors(self) -> int:
        """Sectors holding one bit per block."""
        return -(-self.block_count // (8 * SECTOR_BYTES))

    @property
    def slot_sectors(self) -> int:
        return MAP_HEADER_SECTORS + self.bitmap_sectors

    @property
    def reserved_sectors(self) -> int:
        """Sectors at the end of the local disk the guest never sees."""
        return MAP_SLOTS * self.slot_sectors

    @property
    def local_disk_sectors(self) -> int:
        """The smallest local disk this geometry fits on."""
        return self.data_sectors + self.reserved_sectors

    def slot_lba(self, slot: int) -> Lba:
        """First sector of map slot 0 or 1."""
        return self.data_sectors + slot * self.slot_sectors

    def block_of(self, lba: Lba) -> BlockIndex:
        return lba // self.sectors_per_block

    def first_lba(self, block: BlockIndex) -> Lba:
        return block * self.sectors_per_block


@dataclass(frozen=True)
class FillParameters:
    """How hard the background fill engine may work (`fill_engine.py`)."""

    max_in_flight: int  # fills outstanding at once; dm-clone's hydration batch plays the same role
    tokens_per_tick: int  # background fills the rate limit admits per clock tick
    token_burst: int  # the most tokens that accumulate while the engine waits
    commit_every: int  # fills completed between two map commits, so a power cut loses little progress


@dataclass(frozen=True)
class Preset:
    geometry: Geometry
    fill: FillParameters


def make_preset(sectors_per_block: int, block_count: int, max_in_flight: int) -> Preset:
    """The one definition both presets come from."""
    return Preset(
        Geometry(sectors_per_block, block_count),
        FillParameters(max_in_flight=max_in_flight, tokens_per_tick=1, token_burst=max_in_flight, commit_every=4),
    )


SMALL = make_preset(sectors_per_block=2, block_count=4, max_in_flight=1)  # proofs: 8 sectors in 4 blocks
TESTS = make_preset(sectors_per_block=4, block_count=8, max_in_flight=2)  # stateful tests: 32 sectors, LBAs collide
REALISTIC = make_preset(sectors_per_block=8, block_count=1 << 21, max_in_flight=8)  # 8 GiB in 4 KiB blocks
