"""Chapter 8 — the commands: one handler `process_<name>` per entry of the command table.

`execute_command` runs on the first tick after the host writes the Command
register. It looks the code up in `spec/ata/commands.py`; a code the table
does not list is aborted. Each handler checks its parameters in a fixed
order — the C handler `ata_process_<name>` checks the same things in the
same order, with the same comments — and then either completes, fails with
an error the standard defines, or enters its protocol (chapter 7).
"""

from collections.abc import Callable

from spec.ata.addressing import (
    chs_to_lba,
    cylinders_for,
    is_addressable,
    lba_28,
    lba_48,
    sector_count_28,
    sector_count_48,
)
from spec.ata.backing_store import BackingStore, Flush, ReadSectors
from spec.ata.commands import COMMANDS, Addressing, lookup_command
from spec.ata.constants import (
    ABRT,
    DEVICE_LBA,
    DEVICE_LOW_NIBBLE,
    DIAGNOSTIC_PASSED,
    FEATURE_DISABLE_WRITE_CACHE,
    FEATURE_ENABLE_WRITE_CACHE,
    FEATURE_SET_TRANSFER_MODE,
    IDENTIFY_LBA28_MAX,
    IDNF,
    MAX_MULTIPLE,
    MAX_MULTIWORD_DMA_MODE,
    MAX_PIO_MODE,
    MAX_ULTRA_DMA_MODE,
    POWER_MODE_ACTIVE,
    POWER_MODE_IDLE,
    POWER_MODE_STANDBY,
    SIGNATURE_DEVICE,
    SIGNATURE_LBA_HIGH,
    SIGNATURE_LBA_LOW,
    SIGNATURE_LBA_MID,
    SIGNATURE_SECTOR_COUNT,
    TRANSFER_MULTIWORD_DMA,
    TRANSFER_PIO_DEFAULT,
    TRANSFER_PIO_DEFAULT_NO_IORDY,
    TRANSFER_PIO_FLOW_CONTROL,
    TRANSFER_ULTRA_DMA,
)
from spec.ata.identify import identify_bytes, identify_words
from spec.ata.protocols import (
    complete_error,
    complete_ok,
    current_transfer,
    offer_pio_in_block,
    request_pio_out_block,
    start_dma_read,
    start_dma_write,
    start_non_data_store,
    start_pio_in_block,
)
from spec.ata.state import ChannelState, PowerMode, Transfer

Handler = Callable[[ChannelState, BackingStore], None]
VALID_MULTIPLE_COUNTS = frozenset({0} | {1 << i for i in range(MAX_MULTIPLE.bit_length())})  # 0, 1, 2, 4, 8, 16


def execute_command(state: ChannelState, store: BackingStore, code: int) -> None:
    """Run the handler of command `code`, accepted on the previous Command register write."""
    state.registers.error = 0
    command = lookup_command(code)
    # A code the table does not list is not supported: abort it (V1 §6, "unsupported commands").
    if command is None:
        complete_error(state, ABRT)
        return
    state.transfer = Transfer(command)
    HANDLERS[command.code](state, store)


# --- Addressing shared by the media access commands ----------------------------------------


