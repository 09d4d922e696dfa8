"""Every command of the table, with its good and its bad input; every code outside the table aborts."""

import pytest

from spec.ata.backing_store import SECTOR_BYTES, Flush, MemoryStore, ReadSectors, StoreResult, WriteSectors
from spec.ata.commands import COMMANDS, COMMANDS_BY_CODE
from spec.ata.device import AtaChannel
from spec.ata.errors import CannotHappen
from spec.ata.prd import FlatMemory
from spec.ata.state import Phase
from tests.ata.support import COUNT, CTRL, DEVICE, ERROR, LBA_HIGH, LBA_LOW, LBA_MID, STATUS, Host, pattern

ABORTED = (0x51, 0x04)  # status DRDY|DSC|ERR, Error ABRT
ID_NOT_FOUND = (0x51, 0x10)


def outcome(host: Host) -> tuple[int, int]:
    return host.status, host.read(ERROR)


def identify(host: Host) -> list[int]:
    assert host.command(0xEC) == 0x58
    data = host.read_pio(1)
    assert host.status == 0x50
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, SECTOR_BYTES, 2)]


def ata_text(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).decode("ascii").rstrip()


# --- Unknown codes -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [c for c in range(256) if c not in COMMANDS_BY_CODE])
def test_every_code_outside_the_table_aborts_with_an_interrupt(code):
    host = Host()
    host.write(STATUS, code)
    assert host.status == 0xD0
    host.settle()
    assert outcome(host) == ABORTED and host.channel.intrq


def test_every_table_entry_has_its_handler():
    from spec.ata import handlers

    assert all(callable(getattr(handlers, c.handler_name)) for c in COMMANDS)


# --- IDENTIFY DEVICE ---------------------------------------------------------------------------


def test_identify_reports_capacity_strings_and_checksum():
    host = Host(sectors=5000)
    words = identify(host)
    assert words[60] | words[61] << 16 == 5000
    assert sum(words[100 + i] << (16 * i) for i in range(4)) == 5000
    assert ata_text(words[27:47]) == "STORVISOR VIRTUAL ATA DISK"
    assert (words[255] & 0xFF) == 0xA5 and sum(b for w in words for b in w.to_bytes(2, "little")) % 256 == 0
    assert words[83] & 0x0400 and words[49] & 0x0300 == 0x0300  # 48-bit, LBA and DMA supported
    assert words[1] * words[3] * words[6] <= 5000


def test_identify_raises_intrq_for_its_data_block_and_none_after():
    host = Host()
    host.command(0xEC)
    assert host.channel.intrq
    host.read(STATUS)
    host.read_words(256)
    assert not host.channel.intrq and host.status == 0x50


def test_identify_saturates_words_60_61_for_disks_beyond_28_bits():
    words = identify(Host(sectors=1 << 29, sparse=True))
    assert words[60] | words[61] << 16 == 0x0FFFFFFF
    assert sum(words[100 + i] << (16 * i) for i in range(4)) == 1 << 29


# --- Reads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lba, count", [(0, 1), (7, 3), (60, 4)])
def test_read_sectors(lba, count):
    host = Host()
    host.lba28(lba, count)
    host.command(0x20)
    assert host.read_pio(count) == pattern(lba, count)
    assert host.status == 0x50


def test_read_sectors_ext_uses_previous_content_for_the_high_bytes():
    host = Host(sectors=70000)
    host.lba48(0x10203, 2)
    host.command(0x24)
    assert host.read_pio(2) == pattern(0x10203, 2)


def test_read_sectors_count_zero_means_256():
    host = Host(sectors=300)
    host.lba28(10, 0)
    host.command(0x20)
    assert host.read_pio(256) == pattern(10, 256)
    assert host.status == 0x50


def test_read_sectors_ext_count_zero_means_65536():
    host = Host(sectors=65536)
    host.lba48(0, 0)
    host.write(STATUS, 0x42)  # READ VERIFY SECTORS EXT: 65536 sectors without moving them
    host.settle()
    assert host.status == 0x50 and host.store.requests[-1].count == 65536


