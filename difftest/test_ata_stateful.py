"""Spec versus C for the ATA device: the state machine of difftest/ata_machine.py under the active profile,
then the coverage it and the corpus reached.

A failure is written out as a trace in difftest/corpus/ata/ (the shrunk example), so it is replayed
by test_ata_corpus.py from then on. The `deep` profile runs at least 10,000 sequences.
"""

import hashlib
import os
import sys

from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from difftest import ata_machine
from difftest.ata_machine import AtaDifferentialMachine
from difftest.ata_world import COVERAGE, EXPECTED_COVERAGE, replay
from difftest.test_ata_corpus import TRACES
from difftest.trace import format_trace, load_trace

CORPUS = os.path.join(os.path.dirname(__file__), "corpus", "ata")
WRITE_CORPUS_ENV = "STORVISOR_WRITE_CORPUS"  # "0" keeps failures out of the corpus (the mutation check)
NO_SHRINK_ENV = "STORVISOR_NO_SHRINK"  # "1": report the first failure unshrunk (the mutation check only needs a failure)


CI_EXAMPLES, CI_STEPS = 150, 60  # the ci profile's budget for this machine: well inside 5 minutes on 2 cores
DEEP_EXAMPLES = 10_000


def machine_settings(current: settings | None = None) -> settings:
    """The active profile (or `current`), scaled for this machine: `ci` a bounded run, `deep` at least 10,000 sequences."""
    current = current or settings()
    if os.environ.get(NO_SHRINK_ENV) == "1":
        current = settings(current, phases=[p for p in current.phases if p is not Phase.shrink])
    if current.max_examples >= 5000:
        return settings(current, max_examples=max(current.max_examples, DEEP_EXAMPLES))
    return settings(current, max_examples=max(current.max_examples, CI_EXAMPLES),
                    stateful_step_count=max(current.stateful_step_count, CI_STEPS))


def write_failure_trace() -> str | None:
    """Keep the shrunk failing example as a corpus trace; returns its path."""
    failure = ata_machine.LAST_FAILURE
    if failure is None or os.environ.get(WRITE_CORPUS_ENV) == "0":
        return None
    text = format_trace(failure.events, "Found by difftest/test_ata_stateful.py; shrunk by Hypothesis.\n" + failure.message.splitlines()[0])
    name = "shrunk-" + hashlib.sha256(text.encode()).hexdigest()[:12] + ".trace"
    os.makedirs(CORPUS, exist_ok=True)
    path = os.path.join(CORPUS, name)
    with open(path, "w") as file:
        file.write(text)
    return path


def test_spec_and_c_agree_on_generated_traffic():
    ata_machine.LAST_FAILURE = None
    try:
        run_state_machine_as_test(AtaDifferentialMachine, settings=machine_settings())
    except BaseException:
        path = write_failure_trace()
        if path:
            print(f"the failing trace is kept as {path}")
        raise


def coverage_gaps() -> dict[tuple[str, str], set[str]]:
    return {
        (side, kind): expected - COVERAGE.names(side, kind)
        for side in ("spec", "c")
        for kind, expected in EXPECTED_COVERAGE.items()
        if expected - COVERAGE.names(side, kind)
    }


def test_every_command_phase_and_outcome_is_exercised_on_both_sides():
    """Over the CI profile: the coverage the corpus and the machine above recorded in this session.
    When this test runs alone, or a random run missed something, the corpus and a derandomized run
    of the machine are added, so the assertion does not depend on luck."""
    if coverage_gaps():
        for path in TRACES:
            replay(load_trace(path))
    if coverage_gaps():
        run_state_machine_as_test(AtaDifferentialMachine, settings=settings(machine_settings(), derandomize=True, database=None))
    assert not coverage_gaps(), f"not exercised: {coverage_gaps()}\n{COVERAGE.report()}"


def test_the_deep_profile_runs_at_least_ten_thousand_sequences():
    assert machine_settings(settings.get_profile("deep")).max_examples >= DEEP_EXAMPLES
    assert machine_settings(settings.get_profile("ci")).max_examples == CI_EXAMPLES


def test_a_failing_example_is_kept_as_a_replayable_corpus_trace(tmp_path, monkeypatch):
    from difftest.trace import events as ev

    events = [ev.Config("capacity", 8), ev.PortWrite(1, 0x1F7, 0xEC), ev.Tick(1), ev.PortRead(1, 0x1F7)]
    monkeypatch.setattr(ata_machine, "LAST_FAILURE", ata_machine.Failure(events, "Divergence: example\nsecond line"))
    monkeypatch.setattr(sys.modules[__name__], "CORPUS", str(tmp_path))
    monkeypatch.delenv(WRITE_CORPUS_ENV, raising=False)
    path = write_failure_trace()
    assert path and os.path.dirname(path) == str(tmp_path)
    assert load_trace(path) == events
    assert "# Divergence: example" in open(path).read()
    monkeypatch.setenv(WRITE_CORPUS_ENV, "0")
    assert write_failure_trace() is None
