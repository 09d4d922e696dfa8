"""Fixtures for the VMM tests: the VMM image (built by make) and probe-guest disks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from impl.testbed.probe.probe import build_probe_disk
from impl.vmm.build import build_vmm


@pytest.fixture(scope="session")
def vmm_image() -> Path:
    return build_vmm()


@pytest.fixture
def probe_disk(tmp_path: Path) -> Callable[[Sequence[str]], Path]:
    """A disk that boots the probe guest and runs the given operations."""

    def build(ops: Sequence[str]) -> Path:
        return build_probe_disk(tmp_path / "probe.img", ops, tmp_path)

    return build
