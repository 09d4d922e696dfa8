"""The probe guest attacks the VMM on purpose: it must find only missing memory, refused DMA
and a memory map without the VMM, and the VMM must keep running after every attempt.
The same probe without the VMM shows that each check would see the difference."""

from __future__ import annotations

import re

import pytest

from impl.testbed.qemu import MachineRun, run_machine
from impl.vmm.build import VMM_WINDOW, parse_stats

pytestmark = pytest.mark.qemu

PROBE_TIMEOUT_S = 60
BM_STATUS_ERROR = 0x02  # PIIX bus-master status: error bit
FW_CFG_DMA_CTL_ERROR = 0x01
MBR_SIGNATURE = 0xAA55

ATTACK_SCRIPT = [
    "e820", "peek-vmm", "poke-vmm", "peek-vmm", "fwcfg-to-vmm",
    "dma-to-ram", "dma-to-vmm", "dma-to-ram", "pci-ide", "power-off",
]


def probe_lines(serial: str, operation: str) -> list[list[str]]:
    """The fields of every `probe: <operation> ...` line, in order."""
    return [line.split()[2:] for line in serial.splitlines() if re.match(rf"probe: {operation}( |\r?$)", line)]


def e820_map(serial: str) -> list[tuple[int, int, int]]:
    """(base, length, type) of every E820 entry the probe printed (first listing only)."""
    entries = []
    for base, length, kind in probe_lines(serial, "e820"):
        entry = (int(base, 16), int(length, 16), int(kind, 16))
        if entries and entry == entries[0]:
            break
        entries.append(entry)
    return entries


@pytest.fixture(scope="module")
def attack_disk(tmp_path_factory):
    from impl.testbed.probe.probe import build_probe_disk

    directory = tmp_path_factory.mktemp("probe")
    return build_probe_disk(directory / "probe.img", ATTACK_SCRIPT, directory)


@pytest.fixture(scope="module")
def through_vmm(vmm_image, attack_disk) -> MachineRun:
    run = run_machine(attack_disk, vmm=vmm_image, timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out, run.serial[-3000:]
    return run


@pytest.fixture(scope="module")
def bare(attack_disk) -> MachineRun:
    run = run_machine(attack_disk, timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out, run.serial[-3000:]
    return run


def test_vmm_survives_every_attack_and_the_guest_powers_off(through_vmm):
    assert through_vmm.exit_code == 0, through_vmm.qemu_stderr
    assert "probe: power-off" in through_vmm.serial
    assert "storvisor: stop" not in through_vmm.serial
    assert "probe: error" not in through_vmm.serial


def test_e820_map_marks_the_vmm_window_reserved_and_never_ram(through_vmm):
    window_start, window_end = VMM_WINDOW
    entries = e820_map(through_vmm.serial)
    assert entries, through_vmm.serial
    for base, length, kind in entries:
        if kind == 1:
            assert base + length <= window_start or base >= window_end, f"RAM entry {base:#x}+{length:#x} covers the VMM"
    assert (window_start, window_end - window_start, 2) in entries
    usable = sum(length for _, length, kind in entries if kind == 1)
    assert usable > 200 << 20, "the VMM must hide only itself, not the guest's memory"


def test_e820_map_without_the_vmm_has_ram_there(bare):
    window_start, _ = VMM_WINDOW
    entries = e820_map(bare.serial)
    assert any(kind == 1 and base <= window_start < base + length for base, length, kind in entries)


def test_vmm_memory_reads_as_missing_memory(through_vmm, bare):
    for address, value in probe_lines(through_vmm.serial, "peek"):
        assert value == "ffffffff", f"read of VMM memory at {address} returned {value}"
    assert len(probe_lines(through_vmm.serial, "peek")) == 6
    # Without the VMM the same addresses are ordinary RAM (QEMU zero-fills it).
    assert any(value != "ffffffff" for _, value in probe_lines(bare.serial, "peek"))


def test_writes_to_vmm_memory_vanish(through_vmm, bare):
    [[address, plain_store, string_store]] = probe_lines(through_vmm.serial, "poke")
    assert (plain_store, string_store) == ("ffffffff", "ffffffff")
    assert parse_stats(through_vmm.serial)["npf.write"] >= 5  # one store, then rep stosd x4
    [[_, bare_plain, bare_string]] = probe_lines(bare.serial, "poke")
    assert (bare_plain, bare_string) == ("deadbeef", "5a5a5a5a")


def test_bus_master_dma_into_the_vmm_fails_towards_the_guest(through_vmm):
    [[bm_status, _ata_status]] = probe_lines(through_vmm.serial, "dma-to-vmm")
    assert int(bm_status, 16) & BM_STATUS_ERROR
    stats = parse_stats(through_vmm.serial)
    assert stats["dma.refused"] == 1
    assert "PRD table at 5000 reaches VMM memory: DMA refused" in through_vmm.serial


def test_bus_master_dma_into_guest_memory_works_before_and_after_a_refused_one(through_vmm):
    results = probe_lines(through_vmm.serial, "dma-to-ram")
    assert len(results) == 2
    for bm_status, _ata_status, signature in results:
        assert not int(bm_status, 16) & BM_STATUS_ERROR
        assert int(signature, 16) == MBR_SIGNATURE
    assert parse_stats(through_vmm.serial)["dma.started"] == 2


def test_fw_cfg_dma_into_the_vmm_is_refused(through_vmm, bare):
    [[control]] = probe_lines(through_vmm.serial, "fwcfg-to-vmm")
    assert int(control, 16) == FW_CFG_DMA_CTL_ERROR
    assert parse_stats(through_vmm.serial)["fwcfg.dma_refused"] == 1
    [[bare_control]] = probe_lines(bare.serial, "fwcfg-to-vmm")
    assert int(bare_control, 16) == 0  # QEMU clears the control word when the transfer is done


def test_guest_sees_the_real_ide_controller_config(through_vmm, bare):
    assert probe_lines(through_vmm.serial, "pci-ide") == probe_lines(bare.serial, "pci-ide")


def test_statistics_are_printed_at_power_off(through_vmm):
    stats = parse_stats(through_vmm.serial)
    assert stats["exit.ioio"] > 0 and stats["exit.vmmcall"] > 0 and stats["exit.npf"] >= 5
    assert stats["ata.commands"] >= 3
