"""A register sequence as the probe guest runs it, with a label on every value it reports.

A `Sequence` is built with `out`, `read`, `settle`, `read_words` and `write_words`; its `ops`
are probe operations (impl/testbed/probe/probe.py) and its `labels` name, in order, each value
the sequence reports: one per `read`, per `settle` and per word of `read_words`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spec.ata.commands import COMMANDS
from spec.ata.constants import PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT, CommandBlock

DATA = PRIMARY_COMMAND_BASE + CommandBlock.DATA
ERROR_FEATURES = PRIMARY_COMMAND_BASE + CommandBlock.ERROR_FEATURES
SECTOR_COUNT = PRIMARY_COMMAND_BASE + CommandBlock.SECTOR_COUNT
LBA_LOW = PRIMARY_COMMAND_BASE + CommandBlock.LBA_LOW
LBA_MID = PRIMARY_COMMAND_BASE + CommandBlock.LBA_MID
LBA_HIGH = PRIMARY_COMMAND_BASE + CommandBlock.LBA_HIGH
DEVICE = PRIMARY_COMMAND_BASE + CommandBlock.DEVICE
STATUS_COMMAND = PRIMARY_COMMAND_BASE + CommandBlock.STATUS_COMMAND
CONTROL = PRIMARY_CONTROL_PORT  # write: Device Control; read: Alternate Status

TASK_FILE = (  # the byte registers a host reads back after a command, and their labels
    ("error", ERROR_FEATURES),
    ("sector count", SECTOR_COUNT),
    ("lba low", LBA_LOW),
    ("lba mid", LBA_MID),
    ("lba high", LBA_HIGH),
    ("device", DEVICE),
    ("status", STATUS_COMMAND),
)


def command_code(name: str) -> int:
    """The code of a command of the spec's table, by the standard's name."""
    for command in COMMANDS:
        if command.name == name:
            return command.code
    raise KeyError(f"{name!r} is not in spec/ata/commands.py")


@dataclass
class Sequence:
    """One named register sequence: probe operations and the labels of what they report."""

    name: str
    ops: list = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def out(self, port: int, value: int, size: int = 1) -> Sequence:
        self.ops.append(("out", size, port, value))
        return self

    def read(self, label: str, port: int, size: int = 1) -> Sequence:
        self._label(label)
        self.ops.append(("in", size, port))
        return self

    def settle(self, label: str, port: int = CONTROL) -> Sequence:
        """Wait until BSY clears at `port`; the settled value is reported, the time it took is not."""
        self._label(label)
        self.ops.append(("wait-not-busy", port))
        return self

    def read_words(self, label: str, count: int) -> Sequence:
        for i in range(count):
            self._label(f"{label} word {i}")
        self.ops.append(("read-data", count))
        return self

    def write_words(self, count: int, first: int) -> Sequence:
        self.ops.append(("write-data", count, first))
        return self

    def task_file(self, label: str) -> Sequence:
        for register, port in TASK_FILE:
            self.read(f"{label}: {register}", port)
        return self

    def lba28(self, lba: int, count: int) -> Sequence:
        """Device (LBA mode, device 0, LBA bits 27:24), Sector Count and LBA for a 28-bit command."""
        self.out(DEVICE, 0xE0 | (lba >> 24) & 0x0F)
        self.out(SECTOR_COUNT, count & 0xFF)
        self.out(LBA_LOW, lba & 0xFF).out(LBA_MID, (lba >> 8) & 0xFF).out(LBA_HIGH, (lba >> 16) & 0xFF)
        return self

    def lba48(self, lba: int, count: int) -> Sequence:
        """Each two-deep register written twice, high byte first (V1 §7, "HOB")."""
        self.out(DEVICE, 0x40)
        self.out(SECTOR_COUNT, (count >> 8) & 0xFF).out(SECTOR_COUNT, count & 0xFF)
        for shift, port in ((0, LBA_LOW), (8, LBA_MID), (16, LBA_HIGH)):
            self.out(port, (lba >> (shift + 24)) & 0xFF).out(port, (lba >> shift) & 0xFF)
        return self

    def command(self, name_or_code: str | int) -> Sequence:
        code = command_code(name_or_code) if isinstance(name_or_code, str) else name_or_code
        return self.out(STATUS_COMMAND, code)

    def _label(self, label: str) -> None:
        if label in self.labels:
            raise ValueError(f"sequence {self.name!r} reports {label!r} twice")
        self.labels.append(label)
