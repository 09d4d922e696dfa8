"""Chapter 1 — notation and constants of the ATA device and its PIIX channel.

Every number the device uses is named here once, beside the section of the
standard it comes from. "V1" and "V2" are the two volumes of ATA/ATAPI-7
(T13/1532D): V1 holds the registers and commands, V2 the parallel transport and
its protocol state machines (§11). "PIIX" is Intel's 82371AB (PIIX4) datasheet,
its bus master IDE registers and PRD table format. Citations name the clause and
the item's title, e.g. "V1 §6, READ DMA".

Notation: a *byte register* holds 8 bits, the *data register* 16. A *word* is
16 bits, little-endian on the I/O bus. A *DRQ data block* is the unit the
device transfers between two DRQ assertions: one sector, or the SET MULTIPLE
MODE count for READ/WRITE MULTIPLE. A *tick* is one step of the device's clock;
time passes only when the caller says so.
"""

from enum import IntEnum

# --- Register addresses (V1 §7, register addressing; primary channel by default) ---

PRIMARY_COMMAND_BASE = 0x1F0  # command block of the primary channel (PIIX, legacy IDE ports)
PRIMARY_CONTROL_PORT = 0x3F6  # Device Control (write) / Alternate Status (read)
QEMU_BUS_MASTER_BASE = 0xC040  # BAR4 of QEMU's PIIX3 IDE function; the guest reads the real one from PCI


class CommandBlock(IntEnum):
    """Offsets of the command block registers from the command base (V1 §7)."""

    DATA = 0  # Data: 16-bit PIO transfers
    ERROR_FEATURES = 1  # read: Error; write: Features
    SECTOR_COUNT = 2
    LBA_LOW = 3  # sector number in CHS addressing
    LBA_MID = 4  # cylinder low in CHS addressing
    LBA_HIGH = 5  # cylinder high in CHS addressing
    DEVICE = 6  # device select, LBA mode, LBA bits 27:24 or head
    STATUS_COMMAND = 7  # read: Status (clears INTRQ); write: Command


class BusMasterRegister(IntEnum):
    """Offsets of the primary channel's bus-master registers from BAR4 (PIIX, bus master IDE I/O registers)."""

    COMMAND = 0  # BMICOM: start/stop, read/write control
    STATUS = 2  # BMISTA: active, error, interrupt, drive DMA capable
    PRD_POINTER = 4  # BMIDTP: physical address of the PRD table, 32 bits, dword aligned


BUS_MASTER_SPAN = 8  # the primary channel's bus-master registers occupy BAR4+0 .. BAR4+7

# --- Status register bits (V1 §7, Status register) ---

BSY = 0x80  # busy: the device owns the command block registers
DRDY = 0x40  # device ready: able to accept commands
DF = 0x20  # device fault
DSC = 0x10  # bit 4 is command dependent; this device keeps the legacy "seek complete" set when ready, as drives and QEMU do
DRQ = 0x08  # data request: ready to transfer a word of data
ERR = 0x01  # an error occurred; the Error register says which

STATUS_BITS = (("BSY", BSY), ("DRDY", DRDY), ("DF", DF), ("DSC", DSC), ("DRQ", DRQ), ("ERR", ERR))

# --- Error register bits (V1 §7, Error register) ---

ICRC = 0x80  # interface CRC error (Ultra DMA only)
UNC = 0x40  # uncorrectable data error
IDNF = 0x10  # ID not found: the address is outside the user-accessible range
ABRT = 0x04  # command aborted: not supported, or a parameter is invalid

ERROR_BITS = (("ICRC", ICRC), ("UNC", UNC), ("IDNF", IDNF), ("ABRT", ABRT))

# --- Device Control register bits (V1 §7, Device Control register) ---

HOB = 0x80  # high order byte: reads return the previous content of the LBA48 registers
SRST = 0x04  # software reset of every device on the channel
NIEN = 0x02  # interrupt disable: the selected device releases INTRQ

CONTROL_BITS = (("HOB", HOB), ("SRST", SRST), ("nIEN", NIEN))

# --- Device register bits (V1 §7, Device register) ---

DEVICE_LBA = 0x40  # addressing is LBA (set) or CHS (clear)
DEVICE_DEV = 0x10  # selects device 1 (set) or device 0 (clear)
DEVICE_LOW_NIBBLE = 0x0F  # LBA bits 27:24, or the head number in CHS addressing

# --- Bus-master command and status bits (PIIX, BMICOM and BMISTA registers) ---

BM_START = 0x01  # start/stop bus master: 1 enables, 0 halts
BM_WRITE_TO_MEMORY = 0x08  # read/write control: 1 = the controller writes memory (a device read)
BM_COMMAND_WRITABLE = BM_START | BM_WRITE_TO_MEMORY  # other bits are reserved and read 0

