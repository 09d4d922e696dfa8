"""Bad input and its specified outcome: a clear error, and nothing lost."""

import pytest

from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, WriteSectors
from spec.storage.block_state import BlockState
from spec.ata.constants import ABRT, IDNF
from spec.storage.manager import Device, StorageManager
from spec.storage.parameters import TESTS
from spec.storage.persistent_map import MapRecord, MapRejection, encode_map
from spec.storage.policy import Policy, PolicyError
from model.ideal_disk import IdealDisk
from tests.storage.links import TIMING, AoeLink, DirectLink
from tests.storage.world import IDENTITY, World, sector_data

G = TESTS.geometry


def idle_world(policy=Policy.INSTALL, link=DirectLink) -> World:
    world = World(preset=TESTS, policy=policy, link_type=link)
    world.settle()
    return world


@pytest.mark.parametrize(
    "request_, error",
    [
        (ReadSectors(G.data_sectors, 1), IDNF),  # the first reserved sector
        (ReadSectors(G.data_sectors - 1, 2), IDNF),  # straddles the end of the guest's disk
        (ReadSectors(G.local_disk_sectors - 1, 1), IDNF),  # the last map sector
        (WriteSectors(G.slot_lba(1), bytes(SECTOR_BYTES)), IDNF),  # an attempt to overwrite the map
        (ReadSectors(0, 0), ABRT),  # no sectors
        (WriteSectors(0, b""), ABRT),
        (WriteSectors(0, bytes(100)), ABRT),  # not whole sectors
    ],
)
def test_out_of_range_or_malformed_guest_request_fails_and_touches_no_device(request_, error):
    world = idle_world()
    assert world.manager.sector_count() == G.data_sectors  # IDENTIFY reports the reduced capacity
    maps_before = world.local.durable_bytes(G.slot_lba(0), G.reserved_sectors)
    world.start(request_)
    result = world.poll()
    assert result is not None and not result.ok and result.error == error
    assert not world.manager.outstanding(Device.LOCAL) and not world.manager.outstanding(Device.REMOTE)
    world.settle()
    assert world.local.durable_bytes(G.slot_lba(0), G.reserved_sectors) == maps_before


def committed_world() -> World:
    """An install whose map marks every block present, durably."""
    world = idle_world()
    data = sector_data(0, 1, version=1)
    world.run(WriteSectors(0, data))
    world.run(Flush())
    assert world.manager.persisted == frozenset(range(G.block_count))
    return world


def restart_with_slots(world: World, corrupt, slots=(0, 1)) -> StorageManager:
    """Rewrite map slots durably through `corrupt(slot_bytes) -> bytes`, then restart the client."""
    for slot in slots:
        raw = world.local.durable_bytes(G.slot_lba(slot), G.slot_sectors)
        for i in range(G.slot_sectors):
            world.local.durable[G.slot_lba(slot) + i] = corrupt(raw)[i * SECTOR_BYTES : (i + 1) * SECTOR_BYTES]
    world.local.power_cut()
    world.link.client_restart(world.now, lambda: False)
    world.boot()
    world.complete_local()
    world.manager.step()
    return world.manager


def flip_bitmap_byte(raw: bytes) -> bytes:
    return raw[:SECTOR_BYTES] + bytes([raw[SECTOR_BYTES] ^ 0x01]) + raw[SECTOR_BYTES + 1 :]


def foreign(raw: bytes) -> bytes:
    record = MapRecord(9, Policy.INSTALL, True, frozenset(range(G.block_count)))
    return encode_map(record, G, b"another image")


def future_version(raw: bytes) -> bytes:
    return raw[:8] + (2).to_bytes(4, "little") + raw[12:]


@pytest.mark.parametrize(
    "corrupt, reason",
    [
        (flip_bitmap_byte, MapRejection.BAD_CHECKSUM),
        (foreign, MapRejection.FOREIGN_IMAGE),
        (future_version, MapRejection.UNKNOWN_VERSION),
        (lambda raw: bytes(len(raw)), MapRejection.NO_MAGIC),
    ],
)
def test_an_untrustworthy_map_is_treated_as_empty_and_the_install_starts_over(corrupt, reason):
    world = committed_world()
    manager = restart_with_slots(world, corrupt)
    assert manager.recovery.rejections == (reason, reason)
    assert manager.persisted == frozenset()
    assert all(state is not BlockState.PRESENT for state in manager.blocks)
    # Never trusted: the guest sees the server's image (local writes cannot be found), and the install starts over.
    world.ideal = IdealDisk(world.image)
    assert world.run(ReadSectors(0, 2)).data == world.image[: 2 * SECTOR_BYTES]
    world.settle()
    assert world.manager.persisted == frozenset(range(G.block_count))


