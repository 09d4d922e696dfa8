"""The probe guest attacks the VMM on purpose: it must find only missing memory, refused DMA
and a memory map without the VMM, and the VMM must keep running after every attempt.
The same probe without the VMM shows that each check would see the difference."""

from __future__ import annotations

import pytest

from impl.testbed.probe.probe import probe_lines
from impl.testbed.qemu import MachineRun, run_machine
from impl.vmm.image import VMM_WINDOW, parse_stats

pytestmark = pytest.mark.qemu

PROBE_TIMEOUT_S = 60
BM_STATUS_ERROR = 0x02  # PIIX bus-master status: error bit
FW_CFG_DMA_CTL_ERROR = 0x01
MBR_SIGNATURE = 0xAA55

ATTACK_SCRIPT = [
    "e820", "peek-vmm", "poke-vmm", "peek-vmm", "fwcfg-to-vmm",
    "dma-to-ram", "dma-to-vmm", "dma-to-ram", "pci-ide", "power-off",
]


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
    assert "PRD table at 5000 (primary channel) reaches VMM memory: DMA refused" in through_vmm.serial


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


DMA_EDGE_SCRIPT = [
    "dma-table-in-vmm", "dma-64k-into-vmm", "dma-secondary-to-vmm", "bar4-over-ide", "dma-to-ram",
    "move-bar4", "pci-ide", "dma-to-vmm", "dma-to-ram", "power-off",
]


