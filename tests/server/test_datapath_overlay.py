"""The overlay in C (datapath/overlay.c, allocation.c) against a model of the disk's bytes.

Hypothesis runs sequences of writes, reads, flushes, resets, compactions, close+reopen and reopening
after a reboot over a small base image; after each step the overlay must read as the model, its
allocation map (runs, sectors_written, covers_any) must name exactly the sectors written, each
written sector must sit in place in the file, and the journal must hold one record per run of
sectors a write newly allocated (an overwrite adds none). Reopening must recover every record the
C side wrote: Python's reader checks each record's field CRC (and after a reboot its data CRC)
with zlib. The map's word and leaf boundaries are checked against a set of sectors directly.
"""

import ctypes
import os
import struct
import tempfile
import zlib
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import impl.server.overlay as overlay_module
from impl.server.datapath import library
from impl.server.overlay import DATA_OFFSET, RECORD, RECORD_FIELDS, RECORD_MAGIC, Overlay, encode_record, epoch_seed, journal_home
from spec.aoe.constants import SECTOR_BYTES

SECTORS = 96
MAX_COUNT = 17  # sectors per write: one jumbo frame's worth (AoEr11 §3.2)
IDENTITY = "base-identity"
LEAF_SECTORS = 1 << 15  # allocation.h: DP_ALLOCATION_LEAF_SECTORS


