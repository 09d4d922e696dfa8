"""Walk through the ATA specification at register level, the way two real guests drive it.

1. SeaBIOS reading one sector with int 13h: polled PIO, LBA28, nIEN set
   (the sequence observed on QEMU and recorded in PLATFORM.md).
2. A Linux `ata_piix` style bus-master DMA read: PRD table in guest memory,
   BMIDTP, BMICOM, READ DMA, START, INTRQ, BMISTA, Status.

Every port access is printed as it happens: direction, port, register name,
value, the value's bits decoded, and the INTRQ line after the access. Bus-
master accesses to guest memory are printed as DMA lines. Run it with
`python -m impl.testbed.spec_walkthrough`.
"""

import sys

from spec.ata.backing_store import SECTOR_BYTES, MemoryStore
from spec.ata.commands import lookup_command
from spec.ata.constants import (
    BM_COMMAND_BITS,
    BM_STATUS_BITS,
    CONTROL_BITS,
    DEVICE_DEV,
    DEVICE_LBA,
    DRQ,
    ERROR_BITS,
    PRD_EOT,
    PRIMARY_COMMAND_BASE,
    PRIMARY_CONTROL_PORT,
    QEMU_BUS_MASTER_BASE,
    STATUS_BITS,
    BusMasterRegister,
    CommandBlock,
)
from spec.ata.device import AtaChannel
from spec.ata.prd import FlatMemory

DISK_SECTORS = 2048
STORE_LATENCY_TICKS = 2  # the store answers two ticks after a request, so BSY is visible
MEMORY_BYTES = 1 << 20
PRD_TABLE = 0x1000
DMA_BUFFER = 0x20000
DATA_WORDS_SHOWN = 4  # the first words of a data block are printed, the rest summarised

READ_NAMES = {
    CommandBlock.DATA: "Data",
    CommandBlock.ERROR_FEATURES: "Error",
    CommandBlock.SECTOR_COUNT: "Sector Count",
    CommandBlock.LBA_LOW: "LBA Low",
    CommandBlock.LBA_MID: "LBA Mid",
    CommandBlock.LBA_HIGH: "LBA High",
    CommandBlock.DEVICE: "Device",
    CommandBlock.STATUS_COMMAND: "Status",
}
WRITE_NAMES = {**READ_NAMES, CommandBlock.ERROR_FEATURES: "Features", CommandBlock.STATUS_COMMAND: "Command"}
BUS_MASTER_NAMES = {
    BusMasterRegister.COMMAND: "BM Command",
    BusMasterRegister.STATUS: "BM Status",
    BusMasterRegister.PRD_POINTER: "BM PRD Table",
}


def bits(value: int, table: tuple[tuple[str, int], ...]) -> str:
    """The names of the bits set in `value`, in the table's order."""
    return " ".join(name for name, mask in table if value & mask) or "-"


class TracingMemory(FlatMemory):
    """Guest memory that prints every bus-master access."""

    def read(self, address: int, length: int) -> bytes | None:
        print(f"        DMA  read  {address:#010x} {length:5} bytes  (bus master fetches from guest memory)")
        return super().read(address, length)

    def write(self, address: int, data: bytes) -> bool:
        print(f"        DMA  write {address:#010x} {len(data):5} bytes  (bus master stores into guest memory)")
        return super().write(address, data)