def test_read_multiple_transfers_blocks_with_one_interrupt_each():
    host = Host()
    host.write(COUNT, 4)
    host.command(0xC6)  # SET MULTIPLE MODE 4
    host.lba28(8, 10)
    host.command(0xC4)
    interrupts = 0
    data = b""
    while len(data) < 10 * SECTOR_BYTES:
        host.settle()
        interrupts += host.channel.intrq
        host.read(STATUS)
        block = 4 if len(data) < 8 * SECTOR_BYTES else 2
        data += host.read_words(block * 256)
    assert data == pattern(8, 10) and interrupts == 3 and host.status == 0x50


def test_read_multiple_without_set_multiple_mode_aborts():
    host = Host()
    host.lba28(0, 1)
    host.command(0xC4)
    assert outcome(host) == ABORTED


def test_read_multiple_ext():
    host = Host()
    host.write(COUNT, 2)
    host.command(0xC6)
    host.lba48(5, 4)
    host.command(0x29)
    host.read(STATUS)
    assert host.read_words(512) == pattern(5, 2)


@pytest.mark.parametrize("count", [0, 1, 2, 4, 8, 16])
def test_set_multiple_mode_accepts_powers_of_two_and_zero(count):
    host = Host()
    host.write(COUNT, count)
    host.command(0xC6)
    assert host.status == 0x50 and identify(host)[59] == ((0x100 | count) if count else 0)


@pytest.mark.parametrize("count", [3, 5, 32, 0xFF])
def test_set_multiple_mode_rejects_other_counts(count):
    host = Host()
    host.write(COUNT, count)
    host.command(0xC6)
    assert outcome(host) == ABORTED and host.channel.state.settings.multiple_count == 0


# --- Addressing failures ----------------------------------------------------------------------


@pytest.mark.parametrize("lba, count", [(64, 1), (63, 2), (0, 0), (0x0FFFFFFF, 1)])
def test_a_range_beyond_the_capacity_fails_with_idnf(lba, count):
    host = Host(sectors=64)
    host.lba28(lba, count)
    host.command(0x20)
    assert outcome(host) == ID_NOT_FOUND and host.channel.intrq
    assert host.store.requests == []


def test_a_28_bit_range_that_would_wrap_past_2_to_the_28_fails_with_idnf():
    host = Host(sectors=1 << 29, sparse=True)
    host.lba28(0x0FFFFFFE, 1)
    host.command(0x20)
    assert host.read_pio(1) == bytes(SECTOR_BYTES)  # the last sector a 28-bit command reaches
    host.lba28(0x0FFFFFFE, 2)
    host.command(0x20)
    assert outcome(host) == ID_NOT_FOUND


def test_a_48_bit_range_beyond_the_capacity_fails_with_idnf():
    host = Host(sectors=64)
    host.lba48(1 << 40, 1)
    host.command(0x25)
    assert outcome(host) == ID_NOT_FOUND


def test_a_medium_error_reports_unc():
    host = Host(bad=frozenset({12}))
    host.lba28(10, 4)
    host.command(0x20)
    host.read_pio(2)
    host.settle()
    assert outcome(host) == (0x51, 0x40) and host.channel.intrq


# --- Writes -----------------------------------------------------------------------------------


def test_write_sectors_first_block_without_interrupt_later_blocks_and_completion_with():
    host = Host(latency=1)
    data = bytes(range(256)) * 6
    host.lba28(20, 3)
    host.write(STATUS, 0x30)
    assert host.settle() == 0x58 and not host.channel.intrq
    host.write_pio(data[:SECTOR_BYTES])
    assert host.settle() == 0x58 and host.channel.intrq
    host.read(STATUS)
    host.write_pio(data[SECTOR_BYTES:])
    assert host.settle() == 0x50 and host.channel.intrq
    assert host.store.sectors[20 * SECTOR_BYTES : 23 * SECTOR_BYTES] == data


