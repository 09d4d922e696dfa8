"""Over the CI profile, both sides exercised every command, protocol phase, PRD walk outcome and store outcome.

The coverage is what the session's corpus replays and state-machine runs recorded. If a random
run missed something, the corpus and a derandomized run of the machine under the same profile
are added, so the assertion does not depend on luck.
"""

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from difftest.ata_machine import AtaDifferentialMachine
from difftest.ata_world import COVERAGE, EXPECTED_COVERAGE, replay
from difftest.test_ata_corpus import TRACES
from difftest.test_ata_stateful import machine_settings
from difftest.trace import load_trace


def missing() -> dict[tuple[str, str], set[str]]:
    return {
        (side, kind): expected - COVERAGE.names(side, kind)
        for side in ("spec", "c")
        for kind, expected in EXPECTED_COVERAGE.items()
        if expected - COVERAGE.names(side, kind)
    }


def test_every_command_phase_and_outcome_is_exercised_on_both_sides():
    if missing():
        for path in TRACES:
            replay(load_trace(path))
        run_state_machine_as_test(AtaDifferentialMachine, settings=settings(machine_settings(), derandomize=True, database=None))
    assert not missing(), f"not exercised: {missing()}\n{COVERAGE.report()}"