@pytest.fixture(scope="module")
def dma_edges(vmm_image, tmp_path_factory) -> MachineRun:
    """Attacks only run through the VMM: bare, a PRD table in zeroed RAM would DMA over the IVT."""
    from impl.testbed.probe.probe import build_probe_disk

    directory = tmp_path_factory.mktemp("probe-dma")
    disk = build_probe_disk(directory / "probe.img", DMA_EDGE_SCRIPT, directory)
    run = run_machine(disk, vmm=vmm_image, timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
    assert "storvisor: stop" not in run.serial
    return run


def test_prd_table_inside_the_vmm_is_refused(dma_edges):
    [[bm_status, _]] = probe_lines(dma_edges.serial, "dma-table-in-vmm")
    assert int(bm_status, 16) & BM_STATUS_ERROR
    assert "PRD table at 8001000 (primary channel) reaches VMM memory" in dma_edges.serial


def test_prd_entry_whose_size_field_means_64k_is_checked_as_64k(dma_edges):
    [[bm_status, _]] = probe_lines(dma_edges.serial, "dma-64k-into-vmm")
    assert int(bm_status, 16) & BM_STATUS_ERROR


def test_vmm_follows_the_bus_master_registers_when_the_guest_moves_bar4(dma_edges):
    [[new_base]] = probe_lines(dma_edges.serial, "move-bar4")
    assert int(new_base, 16) == 0xD000
    [[_, bar4]] = probe_lines(dma_edges.serial, "pci-ide")
    assert int(bar4, 16) == 0xD000
    [[bm_status, _]] = probe_lines(dma_edges.serial, "dma-to-vmm")
    assert int(bm_status, 16) & BM_STATUS_ERROR, "a DMA at the moved registers must still be checked"
    after_move = probe_lines(dma_edges.serial, "dma-to-ram")[-1]
    assert int(after_move[2], 16) == MBR_SIGNATURE
    stats = parse_stats(dma_edges.serial)
    assert stats["dma.refused"] == 4 and stats["dma.started"] == 2


def test_bus_master_registers_cannot_be_laid_over_other_intercepted_ports(dma_edges):
    [[bar4]] = probe_lines(dma_edges.serial, "bar4-over-ide")
    assert int(bar4, 16) not in (0x1F0, 0), "the BAR4 write over 0x1F0 must not reach the controller"
    assert "register 20 over intercepted ports at 1f0: write not passed on" in dma_edges.serial
    assert probe_lines(dma_edges.serial, "dma-to-ram")[0][2] == "0000aa55", "bus-master DMA still works"


def test_secondary_channel_dma_is_checked_too(dma_edges):
    [[bm_status]] = probe_lines(dma_edges.serial, "dma-secondary-to-vmm")
    assert int(bm_status, 16) & BM_STATUS_ERROR
    assert "PRD table at 5000 (secondary channel) reaches VMM memory: DMA refused" in dma_edges.serial


@pytest.mark.parametrize("through", ["vmm", "vmm-pio-intercepted", "bare"])
def test_string_io_forms_move_the_same_data_as_on_the_bare_machine(vmm_image, probe_disk, through):
    cmdline = {"vmm": "log=debug", "vmm-pio-intercepted": "log=debug pio=intercepted", "bare": ""}[through]
    run = run_machine(
        probe_disk(["pio-strings", "power-off"]), vmm=vmm_image if through != "bare" else None,
        vmm_cmdline=cmdline, timeout_s=PROBE_TIMEOUT_S,
    )
    assert run.exit_code == 0 and not run.timed_out, run.serial[-3000:]
    assert probe_lines(run.serial, "pio-strings") == [["01", "01", "01"]], run.serial
    if through == "vmm-pio-intercepted":
        # Every form exits and goes through the decoder: the word forms as well as the dword one.
        assert parse_stats(run.serial)["io.string_instructions"] >= 4
    if through == "vmm":
        # Word strings on Data reach the device directly; the dword read also covers Sector
        # Count and LBA Low, which stay intercepted, so it still exits and is decoded.
        stats = parse_stats(run.serial)
        assert 1 <= stats["io.string_instructions"] < 4
    if through != "bare":
        # The ATA manager follows the commands it passes through: code, name, LBA and count.
        assert run.serial.count("storvisor: debug: ata: command 30 WRITE SECTORS lba 100 count 1") == 1
        assert run.serial.count("storvisor: debug: ata: command 20 READ SECTORS lba 100 count 1") == 3


@pytest.mark.parametrize("through", ["vmm", "bare"])
def test_guest_sees_no_svm_and_cannot_move_the_host_save_area(vmm_image, probe_disk, through):
    run = run_machine(
        probe_disk(["svm-hidden", "e820", "power-off"]), vmm=vmm_image if through == "vmm" else None,
        timeout_s=PROBE_TIMEOUT_S,
    )
    assert run.exit_code == 0 and not run.timed_out, run.serial[-3000:]
    [[ecx, gp_taken, efer]] = probe_lines(run.serial, "svm-hidden")
    svm_bit = bool(int(ecx, 16) & (1 << 2))  # CPUID 8000_0001h ECX bit 2
    assert not int(efer, 16) & (1 << 12), "EFER.SVME must read clear"
    if through == "vmm":
        assert not svm_bit and gp_taken == "01"
        assert probe_lines(run.serial, "e820"), "the VMM must still be in control after the WRMSR"
        assert parse_stats(run.serial)["exit.msr"] == 2
    else:
        assert svm_bit and gp_taken == "00"


def test_guest_init_ipi_leaves_the_vmm_in_control(vmm_image, probe_disk):
    run = run_machine(probe_disk(["self-init", "e820", "power-off"]), vmm=vmm_image, timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
    window_start, window_end = VMM_WINDOW
    if "probe: self-init returned" in run.serial:
        # QEMU does not reset its only CPU for this INIT; the VMM must still be answering int 15h.
        assert (window_start, window_end - window_start, 2) in e820_map(run.serial)
    else:
        # Where the CPU takes the INIT, the VMM intercepts it and stops the machine.
        assert "storvisor: stop: the guest sent INIT" in run.serial


@pytest.mark.parametrize("through", ["vmm", "bare"])
def test_svm_instructions_are_invalid_opcodes_to_the_guest(vmm_image, probe_disk, through):
    run = run_machine(
        probe_disk(["vmsave-into-vmm", "e820", "power-off"]), vmm=vmm_image if through == "vmm" else None,
        timeout_s=PROBE_TIMEOUT_S,
    )
    assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
    assert probe_lines(run.serial, "vmsave-into-vmm") == [["01"]], "VMSAVE must raise #UD, as without SVM"
    if through == "vmm":
        assert "storvisor: stop" not in run.serial
        assert parse_stats(run.serial)["exit.svm_instruction"] == 1
        window_start, window_end = VMM_WINDOW
        assert (window_start, window_end - window_start, 2) in e820_map(run.serial)


def test_vmm_keeps_working_while_the_guest_has_a20_off(vmm_image, probe_disk):
    run = run_machine(probe_disk(["a20-off", "peek-vmm", "power-off"]), vmm=vmm_image, timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
    [[port_92, at_1m]] = probe_lines(run.serial, "a20-off")
    assert not int(port_92, 16) & 0x02 and at_1m == "24681357", "A20 must really be off (1 MiB aliases 0)"
    window_start, window_end = VMM_WINDOW
    assert (window_start, window_end - window_start, 2) in e820_map(run.serial)
    assert all(value == "ffffffff" for _, value in probe_lines(run.serial, "peek"))


PORT_SCRIPT = [
    ("out", 4, 0xCF8, 0x80000000), ("in", 4, 0xCFC),  # host bridge vendor and device
    ("out", 1, 0x1F6, 0xE0), ("out", 1, 0x1F3, 0x5A), ("in", 1, 0x1F3),  # LBA low reads back
    ("out", 1, 0x1F2, 0x07), ("in", 1, 0x1F2), ("in", 1, 0x3F6),  # sector count, alternate status
    ("in", 2, 0x1F0),  # the data register with no data phase
    "power-off",
]


def test_scripted_port_io_reads_the_same_through_the_vmm_as_bare(vmm_image, probe_disk):
    runs = {}
    for through in ("vmm", "bare"):
        run = run_machine(probe_disk(PORT_SCRIPT), vmm=vmm_image if through == "vmm" else None, timeout_s=PROBE_TIMEOUT_S)
        assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
        runs[through] = probe_lines(run.serial, "in")
    assert runs["vmm"] == runs["bare"]
    assert runs["vmm"][0] == ["00000cfc", "04", "12378086"]  # i440FX
    assert runs["vmm"][1] == ["000001f3", "01", "0000005a"]
    assert runs["vmm"][2] == ["000001f2", "01", "00000007"]


def test_probe_script_rejects_bad_operations_with_their_name():
    from impl.testbed.probe.probe import script_sectors

    with pytest.raises(ValueError, match="unknown probe operation 'nope'"):
        script_sectors(["nope"])
    with pytest.raises(ValueError, match="size must be 1, 2 or 4"):
        script_sectors([("out", 3, 0x1F3, 1)])
    with pytest.raises(ValueError, match="value does not fit 1 bytes"):
        script_sectors([("out", 1, 0x1F3, 256)])
    with pytest.raises(ValueError, match="takes no operands"):
        script_sectors([("e820", 1)])
