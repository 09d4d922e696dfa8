"""Command and control block registers: HOB, BSY/DRQ ownership, INTRQ, nIEN, SRST, device 1, bad accesses."""

import pytest

from spec.ata.state import Phase
from tests.ata.support import (
    BM,
    BM_STATUS,
    CMD,
    COUNT,
    CTRL,
    DATA,
    DEVICE,
    ERROR,
    LBA_HIGH,
    LBA_LOW,
    LBA_MID,
    STATUS,
    Host,
)

SIGNATURE = (0x01, 0x01, 0x00, 0x00, 0x00)  # Sector Count, LBA Low, Mid, High, Device


def signature(host: Host) -> tuple[int, ...]:
    return tuple(host.read(p) for p in (COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE))


def test_power_on_state_is_ready_with_the_signature():
    host = Host()
    assert host.read(STATUS) == 0x50
    assert signature(host) == SIGNATURE
    assert host.read(ERROR) == 0x01


def test_lba48_registers_keep_previous_content_readable_with_hob():
    host = Host()
    host.write(LBA_LOW, 0x11)
    host.write(LBA_LOW, 0x22)
    host.write(COUNT, 0x33)
    assert host.read(LBA_LOW) == 0x22
    host.write(CTRL, 0x80)  # HOB
    assert host.read(LBA_LOW) == 0x11
    assert host.read(COUNT) == 0x01  # previous content of Sector Count: the signature's 01h
    host.write(LBA_MID, 0x44)  # any command-block write clears HOB
    assert not host.channel.state.hob
    assert host.read(LBA_LOW) == 0x22


def test_hob_does_not_apply_to_error_device_or_status():
    host = Host()
    host.write(DEVICE, 0xE5)
    host.write(CTRL, 0x80)
    assert host.read(ERROR) == 0x01 and host.read(DEVICE) == 0xE5 and host.read(STATUS) == 0x50


def test_command_block_writes_while_busy_are_ignored():
    host = Host(latency=5)
    host.lba28(3, 1)
    host.write(STATUS, 0x20)
    assert host.status == 0xD0
    host.write(LBA_LOW, 0x77)
    host.write(DEVICE, 0xF0)
    host.write(STATUS, 0xEC)  # a second command while busy
    assert host.read(LBA_LOW) == 3 and host.read(DEVICE) == 0xE0
    assert host.read_pio(1)[:2] == (3).to_bytes(2, "little")


def test_command_block_writes_while_drq_are_ignored():
    host = Host()
    host.lba28(5, 1)
    host.command(0x20)
    assert host.status == 0x58
    host.write(COUNT, 0x09)
    host.write(STATUS, 0xE7)  # FLUSH CACHE during the data phase
    assert host.read(COUNT) == 1 and host.channel.state.phase is Phase.PIO_IN_TRANSFER


def test_status_read_clears_intrq_alternate_status_does_not():
    host = Host()
    host.command(0xE5)  # CHECK POWER MODE completes with an interrupt
    assert host.channel.intrq
    host.read(CTRL)
    assert host.channel.intrq
    host.read(STATUS)
    assert not host.channel.intrq


def test_nien_masks_intrq_and_clearing_it_shows_the_pending_interrupt():
    host = Host()
    host.write(CTRL, 0x02)
    host.command(0xE5)
    assert not host.channel.intrq and host.channel.state.interrupt_pending
    assert not host.read(BM_STATUS) & 0x04  # the line never rose, so the bus master latched nothing
    host.write(CTRL, 0x00)
    assert host.channel.intrq and host.read(BM_STATUS) & 0x04


def test_writing_the_command_register_clears_a_pending_interrupt():
    host = Host(latency=2)
    host.command(0xE5)
    assert host.channel.intrq
    host.write(STATUS, 0xE7)  # FLUSH CACHE
    assert not host.channel.intrq


def test_software_reset_leaves_the_signature_and_no_interrupt():
    host = Host()
    host.lba28(9, 2)
    host.command(0x20)
    assert host.channel.intrq
    host.write(CTRL, 0x04)  # SRST
    assert host.status == 0x80 and not host.channel.intrq
    host.tick(3)
    assert host.status == 0x80  # nothing happens while SRST stays set
    host.write(CTRL, 0x00)
    host.tick()
    assert host.status == 0x50 and not host.channel.intrq
    assert signature(host) == SIGNATURE and host.read(ERROR) == 0x01
    assert host.read(DATA, 2) == 0xFFFF  # the abandoned sector is gone


def test_software_reset_waits_for_an_outstanding_store_request():
    host = Host(latency=6)
    host.lba28(1, 1)
    host.write(STATUS, 0x30)  # WRITE SECTORS
    host.settle()
    host.write_pio(bytes(512))
    assert host.channel.state.store_busy
    host.write(CTRL, 0x04)
    host.write(CTRL, 0x00)
    host.tick(3)
    assert host.status == 0x80
    assert host.settle() == 0x50


def test_device1_absent_status_reads_zero_and_commands_are_ignored():
    host = Host()
    host.write(DEVICE, 0xF0)
    assert host.read(STATUS) == 0x00 and host.read(CTRL) == 0x00
    host.write(STATUS, 0xEC)
    host.tick(3)
    host.write(DEVICE, 0xE0)
    assert host.read(STATUS) == 0x50 and host.channel.state.phase is Phase.IDLE


def test_device1_selected_releases_intrq():
    host = Host()
    host.command(0xE5)
    assert host.channel.intrq
    host.write(DEVICE, 0xB0)
    assert not host.channel.intrq
    host.write(DEVICE, 0xA0)
    assert host.channel.intrq


def test_data_register_without_drq_reads_all_ones_and_ignores_writes():
    host = Host()
    assert host.read(DATA, 2) == 0xFFFF and host.read(DATA, 4) == 0xFFFFFFFF and host.read(DATA, 1) == 0xFF
    host.write(DATA, 0x1234, 2)
    assert host.channel.observe() == Host().channel.observe()


def test_data_register_32_bit_and_8_bit_accesses_move_words():
    host = Host()
    host.lba28(2, 1)
    host.command(0x20)
    first = host.read(DATA, 4)
    second = host.read(DATA, 1)
    assert first == 0x00020002 and second == 0x02
    assert host.channel.state.transfer.position == 6


def test_wide_access_to_byte_registers_reads_consecutive_ports():
    host = Host()
    host.write(LBA_LOW, 0x3412, 2)  # LBA Low ← 12h, LBA Mid ← 34h
    assert host.read(LBA_LOW) == 0x12 and host.read(LBA_MID) == 0x34
    assert host.read(STATUS, 2) == 0xFF50  # Status, then 1F8h which no register drives


@pytest.mark.parametrize("port", [CMD - 1, CMD + 8, CTRL + 1, BM + 8, 0x80])
def test_ports_outside_the_channel_are_refused(port):
    host = Host()
    with pytest.raises(ValueError, match="not a register"):
        host.channel.read(port, 1)
    with pytest.raises(ValueError, match="not a register"):
        host.channel.write(port, 1, 0)


@pytest.mark.parametrize("width", [0, 3, 8])
def test_access_widths_other_than_1_2_4_are_refused(width):
    with pytest.raises(ValueError, match="width"):
        Host().channel.read(STATUS, width)


def test_values_wider_than_the_access_are_refused():
    with pytest.raises(ValueError, match="does not fit"):
        Host().channel.write(COUNT, 1, 0x100)
