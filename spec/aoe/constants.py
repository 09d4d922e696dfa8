"""ATA over Ethernet constants (Coraid AoE specification, revision 11, "AoEr11").

The one definition of every AoE number; the spec's codec, the server and the
tests import them from here.
"""

from enum import IntEnum, IntFlag

from spec.ata import constants as ata

ETHERTYPE_AOE = 0x88A2  # AoEr11 §2.1: AoE's registered Ethernet type
AOE_VERSION = 1  # AoEr11 §2: the version nibble of every message

ETHERNET_HEADER_BYTES = 14  # destination MAC, source MAC, ethertype
AOE_HEADER_BYTES = 10  # AoEr11 §2: ver/flags, error, major, minor, command, tag
ATA_ARG_BYTES = 12  # AoEr11 §3.1: aflags, err/feature, count, cmd/status, lba0..5, 2 reserved
CONFIG_ARG_BYTES = 8  # AoEr11 §3.2: buffer count, firmware, sector count, ver/ccmd, string length
SECTOR_BYTES = 512

BROADCAST_MAJOR = 0xFFFF  # AoEr11 §2: every shelf
BROADCAST_MINOR = 0xFF  # AoEr11 §2: every slot
BROADCAST_MAC = b"\xff" * 6
CONFIG_STRING_MAX = 1024  # AoEr11 §3.2


class HeaderFlag(IntFlag):
    """The low nibble of the first header byte (AoEr11 §2)."""

    RESPONSE = 0x8
    ERROR = 0x4


class AoeError(IntEnum):
    """The error field of a response with the E flag (AoEr11 §2.4)."""

    UNRECOGNIZED_COMMAND = 1
    BAD_ARGUMENT = 2
    DEVICE_UNAVAILABLE = 3
    CONFIG_STRING_PRESENT = 4
    UNSUPPORTED_VERSION = 5
    TARGET_RESERVED = 6


class AoeCommand(IntEnum):
    """The command field of the header (AoEr11 §2)."""

    ATA = 0
    QUERY_CONFIG = 1
    MAC_MASK_LIST = 2
    RESERVE_RELEASE = 3
    VENDOR_FIRST = 0xF0  # 0xF0..0xFF are vendor specific


class AtaFlag(IntFlag):
    """AFlags of the ATA argument (AoEr11 §3.1)."""

    EXTENDED = 0x40  # LBA48 command
    DEVICE = 0x10  # device/head register flag
    ASYNC = 0x02  # asynchronous write
    WRITE = 0x01  # data follows in the request


class ConfigCommand(IntEnum):
    """The ccmd nibble of a Query Config request (AoEr11 §3.2)."""

    READ = 0
    TEST_EXACT = 1
    TEST_PREFIX = 2
    SET_IF_EMPTY = 3
    FORCE_SET = 4


class MaskCommand(IntEnum):
    """The mcmd of a MAC Mask List request (AoEr11 §3.3)."""

    READ = 0
    EDIT = 1


class MaskDirective(IntEnum):
    """The dcmd of one 8-byte MAC Mask List directive (AoEr11 §3.3)."""

    NONE = 0
    ADD = 1
    DELETE = 2


class MaskError(IntEnum):
    """The merror of a MAC Mask List response (AoEr11 §3.3)."""

    NONE = 0
    UNSPECIFIED = 1
    BAD_DIRECTIVE = 2
    LIST_FULL = 3


class ReserveCommand(IntEnum):
    """The rcmd of a Reserve/Release request (AoEr11 §3.4)."""

    READ = 0
    SET = 1
    FORCE_SET = 2


MTU_OVERHEAD_BYTES = 36  # Ethernet, AoE (§2) and ATA (§3.1) headers, counted against the MTU as vblade does


def sectors_per_frame(mtu: int) -> int:
    """Whole sectors one ATA message can carry at this MTU, as vblade counts them; never negative."""
    return max(0, (mtu - MTU_OVERHEAD_BYTES) // SECTOR_BYTES)

# Argument sizes of the remaining commands.
MASK_ARG_BYTES = 4  # AoEr11 §3.3: reserved, mcmd, merror, dir count
MASK_DIRECTIVE_BYTES = 8  # AoEr11 §3.3: reserved, dcmd, MAC
RESERVE_ARG_BYTES = 2  # AoEr11 §3.4: rcmd, nmacs
MAC_BYTES = 6
ETHERNET_MIN_FRAME_BYTES = 60  # IEEE 802.3 minimum without FCS: shorter frames arrive zero-padded

MAX_SECTOR_COUNT_FIELD = 0xFF  # the ATA argument's sector count is one byte (AoEr11 §3.1)
DEFAULT_MAX_SECTORS = 2  # AoEr11 §3.2: a sector count of 0 in a Query Config response means 2
MASK_LIST_CAPACITY = 32  # entries a target keeps in its MAC mask list (AoEr11 §3.3 leaves the size open)
LBA28_MASK = 0x0FFFFFFF  # ATA/ATAPI-7 V1, Device register: 28-bit commands use LBA bits 0..27; bits 28..31 are device bits
LBA48_MASK = (1 << 48) - 1


class AtaStatus(IntFlag):
    """ATA Status register bits an AoE response carries in Cmd/Status; the values are spec/ata's."""

    ERR = ata.ERR
    DRQ = ata.DRQ
    DF = ata.DF
    DRDY = ata.DRDY
    BSY = ata.BSY


class AtaErrorBit(IntFlag):
    """ATA Error register bits an AoE response carries in Err/Feature; the values are spec/ata's."""

    ABRT = ata.ABRT  # command aborted: unknown command or the target gave up
    IDNF = ata.IDNF  # ID not found: the address is outside the medium
    UNC = ata.UNC  # uncorrectable data error


CHECK_POWER_MODE_ACTIVE = 0xFF  # ATA/ATAPI-7 V1 §6, CHECK POWER MODE: Sector Count after it, active or idle
