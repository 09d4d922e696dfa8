"""What `make demo` runs: storvisor at work, as far as it goes today.

1. The ATA specification answers, register by register, the sector read SeaBIOS performs
   and a Linux-style bus-master DMA read.
2. An unmodified Debian kernel boots under QEMU through the VMM, which intercepts the IDE
   controller; the guest reads its data partition with DMA and prints a checksum, which is
   compared with the one computed here from the image; the VMM prints its exit statistics.
"""

import sys
import tempfile
from pathlib import Path

from impl.testbed import spec_walkthrough
from impl.testbed.disk_image import build_linux_disk, copy_disk
from impl.testbed.guest_report import find_checksum, find_error
from impl.testbed.qemu import run_machine
from impl.vmm.image import build_vmm, parse_stats

BOOT_TIMEOUT_S = 300


def banner(title: str) -> None:
    print(f"\n{'=' * 78}\n== {title}\n{'=' * 78}", flush=True)


def boot_linux_through_vmm() -> bool:
    """Boots the Linux test disk through the VMM with COM1 live on the terminal; True when the checksum matches."""
    vmm = build_vmm()
    disk = build_linux_disk()
    with tempfile.TemporaryDirectory(prefix="storvisor-demo-") as scratch:
        private = copy_disk(disk, Path(scratch) / "disk.img")
        print(f"VMM {vmm.name}; disk: Debian kernel {disk.kernel_release}, data partition {disk.data_bytes} bytes")
        print(f"expected checksum (computed on the host): {disk.data_sha256}\n", flush=True)
        run = run_machine(private.path, vmm=vmm, vmm_cmdline="log=info", timeout_s=BOOT_TIMEOUT_S, serial_to_terminal=True)
    print()
    if run.timed_out:
        print(f"demo: the machine did not power off within {BOOT_TIMEOUT_S} s")
        return False
    error = find_error(run.serial)
    checksum = find_checksum(run.serial)
    if error or checksum is None:
        print(f"demo: the guest reported no checksum ({error or 'no report line'})")
        return False
    stats = parse_stats(run.serial)
    exits = sum(value for name, value in stats.items() if name.startswith("exit."))
    verdict = "matches" if checksum.sha256 == disk.data_sha256 else "DIFFERS FROM"
    print(f"guest checksum {checksum.sha256} {verdict} the host's; boot took {run.wall_seconds:.1f} s, {exits} VMM exits")
    return checksum.sha256 == disk.data_sha256


def main() -> int:
    banner("1. The ATA specification at register level")
    spec_walkthrough.main()
    banner("2. An unmodified Debian kernel boots through the VMM")
    return 0 if boot_linux_through_vmm() else 1


if __name__ == "__main__":
    sys.exit(main())
