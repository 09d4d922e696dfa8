"""The copy-on-write overlay: reads fall through, a process kill loses nothing, a power cut keeps
every flushed write and never invents data, and no torn header or journal is misread."""

import os
import resource

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import impl.server.overlay as overlay_module
from impl.server.overlay import DATA_OFFSET, FILE_MAGIC, HEADER_SLOT_BYTES, RECORD, Overlay, OverlayError, journal_home
from spec.invariants import flush_is_durable

SECTORS = 32
FILE_SECTOR = 512  # the unit a power cut leaves old or new: the disk's sector


def base_file(tmp_path):
    path = tmp_path / "base.img"
    path.write_bytes(bytes(range(256)) * 2 * SECTORS)
    return os.open(path, os.O_RDONLY)


def read_all(overlay, base_fd):
    out = bytearray(SECTORS * 512)
    overlay.read_into(0, SECTORS, out, base_fd)
    return bytes(out)


def abandon(overlay):
    """The server dies here (kill -9): nothing more reaches the file, nothing is flushed."""
    os.close(overlay.fd)


@pytest.fixture
def another_boot(monkeypatch):
    """Recover as after a reboot: the page cache of the boot that wrote the file is gone."""
    monkeypatch.setattr(overlay_module, "current_boot_id", lambda: b"\x01" * 16)


def test_reads_mix_base_and_overlay_runs(tmp_path):
    fd = base_file(tmp_path)
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    o.write(3, b"a" * 1024)
    o.write(7, b"b" * 512)
    disk = read_all(o, fd)
    assert disk[3 * 512 : 5 * 512] == b"a" * 1024 and disk[7 * 512 : 8 * 512] == b"b" * 512
    assert disk[:512] == os.pread(fd, 512, 0) and disk[5 * 512 : 7 * 512] == os.pread(fd, 1024, 5 * 512)
    o.close()
    reopened = Overlay(str(tmp_path / "o"), "id", SECTORS)
    assert read_all(reopened, fd) == disk and reopened.sectors_written() == 3


def test_data_lives_in_place_and_only_new_sectors_are_journaled(tmp_path):
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    o.write(4, b"a" * 1024)
    assert o.journal_bytes() == RECORD.size
    o.write(5, b"b" * 1024)  # sector 5 was allocated, 6 is new: one record, for 6
    o.write(4, b"c" * 1536)  # all three allocated: no record
    assert o.journal_bytes() == 2 * RECORD.size
    assert os.pread(o.fd, 1536, DATA_OFFSET + 4 * 512) == b"c" * 1536
    assert list(o.runs()) == [(4, 3)]
    o.close()


def test_overlay_of_another_base_is_refused(tmp_path):
    Overlay(str(tmp_path / "o"), "one", SECTORS).close()
    with pytest.raises(OverlayError, match="reset the client"):
        Overlay(str(tmp_path / "o"), "two", SECTORS)


def test_a_file_that_is_no_overlay_or_an_older_format_is_refused(tmp_path):
    (tmp_path / "junk").write_bytes(b"not an overlay".ljust(8192, b"!"))
    with pytest.raises(OverlayError, match="not a storvisor overlay"):
        Overlay(str(tmp_path / "junk"), "id", SECTORS)
    (tmp_path / "old").write_bytes((FILE_MAGIC + b"\x01\x00").ljust(8192, b"\0"))
    with pytest.raises(OverlayError, match="format 1, not 2; reset the client"):
        Overlay(str(tmp_path / "old"), "id", SECTORS)


def test_an_overlay_whose_creation_was_cut_short_is_made_again(tmp_path):
    """The power went out after the file was sized but before its header reached the disk."""
    (tmp_path / "o").write_bytes(bytes(DATA_OFFSET))
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    assert o.sectors_written() == 0 and o.header.sequence == 0
    o.close()


def test_reset_forgets_everything_and_gives_the_space_back(tmp_path):
    fd = base_file(tmp_path)
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    o.write(0, b"x" * 512)
    o.reset()
    assert read_all(o, fd) == os.pread(fd, SECTORS * 512, 0) and os.path.getsize(tmp_path / "o") == DATA_OFFSET
    o.write(1, b"y" * 512)
    abandon(o)
    reopened = Overlay(str(tmp_path / "o"), "id", SECTORS)
    assert list(reopened.runs()) == [(1, 1)]


