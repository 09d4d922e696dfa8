"""The persistent map's encoding, its rejections, and the choice between two slots."""

from hypothesis import example, given
from hypothesis import strategies as st

from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.parameters import SMALL, TESTS, Geometry
from spec.storage.persistent_map import MapRecord, MapRejection, decode_map, encode_map, recover_map
from spec.storage.policy import Policy

ID = b"image-a"
G = TESTS.geometry


def record(generation=1, policy=Policy.INSTALL, clean=True, present=frozenset({1, 3})) -> MapRecord:
    return MapRecord(generation, policy, clean, frozenset(present))


geometries = st.builds(Geometry, st.sampled_from([1, 2, 8]), st.integers(1, 5000))


@given(geometries, st.data())
def test_encode_then_decode_is_the_identity(geometry, data):
    present = data.draw(st.frozensets(st.integers(0, geometry.block_count - 1)))
    rec = MapRecord(data.draw(st.integers(0, 2**64 - 1)), data.draw(st.sampled_from([Policy.CACHE, Policy.INSTALL])), data.draw(st.booleans()), present)
    raw = encode_map(rec, geometry, ID)
    assert len(raw) == geometry.slot_sectors * SECTOR_BYTES
    assert decode_map(raw, geometry, ID) == rec


@given(st.integers(0, 68 - 1) | st.integers(SECTOR_BYTES, SECTOR_BYTES + 1), st.integers(1, 255))
@example(8, 1)  # the version field
def test_any_corrupted_byte_rejects_the_slot(offset, flip):
    raw = bytearray(encode_map(record(), G, ID))
    raw[offset] ^= flip
    assert isinstance(decode_map(bytes(raw), G, ID), MapRejection)


def test_rejections_name_their_reason():
    raw = encode_map(record(), G, ID)
    assert decode_map(bytes(len(raw)), G, ID) is MapRejection.NO_MAGIC
    assert decode_map(raw, G, b"image-b") is MapRejection.FOREIGN_IMAGE
    other = Geometry(G.sectors_per_block * 2, G.block_count)
    assert decode_map(encode_map(record(), other, ID)[: len(raw)], G, ID) is MapRejection.OTHER_GEOMETRY


def test_the_newer_valid_slot_wins_and_the_next_commit_overwrites_the_other():
    old, new = encode_map(record(4, present={1}), G, ID), encode_map(record(5, present={1, 2}), G, ID)
    recovery = recover_map((new, old), G, ID)
    assert recovery.present == {1, 2} and recovery.slot == 0
    assert recovery.next_slot == 1 and recovery.next_generation == 6


def test_a_torn_newer_slot_leaves_the_older_one():
    old, new = encode_map(record(4, present={1}), G, ID), bytearray(encode_map(record(5, present={1, 2}), G, ID))
    new[SECTOR_BYTES:] = bytes(len(new) - SECTOR_BYTES)  # the header reached the disk, the bitmap did not
    recovery = recover_map((old, bytes(new)), G, ID)
    assert recovery.present == {1} and recovery.rejections == (None, MapRejection.BAD_CHECKSUM)
    assert recovery.next_slot == 1


def test_a_dirty_cache_map_hides_an_older_clean_one():
    clean = encode_map(record(4, Policy.CACHE, True, {1, 2}), G, ID)
    dirty = encode_map(record(5, Policy.CACHE, False, {1, 2}), G, ID)
    recovery = recover_map((clean, dirty), G, ID)
    assert recovery.record is None and recovery.present == frozenset()
    assert recovery.next_slot == 0 and recovery.next_generation == 6


def test_the_small_preset_fits_the_map_in_one_bitmap_sector():
    assert SMALL.geometry.bitmap_sectors == 1
