"""crosshair checks the contracts (PEP 316 `pre:`/`post:`/`inv:` docstrings) of the spec's pure helpers.

Addressing (LBA, CHS, counts), the PRD walk and IDENTIFY construction. Each
condition gets a bounded time, so the whole check stays under a minute on an
idle machine; any counterexample crosshair finds fails the test with its report.
"""

import subprocess
import sys
from pathlib import Path

CONTRACT_MODULES = ("spec/ata/addressing.py", "spec/ata/prd.py", "spec/ata/identify.py")
SECONDS_PER_CONDITION = "1"
ROOT = Path(__file__).resolve().parents[2]


def test_crosshair_finds_no_counterexample():
    crosshair = Path(sys.executable).with_name("crosshair")
    result = subprocess.run(
        [str(crosshair), "check", "--analysis_kind", "PEP316", "--per_condition_timeout", SECONDS_PER_CONDITION, *CONTRACT_MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0 and "error:" not in report, report
