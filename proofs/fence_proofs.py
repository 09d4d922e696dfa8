"""The AoE initiator's write fence: a late copy of an older write never lands after a newer write of the same sector.

`spec/aoe/initiator.py` keeps at most one write per sector in flight, counting
copies that may still be travelling: a later write to a sector waits until the
earlier one has finished (`may_send`, submission order) and until
more than `max_frame_age` after the earlier one's last transmission (`write_fences`);
retransmissions go out only while a request is unfinished (`tick`). The model
below is one sector and two writes, A then B, with integer time; a copy of a
transmission may be delivered at any time until it is `max_frame_age` old, that age included.
This is `one_write_in_flight_per_sector` for the network, proved inductive.
"""

import time

import z3

from proofs.harness import Outcome

A, B = 1, 2  # what the target's sector holds after each write lands; 0 is the image
FIELDS = ("now", "a_sent", "a_last", "a_done", "b_sent", "b_first", "b_last", "b_landed", "target")


class FenceState:
    def __init__(self, suffix: str):
        for name in FIELDS:
            sort = z3.IntSort() if name in ("now", "a_last", "b_first", "b_last", "target") else z3.BoolSort()
            setattr(self, name, z3.Const(f"{name}@{suffix}", sort))

    def __getitem__(self, name):
        return getattr(self, name)


def _step(s: FenceState, t: FenceState, age: z3.ArithRef, suffix: str, fence: bool, inclusive: bool, fence_past_age: bool = True):
    """One event; returns (event index, formula). `fence_past_age`: B waits until after A's last transmission + age, as the spec does."""
    elapsed = z3.Int(f"elapsed@{suffix}")
    alive = (lambda last: t.now <= last + age) if inclusive else (lambda last: t.now < last + age)
    keep = lambda *changed: [t[f] == s[f] for f in FIELDS if f not in changed]  # noqa: E731
    event = z3.Int(f"event@{suffix}")
    options = [
        # Time passes.
        z3.And(elapsed >= 0, t.now == s.now + elapsed, *keep("now")),
        # A is transmitted or retransmitted while unfinished (`transmit`, `tick`).
        z3.And(z3.Not(s.a_done), t.a_sent, t.a_last == s.now, *keep("a_sent", "a_last")),
        # A finishes: answered, or failed at its deadline (`process_ata_response`, `fail`).
        z3.And(s.a_sent, z3.Not(s.a_done), t.a_done, *keep("a_done")),
        # B is transmitted: A has finished (`may_send`, submission order) and A's fence has run out.
        z3.And(
            s.a_done,
            ((s.a_last + age < s.now) if fence_past_age else (s.a_last + age <= s.now)) if fence else z3.BoolVal(True),
            t.b_sent,
            t.b_first == z3.If(s.b_sent, s.b_first, s.now),
            t.b_last == s.now,
            *keep("b_sent", "b_first", "b_last"),
        ),
        # A copy of A's latest transmission, still alive, reaches the target.
        z3.And(s.a_sent, alive(s.a_last), t.target == A, *keep("target")),
        # A copy of B reaches the target.
        z3.And(s.b_sent, alive(s.b_last), t.target == B, t.b_landed, *keep("target", "b_landed")),
    ]
    names = ["time passes", "A transmitted", "A finished", "B transmitted", "copy of A lands", "copy of B lands"]
    formula = z3.Or([z3.And(event == i, option) for i, option in enumerate(options)])
    return event, formula, names


def _initial(s: FenceState) -> z3.BoolRef:
    return z3.And(
        s.now == 0, z3.Not(s.a_sent), z3.Not(s.a_done), z3.Not(s.b_sent), z3.Not(s.b_landed), s.target == 0,
        s.a_last == 0, s.b_first == 0, s.b_last == 0,
    )


def no_late_overwrite(s: FenceState) -> z3.BoolRef:
    """Once B has landed, the sector never holds A again."""
    return z3.Implies(s.b_landed, s.target == B)


def _strengthening(s: FenceState, age) -> z3.BoolRef:
    return z3.And(
        z3.Implies(s.a_sent, s.a_last <= s.now),
        z3.Implies(s.a_done, s.a_sent),
        z3.Implies(s.b_sent, z3.And(s.a_done, s.a_sent, s.a_last + age < s.b_first, s.b_first <= s.b_last, s.b_last <= s.now)),
        z3.Implies(s.b_landed, s.b_sent),
        z3.Implies(s.target == A, s.a_sent),
    )


def prove_fence() -> Outcome:
    """Inductive: initially, and after every event from a state of the strengthened invariant."""
    age = z3.Int("max_frame_age")
    s, t = FenceState("pre"), FenceState("post")
    _, step, _ = _step(s, t, age, "step", fence=True, inclusive=True)
    inv = lambda x: z3.And(no_late_overwrite(x), _strengthening(x, age))  # noqa: E731
    started = time.perf_counter()
    for assumptions, claim in (([_initial(s)], inv(s)), ([age >= 1, inv(s), step], inv(t))):
        solver = z3.Solver()
        solver.add(*assumptions, z3.Not(claim))
        if solver.check() != z3.unsat:
            return Outcome("one_write_in_flight_per_sector (AoE fence)", "refuted", time.perf_counter() - started)
    return Outcome("one_write_in_flight_per_sector (AoE fence)", "proved", time.perf_counter() - started)


def find_late_overwrite(fence: bool, inclusive: bool, fence_past_age: bool = True, depth: int = 8) -> Outcome:
    """Bounded search from the start for a run in which a copy of A lands after B."""
    label = (
        "no fence"
        if not fence
        else "the specification"
        if fence_past_age
        else "a fence that ends at exactly max_frame_age while a frame may arrive at that age"
        if inclusive
        else "a fence that ends at exactly max_frame_age"
    )
    kind = "bounded search" if fence and fence_past_age else "control"
    name = f"one_write_in_flight_per_sector (AoE fence) [{kind}: {label}]"
    age = z3.Int("max_frame_age")
    states = [FenceState("0")]
    solver = z3.Solver()
    solver.add(age >= 1, _initial(states[0]))
    started = time.perf_counter()
    steps = []
    for i in range(1, depth + 1):
        states.append(FenceState(str(i)))
        event, formula, names = _step(states[-2], states[-1], age, str(i), fence, inclusive, fence_past_age)
        steps.append(event)
        solver.add(formula)
        solver.push()
        solver.add(z3.Not(no_late_overwrite(states[-1])))
        if solver.check() == z3.sat:
            m = solver.model()
            lines = [f"variant: {label} (max_frame_age {m.eval(age)})"]
            for j, e in enumerate(steps):
                lines.append(f"  t={m.eval(states[j + 1].now)}: {names[m.eval(e).as_long()]}")
            lines.append("  => the sector holds A after B landed")
            return Outcome(name, "refuted", time.perf_counter() - started, m, "\n".join(lines))
        solver.pop()
    return Outcome(name, "proved", time.perf_counter() - started, notes=[f"no violation within {depth} steps"])
