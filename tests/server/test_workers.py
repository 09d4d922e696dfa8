"""Several worker processes: clients sharded by MAC, one owner per overlay, on both transports.

A real server with `--workers 2`, clients whose MACs the steering program
(`fanout.py`) sends to different workers: on raw Ethernet (root) on a veth pair
whose far end sits in a network namespace, and on UDP over loopback (no root),
each client MAC always from one address of its own.
"""

import os
import random
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from difftest.server.netns import VethNamespace
from impl.server.config import DEFAULT_BUFFER_COUNT
from impl.server.control import SOCKET_NAME, request
from impl.server.config import TargetConfig as ServedTarget
from impl.server.fanout import owner_of, shared_addresses
from impl.server.frames import VERSION_SHIFT
from impl.server.initiator import Initiator, RawLink, Timeout, UdpLink, ata_body, client_mac, request_frame
from impl.server.workers import STOP_SECONDS
from spec.aoe.constants import (
    AOE_HEADER_BYTES,
    AOE_VERSION,
    ATA_ARG_BYTES,
    ETHERNET_HEADER_BYTES,
    MAC_BYTES,
    MASK_DIRECTIVE_BYTES,
    MAX_SECTOR_COUNT_FIELD,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    AtaStatus,
    ConfigCommand,
    HeaderFlag,
    MaskCommand,
    MaskDirective,
    MaskError,
    ReserveCommand,
    sectors_per_frame,
)
from spec.aoe.target import READ_SECTORS_EXT, WRITE_SECTORS_EXT, Port, TargetConfig, max_sectors

from tests.server.conftest import IMAGE_SECTORS, ROOT, SERVER_MAC, free_udp_port, image_bytes, run_cli
from tests.server.write_stream import STREAM_SECTORS, check_sectors, stream_writes_then_kill

TRANSPORTS = [
    pytest.param("raw", marks=[pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]),
    "udp",
]

WORKERS = 2
ZERO_CLIENT, ONE_CLIENT = client_mac(2), client_mac(1)  # served by worker 0 and worker 1
OTHER_ONE_CLIENT = client_mac(3)  # a second client of worker 1
NOISE_CLIENT = client_mac(9)  # sends malformed frames; its ATA commands reach worker 1, the rest worker 0
ETHERNET_MTU, JUMBO_MTU = 1500, 9000  # the veth pair's MTU: plain Ethernet, and jumbo frames
SPEC_TARGET = TargetConfig(0, 0, DEFAULT_BUFFER_COUNT)  # the served target as the spec describes it
VERSIONS = range(1 << VERSION_SHIFT)  # AoEr11 §2: the version is the first byte's high nibble
TAGS = 1 << 32  # AoEr11 §2: the tag is 32 bits
UNKNOWN_COMMANDS = range(AoeCommand.RESERVE_RELEASE + 1, 1 << 8)  # AoEr11 §2: command bytes no handler takes
BASE = image_bytes(IMAGE_SECTORS)
BEFORE = [BASE[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES] for lba in range(IMAGE_SECTORS)]
SILENCE_SECONDS = 0.3  # an answer on the veth pair takes milliseconds: none by then is none at all
PATIENT_SECONDS = 10.0  # an initiator that sends again only after this: a test counting requests sees each once


def sector(fill: bytes) -> bytes:
    return fill * SECTOR_BYTES


def listed(mask_answer) -> list[bytes]:
    """The MACs of a MAC Mask List answer's directives (AoEr11 §3.3: reserved, dcmd, MAC)."""
    data = mask_answer.data
    return [data[i + MASK_DIRECTIVE_BYTES - MAC_BYTES : i + MASK_DIRECTIVE_BYTES] for i in range(0, len(data), MASK_DIRECTIVE_BYTES)]


class Worker:
    """A worker process by pid, as `stream_writes_then_kill` kills it: through a pidfd, so neither
    the signal nor the wait can reach another process that reused the pid (it is not our child)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.fd = os.pidfd_open(pid)

    def send_signal(self, sig: int) -> None:
        signal.pidfd_send_signal(self.fd, sig)

    def wait(self, seconds: float | None = None) -> bool:
        """True once the process has exited; False if it still runs after `seconds`."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(None if seconds is None else seconds * 1000))

    def close(self) -> None:
        if not self.wait(0):
            self.send_signal(signal.SIGKILL)  # only if a failed test left it running
        os.close(self.fd)