def test_write_sectors_ext_and_write_multiple_ext():
    host = Host()
    host.lba48(30, 2)
    host.command(0x34)
    host.write_pio(b"\x11" * 1024)
    assert host.settle() == 0x50
    host.write(COUNT, 2)
    host.command(0xC6)
    host.lba48(40, 2)
    host.command(0x39)
    for i in range(512):
        host.write(0x1F0, 0x2222, 2)
    assert host.settle() == 0x50
    assert host.store.sectors[30 * 512 : 32 * 512] == b"\x11" * 1024
    assert host.store.sectors[40 * 512 : 42 * 512] == b"\x22" * 1024


def test_write_multiple_sends_whole_blocks():
    host = Host()
    host.write(COUNT, 4)
    host.command(0xC6)
    host.lba28(0, 5)
    host.command(0xC5)
    for _ in range(4 * 256):
        host.write(0x1F0, 0xABCD, 2)
    assert host.settle() == 0x58  # the second, shorter block
    for _ in range(256):
        host.write(0x1F0, 0xABCD, 2)
    assert host.settle() == 0x50
    assert [type(r) for r in host.store.requests] == [WriteSectors, WriteSectors]
    assert host.store.sectors[: 5 * 512] == b"\xcd\xab" * (5 * 256)


def test_write_multiple_without_set_multiple_mode_aborts():
    host = Host()
    host.lba28(0, 1)
    host.command(0xC5)
    assert outcome(host) == ABORTED


def test_with_the_write_cache_off_every_write_is_flushed_before_it_completes():
    host = Host()
    host.write(ERROR, 0x82)
    host.command(0xEF)
    host.lba28(3, 1)
    host.command(0x30)
    host.write_pio(bytes(512))
    host.settle()
    assert [type(r) for r in host.store.requests] == [WriteSectors, Flush]
    assert not identify(host)[85] & 0x20


# --- Non-data ---------------------------------------------------------------------------------


def test_read_verify_reads_without_transferring():
    host = Host()
    host.lba28(4, 8)
    assert host.command(0x40) == 0x50 and host.channel.intrq
    assert host.store.requests[-1].count == 8


def test_read_verify_reports_a_medium_error():
    host = Host(bad=frozenset({6}))
    host.lba28(4, 8)
    host.command(0x40)
    assert outcome(host) == (0x51, 0x40)


@pytest.mark.parametrize("code", [0xE7, 0xEA])
def test_flush_cache_asks_the_store_to_flush(code):
    host = Host(latency=3)
    host.write(STATUS, code)
    assert host.status == 0xD0
    assert host.settle() == 0x50 and isinstance(host.store.requests[-1], Flush) and host.channel.intrq


@pytest.mark.parametrize("mode, word, bit", [(0x45, 88, 0x2000), (0x22, 63, 0x0400), (0x0C, 88, 0)])
def test_set_features_transfer_mode_is_reported_by_identify(mode, word, bit):
    host = Host()
    host.write(ERROR, 0x03)
    host.write(COUNT, mode)
    host.command(0xEF)
    assert host.status == 0x50
    assert identify(host)[word] & 0xFF00 == bit


@pytest.mark.parametrize("features, count", [(0x03, 0x46), (0x03, 0x23), (0x03, 0x0D), (0x03, 0x10), (0x55, 0), (0xAA, 0)])
def test_set_features_aborts_unsupported_modes_and_subcommands(features, count):
    host = Host()
    host.write(ERROR, features)
    host.write(COUNT, count)
    host.command(0xEF)
    assert outcome(host) == ABORTED


@pytest.mark.parametrize("code, reported", [(0xE1, 0x80), (0xE0, 0x00)])
def test_check_power_mode_reports_idle_and_standby_and_a_read_wakes_the_device(code, reported):
    host = Host()
    host.write(COUNT, 0x12)
    host.command(0xE5)
    assert host.read(COUNT) == 0xFF
    host.command(code)
    host.command(0xE5)
    assert host.read(COUNT) == reported
    host.lba28(0, 1)
    host.command(0x40)
    host.command(0xE5)
    assert host.read(COUNT) == 0xFF


