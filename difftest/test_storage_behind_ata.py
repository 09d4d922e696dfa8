"""The whole storage path in C against the spec: the virtual ATA device in front of the storage manager
and the AoE initiator, driven by a guest through the ports.

Spec side: spec.ata.AtaChannel over a storage world (tests/storage/world.py) with the spec manager and
initiator. C side: the C ATA channel over the C storage world (the C manager and the C initiator). The
guest issues the same PIO commands to both; every status it reads and every sector it transfers must be
equal, and the invariant catalogue holds in both worlds after every step.
"""

import pytest

from difftest.binding.ata import CAtaChannel
from difftest.storage_worlds import CoreAoeLink, CoreWorld
from spec.ata.constants import BSY, DRQ, ERR, PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT
from spec.ata.device import AtaChannel
from spec.ata.prd import FlatMemory
from spec.storage.parameters import TESTS
from spec.storage.policy import Policy
from tests.storage.links import AoeLink
from tests.storage.world import World, sector_data

DATA, SECTOR_COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, COMMAND = (PRIMARY_COMMAND_BASE + i for i in (0, 2, 3, 4, 5, 6, 7))
READ_SECTORS, WRITE_SECTORS, FLUSH_CACHE, IDENTIFY_DEVICE = 0x20, 0x30, 0xE7, 0xEC


class Guest:
    """A guest driving one channel with PIO while its storage world runs underneath; it logs what it sees."""

    def __init__(self, world, channel_type):
        self.world = world
        self.channel = channel_type(world, FlatMemory(4096))
        self.seen: list = []

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
            self.seen.append(status)
            if not status & BSY:
                return self.channel.read(COMMAND, 1)
        raise AssertionError("the device stayed busy")

    def issue(self, command: int, lba: int = 0, count: int = 0) -> int:
        self.channel.write(DEVICE, 1, 0x40 | (lba >> 24 & 0x0F))
        self.channel.write(SECTOR_COUNT, 1, count)
        for port, shift in ((LBA_LOW, 0), (LBA_MID, 8), (LBA_HIGH, 16)):
            self.channel.write(port, 1, lba >> shift & 0xFF)
        self.channel.write(COMMAND, 1, command)
        status = self.run_until_ready()
        self.seen.append(("status", status))
        return status

    def read_blocks(self, count: int) -> bytes:
        data = b""
        for block in range(count):
            data += b"".join(self.channel.read(DATA, 2).to_bytes(2, "little") for _ in range(256))
            if block + 1 < count:
                self.run_until_ready()
        self.seen.append(("data", data))
        return data

    def write_blocks(self, data: bytes) -> int:
        status = 0
        for start in range(0, len(data), 512):
            for i in range(start, start + 512, 2):
                self.channel.write(DATA, 2, int.from_bytes(data[i : i + 2], "little"))
            status = self.run_until_ready()
        self.seen.append(("status", status))
        return status


def session(guest: Guest) -> None:
    """IDENTIFY, reads across blocks, writes, a flush, a read back and an address past the end."""
    guest.issue(IDENTIFY_DEVICE)
    guest.read_blocks(1)
    if guest.issue(READ_SECTORS, lba=3, count=6) & DRQ:
        guest.read_blocks(6)
    for version, (lba, count) in enumerate([(5, 1), (8, 4), (14, 3)], start=1):
        if guest.issue(WRITE_SECTORS, lba=lba, count=count) & DRQ:
            guest.write_blocks(sector_data(lba, count, version))
    guest.issue(FLUSH_CACHE)
    if guest.issue(READ_SECTORS, lba=4, count=12) & DRQ:
        guest.read_blocks(12)
    guest.issue(READ_SECTORS, lba=TESTS.geometry.data_sectors, count=1)  # the reserved region: IDNF


@pytest.mark.parametrize("policy", [Policy.NETWORK, Policy.CACHE, Policy.INSTALL])
def test_a_guest_sees_the_same_disk_through_the_spec_and_the_c_core(policy):
    spec = Guest(World(preset=TESTS, policy=policy, link_type=AoeLink), AtaChannel)
    core = Guest(CoreWorld(preset=TESTS, policy=policy, link_type=CoreAoeLink), CAtaChannel)
    session(spec)
    session(core)
    assert core.seen == spec.seen
    assert core.world.results == spec.world.results
    assert ("status", spec.seen[-1][1]) == spec.seen[-1] and spec.seen[-1][1] & ERR, "the reserved region is IDNF"