class Workers:
    """`storvisor serve --workers 2`, started (and restarted) on one state directory: on raw Ethernet in a
    network namespace, with initiators on the host's end of its veth pair; or on UDP on one loopback port,
    each client MAC sent from one UDP address (the MAC belongs to the address that used it first)."""

    def __init__(self, tmp_path, transport: str, mtu: int = ETHERNET_MTU, extra: tuple[str, ...] = ()):
        self.tmp_path = tmp_path
        self.transport = transport
        self.mtu = mtu
        self.extra = ["--workers", str(WORKERS), *extra]
        self.net = VethNamespace(mtu) if transport == "raw" else None
        self.port = free_udp_port()
        self.image = tmp_path / "disk.img"
        self.image.write_bytes(BASE)
        self.state = str(tmp_path / "state")
        self.mac = self.net.far_mac() if self.net else SERVER_MAC
        self.links = []
        self.udp_links: dict[bytes, UdpLink] = {}
        self.process = None
        self.watched: list[Worker] = []
        self.starts = 0
        self.start()

    def start(self) -> None:
        """A server on the same state; ready once its control socket answers (a parent killed with
        SIGKILL leaves its socket file behind, which the new one replaces)."""
        self.starts += 1
        self.log = str(self.tmp_path / f"server-{self.starts}.log")
        if self.net:
            self.process = self.net.start_server(str(self.image), self.state, self.log, self.extra)
        else:
            argv = [sys.executable, "-m", "impl.cli", "serve", "--image", str(self.image), "--state", self.state, "--transport", "udp",
                    "--listen", f"127.0.0.1:{self.port}", "--mtu", str(self.mtu), *self.extra]
            with open(self.log, "w") as log:
                self.process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(self.state, "images", timeout=5)["ok"]:
                    return
            except ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {open(self.log).read()}")
            time.sleep(0.02)

    def client(self, mac: bytes, **options) -> Initiator:
        if self.net:
            link = RawLink(self.net.host_interface)
            self.links.append(link)
        else:
            link = self.udp_links.get(mac) or self.udp_links.setdefault(mac, UdpLink(("127.0.0.1", self.port)))
        return Initiator(link, mac, self.mac, **options)  # the initiator's own patience: a busy machine may be slow to answer

    def silent(self, mac: bytes) -> Initiator:
        """A client that asks once: for checking that a request gets no answer."""
        return self.client(mac, timeout=SILENCE_SECONDS, tries=1)

    def workers(self) -> list[int]:
        """The workers' pids in worker order, as the parent logs them."""
        return [int(pid) for pid in re.search(r"event=workers .*pids=(\S+)", open(self.log).read()).group(1).split(",")]

    def worker(self, index: int) -> Worker:
        worker = Worker(self.workers()[index])
        self.watched.append(worker)
        return worker

    def control_socket(self) -> str:
        return os.path.join(self.state, SOCKET_NAME)

    def close(self):
        for link in [*self.links, *self.udp_links.values()]:
            link.close()
        if self.net:
            self.net.close()
        elif self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS + 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for worker in self.watched:
            worker.close()


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture(params=TRANSPORTS)
def server(tmp_path, request):
    s = Workers(tmp_path, request.param)
    yield s
    s.close()


@pytest.fixture(params=TRANSPORTS)
def jumbo_server(tmp_path, request):
    s = Workers(tmp_path, request.param, JUMBO_MTU)
    yield s
    s.close()


