"""Deliberately wrong contracts: crosshair must find a counterexample to each, or the contract checks prove nothing."""

from proofs.contracts import block_pieces, map_round_trip
from spec.storage.persistent_map import MapRecord


def pieces_all_whole_blocks(lba: int, count: int, shift: int) -> list[tuple[int, int, int]]:
    """Wrong: claims every piece is a whole block, which a request starting mid-block refutes.

    pre: 0 <= lba < 2**48 and 1 <= count <= 512 and 0 <= shift <= 4
    post: all(n == 1 << shift for _, _, n in __return__)
    """
    return block_pieces(lba, count, shift)


def map_forgets_cleanliness(generation: int, clean: bool) -> MapRecord:
    """Wrong: claims a decoded cache map is always clean.

    pre: 0 <= generation < 2**64
    post: __return__.clean
    """
    return map_round_trip(generation, False, clean, 0)
