"""The ideal disk: what a guest may observe, whatever storvisor does underneath.

Every read returns, per sector, the last acknowledged write, or the image's
data if the guest never wrote the sector. Around that exact rule the model
admits only what a real disk admits (ATA/ATAPI-7 V1 §6, FLUSH CACHE):

- a write that failed leaves each of its sectors with the old or the new data;
- a power cut (of the client, or of a server holding unflushed data) may undo
  every write not followed by a completed flush, sector by sector.

So each sector holds the *set* of values a read may return now, and the set a
power cut could leave; a read that sees one value fixes it.
"""

from spec.ata.backing_store import SECTOR_BYTES


class IdealDisk:
    def __init__(self, image: bytes):
        assert len(image) % SECTOR_BYTES == 0, "an image is whole sectors"
        sectors = [image[i : i + SECTOR_BYTES] for i in range(0, len(image), SECTOR_BYTES)]
        self.readable: list[frozenset[bytes]] = [frozenset({s}) for s in sectors]  # what a read may return now
        self.durable: list[frozenset[bytes]] = list(self.readable)  # what survived the last flush
        self.unflushed: list[frozenset[bytes]] = [frozenset()] * len(sectors)  # written since the last flush

    @property
    def sector_count(self) -> int:
        return len(self.readable)

    def write_done(self, lba: int, data: bytes, ok: bool) -> None:
        for i, sector in enumerate(self._split(data)):
            new = frozenset({sector})
            self.readable[lba + i] = new if ok else self.readable[lba + i] | new
            self.unflushed[lba + i] = self.unflushed[lba + i] | new

    def flush_done(self) -> None:
        self.durable = list(self.readable)
        self.unflushed = [frozenset()] * self.sector_count

    def power_cut(self) -> None:
        """Unflushed writes may be lost: each sector may now hold its durable value or any unflushed one."""
        self.readable = [d | u for d, u in zip(self.durable, self.unflushed)]
        self.durable = list(self.readable)
        self.unflushed = [frozenset()] * self.sector_count

    def may_survive_power_cut(self, lba: int) -> frozenset[bytes]:
        return self.durable[lba] | self.unflushed[lba]

    def mismatches(self, lba: int, data: bytes) -> list[int]:
        """The sectors of a read whose data the ideal disk does not allow."""
        return [lba + i for i, sector in enumerate(self._split(data)) if sector not in self.readable[lba + i]]

    def read_done(self, lba: int, data: bytes) -> None:
        """A read that the ideal disk allowed fixes each sector to the value it saw."""
        assert not self.mismatches(lba, data), "only an allowed read is recorded"
        for i, sector in enumerate(self._split(data)):
            self.readable[lba + i] = frozenset({sector})

    @staticmethod
    def _split(data: bytes) -> list[bytes]:
        return [data[i : i + SECTOR_BYTES] for i in range(0, len(data), SECTOR_BYTES)]
