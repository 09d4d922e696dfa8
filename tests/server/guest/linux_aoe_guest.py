"""A QEMU machine whose Linux kernel (Debian's, unmodified) mounts the server's disk with its own
AoE driver over an e1000 NIC, and reports checksums of what it read and wrote on COM1.

The kernel and the initramfs helpers come from the testbed; the NIC speaks UDP-encapsulated
Ethernet (`-netdev dgram`) to the server on 127.0.0.1, so no root is needed.
"""

import re
import subprocess
import time
from pathlib import Path

from impl.testbed.debian_kernel import fetch_kernel
from impl.testbed.initramfs import guest_modules, pack_initramfs, render_template

INIT = Path(__file__).with_name("aoe_init.sh")
MODULES = ("e1000", "aoe")
WRITE_BLOCK = 256  # the guest writes 4 KiB at 1 MiB
GUEST_MAC = "52:54:00:a0:e0:01"
REPORT = re.compile(r"(AOE-GUEST-[A-Z]+) (.*)$")  # the console's escape sequences may precede it


def build_initramfs(shelf: int = 0, slot: int = 0) -> tuple[Path, bytes]:
    """The kernel to boot and an initramfs with busybox, e1000, aoe and the AoE init script."""
    kernel = fetch_kernel()
    modules = guest_modules(kernel, MODULES)
    fields = {"@ERROR_TAG@": "AOE-GUEST-ERROR", "@SHELF@": str(shelf), "@SLOT@": str(slot), "@WRITE_BLOCK@": str(WRITE_BLOCK)}
    return kernel.vmlinuz, pack_initramfs(kernel, modules, render_template(INIT, modules, fields))


def boot(work: Path, server_port: int, guest_port: int, timeout: float = 240) -> dict[str, str]:
    """Boot the guest against the server at 127.0.0.1:`server_port`; its report lines by tag."""
    vmlinuz, initramfs = build_initramfs()
    initrd = work / "aoe-initrd.img"
    initrd.write_bytes(initramfs)
    serial = work / "aoe-guest-serial.log"
    netdev = (f"dgram,id=n0,remote.type=inet,remote.host=127.0.0.1,remote.port={server_port},"
              f"local.type=inet,local.host=127.0.0.1,local.port={guest_port}")
    argv = ["qemu-system-x86_64", "-machine", "pc", "-m", "256", "-nographic", "-no-reboot", "-monitor", "none",
            "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", "console=ttyS0 quiet panic=-1",
            "-serial", f"file:{serial}", "-netdev", netdev, "-device", f"e1000,netdev=n0,mac={GUEST_MAC}"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(0.1)
    text = serial.read_text(errors="replace") if serial.exists() else ""
    report = {}
    for line in text.splitlines():
        match = REPORT.search(line.strip())
        if match:
            report[match.group(1)] = match.group(2)
    report["serial"] = text
    return report
