"""An independent initiator: Debian's Linux kernel, with its own aoe driver, in QEMU, reads and
writes a disk this server serves over UDP, the way a storvisor client's NIC reaches it."""

import hashlib
import os
import random
import shutil

import pytest

from impl.server.frames import parse_mac
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
    assert parse_mac(GUEST_MAC) and WRITE_BLOCK * 4096 < IMAGE_BYTES
    assert os.path.getsize(tmp_path / "guest-state" / "overlays" / parse_mac(GUEST_MAC).hex() / "guest.overlay") > 4096
