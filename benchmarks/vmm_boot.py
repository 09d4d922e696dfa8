"""The VMM's exits while Linux boots to its checksum, by reason, for each status-poll mode.

Boots a private copy of the Linux test disk bare (the peer), then through the VMM with ATA
status polls forwarded (one exit each) and served (the VMM waits out BSY itself), and prints
wall time, the exit statistics the VMM printed at power-off side by side, and the ratios
against the bare boot and between the two modes. A run counts only with the host's checksum.

    python -m benchmarks.vmm_boot [--repetitions N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from impl.testbed import guest_report
from impl.testbed.disk_image import LinuxDisk, build_linux_disk, copy_disk
from impl.testbed.qemu import MachineRun, run_machine
from impl.vmm.build import build_vmm, parse_stats

BOOT_TIMEOUT_S = 300
MODES: dict[str, str | None] = {"bare": None, "forwarded": "status=forwarded", "served": "status=served"}


def boot(disk: LinuxDisk, vmm: Path, cmdline: str | None) -> MachineRun:
    with tempfile.TemporaryDirectory(prefix="storvisor-bench-") as scratch:
        private = copy_disk(disk, Path(scratch) / "disk.img")
        run = run_machine(
            private.path, vmm=None if cmdline is None else vmm, vmm_cmdline=cmdline or "", timeout_s=BOOT_TIMEOUT_S
        )
    expected = guest_report.Checksum(disk.data_sha256, disk.data_bytes)
    if run.timed_out or guest_report.find_checksum(run.serial) != expected:
        raise RuntimeError(f"boot ({cmdline or 'bare'}) failed:\n{run.serial[-2000:]}")
    return run


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vmm_boot", description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1)
    args = parser.parse_args(argv)
    vmm = build_vmm()
    disk = build_linux_disk()
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    stats: dict[str, dict[str, int]] = {}
    for _ in range(args.repetitions):
        for mode, cmdline in MODES.items():
            run = boot(disk, vmm, cmdline)
            seconds[mode].append(run.wall_seconds)
            if cmdline is not None:
                stats[mode] = parse_stats(run.serial)
    median = {mode: statistics.median(values) for mode, values in seconds.items()}
    print(f"Linux boot to checksum, median of {args.repetitions}:")
    for mode in MODES:
        print(f"  {mode:10} {median[mode]:7.2f} s   x{median[mode] / median['bare']:.2f} of bare")
    names = sorted(set(stats["forwarded"]) | set(stats["served"]))
    print(f"\n  {'statistic':28} {'forwarded':>12} {'served':>12}  served/forwarded")
    for name in names:
        forwarded, served = stats["forwarded"].get(name, 0), stats["served"].get(name, 0)
        ratio = f"{served / forwarded:.2f}" if forwarded else "-"
        print(f"  {name:28} {forwarded:12d} {served:12d}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
