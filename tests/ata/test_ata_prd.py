"""The pure PRD walk and descriptor decoding, on tables given as lists."""

from hypothesis import given
from hypothesis import strategies as st

from spec.ata.prd import PrdEntry, WalkOutcome, crosses_64k, decode_prd_entry, walk_prd


def entry(address: int, count: int, eot: bool = False) -> PrdEntry:
    return PrdEntry(address, count, eot)


def test_decode_masks_reserved_bits_and_reads_zero_as_64_kib():
    raw = (0x12345679).to_bytes(4, "little") + (0).to_bytes(2, "little") + (0x8000).to_bytes(2, "little")
    assert decode_prd_entry(raw) == PrdEntry(0x12345678, 0x10000, True)
    odd = (0x1000).to_bytes(4, "little") + (0x0201).to_bytes(2, "little") + bytes(2)
    assert decode_prd_entry(odd) == PrdEntry(0x1000, 0x200, False)


def test_walk_outcomes():
    assert walk_prd([entry(0, 1024, True)], 1024).outcome is WalkOutcome.EXACT
    assert walk_prd([entry(0, 2048, True)], 1024).outcome is WalkOutcome.TABLE_LONGER
    assert walk_prd([entry(0, 512), entry(4096, 512)], 1024).outcome is WalkOutcome.TABLE_LONGER
    assert walk_prd([entry(0, 512, True)], 1024).outcome is WalkOutcome.TABLE_SHORTER
    assert walk_prd([entry(0xFE00, 1024, True)], 1024).outcome is WalkOutcome.FAULT
    assert walk_prd([entry(0, 512), None], 1024).outcome is WalkOutcome.FAULT
    assert walk_prd([entry(0, 512)], 1024).outcome is WalkOutcome.FAULT  # no EOT and no more entries


def test_a_region_that_ends_exactly_at_a_64_kib_boundary_does_not_cross_it():
    assert not crosses_64k(0xFE00, 0x200) and crosses_64k(0xFE00, 0x202)
    assert walk_prd([entry(0xFE00, 0x200, True)], 0x200).outcome is WalkOutcome.EXACT


def test_entries_after_the_transfer_is_satisfied_are_not_fetched():
    fetched = []

    def lazily():
        for e in (entry(0, 512), None):
            fetched.append(e)
            yield e

    assert walk_prd(lazily(), 512).outcome is WalkOutcome.TABLE_LONGER and fetched == [entry(0, 512)]


regions = st.builds(
    PrdEntry,
    st.integers(0, (1 << 31) - 1).map(lambda a: a * 2),
    st.integers(1, 0x8000).map(lambda c: c * 2),
    st.booleans(),
)


@given(st.lists(regions, max_size=6), st.integers(1, 0x40000))
def test_walk_never_moves_more_than_asked_nor_crosses_64_kib(table, transfer):
    walk = walk_prd(table, transfer)
    moved = sum(length for _, length in walk.segments)
    assert moved <= transfer
    assert (moved == transfer) == (walk.outcome in (WalkOutcome.EXACT, WalkOutcome.TABLE_LONGER))
    assert not any(crosses_64k(a, n) for a, n in walk.segments)
