"""The spec against QEMU's real emulated IDE disk, register access by register access.

The sequences of `difftest/qemu_ide/sequences.py` run in one boot of the probe guest on QEMU's
PIIX IDE disk (no VMM) and on `spec.ata.AtaChannel` over a `MemoryStore` holding the same disk
image; every value read is compared. Timing is not compared: both sides wait until BSY clears
and report the settled value. Every known difference is listed with its reason in
`difftest/qemu_ide/expected_differences.py`; any other difference, or a listed one that has
changed or gone away, fails. IDENTIFY DEVICE words that differ legitimately are listed there
too, word by word (table in `difftest/qemu_ide/README.md`).
"""

from __future__ import annotations

import pytest

from difftest.qemu_ide.expected_differences import (
    EXPECTED_DIFFERENCES,
    IDENTIFY_DIFFERENCES,
    IDENTIFY_MUST_AGREE,
)
from difftest.qemu_ide.run import build_disk, run_on_qemu, run_on_spec, sector_pattern
from difftest.qemu_ide.sequences import (
    CHS_LBA,
    MULTIPLE_LBA,
    READ_LBA,
    SEABIOS_LBA,
    WORDS_PER_SECTOR,
    WRITE_FIRST_WORDS,
    WRITE_MULTIPLE_FIRST_WORD,
    all_sequences,
)
from impl.testbed.probe.probe import write_data_words
from spec.ata.constants import ABRT, DIAGNOSTIC_PASSED, ERR, POWER_MODE_ACTIVE

IDENTIFY = ("identify device", "identify word ")


def identify_word(key: tuple[str, str]) -> int | None:
    """The word number of an IDENTIFY data label, or None for any other label."""
    sequence, label = key
    if sequence == IDENTIFY[0] and label.startswith(IDENTIFY[1]):
        return int(label.removeprefix(IDENTIFY[1]))
    return None


def words(results: dict, sequence: str, label: str, count: int = WORDS_PER_SECTOR) -> list[int]:
    return [results[(sequence, f"{label} word {i}")] for i in range(count)]


def as_words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    """(QEMU's values, the spec's values), each keyed by (sequence, label)."""
    directory = tmp_path_factory.mktemp("qemu-ide")
    sequences = all_sequences()
    image = build_disk(directory / "disk.img", sequences, directory)
    return run_on_qemu(directory / "disk.img", sequences), run_on_spec(image, sequences)


def test_expected_differences_name_values_the_sequences_report():
    labels = {(s.name, label) for s in all_sequences() for label in s.labels}
    assert set(EXPECTED_DIFFERENCES) <= labels
    assert not set(IDENTIFY_DIFFERENCES) & {w for w, mask in IDENTIFY_MUST_AGREE.items() if mask == 0xFFFF}


@pytest.mark.qemu
def test_every_value_agrees_or_is_a_listed_difference(sides):
    qemu, spec = sides
    assert qemu.keys() == spec.keys()
    problems = []
    for key in qemu:
        q, s = qemu[key], spec[key]
        word = identify_word(key)
        if word is not None:
            expected_q, expected_s, _ = IDENTIFY_DIFFERENCES.get(word, (q, s, ""))
            listed = word in IDENTIFY_DIFFERENCES
            matches = expected_q in (None, q) and expected_s in (None, s)
        else:
            listed = key in EXPECTED_DIFFERENCES
            expected_q, expected_s, _ = EXPECTED_DIFFERENCES.get(key, (q, s, ""))
            matches = (expected_q, expected_s) == (q, s)
        if listed and not matches:
            problems.append(f"{key}: listed as qemu={expected_q} spec={expected_s}, now qemu={q:#x} spec={s:#x}")
        elif not listed and q != s:
            problems.append(f"{key}: new difference qemu={q:#x} spec={s:#x}")
    for key in EXPECTED_DIFFERENCES:
        if qemu[key] == spec[key]:
            problems.append(f"{key}: listed difference is gone, both {qemu[key]:#x}: remove it from the table")
    assert not problems, "\n".join(problems)


@pytest.mark.qemu
def test_identify_words_a_host_relies_on_agree(sides):
    qemu, spec = sides
    for word, mask in IDENTIFY_MUST_AGREE.items():
        key = (IDENTIFY[0], f"{IDENTIFY[1]}{word}")
        assert qemu[key] & mask == spec[key] & mask, f"IDENTIFY word {word}: qemu {qemu[key]:#06x} spec {spec[key]:#06x}"
    assert qemu[(IDENTIFY[0], f"{IDENTIFY[1]}60")] > 0


@pytest.mark.qemu
def test_data_words_are_the_disks_and_what_was_written(sides):
    qemu, spec = sides
    for side in (qemu, spec):
        assert words(side, "seabios sector read", "sector") == as_words(sector_pattern(SEABIOS_LBA))
        for sector in range(3):
            assert words(side, "read sectors x3", f"sector {sector}") == as_words(sector_pattern(READ_LBA + sector))
        for sector, first in enumerate(WRITE_FIRST_WORDS):
            assert words(side, "write sectors x2 then read", f"read sector {sector}") == write_data_words(WORDS_PER_SECTOR, first)
        assert words(side, "chs read", "sector") == as_words(sector_pattern(CHS_LBA))
        assert words(side, "write multiple", "read sector 0") == write_data_words(3 * WORDS_PER_SECTOR, WRITE_MULTIPLE_FIRST_WORD)[:WORDS_PER_SECTOR]
        multiple = words(side, "read multiple", "block 0", 8 * WORDS_PER_SECTOR) + words(side, "read multiple", "block 1", 2 * WORDS_PER_SECTOR)
        assert multiple == as_words(b"".join(sector_pattern(MULTIPLE_LBA + i) for i in range(10)))


@pytest.mark.qemu
def test_both_sides_leave_the_signature_after_software_reset(sides):
    for side in sides:
        for sequence in ("software reset", "software reset during drq", "software reset again"):
            registers = [side[(sequence, f"after reset: {r}")] for r in ("error", "sector count", "lba low", "lba mid", "lba high", "status")]
            assert registers == [DIAGNOSTIC_PASSED, 0x01, 0x01, 0x00, 0x00, 0x50]


@pytest.mark.qemu
def test_both_sides_abort_what_they_cannot_do(sides):
    for side in sides:
        for sequence in ("unknown command", "set features bad subcommand"):
            assert side[(sequence, "after: error")] == ABRT
            assert side[(sequence, "after: status")] & ERR
        assert side[("lba beyond capacity", "lba28 after: status")] & ERR
        assert side[("check power mode", "after: sector count")] == POWER_MODE_ACTIVE
        assert not side[("flush cache", "flush: status")] & ERR
