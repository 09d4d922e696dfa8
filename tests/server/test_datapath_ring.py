"""The data path's receive ring (datapath/link.c, `serve_ring`) answers as the checked path would (root).

A real raw transport (`RawTransport`, receiving through PACKET_RX_RING) serves in a network
namespace on one end of a veth pair, with the loop of `Server.serve_link`: C answers what it can,
every other frame is answered by `process_frame_checked` in its place in the batch. The test is
the initiator on the other end, and a checked twin over a copy of the images says what every
answer must be. The loop serves only when told to, so the frames of a batch wait in the ring
together, and a burst can fill it. Run as a module, this file is that server: it reads one command
a line and answers each with one JSON line.
"""

import ctypes
import json
import os
import select
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from difftest.server.netns import ROOT, VethNamespace, ip
from impl.server.config import DEFAULT_MTU
from impl.server.datapath import SERVE_ERROR, SERVE_IDLE, SERVE_REFRESH
from impl.server.frames import AOE_HEADER, CONFIG_ARG, HEADER_BYTES, VERSION_SHIFT
from impl.server.initiator import RawLink, parse_response, request_frame, wait_readable
from impl.server.shared_state import SharedTargetState
from impl.server.target import TargetState
from impl.server.transport import RING_FRAMES, RawTransport
from spec.aoe.constants import (
    AOE_VERSION,
    ETHERNET_HEADER_BYTES,
    ETHERNET_MIN_FRAME_BYTES,
    MAC_BYTES,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    ConfigCommand,
    HeaderFlag,
    sectors_per_frame,
)
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, make_target
from tests.server.test_datapath_answers import FLUSH_EXT, IDENTIFY, READ_EXT, WRITE_EXT, A, B
from tests.server.test_datapath_link import ata

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]
JUMBO_MTU = 9000  # the jumbo frames the server is run with (`serve --mtu`)
IDLE_NS = 50_000_000  # the loop returns after this long without a frame: everything waiting was answered
QUIET_SECONDS = 0.2  # no answer for this long: the server sent all it will
REPLY_SECONDS = 20  # the server answers a command within this, or has failed
BURST = RING_FRAMES + RING_FRAMES // 2  # half a ring more than it holds
IDENTIFY_EVERY = 32  # one frame of a burst in this many goes to Python
CONTENTS_TAG = 1 << 31  # reads of the whole disk at the end, apart from the tags the test sends


def disk_contents(target, client: bytes) -> bytes:
    """The client's disk as the checked path reads it."""
    data = []
    for lba in range(0, IMAGE_SECTORS, target.max_sectors):
        count = min(target.max_sectors, IMAGE_SECTORS - lba)
        (answer,) = target.process_frame_checked(ata(READ_EXT, lba, count, src=client, tag=CONTENTS_TAG + lba))
        data.append(parse_response(answer).data[: count * SECTOR_BYTES])
    return b"".join(data)


# The server, in the namespace.


def reply(message: dict) -> None:
    print(json.dumps(message), flush=True)


def serve_until_idle(lib, link, target, shared) -> dict:
    """Server.serve_link's loop, until the ring stays empty; how long each frame handed to Python was,
    and how often the loop stopped to take in what worker 0 published."""
    handed, refreshes = [], 0
    length = ctypes.c_uint32()
    while True:
        index = lib.dp_link_serve(target.datapath, link, IDLE_NS)
        if index == SERVE_IDLE:
            return {"handed": handed, "refreshes": refreshes, "windows": lib.dp_server_mapped_windows(target.datapath),
                    "write_runs": lib.dp_server_write_runs(target.datapath)}
        if index == SERVE_REFRESH:
            shared.refresh(target.targets)  # as Server.refresh_from_worker_0, before the frame waiting in the ring
            lib.dp_link_watch(link, shared.sequence_address, shared.seen)
            refreshes += 1
            continue
        assert index != SERVE_ERROR, "the ring loop failed"
        frame = ctypes.string_at(lib.dp_link_frame(link, index, ctypes.byref(length)), length.value)
        handed.append(len(frame))
        for response in target.process_frame_checked(frame):
            assert lib.dp_link_queue(link, response, len(response)) == 0
        lib.dp_link_done(link)


