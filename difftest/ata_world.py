"""The ATA world: the spec's channel and the C core's channel side by side, driven by one trace.

Each side has its own backing store and guest memory, built alike from the trace's `config`
lines. `apply(event)` gives the event to both sides and then requires, on both, identical
results: the value of an IN and the actions (value, INTRQ changes), the exception kind if the
event is refused, every backing-store request, every guest-memory access, the observable
registers, the whole abstract state (spec/ata/state.py ChannelState, through the binding's
abstraction function), the disk and memory contents; and every invariant of spec/ata/invariants.py
holds on both. A difference raises `Divergence` naming what differs.
"""

from dataclasses import dataclass, field, fields

from difftest.binding.ata import CAtaChannel
from difftest.trace import events as ev
from spec.ata.backing_store import SECTOR_BYTES, ReadSectors, StoreRequest, StoreResult, WriteSectors
from spec.ata.commands import COMMANDS, COMMANDS_BY_CODE
from spec.ata.constants import ERR
from spec.ata.constants import PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT, QEMU_BUS_MASTER_BASE
from spec.ata.device import AtaChannel
from spec.ata.errors import CannotHappen
from spec.ata.invariants import STORE_PHASES as STORE_WAITING_PHASES, broken_invariants
from spec.ata.prd import FlatMemory, WalkOutcome
from spec.ata.state import Observation, Phase

DEFAULTS = {"capacity": 64, "latency": 0, "memory": 0x30000, "bus_master": QEMU_BUS_MASTER_BASE}


class Divergence(AssertionError):
    """The spec and the implementation disagree, or an invariant does not hold on one side."""


