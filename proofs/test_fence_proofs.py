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


def test_a_fence_ending_at_exactly_max_frame_age_is_defeated_by_a_frame_of_that_age():
    """Control: were B sent at last transmission + max_frame_age, a copy of A arriving at that very tick would overwrite it."""
    outcome = record(find_late_overwrite(fence=True, inclusive=True, fence_past_age=False))
    print(outcome.trace)
    assert outcome.refuted


def test_the_specified_fence_survives_a_frame_of_exactly_max_frame_age():
    outcome = record(find_late_overwrite(fence=True, inclusive=True))
    assert outcome.proved
