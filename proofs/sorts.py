"""z3 sorts and functions generated from the spec's own tables, so the encoding cannot drift from them.

`BlockState`, `Policy`, `FillPhase`, `CommitStep` and the block transition
function come from `spec.storage.block_state.BLOCK_TRANSITIONS`,
`spec.storage.policy` and `spec.storage.manager`;
nothing here restates a transition by hand.
"""

import z3

from proofs.harness import enum_sort
from spec.storage.block_state import BLOCK_TRANSITIONS, BlockEvent, BlockState
from spec.storage.manager import CommitStep, FillPhase
from spec.storage.policy import POLICY_TRANSITIONS, Policy

BlockStateSort, BLOCK = enum_sort("BlockState", [s.name for s in BlockState])
PolicySort, POLICY = enum_sort("Policy", [p.name for p in Policy])
FillSort, FILL = enum_sort("FillPhase", ["NONE"] + [p.name for p in FillPhase])  # manager.fills.get(b)
CommitSort, COMMIT = enum_sort("CommitStep", ["NONE"] + [s.name for s in CommitStep])  # manager.commit.step
FlushWaitSort, FLUSH_WAIT = enum_sort("FlushWait", ["IDLE", "QUEUED", "COMMITTING"])  # a guest flush's commit ticket


def block(state: BlockState) -> z3.ExprRef:
    return BLOCK[state.name]


def policy(p: Policy) -> z3.ExprRef:
    return POLICY[p.name]


def policy_in(value: z3.ExprRef, policies) -> z3.BoolRef:
    return z3.Or([value == policy(p) for p in policies])


def block_in(value: z3.ExprRef, states) -> z3.BoolRef:
    return z3.Or([value == block(s) for s in states])


def block_legal(state: z3.ExprRef, event: BlockEvent) -> z3.BoolRef:
    """Whether the table has the pair (state, event): the spec asserts it does."""
    return z3.Or([state == block(s) for (s, e) in BLOCK_TRANSITIONS if e is event])


def block_next(state: z3.ExprRef, event: BlockEvent) -> z3.ExprRef:
    """`next_block_state` as a z3 term: the table's entries for `event`, the state itself elsewhere."""
    result = state
    for (s, e), target in BLOCK_TRANSITIONS.items():
        if e is event:
            result = z3.If(state == block(s), block(target), result)
    return result


def policy_change_legal(current: z3.ExprRef, wanted: z3.ExprRef) -> z3.BoolRef:
    """`is_legal_transition` as a z3 predicate, from `POLICY_TRANSITIONS`."""
    return z3.Or([z3.And(current == policy(a), wanted == policy(b)) for (a, b) in POLICY_TRANSITIONS])
