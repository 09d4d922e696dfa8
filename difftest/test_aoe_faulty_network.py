"""The C AoE initiator against the spec's over model/'s faulty network and crashing server.

The same seeded world runs twice (tests/aoe/world.py): once with the spec initiator, once with the C
one. Every random choice of the network and the server comes from the seed, so as long as both
initiators behave the same the two runs are identical: the frames each sends, in order and at the
same times, and every request's outcome and completion time. The world's own oracle
(guest_sees_ideal_disk, flush_is_durable, one_write_in_flight_per_sector) must hold in both.
"""

import random

from hypothesis import given
from hypothesis import strategies as st

from difftest.binding.aoe import CoreAoeInitiator
from model.network import Faults
from tests.aoe.test_aoe_end_to_end import SECTORS, faults, ops
from tests.aoe.world import Crash, Op, World


class RecordingWorld(World):
    """The world, with every frame put on the network logged; `core` swaps in the C initiator."""

    core: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.core:
            self.initiator = CoreAoeInitiator(self.initiator.config, now=0)
        self.sent: list[tuple[int, bytes]] = []
        send = self.network.send

        def logged(frame: bytes, now: int) -> None:
            self.sent.append((now, frame))
            send(frame, now)

        self.network.send = logged


class CoreWorld(RecordingWorld):
    core = True


crashes = st.lists(st.builds(Crash, st.integers(0, 600), st.integers(1, 400), st.sampled_from([0.0, 0.5, 1.0])), max_size=2)


@given(faults(), st.integers(0, 2**32), st.integers(1, 8), st.integers(0, 3), ops(), crashes)
def test_c_initiator_runs_exactly_as_the_spec_over_a_faulty_network(f, seed, buffer_count, service_time, operations, crash_list):
    worlds = [kind(f, random.Random(seed), buffer_count, service_time, sectors=SECTORS) for kind in (RecordingWorld, CoreWorld)]
    for world in worlds:
        world.run(operations, crash_list)
    spec, core = worlds
    assert spec.sent, "every run starts with a Query Config"
    assert core.sent == spec.sent, "the C initiator sent other frames, or at other times"
    outcomes = [[(rid, r.outcome, r.completed_at) for rid, r in sorted(w.records.items())] for w in worlds]
    assert outcomes[1] == outcomes[0], "requests completed differently"
    assert spec.violations == [] and core.violations == []


def test_a_lossless_network_completes_everything_on_both_sides():
    worlds = [kind(Faults(), random.Random(7), 4, 1, sectors=SECTORS) for kind in (RecordingWorld, CoreWorld)]
    for world in worlds:
        world.run([Op("write", 0, 0, 3), Op("read", 1, 0, 3), Op("flush", 2)], [])
        assert [r.outcome for r in world.records.values()] == [True, True, True]
    assert worlds[0].sent == worlds[1].sent