def answer_commands(interface: str, images: str, state: str) -> None:
    """serve: answer what waits in the ring; reserve MAC...: worker 0 publishes a reservation list
    for the target; contents MAC...: the clients' disks, in hex."""
    transport = RawTransport(interface)
    target = make_target(Path(state), Path(images), mtu=transport.mtu)  # as Server: the interface's MTU when it opens
    lib, link = transport.lib, transport.link
    shared = SharedTargetState(len(target.targets))
    lib.dp_link_watch(link, shared.sequence_address, shared.seen)  # as every worker but worker 0 watches
    reply({"ring": transport.ring, "mac": transport.mac.hex()})
    for line in sys.stdin:
        command, *macs = line.split()
        if command == "serve":
            reply(serve_until_idle(lib, link, target, shared))
        elif command == "reserve":
            published = TargetState(target.targets[0].config, target.targets[0].image_name)  # worker 0's copy of the target
            published.reservations = [bytes.fromhex(mac) for mac in macs]
            shared.publish([published])
            reply({})
        elif command == "contents":
            reply({mac: disk_contents(target, bytes.fromhex(mac)).hex() for mac in macs})
    target.disks.close()
    target.close()
    transport.close()


# The initiator and the checked twin, in the test.


class RingServer:
    """A served target behind a veth pair, its checked twin, and an initiator's raw link to it."""

    def __init__(self, directory: Path, images: Path, mtu: int):
        self.net = VethNamespace(mtu)
        self.process = None
        self.link = None
        self.checked = None
        try:
            ip("-n", self.net.namespace, "link", "set", self.net.far_interface, "address", SERVER_MAC.hex(":"))  # the targets' MAC
            served_images = directory / "served-images"
            shutil.copytree(images, served_images)
            self.log = open(directory / "server.log", "w+")
            argv = [sys.executable, "-m", "tests.server.test_datapath_ring", self.net.far_interface, str(served_images), str(directory / "served")]
            self.process = subprocess.Popen(["ip", "netns", "exec", self.net.namespace, *argv], cwd=ROOT,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
            self.started = self.reply()
            assert self.started["ring"], "the raw transport receives through its ring, else this would test recvmmsg"
            assert bytes.fromhex(self.started["mac"]) == SERVER_MAC
            self.checked = make_target(directory / "checked", images, mtu=mtu)
            self.link = RawLink(self.net.host_interface)
            self.tag = 0
        except BaseException:
            self.close()
            raise

    def reply(self) -> dict:
        ready = select.select([self.process.stdout], [], [], REPLY_SECONDS)[0]
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.log.seek(0)
            raise AssertionError(f"the server did not answer: {self.log.read()[-3000:]}")
        return json.loads(line)

    def begin(self, *words: str) -> None:
        self.process.stdin.write(" ".join(words) + "\n")
        self.process.stdin.flush()

    def command(self, *words: str) -> dict:
        self.begin(*words)
        return self.reply()

    def next_tag(self) -> int:
        self.tag += 1
        return self.tag

    def ata(self, cmd, lba=0, count=1, src=A, data=None) -> bytes:
        return ata(cmd, lba, count, src=src, tag=self.next_tag(), data=data)

    def query_config(self, ccmd, string=b"", src=A) -> bytes:
        body = CONFIG_ARG.pack(0, 0, 0, AOE_VERSION << VERSION_SHIFT | ccmd, len(string)) + string
        return request_frame(SERVER_MAC, src, 0, 0, AoeCommand.QUERY_CONFIG, self.next_tag(), body).ljust(ETHERNET_MIN_FRAME_BYTES, b"\0")

    def send(self, frames) -> None:
        for frame in frames:
            self.link.send(frame)

    def answers(self) -> list[bytes]:
        """Every answer that arrives until the link stays quiet."""
        answers = []
        while True:
            wait_readable(self.link, QUIET_SECONDS)
            before = len(answers)
            while (frame := self.link.receive()) is not None:
                answers.append(frame)
            if len(answers) == before:
                return answers

    def expected(self, frames) -> list[bytes]:
        """The checked twin's answers, padded as the data path pads them (IEEE 802.3 §3.2.8; veth does not pad)."""
        return [r.ljust(ETHERNET_MIN_FRAME_BYTES, b"\0") for frame in frames for r in self.checked.process_frame_checked(frame)]

    def round(self, frames) -> dict:
        """The frames wait in the ring together, the loop serves them, and the answers are the checked twin's."""
        self.send(frames)
        report = self.command("serve")
        assert_same_answers(self.answers(), self.expected(frames))
        return report

    def assert_same_disks(self, *clients: bytes) -> None:
        served = self.command("contents", *(c.hex() for c in clients))
        for client in clients:
            mine, theirs = bytes.fromhex(served[client.hex()]), disk_contents(self.checked, client)
            differ = [lba for lba in range(IMAGE_SECTORS) if mine[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES] != theirs[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES]]
            assert not differ, f"client {client.hex()}: sectors {differ} differ from the checked twin's"

    def close(self) -> None:
        if self.link:
            self.link.close()
        if self.process:
            self.process.stdin.close()  # the server closes its disks at the end of its commands
            try:
                self.process.wait(REPLY_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()
        if self.checked:
            self.checked.disks.close()
            self.checked.close()
        self.net.close()


def by_client(answers) -> dict[bytes, list[bytes]]:
    """Answers per client, in arrival order: the order AoE leaves to each initiator's tags (AoEr11 §2)."""
    grouped = defaultdict(list)
    for answer in answers:
        grouped[answer[:MAC_BYTES]].append(answer)
    return dict(grouped)


def describe(answer: bytes):
    """(tag, flags, error, length) of an answer, for a failure's message."""
    r = parse_response(answer)
    return (r.tag, r.flags, r.error, len(answer)) if r else answer[:HEADER_BYTES].hex()


def assert_same_answers(got, expected) -> None:
    """The same answers, byte for byte, in the same order for each client."""
    got, expected = by_client(got), by_client(expected)
    for client in sorted(got.keys() | expected.keys()):
        mine, theirs = got.get(client, []), expected.get(client, [])
        if mine != theirs:
            at = next((i for i, (m, t) in enumerate(zip(mine, theirs)) if m != t), min(len(mine), len(theirs)))
            window = slice(max(0, at - 2), at + 3)
            raise AssertionError(f"client {client.hex()}: {len(mine)} answers, the checked path {len(theirs)}; from answer {at} "
                                 f"(tag, flags, error, length): {[describe(a) for a in mine[window]]}, checked {[describe(a) for a in theirs[window]]}")


@pytest.fixture
def jumbo(tmp_path, images):
    served = RingServer(tmp_path, images, JUMBO_MTU)
    yield served
    served.close()


@pytest.fixture
def standard(tmp_path, images):
    served = RingServer(tmp_path, images, DEFAULT_MTU)
    yield served
    served.close()


def test_a_mixed_batch_in_the_ring_gets_the_checked_paths_answers_in_order(jumbo):
    most = sectors_per_frame(JUMBO_MTU)
    jumbo.round([jumbo.ata(READ_EXT, 0, 1), jumbo.ata(WRITE_EXT, 0, 1), jumbo.ata(READ_EXT, 0, 1, src=B)])  # routes and A's overlay, by Python
    batch = [
        jumbo.ata(READ_EXT, 0, most),
        jumbo.ata(IDENTIFY, 0, 1),
        jumbo.ata(READ_EXT, 5, 3, src=B),
        jumbo.ata(WRITE_EXT, 3, most),
        jumbo.query_config(ConfigCommand.SET_IF_EMPTY, b"ring", src=B),
        jumbo.ata(READ_EXT, 2, most),
        jumbo.ata(READ_EXT, IMAGE_SECTORS, 1),
        jumbo.ata(FLUSH_EXT, 0, 0),
        jumbo.ata(WRITE_EXT, 40, 2)[:-SECTOR_BYTES],  # a sector short of its count: BAD_ARGUMENT
        jumbo.ata(WRITE_EXT, 100, most).ljust(JUMBO_MTU + ETHERNET_HEADER_BYTES, b"\0"),
        jumbo.query_config(ConfigCommand.READ),
        request_frame(SERVER_MAC, B, 0, 0, AoeCommand.ATA, jumbo.next_tag())[: HEADER_BYTES - 1],  # cut inside the AoE header: dropped
        jumbo.ata(READ_EXT, 99, most),
        jumbo.ata(READ_EXT, 6, 1, src=B),
    ]
    report = jumbo.round(batch)
    assert len(report["handed"]) == 7, "IDENTIFY, Query Config twice, IDNF, FLUSH, the cut write and the runt go to Python; the rest is C's"
    jumbo.assert_same_disks(A, B)


def test_a_sequential_reader_is_answered_from_a_mapped_window_as_the_checked_path_answers(jumbo):
    most = sectors_per_frame(JUMBO_MTU)
    jumbo.round([jumbo.ata(READ_EXT, 0, 1), jumbo.ata(WRITE_EXT, 100, 2)])  # the route, and A's overlay: sectors 100-101 are A's
    report = jumbo.round([jumbo.ata(READ_EXT, lba, most) for lba in range(0, IMAGE_SECTORS - most, most)])
    assert report["windows"] == 1 and report["handed"] == [], "every read answered by C, the base image's from a window (datapath/windows.c)"
    jumbo.assert_same_disks(A)


def test_writes_waiting_in_the_ring_that_continue_each_other_are_written_as_runs(jumbo):
    """A run: writes of one client waiting one after another, each starting where the one before ended
    (datapath/answer.c, write_run). Anything else between them (a read, another client, a write to where
    the last one started) ends the run; the answers and the disks are the checked path's all the same."""
    most = sectors_per_frame(JUMBO_MTU)
    jumbo.round([jumbo.ata(READ_EXT, 0, 1), jumbo.ata(WRITE_EXT, 0, 1), jumbo.ata(READ_EXT, 0, 1, src=B), jumbo.ata(WRITE_EXT, 0, 1, src=B)])
    before = jumbo.round([jumbo.ata(READ_EXT, 0, 1), jumbo.ata(READ_EXT, 0, 1, src=B)])  # the routes again, now with the overlays
    writes = lambda first, n, src=A: [jumbo.ata(WRITE_EXT, lba, most, src=src) for lba in range(first, first + n * most, most)]
    frames = [
        *writes(0, 6),  # a run of six, over sector 0 (A's already) and fresh ones
        jumbo.ata(READ_EXT, 0, most),
        *writes(6 * most, 3),  # a run of three: the read ended the first
        jumbo.ata(WRITE_EXT, 10, 2, src=B),
        jumbo.ata(WRITE_EXT, 9 * most, most),  # alone: a write to where it started comes next
        *writes(9 * most, 6),  # the same again (a retransmit) and five after it: a run of six
    ]
    report = jumbo.round(frames)
    assert report["handed"] == [] and report["write_runs"] - before["write_runs"] == 3
    jumbo.assert_same_disks(A, B)


def test_a_run_is_at_most_the_data_paths_limit_of_writes(jumbo):
    jumbo.round([jumbo.ata(READ_EXT, 0, 1), jumbo.ata(WRITE_EXT, 0, 1)])
    before = jumbo.round([jumbo.ata(READ_EXT, 0, 1)])
    report = jumbo.round([jumbo.ata(WRITE_EXT, lba, 1) for lba in range(100, 120)])  # twenty one-sector writes
    assert report["handed"] == [] and report["write_runs"] - before["write_runs"] == 2, "sixteen (DP_WRITE_RUN_FRAMES), then four"
    jumbo.assert_same_disks(A)


def tag_of(frame: bytes) -> int:
    return AOE_HEADER.unpack_from(frame, ETHERNET_HEADER_BYTES)[-1]


def burst(served) -> list[bytes]:
    """Reads of the lower half of both disks, one-sector writes to the upper half, an IDENTIFY now and
    then: no answer depends on which of the others arrived, so any of them may be dropped."""
    half, most = IMAGE_SECTORS // 2, sectors_per_frame(DEFAULT_MTU)
    frames = []
    for i in range(BURST):
        client = (A, B)[i // 2 % 2]
        if i % IDENTIFY_EVERY == IDENTIFY_EVERY - 1:
            frames.append(served.ata(IDENTIFY, 0, 1, src=client))
        elif i % 2:
            frames.append(served.ata(WRITE_EXT, half + i // 4 % half, 1, src=client))
        else:
            frames.append(served.ata(READ_EXT, i % (half - most), 1 + i % most, src=client))
    return frames


def answered_in_order(frames, answers) -> list[bytes]:
    """The frames that were answered, in the order they were sent; none answered twice, no answer to anything else."""
    tags = [parse_response(a).tag for a in answers]
    assert len(tags) == len(set(tags)), "a frame was answered twice"
    sent = {tag_of(f) for f in frames}
    assert set(tags) <= sent, "an answer to no request of the burst"
    return [f for f in frames if tag_of(f) in set(tags)]


def test_a_burst_larger_than_the_ring_is_answered_or_dropped_never_twice_or_wrongly(standard):
    standard.round([standard.ata(READ_EXT, 0, 1), standard.ata(WRITE_EXT, 0, 1), standard.ata(READ_EXT, 0, 1, src=B), standard.ata(WRITE_EXT, 0, 1, src=B)])
    frames = burst(standard)
    standard.send(frames)  # the loop is not serving: the ring fills and the kernel drops the rest (packet_mmap.rst)
    standard.command("serve")
    answers = standard.answers()
    answered = answered_in_order(frames, answers)
    assert answered == frames[:RING_FRAMES], "the ring held the burst's first RING_FRAMES frames, each answered once"
    assert_same_answers(answers, standard.expected(answered))

    frames = burst(standard)
    standard.begin("serve")
    standard.send(frames)  # the loop frees slots while the kernel fills others, around the ring
    standard.reply()
    standard.command("serve")  # whatever arrived after the loop went idle
    answers = standard.answers()
    answered = answered_in_order(frames, answers)
    assert len(answered) >= RING_FRAMES, "at least what the ring holds is answered (AoEr11 §1: the rest may be lost)"
    assert_same_answers(answers, standard.expected(answered))

    report = standard.round([standard.ata(READ_EXT, IMAGE_SECTORS // 2, 2), standard.ata(IDENTIFY, 0, 1, src=B), standard.ata(WRITE_EXT, 1, 2)])
    assert len(report["handed"]) == 1, "after the bursts C still answers plain transfers"
    standard.assert_same_disks(A, B)


def test_a_frame_longer_than_a_ring_slot_is_answered_as_the_slot_holds_it(standard):
    fits = sectors_per_frame(DEFAULT_MTU)
    standard.round([standard.ata(READ_EXT, 0, 1), standard.ata(WRITE_EXT, 0, 1)])
    # the slots were sized for the MTU when the ring was made; a larger MTU now lets longer frames reach them
    ip("link", "set", standard.net.host_interface, "mtu", str(JUMBO_MTU))
    ip("-n", standard.net.namespace, "link", "set", standard.net.far_interface, "mtu", str(JUMBO_MTU))
    too_long = standard.ata(WRITE_EXT, 8, sectors_per_frame(JUMBO_MTU))
    padded = standard.ata(WRITE_EXT, 8, fits).ljust(JUMBO_MTU + ETHERNET_HEADER_BYTES, b"\0")
    read_back = standard.ata(READ_EXT, 8, fits)
    standard.send([too_long, padded, read_back])
    report = standard.command("serve")
    answers = standard.answers()
    (cut,) = report["handed"]  # the over-long write; C answers the padded write and the read
    assert DEFAULT_MTU + ETHERNET_HEADER_BYTES < cut < len(too_long), "the kernel cut the frame at the slot's end (packet_mmap.rst: tp_snaplen)"
    # AoEr11 §3.1: bytes past the sectors a write counts are not its data; the cut loses only those of `padded`
    assert_same_answers(answers, standard.expected([too_long[:cut], padded, read_back]))
    error = parse_response(answers[0])
    assert error.flags & HeaderFlag.ERROR and error.error == AoeError.BAD_ARGUMENT
    assert len(answers[0]) == cut, "the error echoes what the slot holds, nothing read past it"
    standard.assert_same_disks(A)


def test_a_reservation_published_while_frames_wait_in_the_ring_holds_for_them(standard):
    standard.round([standard.ata(READ_EXT, 0, 1), standard.ata(WRITE_EXT, 0, 1), standard.ata(READ_EXT, 0, 1, src=B), standard.ata(WRITE_EXT, 0, 1, src=B)])
    waiting = [standard.ata(READ_EXT, 4, 2), standard.ata(WRITE_EXT, 50, 1), standard.ata(READ_EXT, 4, 2, src=B),
               standard.ata(IDENTIFY, 0, 1), standard.ata(WRITE_EXT, 60, 1, src=B)]
    standard.send(waiting)
    standard.command("reserve", B.hex())  # worker 0 took a Reserve from B (AoEr11 §3.4) while the frames wait
    standard.checked.targets[0].reservations = [B]
    report = standard.command("serve")
    answers = standard.answers()
    assert_same_answers(answers, standard.expected(waiting))
    assert report["refreshes"] == 1, "the loop took in the publication before answering a waiting frame"
    errors = [parse_response(a).error for a in by_client(answers)[A]]
    assert errors == [AoeError.TARGET_RESERVED, AoeError.TARGET_RESERVED, 0], "A is refused, but IDENTIFY stays open (AoEr11 §3.4)"

    standard.command("reserve")  # released
    standard.checked.targets[0].reservations = []
    report = standard.round([standard.ata(READ_EXT, 4, 2), standard.ata(WRITE_EXT, 50, 1), standard.ata(READ_EXT, 50, 1, src=B)])
    assert report["refreshes"] == 1 and report["handed"] == [], "once released, C answers again"
    standard.assert_same_disks(A, B)


if __name__ == "__main__":
    answer_commands(*sys.argv[1:])
