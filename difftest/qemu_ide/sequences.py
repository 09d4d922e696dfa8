"""The register sequences compared between QEMU's IDE disk and the spec, in the order they run.

They run one after another on one channel, so each starts from the state the previous one
left; the first is a software reset, which puts both sides in the same known state.
Device Control always keeps nIEN set: the probe polls, and INTRQ is not visible at a port.
"""

from difftest.qemu_ide.script import (
    CONTROL,
    DEVICE,
    ERROR_FEATURES,
    LBA_HIGH,
    LBA_LOW,
    LBA_MID,
    SECTOR_COUNT,
    STATUS_COMMAND,
    Sequence,
)
from impl.testbed.probe.probe import DISK_SECTORS, FIRST_FREE_LBA
from spec.ata.commands import COMMANDS_BY_CODE
from spec.ata.constants import DEFAULT_HEADS, DEFAULT_SECTORS_PER_TRACK, FEATURE_SET_TRANSFER_MODE, HOB, NIEN, SRST

WORDS_PER_SECTOR = 256
UNKNOWN_COMMAND = 0x0B  # in neither the spec's table nor QEMU's
BAD_SET_FEATURES_SUBCOMMAND = 0x77  # no feature of ATA/ATAPI-7 V1 §6, SET FEATURES, has this code
MULTIPLE_COUNT = 8
SEABIOS_LBA = FIRST_FREE_LBA + 1
READ_LBA = FIRST_FREE_LBA + 5
WRITE_LBA = FIRST_FREE_LBA + 20
LBA48_LBA = FIRST_FREE_LBA + 40
MULTIPLE_LBA = FIRST_FREE_LBA + 60
WRITE_MULTIPLE_LBA = FIRST_FREE_LBA + 80
WRITE_MULTIPLE_FIRST_WORD = 0x4242
DRQ_LBA = FIRST_FREE_LBA + 90
CHS_LBA = 100  # cylinder 0, head 1, sector 38 in the 16-head, 63-sector translation
UNKNOWN_COMMAND_LBA = 0x0ABCDE  # registers with a known content, which an abort leaves alone
WRITE_FIRST_WORDS = (0x1357, 0x8ACE)  # write-data patterns of the two written sectors

assert UNKNOWN_COMMAND not in COMMANDS_BY_CODE


def software_reset() -> Sequence:
    """SRST set then released: BSY, then the signature, Error 01h (V2 §11, software reset)."""
    s = Sequence("software reset")
    s.out(CONTROL, SRST | NIEN).out(CONTROL, NIEN)
    s.settle("settled")
    return s.task_file("after reset")


def seabios_read() -> Sequence:
    """SeaBIOS's int 13h sector read, as observed (PLATFORM.md): polled PIO, LBA28, one sector."""
    s = Sequence("seabios sector read")
    s.out(CONTROL, 0x08 | NIEN).read("status before", STATUS_COMMAND)
    s.out(DEVICE, 0xE0).out(ERROR_FEATURES, 0).out(SECTOR_COUNT, 1)
    s.out(LBA_LOW, SEABIOS_LBA & 0xFF).out(LBA_MID, SEABIOS_LBA >> 8).out(LBA_HIGH, 0)
    s.command("READ SECTORS").settle("status polled", STATUS_COMMAND)
    s.read_words("sector", WORDS_PER_SECTOR)
    s.read("alternate status after", CONTROL).read("status after", STATUS_COMMAND)
    return s.out(CONTROL, 0x08)


def read_sectors() -> Sequence:
    """READ SECTORS of three sectors: DRQ per sector, every data word, the registers after."""
    s = Sequence("read sectors x3")
    s.out(CONTROL, NIEN).lba28(READ_LBA, 3).command("READ SECTORS")
    for sector in range(3):
        s.settle(f"sector {sector} ready")
        s.read(f"sector {sector} status", STATUS_COMMAND)
        s.read_words(f"sector {sector}", WORDS_PER_SECTOR)
    s.settle("settled")
    return s.task_file("after")


