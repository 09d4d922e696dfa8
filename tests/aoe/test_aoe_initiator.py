"""The spec initiator against the spec target, frame by frame, with time handed in explicitly."""

from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from spec.aoe.constants import BROADCAST_MAC, SECTOR_BYTES, AoeCommand, AoeError, AtaErrorBit, ConfigCommand, HeaderFlag
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.frames import AoeHeader, EthernetHeader, Frame, OpaqueArgument, decode_frame, encode_frame
from spec.aoe.initiator import AoeInitiator, Completion, InitiatorConfig, Kind, Timing, one_write_in_flight_per_sector
from spec.aoe.rtt import RttEstimator
from spec.aoe.target import AoeTarget, Port, TargetConfig, TargetState
from tests.aoe.strategies import frames
from tests.aoe.target_helpers import HOST_A, SHELF, SLOT, TARGET_MAC

TIMING = Timing(initial_rto=100, min_rto=10, max_rto=1000, deadline=5000, max_frame_age=50)


class Bench:
    """One initiator wired straight to one target; the test decides which frames get through."""

    def __init__(self, buffer_count=4, mtu=1500, sectors=64, target_mtu=None):
        store = MemoryDurableStore(sectors)
        self.target = AoeTarget(TargetConfig(SHELF, SLOT, buffer_count=buffer_count), store)
        self.port = Port(TARGET_MAC, target_mtu or mtu)
        self.initiator = AoeInitiator(InitiatorConfig(HOST_A, SHELF, SLOT, mtu=mtu, timing=TIMING))
        self.now = 0

    def to_target(self, frames):
        return [r for f in frames for r in self.target.process_frame(f, self.port)]

    def deliver(self, responses):
        for r in responses:
            self.initiator.receive(r, self.now)

    def outgoing(self):
        """What the initiator sends at `now`: submissions only queue, frames leave when it is given the time."""
        self.initiator.tick(self.now)
        return self.initiator.take_outgoing()

    def exchange(self):
        """Carry every outgoing frame to the target and every answer back."""
        self.deliver(self.to_target(self.outgoing()))

    def run(self, rounds=20, step=1):
        for _ in range(rounds):
            self.exchange()
            self.now += step
            self.initiator.tick(self.now)
        return self.initiator.take_completions()


def discovered(**kw) -> Bench:
    bench = Bench(**kw)
    bench.exchange()
    assert bench.initiator.buffer_count is not None
    return bench


def sectors(*fills):
    return b"".join(bytes([f]) * SECTOR_BYTES for f in fills)


def test_discovery_learns_the_target_and_its_limits():
    bench = Bench(buffer_count=3, mtu=9000)
    (query,) = bench.outgoing()
    f = decode_frame(query)
    assert f.ethernet.destination == BROADCAST_MAC and f.header.command == AoeCommand.QUERY_CONFIG
    assert f.argument.ccmd == ConfigCommand.READ
    bench.deliver(bench.to_target([query]))
    assert bench.initiator.target_mac == TARGET_MAC
    assert bench.initiator.buffer_count == 3 and bench.initiator.max_sectors == 17


def test_requests_submitted_before_discovery_wait_for_it():
    bench = Bench()
    rid = bench.initiator.submit_read(0, 1)
    assert len(bench.outgoing()) == 1, "only the Query Config goes out"
    bench = Bench()
    rid = bench.initiator.submit_write(3, sectors(9))
    assert bench.run(3) == [Completion(rid, True)]


def test_write_then_read_through_the_target():
    bench = discovered()
    w = bench.initiator.submit_write(5, sectors(1, 2, 3, 4, 5))
    r = bench.initiator.submit_read(4, 7)
    done = bench.run(200)
    assert done[0] == Completion(w, True)
    assert done[1] == Completion(r, True, sectors(0, 1, 2, 3, 4, 5, 0))


@pytest.mark.parametrize("mtu, advertised_mtu, frames", [(1500, 1500, 3), (9000, 9000, 1), (9000, 1500, 3), (1500, 9000, 3)])
def test_requests_are_split_by_the_smaller_of_our_mtu_and_the_targets_maximum(mtu, advertised_mtu, frames):
    bench = discovered(mtu=mtu, target_mtu=advertised_mtu, buffer_count=16)
    bench.initiator.submit_write(0, sectors(*range(5)))
    sent = [decode_frame(f) for f in bench.outgoing()]
    assert len(sent) == frames
    assert sum(f.argument.sector_count for f in sent) == 5
    assert b"".join(f.argument.data for f in sent) == sectors(*range(5))


