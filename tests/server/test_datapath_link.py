"""The data path's batch loop (datapath/link.c) answers a batch as the checked path would, in order.

The raw transport hands link.c an AF_PACKET socket; any datagram socket serves the same
recvmmsg/sendmmsg calls, so here it is one end of an AF_UNIX datagram pair and the test is the
initiator at the other end. The loop below is the server's (`Server.serve_link`): C answers what
it can, every other frame is answered by `process_frame_checked` in its place in the batch.
A socket's send buffer (212992 bytes by default) holds only four jumbo frames in flight, so a
round sends at most four and reads every answer before the next.
"""

import ctypes
import resource
import select
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.server.datapath import SERVE_IDLE, SERVE_REFRESH, library
from impl.server.initiator import ata_body, parse_response, request_frame
from impl.server.transport import MAX_FRAME_BYTES
from spec.aoe.constants import ETHERNET_MIN_FRAME_BYTES, SECTOR_BYTES, AoeCommand, AtaErrorBit, AtaStatus
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, make_target
from tests.server.test_datapath_answers import READ_EXT, READS, WRITE_EXT, WRITES, A, B

BATCH = 2  # frames per recvmmsg: a round spans several batches
IDLE_NS = 2_000_000
ROUND = 4


def serve_until_idle(lib, link, target) -> tuple[int, int]:
    """Serve until the socket is idle, as Server.serve_link does: the last dp_link_serve result, and
    how many frames went to Python."""
    length = ctypes.c_uint32()
    in_python = 0
    while True:
        index = lib.dp_link_serve(target.datapath, link, IDLE_NS)
        if index < 0:
            return index, in_python
        frame = ctypes.string_at(lib.dp_link_frame(link, index, ctypes.byref(length)), length.value)
        in_python += 1
        for response in target.process_frame_checked(frame):
            assert lib.dp_link_queue(link, response, len(response)) == 0
        lib.dp_link_done(link)


class Link:
    """A target served through link.c on one end of a socket pair, and a checked twin to compare with."""

    def __init__(self, directory, images, mtu=9000, frame_bytes=None):
        self.target = make_target(directory / "served", images, mtu=mtu)
        self.checked = make_target(directory / "checked", images, mtu=mtu)
        self.server_end, self.client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.server_end.setblocking(False)
        self.client_end.settimeout(5)
        self.lib = library()
        frame_bytes = frame_bytes or max(self.target.answer_bytes, MAX_FRAME_BYTES)  # as the raw transport's batches
        self.link = self.lib.dp_link_new(self.server_end.fileno(), BATCH, frame_bytes, ETHERNET_MIN_FRAME_BYTES)
        assert self.link
        self.in_python = 0

    def serve(self) -> int:
        """Serve until the socket is idle; the last dp_link_serve result."""
        result, in_python = serve_until_idle(self.lib, self.link, self.target)
        self.in_python += in_python
        return result

    def round(self, frames: list[bytes]) -> list[bytes]:
        """Send the frames, serve them, and check the answers against the checked twin's, in order."""
        assert len(frames) <= ROUND
        for frame in frames:
            self.client_end.send(frame)
        assert self.serve() == SERVE_IDLE
        expected = [r.ljust(ETHERNET_MIN_FRAME_BYTES, b"\0") for f in frames for r in self.checked.process_frame_checked(f)]
        answers = [self.client_end.recv(1 << 16) for _ in expected]
        assert answers == expected
        assert select.select([self.client_end], [], [], 0)[0] == [], "nothing more than the checked path sends"
        return answers

    def close(self):
        self.lib.dp_link_free(self.link)
        self.server_end.close()
        self.client_end.close()
        for target in (self.target, self.checked):
            target.disks.close()
            target.close()


@pytest.fixture
def link(tmp_path, images):
    served = Link(tmp_path, images)
    yield served
    served.close()


def ata(cmd, lba, count, src=A, tag=1, data=None):
    if cmd in WRITES and data is None:
        data = bytes([tag & 0xFF]) * count * SECTOR_BYTES
    body = ata_body(cmd, lba, count, data or b"", write=cmd in WRITES)
    return request_frame(SERVER_MAC, src, 0, 0, AoeCommand.ATA, tag, body).ljust(ETHERNET_MIN_FRAME_BYTES, b"\0")


def test_a_batch_mixes_c_and_python_answers_in_request_order(link):
    link.round([ata(READ_EXT, 0, 1, tag=1), ata(WRITE_EXT, 0, 1, tag=2)])  # routes and the overlay, by Python
    python_before = link.in_python
    link.round([ata(WRITE_EXT, 3, 17, tag=3), ata(0xEC, 0, 1, tag=4), ata(READ_EXT, 2, 17, tag=5), ata(READ_EXT, IMAGE_SECTORS, 1, tag=6)])
    link.round([ata(READ_EXT, 3, 1, tag=7), ata(0xE7, 0, 0, tag=8), ata(WRITE_EXT, IMAGE_SECTORS - 1, 1, tag=9), ata(READ_EXT, 0, 2, src=B, tag=10)])
    assert link.in_python - python_before == 4, "IDENTIFY, IDNF, FLUSH and B's first request go to Python; the rest is C's"


