"""Sequential reads are sent from mapped windows of the base image (datapath/windows.c), with the
checked path's answers, within a bounded number of windows, and never in place of a client's own
sectors; a base image cut short under a window costs one lost answer, then the checked error.

The batch loop runs on an AF_UNIX datagram pair as in test_datapath_link.py; the mapped data is
read by the kernel in sendmmsg, so a failing page would show as a lost answer (EFAULT), never as
a signal in this process.
"""

import os

import pytest

from impl.server.datapath import library
from tests.server.conftest import IMAGE_SECTORS
from tests.server.test_datapath_answers import READ_EXT, WRITE_EXT, A, B
from tests.server.test_datapath_link import IDLE_NS, ROUND, SERVE_IDLE, Link, ata

RUN = 17  # sectors per read: the most a 9000-byte frame carries
SEQUENTIAL_READS = 5  # after a read elsewhere: the first starts a run, the fifth is the fourth to follow on and maps a window (DP_SEQUENTIAL_READS)


@pytest.fixture
def link(tmp_path, images):
    served = Link(tmp_path, images)
    yield served
    served.close()


def mapped(link) -> int:
    return link.lib.dp_server_mapped_windows(link.target.datapath)


def read_in_order(link, first: int, reads: int, src=A, tag=1000) -> int:
    """`reads` reads of RUN sectors from `first` on, each where the last ended, in rounds; the next tag."""
    frames = [ata(READ_EXT, first + i * RUN, RUN, src=src, tag=tag + i) for i in range(reads)]
    for start in range(0, len(frames), ROUND):
        link.round(frames[start : start + ROUND])
    return tag + reads


def test_sequential_reads_are_answered_from_a_window_as_the_checked_path_answers(link):
    link.round([ata(READ_EXT, 200, 1, tag=1)])  # the route, by Python
    read_in_order(link, 0, (IMAGE_SECTORS - RUN) // RUN)  # every answer equal to the checked twin's (Link.round)
    assert mapped(link) == 1, "the whole image lies in one window"


def test_reads_that_do_not_follow_each_other_map_nothing(link):
    link.round([ata(READ_EXT, 200, 1, tag=1)])
    for number, lba in enumerate([0, 40, 3, 90, 17, 150, 60, 120]):
        link.round([ata(READ_EXT, lba, RUN, tag=10 + number)])
    assert mapped(link) == 0


def test_a_window_never_answers_for_sectors_the_client_wrote(link):
    link.round([ata(READ_EXT, 200, 1, tag=1), ata(WRITE_EXT, 100, 3, tag=2, data=b"\xa5" * 3 * 512)])  # A's overlay
    tag = read_in_order(link, 0, SEQUENTIAL_READS)
    assert mapped(link) == 1
    read_in_order(link, SEQUENTIAL_READS * RUN, 6, tag=tag)  # on in the window, over A's sectors 100-102: the overlay's data
    link.round([ata(WRITE_EXT, 10, 2, tag=3, data=b"\x5a" * 2 * 512), ata(READ_EXT, 0, RUN, tag=4), ata(READ_EXT, RUN, RUN, tag=5)])
    link.round([ata(READ_EXT, 0, RUN, src=B, tag=6)])  # B reads the base image, not A's writes


@pytest.fixture
def large(tmp_path):
    """A sparse image with room for twice as many windows as may be mapped, served."""
    images = tmp_path / "images"
    images.mkdir()
    with open(images / "base.img", "wb") as f:
        f.truncate(2 * library().dp_window_limit() * library().dp_window_bytes())
    served = Link(tmp_path, images)
    served.round([ata(READ_EXT, 0, 1, tag=1)])  # the route
    yield served
    served.close()


def test_more_runs_than_windows_keep_the_windows_they_have_and_the_rest_are_copied(large):
    limit, window_sectors = library().dp_window_limit(), library().dp_window_bytes() // 512
    tag = 100
    for window in range(2 * limit):
        tag = read_in_order(large, window * window_sectors, SEQUENTIAL_READS, tag=tag)
        assert mapped(large) == min(window + 1, limit)
    assert large.lib.dp_server_windows_made(large.target.datapath) == limit, "windows used moments ago are not taken: no mapping and unmapping per read"
    large.lib.dp_routes_clear(large.target.datapath)
    assert mapped(large) == 0, "every answer was sent: nothing keeps a window once a base image may close"


def test_a_reader_streaming_on_takes_the_window_idle_longest(large):
    limit, window_sectors = library().dp_window_limit(), library().dp_window_bytes() // 512
    tag = 100
    for window in range(limit - 1):
        tag = read_in_order(large, window * window_sectors, SEQUENTIAL_READS, tag=tag)
    first = (limit - 1) * window_sectors
    reads = (window_sectors + library().dp_window_idle_reads()) // RUN  # through the last free window and well into the next
    read_in_order(large, first, reads, tag=tag)
    assert mapped(large) == limit
    assert large.lib.dp_server_windows_made(large.target.datapath) == limit + 1, "the first window, idle since, was taken for the next"


def test_a_base_image_cut_short_under_a_window_loses_one_answer_then_gets_the_checked_error(link, images):
    link.round([ata(READ_EXT, 200, 1, tag=1)])
    tag = read_in_order(link, 0, SEQUENTIAL_READS)
    assert mapped(link) == 1
    os.truncate(images / "base.img", SEQUENTIAL_READS * RUN * 512)  # the next read lies past the new end
    following = ata(READ_EXT, SEQUENTIAL_READS * RUN, RUN, tag=tag)
    link.client_end.send(following)
    assert link.serve() == SERVE_IDLE
    link.client_end.settimeout(0.2)
    with pytest.raises(TimeoutError):
        link.client_end.recv(1 << 16)  # the kernel could not read the window: no answer, no signal
    assert mapped(link) == 0, "a failed window is never used again"
    link.client_end.settimeout(5)
    link.round([ata(READ_EXT, SEQUENTIAL_READS * RUN, RUN, tag=tag + 1)])  # the initiator's retransmit: read, and answered with the checked path's error
    assert link.lib.dp_link_serve(link.target.datapath, link.link, IDLE_NS) == SERVE_IDLE
