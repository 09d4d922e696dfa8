"""Per-block state and its transition relation: one table, (state, event) -> state.

The table is the whole per-block behaviour of the storage manager; the manager
applies it through `next_block_state` and never assigns a state directly, and
`proofs/` encodes the same table in z3. A pair missing from the table is a bug
in the caller ("cannot happen"), not a guest error.
"""

from enum import Enum


class BlockState(Enum):
    ABSENT = "absent"  # the local disk does not hold this block's data; the server does
    FETCHING = "fetching"  # a fill is reading the block from the server or writing it locally
    WRITING = "writing"  # a guest write covering the whole block is on its way to the local disk
    PRESENT = "present"  # the local disk holds the block's current data (perhaps not yet durable)


class BlockEvent(Enum):
    FILL_STARTED = "fill started"  # the fill engine chose this block
    FILL_DONE = "fill done"  # the server's data reached the local disk
    FILL_FAILED = "fill failed"  # the server read or the local write failed
    WHOLE_WRITE_STARTED = "whole write started"  # a guest write covers the whole absent block (dm-clone's shortcut)
    WRITE_DONE = "write done"  # the guest's local write completed
    WRITE_FAILED = "write failed"  # the guest's local write failed
    INVALIDATED = "invalidated"  # the local copy may differ from the server's in a policy where the server decides


S, E = BlockState, BlockEvent

BLOCK_TRANSITIONS: dict[tuple[BlockState, BlockEvent], BlockState] = {
    (S.ABSENT, E.FILL_STARTED): S.FETCHING,
    (S.FETCHING, E.FILL_DONE): S.PRESENT,
    (S.FETCHING, E.FILL_FAILED): S.ABSENT,
    (S.ABSENT, E.WHOLE_WRITE_STARTED): S.WRITING,
    (S.WRITING, E.WRITE_DONE): S.PRESENT,
    (S.WRITING, E.WRITE_FAILED): S.ABSENT,  # a torn whole-block write leaves nothing trustworthy locally
    (S.PRESENT, E.WRITE_DONE): S.PRESENT,
    (S.PRESENT, E.WRITE_FAILED): S.PRESENT,  # the sectors are indeterminate, as on a real disk, but still local
    (S.PRESENT, E.INVALIDATED): S.ABSENT,
    (S.ABSENT, E.INVALIDATED): S.ABSENT,
}

# States in which the local disk may answer a guest read (no_unpopulated_local_read).
READABLE_LOCALLY = frozenset({S.PRESENT})
# States with a local write in flight that nothing else may overlap (no_fill_clobber).
BUSY = frozenset({S.FETCHING, S.WRITING})


def next_block_state(state: BlockState, event: BlockEvent) -> BlockState:
    """Apply one event; an event the table does not allow in this state is a bug in the caller."""
    # Every legal (state, event) pair is in the table; anything else cannot happen.
    assert (state, event) in BLOCK_TRANSITIONS, f"illegal block transition: {state.value} on {event.value}"
    return BLOCK_TRANSITIONS[(state, event)]
