"""The unmodified Debian kernel boots the test disk without the VMM and reads its data by DMA."""

from __future__ import annotations

import re

import pytest

from impl.testbed import guest_report
from impl.testbed.disk_image import copy_disk, data_partition_sha256
from impl.testbed.qemu import MachineRun, run_machine

pytestmark = pytest.mark.qemu

BOOT_TIMEOUT_S = 120
PRIMARY_MASTER = "dev1.0"  # libata's name for ata1.00, the disk on IDE index 0


def _boot(disk_path) -> MachineRun:
    run = run_machine(disk_path, timeout_s=BOOT_TIMEOUT_S)
    assert not run.timed_out, f"the guest did not power off within {BOOT_TIMEOUT_S} s:\n{run.serial[-3000:]}"
    assert guest_report.find_error(run.serial) is None, run.serial[-3000:]
    return run


@pytest.fixture(scope="module")
def linux_run(linux_disk) -> MachineRun:
    return _boot(linux_disk.path)


def test_guest_powers_off_and_qemu_exits_cleanly(linux_run):
    assert linux_run.exit_code == 0, linux_run.qemu_stderr


def test_guest_checksum_equals_the_host_checksum_of_the_image(linux_disk, linux_run):
    assert data_partition_sha256(linux_disk.path) == (linux_disk.data_sha256, linux_disk.data_bytes)
    reported = guest_report.find_checksum(linux_run.serial)
    assert reported == guest_report.Checksum(linux_disk.data_sha256, linux_disk.data_bytes), linux_run.serial[-3000:]


def test_primary_master_is_driven_by_ata_piix_with_bus_master_dma(linux_run):
    devices = guest_report.find_ata_devices(linux_run.serial)
    disk = devices[PRIMARY_MASTER]
    assert disk.device_class == "ata"
    assert disk.uses_dma, disk
    # libata's probe line names the bus-master DMA registers of the primary channel and its IRQ.
    assert re.search(r"ata1: PATA max \S*DMA\S* cmd 0x1f0 ctl 0x3f6 bmdma 0x[0-9a-f]+ irq 14", linux_run.serial)
    assert re.search(r"ata1\.00: ATA-\d+: QEMU HARDDISK", linux_run.serial)
    irq14 = re.search(r"^\s*14:\s+(\d+)\s.*ata_piix", linux_run.serial, re.MULTILINE)
    assert irq14 is not None and int(irq14.group(1)) > 0


def test_guest_reads_the_disk_rather_than_reporting_a_fixed_value(linux_disk, tmp_path):
    changed = copy_disk(linux_disk, tmp_path / "changed.img")
    with changed.path.open("r+b") as image:
        last_byte = changed.data_offset + changed.data_bytes - 1
        image.seek(last_byte)
        original = image.read(1)
        image.seek(last_byte)
        image.write(bytes([original[0] ^ 0xFF]))
    expected, length = data_partition_sha256(changed.path)
    assert expected != linux_disk.data_sha256
    run = _boot(changed.path)
    assert guest_report.find_checksum(run.serial) == guest_report.Checksum(expected, length)