def sector_pattern(serial: int, lba: int) -> bytes:
    """A sector no other write or base sector has: a wrong place shows as wrong bytes."""
    return struct.pack("<QQ", serial, lba) * (SECTOR_BYTES // 16)


def base_image(path: Path, sectors: int) -> bytes:
    data = b"".join(sector_pattern(0, lba) for lba in range(sectors))
    path.write_bytes(data)
    return data


def runs_of(sectors: set[int]) -> list[tuple[int, int]]:
    runs = []
    for lba in sorted(sectors):
        if runs and runs[-1][0] + runs[-1][1] == lba:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((lba, 1))
    return runs


class OverlayAgainstModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        root = Path(self.directory.name)
        self.base = base_image(root / "base.img", SECTORS)
        self.base_fd = os.open(root / "base.img", os.O_RDONLY)
        self.path = str(root / "client.overlay")
        self.overlay = Overlay(self.path, IDENTITY, SECTORS)
        self.model = bytearray(self.base)
        self.written: set[int] = set()
        self.serial = 0

    def read(self, lba: int, count: int) -> bytes:
        out = bytearray(count * SECTOR_BYTES)
        self.overlay.read_into(lba, count, out, self.base_fd)
        return bytes(out)

    def reopen(self) -> None:
        end = self.overlay.journal_end
        self.overlay.close()
        self.overlay = Overlay(self.path, IDENTITY, SECTORS)
        assert self.overlay.journal_end == end, "recovery dropped records the data path wrote"

    @rule(lba=st.integers(0, SECTORS - 1), count=st.integers(1, MAX_COUNT))
    def write(self, lba, count):
        lba = min(lba, SECTORS - count)
        self.serial += 1
        data = b"".join(sector_pattern(self.serial, lba + i) for i in range(count))
        end = self.overlay.journal_end
        new = set(range(lba, lba + count)) - self.written
        self.overlay.write(lba, data)
        assert self.overlay.journal_end == end + RECORD.size * len(runs_of(new)), "one record per run of new sectors, none for an overwrite"
        self.model[lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES] = data
        self.written |= new

    @rule(lba=st.integers(0, SECTORS - 1), count=st.integers(1, SECTORS))
    def read_range(self, lba, count):
        count = min(count, SECTORS - lba)
        assert self.read(lba, count) == bytes(self.model[lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES])

    @rule(lba=st.integers(0, SECTORS - 1), count=st.integers(1, SECTORS))
    def covers_any(self, lba, count):
        count = min(count, SECTORS - lba)
        assert self.overlay.covers_any(lba, count) == any(s in self.written for s in range(lba, lba + count))

    @rule()
    def flush(self):
        self.overlay.flush()
        assert self.overlay.header.flushed_end == self.overlay.journal_end

    @rule()
    def reset(self):
        self.overlay.reset()
        self.model[:] = self.base
        self.written.clear()
        assert self.overlay.journal_end == journal_home(SECTORS) and os.path.getsize(self.path) == DATA_OFFSET

    @rule()
    def compact(self):
        self.overlay.compact()
        assert self.overlay.journal_bytes() == RECORD.size * len(runs_of(self.written))

    @rule()
    def close_and_reopen(self):
        self.reopen()

    @rule()
    def reopen_after_a_reboot(self):
        """Every record is flushed when the overlay closes, so after a reboot they all count too."""
        original = overlay_module.current_boot_id
        overlay_module.current_boot_id = lambda: b"\x07" * 16
        try:
            self.reopen()
        finally:
            overlay_module.current_boot_id = original

    @invariant()
    def the_map_names_exactly_the_written_sectors(self):
        assert list(self.overlay.runs()) == runs_of(self.written)
        assert self.overlay.sectors_written() == len(self.written)
        for lba in self.written:
            assert os.pread(self.overlay.fd, SECTOR_BYTES, DATA_OFFSET + lba * SECTOR_BYTES) == self.model[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES]

    @invariant()
    def the_whole_disk_reads_as_the_model(self):
        assert self.read(0, SECTORS) == bytes(self.model)

    def teardown(self):
        if self.overlay.handle is not None:
            self.overlay.close()
        os.close(self.base_fd)
        self.directory.cleanup()


TestOverlayAgainstModel = OverlayAgainstModel.TestCase

# Runs across the map's 64-sector words and its leaves: sectors near leaf boundaries of a large image.
NEAR_BOUNDARIES = st.sampled_from([0, 1, 62, 63, 64, 65, 127, 128] + [LEAF_SECTORS * k + d for k in (1, 2) for d in (-65, -64, -2, -1, 0, 1, 63, 64)])
BIG_SECTORS = 3 * LEAF_SECTORS


@settings(max_examples=max(1000, settings.default.max_examples))  # microseconds each
@example(runs=[(LEAF_SECTORS + 1, 5)], queries=[(LEAF_SECTORS - 65, 3 * LEAF_SECTORS, False)])  # from inside an absent leaf
@given(runs=st.lists(st.tuples(NEAR_BOUNDARIES, st.integers(1, 200)), max_size=6),
       queries=st.lists(st.tuples(NEAR_BOUNDARIES, st.integers(1, 3 * LEAF_SECTORS), st.booleans()), min_size=1, max_size=10))
def test_allocation_runs_across_words_and_leaves(runs, queries):
    lib = library()
    handle = lib.dp_overlay_new(-1, BIG_SECTORS, 0, 0)
    try:
        allocated: set[int] = set()
        for lba, count in runs:
            count = min(count, BIG_SECTORS - lba)
            assert lib.dp_overlay_allocate(handle, lba, count) == 0
            allocated |= set(range(lba, lba + count))
        assert lib.dp_overlay_sectors(handle) == len(allocated)
        for lba, limit, want in queries:
            limit = min(limit, BIG_SECTORS - lba)
            expected = 0
            while expected < limit and ((lba + expected) in allocated) == want:
                expected += 1
            assert lib.dp_overlay_run(handle, lba, limit, int(want)) == expected
    finally:
        lib.dp_overlay_free(handle)


def test_allocating_past_the_image_is_refused():
    lib = library()
    handle = lib.dp_overlay_new(-1, 100, 0, 0)
    assert lib.dp_overlay_allocate(handle, 90, 20) == -22  # EINVAL
    assert lib.dp_overlay_write(handle, 99, b"x" * 1024, 2) == -22 and lib.dp_overlay_sectors(handle) == 0
    lib.dp_overlay_free(handle)


def test_a_record_written_in_c_is_the_format_python_reads(tmp_path):
    """The bytes of one record, field by field, as overlay.py's RECORD defines them; the CRCs by zlib."""
    overlay = Overlay(str(tmp_path / "client.overlay"), IDENTITY, SECTORS)
    data = sector_pattern(1, 7) + sector_pattern(1, 8)
    overlay.write(7, data)
    record = os.pread(overlay.fd, RECORD.size, overlay.header.journal_start)
    magic, count, lba, data_crc, fields_crc = RECORD.unpack(record)
    assert (magic, count, lba, data_crc) == (RECORD_MAGIC, 2, 7, zlib.crc32(data))
    assert fields_crc == zlib.crc32(record[: RECORD_FIELDS.size], epoch_seed(overlay.header.epoch))
    assert record == encode_record(7, 2, zlib.crc32(data), overlay.header.epoch)
    assert os.pread(overlay.fd, len(data), DATA_OFFSET + 7 * SECTOR_BYTES) == data
    overlay.close()


def test_a_large_overlay_keeps_every_sector_across_reopening_and_compaction(tmp_path):
    """Thousands of scattered sectors over several leaves: the map, the journal and the checkpoint agree."""
    sectors = 2 * LEAF_SECTORS + 500
    base_fd = os.open(tmp_path / "base.img", os.O_RDWR | os.O_CREAT)
    os.ftruncate(base_fd, sectors * SECTOR_BYTES)
    path = str(tmp_path / "client.overlay")
    overlay = Overlay(path, IDENTITY, sectors)
    lbas = sorted(set(range(0, sectors, 29)) | set(range(LEAF_SECTORS - 40, LEAF_SECTORS + 40)))
    for lba in lbas:
        overlay.write(lba, sector_pattern(1, lba))

    def check(o):
        assert list(o.runs()) == runs_of(set(lbas)) and o.sectors_written() == len(lbas)
        out = bytearray(sectors * SECTOR_BYTES)
        o.read_into(0, sectors, out, base_fd)
        for lba in (0, 29, LEAF_SECTORS - 40, LEAF_SECTORS, LEAF_SECTORS + 39, lbas[-1]):
            assert out[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES] == sector_pattern(1, lba)
        assert out[SECTOR_BYTES : 2 * SECTOR_BYTES] == bytes(SECTOR_BYTES)

    check(overlay)
    overlay.close()
    overlay = Overlay(path, IDENTITY, sectors)
    check(overlay)
    overlay.compact()
    check(overlay)
    overlay.close()
    os.close(base_fd)


@given(
    allocated=st.lists(st.tuples(st.integers(0, SECTORS - 1), st.integers(1, MAX_COUNT)), max_size=4),
    start=st.integers(0, SECTORS - 1),
    counts=st.lists(st.integers(1, MAX_COUNT), min_size=1, max_size=16),
)
@settings(deadline=None)
def test_a_run_of_writes_leaves_the_file_each_write_alone_would(allocated, start, counts):
    """dp_overlay_write_run (one pwritev for a run of writes, each starting where the one before
    ended) leaves the overlay file byte for byte as the same writes one by one, over sectors some of
    which were written before: the same data in place, the same records in the same order."""
    lib = library()
    counts = [c for i, c in enumerate(counts) if start + sum(counts[: i + 1]) <= SECTORS]
    if not counts:
        return
    pieces = [b"".join(sector_pattern(2 + i, start + sum(counts[:i]) + k) for k in range(c)) for i, c in enumerate(counts)]
    files = []
    with tempfile.TemporaryDirectory() as directory:
        for one_by_one in (True, False):
            overlay = Overlay(os.path.join(directory, f"{one_by_one}.overlay"), IDENTITY, SECTORS)
            for lba, count in allocated:
                count = min(count, SECTORS - lba)
                overlay.write(lba, b"".join(sector_pattern(1, lba + k) for k in range(count)))
            if one_by_one:
                for i, piece in enumerate(pieces):
                    assert lib.dp_overlay_write(overlay.handle, start + sum(counts[:i]), piece, counts[i]) == 0
            else:
                data = (ctypes.c_char_p * len(pieces))(*pieces)
                sizes = (ctypes.c_uint32 * len(counts))(*counts)
                assert lib.dp_overlay_write_run(overlay.handle, start, data, sizes, len(counts)) == 0
            files.append((Path(directory, f"{one_by_one}.overlay").read_bytes(), overlay.journal_end, list(overlay.runs())))
            overlay.close()
    assert files[0] == files[1]


def test_a_run_past_the_image_or_longer_than_the_limit_is_refused_and_writes_nothing(tmp_path):
    lib = library()
    overlay = Overlay(str(tmp_path / "client.overlay"), IDENTITY, SECTORS)
    before = (tmp_path / "client.overlay").read_bytes()
    limit = lib.dp_write_run_frames()
    too_many = (ctypes.c_char_p * (limit + 1))(*([b"x" * SECTOR_BYTES] * (limit + 1)))
    ones = (ctypes.c_uint32 * (limit + 1))(*([1] * (limit + 1)))
    assert lib.dp_overlay_write_run(overlay.handle, 0, too_many, ones, limit + 1) == -22  # EINVAL
    assert lib.dp_overlay_write_run(overlay.handle, SECTORS - 1, too_many, ones, 2) == -22
    assert (tmp_path / "client.overlay").read_bytes() == before and overlay.sectors_written() == 0
    overlay.close()
