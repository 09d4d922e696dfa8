"""The C storage manager and C AoE initiator against spec/storage and spec/aoe, event by event.

The rules are those of the spec's own stateful test (tests/storage/test_storage_stateful.py): guest
reads, writes and flushes on colliding LBAs, local-disk completions in any order and failing, frames
delivered, lost and duplicated, ticks, a silent server, client power cuts with restart, server crashes,
policy changes and de-virtualization. Every rule runs in both worlds (difftest/storage_worlds.py); after
every step the managers' states, the wire, the media and the guest's results must be equal, and the
invariant catalogue holds in both. The single test then asserts that both sides took every block
transition and every policy transition.
"""

import hashlib
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from hypothesis import Phase, event, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from difftest.mutation.runner import NO_SHRINK_ENV, WRITE_CORPUS_ENV
from difftest.storage_trace_world import COVERAGE_LINES, STATISTICS, StorageTraceWorld
from difftest.trace import events as ev
from difftest.trace import format_trace
from difftest.binding.storage import CoreStorageManager
from difftest.storage_worlds import Pair, comparable_spec_view, core_view
from spec import invariants as inv
from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, StoreResult, WriteSectors
from spec.storage.block_state import BLOCK_TRANSITIONS
from spec.storage.devices import Completion
from spec.ata.constants import ABRT as ERROR_ABRT
from spec.ata.constants import IDNF as ERROR_IDNF
from spec.storage.parameters import TESTS
from spec.storage.policy import POLICY_TRANSITIONS, Policy
from tests.storage.links import TIMING, DirectLink
from tests.storage.world import sector_data

GEOMETRY = TESTS.geometry
REACHED = {"spec": Counter(), "C": Counter()}
CORPUS = Path(__file__).parent / "corpus" / "storage"
DEEP_EXAMPLES = 10_000  # the deep profile runs at least this many sequences
LAST_FAILURE = None  # (config lines, events) of the last sequence a step failed in: after shrinking, the shrunk one


def observer(side: str):
    def observe(kind: str, detail: tuple) -> None:
        REACHED[side][(kind, detail)] += 1
        if side == "C" and currently_in_test_context():
            event(f"{kind}: " + " -> ".join(getattr(d, "value", str(d)) for d in detail))

    return observe


