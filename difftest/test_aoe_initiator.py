"""The C AoE initiator against spec/aoe's initiator: the same events, the same frames and completions.

Both initiators talk to one spec target through a wire the test controls: every response waits in
transit until a rule delivers it (in any order, perhaps twice, perhaps corrupted) or drops it; time
passes in ticks of any size. After every step the frames each side sends, the completions, the
transmissions in flight, the window, the count of ignored frames and the next timer must be equal,
and one_write_in_flight_per_sector must hold on both.
"""

import os
import time

from hypothesis import Phase, event, example, given, note, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from difftest.binding.aoe import MAX_REQUESTS, CoreAoeInitiator
from difftest.mutation.runner import NO_SHRINK_ENV
from difftest.storage_trace_world import STATISTICS
from spec.aoe.constants import SECTOR_BYTES
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.initiator import AoeInitiator, InitiatorConfig, Kind, Timing
from spec.aoe.target import AoeTarget, Port, TargetConfig, TargetState
from spec.invariants import check, one_write_in_flight_per_sector

TARGET_MAC = bytes.fromhex("0200000000aa")
OUR_MAC = bytes.fromhex("020000000001")
OTHER_MAC = bytes.fromhex("020000000002")
SHELF, SLOT = 5, 1
SECTORS = 24  # the target's disk: LBAs up to SECTORS + 4 reach past its end (IDNF)
TIMING = Timing(initial_rto=100, min_rto=10, max_rto=800, deadline=3000, max_frame_age=40)
MTUS = (548, 1060, 1500, 2084)  # 1, 2, 2 and 4 sectors per frame
TARGET_MTUS = (500, 548, 1060, 1572, 9000)  # advertises 0 (that is, 2), 1, 2, 3 and 17 sectors


def tally(text: str) -> None:
    """A coverage event when Hypothesis runs the machine; nothing when a plain test replays a case."""
    try:
        event(text)
    except InvalidArgument:
        pass


def outcome(call):
    """The value of a call, or the fact that it refused its arguments: both sides must agree."""
    try:
        return ("ok", call())
    except ValueError:
        return ("refused",)


def corrupt(frame: bytes, how: int, position: int) -> bytes:
    """A damaged copy: truncated, a byte flipped, readdressed to another station, or short of its last sector."""
    if how == 3:
        return frame[: max(0, len(frame) - 1 - position % SECTOR_BYTES)]
    if how == 0:
        return frame[: position % len(frame)]
    if how == 1:
        at = position % len(frame)
        return frame[:at] + bytes([frame[at] ^ 0xFF]) + frame[at + 1 :]
    return OTHER_MAC + frame[6:]


