"""Chapter 4 — the state of the channel: registers, protocol phase, transfer, bus master.

Everything the device remembers is a field of `ChannelState`; nothing is hidden
in closures or in the backing store. `observe()` reduces it to what a guest
can see, the value the C core is compared with.
"""

from dataclasses import dataclass, field
from enum import Enum

from spec.ata.commands import Command
from spec.ata.constants import (
    DEFAULT_HEADS,
    DEFAULT_SECTORS_PER_TRACK,
    DIAGNOSTIC_PASSED,
    DRDY,
    DSC,
    SIGNATURE_DEVICE,
    SIGNATURE_LBA_HIGH,
    SIGNATURE_LBA_LOW,
    SIGNATURE_LBA_MID,
    SIGNATURE_SECTOR_COUNT,
    TRANSFER_PIO_DEFAULT,
)


class Phase(Enum):
    """Where the device is in a protocol (V2 §11: bus idle, software reset, non-data, PIO data-in, PIO data-out, DMA).

    Each phase is one of the device states the standard draws, named by what
    the device is doing; BSY and DRQ follow from the phase alone.
    """

    IDLE = "idle"  # bus idle: ready for a command, maybe with an interrupt pending
    RESET_ASSERTED = "reset asserted"  # software reset: SRST is set, the device waits for it to clear
    RESET_EXECUTING = "reset executing"  # software reset: SRST cleared, the device finishes its reset
    COMMAND_ACCEPTED = "command accepted"  # the Command register was written; checks run on the next tick
    NON_DATA_EXECUTING = "non-data executing"  # non-data: BSY while the store verifies or flushes
    PIO_IN_FETCHING = "pio-in fetching"  # PIO data-in: BSY while the next DRQ data block is read
    PIO_IN_TRANSFER = "pio-in transfer"  # PIO data-in: DRQ, the host reads the block from the Data register
    PIO_OUT_TRANSFER = "pio-out transfer"  # PIO data-out: DRQ, the host writes the block to the Data register
    PIO_OUT_STORING = "pio-out storing"  # PIO data-out: BSY while the block is written
    DMA_FETCHING = "dma fetching"  # DMA: BSY while the sectors are read
    DMA_TRANSFER = "dma transfer"  # DMA: DRQ (DMARQ), the bus master moves the data
    DMA_STORING = "dma storing"  # DMA: BSY while the received sectors are written


BUSY_PHASES = frozenset(
    {
        Phase.RESET_ASSERTED,
        Phase.RESET_EXECUTING,
        Phase.COMMAND_ACCEPTED,
        Phase.NON_DATA_EXECUTING,
        Phase.PIO_IN_FETCHING,
        Phase.PIO_OUT_STORING,
        Phase.DMA_FETCHING,
        Phase.DMA_STORING,
    }
)
DATA_PHASES = frozenset({Phase.PIO_IN_TRANSFER, Phase.PIO_OUT_TRANSFER, Phase.DMA_TRANSFER})
RESET_PHASES = frozenset({Phase.RESET_ASSERTED, Phase.RESET_EXECUTING})


class PowerMode(Enum):
    """The power management modes this device has (V1 §4, power management feature set); sleep is left out."""

    ACTIVE = "active"
    IDLE = "idle"
    STANDBY = "standby"


@dataclass
class TaskFile:
    """The command block registers as the device holds them (V1 §7).

    Features, Sector Count and the LBA registers are two bytes deep: a write
    moves the current content to `prev_*` ("previous content") and stores the
    new byte; 48-bit commands use both (V1 §7, "HOB").
    """

    features: int = 0
    prev_features: int = 0
    sector_count: int = SIGNATURE_SECTOR_COUNT
    prev_sector_count: int = 0
    lba_low: int = SIGNATURE_LBA_LOW
    prev_lba_low: int = 0
    lba_mid: int = SIGNATURE_LBA_MID
    prev_lba_mid: int = 0
    lba_high: int = SIGNATURE_LBA_HIGH
    prev_lba_high: int = 0
    device: int = SIGNATURE_DEVICE
    error: int = DIAGNOSTIC_PASSED


@dataclass
class Settings:
    """What SET FEATURES, SET MULTIPLE MODE and INITIALIZE DEVICE PARAMETERS configure; kept across software reset."""

    multiple_count: int = 0  # 0: multiple mode disabled (IDENTIFY word 59 bit 8 clear)
    transfer_mode: int = TRANSFER_PIO_DEFAULT  # the last SET FEATURES 03h value
    write_cache: bool = True
    heads: int = DEFAULT_HEADS  # current CHS translation (IDENTIFY words 54-56)
    sectors_per_track: int = DEFAULT_SECTORS_PER_TRACK
    chs_valid: bool = True  # False after INITIALIZE DEVICE PARAMETERS asked for a translation that does not exist
    power: PowerMode = PowerMode.ACTIVE


@dataclass
class Transfer:
    """The command in progress and how far it has come."""

    command: Command
    lba: int = 0  # first sector of the command
    count: int = 0  # sectors in the whole command
    done: int = 0  # sectors already read or written through the store
    block: bytearray = field(default_factory=bytearray)  # the DRQ data block (PIO) or the whole transfer (DMA)
    position: int = 0  # bytes of `block` already moved over the Data register or by the bus master
    flushing: bool = False  # the write is done and the store is flushing it (write cache disabled)

    def block_sectors(self, multiple_count: int) -> int:
        """Sectors in the next DRQ data block: one, or the multiple count, never more than are left."""
        per_block = multiple_count if self.command.multiple else 1
        return min(per_block, self.count - self.done)


@dataclass
class BusMaster:
    """The PIIX bus-master IDE registers of the primary channel."""

    start: bool = False  # BMICOM bit 0 as last written
    write_to_memory: bool = False  # BMICOM bit 3: the controller writes memory (device read)
    active: bool = False  # BMISTA bit 0
    error: bool = False  # BMISTA bit 1
    interrupt: bool = False  # BMISTA bit 2
    drive_dma_capable: int = 0  # BMISTA bits 6:5 as last written
    prd_pointer: int = 0  # BMIDTP, bits 1:0 always 0


@dataclass
class ChannelState:
    """One PIIX IDE channel with device 0 present and device 1 absent."""

    phase: Phase = Phase.IDLE
    status: int = DRDY | DSC  # power-on reset has completed (V2 §11, power-on reset protocol)
    registers: TaskFile = field(default_factory=TaskFile)
    nien: bool = False  # Device Control bit 1
    srst: bool = False  # Device Control bit 2
    hob: bool = False  # Device Control bit 7
    interrupt_pending: bool = False  # the device wants the host's attention; INTRQ shows it unless masked
    intrq: bool = False  # the level of the INTRQ line after the last event
    store_busy: bool = False  # a backing-store request is outstanding
    reset_ticks: int = 0  # ticks left until a software reset completes
    command_code: int = 0  # the code of the last command accepted by the Command register
    transfer: Transfer | None = None
    settings: Settings = field(default_factory=Settings)
    bus_master: BusMaster = field(default_factory=BusMaster)


@dataclass(frozen=True)
class Observation:
    """What a guest can observe of the channel: compared step by step with the C core."""

    phase: str
    status: int
    error: int
    sector_count: int
    lba_low: int
    lba_mid: int
    lba_high: int
    device: int
    previous: tuple[int, int, int, int]  # Sector Count, LBA Low, Mid, High as read with HOB set
    intrq: bool
    bm_command: int
    bm_status: int
    bm_prd_pointer: int
