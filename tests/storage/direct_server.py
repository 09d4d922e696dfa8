"""A storage server reached without frames: the remote request device, for storage-only scenarios.

It holds the image in a medium with a volatile write cache (writes durable only
after a flush, a crash loses the cache) and completes requests in whatever
order the test picks, failing the ones the test fails. The stateful test runs
the real AoE initiator, network and target instead; the hand-written scenarios
use this device so that each one names exactly which request completes when.
"""

from dataclasses import dataclass

from spec.ata.backing_store import SECTOR_BYTES
from spec.ata.constants import ABRT
from spec.storage.devices import Completion



@dataclass(frozen=True)
class Request:
    kind: str  # "read", "write" or "flush"
    lba: int = 0
    count: int = 0
    data: bytes = b""


class DirectServer:
    def __init__(self, image: bytes):
        self.durable = bytearray(image)
        self.cache: dict[int, bytes] = {}  # lba -> sector written since the last flush
        self.pending: dict[int, Request] = {}
        self.completions: list[Completion] = []
        self.next_id = 1

    def submit_read(self, lba: int, count: int) -> int:
        return self._submit(Request("read", lba, count))

    def submit_write(self, lba: int, data: bytes) -> int:
        return self._submit(Request("write", lba, len(data) // SECTOR_BYTES, bytes(data)))

    def submit_flush(self) -> int:
        return self._submit(Request("flush"))

    def take_completions(self) -> list[Completion]:
        taken, self.completions = self.completions, []
        return taken

    def pending_ids(self) -> list[int]:
        return list(self.pending)

    def complete(self, request_id: int, ok: bool = True) -> None:
        request = self.pending.pop(request_id)
        if not ok:
            self.completions.append(Completion(request_id, False, ata_error=ABRT))
        elif request.kind == "read":
            self.completions.append(Completion(request_id, True, self.read_now(request.lba, request.count)))
        elif request.kind == "write":
            self.apply_write(request.lba, request.data)
            self.completions.append(Completion(request_id, True))
        else:
            for lba, sector in self.cache.items():
                self.durable[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES] = sector
            self.cache.clear()
            self.completions.append(Completion(request_id, True))

    def apply_write(self, lba: int, data: bytes) -> None:
        for i in range(len(data) // SECTOR_BYTES):
            self.cache[lba + i] = data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES]

    def crash(self) -> None:
        """The server loses its volatile cache; requests still pending are retransmitted to it later."""
        self.cache.clear()

    def forget_client(self) -> None:
        """The client lost power: its pending requests never complete."""
        self.pending.clear()
        self.completions.clear()

    def read_now(self, lba: int, count: int) -> bytes:
        return b"".join(
            self.cache.get(s, bytes(self.durable[s * SECTOR_BYTES : (s + 1) * SECTOR_BYTES])) for s in range(lba, lba + count)
        )

    def _submit(self, request: Request) -> int:
        request_id, self.next_id = self.next_id, self.next_id + 1
        self.pending[request_id] = request
        return request_id
