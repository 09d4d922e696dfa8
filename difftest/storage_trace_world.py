"""Replaying storage traces (difftest/corpus/storage) on the spec and the C core side by side.

A trace drives a `Pair` of storage worlds (storage_worlds.py): the spec's manager and initiator and
the C core's, each over its own local-disk model and server. Every line is applied to both, then the
two must be equal and the invariant catalogue must hold on both. The lines this world understands:

| line | meaning |
|---|---|
| `config policy = install` | the configured policy (network, cache, install); before any other line |
| `config link = direct` | the server is reached without frames (each request completes when a line says so); default `aoe` |
| `guest read L N` / `guest write L N V` / `guest flush` | the ATA device starts a request; V makes the written data unique |
| `guest poll` | the ATA device asks for the request's result |
| `disk done I ok` / `disk done I error E` | the local disk completes its request I (a failure reports ABRT) |
| `net deliver K` / `net drop K` / `net duplicate K` | the K-th thing in transit arrives, is lost, or is copied (a frame, or a direct request) |
| `tick` / `tick N` | time passes |
| `power cut` / `power cut newest` | the client loses power and restarts; each sector at risk keeps its durable (default, `oldest`) or its newest version; with `-delivered` (`newest-delivered`) write frames in flight still reach the server |
| `restart` | accepted right after `power cut`, which has already restarted the client |
| `policy cache` | the operator asks for a policy change; `policy passthrough` asks for de-virtualization, the only way into passthrough |
| `server crash` | the server loses its volatile cache |
| `expect NAME = V` | an observable is V on both sides: `result_ok`, `result_error`, `guest_busy`, `phase`, `policy` (index in the spec's enum order), `blockB` (0 absent, 1 fetching, 2 writing, 3 present), `persistedB`, `local_pending`, `in_transit` |
"""

from dataclasses import dataclass, field

from difftest.storage_worlds import CoreAoeLink, Pair
from difftest.trace import events as ev
from spec.ata.backing_store import Flush, ReadSectors, WriteSectors
from spec.storage.block_state import BlockState
from spec.storage.manager import Phase
from spec.storage.parameters import TESTS
from spec.storage.policy import Policy
from tests.storage.links import AoeLink, DirectLink
from tests.storage.world import sector_data

# power cut NAME: which version of each sector at risk survives, and whether write frames still in flight reach the server
SURVIVORS = {None: (False, False), "oldest": (False, False), "newest": (True, False), "oldest-delivered": (False, True), "newest-delivered": (True, True)}
LINKS = {"aoe": (AoeLink, CoreAoeLink), "direct": (DirectLink, DirectLink)}
STATES = tuple(BlockState)
PHASES = tuple(Phase)
POLICIES = tuple(Policy)


# What the spec-versus-C storage runs did, for the summary at the end of a test run (conftest.py).
STATISTICS = {"AoE initiator": {"examples": 0, "events": 0, "seconds": 0.0}, "storage": {"examples": 0, "events": 0, "seconds": 0.0}}


COVERAGE_LINES: list[str] = []  # what the storage runs reached on each side, filled by the tests


def statistics_lines() -> list[str]:
    lines = list(COVERAGE_LINES)
    for name, s in STATISTICS.items():
        if s["seconds"]:
            lines.append(
                f"{name} spec vs C: {s['examples']} examples, {s['events']} events in {s['seconds']:.1f} s: "
                f"{s['examples'] / s['seconds']:.1f} examples/s, {s['events'] / s['seconds']:.0f} events/s"
            )
    return lines


class Divergence(AssertionError):
    """The spec and the C core disagree, or an expectation written in the trace does not hold."""


