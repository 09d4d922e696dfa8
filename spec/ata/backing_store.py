"""What the ATA device reads and writes: the backing store interface.

The device never touches a medium itself. When a command needs sectors it
starts one request on its backing store and stays busy (BSY) until the store
reports the result; the device asks on every clock tick. A `MemoryStore` is
the plain disk; the storage manager (`spec/storage`) is the store that decides,
block by block, whether the local disk or the server serves the request.
"""

from dataclasses import dataclass
from typing import Protocol

SECTOR_BYTES = 512  # ATA/ATAPI-7 V1 §3, definitions: a sector is 256 words


@dataclass(frozen=True)
class ReadSectors:
    lba: int
    count: int


@dataclass(frozen=True)
class WriteSectors:
    lba: int
    data: bytes  # a whole number of sectors


@dataclass(frozen=True)
class Flush:
    """Make every write completed before this request durable (FLUSH CACHE)."""


StoreRequest = ReadSectors | WriteSectors | Flush


@dataclass(frozen=True)
class StoreResult:
    ok: bool
    data: bytes = b""  # the sectors read, for a successful ReadSectors
    error: int = 0  # ATA Error register bits when not ok (UNC, IDNF, ABRT)


class BackingStore(Protocol):
    def sector_count(self) -> int:
        """The capacity the guest sees, in sectors."""
        ...

    def start(self, request: StoreRequest) -> None:
        """Begin a request; a device has at most one outstanding."""
        ...

    def poll(self) -> StoreResult | None:
        """The outstanding request's result once it is complete, else None; called every tick."""
        ...


class MemoryStore:
    """A plain disk held in memory that completes each request `latency_ticks` polls after it starts."""

    def __init__(self, sectors: int, latency_ticks: int = 0, fill: bytes = b"\0"):
        self.sectors = bytearray(fill * (sectors * SECTOR_BYTES))
        self.latency_ticks = latency_ticks
        self._pending: StoreRequest | None = None
        self._remaining = 0

    def sector_count(self) -> int:
        return len(self.sectors) // SECTOR_BYTES

    def start(self, request: StoreRequest) -> None:
        assert self._pending is None, "a device starts one request at a time"
        self._pending, self._remaining = request, self.latency_ticks

    def poll(self) -> StoreResult | None:
        if self._pending is None or self._remaining > 0:
            self._remaining -= 1
            return None
        request, self._pending = self._pending, None
        return self._execute(request)

    def _execute(self, request: StoreRequest) -> StoreResult:
        match request:
            case ReadSectors(lba, count):
                return StoreResult(True, bytes(self.sectors[lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES]))
            case WriteSectors(lba, data):
                self.sectors[lba * SECTOR_BYTES : lba * SECTOR_BYTES + len(data)] = data
                return StoreResult(True)
            case Flush():
                return StoreResult(True)
