"""Chapter 9 — the PIIX bus master: its registers and the DMA it performs.

The bus master is the controller's, not the device's: the host gives it a
PRD table and a direction and sets START; whenever the device asserts DMARQ
(here: the DMA transfer phase) and the directions agree, it walks the table
and moves the bytes between the device and guest memory. Its status register
then tells the host how the walk ended (PIIX, BMISTA):

| interrupt | active | meaning |
|---|---|---|
| 0 | 1 | transfer in progress, or not yet begun |
| 1 | 0 | the device finished and the table ended with the transfer |
| 1 | 1 | the device finished before the table ended (table longer than the transfer) |
| 0 | 0 | the table ended first (shorter than the transfer), or with ERROR set a fault |

After a shorter table or a fault the device still asserts DRQ for the bytes
it has not moved; the host recovers with a software reset, or (as the spec
defines, the datasheet does not) starts the bus master again on a new table
and the transfer continues where it stopped.
"""

from spec.ata.backing_store import BackingStore
from spec.ata.constants import (
    BM_ACTIVE,
    BM_COMMAND_WRITABLE,
    BM_ERROR,
    BM_INTERRUPT,
    BM_START,
    BM_STATUS_WRITABLE,
    BM_WRITE_TO_MEMORY,
    PRD_TABLE_ALIGN,
    BusMasterRegister,
)
from spec.ata.prd import GuestMemory, WalkOutcome, read_prd_table, walk_prd
from spec.ata.protocols import current_transfer, dma_transfer_done
from spec.ata.state import BusMaster, ChannelState, Phase

# --- Registers -------------------------------------------------------------------------------


def command_register(bm: BusMaster) -> int:
    """BMICOM as read: START and the direction, reserved bits 0."""
    return (BM_START if bm.start else 0) | (BM_WRITE_TO_MEMORY if bm.write_to_memory else 0)


def status_register(bm: BusMaster) -> int:
    """BMISTA as read."""
    return (
        (BM_ACTIVE if bm.active else 0)
        | (BM_ERROR if bm.error else 0)
        | (BM_INTERRUPT if bm.interrupt else 0)
        | bm.drive_dma_capable
    )


def read_bus_master_byte(bm: BusMaster, offset: int) -> int:
    """One byte of the bus-master register block; reserved offsets read 0."""
    if offset == BusMasterRegister.COMMAND:
        return command_register(bm)
    if offset == BusMasterRegister.STATUS:
        return status_register(bm)
    if BusMasterRegister.PRD_POINTER <= offset < BusMasterRegister.PRD_POINTER + 4:
        return (bm.prd_pointer >> (8 * (offset - BusMasterRegister.PRD_POINTER))) & 0xFF
    return 0


def write_bus_master_byte(bm: BusMaster, offset: int, value: int) -> None:
    """One byte written to the bus-master register block; writes to reserved offsets are ignored."""
    if offset == BusMasterRegister.COMMAND:
        write_command_register(bm, value & BM_COMMAND_WRITABLE)
    elif offset == BusMasterRegister.STATUS:
        # ERROR and INTERRUPT clear where a 1 is written; the drive DMA-capable bits are plain storage.
        bm.error = bm.error and not value & BM_ERROR
        bm.interrupt = bm.interrupt and not value & BM_INTERRUPT
        bm.drive_dma_capable = value & BM_STATUS_WRITABLE
    elif BusMasterRegister.PRD_POINTER <= offset < BusMasterRegister.PRD_POINTER + 4:
        shift = 8 * (offset - BusMasterRegister.PRD_POINTER)
        pointer = (bm.prd_pointer & ~(0xFF << shift)) | (value << shift)
        bm.prd_pointer = pointer & ~(PRD_TABLE_ALIGN - 1)  # bits 1:0 are reserved: the table is dword aligned


def write_command_register(bm: BusMaster, value: int) -> None:
    """START 0→1 activates the bus master at the table's first entry; START 0 halts it (PIIX, BMICOM)."""
    start = bool(value & BM_START)
    # The direction must not change while the bus master is active; the spec ignores such a change.
    if not bm.active:
        bm.write_to_memory = bool(value & BM_WRITE_TO_MEMORY)
    if start and not bm.start:
        bm.active = True
    if not start:
        bm.active = False
    bm.start = start


# --- DMA -------------------------------------------------------------------------------------


def is_dma_ready(state: ChannelState) -> bool:
    """The device asserts DMARQ and the bus master is active in the device's direction."""
    if state.phase is not Phase.DMA_TRANSFER or not state.bus_master.active:
        return False
    device_reads = not current_transfer(state).command.writes_medium
    # The PIIX does not define a transfer against the programmed direction; the spec moves no data.
    return device_reads == state.bus_master.write_to_memory


def run_bus_master(state: ChannelState, store: BackingStore, memory: GuestMemory) -> None:
    """Move as much of the transfer as the PRD table allows, then set the bus-master status as the walk ended."""
    bm = state.bus_master
    transfer = current_transfer(state)
    walk = walk_prd(read_prd_table(memory, bm.prd_pointer), len(transfer.block) - transfer.position)
    for address, length in walk.segments:
        if not move_segment(state, memory, address, length):
            # A region no memory answers is a PCI master abort: error, and the bus master stops.
            bm.error, bm.active = True, False
            return
    if walk.outcome is WalkOutcome.FAULT:
        bm.error, bm.active = True, False
    elif walk.outcome in (WalkOutcome.EXACT, WalkOutcome.TABLE_SHORTER):
        bm.active = False
    if transfer.position == len(transfer.block):
        dma_transfer_done(state, store)


def move_segment(state: ChannelState, memory: GuestMemory, address: int, length: int) -> bool:
    """Move one PRD region between the transfer and guest memory; False when memory does not answer."""
    transfer = current_transfer(state)
    start, end = transfer.position, transfer.position + length
    if state.bus_master.write_to_memory:
        if not memory.write(address, bytes(transfer.block[start:end])):
            return False
    else:
        data = memory.read(address, length)
        if data is None:
            return False
        transfer.block[start:end] = data
    transfer.position = end
    return True
