"""The target's answers, request by request (AoEr11 §2–§3.4, ATA/ATAPI-7 §6)."""

import pytest

from impl.server.config import TargetConfig
from impl.server.frames import ATA_ARG, VERSION_SHIFT
from impl.server.initiator import ata_body, parse_response, request_frame
from impl.server.target import FIRMWARE_TEXT
from spec.aoe.constants import (
    AOE_VERSION,
    ATA_ARG_BYTES,
    BROADCAST_MAC,
    BROADCAST_MAJOR,
    BROADCAST_MINOR,
    CHECK_POWER_MODE_ACTIVE,
    CONFIG_STRING_MAX,
    SECTOR_BYTES,
    AoeCommand,
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
    sectors_per_frame,
)
from spec.aoe.identify import identify_device_data
from spec.aoe.target import (
    CHECK_POWER_MODE,
    FLUSH_CACHE,
    FLUSH_CACHE_EXT,
    IDENTIFY_DEVICE,
    READ_SECTORS,
    READ_SECTORS_EXT,
    WRITE_SECTORS,
    WRITE_SECTORS_EXT,
)
from tests.server.conftest import CLIENT_A as A
from tests.server.conftest import CLIENT_B as B
from tests.server.conftest import IMAGE_SECTORS, SERVER_MAC, image_bytes, make_target

READ_EXT, WRITE_EXT, READ28, WRITE28 = READ_SECTORS_EXT, WRITE_SECTORS_EXT, READ_SECTORS, WRITE_SECTORS
STATUS_DRDY, STATUS_ERR = AtaStatus.DRDY, AtaStatus.ERR
ERROR_ABRT, ERROR_IDNF = AtaErrorBit.ABRT, AtaErrorBit.IDNF
BASE = image_bytes(IMAGE_SECTORS)
MTU, JUMBO_MTU = 1500, 9000  # make_target's default, and jumbo frames


def ask(target, command, body=b"", src=A, dst=SERVER_MAC, tag=7, major=0, minor=0, **options):
    return [parse_response(f) for f in target.process_frame(request_frame(dst, src, major, minor, command, tag, body, **options))]


def ata(target, cmd, lba=0, count=0, data=b"", src=A, **options):
    (r,) = ask(target, AoeCommand.ATA, ata_body(cmd, lba, count, data, write=bool(data)), src=src, **options)
    return r


def status(r):
    return r.fields[3]


def test_read_returns_the_base_image(target):
    r = ata(target, READ_EXT, 5, 2)
    assert (r.flags, r.error, status(r), r.tag) == (HeaderFlag.RESPONSE, 0, STATUS_DRDY, 7)
    assert r.data == BASE[5 * SECTOR_BYTES : 7 * SECTOR_BYTES]
    assert (r.src, r.dst) == (SERVER_MAC, A)


def test_write_then_read_back(target):
    w = ata(target, WRITE_EXT, 9, 2, b"w" * 1024)
    assert status(w) == STATUS_DRDY and w.data == b""
    assert ata(target, READ_EXT, 8, 2).data == BASE[8 * SECTOR_BYTES : 9 * SECTOR_BYTES] + b"w" * SECTOR_BYTES


def test_lba28_ignores_the_device_nibble(target):
    """ATA/ATAPI-7 §4.2: byte 3's high nibble is the device register, not LBA bits."""
    r = ata(target, READ28, (0xE0 << 24) | 3, 1)
    assert r.data == BASE[3 * SECTOR_BYTES : 4 * SECTOR_BYTES]


def test_clients_have_separate_overlays(target):
    ata(target, WRITE_EXT, 0, 1, b"a" * SECTOR_BYTES, src=A)
    assert ata(target, READ_EXT, 0, 1, src=B).data == BASE[:SECTOR_BYTES]
    ata(target, WRITE_EXT, 0, 1, b"b" * SECTOR_BYTES, src=B)
    assert ata(target, READ_EXT, 0, 1, src=A).data == b"a" * SECTOR_BYTES