def test_a_reset_cut_short_after_its_header_leaves_no_old_sector(tmp_path, monkeypatch):
    """The header names a new epoch before the old journal goes: its records no longer count."""
    fd = base_file(tmp_path)
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    o.write(2, b"z" * 2048)
    o.flush()
    monkeypatch.setattr(os, "ftruncate", lambda fd, length: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        o.reset()
    monkeypatch.undo()
    abandon(o)
    reopened = Overlay(str(tmp_path / "o"), "id", SECTORS)
    assert reopened.sectors_written() == 0 and read_all(reopened, fd) == os.pread(fd, SECTORS * 512, 0)
    assert os.path.getsize(tmp_path / "o") == DATA_OFFSET, "the old data's space is given back"


def test_a_torn_header_slot_leaves_the_other(tmp_path, another_boot):
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    o.write(0, b"F" * 512)
    o.flush()
    slot = o.header.sequence % 2
    abandon(o)
    with open(path, "r+b") as f:  # the power went out while the header was written
        f.seek(slot * HEADER_SLOT_BYTES + 40)
        f.write(b"torn")
    recovered = Overlay(path, "id", SECTORS)
    assert read_all(recovered, fd)[:512] == b"F" * 512, "under the older header the record is not known flushed: its CRC vouches for it"
    assert recovered.header.sequence > 0


def test_kill_9_loses_nothing_acknowledged(tmp_path):
    """Same boot: the page cache holds every write that returned, overwrites since the flush included."""
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    o.write(0, b"a" * 2048)
    o.flush()
    o.write(2, b"b" * 2048)
    o.write(0, b"c" * 512)  # overwrites a flushed sector in place
    o.write(3, b"d" * 512)  # and one allocated since the flush: its record's CRC is stale now
    disk = read_all(o, fd)
    abandon(o)
    assert read_all(Overlay(path, "id", SECTORS), fd) == disk


def test_garbage_after_the_last_record_is_cut(tmp_path):
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    o.write(1, b"k" * 512)
    end = o.journal_end
    abandon(o)
    with open(path, "ab") as f:
        f.write(b"\x53\x4f\x56\x52" + bytes(RECORD.size))
    reopened = Overlay(path, "id", SECTORS)
    assert reopened.journal_end == end == journal_home(SECTORS) + RECORD.size == os.path.getsize(path)


def test_compaction_writes_one_record_per_run_and_moves_between_two_places(tmp_path, another_boot):
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    for lba in (2, 3, 4, 5, 20):
        o.write(lba, bytes([lba]) * 512)
    disk = read_all(o, fd)
    o.compact()
    assert o.journal_bytes() == 2 * RECORD.size and o.header.journal_start > journal_home(SECTORS)
    o.write(21, b"n" * 512)
    o.compact()
    assert o.header.journal_start == journal_home(SECTORS) and os.path.getsize(path) == journal_home(SECTORS) + 2 * RECORD.size
    o.write(6, b"m" * 512)
    abandon(o)  # unflushed, but its data is in place: after a reboot it counts only by its CRC
    reopened = Overlay(path, "id", SECTORS)
    assert read_all(reopened, fd)[: 6 * 512] == disk[: 6 * 512] and list(reopened.runs()) == [(2, 5), (20, 2)]


def test_a_long_redundant_journal_is_rewritten_when_opened(tmp_path, monkeypatch):
    monkeypatch.setattr(overlay_module, "CHECKPOINT_MIN_BYTES", 4 * RECORD.size)
    fd = base_file(tmp_path)
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    for lba in range(SECTORS):
        o.write(lba, bytes([lba]) * 512)
    disk = read_all(o, fd)
    o.close()
    reopened = Overlay(str(tmp_path / "o"), "id", SECTORS)
    assert reopened.journal_bytes() == RECORD.size and read_all(reopened, fd) == disk


def test_a_write_the_filesystem_refuses_fails_and_loses_nothing(tmp_path):
    """A full disk, here the file size limit: a write needing a journal record reports the error and
    its sectors stay the base image's; overwrites, earlier writes and later recovery are unharmed."""
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    o.write(0, b"a" * 512)
    o.flush()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (o.journal_end, hard))  # the data region fits, the journal cannot grow
    try:
        with pytest.raises(OSError, match=r"writing sectors 4\+2: File too large"):
            o.write(4, b"b" * 1024)
        o.write(0, b"c" * 512)  # an overwrite needs no record
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    disk = read_all(o, fd)
    assert disk[:512] == b"c" * 512 and disk[4 * 512 : 6 * 512] == os.pread(fd, 1024, 4 * 512) and o.sectors_written() == 1
    o.write(5, b"d" * 512)
    disk = read_all(o, fd)
    abandon(o)
    assert read_all(Overlay(path, "id", SECTORS), fd) == disk