class TracingGuest:
    """Issues IN/OUT to the spec's channel and prints each one, decoded."""

    def __init__(self, channel: AtaChannel):
        self.channel = channel
        self.step = 0

    def name_and_meaning(self, port: int, value: int, writing: bool) -> tuple[str, str]:
        ch = self.channel
        if port == ch.control_port:
            if writing:
                return "Device Control", bits(value, CONTROL_BITS)
            return "Alt Status", bits(value, STATUS_BITS)
        if ch.bus_master_base <= port < ch.bus_master_base + 8:
            register = BusMasterRegister(port - ch.bus_master_base)
            meaning = {
                BusMasterRegister.COMMAND: bits(value, BM_COMMAND_BITS),
                BusMasterRegister.STATUS: bits(value, BM_STATUS_BITS),
                BusMasterRegister.PRD_POINTER: f"table at {value:#x}",
            }[register]
            return BUS_MASTER_NAMES[register], meaning
        offset = CommandBlock(port - ch.command_base)
        name = (WRITE_NAMES if writing else READ_NAMES)[offset]
        if offset == CommandBlock.STATUS_COMMAND:
            if writing:
                command = lookup_command(value)
                return name, command.name if command else "not in the command table"
            return name, bits(value, STATUS_BITS)
        if offset == CommandBlock.ERROR_FEATURES and not writing:
            return name, bits(value, ERROR_BITS)
        if offset == CommandBlock.DEVICE:
            return name, f"{'LBA' if value & DEVICE_LBA else 'CHS'} device {1 if value & DEVICE_DEV else 0} bits {value & 0x0F:#x}"
        return name, ""

    def show(self, direction: str, port: int, width: int, value: int, writing: bool) -> None:
        self.step += 1
        name, meaning = self.name_and_meaning(port, value, writing)
        shown = f"{value:0{2 * width}x}"
        print(f"  {self.step:3}  {direction:3} {port:#06x} {name:<15} {shown:>8}  {meaning:<32} INTRQ {int(self.channel.intrq)}")

    def inb(self, port: int, width: int = 1) -> int:
        value = self.channel.read(port, width)
        self.show("IN", port, width, value, writing=False)
        return value

    def outb(self, port: int, value: int, width: int = 1) -> None:
        self.channel.write(port, width, value)
        self.show("OUT", port, width, value, writing=True)

    def tick(self) -> None:
        self.channel.tick()
        print(f"             time passes one tick{'':43} INTRQ {int(self.channel.intrq)}")

    def read_data_words(self, words: int) -> bytes:
        """`rep insw` of `words` words from the Data register, shown in part."""
        port = self.channel.command_base + CommandBlock.DATA
        data = b""
        for i in range(words):
            value = self.channel.read(port, 2)
            data += value.to_bytes(2, "little")
            if i < DATA_WORDS_SHOWN or i == words - 1:
                self.show("IN", port, 2, value, writing=False)
            elif i == DATA_WORDS_SHOWN:
                print(f"             ... {words - DATA_WORDS_SHOWN - 1} more words from the Data register ...")
        return data


