"""Builds a disk that boots the probe guest with a given script.

The probe (probe.asm) is assembled with nasm; the disk holds it from LBA 0 and the script
sector at SCRIPT_LBA: the magic "PRB1", then each operation's code byte and operands, then 0.
An operation is a name ("e820") or, for port I/O, a tuple: ("out", size, port, value) writes
1, 2 or 4 bytes, ("in", size, port) reads them and prints `probe: in PORT SIZE VALUE`.
"""

import subprocess
from collections.abc import Sequence
from pathlib import Path

PROBE_SOURCE = Path(__file__).with_name("probe.asm")
SECTOR_SIZE = 512
SCRIPT_LBA = 16  # keep in step with probe.asm
SCRIPT_MAGIC = b"PRB1"
DISK_SECTORS = 2048  # 1 MiB: room for the probe, the script and sectors to read

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
}
PORT_SIZES = (1, 2, 4)

# An operation: a name, or ("out", size, port, value) / ("in", size, port) for port I/O.
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
    if operands:
        raise ValueError(f"probe operation {name!r} takes no operands, got {operands!r}")
    return bytes([OPS[name]])


def script_sector(ops: Sequence[Operation]) -> bytes:
    """The script sector for a list of operations."""
    body = SCRIPT_MAGIC + b"".join(encode(op) for op in ops) + b"\0"
    if len(body) > SECTOR_SIZE:
        raise ValueError(f"a probe script holds at most {SECTOR_SIZE} bytes, this one needs {len(body)}")
    return body.ljust(SECTOR_SIZE, b"\0")


def build_probe_disk(disk: Path, ops: Sequence[Operation], build_dir: Path) -> Path:
    """Writes a raw disk image at `disk` that boots the probe and runs `ops`."""
    code = assemble(build_dir).read_bytes()
    if len(code) > SCRIPT_LBA * SECTOR_SIZE:
        raise RuntimeError("the probe has grown into its script sector")
    image = bytearray(DISK_SECTORS * SECTOR_SIZE)
    image[: len(code)] = code
    image[SCRIPT_LBA * SECTOR_SIZE : (SCRIPT_LBA + 1) * SECTOR_SIZE] = script_sector(ops)
    disk.write_bytes(bytes(image))
    return disk
