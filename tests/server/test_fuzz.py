"""Hypothesis against the request path: any frame gets the spec's answer, well-formed, or none, and
never crashes; many clients writing at once never see each other's data."""

from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from impl.server.frames import AOE_HEADER, ATA_ARG, ETHERNET, VERSION_SHIFT
from impl.server.initiator import ata_body, parse_response, request_frame
from impl.server.target import FIRMWARE_TEXT, identify_model, identify_serial
from spec.aoe.constants import (
    AOE_HEADER_BYTES,
    AOE_VERSION,
    ATA_ARG_BYTES,
    BROADCAST_MAJOR,
    BROADCAST_MINOR,
    ETHERNET_HEADER_BYTES,
    ETHERTYPE_AOE,
    LBA48_MASK,
    SECTOR_BYTES,
    AoeCommand,
    AoeError,
    AtaStatus,
    HeaderFlag,
    MaskCommand,
    MaskDirective,
    ReserveCommand,
    sectors_per_frame,
)
from spec.aoe.durable_store import MemoryDurableStore
from spec.aoe.frames import decode_aoe_header
from spec.aoe.target import AoeTarget as SpecTarget
from spec.aoe.target import FLUSH_CACHE, READ_SECTORS_EXT, TARGET_ATA_COMMANDS, WRITE_SECTORS_EXT, Port, TargetState
from spec.aoe.target import TargetConfig as SpecTargetConfig
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, image_bytes, make_target

MTU = 1500
FUZZER, GOOD_CLIENT = bytes.fromhex("020000000001"), bytes.fromhex("020000000009")
HEADER = ETHERNET.pack(SERVER_MAC, FUZZER, ETHERTYPE_AOE)
ATA_MESSAGE_BYTES = ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES + ATA_ARG_BYTES

tags = st.integers(0, 2**32 - 1)
macs = st.sampled_from([FUZZER, GOOD_CLIENT])


def aoe(command: int, tag: int, body: bytes) -> bytes:
    return request_frame(SERVER_MAC, FUZZER, 0, 0, command, tag, body)


aoe_frames = st.builds(
    lambda version_flags, error, major, minor, command, tag, body: HEADER
    + AOE_HEADER.pack(version_flags, error, major, minor, command, tag) + body,
    st.sampled_from([AOE_VERSION << VERSION_SHIFT | f for f in (0, HeaderFlag.RESPONSE, HeaderFlag.ERROR)] + [(AOE_VERSION + 1) << VERSION_SHIFT, 0])
    | st.integers(0, 255),
    st.integers(0, 255),
    st.sampled_from([0, BROADCAST_MAJOR]) | st.integers(0, 0xFFFF),
    st.sampled_from([0, BROADCAST_MINOR]) | st.integers(0, 255),
    st.sampled_from(list(AoeCommand)) | st.integers(0, 255),
    tags,
    st.binary(max_size=1200),
)
ata_frames = st.builds(
    lambda cmd, lba, count, data, aflags: aoe(AoeCommand.ATA, 42, ATA_ARG.pack(aflags, 0, count, cmd, lba.to_bytes(6, "little")) + data),
    st.sampled_from(sorted(TARGET_ATA_COMMANDS)) | st.integers(0, 255),
    st.sampled_from([0, IMAGE_SECTORS - 1, IMAGE_SECTORS, LBA48_MASK]) | st.integers(0, LBA48_MASK),
    st.integers(0, 255),
    st.binary(max_size=1100),
    st.integers(0, 255),
)
mask_frames = st.builds(  # AoEr11 §3.3: edits that shut either client out or let it back in; some cut short
    lambda tag, mcmd, missing, directives: aoe(
        AoeCommand.MAC_MASK_LIST, tag, bytes([0, mcmd, 0, len(directives) + missing]) + b"".join(bytes([0, d]) + m for d, m in directives)
    ),
    tags,
    st.sampled_from(list(MaskCommand)) | st.integers(0, 255),
    st.sampled_from([0, 0, 0, 1]),
    st.lists(st.tuples(st.sampled_from(list(MaskDirective)) | st.integers(0, 255), macs), max_size=3),
)
reserve_frames = st.builds(  # AoEr11 §3.4: reservations that shut either client out or release it; some cut short
    lambda tag, rcmd, missing, holders: aoe(AoeCommand.RESERVE_RELEASE, tag, bytes([rcmd, len(holders) + missing]) + b"".join(holders)),
    tags,
    st.sampled_from(list(ReserveCommand)) | st.integers(0, 255),
    st.sampled_from([0, 0, 0, 1]),
    st.lists(macs, max_size=3),
)


def spec_target_of(specs: dict, shared: TargetState, client: bytes, buffer_count: int) -> SpecTarget:
    """The spec's view of one client: its own disk (its overlay), and the target's state shared with every client."""
    if client not in specs:
        store = MemoryDurableStore(IMAGE_SECTORS)
        store.write(0, image_bytes(IMAGE_SECTORS))
        store.flush()
        config = SpecTargetConfig(0, 0, buffer_count, serial=identify_serial(client), model=identify_model("base"), firmware=FIRMWARE_TEXT)
        specs[client] = SpecTarget(config, store, shared)
    return specs[client]


