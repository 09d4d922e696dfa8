"""A bus scan releases 0xCF8 (Linux reads the class of all 256 buses at boot), and the VMM
catches up before any command reaches a disk: a bus master moved or programmed unseen is
taken over, checked and refused like a watched one (dma_confined), a block laid over other
intercepted ports is put back, and no scan releases 0xCF8 while a DMA could be pending."""

from __future__ import annotations

from pathlib import Path

import pytest

from impl.testbed.probe.probe import Operation, build_probe_disk, probe_lines
from impl.testbed.qemu import MachineRun, run_machine
from impl.vmm.image import parse_stats
from spec.ata.commands import COMMANDS

pytestmark = pytest.mark.qemu

PROBE_TIMEOUT_S = 60
CODE = {command.name: command.code for command in COMMANDS}
BM_STATUS_ERROR = 0x02
BM_STATUS_INTERRUPT = 0x04
NEW_BAR4 = 0xD000  # where the probe's move-bar4 puts the bus masters
MBR_SIGNATURE = 0xAA55
SCANNED_BUSES = 40  # more than the run of other functions' accesses that releases 0xCF8


def bus_scan() -> list[Operation]:
    """Class register reads of slot 0 on buses that do not exist, as Linux's AGP probe does."""
    ops: list[Operation] = []
    for bus in range(1, SCANNED_BUSES + 1):
        ops += [("out", 4, 0xCF8, 0x80000000 | bus << 16 | 0x08), ("in", 4, 0xCFC)]
    return ops


def run_through_vmm(tmp_path: Path, vmm_image: Path, ops: list[Operation]) -> MachineRun:
    disk = build_probe_disk(tmp_path / "probe.img", [*ops, "power-off"], tmp_path)
    run = run_machine(disk, vmm=vmm_image, vmm_cmdline="log=debug", timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
    assert "storvisor: stop" not in run.serial, run.serial[-3000:]
    assert "probe: power-off" in run.serial
    return run


def test_a_bus_scan_releases_0xcf8_and_reads_the_same(tmp_path, vmm_image):
    run = run_through_vmm(tmp_path / "vmm", vmm_image, bus_scan())
    assert parse_stats(run.serial)["pci.address_released"] == 1
    bare_disk = build_probe_disk(tmp_path / "bare.img", [*bus_scan(), "power-off"], tmp_path / "bare")
    bare = run_machine(bare_disk, timeout_s=PROBE_TIMEOUT_S)
    assert not bare.timed_out, bare.serial[-3000:]
    assert probe_lines(run.serial, "in") == probe_lines(bare.serial, "in")


def test_bus_masters_moved_while_released_are_followed_and_a_dma_into_the_vmm_is_refused(tmp_path, vmm_image):
    run = run_through_vmm(tmp_path, vmm_image, [*bus_scan(), "move-bar4", "dma-to-vmm", "dma-to-ram", "pci-ide"])
    assert "register 20 moved to d000 while 0xCF8 was released" in run.serial
    [[bm_status, _]] = probe_lines(run.serial, "dma-to-vmm")
    assert int(bm_status, 16) & BM_STATUS_ERROR, "the table the guest wrote unseen is checked at START"
    assert "ata: primary bus master programmed unseen (table 5000): taken over" in run.serial
    assert "PRD table at 5000 (primary channel) reaches VMM memory: DMA refused" in run.serial
    [[_, bm_ram_status, signature]] = probe_lines(run.serial, "dma-to-ram")
    assert int(signature, 16) == MBR_SIGNATURE
    [[_, bar4]] = probe_lines(run.serial, "pci-ide")
    assert int(bar4, 16) == NEW_BAR4


def test_a_start_set_unseen_on_the_secondary_channel_is_checked_before_its_command_reaches_the_device(
    tmp_path, vmm_image
):
    # dma-secondary-to-vmm writes a table into the VMM at 5000, starts and stops the secondary
    # bus master at the moved, unwatched registers; START is then set again, and a command follows.
    ops = [*bus_scan(), "move-bar4", "dma-secondary-to-vmm", ("out", 1, NEW_BAR4 + 8, 0x09),
           ("out", 1, 0x177, CODE["READ DMA"]), ("in", 1, NEW_BAR4 + 8 + 2)]
    run = run_through_vmm(tmp_path, vmm_image, ops)
    [[status_unseen]] = probe_lines(run.serial, "dma-secondary-to-vmm")
    assert not int(status_unseen, 16) & BM_STATUS_INTERRUPT, "START alone, without a command, moves no data"
    assert "ata: secondary bus master programmed unseen (table 5000): taken over" in run.serial
    assert "PRD table at 5000 (secondary channel) reaches VMM memory: DMA refused" in run.serial
    port, _, status_after = probe_lines(run.serial, "in")[-1]
    assert int(port, 16) == NEW_BAR4 + 10 and int(status_after, 16) & BM_STATUS_ERROR


def test_bus_masters_laid_over_the_ide_ports_while_released_are_put_back(tmp_path, vmm_image):
    ops = [*bus_scan(), "bar4-over-ide", ("out", 1, 0x1F7, CODE["CHECK POWER MODE"]), "pci-ide", "dma-to-ram"]
    run = run_through_vmm(tmp_path, vmm_image, ops)
    assert "register 20 over intercepted ports at 1f0: moved back to c000" in run.serial
    [[_, bar4]] = probe_lines(run.serial, "pci-ide")
    assert int(bar4, 16) == 0xC000
    assert int(probe_lines(run.serial, "dma-to-ram")[0][2], 16) == MBR_SIGNATURE, "bus-master DMA still works"


def test_no_scan_releases_0xcf8_while_a_dma_command_waits_for_its_start(tmp_path, vmm_image):
    read_dma_pending = [("out", 1, 0x3F6, 0x02), ("out", 1, 0x1F6, 0xE0), ("out", 1, 0x1F2, 1),
                        ("out", 1, 0x1F7, CODE["READ DMA"])]
    run = run_through_vmm(tmp_path, vmm_image, [*read_dma_pending, *bus_scan()])
    assert parse_stats(run.serial)["pci.address_released"] == 0
