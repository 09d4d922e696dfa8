"""The spec target: ATA, Query Config, MAC Mask List, Reserve/Release, every error and every drop."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spec.aoe.constants import (
    BROADCAST_MAC,
    BROADCAST_MAJOR,
    BROADCAST_MINOR,
    SECTOR_BYTES,
    AoeError,
    AtaErrorBit,
    AtaFlag,
    AtaStatus,
    ConfigCommand,
    HeaderFlag,
    MaskCommand,
    MaskDirective,
    MaskError,
    ReserveCommand,
)
from spec.aoe.frames import MaskDirective as Entry
from spec.aoe.frames import OpaqueArgument, argument_bytes, decode_aoe_header, decode_frame, encode_frame
from tests.aoe.strategies import frames
from tests.aoe.target_helpers import (
    HOST_A,
    HOST_B,
    JUMBO_PORT,
    PORT,
    SHELF,
    SLOT,
    TARGET_MAC,
    ata,
    config,
    mask,
    new_target,
    only_response,
    request,
    reserve,
)

READ, READ_EXT, WRITE, WRITE_EXT = 0x20, 0x24, 0x30, 0x34
IDENTIFY, FLUSH, FLUSH_EXT, CHECK_POWER = 0xEC, 0xE7, 0xEA, 0xE5


def sectors(*fills: int) -> bytes:
    return b"".join(bytes([f]) * SECTOR_BYTES for f in fills)


def assert_error(response, error: AoeError):
    assert response.header.flags == HeaderFlag.RESPONSE | HeaderFlag.ERROR
    assert response.header.error == error


# ATA.


@pytest.mark.parametrize("write, read", [(WRITE, READ), (WRITE_EXT, READ_EXT)])
def test_write_then_read_returns_the_data(write, read):
    target = new_target()
    written = only_response(target, ata(write, lba=10, count=2, data=sectors(1, 2)))
    assert written.header.flags == HeaderFlag.RESPONSE and written.header.tag == 0x11223344
    assert written.argument.cmd_status == AtaStatus.DRDY and written.argument.err_feature == 0
    read_back = only_response(target, ata(read, lba=10, count=2))
    assert read_back.argument.data == sectors(1, 2)
    assert read_back.argument.sector_count == 2 and read_back.argument.lba == 10


def test_lba28_commands_ignore_the_device_bits_above_bit_27():
    target = new_target()
    only_response(target, ata(WRITE, lba=0xE0000003, data=sectors(7)))
    assert only_response(target, ata(READ_EXT, lba=3)).argument.data == sectors(7)


def test_lba48_reaches_past_28_bits():
    target = new_target(sectors=(1 << 28) + 4)
    only_response(target, ata(WRITE_EXT, lba=(1 << 28) + 1, data=sectors(9)))
    assert only_response(target, ata(READ_EXT, lba=(1 << 28) + 1)).argument.data == sectors(9)


@pytest.mark.parametrize("cmd", [READ, READ_EXT, WRITE, WRITE_EXT])
def test_out_of_range_is_an_ata_idnf_error_and_changes_nothing(cmd):
    target = new_target(sectors=8)
    data = sectors(3, 3) if cmd in (WRITE, WRITE_EXT) else b""
    response = only_response(target, ata(cmd, lba=7, count=2, data=data))
    assert response.header.flags == HeaderFlag.RESPONSE, "an ATA error is a normal AoE response"
    assert response.argument.cmd_status == AtaStatus.DRDY | AtaStatus.ERR
    assert response.argument.err_feature == AtaErrorBit.IDNF
    assert response.argument.data == b""
    assert only_response(target, ata(READ, lba=7)).argument.data == sectors(0)


@pytest.mark.parametrize(
    "frame",
    [
        ata(READ, count=0),
        ata(READ, count=3),  # MTU 1500 carries 2 sectors
        ata(WRITE, count=1, data=sectors(1)[:-1]),
        ata(WRITE, count=1, data=sectors(1), aflags=0),
        ata(READ, count=1, aflags=AtaFlag.WRITE),
    ],
    ids=["zero-count", "above-max", "short-data", "write-without-W", "read-with-W"],
)
def test_bad_ata_arguments_are_answered_with_bad_argument(frame):
    target = new_target()
    response = only_response(target, frame)
    assert_error(response, AoeError.BAD_ARGUMENT)
    assert argument_bytes(encode_frame(response)) == argument_bytes(frame), "the request's argument is echoed"
    assert target.store.read(0, 1) == sectors(0)


def test_a_jumbo_port_accepts_17_sectors():
    target = new_target()
    response = only_response(target, ata(WRITE_EXT, count=17, data=sectors(*range(17))), JUMBO_PORT)
    assert response.argument.cmd_status == AtaStatus.DRDY
    assert only_response(target, ata(READ_EXT, count=17), JUMBO_PORT).argument.data == sectors(*range(17))


def test_identify_device_reports_the_capacity():
    target = new_target(sectors=1000)
    response = only_response(target, ata(IDENTIFY))
    data = response.argument.data
    assert len(data) == SECTOR_BYTES and response.argument.cmd_status == AtaStatus.DRDY
    word = lambda i: int.from_bytes(data[2 * i : 2 * i + 2], "little")  # noqa: E731
    assert word(60) | word(61) << 16 == 1000
    assert word(100) | word(101) << 16 == 1000
    assert word(83) & 0x0400, "48-bit addressing supported"


@pytest.mark.parametrize("flush", [FLUSH, FLUSH_EXT])
def test_flush_cache_makes_earlier_writes_survive_a_crash(flush):
    target = new_target()
    only_response(target, ata(WRITE, lba=1, data=sectors(5)))
    assert only_response(target, ata(flush)).argument.cmd_status == AtaStatus.DRDY
    only_response(target, ata(WRITE, lba=2, data=sectors(6)))
    target.store.crash()
    assert target.store.read(1, 2) == sectors(5, 0), "flushed write kept, later unflushed write lost"


def test_check_power_mode_reports_active():
    response = only_response(new_target(), ata(CHECK_POWER, count=0))
    assert response.argument.sector_count == 0xFF and response.argument.cmd_status == AtaStatus.DRDY


def test_an_ata_command_the_target_lacks_is_aborted_in_ata_terms():
    response = only_response(new_target(), ata(0xC8))  # READ DMA has no meaning over AoE
    assert response.header.flags == HeaderFlag.RESPONSE
    assert response.argument.cmd_status == AtaStatus.DRDY | AtaStatus.ERR
    assert response.argument.err_feature == AtaErrorBit.ABRT


# AoE errors, one test each.


@pytest.mark.parametrize("command", [4, 0x7F, 0xF0, 0xFF])
def test_unrecognized_command(command):
    assert_error(only_response(new_target(), request(command, OpaqueArgument(b"xyz"))), AoeError.UNRECOGNIZED_COMMAND)


def test_bad_argument_for_a_truncated_argument():
    frame = config(ConfigCommand.READ)[:28]
    (response,) = new_target().process_frame(frame, PORT)
    header = decode_aoe_header(response)
    assert header.flags == HeaderFlag.RESPONSE | HeaderFlag.ERROR and header.error == AoeError.BAD_ARGUMENT
    assert argument_bytes(response) == argument_bytes(frame), "the malformed argument is echoed as it came"


def test_device_unavailable():
    target = new_target()
    target.state.available = False
    assert_error(only_response(target, ata(READ)), AoeError.DEVICE_UNAVAILABLE)
    assert only_response(target, config(ConfigCommand.READ)).header.flags == HeaderFlag.RESPONSE


def test_config_string_present():
    target = new_target()
    only_response(target, config(ConfigCommand.SET_IF_EMPTY, b"owner-a"))
    response = only_response(target, config(ConfigCommand.SET_IF_EMPTY, b"owner-b"))
    assert_error(response, AoeError.CONFIG_STRING_PRESENT)
    assert response.argument.config == b"owner-a", "the error shows the string in the way"
    assert target.state.config_string == b"owner-a"


def test_unsupported_version():
    assert_error(only_response(new_target(), ata(READ, version=2)), AoeError.UNSUPPORTED_VERSION)


def test_target_reserved():
    target = new_target()
    only_response(target, reserve(ReserveCommand.SET, [HOST_A]))
    assert_error(only_response(target, ata(READ, source=HOST_B)), AoeError.TARGET_RESERVED)
    assert only_response(target, ata(READ, source=HOST_A)).argument.cmd_status == AtaStatus.DRDY
    identify = only_response(target, ata(IDENTIFY, source=HOST_B))
    assert identify.header.flags == HeaderFlag.RESPONSE, "IDENTIFY stays open so initiators can discover"


# Silent drops.


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        bytes(13),
        ata(READ)[:20],
        ata(READ)[:12] + b"\x08\x00" + ata(READ)[14:],
        ata(READ, flags=HeaderFlag.RESPONSE),
        ata(READ, destination=HOST_B),
        ata(READ, major=SHELF + 1),
        ata(READ, minor=SLOT + 1),
        config(ConfigCommand.TEST_EXACT, b"nope"),
        config(ConfigCommand.TEST_PREFIX, b"nope"),
    ],
    ids=["empty", "short-ethernet", "short-header", "not-aoe", "response", "other-mac", "other-shelf",
         "other-slot", "test-exact-mismatch", "test-prefix-mismatch"],
)
def test_dropped_silently(frame):
    target = new_target()
    assert target.process_frame(frame, PORT) == []


def test_broadcast_address_shelf_and_slot_reach_the_target():
    frame = config(ConfigCommand.READ, destination=BROADCAST_MAC, major=BROADCAST_MAJOR, minor=BROADCAST_MINOR)
    response = only_response(new_target(), frame)
    assert (response.header.major, response.header.minor) == (SHELF, SLOT), "the response names the real slot"
    assert response.ethernet == type(response.ethernet)(HOST_A, TARGET_MAC)


# Query Config.


def test_query_config_read_advertises_buffers_and_sectors_per_port():
    target = new_target()
    response = only_response(target, config(ConfigCommand.READ))
    assert response.argument.buffer_count == 8 and response.argument.sector_count == 2
    assert response.argument.aoe_version == 1 and response.argument.ccmd == ConfigCommand.READ
    assert only_response(target, config(ConfigCommand.READ), JUMBO_PORT).argument.sector_count == 17


def test_query_config_subcommands():
    target = new_target()
    assert only_response(target, config(ConfigCommand.SET_IF_EMPTY, b"lab-7")).argument.config == b"lab-7"
    assert only_response(target, config(ConfigCommand.SET_IF_EMPTY, b"lab-7")).header.error == 0, "same string: fine"
    assert only_response(target, config(ConfigCommand.TEST_EXACT, b"lab-7")).argument.config == b"lab-7"
    assert target.process_frame(config(ConfigCommand.TEST_EXACT, b"lab"), PORT) == []
    assert only_response(target, config(ConfigCommand.TEST_PREFIX, b"lab")).argument.config == b"lab-7"
    assert only_response(target, config(ConfigCommand.TEST_PREFIX, b"")).argument.config == b"lab-7"
    assert only_response(target, config(ConfigCommand.FORCE_SET, b"other")).argument.config == b"other"
    assert only_response(target, config(ConfigCommand.READ)).argument.config == b"other"
    assert_error(only_response(target, config(9)), AoeError.BAD_ARGUMENT)
    assert target.state.config_string == b"other"


# MAC Mask List.


def test_mask_list_read_edit_and_effect():
    target = new_target()
    assert only_response(target, mask(MaskCommand.READ)).argument.directives == ()
    edit = [Entry(MaskDirective.ADD, HOST_A), Entry(MaskDirective.NONE, HOST_B), Entry(MaskDirective.ADD, HOST_A)]
    listed = only_response(target, mask(MaskCommand.EDIT, edit)).argument
    assert listed.merror == MaskError.NONE and listed.directives == (Entry(MaskDirective.NONE, HOST_A),)
    assert target.process_frame(ata(READ, source=HOST_B), PORT) == [], "a masked-out source is ignored"
    assert only_response(target, ata(READ, source=HOST_A)).argument.cmd_status == AtaStatus.DRDY
    only_response(target, mask(MaskCommand.EDIT, [Entry(MaskDirective.DELETE, HOST_A)], source=HOST_A))
    assert target.state.mask_list == ()
    assert only_response(target, ata(READ, source=HOST_B)).argument.cmd_status == AtaStatus.DRDY


def test_mask_list_full_applies_nothing():
    target = new_target()
    full = [Entry(MaskDirective.ADD, bytes([2, 0, 0, 0, 1, i])) for i in range(32)]
    only_response(target, mask(MaskCommand.EDIT, full[:31]))
    response = only_response(target, mask(MaskCommand.EDIT, [full[31], Entry(MaskDirective.ADD, HOST_B)], source=full[0].mac))
    assert response.header.flags == HeaderFlag.RESPONSE, "mask errors are in merror, not the AoE error field"
    assert response.argument.merror == MaskError.LIST_FULL
    assert response.argument.directives == (full[31],), "dir count = index of the failing directive"
    assert len(target.state.mask_list) == 31, "the edit applied nothing"


def test_mask_bad_directive_applies_nothing():
    target = new_target()
    response = only_response(target, mask(MaskCommand.EDIT, [Entry(MaskDirective.ADD, HOST_A), Entry(7, HOST_B)]))
    assert response.argument.merror == MaskError.BAD_DIRECTIVE and len(response.argument.directives) == 1
    assert target.state.mask_list == ()


def test_mask_unknown_subcommand_is_a_bad_argument():
    assert_error(only_response(new_target(), mask(5)), AoeError.BAD_ARGUMENT)


# Reserve/Release.


def test_reserve_release_subcommands():
    target = new_target()
    assert only_response(target, reserve(ReserveCommand.READ)).argument.macs == ()
    assert only_response(target, reserve(ReserveCommand.SET, [HOST_A, HOST_B])).argument.macs == (HOST_A, HOST_B)
    assert only_response(target, reserve(ReserveCommand.SET, [HOST_B], source=HOST_B)).argument.macs == (HOST_B,)
    assert_error(only_response(target, reserve(ReserveCommand.SET, [HOST_A])), AoeError.TARGET_RESERVED)
    assert only_response(target, reserve(ReserveCommand.FORCE_SET, [HOST_A])).argument.macs == (HOST_A,)
    assert only_response(target, reserve(ReserveCommand.SET, [])).argument.macs == (), "a holder releases"
    assert only_response(target, ata(READ, source=HOST_B)).header.error == 0
    assert_error(only_response(target, reserve(3)), AoeError.BAD_ARGUMENT)


# Whole-target properties.


@given(st.lists(frames(), max_size=12), st.lists(st.binary(max_size=80), max_size=4))
def test_any_input_gives_at_most_one_response_and_the_same_bytes_twice(requests, junk):
    inputs = [encode_frame(f) for f in requests] + junk
    one, two = new_target(), new_target()
    for frame in inputs:
        out = one.process_frame(frame, PORT)
        assert out == two.process_frame(frame, PORT), "the target is deterministic"
        assert len(out) <= 1
        for response in out:
            assert decode_frame(response).header.flags & HeaderFlag.RESPONSE
