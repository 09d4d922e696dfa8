"""Address arithmetic over all 48-bit values, each proof with a control z3 must refute."""

import pytest

from proofs import address_proofs as ap
from proofs.harness import record

PROOFS = [
    (ap.prove_lba_plus_count_never_wraps, ()),
    (ap.prove_lba28_plus_count_never_wraps, ()),
    (ap.prove_reserved_region_hidden, ()),
    (ap.prove_frame_split_exact, ()),
    (ap.prove_block_split_exact, ()),
    (ap.prove_frame_fits_mtu, ()),
]
CONTROLS = [
    (ap.prove_lba_plus_count_never_wraps, (48,)),
    (ap.prove_lba_plus_count_never_wraps, (32,)),
    (ap.prove_reserved_region_hidden, (True,)),
    (ap.prove_frame_split_exact, (False,)),
    (ap.prove_block_split_exact, (True,)),
]


@pytest.mark.parametrize("proof, args", PROOFS, ids=[p.__name__ for p, _ in PROOFS])
def test_address_property_is_proved(proof, args):
    outcome = record(ap.timed(proof, *args))
    assert outcome.proved, f"{outcome.name}: {outcome.result} {outcome.trace} {outcome.notes}"


@pytest.mark.parametrize("proof, args", CONTROLS, ids=[f"{p.__name__}{a}" for p, a in CONTROLS])
def test_address_control_is_refuted(proof, args):
    outcome = record(ap.timed(proof, *args))
    print(outcome.trace)
    assert outcome.refuted, f"{outcome.name}: z3 found no counterexample"
    assert outcome.trace
