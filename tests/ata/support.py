"""A host driving the spec's ATA channel the way a driver does, checking every invariant after every event."""

from spec.ata.backing_store import SECTOR_BYTES, MemoryStore, ReadSectors, StoreRequest, StoreResult, WriteSectors
from spec.ata.constants import BSY, DRQ, PRD_EOT, UNC, BusMasterRegister, CommandBlock
from spec.ata.device import AtaChannel
from spec.ata.invariants import check_invariants
from spec.ata.prd import FlatMemory

CMD = 0x1F0
CTRL = 0x3F6
BM = 0xC040
DATA, ERROR, COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, STATUS = (CMD + r for r in CommandBlock)
BM_COMMAND, BM_STATUS, BM_PRD = (BM + r for r in BusMasterRegister)
MEMORY_BYTES = 1 << 20


def pattern(lba: int, count: int) -> bytes:
    """Distinct, recognisable contents for sectors lba .. lba+count-1."""
    return b"".join(((lba + i) & 0xFFFF).to_bytes(2, "little") * (SECTOR_BYTES // 2) for i in range(count))


class BadSectorStore(MemoryStore):
    """A plain disk in which reads of the listed sectors fail with UNC, as a worn medium's do."""

    def __init__(self, sectors: int, bad: set[int], latency_ticks: int = 0):
        super().__init__(sectors, latency_ticks)
        self.bad = bad
        self.requests: list[StoreRequest] = []

    def start(self, request: StoreRequest) -> None:
        self.requests.append(request)
        super().start(request)

    def _execute(self, request: StoreRequest) -> StoreResult:
        if isinstance(request, ReadSectors) and self.bad & set(range(request.lba, request.lba + request.count)):
            return StoreResult(False, error=UNC)
        return super()._execute(request)


class SparseStore:
    """A huge disk whose sectors are all zero until written: for capacities beyond 2**28 sectors."""

    def __init__(self, sectors: int):
        self.sectors = sectors
        self.written: dict[int, bytes] = {}
        self.requests: list[StoreRequest] = []
        self._result: StoreResult | None = None

    def sector_count(self) -> int:
        return self.sectors

    def start(self, request: StoreRequest) -> None:
        self.requests.append(request)
        match request:
            case ReadSectors(lba, count):
                data = b"".join(self.written.get(lba + i, bytes(SECTOR_BYTES)) for i in range(count))
                self._result = StoreResult(True, data)
            case WriteSectors(lba, data):
                for i in range(len(data) // SECTOR_BYTES):
                    self.written[lba + i] = data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES]
                self._result = StoreResult(True)
            case _:
                self._result = StoreResult(True)

    def poll(self) -> StoreResult | None:
        result, self._result = self._result, None
        return result


class Host:
    """A channel with a store and guest memory, plus the steps a driver takes; checks invariants after each event."""

    def __init__(self, sectors: int = 64, latency: int = 0, bad: frozenset[int] = frozenset(), sparse: bool = False):
        if sparse:
            self.store = SparseStore(sectors)
        else:
            self.store = BadSectorStore(sectors, set(bad), latency)
            self.store.sectors[:] = pattern(0, sectors)
        self.memory = FlatMemory(MEMORY_BYTES)
        self.channel = AtaChannel(self.store, self.memory, CMD, CTRL, BM)
        self.phases_seen = {self.channel.state.phase}  # every protocol phase observed after an event

    @property
    def capacity(self) -> int:
        return self.store.sector_count()

    def check(self) -> None:
        check_invariants(self.channel.state, self.capacity)
        self.phases_seen.add(self.channel.state.phase)

    def read(self, port: int, width: int = 1) -> int:
        value = self.channel.read(port, width)
        self.check()
        return value

    def write(self, port: int, value: int, width: int = 1) -> None:
        self.channel.write(port, width, value)
        self.check()

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.channel.tick()
            self.check()

    @property
    def status(self) -> int:
        """Alternate Status: looks without acknowledging the interrupt."""
        return self.read(CTRL)

    def settle(self, limit: int = 1000) -> int:
        """Tick until BSY clears; the Alternate Status then."""
        for _ in range(limit):
            if not self.status & BSY:
                return self.status
            self.tick()
        raise AssertionError(f"still busy after {limit} ticks")

    def lba28(self, lba: int, count: int, features: int = 0) -> None:
        self.write(DEVICE, 0xE0 | (lba >> 24))
        self.write(ERROR, features)
        self.write(COUNT, count & 0xFF)
        self.write(LBA_LOW, lba & 0xFF)
        self.write(LBA_MID, (lba >> 8) & 0xFF)
        self.write(LBA_HIGH, (lba >> 16) & 0xFF)

    def lba48(self, lba: int, count: int) -> None:
        self.write(DEVICE, 0x40)
        for shift in (8, 0):  # previous content first, then current (V1 §7, "HOB")
            self.write(COUNT, (count >> shift) & 0xFF)
            self.write(LBA_LOW, (lba >> (3 * shift)) & 0xFF)
            self.write(LBA_MID, (lba >> (3 * shift + 8)) & 0xFF)
            self.write(LBA_HIGH, (lba >> (3 * shift + 16)) & 0xFF)

    def command(self, code: int) -> int:
        """Write the Command register and let it run until BSY clears; the Alternate Status then."""
        self.write(STATUS, code)
        return self.settle()

    def read_words(self, words: int) -> bytes:
        return b"".join(self.read(DATA, 2).to_bytes(2, "little") for _ in range(words))

    def read_pio(self, sectors: int) -> bytes:
        """Read `sectors` sectors of a PIO data-in command, a block at a time as DRQ allows."""
        data = b""
        while len(data) < sectors * SECTOR_BYTES:
            status = self.settle()
            assert status & DRQ, f"no DRQ with {len(data)} bytes read, status {status:#04x}"
            self.read(STATUS)
            data += self.read_words(SECTOR_BYTES // 2)
        return data

    def write_pio(self, data: bytes) -> None:
        """Write the data of a PIO data-out command, a sector at a time as DRQ allows."""
        for offset in range(0, len(data), SECTOR_BYTES):
            status = self.settle()
            assert status & DRQ, f"no DRQ at byte {offset}, status {status:#04x}"
            for i in range(offset, offset + SECTOR_BYTES, 2):
                self.write(DATA, int.from_bytes(data[i : i + 2], "little"), 2)

    def prd_table(self, table: int, regions: list[tuple[int, int]], eot: bool = True) -> None:
        """Write a PRD table at `table` describing `regions` (byte count 65536 is encoded as 0)."""
        for i, (address, length) in enumerate(regions):
            flags = PRD_EOT if eot and i == len(regions) - 1 else 0
            raw = address.to_bytes(4, "little") + (length & 0xFFFF).to_bytes(2, "little") + flags.to_bytes(2, "little")
            self.memory.bytes[table + 8 * i : table + 8 * i + 8] = raw
        self.write(BM_PRD, table, 4)

    def start_bus_master(self, to_memory: bool) -> None:
        self.write(BM_COMMAND, 0x09 if to_memory else 0x01)