@pytest.mark.parametrize("lba,count", [(IMAGE_SECTORS - 1, 2), (IMAGE_SECTORS, 1), (2**48 - 1, 1)])
def test_out_of_range_is_idnf(target, lba, count):
    r = ata(target, READ_EXT, lba, count)
    assert (status(r), r.fields[1], r.data) == (STATUS_DRDY | STATUS_ERR, ERROR_IDNF, b"")
    w = ata(target, WRITE_EXT, lba, count, b"x" * SECTOR_BYTES * count)
    assert (status(w), w.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_IDNF)


def test_more_sectors_than_a_frame_carries_is_bad_argument(target):
    r = ata(target, READ_EXT, 0, sectors_per_frame(MTU) + 1)
    assert (r.flags, r.error) == (HeaderFlag.RESPONSE | HeaderFlag.ERROR, AoeError.BAD_ARGUMENT)


def test_jumbo_frames_carry_more_sectors(tmp_path, images):
    t = make_target(tmp_path, images, mtu=JUMBO_MTU)
    most = sectors_per_frame(JUMBO_MTU)
    assert most > sectors_per_frame(MTU)
    assert ata(t, READ_EXT, 0, most).data == BASE[: most * SECTOR_BYTES]
    assert ata(t, READ_EXT, 0, most + 1).error == AoeError.BAD_ARGUMENT
    t.disks.close()


def test_write_without_its_data_is_bad_argument_and_changes_nothing(target):
    (r,) = ask(target, AoeCommand.ATA, ata_body(WRITE_EXT, 0, 2, b"x" * 700, write=True))
    assert r.error == AoeError.BAD_ARGUMENT
    assert ata(target, READ_EXT, 0, 2).data == BASE[:1024]


def test_write_to_read_only_image_is_aborted(tmp_path, images):
    t = make_target(tmp_path, images, [TargetConfig(0, 0, "base", None, read_only=True)])
    w = ata(t, WRITE_EXT, 0, 1, b"x" * SECTOR_BYTES)
    assert (status(w), w.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_ABRT)
    assert ata(t, READ_EXT, 0, 1).data == BASE[:SECTOR_BYTES]
    assert status(ata(t, FLUSH_CACHE_EXT)) == STATUS_DRDY
    t.disks.close()


def ata_text(data: bytes, first_word: int, words: int) -> str:
    """An IDENTIFY string field: two characters a word, the first in the high byte (ATA/ATAPI-7 V1 §6.16)."""
    field = data[2 * first_word : 2 * (first_word + words)]
    return bytes(b for i in range(0, len(field), 2) for b in (field[i + 1], field[i])).decode("ascii").rstrip()


def test_identify_is_the_specs_data_naming_the_client_and_the_image(target):
    serial, model = "SV" + A.hex().upper(), "storvisor base"  # the server's README: serial SV<client MAC>, model storvisor <image>
    r = ata(target, IDENTIFY_DEVICE, 0, 1)
    assert (ata_text(r.data, 10, 10), ata_text(r.data, 27, 20)) == (serial, model)
    assert r.data == identify_device_data(IMAGE_SECTORS, serial, model, FIRMWARE_TEXT)


def test_check_power_mode_and_flushes(target):
    assert ata(target, CHECK_POWER_MODE).fields[2] == CHECK_POWER_MODE_ACTIVE
    assert status(ata(target, FLUSH_CACHE)) == STATUS_DRDY
    assert status(ata(target, FLUSH_CACHE_EXT)) == STATUS_DRDY


def test_unknown_ata_command_is_aborted(target):
    r = ata(target, 0x99)
    assert (status(r), r.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_ABRT)


def test_unknown_aoe_command_and_wrong_version(target):
    assert ask(target, AoeCommand.VENDOR_FIRST)[0].error == AoeError.UNRECOGNIZED_COMMAND
    assert ask(target, 9)[0].error == AoeError.UNRECOGNIZED_COMMAND
    assert ask(target, AoeCommand.QUERY_CONFIG, bytes(8), version=2)[0].error == AoeError.UNSUPPORTED_VERSION