def seabios_sector_read(guest: TracingGuest, lba: int) -> bytes:
    """int 13h: one sector by polled PIO, as SeaBIOS does it."""
    base, ctrl = guest.channel.command_base, guest.channel.control_port
    guest.outb(ctrl, 0x0A)  # nIEN: SeaBIOS polls instead of taking IRQ 14
    guest.inb(base + CommandBlock.STATUS_COMMAND)
    guest.outb(base + CommandBlock.DEVICE, 0xE0 | (lba >> 24))
    guest.outb(base + CommandBlock.ERROR_FEATURES, 0)
    guest.outb(base + CommandBlock.SECTOR_COUNT, 1)
    guest.outb(base + CommandBlock.LBA_LOW, lba & 0xFF)
    guest.outb(base + CommandBlock.LBA_MID, (lba >> 8) & 0xFF)
    guest.outb(base + CommandBlock.LBA_HIGH, (lba >> 16) & 0xFF)
    guest.outb(base + CommandBlock.STATUS_COMMAND, 0x20)
    while not guest.inb(base + CommandBlock.STATUS_COMMAND) & DRQ:
        guest.tick()
    data = guest.read_data_words(SECTOR_BYTES // 2)
    guest.inb(ctrl)
    guest.inb(base + CommandBlock.STATUS_COMMAND)
    guest.outb(ctrl, 0x08)
    return data


def linux_dma_read(guest: TracingGuest, memory: FlatMemory, lba: int, sectors: int) -> bytes:
    """READ DMA as libata's bus-master path issues it, then its interrupt handler."""
    ch = guest.channel
    base, ctrl, bm = ch.command_base, ch.control_port, ch.bus_master_base
    length = sectors * SECTOR_BYTES
    prd = DMA_BUFFER.to_bytes(4, "little") + length.to_bytes(2, "little") + PRD_EOT.to_bytes(2, "little")
    memory.bytes[PRD_TABLE : PRD_TABLE + len(prd)] = prd
    print(f"             the driver writes a PRD table at {PRD_TABLE:#x}: {length} bytes at {DMA_BUFFER:#x}, EOT")
    guest.outb(bm + BusMasterRegister.PRD_POINTER, PRD_TABLE, 4)
    guest.outb(bm + BusMasterRegister.COMMAND, 0x08)  # direction: the controller writes memory
    guest.outb(ctrl, 0x08)  # interrupts enabled
    guest.outb(base + CommandBlock.ERROR_FEATURES, 0)
    guest.outb(base + CommandBlock.SECTOR_COUNT, sectors)
    guest.outb(base + CommandBlock.LBA_LOW, lba & 0xFF)
    guest.outb(base + CommandBlock.LBA_MID, (lba >> 8) & 0xFF)
    guest.outb(base + CommandBlock.LBA_HIGH, (lba >> 16) & 0xFF)
    guest.outb(base + CommandBlock.DEVICE, 0xE0 | (lba >> 24))
    guest.outb(base + CommandBlock.STATUS_COMMAND, 0xC8)
    guest.outb(bm + BusMasterRegister.COMMAND, 0x09)  # START
    while not ch.intrq:
        guest.tick()
    print("             IRQ 14: the interrupt handler runs")
    guest.inb(bm + BusMasterRegister.STATUS)
    guest.outb(bm + BusMasterRegister.COMMAND, 0x08)  # stop the bus master
    guest.inb(base + CommandBlock.STATUS_COMMAND)
    guest.outb(bm + BusMasterRegister.STATUS, 0x06)  # clear the interrupt and error bits
    guest.inb(bm + BusMasterRegister.STATUS)
    return bytes(memory.bytes[DMA_BUFFER : DMA_BUFFER + length])


def main() -> int:
    store = MemoryStore(DISK_SECTORS, latency_ticks=STORE_LATENCY_TICKS)
    store.sectors[:] = b"".join(lba.to_bytes(2, "little") * (SECTOR_BYTES // 2) for lba in range(DISK_SECTORS))
    memory = TracingMemory(MEMORY_BYTES)
    channel = AtaChannel(store, memory, PRIMARY_COMMAND_BASE, PRIMARY_CONTROL_PORT, QEMU_BUS_MASTER_BASE)
    guest = TracingGuest(channel)
    print("storvisor ATA specification walkthrough: one disk on the primary IDE channel")
    print(f"disk of {DISK_SECTORS} sectors; each sector holds its own LBA in every word; the store answers after {STORE_LATENCY_TICKS} ticks\n")
    print("1. SeaBIOS int 13h reads LBA 7 (polled PIO, READ SECTORS)")
    print(f"  {'#':>3}  dir port   register           value  meaning{'':26} line")
    sector = seabios_sector_read(guest, 7)
    ok_pio = sector == bytes(store.sectors[7 * SECTOR_BYTES : 8 * SECTOR_BYTES])
    print(f"  => 512 bytes read, {'equal to' if ok_pio else 'DIFFERENT FROM'} LBA 7 on the disk\n")
    print("2. Linux ata_piix reads LBAs 100-107 by bus-master DMA (READ DMA)")
    data = linux_dma_read(guest, memory, 100, 8)
    ok_dma = data == bytes(store.sectors[100 * SECTOR_BYTES : 108 * SECTOR_BYTES])
    print(f"  => 4096 bytes in guest memory at {DMA_BUFFER:#x}, {'equal to' if ok_dma else 'DIFFERENT FROM'} LBAs 100-107")
    return 0 if ok_pio and ok_dma else 1


if __name__ == "__main__":
    sys.exit(main())
