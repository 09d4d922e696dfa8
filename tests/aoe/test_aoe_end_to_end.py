"""Initiator and target over a network that drops, duplicates, delays and reorders, with server crashes."""

import random

from hypothesis import event, example, given
from hypothesis import strategies as st

from model.network import Faults
from tests.aoe.world import Crash, Op, World

SECTORS = 16


@st.composite
def ops(draw, max_size=12):
    result = []
    for _ in range(draw(st.integers(1, max_size))):
        kind = draw(st.sampled_from(["read", "write", "write", "flush"]))
        gap = draw(st.integers(0, 40))
        if kind == "flush":
            result.append(Op(kind, gap))
            continue
        lba = draw(st.integers(0, SECTORS - 1))
        count = draw(st.integers(1, min(5, SECTORS - lba)))
        result.append(Op(kind, gap, lba, count))
    return result


@st.composite
def faults(draw):
    min_delay = draw(st.integers(0, 5))
    return Faults(
        drop=draw(st.sampled_from([0.0, 0.05, 0.2, 0.4])),
        duplicate=draw(st.sampled_from([0.0, 0.1, 0.3])),
        min_delay=min_delay,
        max_delay=draw(st.integers(min_delay, 30)),
    )


def world(draw_faults, rng, buffer_count, service_time, epoch_token=b"") -> World:
    return World(draw_faults, rng, buffer_count, service_time, sectors=SECTORS, epoch_token=epoch_token)


def report_coverage(w: World) -> None:
    """Show that the interesting transitions were reached (`--hypothesis-show-statistics`)."""
    event(f"crashes: {len(w.crash_times)}")
    event(f"some request failed: {any(r.outcome is False for r in w.records.values())}")
    event(f"frames dropped: {w.network.stats.dropped > 0}; duplicated: {w.network.stats.duplicated > 0}")
    event(f"stale frames ignored by the initiator: {w.initiator.ignored_frames > 0}")
    event(f"server queue overflowed: {w.server.dropped_full > 0}")


@given(faults(), st.randoms(use_true_random=False), st.integers(1, 8), st.integers(0, 3), ops())
@example(  # regression: a read may finish while the write it overlaps still has other sectors going
    Faults(drop=0.05, duplicate=0.1),
    random.Random(0),
    2,
    0,
    [Op("flush", 0), Op("read", 0, 0, 1), Op("read", 0, 0, 1), Op("write", 0, 0, 3), Op("read", 0, 0, 1)],
)
@example(  # regression: a write submitted later than the initiator's last tick was fenced from that stale time,
    # and a network duplicate of it landed after the next write to the sector
    Faults(duplicate=0.1, max_delay=6),
    random.Random(618),
    1,
    0,
    [Op("write", 15, 0, 1), Op("write", 0, 0, 1), Op("read", 0, 0, 1)],
)
def test_every_completed_read_returns_the_last_completed_write(f, rng, buffer_count, service_time, operations):
    w = world(f, rng, buffer_count, service_time)
    w.run(operations, crashes=[])
    report_coverage(w)
    assert w.violations == []
    assert all(r.outcome is not None for r in w.records.values())
    if f.drop == 0.0:
        assert all(r.outcome for r in w.records.values()), "a lossless network fails nothing"


@given(
    faults(),
    st.randoms(use_true_random=False),
    st.integers(1, 8),
    st.integers(0, 3),
    ops(),
    st.lists(st.builds(Crash, st.integers(0, 600), st.integers(1, 400), st.sampled_from([0.0, 0.5, 1.0])), max_size=2),
)
def test_server_crashes_lose_only_unflushed_writes_and_requests_still_end(f, rng, buffer_count, service_time, operations, crashes):
    w = world(f, rng, buffer_count, service_time)
    w.run(operations, crashes)
    report_coverage(w)
    assert w.violations == []
    assert all(r.outcome is not None for r in w.records.values())


@given(
    faults(),
    st.randoms(use_true_random=False),
    st.integers(1, 8),
    st.integers(0, 3),
    ops(),
    st.lists(st.builds(Crash, st.integers(0, 600), st.integers(1, 400), st.sampled_from([0.0, 0.5, 1.0])), max_size=2),
)
def test_with_an_epoch_token_a_flush_never_hides_a_write_lost_in_a_crash(f, rng, buffer_count, service_time, operations, crashes):
    w = world(f, rng, buffer_count, service_time, epoch_token=b"storvisor-initiator-1")
    w.run(operations, crashes)
    event(f"restarts seen by the initiator: {w.initiator.target_restarts > 0}")
    report_coverage(w)
    assert w.violations == []
    assert all(r.outcome is not None for r in w.records.values())


def test_a_silent_server_fails_every_request_instead_of_hanging():
    w = world(Faults(drop=1.0), random.Random(1), 4, 0)
    w.run([Op("write", 0, 0, 3), Op("read", 5, 0, 3), Op("flush", 5)], crashes=[])
    assert w.violations == []
    assert [r.outcome for r in w.records.values()] == [False, False, False]
