"""How a proof is run and reported: one z3 query per obligation, a named outcome, a readable counterexample.

`prove` asks z3 whether the negation of a claim is satisfiable: unsat is a
proof, sat is a counterexample (the model), unknown is neither and fails.
Every outcome is recorded in `RESULTS`, which `proofs/conftest.py` prints
after the run as a table: name, result, time.
"""

import time
from dataclasses import dataclass, field

import z3

SOLVER_TIMEOUT_MS = 60_000  # one obligation; the whole directory must stay within minutes


@dataclass
class Outcome:
    name: str
    result: str  # "proved", "refuted" (a counterexample exists) or "unknown"
    seconds: float
    model: z3.ModelRef | None = None
    trace: str = ""  # the counterexample in the spec's vocabulary, for refutations
    notes: list[str] = field(default_factory=list)

    @property
    def proved(self) -> bool:
        return self.result == "proved"

    @property
    def refuted(self) -> bool:
        return self.result == "refuted"


RESULTS: list[Outcome] = []


def record(outcome: Outcome) -> Outcome:
    RESULTS.append(outcome)
    return outcome


def check(name: str, assumptions: list, claim: z3.BoolRef, timeout_ms: int = SOLVER_TIMEOUT_MS) -> Outcome:
    """Prove that `assumptions` imply `claim`; a counterexample model is kept on refutation."""
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*assumptions)
    solver.add(z3.Not(claim))
    started = time.perf_counter()
    answer = solver.check()
    seconds = time.perf_counter() - started
    if answer == z3.unsat:
        return Outcome(name, "proved", seconds)
    if answer == z3.sat:
        return Outcome(name, "refuted", seconds, solver.model())
    return Outcome(name, "unknown", seconds, notes=[solver.reason_unknown()])


def enum_sort(name: str, members: list[str]) -> tuple[z3.DatatypeSortRef, dict[str, z3.ExprRef]]:
    """A z3 enumeration whose constants carry the spec's own member names."""
    sort, constants = z3.EnumSort(name, members)
    return sort, dict(zip(members, constants))
