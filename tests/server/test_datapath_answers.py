"""The data path's answers are the checked path's: same bytes, same counters.

Two AoeTarget instances serve the same images from separate state directories: `fast` answers
every frame through `process_frame` (C whenever a route is established), `checked` always through
`process_frame_checked`. After each frame both answers and both clients' counters must be equal;
the tests also say which frames C answers, so a data path that quietly left everything to Python
would fail them (AoEr11 §3.1, ATA/ATAPI-7 V1 §6: READ SECTOR(S) (EXT), WRITE SECTOR(S) (EXT)).
"""

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from impl.server.config import TargetConfig
from impl.server.frames import MASK_ARG, MASK_DIRECTIVE, RESERVE_ARG
from impl.server.initiator import ata_body, parse_response, request_frame
from impl.server.operations import OperationError, Operations
from impl.server.target import ERROR_ABRT, ERROR_IDNF, STATUS_DRDY, STATUS_ERR
from spec.aoe.constants import (
    BROADCAST_MAC,
    ETHERNET_MIN_FRAME_BYTES,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    AtaFlag,
    MaskCommand,
    MaskDirective,
    ReserveCommand,
    sectors_per_frame,
)
from spec.aoe.target import (
    FLUSH_CACHE_EXT,
    IDENTIFY_DEVICE,
    READ_SECTORS,
    READ_SECTORS_EXT,
    WRITE_SECTORS,
    WRITE_SECTORS_EXT,
    ata_code,
)
from tests.server.conftest import CLIENT_A as A
from tests.server.conftest import CLIENT_B as B
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, image_bytes, make_target

READ28, READ_EXT, WRITE28, WRITE_EXT = READ_SECTORS, READ_SECTORS_EXT, WRITE_SECTORS, WRITE_SECTORS_EXT
FLUSH_EXT, IDENTIFY, READ_DMA_EXT = FLUSH_CACHE_EXT, IDENTIFY_DEVICE, ata_code("READ DMA EXT")
READS, WRITES = (READ28, READ_EXT), (WRITE28, WRITE_EXT)
COUNTED = ("requests", "read_bytes", "written_bytes", "errors", "duplicates", "flushes", "recent_next")
BASE = image_bytes(IMAGE_SECTORS)


