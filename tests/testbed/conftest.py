"""Fixtures shared by the testbed tests: the Linux test disk and one-sector boot disks."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from impl.testbed.disk_image import LinuxDisk, build_linux_disk

GUESTS_DIR = Path(__file__).with_name("guests")
BOOT_DISK_BYTES = 1 << 20


@pytest.fixture(scope="session")
def linux_disk() -> LinuxDisk:
    """The cached Linux test disk (built on first use)."""
    return build_linux_disk()


@pytest.fixture
def boot_sector_disk(tmp_path: Path) -> Callable[..., Path]:
    """Assemble guests/<name>.asm into the first sector of a 1 MiB disk image."""
    if shutil.which("nasm") is None:
        pytest.fail("nasm is not installed; run `make setup`")

    def build(name: str, *defines: str) -> Path:
        sector = tmp_path / f"{name}.bin"
        subprocess.run(
            ["nasm", "-f", "bin", *(f"-D{define}" for define in defines), "-o", str(sector), str(GUESTS_DIR / f"{name}.asm")],
            check=True,
        )
        disk = tmp_path / f"{name}.img"
        disk.write_bytes(sector.read_bytes().ljust(BOOT_DISK_BYTES, b"\0"))
        return disk

    return build
