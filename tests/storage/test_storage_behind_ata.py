"""The storage manager as the backing store of the spec ATA device: what a guest sees through the ports."""

from spec.ata.constants import DRQ, ERR, IDNF
from spec.storage.parameters import TESTS
from spec.storage.policy import Policy
from tests.storage.links import ModelLink
from tests.storage.pio_guest import ERROR, FLUSH_CACHE, IDENTIFY_DEVICE, READ_SECTORS, WRITE_SECTORS, PioGuest
from tests.storage.world import World, sector_data

G = TESTS.geometry


def Guest(policy: Policy) -> PioGuest:
    return PioGuest(World(preset=TESTS, policy=policy, link_type=ModelLink))


def test_identify_reports_the_capacity_without_the_reserved_region():
    guest = Guest(Policy.INSTALL)
    assert guest.issue(IDENTIFY_DEVICE) & DRQ
    words = guest.read_blocks(1)
    assert int.from_bytes(words[120:124], "little") == G.data_sectors  # words 60-61: LBA28 capacity


def test_pio_reads_and_writes_reach_the_image_and_the_local_disk():
    guest = Guest(Policy.INSTALL)
    assert guest.issue(READ_SECTORS, lba=5, count=1) & DRQ
    assert guest.read_blocks(1) == guest.world.image[5 * 512 : 6 * 512]
    data = sector_data(5, 1, version=1)
    assert guest.issue(WRITE_SECTORS, lba=5, count=1) & DRQ
    assert not guest.write_blocks(data) & ERR
    assert not guest.issue(FLUSH_CACHE) & ERR
    assert guest.issue(READ_SECTORS, lba=5, count=1) & DRQ
    assert guest.read_blocks(1) == data


def test_the_reserved_region_answers_like_sectors_past_the_end_of_a_disk():
    guest = Guest(Policy.INSTALL)
    status = guest.issue(READ_SECTORS, lba=G.data_sectors, count=1)
    assert status & ERR and guest.channel.read(ERROR, 1) & IDNF
