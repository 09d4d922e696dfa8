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
from spec.ata.constants import DRQ, ERR
from spec.ata.device import AtaChannel
from spec.storage.parameters import TESTS
from spec.storage.policy import Policy
from tests.storage.links import AoeLink
from tests.storage.pio_guest import FLUSH_CACHE, IDENTIFY_DEVICE, READ_SECTORS, WRITE_SECTORS, PioGuest
from tests.storage.world import World, sector_data


def session(guest: PioGuest) -> None:
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
    spec = PioGuest(World(preset=TESTS, policy=policy, link_type=AoeLink), AtaChannel)
    core = PioGuest(CoreWorld(preset=TESTS, policy=policy, link_type=CoreAoeLink), CAtaChannel)
    session(spec)
    session(core)
    assert core.seen == spec.seen
    assert core.world.results == spec.world.results
    assert ("status", spec.seen[-1][1]) == spec.seen[-1] and spec.seen[-1][1] & ERR, "the reserved region is IDNF"