def sector_pattern(lba: int) -> bytes:
    """Distinct, recognisable contents: word i of sector n holds n in its high byte and i in its low byte."""
    high = (lba & 0xFF) << 8
    return b"".join((high | i).to_bytes(2, "little") for i in range(SECTOR_BYTES // 2))


class RecordingStore:
    """A disk for the ATA world, the same class on both sides: it records every request, can be told
    to fail the next one (`store fail`), and answers `latency` polls after a request starts, as
    spec.ata.backing_store.MemoryStore does. Sectors never written hold `sector_pattern`; only written
    sectors are stored, so a disk may be larger than 2**28 or 2**32 sectors."""

    PATTERNS = [sector_pattern(n) for n in range(256)]  # the pattern repeats every 256 sectors

    def __init__(self, capacity: int, latency: int):
        self.capacity = capacity
        self.latency = latency
        self.written: dict[int, bytes] = {}
        self.requests: list[StoreRequest] = []
        self.fail_next: int | None = None
        self._pending: StoreRequest | None = None
        self._failing: int | None = None
        self._remaining = 0

    @property
    def contents(self) -> dict[int, bytes]:
        """What differs from the initial pattern: the comparable contents of the disk."""
        return self.written

    def sector_count(self) -> int:
        return self.capacity

    def start(self, request: StoreRequest) -> None:
        if self._pending is not None:
            raise CannotHappen("a device started a store request while another was outstanding")
        self.requests.append(request)
        self._pending, self._remaining = request, self.latency
        self._failing, self.fail_next = self.fail_next, None

    def poll(self) -> StoreResult | None:
        if self._pending is None or self._remaining > 0:
            self._remaining -= 1
            return None
        request, self._pending = self._pending, None
        if self._failing is not None:
            error, self._failing = self._failing, None
            return StoreResult(False, error=error)
        match request:
            case ReadSectors(lba, count):
                return StoreResult(True, b"".join(self.written.get(n) or self.PATTERNS[n & 0xFF] for n in range(lba, lba + count)))
            case WriteSectors(lba, data):
                for i in range(len(data) // SECTOR_BYTES):
                    self.written[lba + i] = data[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES]
                return StoreResult(True)
            case _:
                return StoreResult(True)


@dataclass
class Side:
    name: str
    channel: AtaChannel | CAtaChannel
    store: RecordingStore
    memory: FlatMemory


@dataclass
class Coverage:
    """What the runs exercised, per side: commands executed, protocol phases, PRD walk outcomes, store faults."""

    seen: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def record(self, side: str, kind: str, name: str) -> None:
        self.seen.setdefault(side, set()).add((kind, name))

    def names(self, side: str, kind: str) -> set[str]:
        return {name for k, name in self.seen.get(side, set()) if k == kind}

    def report(self) -> str:
        lines = []
        for side in sorted(self.seen):
            for kind in ("command", "phase", "walk", "outcome"):
                names = sorted(self.names(side, kind))
                lines.append(f"{side:5} {kind:8} {len(names):3}: {', '.join(names)}")
        return "\n".join(lines)


COVERAGE = Coverage()  # accumulated over the session: corpus replays and the stateful runs
EXPECTED_COVERAGE = {
    "command": {c.name for c in COMMANDS} | {"unknown"},
    "phase": {p.value for p in Phase},
    "walk": {o.value for o in WalkOutcome},
    "outcome": {"ok", "error"},
}


def make_side(name: str, config: dict) -> Side:
    store = RecordingStore(config["capacity"], config["latency"])
    memory = FlatMemory(config["memory"])
    channel_class = AtaChannel if name == "spec" else CAtaChannel
    channel = channel_class(store, memory, PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT, config["bus_master"])
    return Side(name, channel, store, memory)


class AtaWorld:
    """Spec and C, one event at a time."""

    def __init__(self, **config):
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"the ATA world has no parameter {sorted(unknown)}; it knows {sorted(DEFAULTS)}")
        self.config = {**DEFAULTS, **config}
        self.sides = [make_side("spec", self.config), make_side("c", self.config)]
        self.events: list[ev.Event] = []
        self.previous_phase: dict[str, Phase] = {}
        self.compared = {"requests": -1, "accesses": -1}
        self.compare("power on")

    @property
    def spec(self) -> Side:
        return self.sides[0]

    # --- Events ----------------------------------------------------------------------------------

    def apply(self, event: ev.Event) -> None:
        """Give one event to both sides and compare everything afterwards."""
        self.events.append(event)
        where = event.line()
        match event:
            case ev.PortRead(width, port, expected):
                results = [self._run(side, lambda c: c.read(port, width)) for side in self.sides]
                self._same("result", results, where)
                if expected is not None and results[0][0] == "ok" and results[0][1] != expected:
                    raise Divergence(f"{where}: both sides read {results[0][1]:#x}, the trace expects {expected:#x}")
            case ev.PortWrite(width, port, value):
                self._same("result", [self._run(side, lambda c: c.write(port, width, value)) for side in self.sides], where)
            case ev.Tick(count):
                for _ in range(count):
                    # The spec's state is live: keep what the classification needs before the tick changes it.
                    before = [(len(side.memory.accesses), side.channel.state.bus_master.error) for side in self.sides]
                    self._same("result", [self._run(side, lambda c: c.tick()) for side in self.sides], where)
                    self.compare(where)
                    for side, (accesses, error) in zip(self.sides, before):
                        # Only the bus master touches guest memory: new accesses mean it walked a table.
                        if len(side.memory.accesses) > accesses and not error:
                            self._record_walk(side, side.channel.state)
            case ev.MemoryWrite(address, data):
                for side in self.sides:
                    if address < 0 or address + len(data) > len(side.memory.bytes):
                        raise ValueError(f"{where}: outside the {len(side.memory.bytes)} bytes of guest memory")
                    side.memory.bytes[address : address + len(data)] = data
                self.compared["accesses"] = -1
            case ev.StoreFail(error):
                if not 0 < error <= 0xFF:
                    raise ValueError(f"{where}: a store failure needs Error register bits (1..0xff)")
                for side in self.sides:
                    side.store.fail_next = error
            case ev.Expect(name, value):
                self._expect(name, value, where)
            case ev.ExpectMemory(address, data):
                for side in self.sides:
                    actual = bytes(side.memory.bytes[address : address + len(data)])
                    if actual != data:
                        raise Divergence(f"{where}: {side.name} memory holds {actual.hex(' ')}")
            case ev.Config():
                raise ValueError(f"{where}: config lines come before every other event")
            case _:
                raise ValueError(f"{where}: the ATA world does not model this event")
        self.compare(where)

    def _run(self, side: Side, action) -> tuple:
        """The outcome of one event on one side: ("ok", value, actions) or ("refused", exception type)."""
        intrq_before = side.channel.intrq
        try:
            value = action(side.channel)
        except CannotHappen as error:
            raise Divergence(f"{side.name} raised CannotHappen: {error}") from error
        except ValueError:
            return ("refused", "ValueError")
        if side.name == "spec":
            # The spec's actions, in the order the C core reports them: the IN's value, then INTRQ if it changed.
            actions = [("value", value)] if value is not None else []
            if side.channel.intrq != intrq_before:
                actions.append(("intrq", side.channel.intrq))
        else:
            actions = side.channel.last_actions
        return ("ok", value, actions)

    def _same(self, what: str, values: list, where: str) -> None:
        if values[0] != values[1]:
            raise Divergence(f"{where}: {what} differs\n  spec: {values[0]}\n  c:    {values[1]}")

    def _expect(self, name: str, value: int, where: str) -> None:
        names = [f.name for f in fields(Observation)]
        if name not in names:
            raise ValueError(f"{where}: no observable {name!r}; expect one of {names}")
        for side in self.sides:
            actual = getattr(side.channel.observe(), name)
            if isinstance(actual, str):
                raise ValueError(f"{where}: {name} is not a number; compare phases through the state")
            if int(actual) != value:
                raise Divergence(f"{where}: {side.name} has {name} = {int(actual):#x}, the trace expects {value:#x}")

    # --- Comparison ------------------------------------------------------------------------------

    def compare(self, where: str) -> None:
        """Both sides agree on everything a guest or the store can see, and every invariant holds on both."""
        states = [side.channel.state for side in self.sides]
        capacity = self.config["capacity"]
        for side, state in zip(self.sides, states):
            broken = broken_invariants(state, capacity)
            if broken:
                raise Divergence(f"{where}: invariant {broken[0]} violated on {side.name} (phase {state.phase.value})")
            self._record_coverage(side, state)
        self._same("observation", [side.channel.observe() for side in self.sides], where)
        self._same("store requests", [side.store.requests for side in self.sides], where)
        self._same("memory accesses", [side.memory.accesses for side in self.sides], where)
        for name in ("phase", "status", "registers", "settings", "bus_master", "transfer", "interrupt_pending",
                     "store_busy", "reset_ticks", "command_code", "nien", "srst", "hob", "intrq"):
            self._same(f"state.{name}", [getattr(state, name) for state in states], where)
        # Contents change only through store requests and memory accesses: compare them when those grew.
        if len(self.spec.store.requests) != self.compared["requests"]:
            self.compared["requests"] = len(self.spec.store.requests)
            self._same("disk contents", [side.store.contents for side in self.sides], where)
        if len(self.spec.memory.accesses) != self.compared["accesses"]:
            self.compared["accesses"] = len(self.spec.memory.accesses)
            self._same("guest memory", [side.memory.bytes for side in self.sides], where)

    def _record_coverage(self, side: Side, state) -> None:
        COVERAGE.record(side.name, "phase", state.phase.value)
        previous, self.previous_phase[side.name] = self.previous_phase.get(side.name), state.phase
        if previous is Phase.COMMAND_ACCEPTED and state.phase is not Phase.COMMAND_ACCEPTED:
            # The handler ran (it leaves COMMAND_ACCEPTED on the tick after the Command write).
            command = COMMANDS_BY_CODE.get(state.command_code)
            COVERAGE.record(side.name, "command", command.name if command else "unknown")
        if previous in STORE_WAITING_PHASES and state.phase is Phase.IDLE:
            COVERAGE.record(side.name, "outcome", "error" if state.status & ERR else "ok")

    def _record_walk(self, side: Side, after) -> None:
        """Classify a bus-master run by its effect (spec/ata/bus_master.py's BMISTA table)."""
        finished = after.transfer is None or after.phase is not Phase.DMA_TRANSFER
        if after.bus_master.error:
            outcome = WalkOutcome.FAULT
        elif finished:
            outcome = WalkOutcome.TABLE_LONGER if after.bus_master.active else WalkOutcome.EXACT
        elif not after.bus_master.active:
            outcome = WalkOutcome.TABLE_SHORTER
        else:
            return
        COVERAGE.record(side.name, "walk", outcome.value)


def replay(events: list[ev.Event]) -> AtaWorld:
    """Run a whole trace through a fresh ATA world; config lines first."""
    config = {}
    position = 0
    while position < len(events) and isinstance(events[position], ev.Config):
        config[events[position].key] = events[position].value
        position += 1
    world = AtaWorld(**config)
    for event in events[position:]:
        world.apply(event)
    return world
