"""Hypothesis against the request path: any frame gets a well-formed answer or none, and never crashes;
many clients writing at once never see each other's data."""

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from impl.server.frames import ETHERNET
from impl.server.initiator import ata_body, parse_response, request_frame
from spec.aoe.constants import ETHERTYPE_AOE, AoeCommand, HeaderFlag
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, image_bytes, make_target

HEADER = ETHERNET.pack(SERVER_MAC, bytes.fromhex("020000000001"), ETHERTYPE_AOE)

aoe_frames = st.builds(
    lambda version_flags, error, major, minor, command, tag, body: HEADER
    + bytes([version_flags, error]) + major.to_bytes(2, "big") + bytes([minor, command]) + tag.to_bytes(4, "big") + body,
    st.sampled_from([0x10, 0x18, 0x20, 0x00, 0x14]) | st.integers(0, 255),
    st.integers(0, 255),
    st.sampled_from([0, 0xFFFF]) | st.integers(0, 0xFFFF),
    st.sampled_from([0, 0xFF]) | st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3]) | st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=1200),
)
ata_frames = st.builds(
    lambda cmd, lba, count, data, aflags: HEADER + bytes([0x10, 0, 0, 0, 0, 0]) + b"\x00\x00\x00\x2a"
    + bytes([aflags, 0, count, cmd]) + lba.to_bytes(6, "little") + b"\x00\x00" + data,
    st.sampled_from([0x20, 0x24, 0x30, 0x34, 0xEC, 0xE5, 0xE7, 0xEA]) | st.integers(0, 255),
    st.sampled_from([0, IMAGE_SECTORS - 1, IMAGE_SECTORS, 2**48 - 1]) | st.integers(0, 2**48 - 1),
    st.integers(0, 255),
    st.binary(max_size=1100),
    st.integers(0, 255),
)


@given(frames=st.lists(aoe_frames | ata_frames | st.binary(max_size=100), max_size=30))
def test_any_frame_gets_a_well_formed_answer_or_none(tmp_path_factory, images_factory, frames):
    target = make_target(tmp_path_factory.mktemp("fuzz"), images_factory())
    try:
        for frame in frames:
            for response in target.process_frame(frame):
                r = parse_response(response)
                assert r is not None and r.flags & HeaderFlag.RESPONSE
                assert r.tag == int.from_bytes(frame[20:24], "big") and r.command == frame[19]
                assert len(response) <= 36 + 2 * 512 or r.command == AoeCommand.QUERY_CONFIG
        # the server still serves a good request after whatever came before
        good = request_frame(SERVER_MAC, bytes.fromhex("020000000009"), 0, 0, AoeCommand.ATA, 1, ata_body(0x24, 0, 1))
        assert parse_response(target.process_frame(good)[0]).data == image_bytes(IMAGE_SECTORS)[:512]
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
        data = bytes([byte]) * 512 * count
        assert self.ask(client, ata_body(0x34, lba, count, data, write=True)).fields[3] == 0x40
        self.model[client][lba * 512 : (lba + count) * 512] = data

    @rule(client=st.sampled_from(CLIENTS), lba=lbas, count=st.integers(1, 2))
    def read(self, client, lba, count):
        r = self.ask(client, ata_body(0x24, lba, count))
        assert r.data == bytes(self.model[client][lba * 512 : (lba + count) * 512])

    @rule(client=st.sampled_from(CLIENTS))
    def flush(self, client):
        assert self.ask(client, ata_body(0xE7, 0, 0)).fields[3] == 0x40

    @precondition(lambda self: hasattr(self, "target"))
    @invariant()
    def first_sector_matches(self):
        for client in CLIENTS:
            assert self.ask(client, ata_body(0x24, 0, 1)).data == bytes(self.model[client][:512])

    def teardown(self):
        if hasattr(self, "target"):
            self.target.disks.close()
            self.directory.cleanup()
            del self.target, self.model  # Hypothesis may keep the machine; its disks need not stay


TestClientsAndTheirDisks = ClientsAndTheirDisks.TestCase
