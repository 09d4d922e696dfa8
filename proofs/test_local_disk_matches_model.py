"""The storage model never allows fewer post-power-cut values than `model/local_disk.py` does.

`map_crash_safe` quantifies over "any subset of unflushed writes lost"; the
model keeps, per sector, the set of values a power cut may leave. Hypothesis
runs writes (submitted, completed or failed, in flight at any time), flushes
(submitted before or after a write completes) and the current value through
`LocalDisk` and through the model's events on one sector of a present block,
and requires: the same current value, and the model's set containing every
version the disk may keep (`versions_at_risk`). The model may keep more
(a failed write may have landed, an over-approximation), never less.
"""

import z3
from hypothesis import given
from hypothesis import strategies as st

from model.local_disk import LocalDisk
from proofs.concrete import choice_assignment, state_assignment, value
from proofs.sorts import COMMIT
from proofs.storage_model import FIELDS, Choices, State, Variant, events
from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.block_state import BlockState
from spec.storage.policy import Policy

BLANK = 0
VALUES = range(5)


def sector(v: int) -> bytes:
    return v.to_bytes(SECTOR_BYTES, "little")


def number(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def members(array: z3.ExprRef) -> set[int]:
    return {v for v in VALUES if z3.is_true(value(array[v], {}))}


@given(st.lists(st.sampled_from(["write", "complete", "fail", "flush", "flush done"]), max_size=14), st.data())
def test_model_keeps_every_version_the_disk_may_keep(ops, data):
    disk = LocalDisk(1, fill=b"\0")
    s, c = State("l"), Choices("l")
    by_name = {e.name: e for e in events(s, c, Variant.SPEC)}
    # The model's state as concrete z3 values: a present block of an install, nothing in flight.
    current = state_assignment(
        s, policy=Policy.INSTALL, state=BlockState.PRESENT, local=BLANK, flush_covers=BLANK, persisted=True
    )
    current[s.local_at_risk] = z3.Store(z3.K(z3.IntSort(), z3.BoolVal(False)), BLANK, True)
    write_id = flush_id = None

    def apply(name: str, **choices) -> None:
        nonlocal current
        assignment = {**current, **choice_assignment(c, **choices)}
        effect = by_name[name]
        assert z3.is_true(value(z3.And(effect.guard, effect.extra), assignment)), f"model refuses {name}"
        current = {s[f]: value(effect.updates.get(f, s[f]), assignment) for f in FIELDS}

    for op in ops:
        if op == "write" and write_id is None:
            v = data.draw(st.sampled_from(VALUES[1:]))
            write_id = disk.submit_write(0, sector(v))
            apply("guest write issued", covers=True, whole=False, data=v)
        elif op in ("complete", "fail") and write_id is not None:
            disk.complete(write_id, ok=op == "complete")
            disk.take_completions()
            write_id = None
            apply("guest write local done", ok=op == "complete", keep_new=False)
            apply("guest write answered")
        elif op == "flush" and flush_id is None:
            flush_id = disk.submit_flush()
            apply("commit started", whole=True, clean=False)
        elif op == "flush done" and flush_id is not None:
            disk.complete(flush_id)
            disk.take_completions()
            flush_id = None
            apply("commit flush before done", ok=True)
            apply("commit map written", ok=False)  # back to no commit; the slot is elsewhere on the disk
        assert current[s.commit].eq(COMMIT["NONE"]) == (flush_id is None)
        assert number(disk.read_now(0, 1)) == current[s.local].as_long()
        disk_versions = {number(x) for x in disk.versions_at_risk().get(0, [disk.durable_sector(0)])}
        assert disk_versions <= members(current[s.local_at_risk]), op