def write_then_read() -> Sequence:
    """WRITE SECTORS of two sectors, then READ SECTORS of them: what was written comes back."""
    s = Sequence("write sectors x2 then read")
    s.lba28(WRITE_LBA, 2).command("WRITE SECTORS")
    for sector, first in enumerate(WRITE_FIRST_WORDS):
        s.settle(f"write sector {sector} ready")
        s.read(f"write sector {sector} status", STATUS_COMMAND)
        s.write_words(WORDS_PER_SECTOR, first)
    s.settle("write settled")
    s.task_file("after write")
    s.lba28(WRITE_LBA, 2).command("READ SECTORS")
    for sector in range(2):
        s.settle(f"read sector {sector} ready")
        s.read_words(f"read sector {sector}", WORDS_PER_SECTOR)
    s.settle("read settled")
    return s.read("status after read", STATUS_COMMAND)


def lba48_read() -> Sequence:
    """The two-deep registers read with HOB clear and set; READ SECTORS EXT; the registers after."""
    s = Sequence("lba48 read sectors ext")
    s.out(CONTROL, NIEN)
    for port, first, second in ((SECTOR_COUNT, 0xA1, 0xB2), (LBA_LOW, 0xC3, 0xD4), (LBA_MID, 0xE5, 0xF6), (LBA_HIGH, 0x17, 0x28)):
        s.out(port, first).out(port, second)
    for hob in (0, HOB):
        for label, port in (("sector count", SECTOR_COUNT), ("lba low", LBA_LOW), ("lba mid", LBA_MID), ("lba high", LBA_HIGH)):
            s.out(CONTROL, hob | NIEN).read(f"written, hob {hob >> 7}: {label}", port)
    s.out(CONTROL, NIEN).lba48(LBA48_LBA, 2).command("READ SECTORS EXT")
    for sector in range(2):
        s.settle(f"sector {sector} ready")
        s.read_words(f"sector {sector}", WORDS_PER_SECTOR)
    s.settle("settled")
    s.task_file("after, hob 0")
    s.out(CONTROL, HOB | NIEN).task_file("after, hob 1")
    return s.out(CONTROL, NIEN)


def unknown_command() -> Sequence:
    """A code the device does not implement: ERR with ABRT (V1 §6, "unsupported commands")."""
    s = Sequence("unknown command")
    s.lba28(UNKNOWN_COMMAND_LBA, 0x5A).command(UNKNOWN_COMMAND).settle("settled")
    return s.task_file("after")


def beyond_capacity() -> Sequence:
    """READ SECTORS and READ SECTORS EXT of the first sector past the end: ERR with IDNF (V1 §6, READ SECTORS)."""
    s = Sequence("lba beyond capacity")
    s.lba28(DISK_SECTORS, 1).command("READ SECTORS").settle("lba28 settled")
    s.task_file("lba28 after")
    s.lba48(1 << 32, 1).command("READ SECTORS EXT").settle("lba48 settled")
    return s.task_file("lba48 after")


def set_features_bad_subcommand() -> Sequence:
    """SET FEATURES with a subcommand no feature set defines: ERR with ABRT (V1 §6, SET FEATURES)."""
    s = Sequence("set features bad subcommand")
    s.out(DEVICE, 0xE0).out(ERROR_FEATURES, BAD_SET_FEATURES_SUBCOMMAND).command("SET FEATURES")
    s.settle("settled")
    return s.task_file("after")


def check_power_mode() -> Sequence:
    """CHECK POWER MODE: Sector Count FFh, active or idle (V1 §6, CHECK POWER MODE)."""
    s = Sequence("check power mode")
    s.out(DEVICE, 0xE0).out(SECTOR_COUNT, 0x5A).command("CHECK POWER MODE").settle("settled")
    return s.task_file("after")


def flush_cache() -> Sequence:
    """FLUSH CACHE and FLUSH CACHE EXT complete without error (V1 §6, FLUSH CACHE)."""
    s = Sequence("flush cache")
    s.out(DEVICE, 0xE0).command("FLUSH CACHE").settle("flush settled")
    s.read("flush: error", ERROR_FEATURES).read("flush: status", STATUS_COMMAND)
    s.out(DEVICE, 0x40).command("FLUSH CACHE EXT").settle("flush ext settled")
    return s.read("flush ext: error", ERROR_FEATURES).read("flush ext: status", STATUS_COMMAND)


