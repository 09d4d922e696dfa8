"""The spec target answers like vblade, the reference AoE target, and the spec initiator drives it, over a real veth link."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace and raw sockets")
@pytest.mark.skipif(not shutil.which("vblade") or not shutil.which("unshare"), reason="needs vblade and unshare")
def test_spec_initiator_against_vblade():
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.aoe.vblade_interop"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("vblade agrees with the spec target") == 19
    assert "known deviations confirmed" in result.stdout
    assert "read past the end: ATA IDNF" in result.stdout
