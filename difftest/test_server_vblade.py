"""Our server against vblade over real Ethernet: veth pairs, network namespaces, AF_PACKET.

Both targets run at once, each on its own veth pair, over copies of one image;
every request goes to both and the answers are compared where vblade
implements the standard. Where it does not, `test_documented_differences`
checks that the difference is exactly the one listed in impl/server/README.md.
"""

import os
import random
import time

import pytest

from difftest.server.netns import VethNamespace
from impl.server.initiator import RawLink, ata_body, parse_response, request_frame, wait_readable
from spec.aoe.constants import SECTOR_BYTES, AoeCommand, AoeError, HeaderFlag

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

SECTORS = 128
CLIENTS = [bytes.fromhex(f"0200000000{i:02x}") for i in range(1, 4)]
ANSWER_SECONDS = 0.1  # veth answers within a millisecond; silence is the answer after this
LATE_ANSWER_SECONDS = 3.0  # when only one peer answered, how long the other may take on a busy machine


class Peer:
    """One target (ours or vblade) on its own veth pair, and a raw link to it."""

    def __init__(self, tmp_path, kind: str, image: bytes, mtu: int = 1500):
        self.kind = kind
        self.net = VethNamespace(mtu)
        self.image = str(tmp_path / f"{kind}.img")
        with open(self.image, "wb") as f:
            f.write(image)
        log = str(tmp_path / f"{kind}.log")
        if kind == "vblade":
            self.net.start_vblade(self.image, log)
        else:
            self.net.start_server(self.image, str(tmp_path / "state"), log)
        self.mac = self.net.far_mac()
        self.link = RawLink(self.net.host_interface)

    def ask(self, frame: bytes, tag: int, seconds: float = ANSWER_SECONDS):
        self.link.send(self.mac + frame[6:])
        return self.wait(tag, seconds)

    def wait(self, tag: int, seconds: float):
        """The answer with this tag, if one arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            wait_readable(self.link, left)
            while (raw := self.link.receive()) is not None:
                r = parse_response(raw)
                if r is not None and r.tag == tag:
                    return r
        return None

    def close(self):
        self.link.close()
        self.net.close()


@pytest.fixture
def peers(tmp_path, request):
    image = random.Random(7).randbytes(SECTORS * SECTOR_BYTES)
    mtu = getattr(request, "param", 1500)
    started = []
    try:
        for kind in ("ours", "vblade"):
            started.append(Peer(tmp_path, kind, image, mtu))
        yield started
    finally:
        for peer in started:
            peer.close()


def comparable(r, request_command: int | None, request_count: int = 0):
    """The fields vblade and the standard agree on; see impl/server/README.md for the rest."""
    if r is None:
        return None
    key = [r.flags, r.error, r.command, r.tag, r.major, r.minor]
    if r.flags & HeaderFlag.ERROR:
        return tuple(key)
    if r.command == AoeCommand.ATA:
        aflags, err, count, status, lba = r.fields
        succeeded_transfer = status == 0x40 and request_command in (0x20, 0x24, 0x30, 0x34, 0xEC)
        key += [aflags, err, None if succeeded_transfer else count, status, lba]
        if request_command in (0x20, 0x24) and status == 0x40:
            key.append(r.data[: request_count * SECTOR_BYTES])
        if request_command == 0xEC:
            key.append(r.data[120:124] + r.data[200:208])  # words 60-61 and 100-103: the capacity
    elif r.command == AoeCommand.QUERY_CONFIG:
        buffers, _firmware, sectors, vercmd, _length = r.fields
        key += [buffers, sectors, vercmd, r.data]
    else:
        key += [r.fields, r.data]
    return tuple(key)


def standard_stream(rng: random.Random, length: int):
    """Requests whose answers the standard fixes and vblade implements."""
    for tag in range(1, length + 1):
        src = rng.choice(CLIENTS)
        kind = rng.random()
        if kind < 0.6:
            cmd = rng.choice([0x20, 0x24, 0x30, 0x34])
            count = rng.choice([1, 2])
            lba = rng.choice([rng.randrange(SECTORS - 2), SECTORS - 1, SECTORS, SECTORS + 5])
            writing = cmd in (0x30, 0x34)
            data = bytes([rng.randrange(256)]) * (count * SECTOR_BYTES) if writing else b""
            command, body, ata = AoeCommand.ATA, ata_body(cmd, lba, count, data, write=writing, extended=cmd in (0x24, 0x34)), cmd
            src = CLIENTS[0]  # vblade's clients share one disk; ours each have their own overlay
        elif kind < 0.7:
            ata = rng.choice([0xEC, 0xE5, 0x99])
            command, body = AoeCommand.ATA, ata_body(ata, 0, 1 if ata == 0xEC else 0)
            src = CLIENTS[0]
        elif kind < 0.82:
            ccmd = rng.choice([0, 0, 1, 2, 3, 4])
            string = rng.choice([b"", b"s", b"st", b"storvisor"])
            command, body, ata = AoeCommand.QUERY_CONFIG, bytes([0, 0, 0, 0, 0, 0x10 | ccmd]) + len(string).to_bytes(2, "big") + string, None
        elif kind < 0.9:
            directives = [(rng.choice([0, 1, 2]), rng.choice(CLIENTS)) for _ in range(rng.randrange(3))]
            if rng.random() < 0.5:
                directives = [(2, c) for c in CLIENTS]  # clear the list again so every client keeps talking
            mcmd = rng.choice([0, 1])
            command, body, ata = AoeCommand.MAC_MASK_LIST, bytes([0, mcmd, 0, len(directives)]) + b"".join(bytes([0, d]) + m for d, m in directives), None
        elif kind < 0.97:
            rcmd = rng.choice([0, 1, 2, 1])
            macs = rng.sample(CLIENTS, rng.randrange(2)) if rng.random() < 0.7 else []
            command, body, ata = AoeCommand.RESERVE_RELEASE, bytes([rcmd, len(macs)]) + b"".join(macs), None
        else:
            command, body, ata = 0xF1, b"", None
        yield tag, request_frame(b"\xff" * 6, src, 0, 0, command, tag, body), ata


def test_same_answers_as_vblade_on_a_standard_stream(peers):
    ours, vblade = peers
    compared = 0
    for tag, frame, ata in standard_stream(random.Random(2026), 250):
        mine, theirs = ours.ask(frame, tag), vblade.ask(frame, tag)
        if mine is None and theirs is not None:
            mine = ours.wait(tag, LATE_ANSWER_SECONDS)
        if theirs is None and mine is not None:
            theirs = vblade.wait(tag, LATE_ANSWER_SECONDS)
        count = frame[26] if len(frame) > 26 else 0
        assert comparable(mine, ata, count) == comparable(theirs, ata, count), f"request {tag} {frame[:40].hex()}: ours {str(mine)[:300]} vblade {str(theirs)[:300]}"
        compared += theirs is not None
    assert compared > 150


def ask_both(peers, body, command=AoeCommand.ATA, tag=1, seconds=1.0, **frame_options):
    frame = request_frame(b"\xff" * 6, CLIENTS[0], 0, 0, command, tag, body, **frame_options)
    return [peer.ask(frame, tag, seconds) for peer in peers]


def test_documented_differences(peers):
    """Each row of the README's table of differences, as observed."""
    # successful transfers: vblade reports the sectors left (0), we echo the request's count (as spec.aoe)
    mine, theirs = ask_both(peers, ata_body(0x24, 0, 2))
    assert (mine.fields[2], theirs.fields[2]) == (2, 0) and mine.data[:1024] == theirs.data[:1024]
    # two clients: vblade serves both the same disk, ours gives each its own overlay
    ask_both(peers, ata_body(0x34, 3, 1, b"1" * 512, write=True), tag=11)
    frame = request_frame(b"\xff" * 6, CLIENTS[1], 0, 0, AoeCommand.ATA, 12, ata_body(0x24, 3, 1))
    mine, theirs = (peer.ask(frame, 12, 1.0) for peer in peers)
    assert theirs.data[:512] == b"1" * 512 and mine.data[:512] != b"1" * 512
    # FLUSH CACHE: vblade answers status 0 without syncing; we sync and answer DRDY
    mine, theirs = ask_both(peers, ata_body(0xE7, 0, 0), tag=2)
    assert (mine.fields[3], theirs.fields[3]) == (0x40, 0x00)
    # FLUSH CACHE EXT: vblade aborts it; we sync and answer DRDY
    mine, theirs = ask_both(peers, ata_body(0xEA, 0, 0), tag=3)
    assert (mine.fields[3], theirs.fields[3], theirs.fields[1]) == (0x40, 0x41, 0x04)
    # a version other than 1: vblade answers as if it were 1; we answer UNSUPPORTED_VERSION
    mine, theirs = ask_both(peers, ata_body(0x24, 0, 1), tag=4, version=2)
    assert (mine.error, theirs.error, theirs.fields[3]) == (AoeError.UNSUPPORTED_VERSION, 0, 0x40)
    # sector count 0: vblade transfers nothing and succeeds; we answer BAD_ARGUMENT
    mine, theirs = ask_both(peers, ata_body(0x24, 0, 0), tag=5)
    assert (mine.error, theirs.error, theirs.fields[3]) == (AoeError.BAD_ARGUMENT, 0, 0x40)
    # a write without the W flag: vblade writes anyway; we answer BAD_ARGUMENT
    mine, theirs = ask_both(peers, ata_body(0x34, 0, 1, b"w" * 512, write=False), tag=6)
    assert (mine.error, theirs.error) == (AoeError.BAD_ARGUMENT, 0)
    # a config string longer than 1024: vblade stays silent; we answer BAD_ARGUMENT
    mine, theirs = ask_both(peers, bytes([0, 0, 0, 0, 0, 0x14]) + (1100).to_bytes(2, "big") + b"x" * 1100, command=AoeCommand.QUERY_CONFIG, tag=7)
    assert (mine.error, theirs) == (AoeError.BAD_ARGUMENT, None)
    # a mask edit with a bad directive: vblade keeps the edits before it; ours changes nothing
    edit = bytes([0, 1, 0, 2]) + bytes([0, 1]) + CLIENTS[0] + bytes([0, 9]) + CLIENTS[1]
    mine, theirs = ask_both(peers, edit, command=AoeCommand.MAC_MASK_LIST, tag=8)
    assert mine.fields[1:] == theirs.fields[1:] == (2, 1)
    mine, theirs = ask_both(peers, bytes([0, 0, 0, 0]), command=AoeCommand.MAC_MASK_LIST, tag=9)
    assert (mine.fields[2], theirs.fields[2]) == (0, 1)
    # Query Config's firmware version: each reports its own
    mine, theirs = ask_both(peers, bytes(8), command=AoeCommand.QUERY_CONFIG, tag=10)
    assert mine.fields[1] == 1 and theirs.fields[1] == 0x4000 + 25


@pytest.mark.parametrize("peers", [9000], indirect=True)
def test_jumbo_frames_carry_17_sectors_on_both(peers):
    """AoEr11 §3.1: (9000 − 36) // 512 = 17 sectors per frame, advertised and served by both."""
    mine, theirs = ask_both(peers, bytes(8), command=AoeCommand.QUERY_CONFIG, tag=1)
    assert mine.fields[2] == theirs.fields[2] == 17
    data = bytes(range(256)) * 34
    mine, theirs = ask_both(peers, ata_body(0x34, 10, 17, data, write=True), tag=2)
    assert mine.fields[3] == theirs.fields[3] == 0x40
    mine, theirs = ask_both(peers, ata_body(0x24, 10, 17), tag=3)
    assert mine.data[: 17 * SECTOR_BYTES] == theirs.data[: 17 * SECTOR_BYTES] == data
    mine, theirs = ask_both(peers, ata_body(0x24, 10, 18), tag=4)
    assert mine.error == AoeError.BAD_ARGUMENT and theirs.error == AoeError.BAD_ARGUMENT