def test_window_is_capped_by_the_buffer_count():
    bench = discovered(buffer_count=2)
    ids = [bench.initiator.submit_read(i, 1) for i in range(6)]
    first = bench.outgoing()
    assert len(first) == 2 and len(bench.initiator.in_flight()) == 2
    bench.deliver(bench.to_target(first[:1]))
    third = bench.outgoing()
    assert len(third) == 1, "one answer frees one slot"
    bench.deliver(bench.to_target(first[1:] + third))
    done = bench.initiator.take_completions() + bench.run(10)
    assert [c.request_id for c in done] == ids and all(c.ok for c in done)


def test_retransmission_uses_a_new_tag_and_the_old_answer_is_stale():
    bench = discovered()
    rid = bench.initiator.submit_read(0, 1)
    (lost,) = bench.outgoing()
    bench.now = bench.initiator.estimator.rto()
    bench.initiator.tick(bench.now)
    (again,) = bench.outgoing()
    old, new = decode_frame(lost), decode_frame(again)
    assert old.header.tag != new.header.tag, "a retransmission carries a new tag"
    assert old.argument == new.argument
    bench.deliver(bench.to_target([lost]))
    assert bench.initiator.take_completions() == [], "the answer to the superseded tag changes nothing"
    assert bench.initiator.ignored_frames == 1
    bench.deliver(bench.to_target([again]))
    assert bench.initiator.take_completions() == [Completion(rid, True, sectors(0))]


def test_retransmission_timeouts_back_off():
    bench = discovered()
    bench.initiator.submit_read(0, 1)
    bench.outgoing()
    sends = []
    for t in range(1, 1000):
        bench.now = t
        if bench.outgoing():
            sends.append(t)
    gaps = [b - a for a, b in zip([0] + sends, sends)]
    assert gaps[:3] == [gaps[0], 2 * gaps[0], 4 * gaps[0]]


def test_one_write_per_sector_in_flight_and_fenced_until_old_copies_age_out():
    bench = discovered()
    first = bench.initiator.submit_write(7, sectors(1))
    second = bench.initiator.submit_write(7, sectors(2))
    other = bench.initiator.submit_write(8, sectors(3))
    sent = [decode_frame(f) for f in bench.outgoing()]
    assert [f.argument.lba for f in sent] == [7, 8], "the second write to sector 7 waits"
    assert one_write_in_flight_per_sector(bench.initiator)
    bench.deliver(bench.to_target([encode_frame(f) for f in sent]))
    assert {c.request_id for c in bench.initiator.take_completions()} == {first, other}
    assert bench.outgoing() == [], "a copy of the first write may still be travelling"
    bench.now = TIMING.max_frame_age
    bench.initiator.tick(bench.now)
    assert bench.outgoing() == [], "a copy of the first write may still land at exactly max_frame_age"
    bench.now = TIMING.max_frame_age + 1
    bench.initiator.tick(bench.now)
    (late,) = [decode_frame(f) for f in bench.outgoing()]
    assert late.argument.lba == 7 and late.argument.data == sectors(2)
    bench.deliver(bench.to_target([encode_frame(late)]))
    assert bench.initiator.take_completions() == [Completion(second, True)]


def test_a_flush_is_a_barrier():
    bench = discovered()
    bench.initiator.submit_write(1, sectors(1))
    flush = bench.initiator.submit_flush()
    bench.initiator.submit_read(1, 1)
    (write,) = bench.outgoing()
    bench.deliver(bench.to_target([write]))
    (flush_frame,) = bench.outgoing()
    assert decode_frame(flush_frame).argument.cmd_status == 0xE7
    assert bench.target.store.durable_sector(1) == sectors(0)
    bench.deliver(bench.to_target([flush_frame]))
    assert bench.target.store.durable_sector(1) == sectors(1), "the flush reached the medium"
    assert bench.initiator.take_completions()[-1] == Completion(flush, True)
    (read,) = bench.outgoing()
    assert decode_frame(read).argument.cmd_status == 0x24