@dataclass
class StorageTraceWorld:
    policy: str = "install"
    link: str = "aoe"
    last_result: object = None
    events: list = field(default_factory=list)
    after_power_cut: bool = False

    def __post_init__(self):
        spec_link, core_link = LINKS[self.link]
        self.pair = Pair(preset=TESTS, policy=Policy(self.policy), link_types=(spec_link, core_link))

    def both(self, action):
        try:
            return self.pair.both(action)
        except AssertionError as error:
            raise Divergence(f"after line {len(self.events)} ({self.events[-1].line()}): {error}") from error

    def apply(self, event) -> None:
        self.events.append(event)
        after_power_cut, self.after_power_cut = self.after_power_cut, False
        match event:
            case ev.GuestRequest("read", (lba, count)):
                self.both(lambda w: w.start(ReadSectors(lba, count)))
            case ev.GuestRequest("write", (lba, count, version)):
                self.both(lambda w: w.start(WriteSectors(lba, sector_data(lba, count, version))))
            case ev.GuestRequest("flush", ()):
                self.both(lambda w: w.start(Flush()))
            case ev.GuestRequest("poll", ()):
                outcome = self.both(lambda w: w.poll())
                if outcome[1] is not None:
                    self.last_result = outcome[1]
            case ev.DiskDone(request_id, ok, _):
                if request_id not in self.pair.spec.local.pending:
                    raise ValueError(f"`{event.line()}`: no local-disk request {request_id} is pending")
                self.both(lambda w: w.local.complete(request_id, ok))
            case ev.Network("deliver" | "drop" as action, (index,)):
                self.both(lambda w: w.complete_remote(index, action == "deliver"))
            case ev.Network("duplicate", (index,)) if self.link == "aoe":
                self.both(lambda w: w.link.duplicate(index))
            case ev.Tick(count):
                self.both(lambda w: w.tick(count))
            case ev.PowerCut(survivors) if survivors in SURVIVORS:
                newest, delivered = SURVIVORS[survivors]
                self.both(lambda w: w.power_cut(lambda lba, versions: versions - 1 if newest else 0, delivered))
                self.after_power_cut = True
            case ev.Restart() if after_power_cut:
                pass
            case ev.PolicyChange("passthrough"):
                self.both(lambda w: w.devirtualize() if w.manager.may_devirtualize() else w.manager.devirtualize())
            case ev.PolicyChange(name):
                self.both(lambda w: w.manager.request_policy(Policy(name)))
            case ev.Server("crash"):
                self.both(lambda w: w.server_crash())
            case ev.Expect(name, value):
                self.expect(name, value)
            case _:
                raise ValueError(f"the storage world does not model `{event.line()}`")
        self.pair.spec.check_invariants()
        self.pair.core.check_invariants()

    def observe(self, world, name: str) -> int:
        m = world.manager
        if name == "result_ok":
            return int(self.last_result is not None and self.last_result.ok)
        if name == "result_error":
            return self.last_result.error if self.last_result is not None else 0
        if name == "guest_busy":
            return int(world.guest_request is not None)
        if name == "phase":
            return PHASES.index(m.phase)
        if name == "policy":
            return POLICIES.index(m.policy)
        if name == "local_pending":
            return len(world.local.pending_ids())
        if name == "in_transit":
            return world.link.items()
        if name.startswith("block") and name[5:].isdigit():
            return STATES.index(m.blocks[int(name[5:])])
        if name.startswith("persisted") and name[9:].isdigit():
            return int(int(name[9:]) in m.persisted)
        raise ValueError(f"the storage world has no observable `{name}`")

    def expect(self, name: str, value: int) -> None:
        for side, world in (("spec", self.pair.spec), ("C", self.pair.core)):
            seen = self.observe(world, name)
            if seen != value:
                raise Divergence(f"line {len(self.events)}: {side} has {name} = {seen}, the trace expects {value}")


def replay(events: list) -> StorageTraceWorld:
    """Apply a trace's events to a fresh pair of worlds; config lines come first."""
    config = {}
    body = []
    for event in events:
        if isinstance(event, ev.Config) and not body:
            if event.key not in ("policy", "link"):
                raise ValueError(f"the storage world has no parameter `{event.key}`")
            config[event.key] = event.value
        else:
            body.append(event)
    world = StorageTraceWorld(**config)
    for event in body:
        world.apply(event)
    return world
