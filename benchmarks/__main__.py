"""Run every benchmark in this folder: each module with a `main(argv)` that prints its figures.

    python -m benchmarks            # all of them, in name order
    python -m benchmarks boot_time  # only the named ones
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def benchmark_modules() -> list[str]:
    """Names of the modules in this folder that define main()."""
    names = []
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("_"):
            continue
        if callable(getattr(importlib.import_module(f"benchmarks.{module.name}"), "main", None)):
            names.append(module.name)
    return sorted(names)


def main(argv: list[str]) -> int:
    available = benchmark_modules()
    unknown = sorted(set(argv) - set(available))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    failed = []
    for name in argv or available:
        print(f"== benchmarks.{name}", flush=True)
        if importlib.import_module(f"benchmarks.{name}").main([]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