def media_range(state: ChannelState, store: BackingStore) -> bool:
    """Decode the command's first sector and count into the transfer; False (and IDNF) when they are not on the medium."""
    transfer = current_transfer(state)
    r = state.registers
    capacity = store.sector_count()
    # Departure: 48-bit commands are always LBA; the spec ignores a clear LBA bit instead of defining CHS for them.
    if transfer.command.addressing is Addressing.LBA48:
        lba = lba_48(r.lba_low, r.lba_mid, r.lba_high, r.prev_lba_low, r.prev_lba_mid, r.prev_lba_high)
        count = sector_count_48(r.sector_count, r.prev_sector_count)
        limit = capacity
    elif r.device & DEVICE_LBA:
        lba = lba_28(r.lba_low, r.lba_mid, r.lba_high, r.device)
        count = sector_count_28(r.sector_count)
        # A 28-bit command reaches only the sectors IDENTIFY words 60-61 report (V1 §6, IDENTIFY DEVICE).
        limit = min(capacity, IDENTIFY_LBA28_MAX)
    else:
        s = state.settings
        cylinders = cylinders_for(capacity, s.heads, s.sectors_per_track)
        chs = chs_to_lba((r.lba_high << 8) | r.lba_mid, r.device & DEVICE_LOW_NIBBLE, r.lba_low, s.heads, s.sectors_per_track, cylinders)
        count = sector_count_28(r.sector_count)
        # After a translation the device cannot provide, every CHS access fails with IDNF (V1 §6, INITIALIZE DEVICE PARAMETERS).
        lba = chs if chs is not None and s.chs_valid else -1
        limit = cylinders * s.heads * s.sectors_per_track
    # Every sector of the command must exist, or nothing is transferred (V1 §6, "ID not found").
    if lba < 0 or not is_addressable(lba, count, limit):
        complete_error(state, IDNF)
        return False
    transfer.lba, transfer.count = lba, count
    # A media access brings the device out of idle or standby (V1 §4, power management).
    state.settings.power = PowerMode.ACTIVE
    return True


def multiple_mode_enabled(state: ChannelState) -> bool:
    """READ/WRITE MULTIPLE need SET MULTIPLE MODE first; otherwise they are aborted (V1 §6, READ MULTIPLE)."""
    if state.settings.multiple_count == 0:
        complete_error(state, ABRT)
        return False
    return True


# --- PIO data-in commands --------------------------------------------------------------------


def process_identify_device(state: ChannelState, store: BackingStore) -> None:
    """IDENTIFY DEVICE (V1 §6): one DRQ data block describing the device."""
    s = state.settings
    words = identify_words(store.sector_count(), s.multiple_count, s.transfer_mode, s.write_cache, s.heads, s.sectors_per_track)
    current_transfer(state).count = 1
    offer_pio_in_block(state, identify_bytes(words))


def process_read_sectors(state: ChannelState, store: BackingStore) -> None:
    """READ SECTORS (V1 §6): PIO data-in, one sector per DRQ data block."""
    if media_range(state, store):
        start_pio_in_block(state, store, state.settings.multiple_count)


def process_read_sectors_ext(state: ChannelState, store: BackingStore) -> None:
    """READ SECTORS EXT (V1 §6): as READ SECTORS, 48-bit address and count."""
    if media_range(state, store):
        start_pio_in_block(state, store, state.settings.multiple_count)


def process_read_multiple(state: ChannelState, store: BackingStore) -> None:
    """READ MULTIPLE (V1 §6): PIO data-in, the multiple count of sectors per DRQ data block."""
    if multiple_mode_enabled(state) and media_range(state, store):
        start_pio_in_block(state, store, state.settings.multiple_count)


def process_read_multiple_ext(state: ChannelState, store: BackingStore) -> None:
    """READ MULTIPLE EXT (V1 §6): as READ MULTIPLE, 48-bit address and count."""
    if multiple_mode_enabled(state) and media_range(state, store):
        start_pio_in_block(state, store, state.settings.multiple_count)


# --- PIO data-out commands -------------------------------------------------------------------


def process_write_sectors(state: ChannelState, store: BackingStore) -> None:
    """WRITE SECTORS (V1 §6): PIO data-out, one sector per DRQ data block."""
    if media_range(state, store):
        request_pio_out_block(state, interrupt=False)


def process_write_sectors_ext(state: ChannelState, store: BackingStore) -> None:
    """WRITE SECTORS EXT (V1 §6): as WRITE SECTORS, 48-bit address and count."""
    if media_range(state, store):
        request_pio_out_block(state, interrupt=False)


