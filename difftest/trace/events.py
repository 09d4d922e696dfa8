"""The events of a trace, one class per kind of line (grammar: trace.lark, prose: difftest/README.md).

Each event knows how to print itself as its line, so a generated sequence written with
`format_trace` parses back to the same events. Which events a replayer understands depends on the
world it drives: the ATA world (difftest/ata_world.py) takes ports, ticks, memory, store faults and
expectations; the storage and AoE worlds add frames, disk completions, power cuts, policies,
the network and the server.
"""

from dataclasses import dataclass

PORT_WIDTHS = {8: 1, 16: 2, 32: 4}  # the width suffix of in/out in bits -> bytes
FILL_THRESHOLD = 16  # byte strings of at least this many equal bytes print as `fill`


def hex_bytes(data: bytes) -> str:
    return "[" + " ".join(f"{b:02x}" for b in data) + "]"


@dataclass(frozen=True)
class Config:
    """A parameter of the world the trace runs in (capacity, latency, memory, ...)."""

    key: str
    value: int | str

    def line(self) -> str:
        return f"config {self.key} = {self.value}"


@dataclass(frozen=True)
class PortRead:
    """A guest IN of `width` bytes; `expected` (if given) is the value the guest must receive."""

    width: int
    port: int
    expected: int | None = None

    def line(self) -> str:
        text = f"in{8 * self.width} {self.port:#x}"
        return text if self.expected is None else f"{text} = {self.expected:#x}"


@dataclass(frozen=True)
class PortWrite:
    """A guest OUT of `width` bytes."""

    width: int
    port: int
    value: int

    def line(self) -> str:
        return f"out{8 * self.width} {self.port:#x} {self.value:#x}"


@dataclass(frozen=True)
class Tick:
    """Time passes by `count` ticks."""

    count: int = 1

    def line(self) -> str:
        return "tick" if self.count == 1 else f"tick {self.count}"


@dataclass(frozen=True)
class MemoryWrite:
    """Guest memory at `address` holds `data` (the guest's own store, not a device access)."""

    address: int
    data: bytes

    def line(self) -> str:
        if len(self.data) >= FILL_THRESHOLD and self.data == self.data[:1] * len(self.data):
            return f"mem {self.address:#x} fill {self.data[0]:#04x} {len(self.data)}"
        return f"mem {self.address:#x} = {hex_bytes(self.data)}"


@dataclass(frozen=True)
class Expect:
    """An observable of the world (status, error, intrq, bm_status, ...) has `value` on every side."""

    name: str
    value: int

    def line(self) -> str:
        return f"expect {self.name} = {self.value:#x}"


@dataclass(frozen=True)
class ExpectMemory:
    """Guest memory at `address` holds `data` on every side."""

    address: int
    data: bytes

    def line(self) -> str:
        return f"expect mem {self.address:#x} = {hex_bytes(self.data)}"


@dataclass(frozen=True)
class StoreFail:
    """The backing store fails its next request with these ATA Error register bits."""

    error: int

    def line(self) -> str:
        return f"store fail {self.error:#04x}"


@dataclass(frozen=True)
class FrameReceived:
    """A frame arrives from the network for the core."""

    data: bytes

    def line(self) -> str:
        return f"frame rx {hex_bytes(self.data)}"


@dataclass(frozen=True)
class DiskDone:
    """Local-disk operation `request_id` completes, successfully or with Error register bits."""

    request_id: int
    ok: bool = True
    error: int = 0

    def line(self) -> str:
        return f"disk done {self.request_id} ok" if self.ok else f"disk done {self.request_id} error {self.error:#04x}"


@dataclass(frozen=True)
class PowerCut:
    """Power fails; `survivors` names the rule choosing which cached local-disk writes survive."""

    survivors: str | None = None

    def line(self) -> str:
        return "power cut" if self.survivors is None else f"power cut {self.survivors}"


@dataclass(frozen=True)
class Restart:
    """The machine boots again (after a power cut): the core starts from its persisted state."""

    def line(self) -> str:
        return "restart"


@dataclass(frozen=True)
class PolicyChange:
    """The operator asks for a whole-machine policy."""

    policy: str

    def line(self) -> str:
        return f"policy {self.policy}"


@dataclass(frozen=True)
class Network:
    """An action of the faulty network model: drop, duplicate, delay N, deliver, reorder."""

    action: str
    arguments: tuple[int, ...] = ()

    def line(self) -> str:
        return " ".join(["net", self.action, *(str(a) for a in self.arguments)])


@dataclass(frozen=True)
class Server:
    """The storage server crashes or restarts."""

    action: str  # "crash" | "restart"

    def line(self) -> str:
        return f"server {self.action}"


@dataclass(frozen=True)
class GuestRequest:
    """A guest request at the backing-store interface (storage world): read, write, flush, or poll for its result."""

    action: str  # "read" | "write" | "flush" | "poll"
    arguments: tuple[int, ...] = ()

    def line(self) -> str:
        return " ".join(["guest", self.action, *(str(a) for a in self.arguments)])


Event = (
    Config | PortRead | PortWrite | Tick | MemoryWrite | Expect | ExpectMemory | StoreFail | FrameReceived
    | DiskDone | PowerCut | Restart | PolicyChange | Network | Server | GuestRequest
)
