"""crosshair checks the contracts on the spec's pure functions, each within a bounded time.

A target passes when crosshair finds no counterexample within
`PER_CONDITION_SECONDS` of CPU per function ("confirmed" or "not confirmed"
both pass: crosshair explores paths symbolically, it does not prove). Any
counterexample fails the test with crosshair's message. The controls are
wrong contracts that crosshair must refute.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proofs.harness import Outcome, record

ROOT = Path(__file__).resolve().parent.parent
CROSSHAIR = Path(sys.executable).with_name("crosshair")
PER_CONDITION_SECONDS = 2

# The ATA chapter's own contracts (addressing, PRD walk, IDENTIFY) run in tests/ata/test_ata_contracts.py.
TARGETS = {
    "aoe frames": ["spec.aoe.frames"],  # every encoder's length, every decoder's layer
    "wrappers": ["proofs.contracts"],  # round trips, map damage, block and frame splitting, PRD walk
}


def crosshair(targets: list[str], timeout: int = PER_CONDITION_SECONDS) -> tuple[int, str, float]:
    command = [str(CROSSHAIR), "check", "--analysis_kind=PEP316", f"--per_condition_timeout={timeout}", *targets]
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - started


@pytest.mark.parametrize("group", list(TARGETS))
def test_contracts_hold(group):
    code, output, seconds = crosshair(TARGETS[group])
    name = f"crosshair {' '.join(TARGETS[group])}"
    record(Outcome(name, "checked" if code == 0 else "refuted", seconds, notes=[f"{PER_CONDITION_SECONDS} s per function"]))
    assert code == 0, output


@pytest.mark.parametrize("control", ["proofs.contract_controls.pieces_all_whole_blocks", "proofs.contract_controls.map_forgets_cleanliness"])
def test_wrong_contract_is_refuted(control):
    code, output, seconds = crosshair([control], timeout=10)
    outcome = Outcome(f"crosshair {control} [control]", "refuted" if code == 1 else "missed", seconds, trace=output.strip())
    record(outcome)
    assert code == 1 and "error" in output, output