class AoeInitiatorComparison(RuleBasedStateMachine):
    @initialize(
        mtu=st.sampled_from(MTUS),
        target_mtu=st.sampled_from(TARGET_MTUS),
        buffer_count=st.integers(0, 5),
        max_window=st.integers(0, 6),
        epoch_token=st.sampled_from([b"", b"storvisor boot 1"]),
    )
    def start(self, mtu, target_mtu, buffer_count, max_window, epoch_token):
        config = InitiatorConfig(OUR_MAC, SHELF, SLOT, mtu=mtu, max_window=max_window, timing=TIMING, epoch_token=epoch_token)
        self.spec = AoeInitiator(config)
        self.core = CoreAoeInitiator(config)
        self.target = AoeTarget(TargetConfig(SHELF, SLOT, buffer_count=buffer_count), MemoryDurableStore(SECTORS))
        self.port = Port(TARGET_MAC, target_mtu)
        self.wire: list[bytes] = []
        self.now = 0
        self.sequence = 0
        self.events = 0
        self.started = time.perf_counter()
        STATISTICS["AoE initiator"]["examples"] += 1
        self.exchange()

    def teardown(self):
        if hasattr(self, "spec"):
            STATISTICS["AoE initiator"]["events"] += self.events
            STATISTICS["AoE initiator"]["seconds"] += time.perf_counter() - self.started

    def exchange(self) -> None:
        """Compare what both sides sent and completed, then carry the spec's frames to the target."""
        self.events += 1
        sent = self.spec.take_outgoing()
        assert self.core.take_outgoing() == sent, "the C initiator sent other frames"
        spec_done, core_done = self.spec.take_completions(), self.core.take_completions()
        assert core_done == spec_done, "the C initiator completed other requests"
        for completion in spec_done:
            tally(f"completion ok={completion.ok} ata_error={completion.ata_error:#x} aoe_error={completion.aoe_error}")
        for frame in sent:
            self.wire.extend(self.target.process_frame(frame, self.port))

    # Requests, within the C initiator's documented capacity (test_a_full_request_table_refuses_clearly)

    def room(self) -> bool:
        return len(self.spec.requests) < MAX_REQUESTS

    @precondition(room)
    @rule(lba=st.one_of(st.integers(0, 3), st.integers(0, SECTORS + 4)), count=st.integers(-1, 7))
    def submit_read(self, lba, count):
        result = outcome(lambda: self.spec.submit_read(lba, count))
        assert outcome(lambda: self.core.submit_read(lba, count)) == result
        tally(f"submit read {result[0]}")
        self.exchange()

    @precondition(room)
    @rule(lba=st.one_of(st.integers(0, 3), st.integers(0, SECTORS + 4)), count=st.integers(1, 7), odd_bytes=st.sampled_from([0] * 8 + [1, -1]))
    def submit_write(self, lba, count, odd_bytes):
        self.sequence += 1
        data = bytes([self.sequence % 256]) * (count * SECTOR_BYTES + odd_bytes)
        result = outcome(lambda: self.spec.submit_write(lba, data))
        assert outcome(lambda: self.core.submit_write(lba, data)) == result
        tally(f"submit write {result[0]}")
        self.exchange()

    @precondition(room)
    @rule()
    def submit_flush(self):
        assert self.core.submit_flush() == self.spec.submit_flush()
        self.exchange()

    # The network

    def receive(self, frame: bytes) -> None:
        self.spec.receive(frame, self.now)
        self.core.receive(frame, self.now)
        self.exchange()

    @precondition(lambda self: self.wire)
    @rule(index=st.integers(0, 1 << 16), duplicate=st.booleans())
    def deliver(self, index, duplicate):
        """Any frame in transit arrives next; a duplicate leaves a copy behind."""
        frame = self.wire[index % len(self.wire)] if duplicate else self.wire.pop(index % len(self.wire))
        tally("deliver duplicate" if duplicate else "deliver")
        self.receive(frame)

    @precondition(lambda self: self.wire)
    @rule(index=st.integers(0, 1 << 16))
    def drop(self, index):
        self.wire.pop(index % len(self.wire))

    @precondition(lambda self: self.wire)
    @rule(index=st.integers(0, 1 << 16), how=st.integers(0, 3), position=st.integers(0, 1 << 16))
    def deliver_corrupted(self, index, how, position):
        tally(f"deliver corrupted {how}")
        self.receive(corrupt(self.wire[index % len(self.wire)], how, position))

    @rule(rounds=st.integers(1, 6), reverse=st.booleans())
    def deliver_everything(self, rounds, reverse):
        """A healthy stretch: every frame in transit arrives (oldest or newest first), a tick passes."""
        for _ in range(rounds):
            frames, self.wire = self.wire, []
            for frame in reversed(frames) if reverse else frames:
                self.receive(frame)
            self.now += 1
            self.spec.tick(self.now)
            self.core.tick(self.now)
            self.exchange()

    def read_answers(self) -> list[bytes]:
        return [f for f in self.wire if len(f) > 36 + SECTOR_BYTES]

    @precondition(lambda self: self.read_answers())
    @rule(index=st.integers(0, 1 << 16), missing=st.integers(1, SECTOR_BYTES))
    def deliver_answer_missing_data(self, index, missing):
        """A read answer short of part of its last sector: ignored, the retransmission will come."""
        answers = self.read_answers()
        self.receive(answers[index % len(answers)][:-missing])

    @rule(frame=st.binary(max_size=64))
    def deliver_noise(self, frame):
        self.receive(frame)

    @rule()
    def target_restart(self):
        """The target crashes and comes back: its cache and its config string (the epoch token) are gone."""
        self.target.store.crash()
        self.target.state = TargetState()

    @rule(config=st.sampled_from([b"", b"storvisor boot 1 and more", b"another boot"]))
    def another_initiator_claims_the_target(self, config):
        """Another station force-sets the config string, perhaps to one that merely starts with our token."""
        self.target.state.config_string = config

    @rule(available=st.booleans())
    def target_availability(self, available):
        """An unavailable target answers AoE error 3 (DEVICE_UNAVAILABLE)."""
        self.target.state.available = available

    # Time

    @rule(elapsed=st.one_of(st.integers(0, 60), st.integers(0, 4000)))
    def tick(self, elapsed):
        self.now += elapsed
        self.spec.tick(self.now)
        self.core.tick(self.now)
        self.exchange()

    @invariant()
    def same_observable_state(self):
        if not hasattr(self, "spec"):
            return
        in_flight = self.spec.in_flight()
        assert self.core.in_flight() == in_flight
        assert self.core.window() == self.spec.window()
        assert self.core.ignored_frames == self.spec.ignored_frames
        assert self.core.target_restarts == self.spec.target_restarts
        assert self.core.next_timer() == self.spec.next_timer()
        for side in (in_flight, self.core.in_flight()):
            writes = [(lba, count) for _, kind, lba, count in side if kind is Kind.WRITE]
            check("one_write_in_flight_per_sector", one_write_in_flight_per_sector(writes), repr(writes))
        tally(f"window {self.spec.window()} in flight {len(in_flight)}")


