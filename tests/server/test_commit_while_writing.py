"""A commit copies the client's disk as it was when the commit began, while the client goes on writing.

The copy (datapath/commit.c) goes chunk by chunk; a write to a chunk the copy has not reached copies
that chunk first. Hypothesis interleaves copy steps and writes anywhere, over an image of several
chunks, and the new image must equal the disk at the start, sector for sector.
"""

import errno
import os
import resource

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.server.control import guarded, run_operation
from impl.server.frames import format_mac
from impl.server.operations import Operations
from impl.server.overlay import COMMIT_CHUNK_SECTORS, Overlay
from spec.aoe.constants import SECTOR_BYTES
from tests.server.conftest import CLIENT_A, IMAGE_SECTORS, image_bytes

SECTORS = 2 * COMMIT_CHUNK_SECTORS + 300  # two whole chunks and a short last one


def pattern(serial: int, lba: int, count: int) -> bytes:
    """Sectors no other write has: (serial, lba) repeated."""
    return b"".join((serial.to_bytes(8, "little") + lba.to_bytes(8, "little")) * (SECTOR_BYTES // 16) for lba in range(lba, lba + count))


def whole_disk(overlay, base_fd) -> bytes:
    out = bytearray(SECTORS * SECTOR_BYTES)
    overlay.read_into(0, SECTORS, out, base_fd)
    return bytes(out)


write = st.tuples(st.integers(0, SECTORS - 1), st.integers(1, 17))
steps = st.lists(st.one_of(st.just("step"), write), max_size=30)


@given(before=st.lists(write, max_size=10), during=steps)
def test_the_new_image_is_the_disk_when_the_commit_began(tmp_path_factory, before, during):
    tmp_path = tmp_path_factory.mktemp("commit")
    base_path = tmp_path / "base.img"
    base_path.write_bytes(pattern(0, 0, SECTORS))
    base_fd = os.open(base_path, os.O_RDONLY)
    overlay = Overlay(str(tmp_path / "o"), "id", SECTORS)
    serial = 0
    for lba, count in before:
        serial += 1
        overlay.write(min(lba, SECTORS - count), pattern(serial, min(lba, SECTORS - count), count))
    at_start = whole_disk(overlay, base_fd)
    destination = os.open(tmp_path / "new.img", os.O_RDWR | os.O_CREAT)
    os.ftruncate(destination, SECTORS * SECTOR_BYTES)
    copy = overlay.commit_into(base_fd, destination)
    for op in during:
        if op == "step":
            overlay.lib.dp_commit_step(overlay.handle)
        else:
            serial += 1
            lba, count = min(op[0], SECTORS - op[1]), op[1]
            overlay.write(lba, pattern(serial, lba, count))
    after = whole_disk(overlay, base_fd)
    copy()
    assert os.pread(destination, SECTORS * SECTOR_BYTES, 0) == at_start, "the new image is the disk when the commit began"
    assert whole_disk(overlay, base_fd) == after, "the client's own disk kept its writes"
    overlay.close()
    os.close(destination)
    os.close(base_fd)


def test_each_copy_step_reports_the_chunks_left(tmp_path):
    # datapath.h promises the chunks left after the step, and 0 once the last chunk is copied
    base_path = tmp_path / "base.img"
    base_path.write_bytes(bytes(SECTORS * SECTOR_BYTES))
    base_fd = os.open(base_path, os.O_RDONLY)
    overlay = Overlay(str(tmp_path / "o"), "id", SECTORS)
    destination = os.open(tmp_path / "new.img", os.O_RDWR | os.O_CREAT)
    os.ftruncate(destination, SECTORS * SECTOR_BYTES)
    copy = overlay.commit_into(base_fd, destination)
    chunks = -(-SECTORS // COMMIT_CHUNK_SECTORS)
    reported = [overlay.lib.dp_commit_step(overlay.handle) for _ in range(chunks)]
    copy()
    assert reported == list(range(chunks - 1, -1, -1))
    overlay.close()
    os.close(destination)
    os.close(base_fd)


def test_a_failing_copy_ends_the_commit_and_lets_writes_go_on(tmp_path):
    base_path = tmp_path / "base.img"
    base_path.write_bytes(bytes(SECTORS * SECTOR_BYTES))
    base_fd = os.open(base_path, os.O_RDONLY)
    overlay = Overlay(str(tmp_path / "o"), "id", SECTORS)
    destination = os.open(base_path, os.O_RDONLY)  # no writing there: every chunk copy fails
    copy = overlay.commit_into(base_fd, destination)
    overlay.write(5, b"w" * SECTOR_BYTES)  # its chunk's copy fails; the write does not
    assert whole_disk(overlay, base_fd)[5 * SECTOR_BYTES : 6 * SECTOR_BYTES] == b"w" * SECTOR_BYTES
    with pytest.raises(OSError, match="copying for a commit"):
        copy()
    overlay.commit_into(base_fd, destination)  # the failed one is over: another may start
    overlay.lib.dp_commit_end(overlay.handle)
    overlay.close()
    os.close(destination)
    os.close(base_fd)


def commit_refused_by_the_filesystem(target, name: str) -> dict:
    """The operator's answer to a commit of CLIENT_A whose copy the new image's filesystem refuses
    halfway (the file size limit), begun and finished as the control channel does it."""
    operations = Operations(target.catalogue, target.disks, set())
    begun = run_operation(operations, {"op": "commit", "mac": format_mac(CLIENT_A), "name": name})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (IMAGE_SECTORS * SECTOR_BYTES // 2, hard))  # the new image has its size; its second half cannot be written
    try:
        return guarded("commit", begun["result"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_failed_commit_leaves_no_partial_image_and_unlocks_the_client(target, images):
    disk = target.disks.open(CLIENT_A, target.catalogue.get("base"), read_only=False)
    disk.write(0, b"x" * SECTOR_BYTES)
    answer = commit_refused_by_the_filesystem(target, "golden")
    assert not answer["ok"] and f"copying for a commit: {os.strerror(errno.EFBIG)}" in answer["error"]
    assert not any(name.startswith("golden") for name in os.listdir(images)), "no golden.img, no golden.img.partial"
    disk.write(1, b"y" * SECTOR_BYTES)
    assert disk.read(0, 2) == b"x" * SECTOR_BYTES + b"y" * SECTOR_BYTES, "the client writes and reads as before"
    operations = Operations(target.catalogue, target.disks, set())
    assert operations.commit(format_mac(CLIENT_A), "golden")["overlay_sectors"] == 2, "the overlay is not left locked"
    expected = b"x" * SECTOR_BYTES + b"y" * SECTOR_BYTES + image_bytes(IMAGE_SECTORS)[2 * SECTOR_BYTES :]
    assert (images / "golden.img").read_bytes() == expected, "the later commit is base image + overlay"


def test_a_failed_commit_names_the_image_it_could_not_write(target):
    # the write that failed was the new image's: an operator sent to the overlay's filesystem looks in the wrong place
    target.disks.open(CLIENT_A, target.catalogue.get("base"), read_only=False).write(0, b"x" * SECTOR_BYTES)
    answer = commit_refused_by_the_filesystem(target, "golden")
    assert not answer["ok"] and "golden.img" in answer["error"], answer["error"]
