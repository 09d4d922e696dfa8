"""Runs sequences on both sides and returns every reported value under its (sequence, label).

QEMU side: one boot of the probe guest from a disk holding the probe, the script of all
sequences in order, and `disk_pattern` in every free sector; the values come from its COM1
lines. Spec side: `spec.ata.AtaChannel` over a `MemoryStore` holding the same disk image;
settling ticks the channel until BSY clears, as the probe polls until it does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from difftest.qemu_ide.script import DATA, Sequence
from impl.testbed.probe.probe import (
    DISK_SECTORS,
    FIRST_FREE_LBA,
    SECTOR_SIZE,
    build_probe_disk,
    write_data_words,
)
from impl.testbed.qemu import run_machine
from spec.ata import AtaChannel, FlatMemory
from spec.ata.backing_store import MemoryStore
from spec.ata.constants import BSY

SETTLE_LIMIT = 1_000_000  # the probe's WAIT_POLL_LIMIT: neither side waits longer
BOOT_TIMEOUT_S = 60
GUEST_MEMORY_BYTES = 0x10000  # the spec channel's guest memory; no sequence uses DMA

Results = dict[tuple[str, str], int]


def sector_pattern(lba: int) -> bytes:
    """What a free sector holds: word i is (lba mod 256) * 256 + i, so every word says where it lives."""
    return b"".join((((lba & 0xFF) << 8) | i).to_bytes(2, "little") for i in range(SECTOR_SIZE // 2))


def build_disk(path: Path, sequences: Iterable[Sequence], build_dir: Path) -> bytes:
    """Writes the probe disk for `sequences` (ending in power-off) and returns its bytes."""
    ops = [op for sequence in sequences for op in sequence.ops] + ["power-off"]
    build_probe_disk(path, ops, build_dir)
    image = bytearray(path.read_bytes())
    for lba in range(FIRST_FREE_LBA, DISK_SECTORS):
        image[lba * SECTOR_SIZE : (lba + 1) * SECTOR_SIZE] = sector_pattern(lba)
    path.write_bytes(bytes(image))
    return bytes(image)


class ProbeRunFailed(Exception):
    """The probe guest did not run the whole script; the message holds the end of its COM1 output."""


def run_on_qemu(disk: Path, sequences: list[Sequence]) -> Results:
    """Boots the probe disk on QEMU without the VMM and labels every value it printed."""
    run = run_machine(disk, timeout_s=BOOT_TIMEOUT_S)
    tail = run.serial[-3000:]
    if run.timed_out or "probe: power-off" not in run.serial or "probe: error" in run.serial:
        raise ProbeRunFailed(f"the probe did not finish its script (exit {run.exit_code}):\n{tail}")
    values: list[int] = []
    for line in run.serial.splitlines():
        fields = line.split()
        if re.match(r"probe: in ", line):
            values.append(int(fields[4], 16))
        elif re.match(r"probe: wait ", line):
            values.append(int(fields[4], 16))
        elif re.match(r"probe: data ", line):
            count = int(fields[2], 16)
            words = [int(word, 16) for word in fields[3:]]
            if len(words) != count:
                raise ProbeRunFailed(f"a data line announced {count} words and holds {len(words)}:\n{line}")
            values += words
    return _label(sequences, values)


def run_on_spec(image: bytes, sequences: list[Sequence]) -> Results:
    """Runs the same operations on the spec's channel over a store holding `image`."""
    store = MemoryStore(len(image) // SECTOR_SIZE)
    store.sectors[:] = image
    channel = AtaChannel(store, FlatMemory(GUEST_MEMORY_BYTES))
    values: list[int] = []
    for sequence in sequences:
        for op in sequence.ops:
            values += _spec_operation(channel, op)
    return _label(sequences, values)


def _spec_operation(channel: AtaChannel, op: tuple) -> list[int]:
    """One probe operation on the spec's channel: the values the probe would print."""
    match op:
        case ("out", size, port, value):
            channel.write(port, size, value)
            return []
        case ("in", size, port):
            return [channel.read(port, size)]
        case ("wait-not-busy", port):
            for _ in range(SETTLE_LIMIT):
                value = channel.read(port, 1)
                if not value & BSY:
                    break
                channel.tick()
            return [value]
        case ("read-data", count):
            return [channel.read(DATA, 2) for _ in range(count)]
        case ("write-data", count, first):
            for word in write_data_words(count, first):
                channel.write(DATA, 2, word)
            return []
    raise ValueError(f"the comparison has no spec side for probe operation {op!r}")


def _label(sequences: list[Sequence], values: list[int]) -> Results:
    labels = [(sequence.name, label) for sequence in sequences for label in sequence.labels]
    if len(values) != len(labels):
        raise ProbeRunFailed(f"{len(values)} values reported for {len(labels)} labels")
    return dict(zip(labels, values, strict=True))