def test_frames_not_for_us_are_dropped(target):
    other = bytes.fromhex("02aabbccddee")
    assert ask(target, AoeCommand.QUERY_CONFIG, bytes(8), dst=other) == []
    assert ask(target, AoeCommand.QUERY_CONFIG, bytes(8), flags=HeaderFlag.RESPONSE) == []
    assert ask(target, AoeCommand.QUERY_CONFIG, bytes(8), major=1) == []
    assert target.process_frame(b"\x00" * 23) == []
    assert target.process_frame(b"\xff" * 12 + b"\x08\x00" + bytes(40)) == []  # IPv4, not AoE
    assert len(ask(target, AoeCommand.QUERY_CONFIG, bytes(8), dst=BROADCAST_MAC, major=BROADCAST_MAJOR, minor=BROADCAST_MINOR)) == 1


def test_truncated_arguments_are_bad_argument(target):
    for command in (AoeCommand.ATA, AoeCommand.QUERY_CONFIG, AoeCommand.MAC_MASK_LIST, AoeCommand.RESERVE_RELEASE):
        assert ask(target, command, b"\x00")[0].error == AoeError.BAD_ARGUMENT


def test_unlisted_clients_get_nothing(tmp_path, images):
    t = make_target(tmp_path, images, [TargetConfig(0, 0, "base", frozenset({A})), TargetConfig(0, 1, "other", frozenset({B}))])
    assert ask(t, AoeCommand.QUERY_CONFIG, bytes(8), src=B) == []
    assert ata(t, READ_EXT, 0, 1, src=A).data == BASE[:SECTOR_BYTES]
    assert ata(t, READ_EXT, 0, 1, src=B, minor=1).data == image_bytes(IMAGE_SECTORS, seed=2)[:SECTOR_BYTES]
    found = ask(t, AoeCommand.QUERY_CONFIG, bytes(8), src=B, dst=BROADCAST_MAC, major=BROADCAST_MAJOR, minor=BROADCAST_MINOR)
    assert [(r.major, r.minor) for r in found] == [(0, 1)]
    t.disks.close()


def config_request(ccmd, string=b""):
    return bytes([0, 0, 0, 0, 0, AOE_VERSION << VERSION_SHIFT | ccmd]) + len(string).to_bytes(2, "big") + string


def test_query_config_reports_buffers_sectors_and_string(target):
    (r,) = ask(target, AoeCommand.QUERY_CONFIG, config_request(ConfigCommand.READ))
    buffers, _firmware, sectors, vercmd, length = r.fields
    assert (buffers, sectors, vercmd >> VERSION_SHIFT, length, r.data) == (target.config.buffer_count, sectors_per_frame(MTU), AOE_VERSION, 0, b"")


def test_config_string_commands(target):
    def q(ccmd, s):
        return ask(target, AoeCommand.QUERY_CONFIG, config_request(ccmd, s))

    assert q(ConfigCommand.SET_IF_EMPTY, b"hello")[0].data == b"hello"
    assert q(ConfigCommand.SET_IF_EMPTY, b"other")[0].error == AoeError.CONFIG_STRING_PRESENT
    assert q(ConfigCommand.SET_IF_EMPTY, b"hello")[0].error == 0
    assert q(ConfigCommand.TEST_EXACT, b"hell") == []
    assert len(q(ConfigCommand.TEST_EXACT, b"hello")) == 1
    assert len(q(ConfigCommand.TEST_PREFIX, b"hell")) == 1
    assert q(ConfigCommand.TEST_PREFIX, b"help") == []
    assert q(ConfigCommand.FORCE_SET, b"other")[0].data == b"other"
    assert q(7, b"")[0].error == AoeError.BAD_ARGUMENT
    assert q(ConfigCommand.FORCE_SET, b"x" * (CONFIG_STRING_MAX + 1))[0].error == AoeError.BAD_ARGUMENT
    bad_length = bytes([0, 0, 0, 0, 0, AOE_VERSION << VERSION_SHIFT | ConfigCommand.FORCE_SET]) + (10).to_bytes(2, "big") + b"abc"
    assert ask(target, AoeCommand.QUERY_CONFIG, bad_length)[0].error == AoeError.BAD_ARGUMENT
    assert q(ConfigCommand.READ, b"")[0].data == b"other"