def test_a_silent_target_fails_the_request_with_an_ata_error_at_the_deadline():
    bench = discovered()
    rid = bench.initiator.submit_read(0, 1)
    bench.outgoing()
    for t in range(1, TIMING.deadline):
        bench.initiator.tick(t)
    assert bench.initiator.take_completions() == []
    bench.initiator.tick(TIMING.deadline)
    assert bench.initiator.take_completions() == [Completion(rid, False, ata_error=AtaErrorBit.ABRT)]
    assert bench.initiator.in_flight() == []


def test_an_undiscovered_target_fails_requests_at_the_deadline():
    bench = Bench()
    rid = bench.initiator.submit_read(0, 1)
    bench.initiator.tick(TIMING.deadline)
    assert bench.initiator.take_completions() == [Completion(rid, False, ata_error=AtaErrorBit.ABRT)]


def test_stale_and_foreign_responses_change_nothing():
    bench = discovered()
    rid = bench.initiator.submit_read(0, 1)
    (frame,) = bench.outgoing()
    (answer,) = bench.to_target([frame])
    before = (bench.initiator.in_flight(), dict(bench.initiator.requests))
    tag = decode_frame(frame).header.tag
    bogus = [
        answer[:20] + (tag + 1).to_bytes(4, "big") + answer[24:],  # a tag not outstanding
        answer[:6] + bytes(6) + answer[12:],  # from another station
        frame,  # our own request looped back
        b"\x00" * 30,
    ]
    for b in bogus:
        bench.initiator.receive(b, bench.now)
    assert (bench.initiator.in_flight(), dict(bench.initiator.requests)) == before
    assert bench.initiator.take_completions() == []
    bench.initiator.receive(answer, bench.now)
    bench.initiator.receive(answer, bench.now)  # a duplicate of the answer
    assert bench.initiator.take_completions() == [Completion(rid, True, sectors(0))]


def test_an_ata_error_from_the_target_fails_the_request_with_its_error_register():
    bench = discovered(sectors=8)
    rid = bench.initiator.submit_read(7, 2)
    assert bench.run(3) == [Completion(rid, False, ata_error=AtaErrorBit.IDNF)]


def test_an_aoe_error_from_the_target_fails_the_request():
    bench = discovered()
    bench.target.state.available = False
    rid = bench.initiator.submit_write(0, sectors(1))
    (done,) = bench.run(3)
    assert done == Completion(rid, False, ata_error=AtaErrorBit.ABRT, aoe_error=AoeError.DEVICE_UNAVAILABLE)


def test_bad_submissions_are_refused_with_a_clear_error():
    initiator = AoeInitiator(InitiatorConfig(HOST_A, SHELF, SLOT))
    with pytest.raises(ValueError, match="at least one sector"):
        initiator.submit_read(0, 0)
    with pytest.raises(ValueError, match="whole number"):
        initiator.submit_write(0, b"x" * 100)
    with pytest.raises(ValueError, match="48-bit"):
        initiator.submit_read(2**48 - 1, 2)


def test_jacobson_karels_timeout():
    rtt = RttEstimator(initial_rto=500, min_rto=10, max_rto=400)
    assert rtt.rto() == 500, "before any sample"
    rtt.sample(40)
    assert (rtt.srtt, rtt.deviation, rtt.rto()) == (40, 20, 2 * 40 + 8 * 20)
    rtt.sample(80)
    assert (rtt.srtt, rtt.deviation) == (45, 25)
    assert rtt.rto() == min(400, 2 * 45 + 8 * 25)
    for _ in range(50):
        rtt.sample(0)
    assert rtt.rto() == 10, "clamped below"


def test_in_flight_reports_kinds():
    bench = discovered()
    bench.initiator.submit_write(0, sectors(1))
    bench.outgoing()
    assert [k for _, k, _, _ in bench.initiator.in_flight()] == [Kind.WRITE]


def test_an_answer_from_the_wrong_command_is_ignored():
    bench = discovered()
    bench.initiator.submit_read(0, 1)
    (frame,) = bench.outgoing()
    tag = decode_frame(frame).header.tag
    wrong = Frame(EthernetHeader(HOST_A, TARGET_MAC), AoeHeader(1, 8, 0, SHELF, SLOT, 3, tag), OpaqueArgument(b"\0\0"))
    bench.initiator.receive(encode_frame(wrong), 0)
    assert len(bench.initiator.in_flight()) == 1 and bench.initiator.take_completions() == []


