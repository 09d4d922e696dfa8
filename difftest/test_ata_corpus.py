"""Every trace in difftest/corpus/ata/ replays with the spec and the C core agreeing at every event.

The corpus holds hand-written scenarios and every failure the state machine has shrunk; a trace
that stops agreeing is a regression. Expectations written in a trace (`in8 0x1f7 = 0x58`,
`expect ...`) must hold on both sides too.
"""

from pathlib import Path

import pytest

from difftest.ata_world import AtaWorld, Divergence, replay
from difftest.trace import events as ev
from difftest.trace import load_trace

CORPUS = Path(__file__).parent / "corpus" / "ata"
TRACES = sorted(CORPUS.glob("*.trace"))


def test_the_corpus_holds_the_hand_written_scenarios():
    names = {path.stem for path in TRACES}
    assert {"seabios_sector_read", "linux_dma_read", "linux_dma_write"} <= names


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_replays_identically_on_spec_and_c(path):
    world = replay(load_trace(path))
    assert world.events, f"{path.name} has no events after its config"


def test_a_wrong_expectation_in_a_trace_is_reported():
    world = AtaWorld(capacity=8)
    with pytest.raises(Divergence, match="expects 0x58"):
        world.apply(ev.PortRead(1, 0x1F7, expected=0x58))


def test_the_ata_world_refuses_events_it_does_not_model():
    world = AtaWorld(capacity=8)
    with pytest.raises(ValueError, match="does not model"):
        world.apply(ev.FrameReceived(b"\x00" * 60))
    with pytest.raises(ValueError, match="no parameter"):
        AtaWorld(policy="install")
