"""Linux boot-to-checksum wall time with the VMM against the same guest without it.

Each repetition boots a private copy of the Linux test disk twice, once bare and once behind
the VMM, alternating which goes first so that drift on a shared machine hits both alike.
The time is QEMU's wall time from start to exit: firmware, syslinux, the Debian kernel,
reading the data partition by DMA, printing the checksum, power-off. A run counts only if
the guest printed the checksum the host expects. Target: median(VMM) / median(bare) <= 1.10.

    python -m benchmarks.boot_time [--repetitions N] [--vmm-cmdline "…"]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from impl.testbed import guest_report
from impl.testbed.disk_image import LinuxDisk, build_linux_disk, copy_disk
from impl.testbed.qemu import MachineRun, run_machine

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
VMM_IMAGE = REPOSITORY_ROOT / "impl" / "vmm" / "build" / "storvisor-vmm.elf"
TARGET_RATIO = 1.10
BOOT_TIMEOUT_S = 300
# The VMM prints its counters on COM1 at guest power-off, one "storvisor-stat NAME VALUE" per line.
VMM_STAT_LINE = re.compile(r"^storvisor-stat (?P<name>\S+) (?P<value>\d+)$", re.MULTILINE)
KERNEL_POWER_DOWN = re.compile(r"^\[\s*(?P<seconds>\d+\.\d+)\] reboot: Power down", re.MULTILINE)


@dataclass(frozen=True)
class Boot:
    label: str
    run: MachineRun
    problem: str | None  # why the run does not count, or None

    @property
    def kernel_seconds(self) -> float | None:
        """The guest kernel's own clock at power-off, when the kernel printed it."""
        match = KERNEL_POWER_DOWN.search(self.run.serial.replace("\r", ""))
        return None if match is None else float(match.group("seconds"))


def boot_once(disk: LinuxDisk, label: str, vmm: Path | None, vmm_cmdline: str) -> Boot:
    with tempfile.TemporaryDirectory(prefix="storvisor-bench-") as scratch:
        private = copy_disk(disk, Path(scratch) / "disk.img")
        run = run_machine(private.path, vmm=vmm, vmm_cmdline=vmm_cmdline, timeout_s=BOOT_TIMEOUT_S)
    reported = guest_report.find_checksum(run.serial)
    expected = guest_report.Checksum(disk.data_sha256, disk.data_bytes)
    if run.timed_out:
        problem = f"no power-off within {BOOT_TIMEOUT_S} s"
    elif (error := guest_report.find_error(run.serial)) is not None:
        problem = f"the guest failed: {error}"
    elif reported != expected:
        problem = f"checksum {reported} instead of {expected}"
    else:
        problem = None
    return Boot(label, run, problem)


def _summary(label: str, boots: list[Boot]) -> float | None:
    """Print one configuration's figures; its median wall time when at least one run counted."""
    good = [boot for boot in boots if boot.problem is None]
    for boot in boots:
        if boot.problem is not None:
            print(f"  {label}: a run does not count: {boot.problem}")
    if not good:
        print(f"  {label:<12} no valid run")
        return None
    walls = [boot.run.wall_seconds for boot in good]
    kernel = [boot.kernel_seconds for boot in good if boot.kernel_seconds is not None]
    kernel_text = f"  kernel clock at power-off median {statistics.median(kernel):6.2f} s" if kernel else ""
    print(
        f"  {label:<12} median {statistics.median(walls):6.2f} s  min {min(walls):6.2f}  max {max(walls):6.2f}"
        f"  ({len(good)} runs){kernel_text}"
    )
    return statistics.median(walls)


def vmm_statistics(serial: str) -> dict[str, int]:
    """The VMM's counters from one run's COM1, in the order it printed them."""
    return {match["name"]: int(match["value"]) for match in VMM_STAT_LINE.finditer(serial.replace("\r", ""))}


def _print_exit_statistics(boots: list[Boot]) -> None:
    per_run = [vmm_statistics(boot.run.serial) for boot in boots if boot.problem is None]
    per_run = [counters for counters in per_run if counters]
    if not per_run:
        print("  the VMM printed no exit statistics on COM1")
        return
    print(f"  VMM statistics, median of {len(per_run)} runs:")
    for name in per_run[-1]:
        values = [counters[name] for counters in per_run if name in counters]
        print(f"    {name:<28} {statistics.median(values):>14,.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.boot_time", description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5, help="boots of each configuration")
    parser.add_argument("--vmm", type=Path, default=VMM_IMAGE, help="the VMM's Multiboot ELF")
    parser.add_argument("--vmm-cmdline", default="", help="the VMM's command line")
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")

    disk = build_linux_disk()
    with_vmm = args.vmm.is_file()
    print(f"boot_time: Linux boot to checksum, {disk.kernel_package} {disk.kernel_version}, "
          f"{disk.data_bytes // 1024} KiB read by DMA, {args.repetitions} repetitions")
    if not with_vmm:
        shown = args.vmm.relative_to(REPOSITORY_ROOT) if args.vmm.is_relative_to(REPOSITORY_ROOT) else args.vmm
        print(f"  the VMM half is skipped: {shown} does not exist yet (build it with `make build`)")

    bare: list[Boot] = []
    behind_vmm: list[Boot] = []
    for repetition in range(args.repetitions):
        order = [("bare", None), ("vmm", args.vmm)] if repetition % 2 == 0 else [("vmm", args.vmm), ("bare", None)]
        for label, vmm in order:
            if label == "bare":
                bare.append(boot_once(disk, label, None, ""))
            elif with_vmm:
                behind_vmm.append(boot_once(disk, label, vmm, args.vmm_cmdline))

    bare_median = _summary("without VMM", bare)
    if not with_vmm:
        return 0 if bare_median is not None else 1
    vmm_median = _summary("with VMM", behind_vmm)
    _print_exit_statistics(behind_vmm)
    if bare_median is None or vmm_median is None:
        print("  ratio: not available")
        return 1
    ratio = vmm_median / bare_median
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"  ratio with/without VMM: {ratio:.3f} ({verdict} the target {TARGET_RATIO:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
