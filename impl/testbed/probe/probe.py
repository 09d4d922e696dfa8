"""Builds a disk that boots the probe guest with a given script.

The probe (probe.asm) is assembled with nasm; the disk holds it from LBA 0 and the script
sectors from SCRIPT_LBA: the magic "PRB1", then each operation's code byte and operands, then 0.
An operation is a name ("e820") or a tuple with operands: ("out", size, port, value) writes
1, 2 or 4 bytes, ("in", size, port) reads them and prints `probe: in PORT SIZE VALUE`;
("wait-not-busy", port) polls a status port until BSY clears and prints
`probe: wait PORT POLLS VALUE`; ("read-data", count) reads `count` words from the Data register
and prints `probe: data COUNT WORD...`; ("write-data", count, first) writes `count` words,
word i = (first + i * 0x0101) mod 2**16 (`write_data_words`).
"""

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

PROBE_SOURCE = Path(__file__).with_name("probe.asm")
SECTOR_SIZE = 512
SCRIPT_LBA = 16  # keep in step with probe.asm
SCRIPT_SECTORS = 8  # keep in step with probe.asm
SCRIPT_MAGIC = b"PRB1"
DISK_SECTORS = 2048  # 1 MiB: room for the probe, the script and sectors to read
FIRST_FREE_LBA = SCRIPT_LBA + SCRIPT_SECTORS  # sectors from here on are the tests' to fill

# Operation names and codes; keep in step with the OP_* constants of probe.asm.
OPS: dict[str, int] = {
    "e820": 1,
    "peek-vmm": 2,
    "poke-vmm": 3,
    "dma-to-vmm": 4,
    "dma-to-ram": 5,
    "pci-ide": 6,
    "fwcfg-to-vmm": 7,
    "power-off": 8,
    "move-bar4": 9,
    "dma-table-in-vmm": 10,
    "dma-64k-into-vmm": 11,
    "pio-strings": 12,
    "svm-hidden": 13,
    "dma-secondary-to-vmm": 14,
    "bar4-over-ide": 15,
    "self-init": 16,
    "vmsave-into-vmm": 17,
    "a20-off": 18,
    "out": 19,
    "in": 20,
    "wait-not-busy": 21,
    "read-data": 22,
    "write-data": 23,
}
PORT_SIZES = (1, 2, 4)
WORD_PATTERN_STEP = 0x0101  # write-data's word i is first + i * WORD_PATTERN_STEP

# An operation: a name, or a tuple of a name and its operands (see the module docstring).
Operation = str | tuple


def assemble(build_dir: Path) -> Path:
    """The probe as a flat binary; nasm's error text is raised if it does not assemble."""
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / "probe.bin"
    result = subprocess.run(
        ["nasm", "-f", "bin", "-w+all", "-o", str(binary), str(PROBE_SOURCE)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"nasm failed on {PROBE_SOURCE}:\n{result.stderr}")
    return binary


def encode(op: Operation) -> bytes:
    """One operation's bytes; an unknown name or a bad operand is an error naming it."""
    name, *operands = (op,) if isinstance(op, str) else op
    if name not in OPS:
        raise ValueError(f"unknown probe operation {name!r}; known: {sorted(OPS)}")
    if name in ("out", "in"):
        expected = 3 if name == "out" else 2
        if len(operands) != expected:
            raise ValueError(f"probe operation {name!r} takes {expected} operands, got {operands!r}")
        size, port = operands[0], operands[1]
        if size not in PORT_SIZES or not 0 <= port <= 0xFFFF:
            raise ValueError(f"probe operation {op!r}: size must be 1, 2 or 4 and port 0..0xFFFF")
        body = bytes([OPS[name], size]) + port.to_bytes(2, "little")
        if name == "out":
            value = operands[2]
            if not 0 <= value < 1 << (8 * size):
                raise ValueError(f"probe operation {op!r}: value does not fit {size} bytes")
            body += value.to_bytes(4, "little")
        return body
    if name in WORD_OPERANDS:
        if len(operands) != WORD_OPERANDS[name] or not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in operands):
            raise ValueError(f"probe operation {name!r} takes {WORD_OPERANDS[name]} operands of 0..0xFFFF, got {operands!r}")
        return bytes([OPS[name]]) + b"".join(w.to_bytes(2, "little") for w in operands)
    if operands:
        raise ValueError(f"probe operation {name!r} takes no operands, got {operands!r}")
    return bytes([OPS[name]])


WORD_OPERANDS = {"wait-not-busy": 1, "read-data": 1, "write-data": 2}  # operations whose operands are words


def write_data_words(count: int, first: int) -> list[int]:
    """The words ("write-data", count, first) writes, in order."""
    return [(first + i * WORD_PATTERN_STEP) & 0xFFFF for i in range(count)]


def script_sectors(ops: Sequence[Operation]) -> bytes:
    """The script sectors for a list of operations."""
    capacity = SCRIPT_SECTORS * SECTOR_SIZE
    body = SCRIPT_MAGIC + b"".join(encode(op) for op in ops) + b"\0"
    if len(body) > capacity:
        raise ValueError(f"a probe script holds at most {capacity} bytes, this one needs {len(body)}")
    return body.ljust(capacity, b"\0")


def build_probe_disk(disk: Path, ops: Sequence[Operation], build_dir: Path) -> Path:
    """Writes a raw disk image at `disk` that boots the probe and runs `ops`."""
    code = assemble(build_dir).read_bytes()
    if len(code) > SCRIPT_LBA * SECTOR_SIZE:
        raise RuntimeError("the probe has grown into its script sector")
    image = bytearray(DISK_SECTORS * SECTOR_SIZE)
    image[: len(code)] = code
    image[SCRIPT_LBA * SECTOR_SIZE : FIRST_FREE_LBA * SECTOR_SIZE] = script_sectors(ops)
    disk.write_bytes(bytes(image))
    return disk


def probe_lines(serial: str, operation: str) -> list[list[str]]:
    """The fields of every `probe: <operation> ...` line the probe printed, in order."""
    return [line.split()[2:] for line in serial.splitlines() if re.match(rf"probe: {operation}( |\r?$)", line)]