class StorageComparison(RuleBasedStateMachine):
    """Every rule is a trace line applied to the storage trace world, so every sequence is a trace."""

    lbas = Bundle("lbas")

    @initialize(policy=st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL]))
    def boot(self, policy):
        self.world = StorageTraceWorld(policy=policy.value, link="aoe")
        self.pair = self.world.pair
        self.pair.spec.manager.observer = observer("spec")
        self.pair.core.manager.observer = observer("C")
        self.pair.spec.observer, self.pair.core.observer = observer("spec"), observer("C")
        self.config = [ev.Config("policy", policy.value), ev.Config("link", "aoe")]
        self.version = 0
        self.started = time.perf_counter()
        STATISTICS["storage"]["examples"] += 1

    def teardown(self):
        if hasattr(self, "world"):
            STATISTICS["storage"]["events"] += len(self.world.events)
            STATISTICS["storage"]["seconds"] += time.perf_counter() - self.started

    def apply(self, event) -> None:
        """One line on both sides. A failure keeps the sequence; a timeout or an interrupt (not an
        Exception) does not, as the sequence it stops is unfinished, not failing."""
        global LAST_FAILURE
        try:
            self.world.apply(event)
        except Exception:
            LAST_FAILURE = (self.config, list(self.world.events))
            raise

    @rule(target=lbas, lba=st.integers(0, GEOMETRY.data_sectors - 1))
    def add_lba(self, lba):
        return lba

    @rule(target=lbas, block=st.integers(0, GEOMETRY.block_count - 1))
    def add_block_start(self, block):
        """A block's first sector: whole-block writes there skip the fill (dm-clone's shortcut)."""
        return GEOMETRY.first_lba(block)

    def idle(self):
        return self.pair.spec.guest_request is None

    @precondition(idle)
    @rule(lba=lbas, count=st.integers(1, 2 * GEOMETRY.sectors_per_block + 1))
    def guest_read(self, lba, count):
        self.apply(ev.GuestRequest("read", (lba, count)))
        self.expect_out_of_range(lba, count)

    @precondition(idle)
    @rule(lba=lbas, count=st.one_of(st.just(GEOMETRY.sectors_per_block), st.integers(1, 2 * GEOMETRY.sectors_per_block + 1)))
    def guest_write(self, lba, count):
        self.version += 1
        self.apply(ev.GuestRequest("write", (lba, count, self.version)))
        self.expect_out_of_range(lba, count)

    def expect_out_of_range(self, lba, count):
        """A request past the capacity fails at once with IDNF on both sides (reserved_region_hidden)."""
        if lba + count > GEOMETRY.data_sectors:
            self.apply(ev.GuestRequest("poll"))
            self.apply(ev.Expect("result_error", ERROR_IDNF))

    @precondition(idle)
    @rule()
    def guest_flush(self):
        self.apply(ev.GuestRequest("flush"))

    @precondition(lambda self: not self.idle())
    @rule()
    def poll(self):
        self.apply(ev.GuestRequest("poll"))

    @precondition(lambda self: self.pair.spec.local.pending_ids())
    @rule(index=st.integers(0, 7), ok=st.booleans())
    def complete_local(self, index, ok):
        ids = self.pair.spec.local.pending_ids()
        self.apply(ev.DiskDone(ids[index % len(ids)], ok, 0 if ok else ERROR_ABRT))

    def pending_guest_writes(self) -> list[int]:
        manager, pending = self.pair.spec.manager, self.pair.spec.local.pending
        return [rid for rid, o in manager.local_purpose.items() if o.purpose[0] == "guest" and o.kind is WriteSectors and rid in pending]

    @precondition(lambda self: self.pending_guest_writes())
    @rule()
    def fail_guest_local_write(self):
        """The local disk fails the guest's write: a whole block is lost, a present one stays, cache drops it."""
        self.apply(ev.DiskDone(self.pending_guest_writes()[0], False, ERROR_ABRT))

    @precondition(lambda self: self.pair.spec.link.items())
    @rule(index=st.integers(0, 7), ok=st.booleans())
    def deliver_or_drop_frame(self, index, ok):
        self.apply(ev.Network("deliver" if ok else "drop", (index,)))

    @precondition(lambda self: self.pair.spec.link.items())
    @rule(index=st.integers(0, 7))
    def duplicate_frame(self, index):
        self.apply(ev.Network("duplicate", (index,)))

    @precondition(lambda self: self.pair.spec.link.items())
    @rule()
    def server_silent(self):
        """Every frame is lost until the initiator's deadline passes: what was outstanding fails."""
        while self.pair.spec.link.items():
            self.apply(ev.Network("drop", (0,)))
        self.apply(ev.Tick(TIMING.deadline + 1))

    @rule(ticks=st.sampled_from([1, 5, 30, 500]))
    def tick(self, ticks):
        self.apply(ev.Tick(ticks))

    @rule()
    def settle(self):
        """Let everything in flight finish in order: time passes without faults (tests/storage/world.py)."""
        for _ in range(2000):
            self.apply(ev.Tick(1))
            if not self.idle():
                self.apply(ev.GuestRequest("poll"))
            if self.pair.spec.local.pending_ids():
                self.apply(ev.DiskDone(self.pair.spec.local.pending_ids()[0]))
            elif self.pair.spec.link.items():
                self.apply(ev.Network("deliver", (0,)))
            elif self.idle():
                self.apply(ev.Tick(1))
                if not self.pair.spec.local.pending_ids() and not self.pair.spec.link.items():
                    return
        raise AssertionError("the worlds did not settle")

    @precondition(lambda self: self.pair.spec.local.pending_ids() or self.pair.spec.link.items())
    @rule(remote=st.booleans())
    def stale_completion(self, remote):
        """A completion nobody is waiting for changes nothing (stale_response_ignored), on both sides."""
        stale = Completion(10**9 + self.version, True, bytes(SECTOR_BYTES))
        for world, view in ((self.pair.spec, comparable_spec_view), (self.pair.core, core_view)):
            before = view(world.manager)
            (world.manager.on_remote_completion if remote else world.manager.on_local_completion)(stale)
            inv.check("stale_response_ignored", inv.stale_response_ignored(before, view(world.manager)))

    @rule(survivors=st.sampled_from(["oldest", "newest", "oldest-delivered", "newest-delivered"]))
    def client_power_cut(self, survivors):
        self.apply(ev.PowerCut(survivors))
        self.apply(ev.Restart())
        event("client power cut")

    @precondition(lambda self: not isinstance(self.pair.spec.guest_request, WriteSectors))
    @rule()
    def server_crash(self):
        self.apply(ev.Server("crash"))

    @rule(wanted=st.sampled_from([Policy.NETWORK, Policy.CACHE, Policy.INSTALL]))
    def change_policy(self, wanted):
        self.apply(ev.PolicyChange(wanted.value))

    @rule()
    def devirtualize(self):
        """`policy passthrough`: de-virtualize if the predicate holds, else both refuse."""
        self.apply(ev.PolicyChange("passthrough"))