def test_clients_of_different_workers_are_served_and_operated_on(server):
    assert owner_of(ZERO_CLIENT, WORKERS) == 0 and owner_of(ONE_CLIENT, WORKERS) == 1
    assert len(server.workers()) == WORKERS
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    zero.write(0, b"Z" * SECTOR_BYTES)
    one.write(0, b"O" * SECTOR_BYTES)
    assert zero.read(0, 1) == b"Z" * SECTOR_BYTES
    assert one.read(0, 1) == b"O" * SECTOR_BYTES
    rows = request(server.state, "clients")
    assert rows["ok"], rows
    assert [(row["client"], row["overlay_sectors"]) for row in rows["result"]] == [("02:00:00:00:00:01", 1), ("02:00:00:00:00:02", 1)]
    assert request(server.state, "client", mac="02:00:00:00:00:02")["result"][0]["overlay_sectors"] == 1
    assert request(server.state, "reset", mac="02:00:00:00:00:01")["ok"]
    assert one.read(0, 1) == image_bytes(1)
    assert zero.read(0, 1) == b"Z" * SECTOR_BYTES
    bad = request(server.state, "reset", mac="not a mac")
    assert not bad["ok"] and "not a MAC address" in bad["error"]
    assert request(server.state, "images")["ok"]
    server.process.terminate()  # SIGTERM: every worker flushes and stops, then the parent
    assert server.process.wait(15) == 0
    assert not os.path.exists(server.control_socket())
    assert "event=worker-exited" not in open(server.log).read()


def test_mask_list_and_reservation_set_on_one_worker_hold_on_the_other(server):
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    assert one.read(1, 1) == image_bytes(2)[SECTOR_BYTES:]
    # AoEr11 §3.3: a non-empty mask list admits only its initiators, whichever worker serves them
    edit = zero.mask(MaskCommand.EDIT, [(MaskDirective.ADD, ZERO_CLIENT)])
    assert not edit.flags & HeaderFlag.ERROR
    with pytest.raises(Timeout):
        one.read(1, 1)
    zero.mask(MaskCommand.EDIT, [(MaskDirective.DELETE, ZERO_CLIENT)])
    assert one.read(1, 1) == image_bytes(2)[SECTOR_BYTES:]
    # AoEr11 §3.4: a reservation held by another initiator refuses the command
    zero.reserve(ReserveCommand.SET, [ZERO_CLIENT])
    refused = one.ata(READ_SECTORS_EXT, 1, 1)
    assert refused.flags & HeaderFlag.ERROR and refused.error == AoeError.TARGET_RESERVED
    zero.reserve(ReserveCommand.FORCE_SET, [])
    assert one.read(1, 1) == image_bytes(2)[SECTOR_BYTES:]


def test_query_config_from_a_client_of_worker_1_is_answered_and_its_string_shared(server):
    one, zero = server.client(ONE_CLIENT), server.client(ZERO_CLIENT)
    # AoEr11 §3.2: the answer carries the buffer count and the sectors per command the target accepts
    config = one.query_config(ConfigCommand.SET_IF_EMPTY, b"set by worker 1's client")
    assert not config.flags & HeaderFlag.ERROR
    assert config.fields[:3] == (SPEC_TARGET.buffer_count, SPEC_TARGET.firmware_version, max_sectors(Port(server.mac, ETHERNET_MTU)))
    assert config.data == b"set by worker 1's client"
    # the config string belongs to the target, so a client of the other worker sees it and cannot replace it
    assert zero.query_config().data == b"set by worker 1's client"
    present = zero.query_config(ConfigCommand.SET_IF_EMPTY, b"another")
    assert present.flags & HeaderFlag.ERROR and present.error == AoeError.CONFIG_STRING_PRESENT
    assert server.client(OTHER_ONE_CLIENT).query_config(ConfigCommand.TEST_EXACT, b"set by worker 1's client").data == b"set by worker 1's client"
    # AoEr11 §3.2: a target whose string does not match stays silent
    with pytest.raises(Timeout):
        server.silent(OTHER_ONE_CLIENT).query_config(ConfigCommand.TEST_EXACT, b"another")


