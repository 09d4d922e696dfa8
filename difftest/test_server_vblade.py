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
from impl.server.frames import ATA_HEADER_BYTES, CONFIG_ARG, HEADER_BYTES, MASK_ARG, MASK_DIRECTIVE, VERSION_SHIFT
from impl.server.initiator import RawLink, ata_body, parse_response, request_frame, wait_readable
from spec.aoe.constants import (
    AOE_VERSION,
    CONFIG_STRING_MAX,
    ETHERNET_MIN_FRAME_BYTES,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    AtaErrorBit,
    AtaStatus,
    ConfigCommand,
    HeaderFlag,
    MaskCommand,
    MaskDirective,
    MaskError,
)
from spec.aoe.identify import identify_device_data
from spec.aoe.target import FLUSH_CACHE, FLUSH_CACHE_EXT, IDENTIFY_DEVICE, READ_SECTORS_EXT, WRITE_SECTORS_EXT, TargetConfig

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

SECTORS = 128
CLIENTS = [bytes.fromhex(f"0200000000{i:02x}") for i in range(1, 4)]
ANSWER_SECONDS = 0.1  # veth answers within a millisecond; silence is the answer after this
LATE_ANSWER_SECONDS = 3.0  # when only one peer answered, how long the other may take on a busy machine
IMAGE = random.Random(7).randbytes(SECTORS * SECTOR_BYTES)


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
        raw = self.ask_raw(frame, tag, seconds)
        return None if raw is None else parse_response(raw)

    def ask_raw(self, frame: bytes, tag: int, seconds: float = ANSWER_SECONDS) -> bytes | None:
        """The answering frame, byte for byte."""
        self.link.send(self.mac + frame[6:])
        return self.wait_raw(tag, seconds)

    def wait(self, tag: int, seconds: float):
        raw = self.wait_raw(tag, seconds)
        return None if raw is None else parse_response(raw)

    def wait_raw(self, tag: int, seconds: float) -> bytes | None:
        """The frame answering this tag, if one arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            wait_readable(self.link, left)
            while (raw := self.link.receive()) is not None:
                r = parse_response(raw)
                if r is not None and r.tag == tag:
                    return raw
        return None

    def close(self):
        self.link.close()
        self.net.close()


@pytest.fixture
def peers(tmp_path, request):
    mtu = getattr(request, "param", 1500)
    started = []
    try:
        for kind in ("ours", "vblade"):
            started.append(Peer(tmp_path, kind, IMAGE, mtu))
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


MODEL_WORDS = (27, 20)  # ATA/ATAPI-7 V1 §6.16, IDENTIFY DEVICE: words 27-46, the model number
VBLADE_MODEL = "Coraid EtherDrive vblade"
VBLADE_FIRMWARE_VERSION = 0x4000 + 25  # vblade reports 0x4000 plus its version in Query Config
BAD_DIRECTIVE = 9  # AoEr11 §3.3 defines Dir Commands 0-2 only


def ask_both(peers, body, command=AoeCommand.ATA, tag=1, seconds=1.0, src=CLIENTS[0], **frame_options):
    frame = request_frame(b"\xff" * 6, src, 0, 0, command, tag, body, **frame_options)
    return [peer.ask(frame, tag, seconds) for peer in peers]


def sector(lba: int) -> bytes:
    """One sector of the base image both targets start from."""
    return IMAGE[lba * SECTOR_BYTES : (lba + 1) * SECTOR_BYTES]


def ata_succeeded(r) -> bool:
    """An ATA answer without an AoE error, Status DRDY alone and the Error register clear (AoEr11 §3.1)."""
    return r is not None and not r.flags & HeaderFlag.ERROR and r.fields[3] == AtaStatus.DRDY and r.fields[1] == 0


def refused(r, error: AoeError) -> bool:
    """An AoE error answer (E flag) with this error code (AoEr11 §2)."""
    return r is not None and bool(r.flags & HeaderFlag.ERROR) and r.error == error


def config_body(ccmd: ConfigCommand, string: bytes, length: int | None = None) -> bytes:
    """A Query Config argument (AoEr11 §3.2) whose String Length is `length`, the string's own by default."""
    length = len(string) if length is None else length
    return CONFIG_ARG.pack(0, 0, 0, AOE_VERSION << VERSION_SHIFT | ccmd, length) + string


def mask_body(mcmd: MaskCommand, *directives: tuple[int, bytes]) -> bytes:
    """A MAC Mask List argument (AoEr11 §3.3) with these (Dir Command, MAC) directives."""
    return MASK_ARG.pack(mcmd, MaskError.NONE, len(directives)) + b"".join(MASK_DIRECTIVE.pack(dcmd, mac) for dcmd, mac in directives)


