/* Chapter 8 — the commands: one handler ata_process_<name> per entry of the command table
 * (spec/ata/handlers.py). Each checks its parameters in the spec's order, with the spec's comments,
 * then completes, fails with an error the standard defines, or enters its protocol. */
#include "ata_core.h"

/* Write the command's first sector and count into the transfer; false (and IDNF) when they are not on the medium (spec media_range). */
static bool ata_media_range(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    struct ata_task_file *r = &state->registers;
    const struct ata_command *command = ata_transfer_command(channel);
    uint64_t capacity = channel->store.sector_count(channel->store.context);
    uint64_t lba, limit;
    uint32_t count;
    bool exists = true;
    /* Departure: 48-bit commands are always LBA; the spec ignores a clear LBA bit instead of defining CHS for them. */
    if (command->addressing == ATA_ADDRESSING_LBA48) {
        lba = ata_lba_48(r->lba_low, r->lba_mid, r->lba_high, r->prev_lba_low, r->prev_lba_mid, r->prev_lba_high);
        count = ata_sector_count_48(r->sector_count, r->prev_sector_count);
        limit = capacity;
    } else if (r->device & ATA_DEVICE_LBA) {
        lba = ata_lba_28(r->lba_low, r->lba_mid, r->lba_high, r->device);
        count = ata_sector_count_28(r->sector_count);
        /* A 28-bit command reaches only the sectors IDENTIFY words 60-61 report (V1 §6, IDENTIFY DEVICE). */
        limit = capacity < ATA_IDENTIFY_LBA28_MAX ? capacity : ATA_IDENTIFY_LBA28_MAX;
    } else {
        struct ata_settings *s = &state->settings;
        uint32_t cylinders = ata_cylinders_for(capacity, s->heads, s->sectors_per_track);
        bool chs = ata_chs_to_lba(((uint32_t)r->lba_high << 8) | r->lba_mid, r->device & ATA_DEVICE_LOW_NIBBLE,
                                  r->lba_low, s->heads, s->sectors_per_track, cylinders, &lba);
        count = ata_sector_count_28(r->sector_count);
        /* After a translation the device cannot provide, every CHS access fails with IDNF (V1 §6, INITIALIZE DEVICE PARAMETERS). */
        exists = chs && s->chs_valid;
        limit = (uint64_t)cylinders * s->heads * s->sectors_per_track;
    }
    /* Every sector of the command must exist, or nothing is transferred (V1 §6, "ID not found"). */
    if (!exists || !ata_is_addressable(lba, count, limit)) {
        ata_complete_error(channel, ATA_IDNF);
        return false;
    }
    state->transfer.lba = lba;
    state->transfer.count = count;
    /* A media access brings the device out of idle or standby (V1 §4, power management). */
    state->settings.power = ATA_POWER_ACTIVE;
    return true;
}

/* READ/WRITE MULTIPLE need SET MULTIPLE MODE first; otherwise they are aborted (V1 §6, READ MULTIPLE). */
static bool ata_multiple_mode_enabled(struct ata_channel *channel)
{
    if (channel->state.settings.multiple_count == 0) {
        ata_complete_error(channel, ATA_ABRT);
        return false;
    }
    return true;
}

/* --- PIO data-in commands --- */

/* IDENTIFY DEVICE (V1 §6): one DRQ data block describing the device. */
static void ata_process_identify_device(struct ata_channel *channel)
{
    uint64_t capacity = channel->store.sector_count(channel->store.context);
    ata_identify_bytes(capacity, &channel->state.settings, channel->buffer);
    channel->state.transfer.count = 1;
    ata_offer_pio_in_block(channel, CORE_SECTOR_BYTES);
}

/* READ SECTORS (V1 §6): PIO data-in, one sector per DRQ data block. */
static void ata_process_read_sectors(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_pio_in_block(channel, channel->state.settings.multiple_count);
}

/* READ SECTORS EXT (V1 §6): as READ SECTORS, 48-bit address and count. */
static void ata_process_read_sectors_ext(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_pio_in_block(channel, channel->state.settings.multiple_count);
}

/* READ MULTIPLE (V1 §6): PIO data-in, the multiple count of sectors per DRQ data block. */
static void ata_process_read_multiple(struct ata_channel *channel)
{
    if (ata_multiple_mode_enabled(channel) && ata_media_range(channel))
        ata_start_pio_in_block(channel, channel->state.settings.multiple_count);
}