def test_rounds_of_answers_all_from_c_or_all_from_python(link):
    link.round([ata(READ_EXT, 0, 1, tag=1), ata(WRITE_EXT, 0, 1, tag=2)])
    python_before = link.in_python
    link.round([ata(READ_EXT, lba, 17, tag=lba) for lba in range(0, ROUND * 17, 17)])
    assert link.in_python == python_before
    link.round([ata(0xEC, 0, 1, tag=t) for t in range(ROUND)])  # every answer queued by Python
    assert link.in_python == python_before + ROUND


def test_an_answer_longer_than_a_frame_buffer_is_refused(tmp_path, images):
    served = Link(tmp_path, images, frame_bytes=1024)
    try:
        assert served.lib.dp_link_queue(served.link, bytes(1025), 1025) < 0
        assert served.lib.dp_link_queue(served.link, bytes(1024), 1024) == 0
    finally:
        served.close()


def test_a_moved_sequence_number_asks_python_to_refresh(link):
    sequence = ctypes.c_uint64(1)
    link.lib.dp_link_watch(link.link, ctypes.addressof(sequence), 0)
    assert link.lib.dp_link_serve(link.target.datapath, link.link, IDLE_NS) == SERVE_REFRESH
    link.lib.dp_link_watch(link.link, ctypes.addressof(sequence), 1)
    assert link.lib.dp_link_serve(link.target.datapath, link.link, IDLE_NS) == SERVE_IDLE


def test_a_run_the_filesystem_refuses_is_written_again_a_write_at_a_time(link):
    """Writes waiting in one batch that continue each other go to the overlay with one pwritev
    (answer.c, write_run). When the run fails (here its allocation record meets the file size limit,
    a full disk) none of them is answered as done: each is written alone, as every write is, and the
    one that still fails gets the checked path's error while the one that fits succeeds."""
    link.round([ata(READ_EXT, 0, 1, tag=1), ata(WRITE_EXT, 0, 8, tag=2)])  # A's overlay: sectors 0-7 are A's
    link.round([ata(READ_EXT, 0, 1, tag=3)])  # the route again, now with the overlay
    runs = link.lib.dp_server_write_runs(link.target.datapath)
    link.round([ata(WRITE_EXT, 0, 4, tag=4), ata(WRITE_EXT, 4, 4, tag=5)])
    assert link.lib.dp_server_write_runs(link.target.datapath) == runs + 1, "a batch of two writes, the second where the first ended"
    served, checked = (t.disks.disks[(A, "base", False)].overlay for t in (link.target, link.checked))
    assert served.journal_end == checked.journal_end
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (served.journal_end, hard))  # the data region fits, the journal cannot grow
    try:
        answers = link.round([ata(WRITE_EXT, 6, 2, tag=6), ata(WRITE_EXT, 8, 2, tag=7)])  # A's sectors, then new ones
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert link.lib.dp_server_write_runs(link.target.datapath) == runs + 1
    statuses = [parse_response(a) for a in answers]
    assert statuses[0].fields[3] == AtaStatus.DRDY, "the overwrite needs no record: done alone"
    assert statuses[1].fields[3] & AtaStatus.ERR and statuses[1].fields[1] == AtaErrorBit.ABRT
    link.round([ata(READ_EXT, 0, 12, tag=8)])  # 6-7 hold the write, 8-9 still the base image's


def test_a_link_serves_another_server_once_the_one_before_is_freed(tmp_path, images):
    """A link may go on with another server after a serve came back idle, when the server before may
    have been freed: the link must not touch it (under AddressSanitizer a use is reported)."""
    served = Link(tmp_path, images)
    first = served.target
    try:
        served.target = make_target(tmp_path / "first", images, mtu=9000)
        served.round([ata(READ_EXT, lba, 17, tag=lba) for lba in range(0, ROUND * 17, 17)])  # the second and later by C
        served.target.disks.close()
        served.target.close()  # dp_server_free
        served.target = first
        served.round([ata(READ_EXT, lba, 17, tag=100 + lba) for lba in range(0, ROUND * 17, 17)])
    finally:
        served.target = first
        served.close()


NEXT = None  # an LBA drawn as NEXT: where the client's last transfer ended, so runs of sequential reads map windows (windows.c)
requests = st.tuples(st.sampled_from(READS + WRITES + (0xEC, 0xE7)), st.one_of(st.integers(0, IMAGE_SECTORS), st.just(NEXT)), st.integers(0, 18),
                     st.sampled_from([A, B]))


@given(rounds=st.lists(st.lists(requests, min_size=1, max_size=ROUND), min_size=1, max_size=6))
def test_rounds_of_requests_get_the_checked_paths_answers(tmp_path_factory, images_factory, rounds):
    served = Link(tmp_path_factory.mktemp("link"), images_factory())
    try:
        tag, after = 0, {A: 0, B: 0}
        for requests_ in rounds:
            frames = []
            for cmd, lba, count, src in requests_:
                tag += 1
                lba = after[src] if lba is NEXT else lba
                after[src] = lba + count
                frames.append(ata(cmd, lba, count, src=src, tag=tag))
            served.round(frames)
    finally:
        served.close()
