"""The `storvisor` command: a dispatcher of subcommands.

Each part of the project that has commands contributes a module with
`register(subparsers)` (each subcommand sets `run=` to a function taking the
parsed arguments and returning an exit status) and an `EXPECTED_ERRORS` tuple
of exceptions that are reported as one line instead of a traceback.
Add a module to `COMMAND_MODULES` to add its subcommands.
"""

import argparse
import importlib
import sys

COMMAND_MODULES = ("impl.server.commands",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storvisor", description="storvisor: run operating systems from central disk images")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    expected: tuple[type[BaseException], ...] = ()
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
        expected += module.EXPECTED_ERRORS
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except expected as e:
        print(f"storvisor {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
