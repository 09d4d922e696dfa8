"""Print every proof's name, result and time after the run, and the counterexample of every negative control."""

from proofs.harness import RESULTS


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("proofs")
    width = max(len(o.name) for o in RESULTS)
    for outcome in RESULTS:
        note = f"  ({'; '.join(outcome.notes)})" if outcome.notes else ""
        write(f"{outcome.name.ljust(width)}  {outcome.result:8}  {outcome.seconds:7.2f} s{note}")
    traces = [o for o in RESULTS if o.trace]
    if traces:
        terminalreporter.section("counterexamples")
        for outcome in traces:
            write(f"{outcome.name}:")
            for line in outcome.trace.splitlines():
                write(line)
