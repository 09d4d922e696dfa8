"""The AoE codec: round trips, padding, and every way a frame can be malformed."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from spec.aoe.constants import ETHERNET_MIN_FRAME_BYTES, AoeCommand
from spec.aoe.frames import (
    AoeHeader,
    AtaArgument,
    ConfigArgument,
    EthernetHeader,
    Frame,
    FrameDefect,
    MalformedFrame,
    MaskArgument,
    MaskDirective,
    ReserveArgument,
    decode_frame,
    encode_frame,
    is_encodable,
)
from tests.aoe.strategies import frames

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def header(command: int, **fields) -> AoeHeader:
    values = dict(version=1, flags=0, error=0, major=7, minor=3, command=command, tag=0x01020304)
    values.update(fields)
    return AoeHeader(**values)


def frame(command: int, argument, **fields) -> Frame:
    return Frame(EthernetHeader(MAC_A, MAC_B), header(command, **fields), argument)


@given(frames())
def test_decode_inverts_encode(f):
    assert is_encodable(f)
    assert decode_frame(encode_frame(f)) == f


@given(frames(), st.binary(max_size=40))
def test_padding_after_a_fixed_layout_is_ignored(f, padding):
    if f.header.command == AoeCommand.ATA or f.header.command > AoeCommand.RESERVE_RELEASE:
        return  # ATA data and opaque payloads run to the end of the frame by definition
    assert decode_frame(encode_frame(f) + padding) == f


@given(frames())
def test_encode_inverts_decode_on_wire_bytes(f):
    wire = encode_frame(f)
    assert encode_frame(decode_frame(wire)) == wire


def test_wire_layout_of_an_ata_request_is_fixed_by_aoer11():
    f = frame(AoeCommand.ATA, AtaArgument(0x41, 0, 2, 0x34, 0x0605040302, data=b"\xaa" * 1024))
    wire = encode_frame(f)
    assert wire[:14] == MAC_A + MAC_B + b"\x88\xa2"
    assert wire[14:24] == bytes([0x10, 0, 0, 7, 3, 0]) + b"\x01\x02\x03\x04"
    assert wire[24:36] == bytes([0x41, 0, 2, 0x34, 2, 3, 4, 5, 6, 0, 0, 0])
    assert wire[36:] == b"\xaa" * 1024


def test_wire_layout_of_config_mask_and_reserve_arguments():
    config = encode_frame(frame(AoeCommand.QUERY_CONFIG, ConfigArgument(16, 0x4019, 2, 1, 3, b"hi")))
    assert config[24:] == bytes([0, 16, 0x40, 0x19, 2, 0x13, 0, 2]) + b"hi"
    mask = encode_frame(frame(AoeCommand.MAC_MASK_LIST, MaskArgument(1, 0, (MaskDirective(1, MAC_B),))))
    assert mask[24:] == bytes([0, 1, 0, 1, 0, 1]) + MAC_B
    reserve = encode_frame(frame(AoeCommand.RESERVE_RELEASE, ReserveArgument(1, (MAC_A, MAC_B))))
    assert reserve[24:] == bytes([1, 2]) + MAC_A + MAC_B


def well_formed_examples() -> list[Frame]:
    return [
        frame(AoeCommand.ATA, AtaArgument(0x01, 0, 1, 0x30, 5, data=b"\x55" * 512)),
        frame(AoeCommand.QUERY_CONFIG, ConfigArgument(8, 1, 2, 1, 0, b"config")),
        frame(AoeCommand.MAC_MASK_LIST, MaskArgument(1, 0, (MaskDirective(1, MAC_A), MaskDirective(2, MAC_B)))),
        frame(AoeCommand.RESERVE_RELEASE, ReserveArgument(2, (MAC_A,))),
    ]


EXPECTED_DEFECT_BY_COMMAND = {
    AoeCommand.ATA: {(24, 36): FrameDefect.TRUNCATED_ATA_ARGUMENT},
    AoeCommand.QUERY_CONFIG: {(24, 32): FrameDefect.TRUNCATED_CONFIG_ARGUMENT, (32, 38): FrameDefect.TRUNCATED_CONFIG_STRING},
    AoeCommand.MAC_MASK_LIST: {(24, 28): FrameDefect.TRUNCATED_MASK_ARGUMENT, (28, 44): FrameDefect.TRUNCATED_MASK_DIRECTIVES},
    AoeCommand.RESERVE_RELEASE: {(24, 26): FrameDefect.TRUNCATED_RESERVE_ARGUMENT, (26, 32): FrameDefect.TRUNCATED_RESERVE_MACS},
}


def expected_defect(command: int, length: int) -> FrameDefect | None:
    if length < 14:
        return FrameDefect.TRUNCATED_ETHERNET_HEADER
    if length < 24:
        return FrameDefect.TRUNCATED_AOE_HEADER
    for (start, end), defect in EXPECTED_DEFECT_BY_COMMAND[command].items():
        if start <= length < end:
            return defect
    return None


@pytest.mark.parametrize("f", well_formed_examples(), ids=lambda f: AoeCommand(f.header.command).name)
def test_every_truncation_point_gives_its_defect_or_a_shorter_ata_payload(f):
    wire = encode_frame(f)
    for length in range(len(wire)):
        defect = expected_defect(f.header.command, length)
        if defect is None:
            decoded = decode_frame(wire[:length])
            assert decoded.header.command == AoeCommand.ATA, "only ATA data may be cut short and still decode"
            assert decoded.argument.data == f.argument.data[: length - 36]
            continue
        with pytest.raises(MalformedFrame) as caught:
            decode_frame(wire[:length])
        assert caught.value.defect is defect
        assert str(caught.value) == defect.value


def test_other_ethertype_is_not_aoe():
    wire = bytearray(encode_frame(well_formed_examples()[0]))
    wire[12:14] = b"\x08\x00"
    with pytest.raises(MalformedFrame, match="ethertype is not AoE"):
        decode_frame(bytes(wire))


def test_config_string_longer_than_1024_is_malformed_even_if_present():
    wire = bytearray(encode_frame(frame(AoeCommand.QUERY_CONFIG, ConfigArgument(0, 0, 0, 1, 4, b""))))
    wire[30:32] = (1025).to_bytes(2, "big")
    with pytest.raises(MalformedFrame) as caught:
        decode_frame(bytes(wire) + b"x" * 1025)
    assert caught.value.defect is FrameDefect.CONFIG_STRING_TOO_LONG


def test_a_wrong_version_still_decodes_so_the_receiver_can_answer_it():
    f = frame(AoeCommand.QUERY_CONFIG, ConfigArgument(0, 0, 0, 1, 0), version=2)
    assert decode_frame(encode_frame(f)).header.version == 2


def test_short_frames_arrive_padded_to_the_ethernet_minimum():
    f = well_formed_examples()[1]
    wire = encode_frame(f)
    padded = wire + bytes(ETHERNET_MIN_FRAME_BYTES - len(wire))
    assert decode_frame(padded) == f


@given(st.binary(max_size=200))
@example(b"")
@example(bytes(13))
@example(bytes(12) + b"\x88\xa2" + bytes(9))
@example(bytes(12) + b"\x88\xa2" + bytes([0x10, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9]))
def test_any_bytes_decode_to_a_frame_or_a_named_defect(data):
    try:
        f = decode_frame(data)
    except MalformedFrame as error:
        assert isinstance(error.defect, FrameDefect)
        return
    assert encode_frame(f) == data[: len(encode_frame(f))], "a decoded frame re-encodes to the bytes it came from"


@given(frames(), st.data())
def test_corrupting_any_byte_never_escapes_the_defect_type(f, data):
    wire = bytearray(encode_frame(f))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    try:
        decode_frame(bytes(wire))
    except MalformedFrame:
        pass