def test_a_flush_whose_header_was_not_synced_writes_it_again(tmp_path, monkeypatch):
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    o.write(3, b"a" * 512)
    real, calls = os.fdatasync, []

    def second_fails(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", second_fails)
    with pytest.raises(OSError):
        o.flush()
    o.flush()
    assert len(calls) == 4, "the second flush synced the data, wrote the header again and synced it"
    assert o.header.flushed_end == o.journal_end
    monkeypatch.undo()
    o.close()


@pytest.mark.parametrize("lba, length", [(0, 0), (0, 100), (0, 513), (SECTORS - 1, 1024), (SECTORS, 512)])
def test_a_write_of_no_whole_sectors_or_past_the_image_is_refused(tmp_path, lba, length):
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    end = o.journal_end
    with pytest.raises(ValueError, match="whole sectors inside the image"):
        o.write(lba, b"x" * length)
    assert o.journal_end == end and o.sectors_written() == 0 and os.path.getsize(tmp_path / "o") == DATA_OFFSET
    o.close()


# A power cut, modelled per disk sector: the file as of the last fdatasync that returned is on the
# disk; each sector after that holds what one of the later states of the page cache held (the disk
# writes whole sectors), and the file's length is one of those states' lengths.

operations = st.lists(
    st.one_of(
        st.tuples(st.integers(0, SECTORS - 4), st.integers(1, 4), st.integers(0, 255)),
        st.just("flush"),
    ),
    min_size=1,
    max_size=25,
)


def sectors_of(disk: bytes) -> list[bytes]:
    return [disk[i : i + 512] for i in range(0, len(disk), 512)]


def holds_flushed_or_later(recovered: bytes, flushed: bytes, later: list[bytes]) -> bool:
    """spec.invariants.flush_is_durable: every sector holds its flushed data or one of its later writes."""
    may_survive = [frozenset(column) for column in zip(sectors_of(flushed), *map(sectors_of, later))]
    return flush_is_durable(sectors_of(recovered), lambda lba: may_survive[lba])


def file_bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def after_power_cut(states: list[bytes], length_from: int, older: dict[int, int]) -> bytes:
    """One file the disk may hold: the length of one of `states`, and each sector from the last state
    but those in `older` (file sector -> a state, modulo their number)."""
    length = len(states[length_from % len(states)])
    out = bytearray()
    for offset in range(0, length, FILE_SECTOR):
        source = states[older.get(offset // FILE_SECTOR, -1) % len(states)]
        out += source[offset : offset + FILE_SECTOR].ljust(min(FILE_SECTOR, length - offset), b"\0")
    return bytes(out)


FILE_SECTORS = (DATA_OFFSET + SECTORS * 512) // FILE_SECTOR + 2  # the header, the data and the journal's first sectors


@settings(max_examples=max(500, settings.default.max_examples))  # a few ms each: search harder than the profile's default
@given(ops=operations, lost=st.integers(0, 2), length_from=st.integers(0, 255),
       older=st.dictionaries(st.integers(0, FILE_SECTORS - 1), st.integers(0, 255), max_size=8))
@example(ops=[(0, 1, 0), "flush"], lost=2, length_from=0, older={0: 2})  # shrunk: a header the flush never wrote
@example(ops=[(0, 1, 0), "flush", (0, 2, 0), "flush"], lost=2, length_from=0, older={0: 3, 1: 3})
@example(ops=[(0, 1, 1)], lost=0, length_from=1, older={DATA_OFFSET // FILE_SECTOR: 0})  # a record whose data never landed
def test_a_power_cut_keeps_every_flushed_write_and_invents_nothing(tmp_path_factory, ops, lost, length_from, older):
    """map_crash_safe, flush_is_durable: after the cut and a reboot, every sector holds its data as of
    the last completed flush or one of its later writes; recovery is stable and the overlay usable.
    The cut may come during the last flush, between or before its fdatasyncs."""
    tmp_path = tmp_path_factory.mktemp("crash")
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    disks = [read_all(o, fd)]  # the disk after each acknowledged write
    files = [file_bytes(path)]  # the file after each write and each fdatasync
    syncs = [0]  # the files index each fdatasync left durable (opening's last one first)
    flushes = [(0, 0)]  # (disks index, syncs index of its last fdatasync) of each FLUSH (opening's first)
    syncs_at_last_write = 1
    real_fdatasync = os.fdatasync

    def fdatasync(descriptor):
        real_fdatasync(descriptor)
        files.append(file_bytes(path))
        syncs.append(len(files) - 1)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(os, "fdatasync", fdatasync)
        for op in ops:
            if op == "flush":
                o.flush()
                flushes.append((len(disks) - 1, len(syncs) - 1))
            else:
                lba, count, byte = op
                o.write(lba, bytes([byte]) * 512 * count)
                disks.append(read_all(o, fd))
                files.append(file_bytes(path))
                syncs_at_last_write = len(syncs)  # the program went on past these: they returned
    abandon(o)
    lost = min(lost, len(syncs) - syncs_at_last_write)  # fdatasyncs that never returned
    completed = len(syncs) - lost
    disk_at = max(disk for disk, sync in flushes if sync < completed)
    # nothing after an fdatasync that never returned was written: the program was still in it
    states = files[syncs[completed - 1] : syncs[completed] + 1 if lost else len(files)]
    cut = after_power_cut(states, length_from, older)
    with open(path, "wb") as f:
        f.write(cut)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(overlay_module, "current_boot_id", lambda: b"\x01" * 16)
        recovered_overlay = Overlay(path, "id", SECTORS)
    recovered = read_all(recovered_overlay, fd)
    assert holds_flushed_or_later(recovered, disks[disk_at], disks[disk_at + 1 :]), \
        "map_crash_safe/flush_is_durable: a sector lost its flushed data or holds data never written"
    recovered_overlay.write(SECTORS - 1, b"\xee" * 512)
    expected = recovered[: (SECTORS - 1) * 512] + b"\xee" * 512
    abandon(recovered_overlay)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(overlay_module, "current_boot_id", lambda: b"\x02" * 16)
        again = Overlay(path, "id", SECTORS)
    assert read_all(again, fd) == expected, "a second recovery keeps what the first kept and what came after"
    again.close()
    os.close(fd)
