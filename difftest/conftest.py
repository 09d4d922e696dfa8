"""Shared by the difftests: prints, at the end of a run, what the spec-versus-C runs exercised and how fast they went."""

from difftest import ata_machine
from difftest.ata_world import COVERAGE
from difftest.storage_trace_world import statistics_lines


def performance_line() -> str:
    s = ata_machine.STATISTICS
    if not s["seconds"]:
        return ""
    return (
        f"ATA spec vs C: {s['examples']} examples, {s['events']} events in {s['seconds']:.1f} s: "
        f"{s['examples'] / s['seconds']:.1f} examples/s, {s['events'] / s['seconds']:.0f} events/s"
    )


def pytest_terminal_summary(terminalreporter):
    storage_lines = statistics_lines()
    if storage_lines:
        terminalreporter.section("difftest: storage and AoE speed")
        for line in storage_lines:
            terminalreporter.write_line(line)
    if not COVERAGE.seen:
        return
    terminalreporter.section("difftest: ATA coverage and speed")
    terminalreporter.write_line(COVERAGE.report())
    line = performance_line()
    if line:
        terminalreporter.write_line(line)