def process_write_multiple(state: ChannelState, store: BackingStore) -> None:
    """WRITE MULTIPLE (V1 §6): PIO data-out, the multiple count of sectors per DRQ data block."""
    if multiple_mode_enabled(state) and media_range(state, store):
        request_pio_out_block(state, interrupt=False)


def process_write_multiple_ext(state: ChannelState, store: BackingStore) -> None:
    """WRITE MULTIPLE EXT (V1 §6): as WRITE MULTIPLE, 48-bit address and count."""
    if multiple_mode_enabled(state) and media_range(state, store):
        request_pio_out_block(state, interrupt=False)


# --- DMA commands ----------------------------------------------------------------------------


def process_read_dma(state: ChannelState, store: BackingStore) -> None:
    """READ DMA (V1 §6): the sectors go to guest memory through the bus master."""
    if media_range(state, store):
        start_dma_read(state, store)


def process_read_dma_ext(state: ChannelState, store: BackingStore) -> None:
    """READ DMA EXT (V1 §6): as READ DMA, 48-bit address and count."""
    if media_range(state, store):
        start_dma_read(state, store)


def process_write_dma(state: ChannelState, store: BackingStore) -> None:
    """WRITE DMA (V1 §6): the sectors come from guest memory through the bus master."""
    if media_range(state, store):
        start_dma_write(state)


def process_write_dma_ext(state: ChannelState, store: BackingStore) -> None:
    """WRITE DMA EXT (V1 §6): as WRITE DMA, 48-bit address and count."""
    if media_range(state, store):
        start_dma_write(state)


# --- Non-data commands -----------------------------------------------------------------------


def process_read_verify_sectors(state: ChannelState, store: BackingStore) -> None:
    """READ VERIFY SECTORS (V1 §6): read the sectors from the medium without transferring them."""
    if media_range(state, store):
        transfer = current_transfer(state)
        start_non_data_store(state, store, ReadSectors(transfer.lba, transfer.count))


def process_read_verify_sectors_ext(state: ChannelState, store: BackingStore) -> None:
    """READ VERIFY SECTORS EXT (V1 §6): as READ VERIFY SECTORS, 48-bit address and count."""
    if media_range(state, store):
        transfer = current_transfer(state)
        start_non_data_store(state, store, ReadSectors(transfer.lba, transfer.count))


def process_flush_cache(state: ChannelState, store: BackingStore) -> None:
    """FLUSH CACHE (V1 §6): every write completed before it is on the medium when it completes."""
    start_non_data_store(state, store, Flush())


def process_flush_cache_ext(state: ChannelState, store: BackingStore) -> None:
    """FLUSH CACHE EXT (V1 §6): the same as FLUSH CACHE on this device."""
    start_non_data_store(state, store, Flush())


def process_set_multiple_mode(state: ChannelState, store: BackingStore) -> None:
    """SET MULTIPLE MODE (V1 §6): the Sector Count is the new multiple count; 0 disables multiple mode."""
    count = state.registers.sector_count
    # Only 0 and the powers of two up to IDENTIFY word 47 are valid counts.
    if count not in VALID_MULTIPLE_COUNTS:
        complete_error(state, ABRT)
        return
    state.settings.multiple_count = count
    complete_ok(state)


def process_set_features(state: ChannelState, store: BackingStore) -> None:
    """SET FEATURES (V1 §6): only the transfer mode and the write cache can be set; other subcommands abort."""
    feature = state.registers.features
    if feature == FEATURE_SET_TRANSFER_MODE:
        mode = state.registers.sector_count
        # Only the modes IDENTIFY words 63, 64 and 88 report are accepted.
        if not is_supported_transfer_mode(mode):
            complete_error(state, ABRT)
            return
        state.settings.transfer_mode = mode
    elif feature == FEATURE_ENABLE_WRITE_CACHE:
        state.settings.write_cache = True
    elif feature == FEATURE_DISABLE_WRITE_CACHE:
        state.settings.write_cache = False
    else:
        complete_error(state, ABRT)
        return
    complete_ok(state)


