"""Proof obligations over the storage model: initiation, consecution, and bounded searches for the negative controls.

An invariant I is inductive when it holds in every initial state and every
transition from a state satisfying I reaches a state satisfying I. Each
catalogue entry is proved relative to `strengthened` (the catalogue plus the
auxiliary facts), and every auxiliary fact is proved the same way, so the
conjunction is inductive and each entry holds in every reachable state.

A negative control runs a deliberately broken `Variant` from the initial
state for up to `DEPTH` steps and asks z3 for a run that breaks the entry;
the run is printed as a trace in the spec's vocabulary.
"""

import time

import z3

from proofs.harness import Outcome
from proofs.storage_invariants import CATALOGUE, STRENGTHENING, strengthened
from proofs.storage_model import FIELDS, Choices, State, Variant, event_names, events, initial, transition

DEPTH = 8  # steps a negative control may take; every known defect shows within six


def _constants():
    image, garbage = z3.Int("image"), z3.Int("garbage")
    return image, garbage, image != garbage


def _predicate(name: str, variant: Variant = Variant.SPEC):
    """The named predicate; read routing is the variant's own, so a broken router is judged as it routes."""
    if name in ("no_unpopulated_local_read", "guest_sees_ideal_disk"):
        return lambda s: CATALOGUE[name](s, variant)
    if name in CATALOGUE:
        return CATALOGUE[name]
    return STRENGTHENING[name][0]


def prove_inductive(name: str, variant: Variant = Variant.SPEC, timeout_ms: int = 60_000) -> Outcome:
    """Initiation and consecution of one invariant, relative to the strengthened invariant, event by event."""
    predicate = _predicate(name)
    image, garbage, distinct = _constants()
    s, t, c = State("pre"), State("post"), Choices("step")
    started = time.perf_counter()
    obligations = [("initially", [distinct, initial(s, image, garbage)], predicate(s))]
    for index, event in enumerate(event_names(variant)):
        obligations.append(
            (f"after {event}", [strengthened(s), transition(s, t, c, variant), c.event == index], predicate(t))
        )
    for label, assumptions, claim in obligations:
        solver = z3.Solver()
        solver.set("timeout", timeout_ms)
        solver.add(*assumptions)
        solver.add(z3.Not(claim))
        answer = solver.check()
        if answer != z3.unsat:
            result = "refuted" if answer == z3.sat else "unknown"
            model = solver.model() if answer == z3.sat else None
            trace = f"not preserved {label}" + ("" if model is None else ":\n" + describe_step(model, s, t, c, variant))
            return Outcome(name, result, time.perf_counter() - started, model, trace)
    return Outcome(name, "proved", time.perf_counter() - started)


def prove_stale_response_ignored(variant: Variant = Variant.SPEC) -> Outcome:
    """A response to a tag not outstanding changes nothing, from every state the invariant admits."""
    s, t, c = State("pre"), State("post"), Choices("step")
    index = event_names(variant).index("stale response")
    solver = z3.Solver()
    solver.add(strengthened(s), transition(s, t, c, variant), c.event == index)
    solver.add(z3.Not(z3.And([s[f] == t[f] for f in FIELDS])))
    started = time.perf_counter()
    answer = solver.check()
    seconds = time.perf_counter() - started
    if answer == z3.unsat:
        return Outcome("stale_response_ignored", "proved", seconds)
    if answer == z3.sat:
        model = solver.model()
        return Outcome("stale_response_ignored", "refuted", seconds, model, describe_step(model, s, t, c, variant))
    return Outcome("stale_response_ignored", "unknown", seconds)