def ata_text(identify: bytes, first_word: int, words: int) -> str:
    """An ATA string of IDENTIFY DEVICE data: the two bytes of each word swapped, space padded (ATA/ATAPI-7 V1 §6.16)."""
    raw = identify[2 * first_word : 2 * (first_word + words)]
    return bytes(b for i in range(0, len(raw), 2) for b in (raw[i + 1], raw[i])).decode("ascii").rstrip(" ")


def check_each_client_has_its_own_overlay(peers):
    # vblade serves every client one disk; ours writes into the writing client's overlay only
    written = b"1" * SECTOR_BYTES
    mine, theirs = ask_both(peers, ata_body(WRITE_SECTORS_EXT, 3, 1, written, write=True), tag=10)
    assert ata_succeeded(mine) and ata_succeeded(theirs)
    mine, theirs = ask_both(peers, ata_body(READ_SECTORS_EXT, 3, 1), tag=11, src=CLIENTS[1])
    assert ata_succeeded(mine) and ata_succeeded(theirs)
    assert (mine.data[:SECTOR_BYTES], theirs.data[:SECTOR_BYTES]) == (sector(3), written)
    mine, theirs = ask_both(peers, ata_body(READ_SECTORS_EXT, 3, 1), tag=12)
    assert ata_succeeded(mine) and mine.data[:SECTOR_BYTES] == theirs.data[:SECTOR_BYTES] == written


def check_successful_transfers_echo_the_count(peers):
    # spec.aoe echoes the request's registers; vblade reports the sectors left, 0
    requests = [
        (ata_body(READ_SECTORS_EXT, 0, 2), 2),
        (ata_body(WRITE_SECTORS_EXT, 5, 2, b"5" * 2 * SECTOR_BYTES, write=True), 2),
        (ata_body(IDENTIFY_DEVICE, 0, 1), 1),
    ]
    for tag, (body, count) in enumerate(requests, start=20):
        mine, theirs = ask_both(peers, body, tag=tag)
        assert ata_succeeded(mine) and ata_succeeded(theirs)
        assert (mine.fields[2], theirs.fields[2]) == (count, 0)


def check_flushes_answer_drdy(peers):
    # ATA/ATAPI-7 V1 §6, FLUSH CACHE: DRDY once written data is on the medium; vblade answers status 0
    mine, theirs = ask_both(peers, ata_body(FLUSH_CACHE, 0, 0), tag=30)
    assert ata_succeeded(mine) and not theirs.flags & HeaderFlag.ERROR and (theirs.fields[1], theirs.fields[3]) == (0, 0)
    # ATA/ATAPI-7 V1 §6, FLUSH CACHE EXT: the LBA48 flush; vblade does not know it and aborts it
    mine, theirs = ask_both(peers, ata_body(FLUSH_CACHE_EXT, 0, 0), tag=31)
    assert ata_succeeded(mine) and (theirs.fields[1], theirs.fields[3]) == (AtaErrorBit.ABRT, AtaStatus.DRDY | AtaStatus.ERR)


def check_other_versions_are_refused(peers):
    # AoEr11 §2: a target answers only the version it implements; vblade reads as if the version were 1
    mine, theirs = ask_both(peers, ata_body(READ_SECTORS_EXT, 0, 1), tag=40, version=AOE_VERSION + 1)
    assert refused(mine, AoeError.UNSUPPORTED_VERSION)
    assert ata_succeeded(theirs) and theirs.data[:SECTOR_BYTES] == sector(0)


def check_sector_count_zero_is_refused(peers):
    # ATA/ATAPI-7 V1 §6, READ SECTORS EXT: count 0 means 65536 sectors, above any maximum; vblade transfers nothing and succeeds
    mine, theirs = ask_both(peers, ata_body(READ_SECTORS_EXT, 0, 0), tag=41)
    assert refused(mine, AoeError.BAD_ARGUMENT)
    assert ata_succeeded(theirs) and len(theirs.data) < SECTOR_BYTES


def check_the_w_flag_must_match_the_command(peers):
    # AoEr11 §3.1: W says whether data follows; vblade goes by the command code and writes anyway
    written = b"w" * SECTOR_BYTES
    mine, theirs = ask_both(peers, ata_body(WRITE_SECTORS_EXT, 7, 1, written, write=False), tag=50)
    assert refused(mine, AoeError.BAD_ARGUMENT) and ata_succeeded(theirs)
    mine, theirs = ask_both(peers, ata_body(READ_SECTORS_EXT, 7, 1), tag=51)
    assert (mine.data[:SECTOR_BYTES], theirs.data[:SECTOR_BYTES]) == (sector(7), written)
    # a read with W: vblade reads, but sizes its answer as a write's, a minimum frame with the sector's first bytes
    mine, theirs = ask_both(peers, ata_body(READ_SECTORS_EXT, 9, 1, write=True), tag=52)
    assert refused(mine, AoeError.BAD_ARGUMENT)
    assert ata_succeeded(theirs) and theirs.data == sector(9)[: ETHERNET_MIN_FRAME_BYTES - ATA_HEADER_BYTES]