def test_requests_worker_0_answers_for_a_client_of_worker_1_count_in_its_row(server):
    """Query Config reaches worker 0 (fanout.py) whoever sends it: the operator sees it in the client's counts.
    The clients wait long before sending again, so every request is counted once."""
    one = server.client(ONE_CLIENT, timeout=PATIENT_SECONDS)
    one.query_config()
    one.query_config()
    one.write(2, sector(b"c"))
    assert one.read(2, 1) == sector(b"c")
    server.client(OTHER_ONE_CLIENT, timeout=PATIENT_SECONDS).query_config()  # a client that only asked: a row of counts alone
    rows = {row["client"]: row for row in request(server.state, "clients")["result"]}
    assert (rows["02:00:00:00:00:01"]["requests"], rows["02:00:00:00:00:01"]["overlay_sectors"]) == (4, 1)
    assert (rows["02:00:00:00:00:03"]["requests"], rows["02:00:00:00:00:03"]["image"]) == (1, None)
    assert not any("foreign" in row for row in rows.values())
    (row,) = request(server.state, "client", mac="02:00:00:00:00:01")["result"]
    assert row["requests"] == 4 and row["read_bytes"] == row["written_bytes"] == SECTOR_BYTES and "foreign" not in row


def test_mask_list_edited_by_a_client_of_worker_1_holds_on_both_workers(server):
    one, zero, other = server.client(ONE_CLIENT), server.client(ZERO_CLIENT), server.client(OTHER_ONE_CLIENT)
    # AoEr11 §3.3: a non-empty mask list admits only the initiators on it, to every command
    edit = one.mask(MaskCommand.EDIT, [(MaskDirective.ADD, ONE_CLIENT)])
    assert not edit.flags & HeaderFlag.ERROR and edit.fields[1] == MaskError.NONE and listed(edit) == [ONE_CLIENT]
    assert one.read(1, 1) == BEFORE[1]
    assert one.query_config().fields[0] == SPEC_TARGET.buffer_count
    for mac in (ZERO_CLIENT, OTHER_ONE_CLIENT):
        with pytest.raises(Timeout):
            server.silent(mac).read(1, 1)
        with pytest.raises(Timeout):
            server.silent(mac).query_config()
    edit = one.mask(MaskCommand.EDIT, [(MaskDirective.ADD, ZERO_CLIENT), (MaskDirective.DELETE, ONE_CLIENT)])
    assert not edit.flags & HeaderFlag.ERROR and listed(edit) == [ZERO_CLIENT]
    assert zero.read(1, 1) == BEFORE[1]
    assert listed(zero.mask(MaskCommand.READ)) == [ZERO_CLIENT]
    for mac in (ONE_CLIENT, OTHER_ONE_CLIENT):
        with pytest.raises(Timeout):
            server.silent(mac).read(1, 1)
        with pytest.raises(Timeout):
            server.silent(mac).mask(MaskCommand.EDIT, [(MaskDirective.DELETE, ZERO_CLIENT)])
    # an empty list admits everyone again (AoEr11 §3.3)
    assert listed(zero.mask(MaskCommand.EDIT, [(MaskDirective.DELETE, ZERO_CLIENT)])) == []
    assert one.read(1, 1) == other.read(1, 1) == zero.read(1, 1) == BEFORE[1]


def test_reservation_set_by_a_client_of_worker_1_holds_on_both_workers(server):
    one, zero, other = server.client(ONE_CLIENT), server.client(ZERO_CLIENT), server.client(OTHER_ONE_CLIENT)
    reserved = one.reserve(ReserveCommand.SET, [ONE_CLIENT])
    assert not reserved.flags & HeaderFlag.ERROR and reserved.data == ONE_CLIENT
    assert one.read(1, 1) == BEFORE[1]
    # AoEr11 §3.4: a reservation answers everyone else's ATA commands TARGET_RESERVED
    for client in (zero, other):
        refused = client.ata(READ_SECTORS_EXT, 1, 1)
        assert refused.flags & HeaderFlag.ERROR and refused.error == AoeError.TARGET_RESERVED
    # AoEr11 §3.4: only a holder may change it with SET; anyone may read it
    refused = zero.reserve(ReserveCommand.SET, [])
    assert refused.flags & HeaderFlag.ERROR and refused.error == AoeError.TARGET_RESERVED
    assert zero.reserve(ReserveCommand.READ).data == ONE_CLIENT
    assert one.reserve(ReserveCommand.SET, [ONE_CLIENT, ZERO_CLIENT]).data == ONE_CLIENT + ZERO_CLIENT
    assert zero.read(1, 1) == one.read(1, 1) == BEFORE[1]
    refused = other.ata(READ_SECTORS_EXT, 1, 1)
    assert refused.flags & HeaderFlag.ERROR and refused.error == AoeError.TARGET_RESERVED
    released = one.reserve(ReserveCommand.SET, [])
    assert not released.flags & HeaderFlag.ERROR and released.data == b""
    assert other.read(1, 1) == zero.read(1, 1) == BEFORE[1]