/* READ MULTIPLE EXT (V1 §6): as READ MULTIPLE, 48-bit address and count. */
static void ata_process_read_multiple_ext(struct ata_channel *channel)
{
    if (ata_multiple_mode_enabled(channel) && ata_media_range(channel))
        ata_start_pio_in_block(channel, channel->state.settings.multiple_count);
}

/* --- PIO data-out commands --- */

/* WRITE SECTORS (V1 §6): PIO data-out, one sector per DRQ data block. */
static void ata_process_write_sectors(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_request_pio_out_block(channel, false);
}

/* WRITE SECTORS EXT (V1 §6): as WRITE SECTORS, 48-bit address and count. */
static void ata_process_write_sectors_ext(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_request_pio_out_block(channel, false);
}

/* WRITE MULTIPLE (V1 §6): PIO data-out, the multiple count of sectors per DRQ data block. */
static void ata_process_write_multiple(struct ata_channel *channel)
{
    if (ata_multiple_mode_enabled(channel) && ata_media_range(channel))
        ata_request_pio_out_block(channel, false);
}

/* WRITE MULTIPLE EXT (V1 §6): as WRITE MULTIPLE, 48-bit address and count. */
static void ata_process_write_multiple_ext(struct ata_channel *channel)
{
    if (ata_multiple_mode_enabled(channel) && ata_media_range(channel))
        ata_request_pio_out_block(channel, false);
}

/* --- DMA commands --- */

/* READ DMA (V1 §6): the sectors go to guest memory through the bus master. */
static void ata_process_read_dma(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_dma_read(channel);
}

/* READ DMA EXT (V1 §6): as READ DMA, 48-bit address and count. */
static void ata_process_read_dma_ext(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_dma_read(channel);
}

/* WRITE DMA (V1 §6): the sectors come from guest memory through the bus master. */
static void ata_process_write_dma(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_dma_write(channel);
}

/* WRITE DMA EXT (V1 §6): as WRITE DMA, 48-bit address and count. */
static void ata_process_write_dma_ext(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_dma_write(channel);
}

/* --- Non-data commands --- */

/* READ VERIFY SECTORS (V1 §6): read the sectors from the medium without transferring them. */
static void ata_process_read_verify_sectors(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_non_data_store(channel, CORE_STORE_READ_SECTORS, channel->state.transfer.lba,
                                 channel->state.transfer.count);
}

/* READ VERIFY SECTORS EXT (V1 §6): as READ VERIFY SECTORS, 48-bit address and count. */
static void ata_process_read_verify_sectors_ext(struct ata_channel *channel)
{
    if (ata_media_range(channel))
        ata_start_non_data_store(channel, CORE_STORE_READ_SECTORS, channel->state.transfer.lba,
                                 channel->state.transfer.count);
}

/* FLUSH CACHE (V1 §6): every write completed before it is on the medium when it completes. */
static void ata_process_flush_cache(struct ata_channel *channel)
{
    ata_start_non_data_store(channel, CORE_STORE_FLUSH, 0, 0);
}

/* FLUSH CACHE EXT (V1 §6): the same as FLUSH CACHE on this device. */
static void ata_process_flush_cache_ext(struct ata_channel *channel)
{
    ata_start_non_data_store(channel, CORE_STORE_FLUSH, 0, 0);
}

/* Whether `count` is 0 or a power of two up to the largest multiple count (spec VALID_MULTIPLE_COUNTS). */
static bool ata_is_valid_multiple_count(uint8_t count)
{
    return count <= ATA_MAX_MULTIPLE && (count & (count - 1)) == 0;
}

/* SET MULTIPLE MODE (V1 §6): the Sector Count is the new multiple count; 0 disables multiple mode. */
static void ata_process_set_multiple_mode(struct ata_channel *channel)
{
    uint8_t count = channel->state.registers.sector_count;
    /* Only 0 and the powers of two up to IDENTIFY word 47 are valid counts. */
    if (!ata_is_valid_multiple_count(count)) {
        ata_complete_error(channel, ATA_ABRT);
        return;
    }
    channel->state.settings.multiple_count = count;
    ata_complete_ok(channel, true);
}