@pytest.mark.parametrize("through_core_store", [False, True], ids=["direct", "core_store"])
@pytest.mark.parametrize("policy", [Policy.NETWORK, Policy.CACHE, Policy.INSTALL])
def test_every_policy_serves_reads_writes_and_flushes_as_the_spec(policy, through_core_store, monkeypatch):
    """A fixed sequence over the whole disk in each policy, ending in de-virtualization for install; with
    `core_store`, the C manager gets its guest requests through struct core_store, as from the ATA device."""
    monkeypatch.setattr(CoreStorageManager, "through_core_store", through_core_store)
    pair = Pair(preset=TESTS, policy=policy)
    pair.both(lambda w: w.settle())
    for version, (lba, count) in enumerate([(0, 4), (3, 6), (30, 2), (8, 8), (1, 1)], start=1):
        pair.both(lambda w: w.run(ReadSectors(lba, count)))
        pair.both(lambda w: w.run(WriteSectors(lba, sector_data(lba, count, version))))
    pair.both(lambda w: w.run(Flush()))
    pair.both(lambda w: w.settle())
    pair.spec.check_invariants()
    pair.core.check_invariants()
    if policy is Policy.INSTALL:
        assert pair.both(lambda w: w.devirtualize())[0] == "ok"


def pending_local(world, kind, purpose) -> int:
    """The id of a local-disk request of this kind and purpose that the disk has not completed."""
    m = world.manager
    return next(rid for rid, o in m.local_purpose.items() if o.kind is kind and o.purpose[0] == purpose and rid in world.local.pending)


def step_until(pair: Pair, ready) -> None:
    """Complete requests in order, one at a time, until `ready(spec world)` holds."""
    for _ in range(1000):
        pair.both(lambda w: w.tick(1))
        if ready(pair.spec):
            return
        if pair.spec.local.pending_ids():
            pair.both(lambda w: w.complete_local(0))
        elif pair.spec.link.items():
            pair.both(lambda w: w.complete_remote(0))
    raise AssertionError("the walk did not reach its next state")


def walk_every_transition() -> None:
    """A fixed walk through every block and policy transition, on both sides, over a direct server."""
    pair = Pair(link_types=(DirectLink, DirectLink), preset=TESTS, policy=Policy.NETWORK)
    for world, side in ((pair.spec, "spec"), (pair.core, "C")):
        world.manager.observer = observer(side)
    pair.both(lambda w: w.settle())
    pair.both(lambda w: w.manager.request_policy(Policy.CACHE))  # network -> cache
    pair.both(lambda w: w.settle())
    pair.both(lambda w: w.run(ReadSectors(0, 4)))  # copy-on-read: block 0 absent -> fetching -> present
    pair.both(lambda w: w.settle())
    pair.both(lambda w: w.manager.request_policy(Policy.NETWORK))  # cache -> network: every block invalidated
    pair.both(lambda w: w.settle())
    pair.both(lambda w: w.manager.request_policy(Policy.INSTALL))  # network -> install
    step_until(pair, lambda w: w.manager.phase.value == "running")
    pair.both(lambda w: w.run(WriteSectors(28, sector_data(28, 4, 1))))  # block 7, whole: absent -> writing -> present
    pair.both(lambda w: w.start(WriteSectors(24, sector_data(24, 4, 2))))  # block 6, whole, and it fails
    step_until(pair, lambda w: any(o.purpose[0] == "guest" and rid in w.local.pending for rid, o in w.manager.local_purpose.items()))
    request_id = pending_local(pair.spec, WriteSectors, "guest")
    pair.both(lambda w: w.local.complete(request_id, False))  # writing -> absent
    pair.both(lambda w: w.poll())
    for version, ok in ((3, True), (4, False)):  # a present block written, then a failed write to it
        pair.both(lambda w: w.start(WriteSectors(29, sector_data(29, 1, version))))
        step_until(pair, lambda w: any(o.purpose[0] == "guest" and rid in w.local.pending for rid, o in w.manager.local_purpose.items()))
        request_id = pending_local(pair.spec, WriteSectors, "guest")
        pair.both(lambda w: w.local.complete(request_id, ok))
        pair.both(lambda w: w.poll())
    step_until(pair, lambda w: w.link.items())
    pair.both(lambda w: w.complete_remote(0, False))  # a fill's server read fails: fetching -> absent
    pair.both(lambda w: w.settle())
    pair.both(lambda w: w.run(Flush()))
    pair.both(lambda w: w.settle())
    pair.both(lambda w: w.devirtualize())  # install -> passthrough
    cache = Pair(link_types=(DirectLink, DirectLink), preset=TESTS, policy=Policy.CACHE)
    for world, side in ((cache.spec, "spec"), (cache.core, "C")):
        world.manager.observer = observer(side)
    cache.both(lambda w: w.settle())
    cache.both(lambda w: w.manager.request_policy(Policy.INSTALL))  # cache -> install
    cache.both(lambda w: w.settle())
    for world in (pair.spec, pair.core, cache.spec, cache.core):
        world.check_invariants()


