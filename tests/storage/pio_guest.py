"""A guest that drives an ATA channel by polled PIO while a storage world runs underneath it.

Used wherever the storage manager sits behind the ATA device (spec alone, or spec against the C core):
it issues LBA28 commands, steps the world until the device is ready, moves data blocks and logs every
status it polls or reads and every data block, so two guests can be compared.
"""

from spec.ata.commands import COMMANDS
from spec.ata.constants import BSY, PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT
from spec.ata.device import AtaChannel
from spec.ata.prd import FlatMemory

DATA, SECTOR_COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, COMMAND = (PRIMARY_COMMAND_BASE + i for i in (0, 2, 3, 4, 5, 6, 7))
ERROR = PRIMARY_COMMAND_BASE + 1
CODE = {c.name: c.code for c in COMMANDS}  # codes come from the one command table
READ_SECTORS, WRITE_SECTORS = CODE["READ SECTORS"], CODE["WRITE SECTORS"]
FLUSH_CACHE, IDENTIFY_DEVICE = CODE["FLUSH CACHE"], CODE["IDENTIFY DEVICE"]
READY_STEPS = 5000  # world steps a command may take before the device counts as hung


class PioGuest:
    def __init__(self, world, channel_type=AtaChannel):
        self.world = world
        self.channel = channel_type(world, FlatMemory(4096))  # the world is the channel's backing store
        self.seen: list[tuple[str, object]] = []

    def run_until_ready(self) -> int:
        """Step the world and the channel until BSY clears; the Status register then (which clears INTRQ)."""
        for _ in range(READY_STEPS):
            self.world.tick()
            self.channel.tick()
            self.world.check_invariants()
            if self.world.local.pending_ids():
                self.world.complete_local()
            elif self.world.link.items():
                self.world.complete_remote()
            status = self.channel.read(PRIMARY_CONTROL_PORT, 1)  # Alternate Status: no side effect
            self.seen.append(("poll", status))
            if not status & BSY:
                return self.channel.read(COMMAND, 1)
        raise AssertionError("the device stayed busy")

    def issue(self, command: int, lba: int = 0, count: int = 0) -> int:
        self.channel.write(DEVICE, 1, 0x40 | (lba >> 24 & 0x0F))
        self.channel.write(SECTOR_COUNT, 1, count)
        for port, shift in ((LBA_LOW, 0), (LBA_MID, 8), (LBA_HIGH, 16)):
            self.channel.write(port, 1, lba >> shift & 0xFF)
        self.channel.write(COMMAND, 1, command)
        status = self.run_until_ready()
        self.seen.append(("status", status))
        return status

    def read_blocks(self, count: int) -> bytes:
        data = b""
        for block in range(count):
            data += b"".join(self.channel.read(DATA, 2).to_bytes(2, "little") for _ in range(256))
            if block + 1 < count:
                self.run_until_ready()
        self.seen.append(("data", data))
        return data

    def write_blocks(self, data: bytes) -> int:
        status = 0
        for start in range(0, len(data), 512):
            for i in range(start, start + 512, 2):
                self.channel.write(DATA, 2, int.from_bytes(data[i : i + 2], "little"))
            status = self.run_until_ready()
        self.seen.append(("status", status))
        return status
