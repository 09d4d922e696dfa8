"""Evaluate the z3 encoding on concrete values, so tests can compare it with the executable spec."""

import z3

from proofs.sorts import BLOCK, COMMIT, FILL, FLUSH_WAIT, POLICY
from proofs.storage_model import FIELDS, Choices, State, empty_set
from spec.storage.block_state import BlockState
from spec.storage.policy import Policy

DEFAULTS = {
    "policy": POLICY["INSTALL"],
    "devirtualized": False,
    "state": BLOCK["ABSENT"],
    "fill": FILL["NONE"],
    "commit": COMMIT["NONE"],
    "flush_wait": FLUSH_WAIT["IDLE"],
}


def value(term, assignment: dict) -> z3.ExprRef:
    """The value of `term` once the named state fields and choices take the given concrete values."""
    return z3.simplify(z3.substitute(term, *assignment.items()))


def is_true(term, assignment: dict) -> bool:
    result = value(term, assignment)
    assert z3.is_bool(result) and (z3.is_true(result) or z3.is_false(result)), f"not concrete: {result}"
    return z3.is_true(result)


def state_assignment(s: State, **fields) -> dict:
    """Every field of `s` pinned: the given ones, the rest to neutral defaults (no write, no fill, no commit)."""
    assignment = {}
    for name, sort in FIELDS.items():
        given = fields.get(name, DEFAULTS.get(name))
        if given is None:
            if sort == z3.BoolSort():
                given = False
            elif sort == z3.IntSort():
                given = 0
            else:
                given = empty_set()
        if isinstance(given, bool):
            given = z3.BoolVal(given)
        elif isinstance(given, int):
            given = z3.IntVal(given)
        elif isinstance(given, BlockState):
            given = BLOCK[given.name]
        elif isinstance(given, Policy):
            given = POLICY[given.name]
        assignment[s[name]] = given
    return assignment


def choice_assignment(c: Choices, **choices) -> dict:
    assignment = {}
    for name in ("ok", "covers", "whole", "keep_new", "trusted_map", "clean", "server_kept", "switch_needed"):
        assignment[getattr(c, name)] = z3.BoolVal(choices.get(name, False))
    for name in ("data", "survivor"):
        assignment[getattr(c, name)] = z3.IntVal(choices.get(name, 0))
    assignment[c.wanted] = POLICY[choices.get("wanted", Policy.NETWORK).name]
    assignment[c.event] = z3.IntVal(choices.get("event", 0))
    return assignment
