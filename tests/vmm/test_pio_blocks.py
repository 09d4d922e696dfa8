"""Polled PIO reads forwarded as READ MULTIPLE: the guest's register-level view stays the one a
READ SECTORS gives (every sector's words, the settled status after each, the final status), and
the VMM uses READ MULTIPLE only where that view cannot differ: polling (nIEN set), device 0, a
known multiple count. The probe guest drives the registers itself, once through the VMM and once
bare; both runs must print the same."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from impl.testbed.probe.probe import FIRST_FREE_LBA, SECTOR_SIZE, Operation, build_probe_disk, probe_lines
from impl.testbed.qemu import MachineRun, run_machine
from spec.ata.commands import COMMANDS

pytestmark = pytest.mark.qemu

PROBE_TIMEOUT_S = 90
CODE = {command.name: command.code for command in COMMANDS}
STATUS, ALT_STATUS, DEVICE_CONTROL = 0x1F7, 0x3F6, 0x3F6  # one control-block port: read and write side
NIEN, SRST = 0x02, 0x04
FIRST_LBA = FIRST_FREE_LBA + 8
DATA_SECTORS = 64


def sector_pattern(lba: int) -> bytes:
    """Distinct, recognisable contents for every data sector."""
    return b"".join(hashlib.sha256(f"{lba}:{i}".encode()).digest() for i in range(SECTOR_SIZE // 32))


def out(port: int, value: int) -> Operation:
    return ("out", 1, port, value)


def read_sectors(first: int, count: int, *, code: str = "READ SECTORS", control: int = NIEN) -> list[Operation]:
    """What a polling driver does: registers, command, then per sector wait, 256 words, alternate status."""
    ops: list[Operation] = [out(DEVICE_CONTROL, control), out(0x1F6, 0xE0)]
    if code.endswith("EXT"):
        ops += [out(0x1F2, count >> 8), out(0x1F3, (first >> 24) & 0xFF), out(0x1F4, 0), out(0x1F5, 0)]
    ops += [out(0x1F2, count & 0xFF), out(0x1F3, first & 0xFF), out(0x1F4, (first >> 8) & 0xFF),
            out(0x1F5, (first >> 16) & 0xFF), out(STATUS, CODE[code])]
    for _ in range(count):
        ops += [("wait-not-busy", STATUS), ("read-data", SECTOR_SIZE // 2), ("in", 1, ALT_STATUS)]
    return ops + [("wait-not-busy", STATUS)]


def set_multiple(count: int) -> list[Operation]:
    return [out(DEVICE_CONTROL, NIEN), out(0x1F6, 0xE0), out(0x1F2, count), out(STATUS, CODE["SET MULTIPLE MODE"]),
            ("wait-not-busy", STATUS)]


def software_reset() -> list[Operation]:
    return [out(DEVICE_CONTROL, NIEN | SRST), out(DEVICE_CONTROL, NIEN), ("wait-not-busy", ALT_STATUS)]


def run_probe(tmp_path: Path, ops: Sequence[Operation], vmm: Path | None, cmdline: str = "log=debug") -> MachineRun:
    disk = build_probe_disk(tmp_path / "probe.img", [*ops, "power-off"], tmp_path)
    with disk.open("r+b") as image:
        for lba in range(FIRST_LBA, FIRST_LBA + DATA_SECTORS):
            image.seek(lba * SECTOR_SIZE)
            image.write(sector_pattern(lba))
    run = run_machine(disk, vmm=vmm, vmm_cmdline=cmdline if vmm else "", timeout_s=PROBE_TIMEOUT_S)
    assert not run.timed_out and run.exit_code == 0, run.serial[-3000:]
    assert "probe: done" in run.serial or "probe: power-off" in run.serial, run.serial[-3000:]
    return run


def sectors_read(run: MachineRun) -> list[bytes]:
    """The sectors the probe read, from its `probe: data` lines (words are printed as hex)."""
    return [b"".join(int(word, 16).to_bytes(2, "little") for word in fields[1:]) for fields in probe_lines(run.serial, "data")]


def went_as_read_multiple(run: MachineRun, lba: int, count: int) -> int | None:
    """The sectors per block the VMM used for this read, None if it forwarded READ SECTORS."""
    match = re.search(rf"ata: lba {lba} count {count} goes to the disk as READ MULTIPLE, (\d+) sectors", run.serial)
    return None if match is None else int(match.group(1))


def guest_view(run: MachineRun) -> tuple[list[bytes], list[str]]:
    """What the guest saw: the data and the settled status of every wait. The alternate status
    read straight after a sector shows BSY or not as the disk's timing has it, bare too."""
    return sectors_read(run), [fields[2] for fields in probe_lines(run.serial, "wait")]


