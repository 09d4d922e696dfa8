"""The local disk: a disk with a volatile write cache, reached through explicit requests.

Requests (read, write, flush) are submitted and get an id; they complete when
the caller says so, in any order, so the hardware's completion order is an
input of every test. A write's data enters the cache when it completes; a read
returns what the cache and medium hold when it completes. FLUSH CACHE makes
durable every write that completed before the flush was submitted
(ATA/ATAPI-7 V1 §6, FLUSH CACHE). A power cut keeps, for every sector independently, its
durable value or any one of the values written to it since (completed or still
in flight): the cache may have written any of them to the medium on its own.
"""

from collections.abc import Callable
from dataclasses import dataclass

from spec.ata.backing_store import SECTOR_BYTES
from spec.ata.constants import ABRT, IDNF
from spec.storage.devices import Completion



@dataclass(frozen=True)
class DiskRead:
    lba: int
    count: int


@dataclass(frozen=True)
class DiskWrite:
    lba: int
    data: bytes


@dataclass(frozen=True)
class DiskFlush:
    covers_through: int  # the completion sequence number of the last write it makes durable


DiskRequest = DiskRead | DiskWrite | DiskFlush

# Chooses which version of a sector survives a power cut: (lba, number of versions) -> index, 0 the durable one.
SurvivorChoice = Callable[[int, int], int]


class LocalDisk:
    def __init__(self, sectors: int, fill: bytes = b"\0"):
        self.sectors = sectors
        self.blank = fill * SECTOR_BYTES
        self.durable: dict[int, bytes] = {}  # lba -> sector on the medium; missing: blank
        self.unflushed: dict[int, list[tuple[int, bytes]]] = {}  # lba -> (completion sequence, sector), oldest first
        self.pending: dict[int, DiskRequest] = {}  # id -> request, in submission order
        self.completions: list[Completion] = []
        self.completed_writes = 0  # completion sequence of the last write
        self.next_id = 1

    # The request interface (spec/storage/devices.py)

    def submit_read(self, lba: int, count: int) -> int:
        return self._submit(DiskRead(lba, count))

    def submit_write(self, lba: int, data: bytes) -> int:
        assert data and len(data) % SECTOR_BYTES == 0, "the host writes whole sectors"
        return self._submit(DiskWrite(lba, bytes(data)))

    def submit_flush(self) -> int:
        return self._submit(DiskFlush(self.completed_writes))

    def take_completions(self) -> list[Completion]:
        taken, self.completions = self.completions, []
        return taken

    # The hardware's side: which request completes, and how

    def pending_ids(self) -> list[int]:
        return list(self.pending)

    def complete(self, request_id: int, ok: bool = True) -> None:
        """The disk finishes one request, successfully or with ABRT; a failed request changes nothing."""
        request = self.pending.pop(request_id)
        match request:
            case DiskRead() | DiskWrite() if not self._in_range(request):
                self.completions.append(Completion(request_id, False, ata_error=IDNF))
            case _ if not ok:
                self.completions.append(Completion(request_id, False, ata_error=ABRT))
            case DiskRead(lba, count):
                self.completions.append(Completion(request_id, True, self.read_now(lba, count)))
            case DiskWrite(lba, data):
                self.completed_writes += 1
                for i in range(len(data) // SECTOR_BYTES):
                    sector = data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES]
                    self.unflushed.setdefault(lba + i, []).append((self.completed_writes, sector))
                self.completions.append(Completion(request_id, True))
            case DiskFlush(covers_through):
                for lba in list(self.unflushed):
                    versions = self.unflushed[lba]
                    flushed = [sector for seq, sector in versions if seq <= covers_through]
                    if flushed:
                        self.durable[lba] = flushed[-1]
                    rest = [(seq, sector) for seq, sector in versions if seq > covers_through]
                    if rest:
                        self.unflushed[lba] = rest
                    else:
                        del self.unflushed[lba]
                self.completions.append(Completion(request_id, True))

    def power_cut(self, choose: SurvivorChoice = lambda lba, versions: 0) -> None:
        """Power is lost: requests vanish, and each sector keeps one of its possible versions."""
        for lba, versions in sorted(self.versions_at_risk().items()):
            index = choose(lba, len(versions))
            assert 0 <= index < len(versions), "the choice names one of the versions"
            self.durable[lba] = versions[index]
        self.unflushed.clear()
        self.pending.clear()
        self.completions.clear()

    # Inspection, for checks

    def versions_at_risk(self) -> dict[int, list[bytes]]:
        """Per sector with unflushed data: the durable value first, then every value a power cut may keep."""
        at_risk = {lba: [s for _, s in versions] for lba, versions in self.unflushed.items()}
        for request in self.pending.values():
            if isinstance(request, DiskWrite) and self._in_range(request):
                for i in range(len(request.data) // SECTOR_BYTES):
                    at_risk.setdefault(request.lba + i, []).append(request.data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES])
        return {lba: [self.durable_sector(lba)] + versions for lba, versions in at_risk.items()}

    def read_now(self, lba: int, count: int) -> bytes:
        """What a read completing now returns."""
        return b"".join(self._current(s) for s in range(lba, lba + count))

    def durable_sector(self, lba: int) -> bytes:
        return self.durable.get(lba, self.blank)

    def durable_bytes(self, lba: int, count: int) -> bytes:
        return b"".join(self.durable_sector(s) for s in range(lba, lba + count))

    def _current(self, lba: int) -> bytes:
        versions = self.unflushed.get(lba)
        return versions[-1][1] if versions else self.durable_sector(lba)

    def _in_range(self, request: DiskRequest) -> bool:
        match request:
            case DiskRead(lba, count):
                return 0 <= lba and count >= 1 and lba + count <= self.sectors
            case DiskWrite(lba, data):
                return 0 <= lba and lba + len(data) // SECTOR_BYTES <= self.sectors
        return True

    def _submit(self, request: DiskRequest) -> int:
        request_id, self.next_id = self.next_id, self.next_id + 1
        self.pending[request_id] = request
        return request_id