/* Whether a SET FEATURES 03h Sector Count names a mode this device supports (V1 §6, SET FEATURES, transfer mode values). */
static bool ata_is_supported_transfer_mode(uint8_t mode)
{
    uint8_t family = mode & 0xF8, number = mode & 0x07;
    if (mode == ATA_TRANSFER_PIO_DEFAULT || mode == ATA_TRANSFER_PIO_DEFAULT_NO_IORDY)
        return true;
    if (family == ATA_TRANSFER_PIO_FLOW_CONTROL)
        return number <= ATA_MAX_PIO_MODE;
    if (family == ATA_TRANSFER_MULTIWORD_DMA)
        return number <= ATA_MAX_MULTIWORD_DMA_MODE;
    if (family == ATA_TRANSFER_ULTRA_DMA)
        return number <= ATA_MAX_ULTRA_DMA_MODE;
    return false;
}

/* SET FEATURES (V1 §6): only the transfer mode and the write cache can be set; other subcommands abort. */
static void ata_process_set_features(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    uint8_t feature = state->registers.features;
    if (feature == ATA_FEATURE_SET_TRANSFER_MODE) {
        uint8_t mode = state->registers.sector_count;
        /* Only the modes IDENTIFY words 63, 64 and 88 report are accepted. */
        if (!ata_is_supported_transfer_mode(mode)) {
            ata_complete_error(channel, ATA_ABRT);
            return;
        }
        state->settings.transfer_mode = mode;
    } else if (feature == ATA_FEATURE_ENABLE_WRITE_CACHE) {
        state->settings.write_cache = true;
    } else if (feature == ATA_FEATURE_DISABLE_WRITE_CACHE) {
        state->settings.write_cache = false;
    } else {
        ata_complete_error(channel, ATA_ABRT);
        return;
    }
    ata_complete_ok(channel, true);
}

/* CHECK POWER MODE (V1 §6): the Sector Count reports standby (00h), idle (80h) or active (FFh). */
static void ata_process_check_power_mode(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    switch (state->settings.power) {
    case ATA_POWER_STANDBY:
        state->registers.sector_count = ATA_POWER_MODE_STANDBY;
        break;
    case ATA_POWER_IDLE:
        state->registers.sector_count = ATA_POWER_MODE_IDLE;
        break;
    default:
        state->registers.sector_count = ATA_POWER_MODE_ACTIVE;
    }
    ata_complete_ok(channel, true);
}

/* IDLE IMMEDIATE (V1 §6): enter the idle mode. */
static void ata_process_idle_immediate(struct ata_channel *channel)
{
    channel->state.settings.power = ATA_POWER_IDLE;
    ata_complete_ok(channel, true);
}

/* STANDBY IMMEDIATE (V1 §6): enter the standby mode; the next media access leaves it. */
static void ata_process_standby_immediate(struct ata_channel *channel)
{
    channel->state.settings.power = ATA_POWER_STANDBY;
    ata_complete_ok(channel, true);
}

/* INITIALIZE DEVICE PARAMETERS (V1 §6): a CHS translation of Sector Count sectors per track and Device bits 3:0 + 1 heads. */
static void ata_process_initialize_device_parameters(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    uint8_t sectors_per_track = state->registers.sector_count;
    uint8_t heads = (uint8_t)((state->registers.device & ATA_DEVICE_LOW_NIBBLE) + 1);
    uint64_t capacity = channel->store.sector_count(channel->store.context);
    /* A translation without sectors or cylinders cannot be provided: abort, and fail CHS accesses until a valid one is set. */
    if (sectors_per_track == 0 || ata_cylinders_for(capacity, heads, sectors_per_track) == 0) {
        state->settings.chs_valid = false;
        ata_complete_error(channel, ATA_ABRT);
        return;
    }
    state->settings.heads = heads;
    state->settings.sectors_per_track = sectors_per_track;
    state->settings.chs_valid = true;
    ata_complete_ok(channel, true);
}

/* --- EXECUTE DEVICE DIAGNOSTIC (V2 §11, EXECUTE DEVICE DIAGNOSTIC command protocol) --- */

/* EXECUTE DEVICE DIAGNOSTIC (V1 §6): the signature, the diagnostic code in Error, and an interrupt. */
static void ata_process_execute_device_diagnostic(struct ata_channel *channel)
{
    ata_write_signature(channel);
    channel->state.registers.error = ATA_DIAGNOSTIC_PASSED;
    ata_complete_ok(channel, true);
}

