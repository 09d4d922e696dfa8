"""What an AoE target stores sectors in: a store whose writes become durable only on flush.

A write is visible to later reads at once but may sit in a volatile cache; only
`flush` promises that every earlier write survives a crash. This split is what
makes FLUSH CACHE checkable: a crash keeps exactly the durable image plus any
cached sectors the medium happened to write on its own.
"""

from collections.abc import Callable
from typing import Protocol

from spec.aoe.constants import SECTOR_BYTES


class DurableStore(Protocol):
    def sector_count(self) -> int:
        """The capacity in sectors."""
        ...

    def read(self, lba: int, count: int) -> bytes:
        """`count` sectors from `lba`, including writes not yet flushed."""
        ...

    def write(self, lba: int, data: bytes) -> None:
        """Write whole sectors; durable only after the next `flush`."""
        ...

    def flush(self) -> None:
        """Make every earlier write durable."""
        ...


class MemoryDurableStore:
    """A durable image plus a volatile write cache, in memory; sectors never written read as `fill`."""

    def __init__(self, sectors: int, fill: bytes = b"\0"):
        self.sectors = sectors
        self.blank = fill * SECTOR_BYTES
        self.durable: dict[int, bytes] = {}  # lba -> sector on the medium; absent: blank
        self.cache: dict[int, bytes] = {}  # lba -> sector written since the last flush

    def sector_count(self) -> int:
        return self.sectors

    def read(self, lba: int, count: int) -> bytes:
        assert 0 <= lba and lba + count <= self.sector_count(), "the target checks the range first"
        return b"".join(self._sector(s) for s in range(lba, lba + count))

    def write(self, lba: int, data: bytes) -> None:
        assert len(data) % SECTOR_BYTES == 0, "whole sectors only"
        assert 0 <= lba and lba + len(data) // SECTOR_BYTES <= self.sector_count(), "the target checks the range first"
        for i in range(len(data) // SECTOR_BYTES):
            self.cache[lba + i] = bytes(data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES])

    def flush(self) -> None:
        for lba, sector in sorted(self.cache.items()):
            self._persist(lba, sector)
        self.cache.clear()

    def crash(self, cached_sector_survives: Callable[[int], bool] = lambda lba: False) -> None:
        """Lose the volatile cache; a medium may have written some cached sectors before it went down."""
        for lba, sector in sorted(self.cache.items()):
            if cached_sector_survives(lba):
                self._persist(lba, sector)
        self.cache.clear()

    def durable_sector(self, lba: int) -> bytes:
        """What a crash now would leave in this sector (if the cache is lost)."""
        return self.durable.get(lba, self.blank)

    def _sector(self, lba: int) -> bytes:
        return self.cache[lba] if lba in self.cache else self.durable_sector(lba)

    def _persist(self, lba: int, sector: bytes) -> None:
        self.durable[lba] = sector