def snapshot(initiator: AoeInitiator):
    """Everything a received frame could change, except the count of ignored frames."""
    return (
        initiator.in_flight(),
        sorted(initiator.requests),
        [(f.request.request_id, f.lba, f.count, f.tag) for f in initiator.pending],
        list(initiator.outgoing),
        list(initiator.completions),
        dict(initiator.write_fences),
        (initiator.estimator.srtt, initiator.estimator.deviation),
        (initiator.target_mac, initiator.buffer_count, initiator.max_sectors, initiator.next_tag),
    )


@given(frames(), st.booleans())
def test_stale_response_ignored(frame, addressed_to_us):
    """Invariant `stale_response_ignored`: a frame whose tag is not in flight changes nothing."""
    bench = discovered()
    bench.initiator.submit_write(0, sectors(1, 2, 3))
    bench.initiator.submit_read(4, 1)
    bench.outgoing()
    assume(frame.header.tag not in bench.initiator.outstanding)
    if addressed_to_us:  # a well-addressed answer from our target whose tag alone is wrong
        header = replace(frame.header, version=1, flags=HeaderFlag.RESPONSE, major=SHELF, minor=SLOT)
        frame = replace(frame, ethernet=EthernetHeader(HOST_A, TARGET_MAC), header=header)
    before = snapshot(bench.initiator)
    bench.initiator.receive(encode_frame(frame), bench.now)
    assert snapshot(bench.initiator) == before


TOKEN = b"initiator-boot-42"


def claimed(**kw) -> Bench:
    bench = Bench(**kw)
    bench.initiator = AoeInitiator(InitiatorConfig(HOST_A, SHELF, SLOT, timing=TIMING, epoch_token=TOKEN))
    (claim,) = bench.outgoing()
    assert decode_frame(claim).argument.ccmd == ConfigCommand.FORCE_SET
    bench.deliver(bench.to_target([claim]))
    assert bench.target.state.config_string == TOKEN
    return bench


def restart(target: AoeTarget) -> None:
    """The server process dies and comes back: cache and in-memory state are gone."""
    target.store.crash()
    target.state = TargetState()


def test_with_an_epoch_token_a_flush_checks_the_target_did_not_restart():
    bench = claimed()
    bench.initiator.submit_write(1, sectors(1))
    flush = bench.initiator.submit_flush()
    later = bench.initiator.submit_write(2, sectors(2))
    bench.exchange()  # the first write
    bench.exchange()  # FLUSH CACHE
    (verify,) = bench.outgoing()
    assert decode_frame(verify).argument.ccmd == ConfigCommand.READ, "the flush is followed by a Query Config read"
    assert bench.initiator.take_completions()[-1].request_id != flush, "not complete before the check"
    bench.deliver(bench.to_target([verify]))
    assert bench.initiator.take_completions() == [Completion(flush, True)]
    assert [decode_frame(f).argument.lba for f in bench.outgoing()] == [2], "the barrier held until now"
    assert later not in [c.request_id for c in bench.initiator.take_completions()]


def test_with_an_epoch_token_a_restart_after_an_acknowledged_write_fails_the_flush():
    bench = claimed()
    write = bench.initiator.submit_write(1, sectors(1))
    bench.exchange()
    assert bench.initiator.take_completions() == [Completion(write, True)]
    restart(bench.target)  # the acknowledged write was only in the cache
    flush = bench.initiator.submit_flush()
    done = bench.run(5)
    assert done == [Completion(flush, False, ata_error=AtaErrorBit.ABRT)], "the lost write is reported"
    assert bench.initiator.target_restarts == 1
    assert bench.target.state.config_string == TOKEN, "the token was claimed again before anything else went"
    again = bench.initiator.submit_flush()
    assert bench.run(5) == [Completion(again, True)]


def test_without_an_epoch_token_the_same_restart_goes_unnoticed():
    bench = discovered()
    write = bench.initiator.submit_write(1, sectors(1))
    bench.exchange()
    assert bench.initiator.take_completions() == [Completion(write, True)]
    restart(bench.target)
    flush = bench.initiator.submit_flush()
    assert bench.run(5) == [Completion(flush, True)], "the known limit of plain AoE"
    assert bench.target.store.durable_sector(1) == sectors(0)


def test_an_epoch_token_must_fit_the_config_string():
    with pytest.raises(ValueError, match="1024"):
        AoeInitiator(InitiatorConfig(HOST_A, SHELF, SLOT, epoch_token=b"x" * 1025))
