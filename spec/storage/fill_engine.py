"""The fill engine's choice: which blocks to fetch next, and how many.

A pure function of the manager's state, so the proofs and the C code can use
it as it is. The rules, in the order they apply:

1. At most `max_in_flight` fills are outstanding at once.
2. A block is a candidate only while it is absent and no guest write to it is
   in flight: a fill reading the server before such a write lands would bring
   old data back (no_fill_clobber). A guest write that arrives while its block
   is being filled waits for the fill instead (`manager.py`).
3. Blocks the guest is waiting for ("demanded") come first, in the order the
   guest asked, and do not use the rate limit.
4. Background blocks (install only) go in ascending order, like a sequential
   copy, only while no guest request is outstanding (the fill yields to guest
   I/O, as dm-clone's hydration pauses for user I/O), and only with a token
   from the rate limit: a token bucket that gains `tokens_per_tick` per tick up
   to `token_burst`, the shape QEMU's block-stream `speed` limit has.
"""

from collections.abc import Iterable, Sequence

from spec.storage.block_state import BlockState
from spec.storage.parameters import BlockIndex, FillParameters


def refill_tokens(tokens: int, elapsed_ticks: int, parameters: FillParameters) -> int:
    """The rate limit's bucket after `elapsed_ticks` ticks."""
    return min(parameters.token_burst, tokens + max(0, elapsed_ticks) * parameters.tokens_per_tick)


def choose_fills(
    states: Sequence[BlockState],
    demanded: Sequence[BlockIndex],
    excluded: Iterable[BlockIndex],
    in_flight: int,
    tokens: int,
    parameters: FillParameters,
    background: bool,
    guest_active: bool,
) -> tuple[list[BlockIndex], int]:
    """The blocks to start filling now, and how many tokens that spends."""
    blocked = set(excluded)
    room = parameters.max_in_flight - in_flight
    chosen: list[BlockIndex] = []

    def candidate(block: BlockIndex) -> bool:
        return states[block] is BlockState.ABSENT and block not in blocked and block not in chosen

    for block in demanded:
        if len(chosen) >= room:
            return chosen, 0
        if candidate(block):
            chosen.append(block)
    spent = 0
    if not background or guest_active:
        return chosen, spent
    for block in range(len(states)):
        if len(chosen) >= room or spent >= tokens:
            break
        if candidate(block):
            chosen.append(block)
            spent += 1
    return chosen, spent
