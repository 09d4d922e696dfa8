"""Chapter 7 — the protocol state machines (V2 §11), as transitions of the channel state.

Every command shows BSY from the Command register write until its handler
runs on the next tick. The handler (chapter 8) checks its parameters and then
enters one of the protocols below; from there the protocol, not the
command, decides when BSY, DRQ and the interrupt change:

| protocol | after the command is accepted | interrupt |
|---|---|---|
| non-data | BSY until done, then ready | at completion |
| PIO data-in | per DRQ data block: BSY while the block is read, then DRQ while the host reads it | at each DRQ; none after the last block |
| PIO data-out | DRQ for the first block as soon as the command runs; per block: BSY while it is written | at each later DRQ and at completion; none for the first block |
| DMA | BSY while reading, DRQ while the bus master moves the data, BSY while writing | at completion only |

Apart from software reset (chapter 10), BSY and DRQ change only through
`set_busy`, `set_data_request` and the `complete_*` functions, so they always
agree with the phase.
"""

from spec.ata.backing_store import SECTOR_BYTES, BackingStore, Flush, ReadSectors, StoreResult, WriteSectors
from spec.ata.constants import BSY, DRDY, DRQ, DSC, ERR
from spec.ata.errors import CannotHappen
from spec.ata.state import ChannelState, Phase, Transfer

# --- Status register transitions -----------------------------------------------------------


def set_busy(state: ChannelState, phase: Phase) -> None:
    """Enter a busy phase: BSY set, DRQ and ERR clear; DRDY and DSC stay, as drives report 0xD0 while busy."""
    state.phase = phase
    state.status = BSY | DRDY | DSC


def set_data_request(state: ChannelState, phase: Phase, interrupt: bool) -> None:
    """Enter a data phase: DRQ set, BSY clear (V2 §11: the device is ready to transfer a DRQ data block)."""
    state.phase = phase
    state.status = DRDY | DSC | DRQ
    if interrupt:
        state.interrupt_pending = True


def complete_ok(state: ChannelState, interrupt: bool = True) -> None:
    """End the command successfully: ready, no error; interrupt unless the protocol says otherwise."""
    state.phase = Phase.IDLE
    state.status = DRDY | DSC
    state.transfer = None
    if interrupt:
        state.interrupt_pending = True


def complete_error(state: ChannelState, error: int) -> None:
    """End the command with an error the standard defines: ERR set, the Error register says which, interrupt."""
    state.phase = Phase.IDLE
    state.status = DRDY | DSC | ERR
    state.registers.error = error
    state.transfer = None
    state.interrupt_pending = True


def start_store(state: ChannelState, store: BackingStore, request: ReadSectors | WriteSectors | Flush) -> None:
    """Begin the one outstanding backing-store request."""
    # The store takes one request at a time; a second one would be a device bug.
    if state.store_busy:
        raise CannotHappen("a backing-store request started while another is outstanding")
    state.store_busy = True
    store.start(request)


def current_transfer(state: ChannelState) -> Transfer:
    """The command in progress, which every phase after COMMAND_ACCEPTED has."""
    if state.transfer is None:
        raise CannotHappen(f"phase {state.phase.value} without a command in progress")
    return state.transfer


# --- Non-data (V2 §11, non-data command protocol) ------------------------------------------


def start_non_data_store(state: ChannelState, store: BackingStore, request: ReadSectors | Flush) -> None:
    """A non-data command that needs the store (verify, flush): BSY until it answers."""
    set_busy(state, Phase.NON_DATA_EXECUTING)
    start_store(state, store, request)


# --- PIO data-in (V2 §11, PIO data-in command protocol) ------------------------------------


def start_pio_in_block(state: ChannelState, store: BackingStore, multiple_count: int) -> None:
    """Read the next DRQ data block from the store, BSY meanwhile."""
    transfer = current_transfer(state)
    sectors = transfer.block_sectors(multiple_count)
    set_busy(state, Phase.PIO_IN_FETCHING)
    start_store(state, store, ReadSectors(transfer.lba + transfer.done, sectors))


def offer_pio_in_block(state: ChannelState, block: bytes) -> None:
    """Offer a DRQ data block to the host: DRQ and an interrupt for every block."""
    transfer = current_transfer(state)
    transfer.block, transfer.position = bytearray(block), 0
    set_data_request(state, Phase.PIO_IN_TRANSFER, interrupt=True)


def pio_in_block_read(state: ChannelState, store: BackingStore) -> None:
    """The host read the block's last word: fetch the next block, or end without an interrupt."""
    transfer = current_transfer(state)
    transfer.done += len(transfer.block) // SECTOR_BYTES
    if transfer.done >= transfer.count:
        # V2 §11 PIO data-in: the interrupt came with the last block's DRQ, none follows it.
        complete_ok(state, interrupt=False)
    else:
        start_pio_in_block(state, store, state.settings.multiple_count)


