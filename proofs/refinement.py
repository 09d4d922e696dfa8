"""Trace-level agreement: every step the spec's storage manager takes is a short run of the z3 model.

`project` reads, from a running `StorageManager`, the model's control fields
for one block (policy, block state, fill stage, guest write and its segments,
commit step and snapshot, persisted bit, `durable_clean`, de-virtualization).
`explains` asks z3 whether some run of at most `STEPS` model events leads
from a state of the strengthened invariant (its facts without quantifiers)
with the first projection to one with the second; data values stay free. A concrete step no such run explains
means the encoding and the spec have drifted apart.
"""

from functools import lru_cache

import z3

from proofs.sorts import BLOCK, COMMIT, FILL, POLICY
from proofs.storage_invariants import CATALOGUE, STRENGTHENING
from proofs.storage_model import Choices, State, transition
from spec.ata.backing_store import SECTOR_BYTES, WriteSectors
from spec.storage.manager import Phase, StorageManager
from spec.storage.routing import Device, split_by_block

STEPS = 4  # model events one call into the manager may take on one block; the stale response is the model's no-op


def project(m: StorageManager, block: int) -> tuple:
    """The model's control fields of `block`, read from the manager."""
    op = m.guest
    write = write_local = write_local_done = write_remote = False
    if op is not None and op.issued and isinstance(op.request, WriteSectors):
        covered = {p.block for p in split_by_block(m.geometry, op.request.lba, len(op.request.data) // SECTOR_BYTES)}
        if block in covered:
            write = True
            first, last = m.geometry.first_lba(block), m.geometry.first_lba(block + 1)
            local = [s for s in op.segments if s.device is Device.LOCAL and s.lba < last and first < s.lba + s.count]
            write_local = bool(local)
            write_local_done = bool(local) and all(s.completion is not None for s in local)
            write_remote = any(s.device is Device.REMOTE for s in op.segments)
    commit = "NONE" if m.commit is None else m.commit.step.name
    snapshot = m.commit is not None and block in m.commit.snapshot
    return (
        m.policy.name,
        m.phase is Phase.DEVIRTUALIZED,
        m.blocks[block].name,
        m.fills[block].name if block in m.fills else "NONE",
        write,
        write_local,
        write_local_done,
        write_remote,
        commit,
        snapshot,
        block in m.persisted,
        m.durable_clean,
    )


def _pin(s: State, projection: tuple) -> z3.BoolRef:
    policy, devirtualized, state, fill, write, write_local, write_local_done, write_remote, commit, snapshot, persisted, clean = projection
    facts = [
        s.policy == POLICY[policy],
        s.devirtualized == devirtualized,
        s.state == BLOCK[state],
        s.fill == FILL[fill],
        s.write == write,
        s.commit == COMMIT[commit],
        s.persisted == persisted,
        s.durable_clean == clean,
    ]
    if write:
        facts += [s.write_local == write_local, s.write_local_done == write_local_done, s.write_remote == write_remote]
    if commit != "NONE":
        facts.append(s.snapshot == snapshot)
    return z3.And(facts)


def quantifier_free_invariant(s: State) -> z3.BoolRef:
    """The strengthened invariant's facts about control fields; the ones over sets of values are left out (data is free)."""
    facts = [p(s) for p in CATALOGUE.values()] + [p(s) for p, _ in STRENGTHENING.values()]
    return z3.And([f for f in facts if not _has_quantifier(f)])


def _has_quantifier(term: z3.ExprRef) -> bool:
    if z3.is_quantifier(term):
        return True
    return any(_has_quantifier(child) for child in term.children())


@lru_cache(maxsize=None)
def explains(before: tuple, after: tuple) -> bool:
    """Whether some run of at most STEPS model events leads from `before` to `after`."""
    states = [State(f"r{i}") for i in range(STEPS + 1)]
    solver = z3.Solver()
    solver.set("timeout", 30_000)
    solver.add(quantifier_free_invariant(states[0]), _pin(states[0], before), _pin(states[-1], after))
    for i in range(STEPS):
        solver.add(transition(states[i], states[i + 1], Choices(f"r{i}")))
    return solver.check() == z3.sat
