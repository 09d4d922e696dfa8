"""Builds a disk that boots the probe guest with a given script.

The probe (probe.asm) is assembled with nasm; the disk holds it from LBA 0 and the script
sector at SCRIPT_LBA: the magic "PRB1", then one byte per operation, then 0.
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
}


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


def script_sector(ops: Sequence[str]) -> bytes:
    """The script sector for a list of operation names; an unknown name is an error."""
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"unknown probe operations {unknown}; known: {sorted(OPS)}")
    body = SCRIPT_MAGIC + bytes(OPS[op] for op in ops) + b"\0"
    if len(body) > SECTOR_SIZE:
        raise ValueError(f"a probe script holds at most {SECTOR_SIZE - len(SCRIPT_MAGIC) - 1} operations")
    return body.ljust(SECTOR_SIZE, b"\0")


def build_probe_disk(disk: Path, ops: Sequence[str], build_dir: Path) -> Path:
    """Writes a raw disk image at `disk` that boots the probe and runs `ops`."""
    code = assemble(build_dir).read_bytes()
    if len(code) > SCRIPT_LBA * SECTOR_SIZE:
        raise RuntimeError("the probe has grown into its script sector")
    image = bytearray(DISK_SECTORS * SECTOR_SIZE)
    image[: len(code)] = code
    image[SCRIPT_LBA * SECTOR_SIZE : (SCRIPT_LBA + 1) * SECTOR_SIZE] = script_sector(ops)
    disk.write_bytes(bytes(image))
    return disk
