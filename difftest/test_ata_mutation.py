"""The mutation mechanism stays tested: a few ATA mutants are killed, an equivalent one survives,
and broken mutant lists are refused. The full check is `python -m difftest.mutation`."""

import dataclasses

import pytest

from difftest.mutation.runner import Mutant, MutantError, load_mutants, report, run_mutant

pytestmark = pytest.mark.slow

CORPUS_ONLY = ("difftest/test_ata_corpus.py",)
FAST_SUBSET = ("status-read-keeps-interrupt", "pio-in-one-block-too-many", "data-request-without-interrupt")


def ata_mutants() -> dict[str, Mutant]:
    return {m.name: m for m in load_mutants() if m.source == "ata.toml"}


def test_there_are_at_least_twenty_ata_mutants_of_every_kind():
    mutants = ata_mutants().values()
    assert len(mutants) >= 20
    kinds = " ".join(m.fault for m in mutants)
    for kind in ("flipped comparison", "dropped state update", "off-by-one", "missing bounds check", "wrong status bit"):
        assert kind in kinds, kind


@pytest.mark.parametrize("name", FAST_SUBSET)
def test_a_mutant_of_the_ata_device_is_killed_by_the_corpus(name):
    outcome = run_mutant(dataclasses.replace(ata_mutants()[name], tests=CORPUS_ONLY))
    assert outcome.verdict == "KILLED", outcome.detail


def test_an_equivalent_mutant_survives_and_is_reported():
    comment_only = Mutant(
        name="comment-only",
        file="impl/vmm/core/ata/ata_device.c",
        find="/* Reading Status acknowledges the interrupt (V1 §7, Status register). */",
        replace="/* A changed comment changes no behaviour. */",
        fault="none: an equivalent mutant",
        tests=CORPUS_ONLY,
    )
    outcome = run_mutant(comment_only)
    assert outcome.verdict == "SURVIVED"
    text = report([outcome])
    assert "kill ratio: 0/1 = 0.0 %" in text and "surviving mutants: comment-only" in text


def test_a_mutant_that_does_not_compile_is_stillborn_not_killed():
    broken = Mutant("broken", "impl/vmm/core/ata/ata_device.c", "uint32_t ata_channel_size(void)", "uint32_t ata_channel_size(void", "syntax", CORPUS_ONLY)
    assert run_mutant(broken).verdict == "STILLBORN"


def test_a_mutant_list_with_an_ambiguous_find_is_refused(tmp_path):
    (tmp_path / "bad.toml").write_text(
        '[[mutant]]\nname = "x"\nfile = "impl/vmm/core/ata/ata_device.c"\nfind = "channel"\nreplace = "c"\nfault = "f"\n'
    )
    with pytest.raises(MutantError, match="occurs .* times"):
        load_mutants(tmp_path)
