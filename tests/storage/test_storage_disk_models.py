"""The local disk model (volatile cache, flush, power cut) and the ideal disk."""

from model.ideal_disk import IdealDisk
from model.local_disk import LocalDisk
from spec.ata.constants import IDNF

S = 512


def sector(tag: bytes) -> bytes:
    return tag.ljust(S, b".")


def test_flush_makes_durable_only_writes_completed_before_it_was_submitted():
    disk = LocalDisk(4)
    first = disk.submit_write(0, sector(b"a"))
    disk.complete(first)
    flush = disk.submit_flush()
    later = disk.submit_write(1, sector(b"b"))
    disk.complete(later)  # completes before the flush, but was not covered by it
    disk.complete(flush)
    assert disk.durable_sector(0) == sector(b"a")
    assert disk.durable_sector(1) == bytes(S)
    assert disk.versions_at_risk() == {1: [bytes(S), sector(b"b")]}


def test_a_power_cut_keeps_any_one_version_per_sector_and_drops_requests():
    disk = LocalDisk(2)
    for tag in (b"a", b"b"):
        disk.complete(disk.submit_write(0, sector(tag)))
    in_flight = disk.submit_write(1, sector(b"c"))
    assert disk.versions_at_risk() == {0: [bytes(S), sector(b"a"), sector(b"b")], 1: [bytes(S), sector(b"c")]}
    disk.power_cut(lambda lba, versions: 1)
    assert disk.read_now(0, 2) == sector(b"a") + sector(b"c")
    assert disk.pending_ids() == [] and in_flight not in disk.pending


def test_reads_see_completed_writes_and_out_of_range_requests_fail_with_idnf():
    disk = LocalDisk(2)
    disk.complete(disk.submit_write(1, sector(b"x")))
    read = disk.submit_read(0, 2)
    beyond = disk.submit_read(1, 2)
    disk.complete(beyond)
    disk.complete(read)
    done = {c.request_id: c for c in disk.take_completions()}
    assert done[read].data == bytes(S) + sector(b"x")
    assert not done[beyond].ok and done[beyond].ata_error == IDNF


def test_the_ideal_disk_allows_old_or_new_after_a_cut_and_fixes_what_was_read():
    image = sector(b"i0") + sector(b"i1")
    ideal = IdealDisk(image)
    ideal.write_done(0, sector(b"w1"), ok=True)
    ideal.flush_done()
    ideal.write_done(0, sector(b"w2"), ok=True)
    ideal.write_done(1, sector(b"w3"), ok=False)
    assert ideal.readable[1] == {sector(b"i1"), sector(b"w3")}
    ideal.power_cut()
    assert ideal.readable[0] == {sector(b"w1"), sector(b"w2")}
    assert ideal.mismatches(0, sector(b"i0")) == [0]  # the flushed write can no longer be lost
    ideal.read_done(0, sector(b"w1"))
    assert ideal.readable[0] == {sector(b"w1")}
