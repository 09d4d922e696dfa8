"""dma_confined at the PRD level: the VMM's C check (impl/vmm/ata/ata_prd.c, compiled for the
host) against a Python reference built on the spec's PRD decoding (spec/ata/prd.py).

A table is confined when neither the table (the controller reads it by DMA) nor any region
up to the end-of-table mark meets the VMM's window. The PIIX ignores address bit 0 and QEMU
does not, so a region covers the bytes either would write.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from impl.vmm.build import VMM_WINDOW
from spec.ata.constants import PRD_ENTRY_BYTES
from spec.ata.prd import decode_prd_entry

HARNESS_SOURCE = Path(__file__).with_name("prd_harness.c")
MAX_ENTRIES = 8192  # PRD_TABLE_MAX_ENTRIES: one 64 KiB table
WINDOW_START, WINDOW_END = VMM_WINDOW
EOT_BIT = 1 << 63


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> ctypes.CDLL:
    library = tmp_path_factory.mktemp("prd") / "prd_harness.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(library), str(HARNESS_SOURCE)],
        check=True,
    )
    lib = ctypes.CDLL(str(library))
    lib.prd_harness_set.argtypes = [ctypes.c_uint64, ctypes.c_uint64]
    lib.prd_harness_check.argtypes = [ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint)]
    return lib


def touches_window(start: int, length: int) -> bool:
    return length > 0 and start < WINDOW_END and start + length > WINDOW_START


def reference_is_confined(memory: dict[int, int], table: int) -> tuple[bool, int]:
    """(confined, entries up to and including EOT) the way the VMM must decide it."""
    for index in range(MAX_ENTRIES):
        entry_address = table + PRD_ENTRY_BYTES * index
        if touches_window(entry_address, PRD_ENTRY_BYTES):
            return False, 0
        raw = memory.get(entry_address, 0).to_bytes(8, "little")
        entry = decode_prd_entry(raw)
        raw_address = int.from_bytes(raw[0:4], "little")
        if touches_window(entry.address, entry.byte_count + (raw_address & 1)):
            return False, 0
        if entry.end_of_table:
            return True, index + 1
    return False, 0


def c_is_confined(harness: ctypes.CDLL, memory: dict[int, int], table: int) -> tuple[bool, int]:
    harness.prd_harness_reset()
    for address, value in memory.items():
        assert harness.prd_harness_set(address, value) == 0
    entries = ctypes.c_uint(0)
    confined = bool(harness.prd_harness_check(table, ctypes.byref(entries)))
    return confined, entries.value if confined else 0


def prd(address: int, byte_count_field: int, eot: bool) -> int:
    return (address & 0xFFFFFFFF) | (byte_count_field & 0xFFFF) << 32 | (EOT_BIT if eot else 0)


near_window = st.one_of(
    st.integers(WINDOW_START - 0x20000, WINDOW_START + 0x10),
    st.integers(WINDOW_END - 0x10, WINDOW_END + 0x10),
    st.integers(0, 0xFFFFFFFF),
)
entry_strategy = st.tuples(near_window, st.integers(0, 0xFFFF), st.booleans())
table_strategy = st.one_of(
    st.integers(WINDOW_START - 0x80, WINDOW_START + 0x10).map(lambda a: a & ~3),
    st.integers(WINDOW_END - 0x10, WINDOW_END + 0x10).map(lambda a: a & ~3),
    st.integers(0x1000, 0x0FFFFFFF).map(lambda a: a & ~3),
)


@given(table=table_strategy, entries=st.lists(entry_strategy, min_size=1, max_size=12), end_with_eot=st.booleans())
@example(table=0x5000, entries=[(WINDOW_START - 0x200 + 1, 0x200, True)], end_with_eot=True)  # odd address: QEMU's last byte lands in the window
@example(table=0x5000, entries=[(WINDOW_START - 0x8000, 0x0001, True)], end_with_eot=True)  # size field 1 means 64 KiB
@example(table=WINDOW_START - 8, entries=[(0x10000, 0x200, False)], end_with_eot=False)  # the second entry would be read from the window
@example(table=0x5000, entries=[(0x10000, 0x200, False)], end_with_eot=False)  # no EOT: zeroed memory for 8191 more entries, refused
def test_c_check_agrees_with_the_reference(harness, table, entries, end_with_eot):
    memory = {}
    for index, (address, count, eot) in enumerate(entries):
        last = index == len(entries) - 1
        memory[table + PRD_ENTRY_BYTES * index] = prd(address, count, eot or (last and end_with_eot))
    assert c_is_confined(harness, memory, table) == reference_is_confined(memory, table)


def test_a_table_of_ordinary_buffers_is_confined(harness):
    memory = {0x5000: prd(0x10000, 0x1000, False), 0x5008: prd(0x20000, 0, True)}
    assert c_is_confined(harness, memory, 0x5000) == (True, 2)


def test_a_region_ending_exactly_at_the_window_is_confined_one_byte_more_is_not(harness):
    assert c_is_confined(harness, {0x5000: prd(WINDOW_START - 0x200, 0x200, True)}, 0x5000) == (True, 1)
    assert c_is_confined(harness, {0x5000: prd(WINDOW_START - 0x200 + 2, 0x200, True)}, 0x5000) == (False, 0)
    assert c_is_confined(harness, {0x5000: prd(WINDOW_END, 0x200, True)}, 0x5000) == (True, 1)