def test_four_times_the_buffer_count_of_reads_from_clients_of_both_workers_are_all_answered(server):
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    config = one.query_config()
    buffer_count, sectors = config.fields[0], config.fields[2]
    disks = {}
    for client, fill in ((zero, b"z"), (one, b"o")):
        client.write(0, sector(fill) * sectors)
        disks[client.mac] = sector(fill) * sectors + BASE[sectors * SECTOR_BYTES :]
    # AoEr11 §3.2: the buffer count is what the target promises to queue; more are queued by the socket, not dropped
    requests = 4 * buffer_count
    for tag in range(requests):
        for client in (zero, one):
            lba = tag * sectors % (IMAGE_SECTORS - sectors)
            client.send_only(request_frame(server.mac, client.mac, 0, 0, AoeCommand.ATA, tag, ata_body(READ_SECTORS_EXT, lba, sectors)))
    for client in (zero, one):
        answers = {}
        deadline = time.monotonic() + 5
        while len(answers) < requests and time.monotonic() < deadline:
            answers.update((r.tag, r) for r in client.collect(0.05))
        assert sorted(answers) == list(range(requests)), f"{requests - len(answers)} reads unanswered"
        for tag, r in answers.items():
            lba = tag * sectors % (IMAGE_SECTORS - sectors)
            assert not r.flags & HeaderFlag.ERROR and not r.fields[3] & AtaStatus.ERR
            assert r.data[: sectors * SECTOR_BYTES] == disks[client.mac][lba * SECTOR_BYTES : (lba + sectors) * SECTOR_BYTES]


def malformed_frames(rng: random.Random, server_mac: bytes, mtu: int, count: int) -> list[bytes]:
    """Truncated, wrong-version, oversized (up to the MTU) and garbage AoE frames from NOISE_CLIENT.
    Mask list and reserve commands come only cut short: garbage that happened to be a valid edit
    would change what the target admits (AoEr11 §3.3, §3.4), which is not what this checks."""
    header = ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES
    frames = []
    for _ in range(count):
        command = rng.choice([AoeCommand.ATA, AoeCommand.QUERY_CONFIG, rng.choice(UNKNOWN_COMMANDS)])
        tag = rng.randrange(TAGS)
        kind = rng.randrange(4)
        if kind == 0:  # cut inside the AoE header or the argument, whatever the command
            whole = request_frame(server_mac, NOISE_CLIENT, 0, 0, rng.randrange(AoeCommand.RESERVE_RELEASE + 1), tag, ata_body(READ_SECTORS_EXT, 0, 1))
            frames.append(whole[: rng.randrange(ETHERNET_HEADER_BYTES, header + ATA_ARG_BYTES)])
        elif kind == 1:  # AoEr11 §2: a version this target does not speak
            version = rng.choice([v for v in VERSIONS if v != AOE_VERSION])
            frames.append(request_frame(server_mac, NOISE_CLIENT, 0, 0, command, tag, ata_body(READ_SECTORS_EXT, 0, 1), version=version))
        elif kind == 2:  # as long as the MTU allows: a write of more sectors than Query Config advertises
            body = ata_body(WRITE_SECTORS_EXT, rng.randrange(IMAGE_SECTORS), MAX_SECTOR_COUNT_FIELD, write=True)
            frame = request_frame(server_mac, NOISE_CLIENT, 0, 0, command, tag, body)
            frames.append(frame + rng.randbytes(ETHERNET_HEADER_BYTES + mtu - len(frame)))
        else:  # random bytes after a header
            frame = request_frame(server_mac, NOISE_CLIENT, 0, 0, command, tag, flags=rng.randrange(HeaderFlag.RESPONSE))
            frames.append(frame + rng.randbytes(rng.randrange(mtu - AOE_HEADER_BYTES + 1)))
    return frames


