"""The VMM as the Python side sees it: where its image is, how to build it, what it prints.

    from impl.vmm.build import VMM_IMAGE, build_vmm, parse_stats
"""

import re
import subprocess
from pathlib import Path

VMM_DIR = Path(__file__).resolve().parent
VMM_IMAGE = VMM_DIR / "build" / "storvisor-vmm.elf"
# The hidden window of linker.ld / platform.h: guest memory the VMM keeps for itself.
VMM_WINDOW = (0x08000000, 0x08400000)

_STAT_LINE = re.compile(r"^storvisor-stat (\S+) (\d+)\r?$", re.MULTILINE)


class VmmBuildError(Exception):
    """make could not build the VMM; the message carries its output."""


def build_vmm() -> Path:
    """Builds (or finds up to date) the VMM image with `make -C impl/vmm` and returns its path."""
    result = subprocess.run(["make", "-s", "-C", str(VMM_DIR)], capture_output=True, text=True)
    if result.returncode != 0:
        raise VmmBuildError(f"make -C {VMM_DIR} failed:\n{result.stdout}{result.stderr}")
    return VMM_IMAGE


def parse_stats(serial: str) -> dict[str, int]:
    """The exit statistics the VMM printed when the guest powered off ({} if it printed none)."""
    return {name: int(value) for name, value in _STAT_LINE.findall(serial)}
