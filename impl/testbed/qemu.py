"""The QEMU launcher: boot one PC from a raw IDE disk, with or without the VMM in front of it.

Every test, benchmark and demo that runs a machine goes through `run_machine`, so all of them
see the same machine: QEMU's `pc` (i440FX + PIIX3 IDE), a CPU with AMD SVM and nested paging
(software emulation, see PLATFORM.md), the disk as IDE primary master, no display, no NIC
unless `extra_args` adds one, COM1 written to a file, and `-no-reboot` so that a guest
power-off, reboot or triple fault ends the run.

    python -m impl.testbed.qemu DISK [--vmm ELF] [--append CMDLINE] [--timeout S]

boots a machine by hand with COM1 on the terminal.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

QEMU_BINARY = "qemu-system-x86_64"
# qemu64 lacks SVM by default; +svm +npt give SVM revision 1 with nested paging under TCG.
CPU_MODEL = "qemu64,+svm,+npt"
# QEMU exits on SIGTERM after flushing its chardevs; a machine still alive this long after is killed.
TERMINATE_GRACE_S = 5.0
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class MachineRun:
    """What one run of a machine produced."""

    serial: str  # everything the machine wrote to COM1, decoded as UTF-8 with replacement
    exit_code: int | None  # QEMU's exit status; None when the run was stopped at its timeout
    timed_out: bool
    wall_seconds: float  # from starting QEMU to its exit (or to its kill at the timeout)
    qemu_stderr: str = ""  # QEMU's own diagnostics, for the error message of a failed start


class MachineError(Exception):
    """The machine cannot be started as asked (missing QEMU, disk or VMM image)."""


def _escape_option_value(value: str) -> str:
    """QEMU splits option values on commas; a literal comma is written twice."""
    return value.replace(",", ",,")


def qemu_command(
    disk: Path,
    *,
    serial_log: Path = Path("com1.log"),
    vmm: Path | None = None,
    vmm_cmdline: str = "",
    memory_mb: int = 256,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv that `run_machine` starts, for reading and for running by hand."""
    argv = [
        QEMU_BINARY,
        "-machine", "pc",
        "-cpu", CPU_MODEL,
        "-m", str(memory_mb),
        "-display", "none",
        "-monitor", "none",
        "-parallel", "none",
        "-nic", "none",
        "-no-reboot",
        "-drive", f"file={_escape_option_value(str(disk))},format=raw,if=ide,index=0",
        "-chardev", f"file,id=com1,path={_escape_option_value(str(serial_log))}",
        "-serial", "chardev:com1",
    ]
    if vmm is not None:
        # QEMU's -kernel loads a Multiboot v1 ELF; -append becomes its multiboot command line.
        argv += ["-kernel", str(vmm), "-append", vmm_cmdline]
    elif vmm_cmdline:
        raise MachineError("vmm_cmdline is given but vmm is not: the command line belongs to the VMM")
    argv += list(extra_args)
    return argv


def _check_inputs(disk: Path, vmm: Path | None, timeout_s: float, memory_mb: int) -> None:
    """Fail before starting QEMU, with a message that names what is wrong."""
    if not timeout_s > 0:
        raise MachineError(f"timeout_s must be positive, not {timeout_s}")
    if memory_mb < 1:
        raise MachineError(f"memory_mb must be positive, not {memory_mb}")
    if shutil.which(QEMU_BINARY) is None:
        raise MachineError(f"{QEMU_BINARY} is not installed; run `make setup` (Debian package qemu-system-x86)")
    if not disk.is_file():
        raise MachineError(f"disk image {disk} does not exist or is not a file")
    if vmm is not None and not vmm.is_file():
        raise MachineError(f"VMM image {vmm} does not exist or is not a file; build it with `make build`")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End a machine that outlived its timeout: SIGTERM first so QEMU flushes COM1, then SIGKILL."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _SerialFollower:
    """Copies what the machine appends to its COM1 file onto the terminal as it arrives."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0

    def pump(self) -> None:
        if not self._path.exists():
            return
        with self._path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        if chunk:
            self._offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()


def _wait(process: subprocess.Popen[bytes], deadline: float, follower: _SerialFollower | None) -> bool:
    """Wait for QEMU to exit, seeing its exit at once; stop it at `deadline`. True when stopped."""
    while True:
        if follower is not None:
            follower.pump()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _stop(process)
            return True
        try:
            process.wait(timeout=min(POLL_INTERVAL_S, remaining))
            return False
        except subprocess.TimeoutExpired:
            continue


def run_machine(
    disk: Path,
    *,
    vmm: Path | None = None,
    vmm_cmdline: str = "",
    timeout_s: float = 120,
    memory_mb: int = 256,
    extra_args: Sequence[str] = (),
    serial_to_terminal: bool = False,
) -> MachineRun:
    """Boot `disk` (behind `vmm` when given) until QEMU exits or `timeout_s` passes."""
    disk = Path(disk)
    vmm = Path(vmm) if vmm is not None else None
    _check_inputs(disk, vmm, timeout_s, memory_mb)
    with tempfile.TemporaryDirectory(prefix="storvisor-machine-") as scratch:
        serial_log = Path(scratch) / "com1.log"
        stderr_log = Path(scratch) / "qemu.stderr"
        argv = qemu_command(
            disk, serial_log=serial_log, vmm=vmm, vmm_cmdline=vmm_cmdline,
            memory_mb=memory_mb, extra_args=extra_args,
        )
        follower = _SerialFollower(serial_log) if serial_to_terminal else None
        with stderr_log.open("wb") as stderr_file:
            started = time.monotonic()
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr_file, stderr=stderr_file)
            try:
                timed_out = _wait(process, started + timeout_s, follower)
            finally:
                # An interrupted caller (Ctrl-C, a test timeout) must not leave the machine running.
                if process.poll() is None:
                    _stop(process)
            wall_seconds = time.monotonic() - started
        if follower is not None:
            follower.pump()
        serial = serial_log.read_bytes().decode("utf-8", errors="replace") if serial_log.exists() else ""
        qemu_stderr = stderr_log.read_text(errors="replace")
    return MachineRun(
        serial=serial,
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        wall_seconds=wall_seconds,
        qemu_stderr=qemu_stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impl.testbed.qemu", description=__doc__.splitlines()[0])
    parser.add_argument("disk", type=Path, help="raw disk image, attached as IDE primary master")
    parser.add_argument("--vmm", type=Path, help="Multiboot ELF of the VMM, loaded with -kernel")
    parser.add_argument("--append", default="", help="the VMM's command line")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before the machine is stopped")
    parser.add_argument("--memory", type=int, default=256, help="guest memory in MiB")
    parser.add_argument("--print-command", action="store_true", help="print the QEMU argv and exit")
    args = parser.parse_args(argv)
    if args.print_command:
        print(" ".join(qemu_command(args.disk, vmm=args.vmm, vmm_cmdline=args.append, memory_mb=args.memory)))
        return 0
    try:
        run = run_machine(args.disk, vmm=args.vmm, vmm_cmdline=args.append, timeout_s=args.timeout,
                          memory_mb=args.memory, serial_to_terminal=True)
    except MachineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sys.stderr.write(run.qemu_stderr)
    outcome = "timed out" if run.timed_out else f"exit code {run.exit_code}"
    print(f"\n[machine stopped: {outcome} after {run.wall_seconds:.2f} s]", file=sys.stderr)
    return 0 if run.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