def test_malformed_frames_from_one_source_stall_and_kill_no_worker(server):
    zero, one, noise = server.client(ZERO_CLIENT), server.client(ONE_CLIENT), server.client(NOISE_CLIENT)
    workers = [server.worker(index) for index in range(WORKERS)]
    rng = random.Random(5)
    for round_ in range(20):
        for frame in malformed_frames(rng, server.mac, ETHERNET_MTU, 50):
            noise.send_only(frame)
        # clients of both workers are answered between the bursts
        assert zero.read(round_, 1) == BEFORE[round_]
        assert one.read(round_, 1) == BEFORE[round_]
    # AoEr11 §2: a version it does not speak is refused by the worker each command goes to (fanout.py)
    refused = {r.command == AoeCommand.ATA for r in noise.collect(SILENCE_SECONDS) if r.error == AoeError.UNSUPPORTED_VERSION}
    assert refused == {True, False}, "the noise reached both workers"
    zero.write(7, sector(b"z"))
    one.write(7, sector(b"o"))
    assert zero.read(7, 1) == sector(b"z") and one.read(7, 1) == sector(b"o")
    # the sender of the noise is answered as the spec says, too
    wrong = noise.exchange(AoeCommand.ATA, ata_body(READ_SECTORS_EXT, 0, 1), version=AOE_VERSION + 1)
    assert wrong.flags & HeaderFlag.ERROR and wrong.error == AoeError.UNSUPPORTED_VERSION
    assert noise.read(0, 1) == BEFORE[0]
    assert server.process.poll() is None and not any(worker.wait(0) for worker in workers)
    assert "event=worker-" not in open(server.log).read()  # no worker failed, exited or was killed


def test_a_full_jumbo_frame_read_and_write_on_clients_of_both_workers(jumbo_server):
    server = jumbo_server
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    sectors = sectors_per_frame(JUMBO_MTU)
    assert one.query_config().fields[2] == zero.query_config().fields[2] == sectors  # AoEr11 §3.2
    for client, seed in ((zero, 3), (one, 4)):
        data = image_bytes(sectors, seed)
        assert client.read(IMAGE_SECTORS - sectors, sectors) == BASE[-sectors * SECTOR_BYTES :]
        client.write(IMAGE_SECTORS - sectors, data)
        assert client.read(IMAGE_SECTORS - sectors, sectors) == data
        # AoEr11 §3.2: one sector more than Query Config advertised is a bad argument, read or write
        too_many = client.ata(READ_SECTORS_EXT, 0, sectors + 1)
        assert too_many.flags & HeaderFlag.ERROR and too_many.error == AoeError.BAD_ARGUMENT
        too_many = client.ata(WRITE_SECTORS_EXT, 0, sectors + 1, data, write=True)
        assert too_many.flags & HeaderFlag.ERROR and too_many.error == AoeError.BAD_ARGUMENT
    assert zero.read(IMAGE_SECTORS - sectors, sectors) == image_bytes(sectors, 3)
    assert zero.read(0, 1) == one.read(0, 1) == BEFORE[0]


def test_a_worker_killed_during_a_write_stream_stops_the_server_and_loses_no_acknowledged_write(server):
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    zero.write(3, sector(b"k"))
    worker = server.worker(owner_of(ONE_CLIENT, WORKERS))
    last_acknowledged, sent, unflushed = stream_writes_then_kill(worker, one, 0, 0.5)
    assert len(last_acknowledged) == STREAM_SECTORS and unflushed > 0, "the kill landed mid-stream, after unflushed writes"
    # a worker that exits stops the whole server (status 1); the others flush their overlays
    assert server.process.wait(STOP_SECONDS + 5) == 1
    assert f"event=worker-exited worker={owner_of(ONE_CLIENT, WORKERS)}" in open(server.log).read()
    assert not os.path.exists(server.control_socket())
    server.start()
    check_sectors(server.client(ONE_CLIENT), IMAGE_SECTORS, BEFORE, last_acknowledged, sent)
    assert server.client(ZERO_CLIENT).read(3, 1) == sector(b"k")


