"""Spec versus C for the ATA device: the state machine of difftest/ata_machine.py under the active profile.

A failure is written out as a trace in difftest/corpus/ata/ (the shrunk example), so it is replayed
by test_ata_corpus.py from then on. The `deep` profile runs at least 10,000 sequences.
"""

import hashlib
import os

from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from difftest import ata_machine
from difftest.ata_machine import AtaDifferentialMachine
from difftest.trace import format_trace

CORPUS = os.path.join(os.path.dirname(__file__), "corpus", "ata")
WRITE_CORPUS_ENV = "STORVISOR_WRITE_CORPUS"  # "0" keeps failures out of the corpus (the mutation check)
NO_SHRINK_ENV = "STORVISOR_NO_SHRINK"  # "1": report the first failure unshrunk (the mutation check only needs a failure)


CI_EXAMPLES, CI_STEPS = 150, 60  # the ci profile's budget for this machine: well inside 5 minutes on 2 cores
DEEP_EXAMPLES = 10_000


def machine_settings() -> settings:
    """The active profile, scaled for this machine: `ci` a bounded run, `deep` at least 10,000 sequences."""
    current = settings()
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