BM_ACTIVE = 0x01  # read only: set on start, cleared when the last PRD is done or on stop
BM_ERROR = 0x02  # write 1 to clear: the transfer hit a PCI master or target abort
BM_INTERRUPT = 0x04  # write 1 to clear: the device asserted its interrupt line
BM_DRIVE0_DMA = 0x20  # read/write scratch bit: the BIOS says drive 0 can do DMA
BM_DRIVE1_DMA = 0x40  # read/write scratch bit for drive 1
BM_STATUS_WRITE_CLEAR = BM_ERROR | BM_INTERRUPT
BM_STATUS_WRITABLE = BM_DRIVE0_DMA | BM_DRIVE1_DMA  # simplex (bit 7) is 0: both channels may run at once

BM_COMMAND_BITS = (("START", BM_START), ("WRITE_TO_MEMORY", BM_WRITE_TO_MEMORY))
BM_STATUS_BITS = (
    ("ACTIVE", BM_ACTIVE),
    ("ERROR", BM_ERROR),
    ("INTERRUPT", BM_INTERRUPT),
    ("DRIVE0_DMA", BM_DRIVE0_DMA),
    ("DRIVE1_DMA", BM_DRIVE1_DMA),
)

# --- Physical Region Descriptors (PIIX, Physical Region Descriptor table) ---

PRD_ENTRY_BYTES = 8  # dword base address, word byte count, word with end-of-table in bit 15
PRD_EOT = 0x8000  # end of table: the last descriptor
PRD_MAX_REGION = 0x10000  # a byte count of 0 means 64 KiB
PRD_BOUNDARY = 0x10000  # neither a region nor the table may cross a 64 KiB boundary
PRD_TABLE_ALIGN = 4  # the table pointer's bits 1:0 are reserved and read 0

# --- Addressing limits (V1 §4 and §6) ---

LBA28_LIMIT = 1 << 28  # a 28-bit command addresses sectors below this
LBA28_MAX_SECTORS = 256  # Sector Count 0 means 256 for 28-bit commands
LBA48_MAX_SECTORS = 65536  # Sector Count 0 means 65536 for 48-bit commands
IDENTIFY_LBA28_MAX = 0x0FFFFFFF  # words 60-61 saturate here (V1 §6, IDENTIFY DEVICE words 60-61)

# --- Values the standard fixes (V2 §11 reset protocols; V1 §6, EXECUTE DEVICE DIAGNOSTIC) ---

SIGNATURE_SECTOR_COUNT = 0x01
SIGNATURE_LBA_LOW = 0x01
SIGNATURE_LBA_MID = 0x00  # 0x00/0x00 marks a non-PACKET device; ATAPI would show 0x14/0xEB
SIGNATURE_LBA_HIGH = 0x00
SIGNATURE_DEVICE = 0x00
DIAGNOSTIC_PASSED = 0x01  # Error register after reset: device 0 passed, device 1 absent or passed

# --- This device's choices (within what the standard allows) ---

MAX_MULTIPLE = 16  # largest SET MULTIPLE MODE count; IDENTIFY word 47
POWER_MODE_STANDBY = 0x00  # CHECK POWER MODE Sector Count results (V1 §6, CHECK POWER MODE)
POWER_MODE_IDLE = 0x80
POWER_MODE_ACTIVE = 0xFF
DEFAULT_HEADS = 16  # default CHS translation (IDENTIFY words 1, 3, 6)
DEFAULT_SECTORS_PER_TRACK = 63
MAX_CYLINDERS = 16383  # words 1 and 54 saturate here for disks above 8.4 GB (V1 §6, IDENTIFY DEVICE)
RESET_TICKS = 1  # a software reset completes one tick after SRST is released

# --- SET FEATURES subcommands and transfer modes (V1 §6, SET FEATURES) ---

FEATURE_ENABLE_WRITE_CACHE = 0x02
FEATURE_SET_TRANSFER_MODE = 0x03
FEATURE_DISABLE_WRITE_CACHE = 0x82
TRANSFER_PIO_DEFAULT = 0x00  # PIO default mode
TRANSFER_PIO_DEFAULT_NO_IORDY = 0x01  # PIO default mode, IORDY disabled
TRANSFER_PIO_FLOW_CONTROL = 0x08  # 0x08 | n: PIO flow control mode n
TRANSFER_MULTIWORD_DMA = 0x20  # 0x20 | n: multiword DMA mode n
TRANSFER_ULTRA_DMA = 0x40  # 0x40 | n: Ultra DMA mode n
MAX_PIO_MODE = 4
MAX_MULTIWORD_DMA_MODE = 2
MAX_ULTRA_DMA_MODE = 5