@pytest.mark.parametrize(
    ("first", "count", "code"),
    [(FIRST_LBA, 37, "READ SECTORS"), (FIRST_LBA + 3, 20, "READ SECTORS EXT")],
    ids=["lba28-37-sectors", "lba48-20-sectors"],
)
def test_polled_read_goes_as_read_multiple_and_the_guest_sees_what_it_sees_bare(tmp_path, vmm_image, first, count, code):
    ops = read_sectors(first, count, code=code)
    through = run_probe(tmp_path / "vmm", ops, vmm_image)
    bare = run_probe(tmp_path / "bare", ops, None)
    assert sectors_read(through) == [sector_pattern(lba) for lba in range(first, first + count)]
    assert guest_view(through) == guest_view(bare)
    assert guest_view(through)[1] == ["58"] * count + ["50"], "DRQ before every sector, then ready and done"
    assert went_as_read_multiple(through, first, count) == 16


def test_interrupt_driven_read_is_forwarded_as_read_sectors(tmp_path, vmm_image):
    ops = read_sectors(FIRST_LBA, 5, control=0x00)
    through = run_probe(tmp_path / "vmm", ops, vmm_image)
    assert sectors_read(through) == [sector_pattern(lba) for lba in range(FIRST_LBA, FIRST_LBA + 5)]
    assert went_as_read_multiple(through, FIRST_LBA, 5) is None


def test_option_single_forwards_every_read_unchanged(tmp_path, vmm_image):
    through = run_probe(tmp_path / "vmm", read_sectors(FIRST_LBA, 5), vmm_image, cmdline="log=debug pio_blocks=single")
    assert sectors_read(through) == [sector_pattern(lba) for lba in range(FIRST_LBA, FIRST_LBA + 5)]
    assert went_as_read_multiple(through, FIRST_LBA, 5) is None
    assert "READ MULTIPLE" not in through.serial


def test_a_multiple_count_the_guest_sets_is_followed_and_a_reset_makes_it_unknown(tmp_path, vmm_image):
    ops = [*set_multiple(4), *read_sectors(FIRST_LBA, 10), *software_reset(), *read_sectors(FIRST_LBA + 10, 6)]
    through = run_probe(tmp_path / "vmm", ops, vmm_image)
    bare = run_probe(tmp_path / "bare", ops, None)
    assert guest_view(through) == guest_view(bare)
    assert sectors_read(through) == [sector_pattern(lba) for lba in range(FIRST_LBA, FIRST_LBA + 16)]
    assert "ata: disk 0 now reads 4 sectors per PIO block" in through.serial
    assert went_as_read_multiple(through, FIRST_LBA, 10) == 4
    assert went_as_read_multiple(through, FIRST_LBA + 10, 6) is None, "after a reset the count is unknown"


def test_a_refused_multiple_count_stops_the_multiple_reads(tmp_path, vmm_image):
    ops = [*set_multiple(3), *read_sectors(FIRST_LBA, 4)]
    through = run_probe(tmp_path / "vmm", ops, vmm_image)
    bare = run_probe(tmp_path / "bare", ops, None)
    assert guest_view(through) == guest_view(bare)
    assert sectors_read(through) == [sector_pattern(lba) for lba in range(FIRST_LBA, FIRST_LBA + 4)]
    assert went_as_read_multiple(through, FIRST_LBA, 4) is None
