"""The storage model's readable and may-survive sets change exactly as `model/ideal_disk.py` says.

`guest_sees_ideal_disk` is proved as a refinement of the ideal disk, so the
model's copy of the ideal disk's rules must be the ideal disk's: Hypothesis
runs the same writes (completed or failed), flushes, reads and power cuts
through `IdealDisk` and through the model's event effects, and the sets must
be identical after every step.
"""

import z3
from hypothesis import given
from hypothesis import strategies as st

from model.ideal_disk import IdealDisk
from proofs.concrete import choice_assignment, state_assignment, value
from proofs.sorts import FILL
from proofs.storage_model import Choices, State, Variant, events
from spec.ata.backing_store import SECTOR_BYTES
from spec.storage.block_state import BlockState
from spec.storage.policy import Policy

IMAGE = 0
VALUES = range(4)  # sector contents, as the model's integers


def sector(v: int) -> bytes:
    return v.to_bytes(SECTOR_BYTES, "little")


def as_array(values: set[int]) -> z3.ArrayRef:
    array = z3.K(z3.IntSort(), z3.BoolVal(False))
    for v in sorted(values):
        array = z3.Store(array, v, True)
    return array


def as_set(array: z3.ExprRef) -> set[int]:
    return {v for v in VALUES if z3.is_true(value(array[v], {}))}


operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(VALUES), st.booleans()),
        st.tuples(st.just("flush")),
        st.tuples(st.just("read")),
        st.tuples(st.just("power cut")),
    ),
    max_size=12,
)


@given(operations, st.data())
def test_model_ideal_disk_is_the_ideal_disk(ops, data):
    ideal = IdealDisk(sector(IMAGE))
    readable, survive = {IMAGE}, {IMAGE}
    s, c = State("i"), Choices("i")
    by_name = {e.name: e for e in events(s, c, Variant.SPEC)}
    for op in ops:
        base = dict(readable=as_array(readable), may_survive=as_array(survive))
        match op:
            case ("write", v, ok):
                ideal.write_done(0, sector(v), ok)
                fields = dict(policy=Policy.INSTALL, state=BlockState.PRESENT, write=True, write_covers=True, write_data=v,
                              write_local=True, write_local_done=True, write_local_ok=ok, local=v, **base)
                effect, choices = by_name["guest write answered"], {}
            case ("flush",):
                ideal.flush_done()
                fields, effect, choices = dict(policy=Policy.NETWORK, **base), by_name["guest flush"], {}
            case ("read",):
                seen = data.draw(st.sampled_from(sorted(readable)))
                ideal.read_done(0, sector(seen))
                fields, effect, choices = dict(policy=Policy.NETWORK, server=seen, **base), by_name["guest read"], {}
            case ("power cut",):
                ideal.power_cut()
                fields = dict(policy=Policy.NETWORK, fill=FILL["NONE"], **base)
                effect, choices = by_name["power cut and restart"], {"survivor": 0}
        assignment = {**state_assignment(s, **fields), **choice_assignment(c, **choices)}
        readable = as_set(value(effect.updates.get("readable", s.readable), assignment))
        survive = as_set(value(effect.updates.get("may_survive", s.may_survive), assignment))
        assert readable == {int.from_bytes(x, "little") for x in ideal.readable[0]}, op
        assert survive == {int.from_bytes(x, "little") for x in ideal.may_survive_power_cut(0)}, op
