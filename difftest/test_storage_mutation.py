"""The storage and AoE mutants stay applicable and a few of them are killed on every run.
The full check is `python -m difftest.mutation` (difftest/mutation/storage.toml)."""

import pytest

from difftest.mutation.runner import load_mutants, run_mutant

pytestmark = pytest.mark.slow

FAST_SUBSET = ("aoe-no-backoff", "aoe-retransmitted-tag-stays-outstanding", "storage-last-sector-unaddressable")


def storage_mutants():
    return {m.name: m for m in load_mutants() if m.source == "storage.toml"}


def test_there_are_at_least_ten_storage_and_aoe_mutants_of_every_kind():
    mutants = storage_mutants().values()
    assert sum(m.file.startswith("impl/vmm/core/aoe/") for m in mutants) >= 5
    assert sum(m.file.startswith("impl/vmm/core/storage/") for m in mutants) >= 5
    kinds = " ".join(m.fault for m in mutants)
    for kind in ("flipped comparison", "dropped state update", "off-by-one", "missing bounds check", "wrong status bit"):
        assert kind in kinds, kind


@pytest.mark.parametrize("name", FAST_SUBSET)
def test_a_storage_or_aoe_mutant_is_killed(name):
    mutant = storage_mutants()[name]
    outcome = run_mutant(mutant)
    assert outcome.verdict == "KILLED", outcome.detail
