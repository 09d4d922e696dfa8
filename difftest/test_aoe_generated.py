"""The C core's AoE numbers are generated from spec/aoe/constants.py, never hand-copied."""

from pathlib import Path

from impl.vmm.core.aoe.generate_constants import render

HEADER = Path(__file__).resolve().parents[1] / "impl" / "vmm" / "core" / "aoe" / "aoe_constants.h"


def test_the_committed_aoe_header_is_what_the_generator_writes():
    assert HEADER.read_text() == render(), "regenerate: python -m impl.vmm.core.aoe.generate_constants"
