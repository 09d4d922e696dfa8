"""The ATA command table: the one place that says which commands the device knows.

Every command code the virtual device implements appears here once, with its
name, its protocol and how it addresses the medium. The spec's device
dispatches through this table, the C side is generated from (or checked
against) it, and the tests enumerate it. A code that is not in the table is
aborted (ERR with ABRT), as ATA/ATAPI-7 V1 §6 allows for unsupported commands.
"""

from dataclasses import dataclass
from enum import Enum


class Protocol(Enum):
    """The protocol classes of ATA/ATAPI-7 V2 §11 (host and device state machines)."""

    NON_DATA = "non-data"
    PIO_DATA_IN = "pio-data-in"
    PIO_DATA_OUT = "pio-data-out"
    DMA = "dma"
    EXECUTE_DEVICE_DIAGNOSTIC = "execute-device-diagnostic"


class Addressing(Enum):
    """How a command names sectors."""

    NONE = "none"  # the command does not address the medium
    LBA28 = "lba28"  # 28-bit LBA, count 0 means 256 sectors
    LBA48 = "lba48"  # 48-bit LBA from current and previous register contents, count 0 means 65536


@dataclass(frozen=True)
class Command:
    code: int
    name: str  # the standard's name, upper case
    protocol: Protocol
    addressing: Addressing
    multiple: bool = False  # DRQ data blocks are the SET MULTIPLE MODE size, not one sector

    @property
    def writes_medium(self) -> bool:
        """Data flows from the host to the medium (WRITE SECTORS, WRITE MULTIPLE, WRITE DMA and their EXT forms)."""
        return self.name.startswith("WRITE")

    @property
    def handler_name(self) -> str:
        """The spec handler `process_<name>`; the C handler is `ata_process_<name>`."""
        return "process_" + self.name.lower().replace(" ", "_")


P, A = Protocol, Addressing

# Departure: SLEEP, DEVICE RESET and the PACKET, queued, streaming and READ/WRITE LONG commands are left out;
# their codes abort like any code not listed here (NOP aborts by definition, V1 §6).
COMMANDS: tuple[Command, ...] = (
    Command(0x20, "READ SECTORS", P.PIO_DATA_IN, A.LBA28),
    Command(0x24, "READ SECTORS EXT", P.PIO_DATA_IN, A.LBA48),
    Command(0x25, "READ DMA EXT", P.DMA, A.LBA48),
    Command(0x29, "READ MULTIPLE EXT", P.PIO_DATA_IN, A.LBA48, multiple=True),
    Command(0x30, "WRITE SECTORS", P.PIO_DATA_OUT, A.LBA28),
    Command(0x34, "WRITE SECTORS EXT", P.PIO_DATA_OUT, A.LBA48),
    Command(0x35, "WRITE DMA EXT", P.DMA, A.LBA48),
    Command(0x39, "WRITE MULTIPLE EXT", P.PIO_DATA_OUT, A.LBA48, multiple=True),
    Command(0x40, "READ VERIFY SECTORS", P.NON_DATA, A.LBA28),
    Command(0x42, "READ VERIFY SECTORS EXT", P.NON_DATA, A.LBA48),
    Command(0x90, "EXECUTE DEVICE DIAGNOSTIC", P.EXECUTE_DEVICE_DIAGNOSTIC, A.NONE),
    Command(0x91, "INITIALIZE DEVICE PARAMETERS", P.NON_DATA, A.NONE),
    Command(0xC4, "READ MULTIPLE", P.PIO_DATA_IN, A.LBA28, multiple=True),
    Command(0xC5, "WRITE MULTIPLE", P.PIO_DATA_OUT, A.LBA28, multiple=True),
    Command(0xC6, "SET MULTIPLE MODE", P.NON_DATA, A.NONE),
    Command(0xC8, "READ DMA", P.DMA, A.LBA28),
    Command(0xCA, "WRITE DMA", P.DMA, A.LBA28),
    Command(0xE0, "STANDBY IMMEDIATE", P.NON_DATA, A.NONE),
    Command(0xE1, "IDLE IMMEDIATE", P.NON_DATA, A.NONE),
    Command(0xE5, "CHECK POWER MODE", P.NON_DATA, A.NONE),
    Command(0xE7, "FLUSH CACHE", P.NON_DATA, A.NONE),
    Command(0xEA, "FLUSH CACHE EXT", P.NON_DATA, A.NONE),
    Command(0xEC, "IDENTIFY DEVICE", P.PIO_DATA_IN, A.NONE),
    Command(0xEF, "SET FEATURES", P.NON_DATA, A.NONE),
)

COMMANDS_BY_CODE: dict[int, Command] = {c.code: c for c in COMMANDS}

WRITE_COMMANDS = frozenset(c.code for c in COMMANDS if c.writes_medium)


def lookup_command(code: int) -> Command | None:
    """The table entry for a command code, or None: the device aborts unknown codes."""
    return COMMANDS_BY_CODE.get(code)