# --- PIO data-out (V2 §11, PIO data-out command protocol) ----------------------------------


def request_pio_out_block(state: ChannelState, interrupt: bool) -> None:
    """Ask the host for the next DRQ data block; the first request of a command comes without an interrupt."""
    transfer = current_transfer(state)
    sectors = transfer.block_sectors(state.settings.multiple_count)
    transfer.block, transfer.position = bytearray(sectors * SECTOR_BYTES), 0
    set_data_request(state, Phase.PIO_OUT_TRANSFER, interrupt)


def pio_out_block_written(state: ChannelState, store: BackingStore) -> None:
    """The host wrote the block's last word: BSY while the store writes it."""
    transfer = current_transfer(state)
    set_busy(state, Phase.PIO_OUT_STORING)
    start_store(state, store, WriteSectors(transfer.lba + transfer.done, bytes(transfer.block)))


# --- DMA (V2 §11, DMA command protocol) ----------------------------------------------------


def start_dma_read(state: ChannelState, store: BackingStore) -> None:
    """Read every sector of the command, BSY meanwhile; the bus master moves them afterwards."""
    transfer = current_transfer(state)
    set_busy(state, Phase.DMA_FETCHING)
    start_store(state, store, ReadSectors(transfer.lba, transfer.count))


def start_dma_write(state: ChannelState) -> None:
    """Assert DMARQ for the whole transfer: DRQ until the bus master has delivered every byte."""
    transfer = current_transfer(state)
    transfer.block, transfer.position = bytearray(transfer.count * SECTOR_BYTES), 0
    set_data_request(state, Phase.DMA_TRANSFER, interrupt=False)


def dma_transfer_done(state: ChannelState, store: BackingStore) -> None:
    """The bus master moved the last byte: a read is complete; a write goes to the store."""
    transfer = current_transfer(state)
    if not transfer.command.writes_medium:
        complete_ok(state)
    else:
        set_busy(state, Phase.DMA_STORING)
        start_store(state, store, WriteSectors(transfer.lba, bytes(transfer.block)))


# --- Backing-store results -----------------------------------------------------------------


def store_answered(state: ChannelState, store: BackingStore, result: StoreResult) -> None:
    """Continue the protocol with the store's answer to the outstanding request."""
    state.store_busy = False
    # A reset abandoned the command; the answer to its request is dropped (V2 §11, software reset).
    if state.phase in (Phase.RESET_ASSERTED, Phase.RESET_EXECUTING):
        return
    transfer = current_transfer(state)
    # The store's error bits (UNC, IDNF, ABRT) are the command's outcome; a failure without them is a store bug.
    if not result.ok:
        if not result.error & 0xFF:
            raise CannotHappen("the store reported a failure without Error register bits")
        complete_error(state, result.error)
        return
    match state.phase:
        case Phase.NON_DATA_EXECUTING:
            complete_ok(state)
        case Phase.PIO_IN_FETCHING:
            expect_sectors(result, transfer.block_sectors(state.settings.multiple_count))
            offer_pio_in_block(state, result.data)
        case Phase.DMA_FETCHING:
            expect_sectors(result, transfer.count)
            transfer.block, transfer.position = bytearray(result.data), 0
            set_data_request(state, Phase.DMA_TRANSFER, interrupt=False)
        case Phase.PIO_OUT_STORING | Phase.DMA_STORING:
            write_stored(state, store, transfer)
        case _:
            raise CannotHappen(f"a backing-store answer arrived in phase {state.phase.value}")


def write_stored(state: ChannelState, store: BackingStore, transfer: Transfer) -> None:
    """A write reached the store: with the write cache off it must also be flushed before it counts (V1 §6, SET FEATURES 82h)."""
    if not state.settings.write_cache and not transfer.flushing:
        transfer.flushing = True
        start_store(state, store, Flush())
        return
    transfer.flushing = False
    if state.phase is Phase.DMA_STORING:
        complete_ok(state)
        return
    transfer.done += len(transfer.block) // SECTOR_BYTES
    if transfer.done >= transfer.count:
        complete_ok(state)
    else:
        request_pio_out_block(state, interrupt=True)


def expect_sectors(result: StoreResult, sectors: int) -> None:
    """A successful read returns exactly the sectors asked for; anything else is a store bug."""
    if len(result.data) != sectors * SECTOR_BYTES:
        raise CannotHappen(f"the store returned {len(result.data)} bytes for {sectors} sectors")
