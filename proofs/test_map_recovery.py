"""The persistent map's recovery yields the old map or the new one, whatever part of a slot write a power cut kept.

The storage model (`storage_model.py`) abstracts a map commit interrupted by
a power cut as "recovery finds the previous map or the one being written".
This checks that abstraction against the spec's `encode_map`/`recover_map`:
for every subset of the slot's sectors that reached the medium (each sector
survives independently, `model/local_disk.py`), on the proofs' small
geometry, with Hypothesis choosing the maps.
"""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.parameters import SMALL
from spec.storage.persistent_map import MapRecord, encode_map, recover_map
from spec.storage.policy import Policy

GEOMETRY = SMALL.geometry
IDENTITY = b"image:proofs"
BLANK_SLOT = bytes(GEOMETRY.slot_sectors * SECTOR_BYTES)

records = st.builds(
    MapRecord,
    generation=st.just(0),
    policy=st.sampled_from([Policy.CACHE, Policy.INSTALL]),
    clean=st.booleans(),
    present=st.frozensets(st.integers(0, GEOMETRY.block_count - 1)),
)


def sectors(slot: bytes) -> list[bytes]:
    return [slot[i : i + SECTOR_BYTES] for i in range(0, len(slot), SECTOR_BYTES)]


@given(newest=records, older=st.one_of(st.none(), records), new=records, generation=st.integers(2, 2**40), newest_slot=st.integers(0, 1))
def test_recovery_after_a_torn_map_write_is_old_or_new(newest, older, new, generation, newest_slot):
    newest = MapRecord(generation, newest.policy, newest.clean, newest.present)
    slots = [BLANK_SLOT, BLANK_SLOT]
    slots[newest_slot] = encode_map(newest, GEOMETRY, IDENTITY)
    if older is not None:
        older = MapRecord(generation - 1, older.policy, older.clean, older.present)
        slots[1 - newest_slot] = encode_map(older, GEOMETRY, IDENTITY)
    before = recover_map(tuple(slots), GEOMETRY, IDENTITY)
    assert before.slot == newest_slot and before.next_generation == generation + 1
    # The commit writes the next generation into the slot that does not hold the newest map.
    new = MapRecord(before.next_generation, new.policy, new.clean, new.present)
    written = encode_map(new, GEOMETRY, IDENTITY)
    target = before.next_slot
    after_complete = recover_map(tuple(written if i == target else s for i, s in enumerate(slots)), GEOMETRY, IDENTITY)
    assert after_complete.newest == new
    for kept in itertools.product((False, True), repeat=GEOMETRY.slot_sectors):
        torn = b"".join(n if k else o for k, n, o in zip(kept, sectors(written), sectors(slots[target])))
        recovered = recover_map(tuple(torn if i == target else s for i, s in enumerate(slots)), GEOMETRY, IDENTITY)
        assert recovered.present in (before.present, after_complete.present), f"sectors kept: {kept}"
        assert recovered.record in (before.record, after_complete.record)
