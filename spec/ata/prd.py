"""Chapter 3 — guest memory and the Physical Region Descriptor table (PIIX, bus master IDE).

For a DMA command the bus master finds the guest's buffers in a PRD table in
guest memory: 8-byte entries, each a physical base address, a byte count and,
on the last entry, the end-of-table (EOT) bit. The device never holds a
pointer into the host: it reaches guest memory only through the
`GuestMemory` interface its caller provides, so every DMA access is an
observable output. The walk itself is pure; crosshair checks its contracts.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from spec.ata.constants import PRD_BOUNDARY, PRD_ENTRY_BYTES, PRD_EOT, PRD_MAX_REGION


class GuestMemory(Protocol):
    """Guest-physical memory as the bus master sees it."""

    def read(self, address: int, length: int) -> bytes | None:
        """The bytes at `address`, or None when no memory answers there (a PCI master abort)."""
        ...

    def write(self, address: int, data: bytes) -> bool:
        """Store `data` at `address`; False when no memory answers there (a PCI master abort)."""
        ...


class FlatMemory:
    """Guest memory of `size` bytes from address 0 that records every access, in order."""

    def __init__(self, size: int):
        self.bytes = bytearray(size)
        self.accesses: list[tuple[str, int, int]] = []  # ("read" | "write", address, length)

    def read(self, address: int, length: int) -> bytes | None:
        self.accesses.append(("read", address, length))
        if address < 0 or address + length > len(self.bytes):
            return None
        return bytes(self.bytes[address : address + length])

    def write(self, address: int, data: bytes) -> bool:
        self.accesses.append(("write", address, len(data)))
        if address < 0 or address + len(data) > len(self.bytes):
            return False
        self.bytes[address : address + len(data)] = data
        return True


@dataclass(frozen=True)
class PrdEntry:
    """One descriptor: a memory region of `byte_count` bytes at `address`.

    inv: 0 <= self.address < 2**32 and self.address % 2 == 0
    inv: 2 <= self.byte_count <= 65536 and self.byte_count % 2 == 0
    """

    address: int  # bit 0 is always 0: regions are word aligned
    byte_count: int  # 2 .. 65536, even
    end_of_table: bool


def decode_prd_entry(raw: bytes) -> PrdEntry:
    """Decode the 8 bytes of a descriptor (PIIX, PRD table: bits 15:1 count bytes, 0 means 64 KiB).

    pre: len(raw) == 8
    post: __return__.address % 2 == 0
    post: 2 <= __return__.byte_count <= 65536 and __return__.byte_count % 2 == 0
    """
    address = int.from_bytes(raw[0:4], "little") & ~1  # base address bit 0 is reserved
    count = int.from_bytes(raw[4:6], "little") & 0xFFFE  # byte count bit 0 is reserved
    flags = int.from_bytes(raw[6:8], "little")
    return PrdEntry(address, count or PRD_MAX_REGION, bool(flags & PRD_EOT))


def crosses_64k(address: int, length: int) -> bool:
    """Whether the region [address, address+length) crosses a 64 KiB boundary, which no PRD region may.

    pre: address >= 0 and length >= 1
    post: __return__ == (address // 65536 != (address + length - 1) // 65536)
    """
    return address // PRD_BOUNDARY != (address + length - 1) // PRD_BOUNDARY


class WalkOutcome(Enum):
    """How a PRD walk ends, as the bus-master status reports it (PIIX, BMISTA interrupt and active bits)."""

    EXACT = "exact"  # the table covered the transfer and ended with it: active clears
    TABLE_LONGER = "table longer"  # the transfer ended before the table: active stays set
    TABLE_SHORTER = "table shorter"  # the table ended first: active clears, the device still wants data
    FAULT = "fault"  # an unreadable table, a table without EOT in its 64 KiB page, or a region crossing 64 KiB


@dataclass(frozen=True)
class PrdWalk:
    segments: tuple[tuple[int, int], ...]  # (address, length) in transfer order
    outcome: WalkOutcome


def walk_prd(entries: Iterable[PrdEntry | None], transfer_bytes: int) -> PrdWalk:
    """Lay `transfer_bytes` over the table's regions in order; None in `entries` is an entry that cannot be read.

    Entries are taken only as far as the transfer needs them, as the
    controller fetches them one at a time; running out of entries without
    EOT is a fault, as the controller would read past its table.

    pre: transfer_bytes >= 1
    post: sum(length for _, length in __return__.segments) <= transfer_bytes
    post: (__return__.outcome in (WalkOutcome.EXACT, WalkOutcome.TABLE_LONGER)) == (sum(length for _, length in __return__.segments) == transfer_bytes)
    post: not any(crosses_64k(address, length) for address, length in __return__.segments)
    """
    segments: list[tuple[int, int]] = []
    remaining = transfer_bytes
    for entry in entries:
        # An entry the controller cannot fetch ends the walk with a bus-master error.
        if entry is None:
            return PrdWalk(tuple(segments), WalkOutcome.FAULT)
        # The PIIX leaves a region crossing 64 KiB undefined; the spec makes it a bus-master error.
        if crosses_64k(entry.address, entry.byte_count):
            return PrdWalk(tuple(segments), WalkOutcome.FAULT)
        take = min(remaining, entry.byte_count)
        segments.append((entry.address, take))
        remaining -= take
        if remaining == 0:
            exact = entry.end_of_table and take == entry.byte_count
            return PrdWalk(tuple(segments), WalkOutcome.EXACT if exact else WalkOutcome.TABLE_LONGER)
        if entry.end_of_table:
            return PrdWalk(tuple(segments), WalkOutcome.TABLE_SHORTER)
    return PrdWalk(tuple(segments), WalkOutcome.FAULT)


def read_prd_table(memory: GuestMemory, table_address: int) -> Iterator[PrdEntry | None]:
    """The table's entries, fetched lazily from guest memory; None for an entry that cannot be read.

    The table may not cross a 64 KiB boundary (PIIX, BMIDTP), so the entry
    after the last one in the table's 64 KiB page is reported unreadable.
    """
    address = table_address
    while not crosses_64k(table_address, address + PRD_ENTRY_BYTES - table_address):
        raw = memory.read(address, PRD_ENTRY_BYTES)
        yield None if raw is None else decode_prd_entry(raw)
        address += PRD_ENTRY_BYTES
    yield None
