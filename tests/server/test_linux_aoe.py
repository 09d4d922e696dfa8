"""An independent initiator: Debian's Linux kernel, with its own aoe driver, in QEMU, reads and
writes a disk this server serves over UDP, the way a storvisor client's NIC reaches it."""

import hashlib
import random
import shutil

import pytest

from impl.server.frames import parse_mac
from impl.server.overlay import Overlay
from tests.server.conftest import free_udp_port, run_cli
from tests.server.guest.linux_aoe_guest import GUEST_MAC, WRITE_BLOCK, boot

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="needs QEMU")]

IMAGE_BYTES = 4 << 20


def test_linux_aoe_driver_reads_and_writes_through_its_overlay(tmp_path, server_process):
    image = random.Random(3).randbytes(IMAGE_BYTES)
    path = tmp_path / "guest-images" / "guest.img"
    path.parent.mkdir()
    path.write_bytes(image)
    server = server_process("--image", str(path), state=str(tmp_path / "guest-state"))
    report = boot(tmp_path, server.port, free_udp_port())
    assert "AOE-GUEST-ERROR" not in report, report["serial"][-2000:]
    assert report.get("AOE-GUEST-SIZE") == f"sectors={IMAGE_BYTES // 512}", report["serial"][-2000:]
    assert report["AOE-GUEST-READ"] == "sha256=" + hashlib.sha256(image).hexdigest()
    assert report["AOE-GUEST-READBACK"] == "sha256=" + hashlib.sha256(b"A" * 4096).hexdigest()
    assert path.read_bytes() == image  # the base image is never written
    shown = run_cli("client", GUEST_MAC, "--state", server.state, "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"overlay_sectors": 8' in shown.stdout
    server.stop()  # flushes: the overlay file now holds what the server acknowledged
    overlay = Overlay(str(tmp_path / "guest-state" / "overlays" / parse_mac(GUEST_MAC).hex() / "guest.overlay"),
                      hashlib.sha256(image).hexdigest(), IMAGE_BYTES // 512)
    disk = bytearray(IMAGE_BYTES)
    with open(path, "rb") as base:
        overlay.read_into(0, IMAGE_BYTES // 512, disk, base.fileno())
    overlay.close()
    start = WRITE_BLOCK * 4096  # the guest's read-back may come from its own cache: the server's copy is what counts
    assert disk == image[:start] + b"A" * 4096 + image[start + 4096 :], "the guest's 4 KiB where it wrote them, nothing else changed"
