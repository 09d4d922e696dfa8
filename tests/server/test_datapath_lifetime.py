"""What a data path route points at outlives every change the operator makes.

A route holds the client's overlay, its log's file descriptor and its counters. After
`storvisor reset`, `storvisor compact` and forgetting a client's disk (DiskRegistry.forget, as
removing an unusable overlay does) the next plain request must be answered from the disk as it
is now, never through a freed overlay or a closed log: tests/server/test_datapath_sanitizers.py
runs these under AddressSanitizer, where such a use is a heap-use-after-free report.
"""

import subprocess
import sys

import pytest

from impl.server.overlay import RECORD, journal_home
from spec.aoe.constants import SECTOR_BYTES
from tests.server.conftest import ROOT
from impl.server.target import STATUS_DRDY
from tests.server.test_datapath_answers import BASE, READ_EXT, WRITE_EXT, A, B, Pair, status


@pytest.fixture
def pair(tmp_path, images):
    p = Pair(tmp_path, images, mtu=9000)
    yield p
    p.close()


def sectors(lba, count):
    return BASE[lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES]


def written(pair, lba, count, byte):
    """Write `count` sectors of `byte`; the first write of a client creates its overlay on the checked path."""
    data = bytes([byte]) * count * SECTOR_BYTES
    r, in_c = pair.ata(WRITE_EXT, lba, count, data)
    assert status(r) == STATUS_DRDY
    return data, in_c


def overlay_of(pair):
    return pair.fast.disks.disks[(A, "base", False)].overlay


def test_after_a_reset_the_data_path_reads_the_base_image_and_writes_again(pair):
    written(pair, 3, 2, 0x11)
    data, in_c = written(pair, 3, 2, 0x22)
    assert in_c
    assert pair.operate("reset") is None
    r, in_c = pair.ata(READ_EXT, 3, 2)
    assert in_c and r.data == sectors(3, 2)
    data, in_c = written(pair, 4, 1, 0x33)
    overlay = overlay_of(pair)
    assert in_c and overlay.journal_end == journal_home(overlay.base_sectors) + RECORD.size, "the write starts the emptied journal anew"
    assert pair.ata(READ_EXT, 3, 2)[0].data == sectors(3, 1) + data


def test_after_a_compaction_the_data_path_uses_the_new_journal(pair):
    for lba in range(10, 14):
        written(pair, lba, 1, 8)  # one record per sector
    before = overlay_of(pair).journal_bytes()
    assert pair.operate("compact") is None
    assert overlay_of(pair).journal_bytes() == RECORD.size < before, "one record for the run 10..13"
    r, in_c = pair.ata(READ_EXT, 9, 6)
    assert in_c and r.data == sectors(9, 1) + bytes([8]) * 4 * SECTOR_BYTES + sectors(14, 1)
    data, in_c = written(pair, 12, 1, 0x99)
    assert in_c
    assert pair.ata(READ_EXT, 10, 4)[0].data == bytes([8]) * 2 * SECTOR_BYTES + data + bytes([8]) * SECTOR_BYTES
    late, in_c = written(pair, 14, 1, 0x98)  # a new allocation: C appends its record in the new epoch
    assert in_c
    pair.operate("forget")  # close and reopen: what C wrote after the compaction is recovered
    assert pair.ata(READ_EXT, 10, 5)[0].data == bytes([8]) * 2 * SECTOR_BYTES + data + bytes([8]) * SECTOR_BYTES + late


def test_after_the_disk_is_forgotten_the_checked_path_reopens_it(pair):
    written(pair, 0, 1, 0x41)
    data, in_c = written(pair, 1, 1, 0x42)
    assert in_c
    old = overlay_of(pair)
    pair.operate("forget")
    assert pair.fast.lib.dp_route_count(pair.fast.datapath) == 0, "no route may point at the closed overlay"
    r, in_c = pair.ata(READ_EXT, 0, 2)
    assert not in_c and r.data == bytes([0x41]) * SECTOR_BYTES + data
    assert overlay_of(pair) is not old
    r, in_c = pair.ata(READ_EXT, 0, 2)
    assert in_c and r.data == bytes([0x41]) * SECTOR_BYTES + data
    data, in_c = written(pair, 0, 1, 0x43)
    assert in_c, "the route registered after reopening carries the new overlay"
    assert pair.ata(READ_EXT, 0, 1)[0].data == data


def test_forgetting_one_client_leaves_the_others_served(pair):
    written(pair, 5, 1, 0x51)
    pair.ata(READ_EXT, 5, 1, src=B)
    pair.operate("forget", A)
    r, in_c = pair.ata(READ_EXT, 5, 1, src=B)
    assert not in_c and r.data == sectors(5, 1), "every route was cleared; the checked path registers B's again"
    assert pair.ata(READ_EXT, 5, 1, src=B)[1]
    assert pair.ata(READ_EXT, 5, 1)[0].data == bytes([0x51]) * SECTOR_BYTES


def test_closing_the_target_before_its_disks_does_not_crash(tmp_path, images):
    code = f"""
import pathlib
from tests.server.conftest import make_target
target = make_target(pathlib.Path({str(tmp_path)!r}), pathlib.Path({str(images)!r}))
target.close()
target.disks.close()
print("closed")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "closed" in result.stdout, result.stderr[-2000:]
