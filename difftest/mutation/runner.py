"""The mutation check: apply one small fault at a time to a copy of the C core, rebuild it, and
require the difftests to fail against it.

Mutants are listed in TOML files beside this one (`ata.toml`, and one file per part of the core),
each entry a `[[mutant]]` table:

    name    = "status-read-keeps-interrupt"       # unique, used by --only
    file    = "impl/vmm/core/ata/ata_device.c"    # relative to the repository root
    find    = "text that occurs exactly once"
    replace = "the faulty text"
    fault   = "dropped state update"              # what kind of fault it is
    tests   = ["difftest/test_ata_corpus.py", "difftest/test_ata_stateful.py"]   # optional

A mutant is KILLED when the tests fail against the mutated library, SURVIVED when they pass,
and STILLBORN when it does not compile (a broken mutant, reported, never counted as killed).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from difftest.binding import LIBRARY_ENV, REPOSITORY, build_library

MUTANT_DIR = Path(__file__).parent
DEFAULT_TESTS = ("difftest/test_ata_corpus.py", "difftest/test_ata_stateful.py")
WRITE_CORPUS_ENV = "STORVISOR_WRITE_CORPUS"  # as difftest/test_ata_stateful.py reads them
NO_SHRINK_ENV = "STORVISOR_NO_SHRINK"
CORE_TREE = ("impl/vmm/core", "impl/vmm/ata/ata_commands.h")  # what a mutated build needs
TEST_TIMEOUT = 600


class MutantError(ValueError):
    """A mutant list that cannot be applied as written."""


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    find: str
    replace: str
    fault: str
    tests: tuple[str, ...] = DEFAULT_TESTS
    source: str = ""  # the list file it came from

    def apply(self, root: Path) -> None:
        """Write the fault into the copy of the core under `root`."""
        path = root / self.file
        text = path.read_text()
        text_count = text.count(self.find)
        if text_count != 1:
            raise MutantError(f"{self.source}: mutant {self.name}: `find` occurs {text_count} times in {self.file}, not once")
        path.write_text(text.replace(self.find, self.replace))


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # KILLED | SURVIVED | STILLBORN
    detail: str = ""
    seconds: float = 0.0


def load_mutants(directory: Path = MUTANT_DIR) -> list[Mutant]:
    """Every mutant of every list file, checked for a unique name, a known file and a unique `find`."""
    mutants: list[Mutant] = []
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as file:
            entries = tomllib.load(file).get("mutant", [])
        for entry in entries:
            missing = {"name", "file", "find", "replace", "fault"} - set(entry)
            if missing:
                raise MutantError(f"{path.name}: mutant {entry.get('name', '?')} lacks {sorted(missing)}")
            tests = tuple(entry.get("tests", DEFAULT_TESTS))
            mutants.append(Mutant(entry["name"], entry["file"], entry["find"], entry["replace"], entry["fault"], tests, path.name))
    names = [m.name for m in mutants]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise MutantError(f"mutant names used twice: {sorted(duplicates)}")
    for mutant in mutants:
        if mutant.find == mutant.replace:
            raise MutantError(f"{mutant.source}: mutant {mutant.name} changes nothing")
        source = REPOSITORY / mutant.file
        if not source.is_file():
            raise MutantError(f"{mutant.source}: mutant {mutant.name}: no file {mutant.file}")
        count = source.read_text().count(mutant.find)
        if count != 1:
            raise MutantError(f"{mutant.source}: mutant {mutant.name}: `find` occurs {count} times in {mutant.file}, not once")
    return mutants


def copy_core(destination: Path) -> Path:
    """A copy of the core's sources (and the command table header it includes) laid out as in the repository."""
    for item in CORE_TREE:
        source, target = REPOSITORY / item, destination / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("build", "__pycache__"))
        else:
            shutil.copy2(source, target)
    return destination


def run_tests(library: Path, tests: tuple[str, ...], workdir: Path) -> subprocess.CompletedProcess:
    """The difftests against `library`, in their own directory so their Hypothesis database stays apart."""
    environment = {
        **os.environ,
        LIBRARY_ENV: str(library),
        WRITE_CORPUS_ENV: "0",
        NO_SHRINK_ENV: "1",
        "STORVISOR_HYPOTHESIS": "ci",
    }
    command = [
        sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0",
        f"--rootdir={REPOSITORY}", "-c", str(REPOSITORY / "pyproject.toml"),
        *(str(REPOSITORY / t) for t in tests),
    ]
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=TEST_TIMEOUT)


def first_failure(output: str) -> str:
    """The line of pytest's summary that names the first failing test, for the report."""
    for line in output.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            verdict, _, rest = line.partition(" ")
            return f"{verdict} {rest[rest.find('difftest/'):]}"[:160]
    return output.strip().splitlines()[-1][:160] if output.strip() else ""


def run_mutant(mutant: Mutant) -> Outcome:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="storvisor-mutant-") as scratch:
        root = copy_core(Path(scratch) / "tree")
        mutant.apply(root)
        try:
            library = build_library("host", Path(scratch) / "build", root / "impl" / "vmm" / "core")
        except RuntimeError as error:
            lines = str(error).splitlines()
            message = next((line for line in lines if "error:" in line), lines[-1])
            return Outcome(mutant, "STILLBORN", message[message.find("impl/"):][:160], time.perf_counter() - started)
        result = run_tests(library, mutant.tests, Path(scratch))
    verdict = "SURVIVED" if result.returncode == 0 else "KILLED"
    return Outcome(mutant, verdict, first_failure(result.stdout), time.perf_counter() - started)


def report(outcomes: list[Outcome]) -> str:
    killed = [o for o in outcomes if o.verdict == "KILLED"]
    viable = [o for o in outcomes if o.verdict != "STILLBORN"]
    lines = [f"{o.verdict:9} {o.mutant.name:42} {o.seconds:5.1f} s  {o.detail}" for o in outcomes]
    ratio = 100.0 * len(killed) / len(viable) if viable else 0.0
    lines.append(f"kill ratio: {len(killed)}/{len(viable)} = {ratio:.1f} %")
    survivors = [o.mutant.name for o in outcomes if o.verdict == "SURVIVED"]
    stillborn = [o.mutant.name for o in outcomes if o.verdict == "STILLBORN"]
    lines.append("surviving mutants: " + (", ".join(survivors) if survivors else "none"))
    if stillborn:
        lines.append("mutants that do not compile (fix their lists): " + ", ".join(stillborn))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m difftest.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutant names to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    arguments = parser.parse_args(argv)
    mutants = load_mutants()
    if arguments.only:
        wanted = set(arguments.only.split(","))
        unknown = wanted - {m.name for m in mutants}
        if unknown:
            parser.error(f"no mutants named {sorted(unknown)}")
        mutants = [m for m in mutants if m.name in wanted]
    if arguments.list:
        for m in mutants:
            print(f"{m.source:12} {m.name:42} {m.fault}")
        return 0
    build_library("host")  # fail early if the unmutated core does not build
    outcomes = []
    for mutant in mutants:
        outcome = run_mutant(mutant)
        print(f"{outcome.verdict:9} {mutant.name:42} {outcome.seconds:5.1f} s  {outcome.detail}", flush=True)
        outcomes.append(outcome)
    print(report(outcomes))
    return 0 if all(o.verdict == "KILLED" for o in outcomes) else 1