def find_violation(name: str, variant: Variant, depth: int = DEPTH, timeout_ms: int = 120_000) -> Outcome:
    """Bounded search from the initial state for a run of `variant` that breaks `name`; the shortest is kept."""
    predicate = _predicate(name, variant) if name != "stale_response_ignored" else None
    image, garbage, distinct = _constants()
    states = [State("0")]
    choices: list[Choices] = []
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(distinct, initial(states[0], image, garbage))
    started = time.perf_counter()
    stale = event_names(variant).index("stale response")
    for step in range(1, depth + 1):
        states.append(State(str(step)))
        choices.append(Choices(str(step)))
        solver.add(transition(states[-2], states[-1], choices[-1], variant))
        solver.push()
        if predicate is None:
            changed = z3.Not(z3.And([states[-2][f] == states[-1][f] for f in FIELDS]))
            solver.add(choices[-1].event == stale, changed)
        else:
            solver.add(z3.Not(predicate(states[-1])))
        answer = solver.check()
        if answer == z3.sat:
            model = solver.model()
            trace = describe_run(model, states, choices, variant, image, garbage) + f"\n  => {name} is broken"
            return Outcome(name, "refuted", time.perf_counter() - started, model, trace)
        solver.pop()
        if answer == z3.unknown:
            break
    return Outcome(name, "proved", time.perf_counter() - started, notes=[f"no violation within {depth} steps"])


# Traces in the spec's vocabulary.


def _value(model: z3.ModelRef, term: z3.ExprRef, names: dict[int, str]) -> str:
    value = model.eval(term, model_completion=True)
    if z3.is_int_value(value):
        return names.get(value.as_long(), f"data {value.as_long()}")
    if z3.is_true(value) or z3.is_false(value):
        return "yes" if z3.is_true(value) else "no"
    return str(value)


def _set(model: z3.ModelRef, values: z3.ExprRef, candidates: list[int], names: dict[int, str]) -> str:
    members = [v for v in candidates if z3.is_true(model.eval(values[v], model_completion=True))]
    return "{" + ", ".join(names.get(v, f"data {v}") for v in members) + "}"


SHOWN = ("policy", "switching", "state", "fill", "write", "local", "server", "persisted", "commit", "map_may_trust", "flush_wait")
SETS = ("local_at_risk", "readable", "may_survive")


def _candidates(model: z3.ModelRef, states: list[State], choices: list[Choices]) -> list[int]:
    terms = []
    for s in states:
        terms += [s.local, s.server, s.fill_data, s.write_data, s.flush_covers]
    for c in choices:
        terms += [c.data, c.survivor]
    values = {model.eval(t, model_completion=True).as_long() for t in terms}
    return sorted(values)


def _fields(model, s: State, candidates, names) -> dict[str, str]:
    shown = {f: _value(model, s[f], names) for f in SHOWN}
    shown.update({f: _set(model, s[f], candidates, names) for f in SETS})
    return shown


def _state_line(model, s: State, candidates, names) -> str:
    return "    " + " ".join(f"{k}={v}" for k, v in _fields(model, s, candidates, names).items())


def _change_line(model, before: State, after: State, candidates, names) -> str:
    old, new = _fields(model, before, candidates, names), _fields(model, after, candidates, names)
    changes = [f"{k} {old[k]} -> {new[k]}" for k in new if old[k] != new[k]]
    return "    " + ("; ".join(changes) if changes else "(no change)")


def _event_line(model, s: State, c: Choices, variant: Variant, names) -> str:
    index = model.eval(c.event, model_completion=True).as_long()
    event = events(s, c, variant)[index]
    shown = ", ".join(f"{label} {_value(model, term, names)}" for label, term in event.shows)
    return f"  {event.name}" + (f" ({shown})" if shown else "")


def describe_run(model, states, choices, variant, image, garbage) -> str:
    """The run from boot: the whole first state, then each event and what it changed."""
    names = {
        model.eval(image, model_completion=True).as_long(): "image",
        model.eval(garbage, model_completion=True).as_long(): "blank",
    }
    candidates = _candidates(model, states, choices)
    lines = [f"variant: {variant.value}", "  boot", _state_line(model, states[0], candidates, names)]
    for step, c in enumerate(choices):
        lines.append(_event_line(model, states[step], c, variant, names))
        lines.append(_change_line(model, states[step], states[step + 1], candidates, names))
    return "\n".join(lines)


def describe_step(model, s, t, c, variant) -> str:
    candidates = _candidates(model, [s, t], [c])
    return "\n".join(
        [_state_line(model, s, candidates, {}), _event_line(model, s, c, variant, {}), _change_line(model, s, t, candidates, {})]
    )