# Streams after which the good client is rightly no longer served; a plain read of it failed here once.
@example(frames=[aoe(AoeCommand.MAC_MASK_LIST, 1, bytes([0, MaskCommand.EDIT, 0, 1, 0, MaskDirective.ADD]) + FUZZER)])  # AoEr11 §3.3: dropped
@example(frames=[aoe(AoeCommand.RESERVE_RELEASE, 2, bytes([ReserveCommand.SET, 1]) + FUZZER)])  # AoEr11 §3.4: TARGET_RESERVED
# AoEr11 §2: an error response echoes the whole argument, so it may be longer than any ATA answer
@example(frames=[request_frame(SERVER_MAC, FUZZER, 0, 0, AoeCommand.ATA, 3, bytes(1100), version=AOE_VERSION + 1)])
@given(frames=st.lists(aoe_frames | ata_frames | mask_frames | reserve_frames | st.binary(max_size=100), max_size=30))
def test_any_frame_gets_a_well_formed_answer_or_none(tmp_path_factory, images_factory, frames):
    target = make_target(tmp_path_factory.mktemp("fuzz"), images_factory(), mtu=MTU)
    specs, shared, port = {}, TargetState(), Port(SERVER_MAC, MTU)
    try:
        for frame in frames:
            answers = target.process_frame(frame)
            for response in answers:
                r, request = parse_response(response), decode_aoe_header(frame)
                assert r is not None and r.flags & HeaderFlag.RESPONSE
                assert (r.tag, r.command) == (request.tag, request.command)
                assert r.command != AoeCommand.ATA or r.flags & HeaderFlag.ERROR or len(response) <= ATA_MESSAGE_BYTES + sectors_per_frame(MTU) * SECTOR_BYTES
            assert answers == spec_target_of(specs, shared, frame[6:12], target.config.buffer_count).process_frame(frame, port)
        # the good client gets what the spec gives it after this stream: its data, unless a mask list or reservation shuts it out
        good = request_frame(SERVER_MAC, GOOD_CLIENT, 0, 0, AoeCommand.ATA, 1, ata_body(READ_SECTORS_EXT, 0, 1))
        expected = spec_target_of(specs, shared, GOOD_CLIENT, target.config.buffer_count).process_frame(good, port)
        answers = target.process_frame(good)
        assert answers == expected
        if shared.mask_list and GOOD_CLIENT not in shared.mask_list:
            assert answers == []  # AoEr11 §3.3
        elif shared.reserve_list and GOOD_CLIENT not in shared.reserve_list:
            assert parse_response(answers[0]).error == AoeError.TARGET_RESERVED  # AoEr11 §3.4
        else:
            assert parse_response(answers[0]).data == image_bytes(IMAGE_SECTORS)[:SECTOR_BYTES]
    finally:
        target.disks.close()


CLIENTS = [bytes.fromhex(f"02000000000{i}") for i in range(1, 4)]


class ClientsAndTheirDisks(RuleBasedStateMachine):
    """Each client's disk behaves like its own copy of the base image (one client never sees another's writes)."""

    lbas = Bundle("lbas")

    @initialize(target=lbas, lba=st.integers(0, IMAGE_SECTORS - 2))
    def start(self, lba):
        import pathlib
        import tempfile

        self.directory = tempfile.TemporaryDirectory()
        root = pathlib.Path(self.directory.name)
        (root / "images").mkdir()
        (root / "images" / "base.img").write_bytes(image_bytes(IMAGE_SECTORS))
        self.target = make_target(root, root / "images")
        self.model = {c: bytearray(image_bytes(IMAGE_SECTORS)) for c in CLIENTS}
        self.tag = 0
        return lba

    def ask(self, client, body):
        self.tag += 1
        frame = request_frame(SERVER_MAC, client, 0, 0, AoeCommand.ATA, self.tag, body)
        (response,) = self.target.process_frame(frame)
        return parse_response(response)

    @rule(target=lbas, lba=st.integers(0, IMAGE_SECTORS - 2))
    def new_lba(self, lba):
        return lba

    @rule(client=st.sampled_from(CLIENTS), lba=lbas, count=st.integers(1, 2), byte=st.integers(0, 255))
    def write(self, client, lba, count, byte):
        data = bytes([byte]) * SECTOR_BYTES * count
        assert self.ask(client, ata_body(WRITE_SECTORS_EXT, lba, count, data, write=True)).fields[3] == AtaStatus.DRDY
        self.model[client][lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES] = data

    @rule(client=st.sampled_from(CLIENTS), lba=lbas, count=st.integers(1, 2))
    def read(self, client, lba, count):
        r = self.ask(client, ata_body(READ_SECTORS_EXT, lba, count))
        assert r.data == bytes(self.model[client][lba * SECTOR_BYTES : (lba + count) * SECTOR_BYTES])

    @rule(client=st.sampled_from(CLIENTS))
    def flush(self, client):
        assert self.ask(client, ata_body(FLUSH_CACHE, 0, 0)).fields[3] == AtaStatus.DRDY

    @precondition(lambda self: hasattr(self, "target"))
    @invariant()
    def first_sector_matches(self):
        for client in CLIENTS:
            assert self.ask(client, ata_body(READ_SECTORS_EXT, 0, 1)).data == bytes(self.model[client][:SECTOR_BYTES])

    def teardown(self):
        if hasattr(self, "target"):
            self.target.disks.close()
            self.directory.cleanup()
            del self.target, self.model  # Hypothesis may keep the machine; its disks need not stay


TestClientsAndTheirDisks = ClientsAndTheirDisks.TestCase
