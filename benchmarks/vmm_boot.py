"""The VMM's exits while Linux boots to its checksum, by reason, for each way of forwarding ATA PIO.

Boots a private copy of the Linux test disk bare (the peer), then through the VMM in its
default mode (polled READ SECTORS forwarded as READ MULTIPLE, status polls forwarded), with
`pio_blocks=single` (every command forwarded as the guest wrote it) and with `status=served`
(the VMM waits out BSY itself), and prints wall time, the exit statistics the VMM printed at
power-off side by side, and the ratios against the bare boot and against the default mode.
A run counts only with the host's checksum.

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
from impl.vmm.image import build_vmm, parse_stats

BOOT_TIMEOUT_S = 300
MODES: dict[str, str | None] = {
    "bare": None, "default": "", "single": "pio_blocks=single", "served": "pio_blocks=single status=served",
}


def boot(disk: LinuxDisk, vmm: Path, cmdline: str | None) -> MachineRun:
    with tempfile.TemporaryDirectory(prefix="storvisor-bench-") as scratch:
        private = copy_disk(disk, Path(scratch) / "disk.img")
        run = run_machine(
            private.path, vmm=None if cmdline is None else vmm, vmm_cmdline=cmdline or "", timeout_s=BOOT_TIMEOUT_S
        )
    expected = guest_report.Checksum(disk.data_sha256, disk.data_bytes)
    if run.timed_out or guest_report.find_checksum(run.serial) != expected:
        raise RuntimeError(f"boot ({'bare' if cmdline is None else cmdline or 'default'}) failed:\n{run.serial[-2000:]}")
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
    vmm_modes = [mode for mode, cmdline in MODES.items() if cmdline is not None]
    names = sorted(set().union(*(stats[mode] for mode in vmm_modes)))
    print(f"\n  {'statistic':28}" + "".join(f" {mode:>10}" for mode in vmm_modes) + "   (the last run of each mode)")
    for name in names:
        print(f"  {name:28}" + "".join(f" {stats[mode].get(name, 0):10d}" for mode in vmm_modes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