/* Leave the ATA signature in the command block, as reset and diagnostics do (V2 §11; V1 §6, EXECUTE DEVICE DIAGNOSTIC). */
void ata_write_signature(struct ata_channel *channel)
{
    struct ata_task_file *r = &channel->state.registers;
    r->sector_count = ATA_SIGNATURE_SECTOR_COUNT;
    r->lba_low = ATA_SIGNATURE_LBA_LOW;
    r->lba_mid = ATA_SIGNATURE_LBA_MID;
    r->lba_high = ATA_SIGNATURE_LBA_HIGH;
    r->prev_sector_count = r->prev_lba_low = r->prev_lba_mid = r->prev_lba_high = 0;
    r->device = ATA_SIGNATURE_DEVICE;
}

/* Every entry of the command table has its handler; difftest/test_ata_generated.py checks the pairing. */
static const struct {
    uint8_t code;
    ata_handler handler;
} ata_handlers[] = {
    { ATA_CMD_READ_SECTORS, ata_process_read_sectors },
    { ATA_CMD_READ_SECTORS_EXT, ata_process_read_sectors_ext },
    { ATA_CMD_READ_DMA_EXT, ata_process_read_dma_ext },
    { ATA_CMD_READ_MULTIPLE_EXT, ata_process_read_multiple_ext },
    { ATA_CMD_WRITE_SECTORS, ata_process_write_sectors },
    { ATA_CMD_WRITE_SECTORS_EXT, ata_process_write_sectors_ext },
    { ATA_CMD_WRITE_DMA_EXT, ata_process_write_dma_ext },
    { ATA_CMD_WRITE_MULTIPLE_EXT, ata_process_write_multiple_ext },
    { ATA_CMD_READ_VERIFY_SECTORS, ata_process_read_verify_sectors },
    { ATA_CMD_READ_VERIFY_SECTORS_EXT, ata_process_read_verify_sectors_ext },
    { ATA_CMD_EXECUTE_DEVICE_DIAGNOSTIC, ata_process_execute_device_diagnostic },
    { ATA_CMD_INITIALIZE_DEVICE_PARAMETERS, ata_process_initialize_device_parameters },
    { ATA_CMD_READ_MULTIPLE, ata_process_read_multiple },
    { ATA_CMD_WRITE_MULTIPLE, ata_process_write_multiple },
    { ATA_CMD_SET_MULTIPLE_MODE, ata_process_set_multiple_mode },
    { ATA_CMD_READ_DMA, ata_process_read_dma },
    { ATA_CMD_WRITE_DMA, ata_process_write_dma },
    { ATA_CMD_STANDBY_IMMEDIATE, ata_process_standby_immediate },
    { ATA_CMD_IDLE_IMMEDIATE, ata_process_idle_immediate },
    { ATA_CMD_CHECK_POWER_MODE, ata_process_check_power_mode },
    { ATA_CMD_FLUSH_CACHE, ata_process_flush_cache },
    { ATA_CMD_FLUSH_CACHE_EXT, ata_process_flush_cache_ext },
    { ATA_CMD_IDENTIFY_DEVICE, ata_process_identify_device },
    { ATA_CMD_SET_FEATURES, ata_process_set_features },
};

/* The handler of command `code`, or NULL when there is none. */
ata_handler ata_handler_for(uint8_t code)
{
    for (uint32_t i = 0; i < sizeof ata_handlers / sizeof ata_handlers[0]; i++)
        if (ata_handlers[i].code == code)
            return ata_handlers[i].handler;
    return 0;
}

/* Run the handler of command `code`, accepted on the previous Command register write. */
void ata_execute_command(struct ata_channel *channel, uint8_t code)
{
    struct ata_channel_state *state = &channel->state;
    state->registers.error = 0;
    int32_t command_index = ata_lookup_command_index(code);
    /* A code the table does not list is not supported: abort it (V1 §6, "unsupported commands"). */
    if (command_index < 0) {
        ata_complete_error(channel, ATA_ABRT);
        return;
    }
    ata_handler handler = ata_handler_for(code);
    /* A table entry without its handler is a build error of the core, never guest behaviour. */
    if (!handler) {
        ata_cannot_happen(channel, "a command of the table has no handler");
        return;
    }
    state->has_transfer = true;
    state->transfer = (struct ata_transfer){ .command_index = command_index };
    handler(channel);
}