class Pair:
    """The same requests to a target that may answer in C and to one that never does."""

    def __init__(self, directory, images, targets=None, mtu=1500):
        self.fast = make_target(directory / "fast", images, targets, mtu)
        self.checked = make_target(directory / "checked", images, targets, mtu)
        self.max_sectors = self.fast.max_sectors
        self.tag = 0
        self.python_answers = 0
        answer_checked = self.fast.process_frame_checked

        def counted(frame):
            self.python_answers += 1
            return answer_checked(frame)

        self.fast.process_frame_checked = counted  # process_frame falls back through the instance attribute

    def send(self, frame: bytes) -> tuple[list[bytes], bool]:
        """Both targets' answer (asserted equal) and whether C gave it."""
        before = self.python_answers
        fast = self.fast.process_frame(frame)
        checked = self.checked.process_frame_checked(frame)
        assert fast == checked, f"answers differ: data path {[parse_response(f) for f in fast]} checked {[parse_response(f) for f in checked]}"
        self.assert_same_counters()
        return fast, self.python_answers == before

    def assert_same_counters(self):
        assert self.fast.disks.counters.keys() == self.checked.disks.counters.keys()
        for client, counters in self.fast.disks.counters.items():
            other = self.checked.disks.counters[client]
            assert {k: getattr(counters, k) for k in COUNTED} == {k: getattr(other, k) for k in COUNTED}, f"counters of {client.hex()}"
            assert bytes(counters.recent) == bytes(other.recent), "the duplicate detector remembers different requests"
        assert self.fast.dropped == self.checked.dropped

    def ata(self, cmd, lba=0, count=1, data=b"", src=A, write=None, slot=0, tag=None, pad=True, cut=0, toggle=0, feature=0, dst=SERVER_MAC, major=0):
        """One ATA request; W follows the command unless `write` says otherwise, E the command unless
        `toggle` (bits flipped in aflags) says otherwise. (response, answered in C)."""
        writing = cmd in WRITES
        if writing and not data:
            data = bytes([self.tag & 0xFF, cmd]) * (count * SECTOR_BYTES // 2)
        write = writing if write is None else write
        self.tag += 1
        body = bytearray(ata_body(cmd, lba, count, data, write=write, extended=cmd in (READ_EXT, WRITE_EXT), feature=feature))
        body[0] ^= toggle
        frame = request_frame(dst, src, major, slot, AoeCommand.ATA, self.tag if tag is None else tag, bytes(body))
        frame = frame[: len(frame) - cut]
        if pad:
            frame = frame.ljust(ETHERNET_MIN_FRAME_BYTES, b"\0")  # as a NIC pads a short frame
        responses, in_c = self.send(frame)
        assert len(responses) <= 1 or major == 0xFFFF or slot == 0xFF
        return (parse_response(responses[0]) if responses else None), in_c

    def mask(self, directives, src=A):
        body = MASK_ARG.pack(MaskCommand.EDIT, 0, len(directives)) + b"".join(MASK_DIRECTIVE.pack(d, m) for d, m in directives)
        self.tag += 1
        return self.send(request_frame(SERVER_MAC, src, 0, 0, AoeCommand.MAC_MASK_LIST, self.tag, body))

    def reserve(self, rcmd, macs, src=A):
        self.tag += 1
        return self.send(request_frame(SERVER_MAC, src, 0, 0, AoeCommand.RESERVE_RELEASE, self.tag, RESERVE_ARG.pack(rcmd, len(macs)) + b"".join(macs)))

    def operate(self, name, client=A):
        """An operator command on both servers (`storvisor reset`/`compact`), or forgetting the client's disk."""
        outcomes = []
        for target in (self.fast, self.checked):
            if name == "forget":
                target.disks.forget(client, "base")
                outcomes.append(None)
                continue
            operations = Operations(target.catalogue, target.disks, set())
            try:
                getattr(operations, name)(client.hex(":"))
                outcomes.append(None)
            except OperationError as e:
                outcomes.append(str(e))
        assert outcomes[0] == outcomes[1]
        return outcomes[0]

    def close(self):
        for target in (self.fast, self.checked):
            target.disks.close()  # as the server closes: the disks' hooks still reach the data path
            target.close()


@pytest.fixture
def pair(tmp_path, images):
    p = Pair(tmp_path, images)
    yield p
    p.close()


@pytest.fixture
def jumbo(tmp_path, images):
    p = Pair(tmp_path, images, mtu=9000)
    yield p
    p.close()


def status(r):
    return r.fields[3]


def establish(pair, src=A, slot=0):
    """The checked path answers a client's first request on a route and registers it."""
    r, in_c = pair.ata(READ_EXT, 0, 1, src=src, slot=slot)
    assert not in_c and status(r) == STATUS_DRDY


@pytest.mark.parametrize("cmd", READS)
def test_a_read_on_an_established_route_is_answered_in_c(pair, cmd):
    establish(pair)
    r, in_c = pair.ata(cmd, 5, 2)
    assert in_c and r.data == BASE[5 * SECTOR_BYTES : 7 * SECTOR_BYTES]


@pytest.mark.parametrize("cmd", WRITES)
def test_a_write_after_the_first_is_answered_in_c_and_read_back(jumbo, cmd):
    establish(jumbo)
    _, in_c = jumbo.ata(cmd, 3, 1, b"f" * SECTOR_BYTES)
    assert not in_c, "the first write creates the overlay: the checked path's"
    w, in_c = jumbo.ata(cmd, 4, 2, b"g" * 2 * SECTOR_BYTES)
    assert in_c and status(w) == STATUS_DRDY and w.data == b""
    r, in_c = jumbo.ata(READ_EXT, 2, 4)
    assert in_c and r.data == BASE[2 * SECTOR_BYTES : 3 * SECTOR_BYTES] + b"f" * SECTOR_BYTES + b"g" * 2 * SECTOR_BYTES


def test_a_clients_first_write_creates_its_overlay_and_registers_it(pair):
    establish(pair)  # the route is registered without an overlay: the client has only read
    assert pair.fast.disks.disks[(A, "base", False)].overlay is None
    _, in_c = pair.ata(WRITE_EXT, 9, 1, b"1" * SECTOR_BYTES)
    assert not in_c and pair.fast.disks.disks[(A, "base", False)].overlay is not None
    r, in_c = pair.ata(READ_EXT, 9, 1)
    assert in_c and r.data == b"1" * SECTOR_BYTES, "the re-registered route reads through the new overlay"
    _, in_c = pair.ata(WRITE_EXT, 9, 1, b"2" * SECTOR_BYTES)
    assert in_c
    assert pair.ata(READ28, 9, 1)[0].data == b"2" * SECTOR_BYTES


@pytest.mark.parametrize("mtu", [1500, 9000])
@pytest.mark.parametrize("cmd", READS + WRITES)
def test_the_frame_maximum_is_answered_in_c_one_more_is_bad_argument(tmp_path, images, mtu, cmd):
    pair = Pair(tmp_path, images, mtu=mtu)
    try:
        assert pair.max_sectors == sectors_per_frame(mtu)
        establish(pair)
        pair.ata(WRITE_EXT, 0, 1)  # the overlay exists: writes may be answered in C too
        r, in_c = pair.ata(cmd, 10, pair.max_sectors)
        assert in_c and status(r) == STATUS_DRDY
        r, in_c = pair.ata(cmd, 10, pair.max_sectors + 1)
        assert not in_c and r.error == AoeError.BAD_ARGUMENT
    finally:
        pair.close()


@pytest.mark.parametrize("cmd", READS + WRITES)
def test_the_last_sector_is_answered_in_c_one_past_it_is_idnf_from_the_checked_path(jumbo, cmd):
    establish(jumbo)
    jumbo.ata(WRITE_EXT, 0, 1)
    for count in (1, jumbo.max_sectors):
        r, in_c = jumbo.ata(cmd, IMAGE_SECTORS - count, count)
        assert in_c and status(r) == STATUS_DRDY
        r, in_c = jumbo.ata(cmd, IMAGE_SECTORS - count + 1, count)
        assert not in_c and (status(r), r.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_IDNF)
    r, in_c = jumbo.ata(cmd, IMAGE_SECTORS, 1)
    assert not in_c and r.fields[1] == ERROR_IDNF


@pytest.mark.parametrize("dst,major,slot", [(BROADCAST_MAC, 0, 0), (SERVER_MAC, 0xFFFF, 0), (SERVER_MAC, 0, 0xFF), (BROADCAST_MAC, 0xFFFF, 0xFF)])
def test_broadcasts_are_answered_by_the_checked_path(pair, dst, major, slot):
    """AoEr11 §2: a broadcast address reaches every target; only exact addresses become routes."""
    establish(pair)
    r, in_c = pair.ata(READ_EXT, 5, 1, dst=dst, major=major, slot=slot)
    assert not in_c and r.data == BASE[5 * SECTOR_BYTES : 6 * SECTOR_BYTES]


@pytest.mark.parametrize("lba", [2**28 - 1, 2**48 - 1, 2**32 + 3])
def test_an_lba_past_the_disk_in_any_width_goes_to_the_checked_path(pair, lba):
    establish(pair)
    r, in_c = pair.ata(READ_EXT, lba, 1)
    assert not in_c and r.fields[1] == ERROR_IDNF


def test_lba28_ignores_the_device_nibble_in_c_too(pair):
    """ATA/ATAPI-7 §4.2: byte 3's high nibble is the device register, not LBA bits."""
    establish(pair)
    r, in_c = pair.ata(READ28, (0xE0 << 24) | 7, 1)
    assert in_c and r.data == BASE[7 * SECTOR_BYTES : 8 * SECTOR_BYTES]


@pytest.mark.parametrize("cmd", READS + WRITES)
def test_a_w_flag_that_contradicts_the_command_is_bad_argument(pair, cmd):
    establish(pair)
    pair.ata(WRITE_EXT, 0, 1)
    r, in_c = pair.ata(cmd, 1, 1, data=b"d" * SECTOR_BYTES, write=cmd not in WRITES)
    assert not in_c and r.error == AoeError.BAD_ARGUMENT


@pytest.mark.parametrize("cmd", READS + WRITES)
def test_count_zero_is_bad_argument(pair, cmd):
    establish(pair)
    pair.ata(WRITE_EXT, 0, 1)
    r, in_c = pair.ata(cmd, 1, 0)
    assert not in_c and r.error == AoeError.BAD_ARGUMENT


@pytest.mark.parametrize("cut", [1, SECTOR_BYTES, SECTOR_BYTES + 1])
def test_a_write_frame_cut_short_is_bad_argument(pair, cut):
    establish(pair)
    pair.ata(WRITE_EXT, 0, 1)
    r, in_c = pair.ata(WRITE_EXT, 4, 2, cut=cut, pad=False)
    assert not in_c and r.error == AoeError.BAD_ARGUMENT
    assert pair.ata(READ_EXT, 4, 2)[0].data == BASE[4 * SECTOR_BYTES : 6 * SECTOR_BYTES], "nothing of it was written"


def test_a_frame_shorter_than_the_ata_header_goes_to_the_checked_path(pair):
    establish(pair)
    frame = request_frame(SERVER_MAC, A, 0, 0, AoeCommand.ATA, 99, ata_body(READ_EXT, 0, 1))[:-3]
    responses, in_c = pair.send(frame)
    assert not in_c and parse_response(responses[0]).error == AoeError.BAD_ARGUMENT


def test_a_read_only_target_reads_in_c_and_aborts_writes(tmp_path, images):
    pair = Pair(tmp_path, images, targets=[TargetConfig(0, 0, "base", None, read_only=True)])
    try:
        establish(pair)
        r, in_c = pair.ata(READ_EXT, 20, 2)
        assert in_c and r.data == BASE[20 * SECTOR_BYTES : 22 * SECTOR_BYTES]
        for cmd in WRITES:
            w, in_c = pair.ata(cmd, 20, 1)
            assert not in_c and (status(w), w.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_ABRT)
        assert pair.ata(READ_EXT, 20, 1)[0].data == BASE[20 * SECTOR_BYTES : 21 * SECTOR_BYTES]
    finally:
        pair.close()


def test_a_mask_list_blocks_the_data_path(pair):
    """AoEr11 §3.3: with a mask list the checked path decides every request; without one C answers again."""
    establish(pair, A)
    establish(pair, B)
    pair.ata(WRITE_EXT, 0, 1, src=B)
    pair.mask([(MaskDirective.ADD, A)])
    r, in_c = pair.ata(READ_EXT, 1, 1, src=A)
    assert not in_c and r.data == BASE[SECTOR_BYTES : 2 * SECTOR_BYTES]
    for cmd in READS + WRITES:
        r, in_c = pair.ata(cmd, 1, 1, src=B)
        assert not in_c and r is None, "a client not on the list gets nothing"
    pair.mask([(MaskDirective.DELETE, A)])
    assert pair.ata(READ_EXT, 1, 1, src=B)[1]


def test_a_reservation_blocks_the_data_path(pair):
    """AoEr11 §3.4: a reserved target answers others TARGET_RESERVED, never data."""
    establish(pair, A)
    establish(pair, B)
    pair.ata(WRITE_EXT, 0, 1, src=A)
    pair.reserve(ReserveCommand.SET, [B], src=B)
    for cmd in READS + WRITES:
        r, in_c = pair.ata(cmd, 2, 1, src=A)
        assert not in_c and r.error == AoeError.TARGET_RESERVED
    r, in_c = pair.ata(READ_EXT, 2, 1, src=B)
    assert not in_c and r.data == BASE[2 * SECTOR_BYTES : 3 * SECTOR_BYTES]
    pair.reserve(ReserveCommand.SET, [], src=B)
    assert pair.ata(WRITE_EXT, 2, 1, src=A)[1]


@pytest.mark.parametrize("toggle", [AtaFlag.EXTENDED, AtaFlag.DEVICE, AtaFlag.ASYNC, 0xAC])
@pytest.mark.parametrize("cmd", READS + WRITES)
def test_other_aflags_and_the_feature_byte_are_echoed_as_the_checked_path_does(pair, cmd, toggle):
    """AoEr11 §3.1: the response carries the request's aflags; E does not change what the command is."""
    establish(pair)
    pair.ata(WRITE_EXT, 0, 1)
    r, in_c = pair.ata(cmd, 6, 1, toggle=toggle, feature=0x5A)
    assert in_c and status(r) == STATUS_DRDY and r.fields[1] == 0


def test_repeated_tags_and_retransmissions_count_as_duplicates_in_c_too(pair):
    establish(pair)
    for _ in range(3):
        _, in_c = pair.ata(READ_EXT, 8, 1, tag=77)
        assert in_c
    pair.ata(READ_EXT, 8, 1)  # the same command and argument under a new tag: a retransmission
    assert pair.fast.disks.counters[A].duplicates == 3


def test_two_slots_over_one_image_read_the_clients_writes(tmp_path, images):
    """Two addresses, one image: one client disk; a write through slot 0 must be read through slot 1."""
    pair = Pair(tmp_path, images, targets=[TargetConfig(0, 0, "base", None), TargetConfig(0, 1, "base", None)])
    try:
        establish(pair, slot=0)
        establish(pair, slot=1)
        pair.ata(WRITE_EXT, 6, 1, b"s" * SECTOR_BYTES, slot=0)
        r, _ = pair.ata(READ_EXT, 6, 1, slot=1)
        assert r.data == b"s" * SECTOR_BYTES
    finally:
        pair.close()


# Hypothesis: streams of requests and operator commands, answers compared after each one.

plain = st.sampled_from(READS + WRITES)
requests = st.fixed_dictionaries(
    {
        "cmd": st.one_of(plain, plain, plain, st.sampled_from([FLUSH_EXT, IDENTIFY, READ_DMA_EXT])),
        "lba": st.one_of(st.integers(0, IMAGE_SECTORS - 17), st.integers(0, IMAGE_SECTORS - 17), st.integers(0, IMAGE_SECTORS + 2),
                         st.sampled_from([IMAGE_SECTORS - 1, (0xE0 << 24) | 5, 2**48 - 1])),
        "count": st.one_of(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.sampled_from([0, 17, 18])),
        "src": st.sampled_from([A, B]),
        "slot": st.sampled_from([0, 0, 1]),
        "tag": st.sampled_from([None, None, None, 0, 1]),
        "flip_w": st.sampled_from([False] * 7 + [True]),
        "cut": st.sampled_from([0] * 7 + [1, SECTOR_BYTES]),
        "toggle": st.sampled_from([0] * 5 + [AtaFlag.EXTENDED, AtaFlag.DEVICE, AtaFlag.ASYNC, 0xAC]),
        "feature": st.sampled_from([0, 0, 0, 0xFF]),
        "dst": st.sampled_from([SERVER_MAC] * 7 + [BROADCAST_MAC]),
    }
)
operations = st.tuples(st.sampled_from(["reset", "compact", "forget", "mask", "unmask", "unmask", "reserve", "release", "release"]),
                       st.sampled_from([A, B]))


def request(cmd, lba=0, count=1, src=A, slot=0, tag=None, flip_w=False, cut=0, toggle=0, feature=0, dst=SERVER_MAC):
    """One step of a stream, as the strategy above draws it."""
    return {"cmd": cmd, "lba": lba, "count": count, "src": src, "slot": slot, "tag": tag, "flip_w": flip_w, "cut": cut,
            "toggle": toggle, "feature": feature, "dst": dst}


steps_strategy = st.lists(st.one_of(requests, requests, requests, requests, operations), min_size=10, max_size=40)


@given(mtu=st.sampled_from([1500, 9000]), steps=steps_strategy)
@example(mtu=1500, steps=[request(READ_EXT), request(WRITE_EXT), request(WRITE28, lba=9, count=2), ("mask", A), request(READ_EXT),
                          ("unmask", B), request(READ28, lba=9, count=2, toggle=AtaFlag.EXTENDED), ("compact", A), request(READ_EXT, lba=9),
                          ("reset", A), request(READ_EXT, lba=9), ("forget", A), request(READ_EXT, lba=9, src=B, tag=1), request(READ_EXT, tag=1),
                          request(READ_EXT, dst=BROADCAST_MAC)])
def test_streams_of_requests_get_the_checked_paths_answers(tmp_path_factory, images_factory, mtu, steps):
    targets = [TargetConfig(0, 0, "base", None), TargetConfig(0, 1, "other", None, read_only=True)]
    pair = Pair(tmp_path_factory.mktemp("pair"), images_factory(), targets=targets, mtu=mtu)
    try:
        for step in steps:
            if isinstance(step, dict):
                count = min(step["count"], 255)
                write = None if not step["flip_w"] else step["cmd"] not in WRITES
                _, in_c = pair.ata(step["cmd"], step["lba"], count, src=step["src"], slot=step["slot"], tag=step["tag"], write=write,
                                   cut=step["cut"] if step["cmd"] in WRITES else 0, pad=not step["cut"], toggle=step["toggle"],
                                   feature=step["feature"], dst=step["dst"])
                if in_c:
                    event("the data path answered a request of the stream")
                continue
            name, client = step
            if name in ("reset", "compact", "forget"):
                pair.operate(name, client)
            elif name == "mask":
                pair.mask([(MaskDirective.ADD, client)], src=client)
            elif name == "unmask":
                pair.mask([(MaskDirective.DELETE, A), (MaskDirective.DELETE, B)], src=client)
            else:
                pair.reserve(ReserveCommand.FORCE_SET, [client] if name == "reserve" else [], src=client)
        for client in (A, B):  # both disks read the same at the end, whatever path each request took
            pair.mask([(MaskDirective.DELETE, client)], src=client)
            pair.reserve(ReserveCommand.FORCE_SET, [], src=client)
            for lba in range(0, IMAGE_SECTORS, pair.max_sectors):
                pair.ata(READ_EXT, lba, min(pair.max_sectors, IMAGE_SECTORS - lba), src=client)
    finally:
        pair.close()



plain_requests = st.tuples(st.sampled_from([A, B]), plain, st.integers(0, IMAGE_SECTORS - 1), st.integers(1, 17))
plain_steps = st.lists(st.one_of(plain_requests, plain_requests, plain_requests, st.sampled_from(["reset", "compact", "forget"])),
                       min_size=5, max_size=60)


@given(mtu=st.sampled_from([1500, 9000]), steps=plain_steps)
def test_streams_of_plain_transfers_read_what_was_written(tmp_path_factory, images_factory, mtu, steps):
    """Mostly requests C answers, between operator commands that change what a route points at;
    every read returns the client's own disk as a model of its bytes has it."""
    pair = Pair(tmp_path_factory.mktemp("pair"), images_factory(), mtu=mtu)
    model = {client: bytearray(BASE) for client in (A, B)}
    try:
        for serial, step in enumerate(steps, 1):
            if isinstance(step, str):
                if pair.operate(step, A) is None and step == "reset":
                    model[A][:] = BASE
                continue
            client, cmd, lba, count = step
            count = min(count, pair.max_sectors, IMAGE_SECTORS - lba)
            span = slice(lba * SECTOR_BYTES, (lba + count) * SECTOR_BYTES)
            data = bytes([serial & 0xFF, lba & 0xFF]) * (count * SECTOR_BYTES // 2) if cmd in WRITES else b""
            r, in_c = pair.ata(cmd, lba, count, data, src=client)
            if in_c:
                event("the data path answered a request of the stream")
            assert status(r) == STATUS_DRDY
            if data:
                model[client][span] = data
            else:
                assert r.data == model[client][span]
    finally:
        pair.close()
