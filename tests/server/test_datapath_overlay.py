"""The overlay index in C (datapath/overlay.c) against a model of the disk's bytes.

Hypothesis runs sequences of writes, reads, flushes, resets, compactions and close+reopen over a
small base image; after each step the overlay must read as the model, its index (snapshot, lookup,
sectors_written, covers_any) must name exactly the sectors written, and reopening must recover
every record the C side wrote: Python's reader checks each record's CRC with zlib. A write is
appended as one record, or rewrites in place the one record written since the last flush that
holds exactly its sectors, all still live; the model knows which.
"""

import ctypes
import os
import random
import struct
import tempfile
import zlib
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from impl.server.datapath import library
from impl.server.overlay import FILE_HEADER_BYTES, RECORD, RECORD_FIELDS, RECORD_MAGIC, Overlay, log_runs
from spec.aoe.constants import SECTOR_BYTES

SECTORS = 96
MAX_COUNT = 17  # sectors per write: one jumbo frame's worth (AoEr11 §3.2)
IDENTITY = "base-identity"


def sector_pattern(serial: int, lba: int) -> bytes:
    """A sector no other write or base sector has: a wrong index or offset shows as wrong bytes."""
    return struct.pack("<QQ", serial, lba) * (SECTOR_BYTES // 16)


def base_image(path: Path, sectors: int) -> bytes:
    data = b"".join(sector_pattern(0, lba) for lba in range(sectors))
    path.write_bytes(data)
    return data


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
        self.owner: dict[int, int] = {}  # sector -> the record that holds its latest data
        self.rewritable: dict[int, tuple[int, int]] = {}  # records since the last flush: number -> (lba, count)

    def rewritten_record(self, lba: int, count: int) -> int | None:
        """The record this write rewrites in place, or None when it is appended."""
        record = self.owner.get(lba)
        if self.rewritable.get(record) == (lba, count) and all(self.owner.get(lba + i) == record for i in range(count)):
            return record
        return None

    def all_flushed(self) -> None:
        self.rewritable.clear()

    def sector(self, lba: int) -> bytes:
        return bytes(self.model[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES])

    def read(self, lba: int, count: int) -> bytes:
        out = bytearray(count * SECTOR_BYTES)
        self.overlay.read_into(lba, count, out, self.base_fd)
        return bytes(out)

    @rule(lba=st.integers(0, SECTORS - 1), count=st.integers(1, MAX_COUNT))
    def write(self, lba, count):
        lba = min(lba, SECTORS - count)
        self.serial += 1
        data = b"".join(sector_pattern(self.serial, lba + i) for i in range(count))
        end = self.overlay.end
        in_place = self.rewritten_record(lba, count)
        self.overlay.write(lba, data)
        if in_place is not None:
            assert self.overlay.end == end, "rewritten in place: the log does not grow"
        else:
            assert self.overlay.end == end + RECORD.size + len(data), "one record: header and data appended together"
            self.rewritable[self.serial] = (lba, count)
            self.owner.update((lba + i, self.serial) for i in range(count))
        self.model[lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES] = data
        self.written.update(range(lba, lba + count))

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
        self.all_flushed()

    @rule()
    def reset(self):
        self.overlay.reset()
        self.owner.clear()
        self.all_flushed()
        self.model[:] = self.base
        self.written.clear()
        assert self.overlay.end == FILE_HEADER_BYTES == os.path.getsize(self.path)

    @rule()
    def compact(self):
        runs = list(log_runs(self.overlay.snapshot()))
        self.overlay.compact()
        self.all_flushed()  # the compacted log is durable
        assert self.overlay.end == FILE_HEADER_BYTES + sum(RECORD.size + count * SECTOR_BYTES for _, count, _ in runs)
        assert self.overlay.garbage_bytes() == RECORD.size * len(runs)

    @rule()
    def close_and_reopen(self):
        """Python's recovery reads what C appended: a record whose zlib CRC-32 disagreed would be cut here."""
        end = self.overlay.end
        self.overlay.close()
        self.overlay = Overlay(self.path, IDENTITY, SECTORS)
        self.all_flushed()  # what an opened log holds is never rewritten in place
        assert self.overlay.end == end == os.path.getsize(self.path), "recovery cut records the data path wrote"

    @invariant()
    def the_index_names_exactly_the_written_sectors(self):
        snapshot = self.overlay.snapshot()
        assert set(snapshot) == self.written
        assert self.overlay.sectors_written() == len(self.written)
        lib = library()
        for lba in range(SECTORS):
            assert lib.dp_overlay_lookup(self.overlay.handle, lba) == snapshot.get(lba, -1)
        for lba, offset in snapshot.items():
            assert os.pread(self.overlay.fd, SECTOR_BYTES, offset) == self.sector(lba)

    @invariant()
    def the_whole_disk_reads_as_the_model(self):
        assert self.read(0, SECTORS) == bytes(self.model)

    def teardown(self):
        if self.overlay.handle is not None:
            self.overlay.close()
        os.close(self.base_fd)
        self.directory.cleanup()


TestOverlayAgainstModel = OverlayAgainstModel.TestCase


def test_the_index_grows_past_its_first_table(tmp_path):
    """More sectors than the first table holds at half load (1024 slots): every entry survives each rehash."""
    sectors = 4096
    base = base_image(tmp_path / "base.img", sectors)
    base_fd = os.open(tmp_path / "base.img", os.O_RDONLY)
    path = str(tmp_path / "client.overlay")
    overlay = Overlay(path, IDENTITY, sectors)
    model = bytearray(base)
    lbas = random.Random(5).sample(range(sectors), 2500)
    for serial, lba in enumerate(lbas, 1):
        data = sector_pattern(serial, lba)
        overlay.write(lba, data)
        model[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES] = data

    def check(o):
        assert set(o.snapshot()) == set(lbas) and o.sectors_written() == len(lbas)
        out = bytearray(sectors * SECTOR_BYTES)
        o.read_into(0, sectors, out, base_fd)
        assert out == model

    check(overlay)
    overlay.close()
    overlay = Overlay(path, IDENTITY, sectors)  # recovery indexes 2500 runs through dp_overlay_index_run
    check(overlay)
    overlay.compact()
    check(overlay)
    overlay.close()
    os.close(base_fd)


def test_a_record_written_in_c_is_the_format_python_reads(tmp_path):
    """The bytes of one record, field by field, as overlay.py's RECORD defines them; the CRC by zlib."""
    overlay = Overlay(str(tmp_path / "client.overlay"), IDENTITY, SECTORS)
    data = sector_pattern(1, 7) + sector_pattern(1, 8)
    overlay.write(7, data)
    record = os.pread(overlay.fd, RECORD.size + len(data), FILE_HEADER_BYTES)
    magic, lba, count, crc = RECORD.unpack_from(record)
    assert (lba, count, record[RECORD.size :]) == (7, 2, data)
    assert crc == zlib.crc32(data, zlib.crc32(RECORD_FIELDS.pack(7, 2)))
    assert magic == RECORD_MAGIC and record[RECORD.size - 4 : RECORD.size] == bytes(4)
    overlay.close()


def test_the_export_stops_at_the_capacity_it_is_given(tmp_path):
    overlay = Overlay(str(tmp_path / "client.overlay"), IDENTITY, SECTORS)
    overlay.write(10, sector_pattern(1, 10) + sector_pattern(1, 11) + sector_pattern(1, 12))
    pairs = (ctypes.c_uint64 * 4)(*[0xAA] * 4)
    assert library().dp_overlay_export(overlay.handle, pairs, 1) == 1
    assert pairs[0] in (10, 11, 12) and pairs[2:] == [0xAA, 0xAA]
    overlay.close()
