"""A guest that drives an ATA channel by polled PIO while a storage world runs underneath it.

Used wherever the storage manager sits behind the ATA device (spec alone, or spec against the C core):
it issues LBA28 and LBA48 commands (at once, or started and waited for in separate steps), steps the world until the device is ready, moves data blocks and logs every
status it polls or reads and every data block, so two guests can be compared.
"""

from spec.ata.commands import COMMANDS, Addressing
from spec.ata.constants import BSY, PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT
from spec.ata.device import AtaChannel
from spec.ata.prd import FlatMemory

DATA, SECTOR_COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, COMMAND = (PRIMARY_COMMAND_BASE + i for i in (0, 2, 3, 4, 5, 6, 7))
ERROR = PRIMARY_COMMAND_BASE + 1
CODE = {c.name: c.code for c in COMMANDS}  # codes come from the one command table
READ_SECTORS, WRITE_SECTORS = CODE["READ SECTORS"], CODE["WRITE SECTORS"]
FLUSH_CACHE, IDENTIFY_DEVICE = CODE["FLUSH CACHE"], CODE["IDENTIFY DEVICE"]
READ_SECTORS_EXT, WRITE_SECTORS_EXT = CODE["READ SECTORS EXT"], CODE["WRITE SECTORS EXT"]
READ_MULTIPLE, WRITE_MULTIPLE, SET_MULTIPLE_MODE = CODE["READ MULTIPLE"], CODE["WRITE MULTIPLE"], CODE["SET MULTIPLE MODE"]
READ_MULTIPLE_EXT, WRITE_MULTIPLE_EXT = CODE["READ MULTIPLE EXT"], CODE["WRITE MULTIPLE EXT"]
EXT_CODES = {c.code for c in COMMANDS if c.addressing is Addressing.LBA48}
READY_STEPS = 5000  # world steps a command may take before the device counts as hung


class PioGuest:
    def __init__(self, world, channel_type=AtaChannel):
        self.world = world
        self.channel = channel_type(world, FlatMemory(4096))  # the world is the channel's backing store
        self.seen: list[tuple[str, object]] = []

    def step(self) -> int:
        """One step: time passes, the oldest device request completes; Alternate Status (no side effect) then."""
        self.world.tick()
        self.channel.tick()
        self.world.check_invariants()
        if self.world.local.pending_ids():
            self.world.complete_local()
        elif self.world.link.items():
            self.world.complete_remote()
        status = self.channel.read(PRIMARY_CONTROL_PORT, 1)
        self.seen.append(("poll", status))
        return status

    def run_until_ready(self) -> int:
        """Step the world and the channel until BSY clears; the Status register then (which clears INTRQ)."""
        for _ in range(READY_STEPS):
            if not self.step() & BSY:
                return self.channel.read(COMMAND, 1)
        raise AssertionError("the device stayed busy")

    def start(self, command: int, lba: int = 0, count: int = 0) -> None:
        """Write the taskfile and the command without waiting; LBA48 commands get the previous bytes first."""
        self.channel.write(DEVICE, 1, 0x40 | (0 if command in EXT_CODES else lba >> 24 & 0x0F))
        if command in EXT_CODES:  # ATA/ATAPI-7 6.2: the registers are two deep, high order first
            self.channel.write(SECTOR_COUNT, 1, count >> 8 & 0xFF)
            for port, shift in ((LBA_LOW, 24), (LBA_MID, 32), (LBA_HIGH, 40)):
                self.channel.write(port, 1, lba >> shift & 0xFF)
        self.channel.write(SECTOR_COUNT, 1, count & 0xFF)
        for port, shift in ((LBA_LOW, 0), (LBA_MID, 8), (LBA_HIGH, 16)):
            self.channel.write(port, 1, lba >> shift & 0xFF)
        self.channel.write(COMMAND, 1, command)

    def issue(self, command: int, lba: int = 0, count: int = 0) -> int:
        self.start(command, lba, count)
        status = self.run_until_ready()
        self.seen.append(("status", status))
        return status

    def read_block(self, sectors: int = 1) -> bytes:
        """One DRQ data block of `sectors` sectors from the data port (more than one for READ MULTIPLE)."""
        return b"".join(self.channel.read(DATA, 2).to_bytes(2, "little") for _ in range(256 * sectors))

    def write_block(self, data: bytes) -> None:
        for i in range(0, len(data), 2):
            self.channel.write(DATA, 2, int.from_bytes(data[i : i + 2], "little"))

    def read_blocks(self, count: int) -> bytes:
        data = b""
        for block in range(count):
            data += self.read_block()
            if block + 1 < count:
                self.run_until_ready()
        self.seen.append(("data", data))
        return data

    def write_blocks(self, data: bytes) -> int:
        status = 0
        for start in range(0, len(data), 512):
            self.write_block(data[start : start + 512])
            status = self.run_until_ready()
        self.seen.append(("status", status))
        return status