def test_a_corrupt_newest_slot_falls_back_to_the_older_one():
    world = idle_world()
    world.run(ReadSectors(0, 1))
    world.run(Flush())  # one commit: slot 0 or 1 holds every block
    first = world.manager.persisted
    data = sector_data(0, 1, version=1)
    world.run(WriteSectors(0, data))
    world.run(Flush())  # a newer commit in the other slot
    newest = 1 - world.manager.next_slot
    manager = restart_with_slots(world, flip_bitmap_byte, slots=(newest,))
    assert manager.recovery.rejections[newest] is MapRejection.BAD_CHECKSUM
    assert manager.persisted == first  # the older map: its blocks' data was durable before it was written
    assert world.run(ReadSectors(0, 1)).data == data


def test_a_server_that_never_answers_fails_the_guest_request_with_abrt_and_loses_nothing():
    world = idle_world(Policy.NETWORK, link=AoeLink)
    data = sector_data(2, 1, version=1)
    assert world.run(WriteSectors(2, data)).ok
    world.start(ReadSectors(2, 1))
    for _ in range(TIMING.deadline // 10 + 2):
        while world.link.items():
            world.complete_remote(0, ok=False)  # every frame is lost
        world.tick(10)
    result = world.poll()
    assert result is not None and not result.ok and result.error == ABRT
    assert world.run(ReadSectors(2, 1)).data == data  # the server is back: nothing was lost


def test_a_server_that_never_answers_leaves_the_fills_absent_for_later():
    world = World(preset=TESTS, policy=Policy.INSTALL, link_type=AoeLink)
    world.complete_local()
    for _ in range(TIMING.deadline // 10 + 2):
        while world.link.items():
            world.complete_remote(0, ok=False)
        world.tick(10)
    assert BlockState.PRESENT not in world.manager.blocks  # failed fills leave their blocks absent, to retry
    world.settle()  # the server answers again
    assert world.manager.may_devirtualize()


@pytest.mark.parametrize(
    "frame",
    [
        b"",  # nothing
        b"\x02" * 13,  # shorter than an Ethernet header
        bytes(12) + b"\x08\x00" + bytes(40),  # IPv4, not AoE
        bytes(12) + b"\x88\xa2" + b"\x18",  # AoE, truncated header
        bytes.fromhex("020000000001") + bytes(6) + b"\x88\xa2" + bytes(50),  # a request, not a response
    ],
)
def test_malformed_frames_change_nothing(frame):
    world = idle_world(Policy.NETWORK, link=AoeLink)
    world.start(ReadSectors(0, 2))
    world.manager.step()
    state = world.manager.comparable_state()
    world.link.inject("to client", frame)
    world.link.inject("to target", frame)
    world.complete_remote(len(world.link.wire) - 1)
    world.complete_remote(len(world.link.wire) - 1)
    world.manager.step()
    assert world.manager.comparable_state() == state
    result = world.settle()
    assert result is not None and result.data == world.image[: 2 * SECTOR_BYTES]


def test_policy_changes_outside_the_table_are_refused_and_change_nothing():
    world = idle_world(Policy.INSTALL)
    state = world.manager.comparable_state()
    for wanted in (Policy.NETWORK, Policy.CACHE, Policy.PASSTHROUGH, Policy.INSTALL):
        with pytest.raises(PolicyError):
            world.manager.request_policy(wanted)
    assert world.manager.comparable_state() == state


def test_a_policy_that_needs_a_local_disk_is_refused_without_one():
    with pytest.raises(ValueError, match="needs a local disk"):
        StorageManager(TESTS, IDENTITY, Policy.INSTALL, None, DirectLink(b"").device)
    manager = StorageManager(TESTS, IDENTITY, Policy.NETWORK, None, DirectLink(b"").device)
    with pytest.raises(PolicyError, match="needs a local disk"):
        manager.request_policy(Policy.CACHE)
