"""The copy-on-write log: reads fall through, recovery keeps every flushed write and never invents data."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.server.overlay import FILE_HEADER_BYTES, RECORD, Overlay, OverlayError
from spec.invariants import flush_is_durable

SECTORS = 32


def base_file(tmp_path):
    path = tmp_path / "base.img"
    path.write_bytes(bytes(range(256)) * 2 * SECTORS)
    return os.open(path, os.O_RDONLY)


def read_all(overlay, base_fd):
    out = bytearray(SECTORS * 512)
    overlay.read_into(0, SECTORS, out, base_fd)
    return bytes(out)


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


def test_overlay_of_another_base_is_refused(tmp_path):
    Overlay(str(tmp_path / "o"), "one", SECTORS).close()
    with pytest.raises(OverlayError, match="reset the client"):
        Overlay(str(tmp_path / "o"), "two", SECTORS)


def test_reset_forgets_everything(tmp_path):
    fd = base_file(tmp_path)
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    o.write(0, b"x" * 512)
    o.reset()
    assert read_all(o, fd) == os.pread(fd, SECTORS * 512, 0)
    assert Overlay(str(tmp_path / "o"), "id", SECTORS).sectors_written() == 0


writes = st.lists(
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


@given(operations=writes, cut=st.floats(0, 1), flip=st.booleans())
def test_recovery_after_a_torn_log_keeps_every_flushed_write(tmp_path_factory, operations, cut, flip):
    """Power loss: whatever was written since the last flush may be cut or garbled anywhere, a record
    rewritten in place included (map_crash_safe, flush_is_durable)."""
    tmp_path = tmp_path_factory.mktemp("crash")
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    states = [read_all(o, fd)]  # the disk after each acknowledged write
    flushed_end, flushed_state = o.end, 0
    for op in operations:
        if op == "flush":
            o.flush()
            flushed_end, flushed_state = o.end, len(states) - 1
        else:
            lba, count, byte = op
            o.write(lba, bytes([byte]) * 512 * count)
            states.append(read_all(o, fd))
    end = o.end
    os.close(o.fd)
    cut_at = flushed_end + int((end - flushed_end) * cut)
    with open(path, "r+b") as f:
        f.truncate(cut_at)
        if flip and cut_at > flushed_end:
            f.seek(cut_at - 1)
            last = f.read(1)
            f.seek(cut_at - 1)
            f.write(bytes([last[0] ^ 0xFF]))
    recovered = read_all(Overlay(path, "id", SECTORS), fd)
    if cut_at == end and not flip:
        assert recovered == states[-1], "an intact log recovers every write"
    assert holds_flushed_or_later(recovered, states[flushed_state], states[flushed_state + 1 :]), \
        "map_crash_safe/flush_is_durable: a sector lost its flushed data or holds data never written"
    os.close(fd)


def test_a_torn_rewrite_in_place_cuts_only_writes_since_the_flush(tmp_path):
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    o.write(0, b"F" * 512)
    o.flush()
    flushed = read_all(o, fd)
    o.write(4, b"a" * 1024)
    record = o.end - RECORD.size - 1024
    o.write(8, b"b" * 512)
    end = o.end
    o.write(4, b"c" * 1024)  # the same two sectors again: rewritten in place, the log does not grow
    assert o.end == end and read_all(o, fd)[4 * 512 : 6 * 512] == b"c" * 1024
    os.close(o.fd)
    with open(path, "r+b") as f:  # the power went out while the rewrite was on its way to the disk
        f.seek(record + RECORD.size + 700)
        f.write(b"a")
    recovered = read_all(Overlay(path, "id", SECTORS), fd)
    assert recovered == flushed, "the torn record and everything after it are cut; the flushed write stays"
    assert os.path.getsize(path) == record
    os.close(fd)


def test_garbage_after_the_last_record_is_cut(tmp_path):
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    o.write(1, b"k" * 512)
    end = o.end
    o.close()
    with open(path, "ab") as f:
        f.write(b"\x53\x4f\x56\x52" + bytes(RECORD.size))
    reopened = Overlay(path, "id", SECTORS)
    assert reopened.end == end == FILE_HEADER_BYTES + RECORD.size + 512
    assert os.path.getsize(path) == end


def test_compaction_keeps_every_sector_and_drops_overwritten_data(tmp_path):
    fd = base_file(tmp_path)
    path = str(tmp_path / "o")
    o = Overlay(path, "id", SECTORS)
    for round_ in range(5):
        o.write(2, bytes([round_]) * 512 * 4)
        o.write(20, bytes([100 + round_]) * 512)
        o.flush()  # flushed records are never rewritten in place: each round appends
    disk = read_all(o, fd)
    before = o.end
    o.compact()
    assert read_all(o, fd) == disk and o.end < before and o.garbage_bytes() == 2 * RECORD.size
    o.write(21, b"n" * 512)
    o.close()
    reopened = Overlay(path, "id", SECTORS)
    assert read_all(reopened, fd)[: 21 * 512] == disk[: 21 * 512] and reopened.sectors_written() == 6
    assert not os.path.exists(path + ".compact")


def test_an_overlay_mostly_garbage_is_compacted_when_opened(tmp_path, monkeypatch):
    import impl.server.overlay as overlay_module

    monkeypatch.setattr(overlay_module, "COMPACT_THRESHOLD_BYTES", 4096)
    fd = base_file(tmp_path)
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    for round_ in range(20):
        o.write(0, bytes([round_]) * 512)
    o.close()
    reopened = Overlay(str(tmp_path / "o"), "id", SECTORS)
    assert reopened.end == FILE_HEADER_BYTES + RECORD.size + 512
    assert read_all(reopened, fd)[:512] == bytes([19]) * 512


@pytest.mark.parametrize("lba, length", [(0, 0), (0, 100), (0, 513), (SECTORS - 1, 1024), (SECTORS, 512)])
def test_a_write_of_no_whole_sectors_or_past_the_image_is_refused_before_the_log(tmp_path, lba, length):
    """Such a record would be cut by recovery together with everything after it: it never reaches the log."""
    o = Overlay(str(tmp_path / "o"), "id", SECTORS)
    end = o.end
    with pytest.raises(ValueError, match="whole sectors inside the image"):
        o.write(lba, b"x" * length)
    assert o.end == end == os.path.getsize(tmp_path / "o") and o.sectors_written() == 0
    o.close()
