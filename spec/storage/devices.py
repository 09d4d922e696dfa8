"""The two devices behind the storage manager, seen through one request interface.

The local disk (the physical ATA channel the VMM owns) and the remote disk
(the AoE initiator that reaches the server) are both driven the same way:
a request is submitted and gets an id; later, in whatever order the hardware
or the network decides, a completion with that id appears. The manager never
assumes an order between two outstanding requests, which is why it never has
two requests in flight that overlap a sector written by either.
"""

from dataclasses import dataclass
from typing import Protocol

from spec.storage.parameters import Lba

RequestId = int


@dataclass(frozen=True)
class Completion:
    """The shape of a finished request; the AoE initiator's completions have the same fields."""

    request_id: RequestId
    ok: bool
    data: bytes = b""  # the sectors read, for a successful read
    ata_error: int = 0  # ATA Error register bits when not ok, as the device or the server reported them


class RequestDevice(Protocol):
    def submit_read(self, lba: Lba, count: int) -> RequestId: ...

    def submit_write(self, lba: Lba, data: bytes) -> RequestId: ...

    def submit_flush(self) -> RequestId: ...

    def take_completions(self) -> list[Completion]: ...
