"""Hand-written scenarios: each names which request completes when, and what the guest must see."""

import pytest

from spec.ata.backing_store import SECTOR_BYTES, Flush, ReadSectors, WriteSectors
from spec.storage.block_state import BlockState
from spec.storage.devirtualize import DEVIRTUALIZE_SEQUENCE, DevirtualizeError
from spec.storage.manager import CommitStep, Device, Phase
from spec.storage.parameters import TESTS, make_preset
from spec.storage.policy import Policy
from tests.storage.links import TIMING, AoeLink, DirectLink
from tests.storage.world import World, sector_data

SPB = TESTS.geometry.sectors_per_block
G_BLOCKS = TESTS.geometry.block_count


def started(policy: Policy, link=DirectLink) -> World:
    """A world whose manager has read its (empty) map and has nothing in flight."""
    world = World(preset=TESTS, policy=policy, link_type=link)
    world.complete_local()  # the map read
    world.manager.step()
    assert world.manager.phase is Phase.RUNNING
    return world


def remote_requests(world: World) -> list:
    return list(world.link.device.pending.values())


def test_fill_racing_a_guest_write_never_overwrites_the_guest_data():
    world = started(Policy.INSTALL)
    world.tick()  # the background fill starts on block 0 (lowest absent block)
    assert world.manager.blocks[0] is BlockState.FETCHING
    guest = sector_data(0, SPB, version=1)
    world.start(WriteSectors(0, guest))
    assert world.poll() is None  # the write waits for the fill
    world.complete_remote()  # the fill's server read: image data
    world.manager.step()
    assert [o.purpose[0] for o in world.manager.outstanding(Device.LOCAL)] == ["fill write"]
    world.complete_local()  # the fill's local write lands first
    assert world.poll() is None
    assert [o.purpose[0] for o in world.manager.outstanding(Device.LOCAL)] == ["guest"]
    world.complete_local()  # then the guest's
    assert world.poll().ok
    assert world.run(ReadSectors(0, SPB)).data == guest


def test_no_fill_starts_on_a_block_a_guest_write_is_in_flight_to():
    world = World(preset=TESTS, policy=Policy.INSTALL, link_type=DirectLink)
    guest = sector_data(0, SPB, version=1)
    world.start(WriteSectors(0, guest))  # whole block: written at once, no fill
    world.complete_local()  # the map read; the guest's request goes before any fill
    world.manager.step()
    assert world.manager.blocks[0] is BlockState.WRITING
    world.tick(50)  # the rate limit has tokens, but the fill yields to guest I/O and avoids block 0
    assert 0 not in world.manager.fills
    world.complete_local()
    assert world.poll().ok
    world.settle()
    assert world.run(ReadSectors(0, SPB)).data == guest


def test_late_duplicate_of_an_old_write_never_overwrites_a_newer_one():
    world = started(Policy.NETWORK, link=AoeLink)
    world.settle()  # discovery (Query Config) answered
    old, new = sector_data(3, 1, version=1), sector_data(3, 1, version=2)
    world.start(WriteSectors(3, old))
    world.manager.step()
    world.link.pump()
    assert len(world.link.wire) == 1
    world.link.duplicate(0)  # the network copies the frame
    world.complete_remote(0)  # one copy reaches the server, its answer comes back
    world.complete_remote(1)
    assert world.poll().ok
    world.start(WriteSectors(3, new))
    world.manager.step()
    world.link.pump()
    assert all(direction == "to target" for direction, _, _ in world.link.wire) and len(world.link.wire) == 1
    # The initiator fences sector 3: the new write waits while the old copy may still travel.
    state = world.manager.comparable_state()
    ignored = world.link.device.ignored_frames
    world.complete_remote(0)  # the late duplicate of the old write arrives at the server...
    world.complete_remote(0)  # ...and its answer, under a tag no longer outstanding, is ignored
    assert world.link.device.ignored_frames == ignored + 1
    assert world.manager.comparable_state() == state  # stale_response_ignored
    world.tick(TIMING.max_frame_age + 1)  # the fence expires: the new write goes
    result = world.settle()
    assert result is not None and result.ok
    assert world.run(ReadSectors(3, 1)).data == new


def fill_block_zero(world: World) -> None:
    """Block 0 fetched and written to the local disk's cache, not yet flushed."""
    world.tick()
    world.complete_remote()
    world.manager.step()
    world.complete_local()
    world.manager.step()
    assert world.manager.blocks[0] is BlockState.PRESENT


def test_power_cut_between_data_write_and_map_write_restarts_from_the_older_map():
    world = started(Policy.INSTALL)
    fill_block_zero(world)
    world.start(Flush())  # the commit begins with a flush of the data
    world.manager.step()
    assert world.manager.commit.step is CommitStep.FLUSH_BEFORE
    world.power_cut(choose=lambda lba, versions: 0)  # the data is lost, the map never written
    world.complete_local()  # the new manager reads its map
    world.manager.step()
    assert world.manager.persisted == frozenset() and world.manager.blocks[0] is not BlockState.PRESENT
    assert world.run(ReadSectors(0, SPB)).data == world.image[: SPB * SECTOR_BYTES]


def test_power_cut_after_the_map_write_keeps_either_map_and_never_a_map_without_its_data():
    for keep_newest in (0, -1):
        world = started(Policy.INSTALL)
        fill_block_zero(world)
        world.start(Flush())
        world.manager.step()
        world.complete_local()  # flush before: block 0's data is durable
        world.manager.step()
        assert world.manager.commit.step is CommitStep.WRITE_MAP
        world.complete_local()  # the map slot reached the disk's cache, the final flush is pending
        world.manager.step()
        world.power_cut(choose=lambda lba, versions: keep_newest % versions)
        world.complete_local()
        world.manager.step()
        expected = frozenset({0}) if keep_newest else frozenset()
        assert world.manager.persisted == expected
        assert world.run(ReadSectors(0, SPB)).data == world.image[: SPB * SECTOR_BYTES]