def check_bad_config_strings_are_refused(peers):
    # AoEr11 §3.2 allows 1024 bytes; bad input gets a clear error where vblade drops the request
    too_long = config_body(ConfigCommand.FORCE_SET, b"x" * (CONFIG_STRING_MAX + 1))
    mine, theirs = ask_both(peers, too_long, command=AoeCommand.QUERY_CONFIG, tag=60)
    assert refused(mine, AoeError.BAD_ARGUMENT) and theirs is None
    # a length past the end of even a minimum frame: vblade drops it only when it exceeds the whole frame, headers included
    beyond_the_frame = config_body(ConfigCommand.FORCE_SET, b"abc", length=ETHERNET_MIN_FRAME_BYTES + 1)
    mine, theirs = ask_both(peers, beyond_the_frame, command=AoeCommand.QUERY_CONFIG, tag=61)
    assert refused(mine, AoeError.BAD_ARGUMENT) and theirs is None


def check_a_failed_mask_edit_changes_nothing(peers):
    # spec.aoe: an edit applies completely or not at all, and Dir Count names the failing directive
    edit = mask_body(MaskCommand.EDIT, (MaskDirective.ADD, CLIENTS[0]), (BAD_DIRECTIVE, CLIENTS[1]))
    mine, theirs = ask_both(peers, edit, command=AoeCommand.MAC_MASK_LIST, tag=70)
    assert mine.fields[1:] == theirs.fields[1:] == (MaskError.BAD_DIRECTIVE, 1)
    mine, theirs = ask_both(peers, mask_body(MaskCommand.READ), command=AoeCommand.MAC_MASK_LIST, tag=71)
    assert (mine.data, theirs.data) == (b"", MASK_DIRECTIVE.pack(MaskDirective.NONE, CLIENTS[0]))


def check_firmware_versions_are_each_its_own(peers):
    # AoEr11 §3.2: Firmware Version is the target's own
    mine, theirs = ask_both(peers, config_body(ConfigCommand.READ, b""), command=AoeCommand.QUERY_CONFIG, tag=80)
    assert (mine.fields[1], theirs.fields[1]) == (TargetConfig.firmware_version, VBLADE_FIRMWARE_VERSION)


def check_identify_names_the_client_and_the_image(peers):
    # each client has a disk of its own: our serial number names the client, the model the image; vblade's are fixed
    ours = peers[0]
    image_name = os.path.basename(ours.image).removesuffix(".img")
    answers = [ask_both(peers, ata_body(IDENTIFY_DEVICE, 0, 1), tag=90 + i, src=client) for i, client in enumerate(CLIENTS[:2])]
    for client, (mine, _) in zip(CLIENTS, answers):
        expected = identify_device_data(SECTORS, "SV" + client.hex().upper(), "storvisor " + image_name, TargetConfig.firmware)
        assert ata_succeeded(mine) and mine.data[:SECTOR_BYTES] == expected
    (_, theirs_first), (_, theirs_second) = answers
    assert ata_succeeded(theirs_first) and ata_text(theirs_first.data, *MODEL_WORDS) == VBLADE_MODEL
    assert theirs_first.data[:SECTOR_BYTES] == theirs_second.data[:SECTOR_BYTES]


def check_error_answers_echo_the_argument(peers):
    # spec.aoe echoes every byte after the AoE header; vblade cuts its answer to a minimum frame
    too_many_sectors = ata_body(WRITE_SECTORS_EXT, 0, 3, b"e" * 2 * SECTOR_BYTES, write=True)  # MTU 1500 carries 2 sectors
    frame = request_frame(b"\xff" * 6, CLIENTS[0], 0, 0, AoeCommand.ATA, 100, too_many_sectors)
    mine, theirs = (peer.ask_raw(frame, 100, 1.0) for peer in peers)
    assert refused(parse_response(mine), AoeError.BAD_ARGUMENT) and refused(parse_response(theirs), AoeError.BAD_ARGUMENT)
    assert mine[HEADER_BYTES:] == frame[HEADER_BYTES:]
    assert theirs[HEADER_BYTES:] == frame[HEADER_BYTES:ETHERNET_MIN_FRAME_BYTES]


def test_documented_differences(peers):
    """Each row of impl/server/README.md's table of differences from vblade: ours as spec.aoe answers, vblade's as observed."""
    check_each_client_has_its_own_overlay(peers)
    check_successful_transfers_echo_the_count(peers)
    check_flushes_answer_drdy(peers)
    check_other_versions_are_refused(peers)
    check_sector_count_zero_is_refused(peers)
    check_the_w_flag_must_match_the_command(peers)
    check_bad_config_strings_are_refused(peers)
    check_firmware_versions_are_each_its_own(peers)
    check_identify_names_the_client_and_the_image(peers)
    check_error_answers_echo_the_argument(peers)
    # last: vblade then ignores every other client, and deleting a listed MAC aborts vblade 25
    check_a_failed_mask_edit_changes_nothing(peers)


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