TestAoeInitiatorComparison = AoeInitiatorComparison.TestCase
TestAoeInitiatorComparison.settings = settings(
    max_examples=10_000 if settings.default.max_examples >= 5000 else settings.default.max_examples,  # deep: ≥ 10,000 sequences
    phases=[p for p in Phase if p is not Phase.shrink or os.environ.get(NO_SHRINK_ENV) != "1"],  # mutants need a failure, not its smallest form
)


def test_refused_arguments_are_refused_by_both():
    config = InitiatorConfig(OUR_MAC, SHELF, SLOT, timing=TIMING)
    spec, core = AoeInitiator(config), CoreAoeInitiator(config)
    for call in (
        lambda i: i.submit_read(0, 0),
        lambda i: i.submit_read(1 << 48, 1),
        lambda i: i.submit_write(0, b""),
        lambda i: i.submit_write(0, b"x" * 513),
        lambda i: i.submit_write((1 << 48) - 1, bytes(1024)),
    ):
        assert outcome(lambda: call(spec)) == outcome(lambda: call(core)) == ("refused",)


def test_time_running_backwards_is_a_bug_on_both_sides():
    config = InitiatorConfig(OUR_MAC, SHELF, SLOT, timing=TIMING)
    for initiator in (AoeInitiator(config, now=10), CoreAoeInitiator(config, now=10)):
        try:
            initiator.tick(9)
        except AssertionError:
            continue
        raise AssertionError("tick accepted a time in the past")


@given(rtts=st.lists(st.integers(0, 5000), min_size=1, max_size=20))
@example(rtts=[0, 7])  # a negative delta: floor division, not C's truncation
def test_retransmission_timeout_follows_the_spec_estimator(rtts):
    """Every round trip is a sample; the next transmission's timeout must match after each one."""
    config = InitiatorConfig(OUR_MAC, SHELF, SLOT, timing=Timing(initial_rto=100, min_rto=1, max_rto=10**9))
    target = AoeTarget(TargetConfig(SHELF, SLOT, buffer_count=1), MemoryDurableStore(4))
    spec, core = AoeInitiator(config), CoreAoeInitiator(config)
    now = 0
    for rtt in rtts:
        frames = spec.take_outgoing()
        assert core.take_outgoing() == frames
        note(f"rtt {rtt}")
        now += rtt
        for response in (r for f in frames for r in target.process_frame(f, Port(TARGET_MAC, 1500))):
            spec.receive(response, now)
            core.receive(response, now)
        spec.submit_read(0, 1)
        core.submit_read(0, 1)
        assert core.next_timer() == spec.next_timer()


