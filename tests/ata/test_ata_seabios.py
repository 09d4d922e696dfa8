"""The register sequence SeaBIOS uses to read a sector (int 13h, polled PIO), replayed against the spec.

The status values are those observed on QEMU: 0xD0 while busy, 0x58 once
the sector waits in the Data register, 0x50 after its last word.
"""

from spec.ata.backing_store import SECTOR_BYTES
from tests.ata.support import COUNT, CTRL, DATA, DEVICE, ERROR, LBA_HIGH, LBA_LOW, LBA_MID, STATUS, Host, pattern


def seabios_read(host: Host, lba: int) -> tuple[list[int], bytes, int, int]:
    """One int 13h sector read; the statuses polled until DRQ, the data, then alternate status and status."""
    host.write(CTRL, 0x0A)  # nIEN: SeaBIOS polls
    host.read(STATUS)
    host.write(DEVICE, 0xE0 | (lba >> 24))
    host.write(ERROR, 0)
    host.write(COUNT, 1)
    host.write(LBA_LOW, lba & 0xFF)
    host.write(LBA_MID, (lba >> 8) & 0xFF)
    host.write(LBA_HIGH, (lba >> 16) & 0xFF)
    host.write(STATUS, 0x20)  # READ SECTORS
    polled = [host.read(STATUS)]
    while not polled[-1] & 0x08:
        host.tick()
        polled.append(host.read(STATUS))
    data = b"".join(host.read(DATA, 2).to_bytes(2, "little") for _ in range(SECTOR_BYTES // 2))
    alternate, status = host.read(CTRL), host.read(STATUS)
    host.write(CTRL, 0x08)
    return polled, data, alternate, status


def test_seabios_sector_read_shows_the_observed_statuses():
    host = Host(sectors=64, latency=3)
    polled, data, alternate, status = seabios_read(host, 17)
    assert polled[0] == 0xD0 and set(polled[:-1]) == {0xD0} and polled[-1] == 0x58
    assert data == pattern(17, 1)
    assert (alternate, status) == (0x50, 0x50)
    assert not host.channel.intrq  # nIEN kept INTRQ low throughout


def test_seabios_reads_consecutive_sectors_with_an_immediate_store():
    host = Host(sectors=8)
    for lba in range(8):
        polled, data, alternate, status = seabios_read(host, lba)
        assert polled == [0xD0, 0xD0, 0x58]  # accepted, then fetching, then the data block
        assert data == pattern(lba, 1) and (alternate, status) == (0x50, 0x50)