def identify_device() -> Sequence:
    """SET MULTIPLE MODE and a transfer mode first, so words 59, 63 and 88 have a defined value; then IDENTIFY DEVICE."""
    s = Sequence("identify device")
    s.out(DEVICE, 0xA0).out(SECTOR_COUNT, MULTIPLE_COUNT).command("SET MULTIPLE MODE").settle("set multiple settled")
    s.read("set multiple: error", ERROR_FEATURES)
    s.out(ERROR_FEATURES, FEATURE_SET_TRANSFER_MODE).out(SECTOR_COUNT, 0x22).command("SET FEATURES")
    s.settle("set transfer mode settled")
    s.read("set transfer mode: error", ERROR_FEATURES)
    s.command("IDENTIFY DEVICE").settle("ready")
    s.read("status", STATUS_COMMAND)
    s.read_words("identify", WORDS_PER_SECTOR)
    s.settle("settled")
    return s.task_file("after")


def read_multiple() -> Sequence:
    """READ MULTIPLE of ten sectors after SET MULTIPLE MODE 8: a block of eight, then the rest (V1 §6, READ MULTIPLE)."""
    s = Sequence("read multiple")
    s.lba28(MULTIPLE_LBA, 10).command("READ MULTIPLE")
    for block, sectors in enumerate((MULTIPLE_COUNT, 10 - MULTIPLE_COUNT)):
        s.settle(f"block {block} ready")
        s.read(f"block {block} status", STATUS_COMMAND)
        s.read_words(f"block {block}", sectors * WORDS_PER_SECTOR)
    s.settle("settled")
    return s.read("error", ERROR_FEATURES).read("status", STATUS_COMMAND)


def read_verify() -> Sequence:
    """READ VERIFY SECTORS inside the disk and past its end: no data, the same errors as a read."""
    s = Sequence("read verify sectors")
    s.lba28(READ_LBA, 4).command("READ VERIFY SECTORS").settle("inside settled")
    s.read("inside: error", ERROR_FEATURES).read("inside: status", STATUS_COMMAND)
    s.lba28(DISK_SECTORS - 1, 2).command("READ VERIFY SECTORS").settle("past end settled")
    return s.read("past end: error", ERROR_FEATURES)


def chs_read() -> Sequence:
    """READ SECTORS addressed by cylinder, head and sector in the default translation (V1 §6, IDENTIFY words 1, 3, 6)."""
    s = Sequence("chs read")
    cylinder, rest = divmod(CHS_LBA, DEFAULT_HEADS * DEFAULT_SECTORS_PER_TRACK)
    head, sector = divmod(rest, DEFAULT_SECTORS_PER_TRACK)
    s.out(DEVICE, 0xA0 | head).out(SECTOR_COUNT, 1).out(LBA_LOW, sector + 1)
    s.out(LBA_MID, cylinder & 0xFF).out(LBA_HIGH, cylinder >> 8).command("READ SECTORS")
    s.settle("ready")
    s.read_words("sector", WORDS_PER_SECTOR)
    s.settle("settled")
    return s.read("error", ERROR_FEATURES).read("status", STATUS_COMMAND)


def execute_device_diagnostic() -> Sequence:
    """EXECUTE DEVICE DIAGNOSTIC: the signature and Error 01h, device 0 passed, device 1 absent (V1 §6)."""
    s = Sequence("execute device diagnostic")
    s.lba28(0x0ABCDE, 0x5A).command("EXECUTE DEVICE DIAGNOSTIC").settle("settled")
    return s.task_file("after")


