"""The storage invariants are inductive; each negative control is refuted with a readable trace."""

import pytest

from proofs.harness import record
from proofs.storage_invariants import CATALOGUE, STRENGTHENING
from proofs.storage_proofs import find_violation, prove_inductive, prove_stale_response_ignored
from proofs.storage_model import Variant


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_invariant_is_inductive(name):
    outcome = record(prove_inductive(name))
    assert outcome.proved, outcome.trace


@pytest.mark.parametrize("name", list(STRENGTHENING))
def test_strengthening_fact_is_inductive(name):
    outcome = record(prove_inductive(name))
    assert outcome.proved, outcome.trace


def test_stale_response_ignored():
    outcome = record(prove_stale_response_ignored())
    assert outcome.proved, outcome.trace


NEGATIVE_CONTROLS = [
    ("no_unpopulated_local_read", Variant.LOCAL_READ_WHILE_FETCHING),
    ("no_fill_clobber", Variant.FILL_OVER_GUEST_WRITE),
    ("guest_sees_ideal_disk", Variant.FILL_OVER_GUEST_WRITE),
    ("one_write_in_flight_per_sector", Variant.WRITE_DURING_FILL),
    ("stale_response_ignored", Variant.STALE_ACCEPTED),
    ("guest_sees_ideal_disk", Variant.STALE_ACCEPTED),
    ("map_crash_safe", Variant.MAP_BEFORE_FLUSH),
    ("flush_is_durable", Variant.FLUSH_WITHOUT_COMMIT),
    ("devirtualize_only_when_quiescent", Variant.DEVIRTUALIZE_UNPERSISTED),
]


@pytest.mark.parametrize("name, variant", NEGATIVE_CONTROLS, ids=[f"{n}-{v.name.lower()}" for n, v in NEGATIVE_CONTROLS])
def test_negative_control_is_refuted(name, variant):
    outcome = find_violation(name, variant)
    outcome.name = f"{name} [control: {variant.value}]"
    record(outcome)
    print(outcome.trace)
    assert outcome.refuted, f"z3 found no run of '{variant.value}' that breaks {name}"
    assert outcome.trace.startswith(f"variant: {variant.value}")