def is_supported_transfer_mode(mode: int) -> bool:
    """Whether a SET FEATURES 03h Sector Count names a mode this device supports (V1 §6, SET FEATURES, transfer mode values)."""
    family, number = mode & 0xF8, mode & 0x07
    if mode in (TRANSFER_PIO_DEFAULT, TRANSFER_PIO_DEFAULT_NO_IORDY):
        return True
    if family == TRANSFER_PIO_FLOW_CONTROL:
        return number <= MAX_PIO_MODE
    if family == TRANSFER_MULTIWORD_DMA:
        return number <= MAX_MULTIWORD_DMA_MODE
    if family == TRANSFER_ULTRA_DMA:
        return number <= MAX_ULTRA_DMA_MODE
    return False


def process_check_power_mode(state: ChannelState, store: BackingStore) -> None:
    """CHECK POWER MODE (V1 §6): the Sector Count reports standby (00h), idle (80h) or active (FFh)."""
    state.registers.sector_count = {
        PowerMode.STANDBY: POWER_MODE_STANDBY,
        PowerMode.IDLE: POWER_MODE_IDLE,
        PowerMode.ACTIVE: POWER_MODE_ACTIVE,
    }[state.settings.power]
    complete_ok(state)


def process_idle_immediate(state: ChannelState, store: BackingStore) -> None:
    """IDLE IMMEDIATE (V1 §6): enter the idle mode."""
    state.settings.power = PowerMode.IDLE
    complete_ok(state)


def process_standby_immediate(state: ChannelState, store: BackingStore) -> None:
    """STANDBY IMMEDIATE (V1 §6): enter the standby mode; the next media access leaves it."""
    state.settings.power = PowerMode.STANDBY
    complete_ok(state)


def process_initialize_device_parameters(state: ChannelState, store: BackingStore) -> None:
    """INITIALIZE DEVICE PARAMETERS (V1 §6): a CHS translation of Sector Count sectors per track and Device bits 3:0 + 1 heads."""
    sectors_per_track = state.registers.sector_count
    heads = (state.registers.device & DEVICE_LOW_NIBBLE) + 1
    # A translation without sectors or cylinders cannot be provided: abort, and fail CHS accesses until a valid one is set.
    if sectors_per_track == 0 or cylinders_for(store.sector_count(), heads, sectors_per_track) == 0:
        state.settings.chs_valid = False
        complete_error(state, ABRT)
        return
    state.settings.heads, state.settings.sectors_per_track, state.settings.chs_valid = heads, sectors_per_track, True
    complete_ok(state)


# --- EXECUTE DEVICE DIAGNOSTIC (V2 §11, EXECUTE DEVICE DIAGNOSTIC command protocol) --------


def process_execute_device_diagnostic(state: ChannelState, store: BackingStore) -> None:
    """EXECUTE DEVICE DIAGNOSTIC (V1 §6): the signature, the diagnostic code in Error, and an interrupt."""
    write_signature(state)
    state.registers.error = DIAGNOSTIC_PASSED
    complete_ok(state)


def write_signature(state: ChannelState) -> None:
    """Leave the ATA signature in the command block, as reset and diagnostics do (V2 §11; V1 §6, EXECUTE DEVICE DIAGNOSTIC)."""
    r = state.registers
    r.sector_count, r.lba_low, r.lba_mid, r.lba_high = (
        SIGNATURE_SECTOR_COUNT,
        SIGNATURE_LBA_LOW,
        SIGNATURE_LBA_MID,
        SIGNATURE_LBA_HIGH,
    )
    r.prev_sector_count = r.prev_lba_low = r.prev_lba_mid = r.prev_lba_high = 0
    r.device = SIGNATURE_DEVICE


HANDLERS: dict[int, Handler] = {c.code: globals()[c.handler_name] for c in COMMANDS}  # every table entry has its handler
