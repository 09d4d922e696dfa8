"""The AoE write fence keeps one write per sector in flight; without it, or at the lifetime boundary, z3 finds a late overwrite."""

from proofs.fence_proofs import find_late_overwrite, prove_fence
from proofs.harness import record


def test_fence_is_inductive():
    outcome = record(prove_fence())
    assert outcome.proved


def test_without_the_fence_a_late_copy_overwrites():
    outcome = record(find_late_overwrite(fence=False, inclusive=False))
    print(outcome.trace)
    assert outcome.refuted and "copy of A lands" in outcome.trace


def test_a_frame_living_exactly_max_frame_age_defeats_the_fence():
    """The fence runs out at last transmission + max_frame_age: a copy arriving at that very tick must not exist."""
    outcome = record(find_late_overwrite(fence=True, inclusive=True))
    print(outcome.trace)
    assert outcome.refuted
