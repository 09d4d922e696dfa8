"""The storage manager as the backing store of the spec ATA device: what a guest sees through the ports."""

from spec.ata.constants import BSY, DRQ, ERR, IDNF, PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT
from spec.ata.device import AtaChannel
from spec.ata.prd import FlatMemory
from spec.storage.parameters import TESTS
from spec.storage.policy import Policy
from tests.storage.links import ModelLink
from tests.storage.world import World, sector_data

G = TESTS.geometry
DATA, SECTOR_COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, COMMAND = (PRIMARY_COMMAND_BASE + i for i in (0, 2, 3, 4, 5, 6, 7))
READ_SECTORS, WRITE_SECTORS, FLUSH_CACHE, IDENTIFY_DEVICE = 0x20, 0x30, 0xE7, 0xEC


class Guest:
    """A guest driving the channel with PIO, while the manager's world runs underneath."""

    def __init__(self, policy: Policy):
        self.world = World(preset=TESTS, policy=policy, link_type=ModelLink)
        self.channel = AtaChannel(self.world, FlatMemory(4096))  # the world passes requests on and checks results

    def run_until_ready(self) -> int:
        for _ in range(5000):
            self.world.tick()
            self.channel.tick()
            self.world.check_invariants()
            if self.world.local.pending_ids():
                self.world.complete_local()
            elif self.world.link.items():
                self.world.complete_remote()
            status = self.channel.read(PRIMARY_CONTROL_PORT, 1)  # Alternate Status: no side effect
            if not status & BSY:
                return self.channel.read(COMMAND, 1)
        raise AssertionError("the device stayed busy")

    def issue(self, command: int, lba: int = 0, count: int = 0) -> int:
        self.channel.write(DEVICE, 1, 0x40 | (lba >> 24 & 0x0F))
        self.channel.write(SECTOR_COUNT, 1, count)
        for port, shift in ((LBA_LOW, 0), (LBA_MID, 8), (LBA_HIGH, 16)):
            self.channel.write(port, 1, lba >> shift & 0xFF)
        self.channel.write(COMMAND, 1, command)
        return self.run_until_ready()

    def read_block(self) -> bytes:
        return b"".join(self.channel.read(DATA, 2).to_bytes(2, "little") for _ in range(256))

    def write_block(self, sector: bytes) -> int:
        for i in range(0, len(sector), 2):
            self.channel.write(DATA, 2, int.from_bytes(sector[i : i + 2], "little"))
        return self.run_until_ready()


def test_identify_reports_the_capacity_without_the_reserved_region():
    guest = Guest(Policy.INSTALL)
    assert guest.issue(IDENTIFY_DEVICE) & DRQ
    words = guest.read_block()
    assert int.from_bytes(words[120:124], "little") == G.data_sectors  # words 60-61: LBA28 capacity


def test_pio_reads_and_writes_reach_the_image_and_the_local_disk():
    guest = Guest(Policy.INSTALL)
    assert guest.issue(READ_SECTORS, lba=5, count=1) & DRQ
    assert guest.read_block() == guest.world.image[5 * 512 : 6 * 512]
    data = sector_data(5, 1, version=1)
    assert guest.issue(WRITE_SECTORS, lba=5, count=1) & DRQ
    assert not guest.write_block(data) & ERR
    assert not guest.issue(FLUSH_CACHE) & ERR
    assert guest.issue(READ_SECTORS, lba=5, count=1) & DRQ
    assert guest.read_block() == data


def test_the_reserved_region_answers_like_sectors_past_the_end_of_a_disk():
    guest = Guest(Policy.INSTALL)
    status = guest.issue(READ_SECTORS, lba=G.data_sectors, count=1)
    assert status & ERR and guest.channel.read(PRIMARY_COMMAND_BASE + 1, 1) & IDNF
