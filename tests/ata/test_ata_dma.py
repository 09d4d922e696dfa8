"""Bus-master DMA: registers, the PRD walk, and what BMISTA shows for exact, longer, shorter and broken tables."""

import pytest

from spec.ata.state import Phase
from tests.ata.support import BM, BM_COMMAND, BM_PRD, BM_STATUS, STATUS, Host, pattern

TABLE = 0x1000
BUFFER = 0x20000
ACTIVE, ERROR, INTERRUPT = 0x01, 0x02, 0x04


def read_dma(host: Host, lba: int, count: int, regions: list[tuple[int, int]], eot: bool = True) -> None:
    """A Linux-style DMA read: PRD table, direction, command, START, then ticks until the device is done or stuck."""
    host.prd_table(TABLE, regions, eot)
    host.write(BM_COMMAND, 0x08)  # direction first, START later (as ata_bmdma_setup / ata_bmdma_start do)
    host.lba28(lba, count)
    host.write(STATUS, 0xC8)
    host.start_bus_master(to_memory=True)
    host.tick(4)


def test_read_dma_exact_table_clears_active_and_latches_the_interrupt():
    host = Host()
    read_dma(host, 3, 4, [(BUFFER, 1024), (BUFFER + 0x3000, 1024)])
    assert host.read(BM_STATUS) == INTERRUPT and host.channel.intrq
    assert host.memory.bytes[BUFFER : BUFFER + 1024] == pattern(3, 2)
    assert host.memory.bytes[BUFFER + 0x3000 : BUFFER + 0x3400] == pattern(5, 2)
    host.write(BM_COMMAND, 0x00)
    assert host.read(STATUS) == 0x50 and not host.channel.intrq
    host.write(BM_STATUS, INTERRUPT)
    assert host.read(BM_STATUS) == 0


def test_guest_memory_sees_the_table_fetches_then_the_data():
    host = Host()
    read_dma(host, 0, 1, [(BUFFER, 512)])
    assert host.memory.accesses == [("read", TABLE, 8), ("write", BUFFER, 512)]


def test_read_dma_longer_table_leaves_active_set():
    host = Host()
    read_dma(host, 0, 2, [(BUFFER, 4096)])
    assert host.read(BM_STATUS) == INTERRUPT | ACTIVE
    assert host.memory.bytes[BUFFER : BUFFER + 1024] == pattern(0, 2)


def test_a_table_without_eot_that_covers_the_transfer_is_longer():
    host = Host()
    read_dma(host, 0, 1, [(BUFFER, 512)], eot=False)
    assert host.read(BM_STATUS) == INTERRUPT | ACTIVE


def test_read_dma_shorter_table_stops_without_interrupt_and_the_device_keeps_drq():
    host = Host()
    read_dma(host, 0, 4, [(BUFFER, 1024)])
    assert host.read(BM_STATUS) == 0 and not host.channel.intrq
    assert host.status == 0x58 and host.channel.state.phase is Phase.DMA_TRANSFER
    # A second table and a new START finish the transfer where the first one stopped.
    host.write(BM_COMMAND, 0x08)
    host.prd_table(TABLE, [(BUFFER + 0x8000, 1024)])
    host.start_bus_master(to_memory=True)
    host.tick()
    assert host.read(BM_STATUS) == INTERRUPT and host.status == 0x50
    assert host.memory.bytes[BUFFER + 0x8000 : BUFFER + 0x8400] == pattern(2, 2)


def test_a_shorter_table_recovers_with_software_reset():
    host = Host()
    read_dma(host, 0, 4, [(BUFFER, 512)])
    host.write(0x3F6, 0x04)
    host.write(0x3F6, 0x00)
    host.tick()
    assert host.status == 0x50 and host.channel.state.transfer is None


def test_byte_count_zero_means_64_kib():
    host = Host(sectors=256)
    read_dma(host, 0, 128, [(0x30000, 0x10000)])
    assert host.read(BM_STATUS) == INTERRUPT
    assert host.memory.bytes[0x30000:0x40000] == pattern(0, 128)


def test_a_region_crossing_64_kib_is_a_bus_master_error():
    host = Host()
    read_dma(host, 0, 2, [(0x2FE00, 1024)])
    assert host.read(BM_STATUS) == ERROR
    assert host.status == 0x58 and host.memory.bytes[0x2FE00:0x30200] == bytes(1024)


def test_a_table_pointing_outside_memory_is_a_bus_master_error():
    host = Host()
    host.lba28(0, 1)
    host.write(STATUS, 0xC8)
    host.write(BM_PRD, 0xFFFF0000, 4)
    host.start_bus_master(to_memory=True)
    host.tick(3)
    assert host.read(BM_STATUS) == ERROR and host.status == 0x58