def test_a_fixed_walk_through_every_transition_agrees():
    """The walk alone, first, so a fault it exposes is found in seconds (the mutation check runs -x)."""
    walk_every_transition()


def write_failure_trace() -> str | None:
    """Keep the last (shrunk) failing sequence as a corpus trace; returns its path."""
    if LAST_FAILURE is None or os.environ.get(WRITE_CORPUS_ENV) == "0":
        return None
    config, events = LAST_FAILURE
    text = format_trace(config + events, "Found by difftest/test_storage_manager.py; shrunk by Hypothesis.")
    CORPUS.mkdir(parents=True, exist_ok=True)
    path = CORPUS / ("shrunk-" + hashlib.sha256(text.encode()).hexdigest()[:12] + ".trace")
    path.write_text(text)
    return str(path)


def test_c_storage_manager_equals_the_spec_and_both_reach_every_transition():
    """Generated sequences, then the fixed walk; the union must take every block and policy transition."""
    global LAST_FAILURE
    LAST_FAILURE = None
    for counter in REACHED.values():
        counter.clear()
    profile = settings.default
    if os.environ.get(NO_SHRINK_ENV) == "1":
        profile = settings(profile, phases=[p for p in profile.phases if p is not Phase.shrink])
    machine_settings = settings(
        profile,
        max_examples=DEEP_EXAMPLES if profile.max_examples >= 5000 else profile.max_examples,
        stateful_step_count=2 * profile.stateful_step_count,
        derandomize=True,  # the coverage assertion below must not depend on the seed of the day
    )
    try:
        run_state_machine_as_test(StorageComparison, settings=machine_settings)
    except BaseException:
        path = write_failure_trace()
        if path:
            print(f"the failing trace is kept as {path}")
        raise
    walk_every_transition()
    for side, reached in REACHED.items():
        blocks = sum(("block", (t[0][0], t[0][1], t[1])) in reached for t in BLOCK_TRANSITIONS.items())
        policies = sum(("policy", t) in reached for t in POLICY_TRANSITIONS)
        COVERAGE_LINES.append(
            f"storage, {side}: {blocks}/{len(BLOCK_TRANSITIONS)} block transitions, {policies}/{len(POLICY_TRANSITIONS)} policy transitions, "
            f"{sum(n for (kind, _), n in reached.items() if kind == 'block')} block events"
        )
    for side, reached in REACHED.items():
        missing_blocks = [t for t in BLOCK_TRANSITIONS.items() if ("block", (t[0][0], t[0][1], t[1])) not in reached]
        missing_policies = [t for t in POLICY_TRANSITIONS if ("policy", t) not in reached]
        assert not missing_blocks, f"{side}: block transitions never reached: {missing_blocks}"
        assert not missing_policies, f"{side}: policy transitions never reached: {missing_policies}"




def test_a_request_beyond_the_c_initiators_tables_fails_with_abrt_instead_of_hanging():
    """C only (the spec's tables are unbounded): a 65536-sector read at two sectors per frame needs more
    fragments than the initiator holds; the guest's command fails with ABRT, and the next one works."""
    from model.local_disk import LocalDisk
    from spec.aoe.durable_store import MemoryDurableStore
    from spec.aoe.initiator import InitiatorConfig
    from spec.aoe.target import AoeTarget, TargetConfig
    from spec.storage.parameters import make_preset
    from tests.storage.links import CLIENT_MAC, MAJOR, MINOR, PORT

    from difftest.binding.aoe import CoreAoeInitiator

    preset = make_preset(sectors_per_block=8, block_count=1 << 14, max_in_flight=2)
    initiator = CoreAoeInitiator(InitiatorConfig(CLIENT_MAC, MAJOR, MINOR, timing=TIMING))
    target = AoeTarget(TargetConfig(MAJOR, MINOR), MemoryDurableStore(preset.geometry.data_sectors))

    def exchange(now):
        initiator.tick(now)  # a submission only queues: frames leave when the initiator is given the time
        for frame in initiator.take_outgoing():
            for answer in target.process_frame(frame, PORT):
                initiator.receive(answer, now)

    exchange(0)  # discovery: two sectors per frame at MTU 1500
    local = LocalDisk(preset.geometry.local_disk_sectors)
    manager = CoreStorageManager(preset, b"big disk", Policy.NETWORK, local, initiator)
    local.complete(local.pending_ids()[0])  # both map slots read
    manager.tick(1)
    manager.start(ReadSectors(0, 65536))
    assert manager.poll() is None  # planned and submitted: the initiator refuses it
    assert manager.poll() == StoreResult(False, error=ERROR_ABRT)
    manager.start(ReadSectors(0, 8))
    exchange(1)
    manager.tick(2)
    exchange(2)
    result = manager.poll()
    assert result is not None and result.ok and len(result.data) == 8 * SECTOR_BYTES