def mask_request(mcmd, directives=()):
    return bytes([0, mcmd, 0, len(directives)]) + b"".join(bytes([0, d]) + m for d, m in directives)


def test_mac_mask_list_admits_only_listed_clients(target):
    (r,) = ask(target, AoeCommand.MAC_MASK_LIST, mask_request(MaskCommand.EDIT, [(MaskDirective.ADD, A), (MaskDirective.ADD, A)]))
    assert (r.fields[1], r.fields[2], r.data) == (MaskError.NONE, 1, b"\x00\x00" + A)
    assert ask(target, AoeCommand.QUERY_CONFIG, bytes(8), src=B) == []
    assert len(ask(target, AoeCommand.QUERY_CONFIG, bytes(8), src=A)) == 1
    (r,) = ask(target, AoeCommand.MAC_MASK_LIST, mask_request(MaskCommand.EDIT, [(MaskDirective.ADD, B), (9, A), (MaskDirective.DELETE, A)]))
    assert (r.fields[1], r.fields[2]) == (MaskError.BAD_DIRECTIVE, 1)  # names the second directive
    (r,) = ask(target, AoeCommand.MAC_MASK_LIST, mask_request(MaskCommand.READ))
    assert r.data == b"\x00\x00" + A  # an edit that fails changes nothing
    (r,) = ask(target, AoeCommand.MAC_MASK_LIST, mask_request(MaskCommand.EDIT, [(MaskDirective.ADD, B)]))
    assert r.data == b"\x00\x00" + A + b"\x00\x00" + B
    assert ask(target, AoeCommand.MAC_MASK_LIST, mask_request(5))[0].error == AoeError.BAD_ARGUMENT
    assert ask(target, AoeCommand.MAC_MASK_LIST, bytes([0, 1, 0, 3]))[0].error == AoeError.BAD_ARGUMENT


def reserve_request(rcmd, macs=()):
    return bytes([rcmd, len(macs)]) + b"".join(macs)


def test_reservation_keeps_others_out_until_released(target):
    (r,) = ask(target, AoeCommand.RESERVE_RELEASE, reserve_request(ReserveCommand.SET, [A]), src=A)
    assert (r.error, r.fields, r.data) == (0, (ReserveCommand.SET, 1), A)
    assert ata(target, READ_EXT, 0, 1, src=A).data == BASE[:SECTOR_BYTES]
    (blocked,) = ask(target, AoeCommand.ATA, ata_body(READ_EXT, 0, 1), src=B)
    assert blocked.error == AoeError.TARGET_RESERVED
    assert ata(target, IDENTIFY_DEVICE, 0, 1, src=B).data  # AoEr11 §3.4: IDENTIFY stays allowed
    assert ask(target, AoeCommand.RESERVE_RELEASE, reserve_request(ReserveCommand.SET, [B]), src=B)[0].error == AoeError.TARGET_RESERVED
    assert ask(target, AoeCommand.RESERVE_RELEASE, reserve_request(ReserveCommand.READ), src=B)[0].data == A
    assert ask(target, AoeCommand.RESERVE_RELEASE, reserve_request(ReserveCommand.SET), src=A)[0].fields == (ReserveCommand.SET, 0)
    assert ata(target, READ_EXT, 0, 1, src=B).data == BASE[:SECTOR_BYTES]
    assert ask(target, AoeCommand.RESERVE_RELEASE, bytes([ReserveCommand.FORCE_SET, 2]) + A)[0].error == AoeError.BAD_ARGUMENT
    assert ask(target, AoeCommand.RESERVE_RELEASE, reserve_request(3))[0].error == AoeError.BAD_ARGUMENT