def test_a_retransmitted_write_refreshes_its_fence_for_next_timer():
    """Shrunk by the state machine: the C side kept the first transmission's fence as the next timer,
    where the spec keeps one fence per sector, moved to the retransmission's."""
    machine = AoeInitiatorComparison()
    machine.start(mtu=548, target_mtu=500, buffer_count=0, max_window=0, epoch_token=b"")
    machine.tick(elapsed=100)
    machine.deliver(index=1, duplicate=False)
    machine.submit_write(lba=0, count=1, odd_bytes=0)
    machine.tick(elapsed=21)
    machine.same_observable_state()


def test_with_an_epoch_token_a_flush_after_a_target_restart_fails_on_both_sides():
    """spec/aoe/README.md, "Target restarts and the epoch token": FLUSH CACHE, a Query Config READ that no
    longer finds our token, a FORCE_SET that claims the target again, and the flush fails with ABRT."""
    machine = AoeInitiatorComparison()
    machine.start(mtu=1500, target_mtu=1500, buffer_count=4, max_window=4, epoch_token=b"storvisor boot 1")
    machine.deliver_everything(rounds=2, reverse=False)
    machine.submit_write(lba=0, count=1, odd_bytes=0)
    machine.submit_flush()
    machine.deliver_everything(rounds=4, reverse=False)
    assert machine.spec.target_restarts == 0
    machine.submit_write(lba=1, count=1, odd_bytes=0)
    machine.deliver_everything(rounds=2, reverse=False)
    machine.target_restart()
    flush = machine.spec.next_request_id
    machine.submit_flush()
    failed = []
    for _ in range(4):
        machine.wire, frames = [], machine.wire
        for frame in frames:
            machine.spec.receive(frame, machine.now)
            machine.core.receive(frame, machine.now)
        machine.spec.tick(machine.now)  # a submission only queues: frames leave when the initiator is given the time
        machine.core.tick(machine.now)
        sent = machine.spec.take_outgoing()
        assert machine.core.take_outgoing() == sent
        done = machine.spec.take_completions()
        assert machine.core.take_completions() == done
        failed += [c for c in done if c.request_id == flush and not c.ok]
        machine.wire = [r for f in sent for r in machine.target.process_frame(f, machine.port)]
        machine.same_observable_state()
    assert machine.spec.target_restarts == machine.core.target_restarts == 1
    assert failed and failed[0].ata_error == 0x04


def test_a_read_answer_short_of_its_last_sector_is_ignored_on_both_sides():
    """AoEr11 §3.1: a read answer carries count·512 bytes; one that lacks part of them is not the answer."""
    machine = AoeInitiatorComparison()
    machine.start(mtu=1500, target_mtu=1500, buffer_count=4, max_window=4, epoch_token=b"")
    machine.deliver_everything(rounds=2, reverse=False)
    machine.submit_read(lba=0, count=2)
    machine.tick(elapsed=0)
    for missing in (1, 511):
        machine.deliver_answer_missing_data(index=0, missing=missing)
        machine.same_observable_state()
    assert machine.spec.ignored_frames == machine.core.ignored_frames >= 2
    assert machine.spec.in_flight(), "the read still waits for its answer"
    machine.deliver_everything(rounds=1, reverse=False)
    machine.same_observable_state()
    assert not machine.spec.in_flight()


def test_a_full_request_table_refuses_clearly_and_loses_nothing():
    """C only (the spec's table is unbounded): the request after AOE_MAX_REQUESTS unfinished ones is refused
    with a clear error; the earlier ones still complete once the target answers."""
    config = InitiatorConfig(OUR_MAC, SHELF, SLOT, timing=TIMING)
    core = CoreAoeInitiator(config)
    ids = [core.submit_flush() for _ in range(MAX_REQUESTS)]
    try:
        core.submit_flush()
    except ValueError as error:
        assert "full" in str(error)
    else:
        raise AssertionError("the C initiator took more requests than its tables hold")
    target = AoeTarget(TargetConfig(SHELF, SLOT, buffer_count=8), MemoryDurableStore(SECTORS))
    done = []
    for now in range(1, 3 * MAX_REQUESTS):  # one flush at a time: each waits for the one before
        for frame in core.take_outgoing():
            for answer in target.process_frame(frame, Port(TARGET_MAC, 1500)):
                core.receive(answer, now)
        done += core.take_completions()
        if len(done) == len(ids):
            break
        core.tick(now)
    assert sorted(c.request_id for c in done if c.ok) == ids
