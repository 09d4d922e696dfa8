"""Every trace in difftest/corpus/storage/ replays with the spec and the C core agreeing at every line.

The corpus holds the hand-written storage scenarios and every failure the storage state machine has
shrunk; the world (storage_trace_world.py) checks the invariant catalogue on both sides after every
line, and the expectations written in a trace must hold on both.
"""

from pathlib import Path

import pytest

from difftest.storage_trace_world import Divergence, StorageTraceWorld, replay
from difftest.trace import events as ev
from difftest.trace import format_trace, load_trace, parse_trace

CORPUS = Path(__file__).parent / "corpus" / "storage"
TRACES = sorted(CORPUS.glob("*.trace"))


def test_the_corpus_holds_the_hand_written_storage_scenarios():
    names = {path.stem for path in TRACES}
    assert {"fill_racing_guest_write", "late_duplicate_write_response", "power_cut_between_data_and_map"} <= names


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_storage_trace_replays_identically_on_spec_and_c(path):
    world = replay(load_trace(path))
    assert world.events, f"{path.name} has no events after its config"


def test_a_wrong_expectation_in_a_storage_trace_is_reported():
    world = StorageTraceWorld(policy="install", link="direct")
    with pytest.raises(Divergence, match="expects 3"):
        world.apply(ev.Expect("block0", 3))


def test_the_storage_world_refuses_events_it_does_not_model():
    world = StorageTraceWorld(policy="network", link="direct")
    with pytest.raises(ValueError, match="does not model"):
        world.apply(ev.PortWrite(1, 0x1F7, 0x20))
    with pytest.raises(ValueError, match="no local-disk request 9"):
        world.apply(ev.DiskDone(9))
    with pytest.raises(ValueError, match="no parameter"):
        replay([ev.Config("capacity", 8)])


def test_guest_lines_parse_and_print_back():
    text = "guest read 3 6\nguest write 5 2 1\nguest flush\nguest poll\npower cut newest-delivered\npolicy passthrough\n"
    events = parse_trace(text)
    assert events == [
        ev.GuestRequest("read", (3, 6)),
        ev.GuestRequest("write", (5, 2, 1)),
        ev.GuestRequest("flush"),
        ev.GuestRequest("poll"),
        ev.PowerCut("newest-delivered"),
        ev.PolicyChange("passthrough"),
    ]
    assert format_trace(events) == text


def test_a_failing_sequence_is_kept_as_a_replayable_trace(tmp_path, monkeypatch):
    from difftest import test_storage_manager as machine

    world = StorageTraceWorld(policy="install", link="aoe")
    for event in (ev.DiskDone(1), ev.Tick(1), ev.GuestRequest("read", (0, 4)), ev.Network("deliver", (0,))):
        world.apply(event)
    monkeypatch.setattr(machine, "CORPUS", tmp_path)
    monkeypatch.setattr(machine, "LAST_FAILURE", ([ev.Config("policy", "install"), ev.Config("link", "aoe")], world.events))
    monkeypatch.delenv(machine.WRITE_CORPUS_ENV, raising=False)
    path = machine.write_failure_trace()
    assert path is not None and path.startswith(str(tmp_path))
    replayed = replay(load_trace(path))
    assert replayed.events == world.events
    monkeypatch.setenv(machine.WRITE_CORPUS_ENV, "0")
    assert machine.write_failure_trace() is None, "the mutation check keeps its failures out of the corpus"


def test_only_a_failing_step_keeps_its_sequence_not_a_timeout(monkeypatch):
    """pytest-timeout stops a long run with an exception outside Exception: that unfinished sequence
    is not a regression case; a divergence is."""
    from difftest import test_storage_manager as machine
    from difftest.test_storage_manager import StorageComparison
    from spec.storage.manager import Policy

    monkeypatch.setattr(machine, "LAST_FAILURE", None)
    comparison = StorageComparison()
    comparison.boot(Policy.INSTALL)
    comparison.apply(ev.Tick(1))

    def stopped(event):
        comparison.world.events.append(event)
        pytest.fail("Timeout (>600.0s) from pytest-timeout.")

    monkeypatch.setattr(comparison.world, "apply", stopped)
    with pytest.raises(pytest.fail.Exception):
        comparison.apply(ev.Tick(1))
    assert machine.LAST_FAILURE is None

    def diverged(event):
        comparison.world.events.append(event)
        raise Divergence("after line 2: example")

    monkeypatch.setattr(comparison.world, "apply", diverged)
    with pytest.raises(Divergence):
        comparison.apply(ev.Tick(2))
    assert machine.LAST_FAILURE == (comparison.config, [ev.Tick(1), ev.Tick(1), ev.Tick(2)])
    comparison.teardown()