def test_kill_9_of_the_parent_during_a_write_stream_stops_the_workers_and_loses_no_acknowledged_write(server):
    zero, one = server.client(ZERO_CLIENT), server.client(ONE_CLIENT)
    workers = [server.worker(index) for index in range(WORKERS)]
    zero.write(3, sector(b"k"))
    last_acknowledged, sent, unflushed = stream_writes_then_kill(server.process, one, 0, 0.5)
    assert len(last_acknowledged) == STREAM_SECTORS and unflushed > 0, "the kill landed mid-stream, after unflushed writes"
    # each worker sees its connection to the parent close, flushes its overlays and exits, releasing the state
    assert all(worker.wait(STOP_SECONDS) for worker in workers), "workers outlived their parent"
    server.start()
    check_sectors(server.client(ONE_CLIENT), IMAGE_SECTORS, BEFORE, last_acknowledged, sent)
    assert server.client(ZERO_CLIENT).read(3, 1) == sector(b"k")


def test_the_clients_of_a_dead_worker_are_answered_by_no_other_worker(server):
    one = server.client(ONE_CLIENT)
    one.write(5, sector(b"a"))
    worker = server.worker(owner_of(ONE_CLIENT, WORKERS))
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(STOP_SECONDS)
    # each overlay has one owner process (fanout.py): until the server stops, no other worker opens it
    with pytest.raises(Timeout):
        server.silent(ONE_CLIENT).write(5, sector(b"b"))
    assert server.process.wait(STOP_SECONDS + 5) == 1


@pytest.mark.parametrize("workers", [1, WORKERS])
def test_a_udp_port_held_by_workers_is_busy_for_another_server(tmp_path, workers):
    """Workers share their port with SO_REUSEPORT, which a second server's sockets could silently join:
    the address is bound alone first, so the second server stops with the busy-port error instead."""
    held = Workers(tmp_path, "udp")
    try:
        other = run_cli("serve", "--image", str(held.image), "--state", str(tmp_path / "other"), "--listen", f"127.0.0.1:{held.port}",
                        "--workers", str(workers), timeout=30)
        assert other.returncode != 0 and "is busy" in other.stderr, other.stderr
        assert held.client(ZERO_CLIENT).read(0, 1) == BEFORE[0] and held.client(ONE_CLIENT).read(0, 1) == BEFORE[0]
    finally:
        held.close()


def test_one_clients_reads_of_a_read_only_image_are_answered_by_every_worker_on_raw_ethernet(tmp_path, transport):
    """At an address only read-only targets serve, no client has an overlay, so on raw Ethernet the steering
    program sends each ATA command to the worker its tag names (fanout.py): one client's reads keep both
    workers busy. On UDP they stay with the MAC's worker, which alone decides which address owns the MAC."""
    server = Workers(tmp_path, transport, extra=("--read-only",))
    try:
        one = server.client(ONE_CLIENT, timeout=PATIENT_SECONDS)  # no request sent twice: the counts are exact
        for lba in range(32):
            assert one.read(lba, 1) == BEFORE[lba]
        opened = re.findall(r"event=client-disk client=02:00:00:00:00:01 .*read_only=True", open(server.log).read())
        assert len(opened) == (WORKERS if transport == "raw" else 1), "the workers that opened the client's disk to answer its reads"
        refused = one.ata(WRITE_SECTORS_EXT, 3, 1, sector(b"w"), write=True)
        assert refused.fields[3] & AtaStatus.ERR and one.read(3, 1) == BEFORE[3]
        (row,) = request(server.state, "clients")["result"]
        assert (row["requests"], row["read_bytes"], row["errors"]) == (34, 33 * SECTOR_BYTES, 1), "both workers' counts, merged"
    finally:
        server.close()


def test_only_addresses_every_target_of_which_is_read_only_are_shared():
    targets = [ServedTarget(0, 0, "a", None, read_only=True), ServedTarget(0, 1, "a", None, read_only=True),
               ServedTarget(0, 1, "b", frozenset({ONE_CLIENT})), ServedTarget(2, 3, "a", frozenset({ONE_CLIENT}), read_only=True)]
    assert shared_addresses(targets) == [(0, 0), (2, 3)]