def test_initialize_device_parameters_sets_the_chs_translation():
    host = Host(sectors=4000)
    host.write(COUNT, 32)
    host.write(DEVICE, 0xA3)  # 4 heads
    host.command(0x91)
    assert host.status == 0x50
    words = identify(host)
    assert (words[55], words[56]) == (4, 32) and words[54] == 4000 // (4 * 32)
    # CHS 2/1/5 = (2*4 + 1)*32 + 4
    host.write(DEVICE, 0xA1)
    host.write(COUNT, 1)
    host.write(LBA_LOW, 5)
    host.write(LBA_MID, 2)
    host.write(LBA_HIGH, 0)
    host.command(0x20)
    assert host.read_pio(1) == pattern(9 * 32 + 4, 1)


@pytest.mark.parametrize("sector, head, cylinder", [(0, 0, 0), (64, 0, 0), (1, 0, 3), (1, 0, 0xFFFF)])
def test_chs_addresses_outside_the_translation_fail_with_idnf(sector, head, cylinder):
    host = Host(sectors=4000)
    host.write(DEVICE, 0xA0 | head)
    host.write(COUNT, 1)
    host.write(LBA_LOW, sector)
    host.write(LBA_MID, cylinder & 0xFF)
    host.write(LBA_HIGH, cylinder >> 8)
    host.command(0x20)
    assert outcome(host) == ID_NOT_FOUND


def test_an_impossible_translation_aborts_and_fails_chs_accesses_until_a_valid_one():
    host = Host(sectors=64)
    host.write(COUNT, 0)
    host.command(0x91)
    assert outcome(host) == ABORTED
    host.write(DEVICE, 0xA0)
    host.write(COUNT, 1)
    host.write(LBA_LOW, 1)
    host.write(LBA_MID, 0)
    host.command(0x20)
    assert outcome(host) == ID_NOT_FOUND
    host.write(COUNT, 8)
    host.write(DEVICE, 0xA1)
    host.command(0x91)
    host.write(DEVICE, 0xA0)
    host.write(COUNT, 1)
    host.write(LBA_LOW, 1)
    host.command(0x20)
    assert host.read_pio(1) == pattern(0, 1)


@pytest.mark.parametrize("device", [0xA0, 0xB0])
def test_execute_device_diagnostic_leaves_the_signature_even_when_device_1_is_selected(device):
    host = Host()
    host.lba28(0x123456, 9)
    host.write(DEVICE, device)
    host.write(STATUS, 0x90)
    host.tick()  # an absent device 1 shows status 00h, so the host cannot poll BSY; one tick completes it
    assert host.status == 0x50
    assert host.read(ERROR) == 0x01 and host.channel.intrq
    assert tuple(host.read(p) for p in (COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE)) == (1, 1, 0, 0, 0)


def test_a_command_completes_ticks_after_it_is_issued():
    host = Host(latency=10)
    host.lba28(0, 1)
    host.write(STATUS, 0x40)
    for _ in range(10):
        host.tick()
        assert host.status == 0xD0 and host.channel.state.phase is not Phase.IDLE
    host.tick(2)
    assert host.status == 0x50
    assert host.read(CTRL) == 0x50


# --- Bugs are not guest behaviour ---------------------------------------------------------------


class ShortReadStore(MemoryStore):
    """A broken store: it answers every read with one sector too few."""

    def _execute(self, request):
        result = super()._execute(request)
        return StoreResult(True, result.data[:-SECTOR_BYTES]) if isinstance(request, ReadSectors) else result


class SilentFailureStore(MemoryStore):
    """A broken store: it fails without saying why."""

    def _execute(self, request):
        return StoreResult(False)


@pytest.mark.parametrize("store", [ShortReadStore(8), SilentFailureStore(8)])
def test_a_broken_store_is_a_bug_not_an_ata_error(store):
    channel = AtaChannel(store, FlatMemory(4096))
    for port, value in [(0x1F6, 0xE0), (0x1F2, 2), (0x1F3, 0), (0x1F7, 0x20)]:
        channel.write(port, 1, value)
    with pytest.raises(CannotHappen):
        for _ in range(3):
            channel.tick()
