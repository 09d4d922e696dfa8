"""An unmodified Debian kernel boots through the VMM, reads its data partition by bus-master
DMA and prints the same checksum line as on the bare machine, equal to the host's checksum."""

from __future__ import annotations

import pytest

from impl.testbed import guest_report
from impl.testbed.disk_image import build_linux_disk, data_partition_sha256
from impl.testbed.qemu import MachineRun, run_machine
from impl.vmm.image import parse_stats

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

BOOT_TIMEOUT_S = 120
PRIMARY_MASTER = "dev1.0"


def _boot(disk, **kwargs) -> MachineRun:
    run = run_machine(disk, timeout_s=BOOT_TIMEOUT_S, **kwargs)
    assert not run.timed_out, f"no power-off within {BOOT_TIMEOUT_S} s:\n{run.serial[-3000:]}"
    assert run.exit_code == 0, run.qemu_stderr
    assert guest_report.find_error(run.serial) is None, run.serial[-3000:]
    return run


@pytest.fixture(scope="module")
def linux_disk():
    return build_linux_disk()


@pytest.fixture(scope="module")
def through_vmm(vmm_image, linux_disk) -> MachineRun:
    return _boot(linux_disk.path, vmm=vmm_image)


@pytest.fixture(scope="module")
def bare(linux_disk) -> MachineRun:
    return _boot(linux_disk.path)


def checksum_line(serial: str) -> str:
    [line] = [line.strip() for line in serial.splitlines() if line.startswith(guest_report.CHECKSUM_TAG)]
    return line


def test_checksum_through_the_vmm_equals_the_host_checksum(linux_disk, through_vmm):
    expected = guest_report.Checksum(*data_partition_sha256(linux_disk.path))
    assert guest_report.find_checksum(through_vmm.serial) == expected, through_vmm.serial[-3000:]


def test_checksum_line_is_the_same_with_and_without_the_vmm(through_vmm, bare):
    assert checksum_line(through_vmm.serial) == checksum_line(bare.serial)


def test_linux_drives_the_disk_by_bus_master_dma_through_the_vmm(through_vmm):
    assert guest_report.find_ata_devices(through_vmm.serial)[PRIMARY_MASTER].uses_dma
    stats = parse_stats(through_vmm.serial)
    assert stats["dma.started"] > 0 and stats["dma.refused"] == 0
    assert stats["exit.npf"] == 0, "Linux must never touch the VMM's memory: the E820 map hides it"
    assert stats["io.pci_config"] > 0


def test_the_boot_loader_reads_kernel_and_initramfs_in_multi_sector_blocks(through_vmm):
    """SeaBIOS reads by polled READ SECTORS; the VMM forwards them as READ MULTIPLE (pio_blocks)."""
    stats = parse_stats(through_vmm.serial)
    assert "polled READ SECTORS goes to the disk as READ MULTIPLE" in through_vmm.serial
    assert stats["ata.pio_read_multiple"] > stats["ata.commands"] // 2