def absent_device_1() -> Sequence:
    """Device 1 selected but absent: what the registers read for it (V1 §7, device 0 answers for an absent device 1)."""
    s = Sequence("absent device 1")
    s.lba28(0x0ABCDE, 0x5A).out(DEVICE, 0xB0)
    s.read("alternate status", CONTROL).task_file("device 1")
    s.out(DEVICE, 0xA0)
    return s.read("device 0 again: status", STATUS_COMMAND)


def data_without_drq() -> Sequence:
    """The Data register read while no data waits: undefined in V1 §7, compared to see what each side does."""
    s = Sequence("data without drq")
    s.read_words("idle", 2)
    return s.read("status", STATUS_COMMAND)


def write_multiple() -> Sequence:
    """WRITE MULTIPLE of three sectors, one partial block after SET MULTIPLE MODE 8; READ SECTORS brings them back."""
    s = Sequence("write multiple")
    s.lba28(WRITE_MULTIPLE_LBA, 3).command("WRITE MULTIPLE").settle("block ready")
    s.read("block status", STATUS_COMMAND)
    s.write_words(3 * WORDS_PER_SECTOR, WRITE_MULTIPLE_FIRST_WORD)
    s.settle("write settled")
    s.read("write: error", ERROR_FEATURES).read("write: status", STATUS_COMMAND)
    s.lba28(WRITE_MULTIPLE_LBA, 3).command("READ SECTORS")
    for sector in range(3):
        s.settle(f"read sector {sector} ready")
        s.read_words(f"read sector {sector}", WORDS_PER_SECTOR)
    s.settle("read settled")
    return s.read("status after read", STATUS_COMMAND)


def write_clears_hob() -> Sequence:
    """A write to the command block clears HOB: the next read gives the current content (V1 §7, Device Control)."""
    s = Sequence("command block write clears hob")
    s.out(CONTROL, NIEN).out(SECTOR_COUNT, 0x11).out(SECTOR_COUNT, 0x22)
    s.out(CONTROL, HOB | NIEN).read("hob set: sector count", SECTOR_COUNT)
    s.out(LBA_LOW, 0x33).read("after a write: sector count", SECTOR_COUNT)
    return s.out(CONTROL, NIEN)


def writes_ignored_during_drq() -> Sequence:
    """Command block writes while DRQ is set are ignored (V1 §7): the transfer and the registers stay."""
    s = Sequence("writes ignored during drq")
    s.lba28(DRQ_LBA, 1).command("READ SECTORS").settle("ready")
    s.out(LBA_MID, 0x77).out(LBA_HIGH, 0x66).out(DEVICE, 0xE5)
    s.read("during drq: lba mid", LBA_MID).read("during drq: lba high", LBA_HIGH).read("during drq: device", DEVICE)
    s.read_words("sector", WORDS_PER_SECTOR)
    s.settle("settled")
    return s.read("after: lba mid", LBA_MID).read("after: lba high", LBA_HIGH).read("after: device", DEVICE)


def reset_during_drq() -> Sequence:
    """SRST in the middle of a data block abandons the command: the signature, and no data left (V2 §11)."""
    s = Sequence("software reset during drq")
    s.lba28(DRQ_LBA, 2).command("READ SECTORS").settle("ready")
    s.read_words("first words", 8)
    s.out(CONTROL, SRST | NIEN).out(CONTROL, NIEN).settle("reset settled")
    s.task_file("after reset")
    return s.read("alternate status after data read", CONTROL)


def software_reset_after_commands() -> Sequence:
    """A second software reset after all of the above: the same signature again."""
    s = software_reset()
    s.name = "software reset again"
    return s


SEQUENCES = (
    software_reset,
    seabios_read,
    read_sectors,
    write_then_read,
    lba48_read,
    unknown_command,
    beyond_capacity,
    set_features_bad_subcommand,
    check_power_mode,
    flush_cache,
    identify_device,
    read_multiple,
    write_multiple,
    write_clears_hob,
    writes_ignored_during_drq,
    reset_during_drq,
    read_verify,
    chs_read,
    execute_device_diagnostic,
    absent_device_1,
    data_without_drq,
    software_reset_after_commands,
)


def all_sequences() -> list[Sequence]:
    return [make() for make in SEQUENCES]