def test_partial_write_to_an_absent_block_waits_for_the_fill_and_keeps_the_rest():
    world = started(Policy.INSTALL)
    lba = 1 * SPB + 1  # one sector inside block 1
    data = sector_data(lba, 1, version=1)
    world.start(WriteSectors(lba, data))
    world.manager.step()
    assert world.manager.blocks[1] is BlockState.FETCHING  # demanded: fetched ahead of the background order
    assert world.poll() is None
    result = world.settle()
    assert result is not None and result.ok
    block = world.run(ReadSectors(SPB, SPB)).data
    image = world.image[SPB * SECTOR_BYTES : 2 * SPB * SECTOR_BYTES]
    assert block == image[:SECTOR_BYTES] + data + image[2 * SECTOR_BYTES :]


def test_devirtualization_requested_while_a_fill_is_in_flight_waits_then_happens():
    world = started(Policy.INSTALL)
    while world.manager.blocks.count(BlockState.PRESENT) < len(world.manager.blocks) - 1:
        world.tick()
        world.complete_local() if world.local.pending_ids() else world.complete_remote()
    world.tick()
    assert world.manager.fills  # the last fill is in flight
    with pytest.raises(DevirtualizeError, match="not present"):
        world.manager.devirtualize()
    assert world.manager.policy is Policy.INSTALL  # nothing changed
    world.settle()
    assert world.manager.may_devirtualize()
    assert world.devirtualize() == DEVIRTUALIZE_SEQUENCE
    assert world.manager.policy is Policy.PASSTHROUGH and world.manager.phase is Phase.DEVIRTUALIZED
    data = sector_data(0, 2, version=7)
    assert world.run(WriteSectors(0, data)).ok
    assert world.run(ReadSectors(0, 2)).data == data
    # After a restart the complete map is found: de-virtualization may follow at once.
    world.power_cut()
    world.settle()
    assert world.manager.policy is Policy.INSTALL and world.manager.may_devirtualize()


def test_cache_write_marks_the_map_dirty_before_the_local_copy_changes():
    world = started(Policy.CACHE)
    world.run(ReadSectors(0, SPB))  # copy-on-read fills block 0
    world.settle()
    world.run(Flush())  # a clean cache map marking block 0
    assert world.manager.durable_clean and world.manager.persisted == frozenset({0})
    data = sector_data(0, 1, version=1)
    world.start(WriteSectors(0, data))
    world.manager.step()
    assert world.manager.commit is not None and not world.manager.commit.clean  # the dirty map goes first
    result = world.settle()
    assert result is not None and result.ok and not world.manager.durable_clean
    world.power_cut(choose=lambda lba, versions: 0)  # the local copy of the write is lost
    world.settle()
    assert world.manager.persisted == frozenset()  # a dirty cache map is never trusted
    assert world.run(ReadSectors(0, 1)).data == data  # the server has it


def test_a_map_read_error_at_start_is_retried_never_taken_for_an_empty_map():
    """Found by the stateful test: a failed map read once made a flushed install write vanish."""
    world = started(Policy.INSTALL)
    data = sector_data(0, 5, version=3)
    assert world.run(WriteSectors(0, data)).ok
    assert world.run(Flush()).ok
    world.power_cut()
    world.complete_local(ok=False)  # the map read fails
    world.manager.step()
    assert world.manager.phase is Phase.STARTING  # and is issued again
    assert world.run(ReadSectors(0, 5)).data == data


def test_an_install_resumes_where_the_durable_map_stopped():
    world = started(Policy.INSTALL)
    while world.manager.blocks.count(BlockState.PRESENT) < 3:
        world.tick()
        world.complete_local() if world.local.pending_ids() else world.complete_remote()
    world.run(Flush())
    kept = world.manager.persisted
    assert len(kept) >= 3
    fetched = []
    world.observer = lambda kind, detail: fetched.append(detail) if detail[1].value == "fill started" else None
    world.power_cut()  # restarts with the observer watching
    world.settle()
    assert len(fetched) == G_BLOCKS - len(kept)  # only the blocks the map did not mark are fetched again
    assert world.manager.persisted == frozenset(range(G_BLOCKS))


@pytest.mark.parametrize("sectors_per_block", [1, 2, 8])
@pytest.mark.parametrize("policy", [Policy.NETWORK, Policy.CACHE, Policy.INSTALL])
def test_every_block_size_serves_the_ideal_disk_through_a_power_cut(sectors_per_block, policy):
    """One-sector blocks are allowed; the world checks every read against the ideal disk and every invariant."""
    preset = make_preset(sectors_per_block, block_count=32 // sectors_per_block, max_in_flight=2)
    world = World(preset=preset, policy=policy, link_type=AoeLink)
    for version, (lba, count) in enumerate([(0, 3), (5, 9), (31, 1), (2, 2)], start=1):
        assert world.run(WriteSectors(lba, sector_data(lba, count, version))).ok
        assert world.run(ReadSectors(max(0, lba - 1), count + 1)).ok
    assert world.run(Flush()).ok
    world.run(WriteSectors(6, sector_data(6, 2, version=9)))
    world.power_cut(choose=lambda lba, versions: lba % versions)
    world.settle()
    assert world.run(ReadSectors(0, 32)).ok