def test_duplicates_and_counters(target):
    ata(target, READ_EXT, 0, 1, tag=5)
    ata(target, READ_EXT, 0, 1, tag=5)  # a network duplicate: the same tag
    ata(target, WRITE_EXT, 0, 1, b"z" * SECTOR_BYTES, tag=6)
    ata(target, WRITE_EXT, 0, 1, b"z" * SECTOR_BYTES, tag=7)  # a retransmission: the same request, a new tag
    ata(target, READ_EXT, 1, 1, tag=8)
    c = target.disks.counters[A]
    assert (c.requests, c.duplicates, c.read_bytes, c.written_bytes) == (5, 2, 1536, 1024)


def test_response_echoes_the_ata_registers(target):
    r = ata(target, READ_EXT, 0x12, 2)
    assert r.fields[:3] == (AtaFlag.EXTENDED, 0, 2) and r.fields[4] == (0x12).to_bytes(6, "little") and ATA_ARG.size == ATA_ARG_BYTES


@pytest.mark.parametrize("body", [ata_body(READ_EXT, 0, 0), ata_body(READ_EXT, 0, 1, write=True), ata_body(WRITE_EXT, 0, 1, b"x" * SECTOR_BYTES)])
def test_zero_count_and_a_wrong_write_flag_are_bad_arguments(target, body):
    (r,) = ask(target, AoeCommand.ATA, body)
    assert r.error == AoeError.BAD_ARGUMENT


def test_flush_is_answered_only_after_fdatasync_of_the_overlay(target, monkeypatch):
    """ATA/ATAPI-7 V1 §6: FLUSH CACHE (EXT) completes once the writes are on stable storage."""
    import os

    ata(target, WRITE_EXT, 0, 1, b"f" * SECTOR_BYTES)
    synced = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    overlay_fd = target.disks.disks[(A, "base", False)].overlay.fd
    for code in (FLUSH_CACHE, FLUSH_CACHE_EXT):
        assert status(ata(target, code)) == STATUS_DRDY
    assert synced == [overlay_fd] * 3, "the first flush syncs the data, then the header naming the grown journal; the second only the data"


def test_a_failing_flush_is_reported_as_aborted(target, monkeypatch):
    import os

    ata(target, WRITE_EXT, 0, 1, b"f" * SECTOR_BYTES)

    def broken(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    r = ata(target, FLUSH_CACHE_EXT)
    assert (status(r), r.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_ABRT)


def test_a_write_the_filesystem_refuses_is_aborted_and_the_client_keeps_its_data(target):
    """A full disk (the file size limit) under the overlay: the write is answered ABRT, counted as an
    error, and the sectors still read as before it; the next write that fits succeeds."""
    import resource

    ata(target, WRITE_EXT, 0, 1, b"f" * SECTOR_BYTES)  # the overlay exists; the route is in the data path
    ata(target, WRITE_EXT, 0, 1, b"g" * SECTOR_BYTES)
    overlay = target.disks.disks[(A, "base", False)].overlay
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (overlay.journal_end, hard))
    try:
        refused = ata(target, WRITE_EXT, 8, 2, b"h" * 1024)  # new sectors: a journal record is needed
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert (status(refused), refused.fields[1]) == (STATUS_DRDY | STATUS_ERR, ERROR_ABRT)
    assert ata(target, READ_EXT, 8, 2).data == BASE[8 * SECTOR_BYTES : 10 * SECTOR_BYTES]
    assert ata(target, READ_EXT, 0, 1).data == b"g" * SECTOR_BYTES
    assert target.disks.counters[A].errors == 1
    assert status(ata(target, WRITE_EXT, 8, 2, b"i" * 1024)) == STATUS_DRDY
    assert ata(target, READ_EXT, 8, 2).data == b"i" * 1024