def test_a_region_outside_memory_is_a_bus_master_error_after_the_regions_before_it():
    host = Host()
    read_dma(host, 0, 2, [(BUFFER, 512), (0xFFF00000, 512)])
    assert host.read(BM_STATUS) == ERROR
    assert host.memory.bytes[BUFFER : BUFFER + 512] == pattern(0, 1)
    assert host.channel.state.transfer.position == 512


def test_a_table_running_off_its_64_kib_page_is_a_bus_master_error():
    host = Host()
    last_entry = 0x1FFF8  # the only entry before the boundary, without EOT
    host.prd_table(last_entry, [(BUFFER, 512)], eot=False)
    host.write(BM_COMMAND, 0x08)
    host.lba28(0, 2)
    host.write(STATUS, 0xC8)
    host.start_bus_master(to_memory=True)
    host.tick(3)
    assert host.read(BM_STATUS) == ERROR


def test_write_dma_gathers_from_memory_then_writes_the_store():
    host = Host(latency=2)
    host.memory.bytes[BUFFER : BUFFER + 1024] = b"\x5a" * 1024
    host.prd_table(TABLE, [(BUFFER, 1024)])
    host.lba48(10, 2)
    host.write(STATUS, 0x35)  # WRITE DMA EXT
    host.tick(2)
    assert host.status == 0x58  # DMARQ: waiting for the bus master
    host.start_bus_master(to_memory=False)
    host.tick()
    assert host.status == 0xD0 and not host.channel.intrq
    host.settle()
    assert host.status == 0x50 and host.read(BM_STATUS) == INTERRUPT
    assert host.store.sectors[10 * 512 : 12 * 512] == b"\x5a" * 1024


def test_a_bus_master_started_against_the_device_direction_moves_nothing():
    host = Host()
    host.prd_table(TABLE, [(BUFFER, 512)])
    host.lba28(0, 1)
    host.write(STATUS, 0xCA)  # WRITE DMA, but the bus master is set to write memory
    host.write(BM_COMMAND, 0x09)
    host.tick(5)
    assert host.read(BM_STATUS) == ACTIVE and host.status == 0x58 and host.memory.accesses == []


def test_stopping_the_bus_master_halts_it_and_the_device_waits():
    host = Host(latency=3)
    host.prd_table(TABLE, [(BUFFER, 512)])
    host.lba28(0, 1)
    host.write(STATUS, 0xC8)
    host.start_bus_master(to_memory=True)
    host.write(BM_COMMAND, 0x08)
    host.tick(6)
    assert host.read(BM_STATUS) == 0 and host.status == 0x58


def test_dma_command_errors_interrupt_without_a_data_phase():
    host = Host()
    read_dma(host, 64, 1, [(BUFFER, 512)])
    assert host.status == 0x51 and host.read(BM_STATUS) == INTERRUPT | ACTIVE
    assert host.memory.accesses == []


def test_a_dma_read_error_from_the_store_reports_unc():
    host = Host(bad=frozenset({1}))
    read_dma(host, 0, 2, [(BUFFER, 1024)])
    assert host.status == 0x51 and host.read(0x1F1) == 0x40


# --- Registers -------------------------------------------------------------------------------


def test_bus_master_registers_read_back_with_reserved_bits_zero():
    host = Host()
    host.write(BM_COMMAND, 0xFF)
    assert host.read(BM_COMMAND) == 0x09
    host.write(BM_STATUS, 0xFF)
    assert host.read(BM_STATUS) == 0x61  # active (started above) and both drive DMA-capable bits
    host.write(BM_PRD, 0x12345677, 4)
    assert host.read(BM_PRD, 4) == 0x12345674
    assert host.read(BM + 1) == 0 and host.read(BM + 3) == 0


def test_direction_cannot_change_while_active():
    host = Host()
    host.write(BM_COMMAND, 0x01)
    host.write(BM_COMMAND, 0x09)
    assert host.read(BM_COMMAND) == 0x01


def test_error_and_interrupt_bits_clear_only_where_one_is_written():
    host = Host()
    host.channel.state.bus_master.error = True
    host.channel.state.bus_master.interrupt = True
    host.write(BM_STATUS, ERROR)
    assert host.read(BM_STATUS) == INTERRUPT
    host.write(BM_STATUS, INTERRUPT)
    assert host.read(BM_STATUS) == 0


@pytest.mark.parametrize("offset", range(4))
def test_the_prd_pointer_takes_byte_writes(offset):
    host = Host()
    host.write(BM_PRD + offset, 0xAB)
    assert host.read(BM_PRD, 4) == (0xAB << (8 * offset)) & ~3
