/* Chapter 10 — the channel as the guest sees it: port reads, port writes, clock ticks
 * (spec/ata/device.py, AtaChannel). Decodes the command block (8 ports), the control port and the
 * bus-master block (8 ports at BAR4); device 0 is present, device 1 absent. */
#include "ata_core.h"

#define ATA_OPEN_BUS 0xFF            /* a byte no register drives reads as all ones */
#define ATA_NO_DATA_WORD 0xFFFF      /* the Data register read without DRQ (the standard leaves it undefined) */
#define ATA_ABSENT_DEVICE_STATUS 0x00 /* Status of an absent device 1, as device 0 answers for it (V1 §7, Status register) */

/* --- Helpers shared by the chapters --- */

void ata_cannot_happen(struct ata_channel *channel, const char *what)
{
    if (!channel->cannot_happen)
        channel->cannot_happen = what;
}

/* The index of a command code's table entry, or -1: the device aborts unknown codes (spec lookup_command). */
int32_t ata_lookup_command_index(uint8_t code)
{
    for (int32_t i = 0; i < ATA_COMMAND_COUNT; i++)
        if (ata_commands[i].code == code)
            return i;
    return -1;
}

/* The command in progress, which every phase after COMMAND_ACCEPTED has (spec current_transfer). */
const struct ata_command *ata_transfer_command(const struct ata_channel *channel)
{
    int32_t index = channel->state.transfer.command_index;
    if (!channel->state.has_transfer || index < 0 || index >= ATA_COMMAND_COUNT) {
        ata_cannot_happen((struct ata_channel *)channel, "a phase without a command in progress");
        return &ata_commands[0];
    }
    return &ata_commands[index];
}

/* Sectors in the next DRQ data block: one, or the multiple count, never more than are left (spec Transfer.block_sectors). */
uint32_t ata_block_sectors(const struct ata_channel *channel, uint32_t multiple_count)
{
    const struct ata_transfer *transfer = &channel->state.transfer;
    uint32_t per_block = ata_transfer_command(channel)->multiple ? multiple_count : 1;
    uint32_t left = transfer->count - transfer->done;
    return per_block < left ? per_block : left;
}

uint32_t ata_required_buffer_bytes(uint64_t capacity)
{
    uint64_t largest = capacity < ATA_LBA48_MAX_SECTORS ? capacity : ATA_LBA48_MAX_SECTORS;
    if (largest < ATA_MAX_MULTIPLE)
        largest = ATA_MAX_MULTIPLE;
    return (uint32_t)(largest * CORE_SECTOR_BYTES);
}

uint32_t ata_channel_state_size(void)
{
    return sizeof(struct ata_channel_state);
}

uint32_t ata_channel_size(void)
{
    return sizeof(struct ata_channel);
}

/* --- Setup --- */

enum core_status ata_channel_init(struct ata_channel *channel, struct core_store store, struct core_memory memory,
                                  uint16_t command_base, uint16_t control_port, uint16_t bus_master_base,
                                  uint8_t *buffer, uint32_t buffer_bytes)
{
    /* The buffer must hold the largest transfer the capacity allows: the core allocates nothing. */
    if (!buffer || buffer_bytes < ata_required_buffer_bytes(store.sector_count(store.context)))
        return CORE_BAD_EVENT;
    *channel = (struct ata_channel){
        .store = store,
        .memory = memory,
        .command_base = command_base,
        .control_port = control_port,
        .bus_master_base = bus_master_base,
        .buffer = buffer,
        .buffer_bytes = buffer_bytes,
    };
    struct ata_channel_state *state = &channel->state;
    state->phase = ATA_IDLE;
    state->status = ATA_DRDY | ATA_DSC; /* power-on reset has completed (V2 §11, power-on reset protocol) */
    state->registers.sector_count = ATA_SIGNATURE_SECTOR_COUNT;
    state->registers.lba_low = ATA_SIGNATURE_LBA_LOW;
    state->registers.lba_mid = ATA_SIGNATURE_LBA_MID;
    state->registers.lba_high = ATA_SIGNATURE_LBA_HIGH;
    state->registers.device = ATA_SIGNATURE_DEVICE;
    state->registers.error = ATA_DIAGNOSTIC_PASSED;
    state->settings.transfer_mode = ATA_TRANSFER_PIO_DEFAULT;
    state->settings.write_cache = true;
    state->settings.heads = ATA_DEFAULT_HEADS;
    state->settings.sectors_per_track = ATA_DEFAULT_SECTORS_PER_TRACK;
    state->settings.chs_valid = true;
    state->settings.power = ATA_POWER_ACTIVE;
    state->transfer.command_index = -1;
    return CORE_OK;
}

/* --- Decoding --- */

static bool ata_in_command_block(const struct ata_channel *channel, uint32_t port)
{
    return channel->command_base <= port && port < (uint32_t)channel->command_base + 8;
}

static bool ata_in_bus_master(const struct ata_channel *channel, uint32_t port)
{
    return channel->bus_master_base <= port && port < (uint32_t)channel->bus_master_base + ATA_BUS_MASTER_SPAN;
}

/* Whether `port` is one of the channel's registers. */
bool ata_channel_decodes(const struct ata_channel *channel, uint16_t port)
{
    return ata_in_command_block(channel, port) || port == channel->control_port || ata_in_bus_master(channel, port);
}

/* An access that starts outside the channel is a caller error, not guest behaviour. */
static bool ata_access_is_valid(const struct ata_channel *channel, uint16_t port, uint8_t width)
{
    if (width != 1 && width != 2 && width != 4)
        return false;
    return ata_channel_decodes(channel, port);
}

static bool ata_device1_selected(const struct ata_channel *channel)
{
    return (channel->state.registers.device & ATA_DEVICE_DEV) != 0;
}

/* --- Interrupt line --- */

/* INTRQ shows a pending interrupt unless nIEN is set or device 0 is not selected (V1 §7, Device Control register). */
static void ata_update_intrq(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    bool line = state->interrupt_pending && !state->nien && !ata_device1_selected(channel);
    /* The PIIX latches the rising edge of its channel's interrupt line in BMISTA (PIIX, BMISTA bit 2). */
    if (line && !state->intrq)
        state->bus_master.interrupt = true;
    if (line != state->intrq)
        core_actions_push(channel->actions, (struct core_action){ .kind = CORE_ACTION_INTRQ, .u.level = line });
    state->intrq = line;
}

/* --- Byte registers --- */

static uint8_t ata_read_byte(struct ata_channel *channel, uint32_t port)
{
    struct ata_channel_state *state = &channel->state;
    struct ata_task_file *r = &state->registers;
    if (port == channel->control_port)
        /* Alternate Status: the Status register without clearing the interrupt (V1 §7, Alternate Status). */
        return ata_device1_selected(channel) ? ATA_ABSENT_DEVICE_STATUS : state->status;
    if (ata_in_bus_master(channel, port))
        return ata_read_bus_master_byte(&state->bus_master, port - channel->bus_master_base);
    if (!ata_in_command_block(channel, port))
        return ATA_OPEN_BUS;
    uint32_t offset = port - channel->command_base;
    if (offset == ATA_COMMAND_BLOCK_ERROR_FEATURES)
        return r->error;
    if (offset == ATA_COMMAND_BLOCK_DEVICE)
        return r->device;
    if (offset == ATA_COMMAND_BLOCK_STATUS_COMMAND) {
        if (ata_device1_selected(channel))
            return ATA_ABSENT_DEVICE_STATUS;
        /* Reading Status acknowledges the interrupt (V1 §7, Status register). */
        state->interrupt_pending = false;
        return state->status;
    }
    /* With HOB set the LBA48 registers read their previous content (V1 §7, Device Control register). */
    switch (offset) {
    case ATA_COMMAND_BLOCK_SECTOR_COUNT:
        return state->hob ? r->prev_sector_count : r->sector_count;
    case ATA_COMMAND_BLOCK_LBA_LOW:
        return state->hob ? r->prev_lba_low : r->lba_low;
    case ATA_COMMAND_BLOCK_LBA_MID:
        return state->hob ? r->prev_lba_mid : r->lba_mid;
    case ATA_COMMAND_BLOCK_LBA_HIGH:
        return state->hob ? r->prev_lba_high : r->lba_high;
    default:
        ata_cannot_happen(channel, "a byte read of the Data register");
        return ATA_OPEN_BUS;
    }
}

/* Features, Sector Count and LBA registers: the current content becomes the previous content (V1 §7, "HOB"). */
static void ata_write_two_deep(struct ata_channel *channel, uint32_t offset, uint8_t value)
{
    struct ata_task_file *r = &channel->state.registers;
    switch (offset) {
    case ATA_COMMAND_BLOCK_ERROR_FEATURES:
        r->prev_features = r->features;
        r->features = value;
        break;
    case ATA_COMMAND_BLOCK_SECTOR_COUNT:
        r->prev_sector_count = r->sector_count;
        r->sector_count = value;
        break;
    case ATA_COMMAND_BLOCK_LBA_LOW:
        r->prev_lba_low = r->lba_low;
        r->lba_low = value;
        break;
    case ATA_COMMAND_BLOCK_LBA_MID:
        r->prev_lba_mid = r->lba_mid;
        r->lba_mid = value;
        break;
    case ATA_COMMAND_BLOCK_LBA_HIGH:
        r->prev_lba_high = r->lba_high;
        r->lba_high = value;
        break;
    default:
        ata_cannot_happen(channel, "a two-deep write to a register that is not two deep");
    }
}

/* The Command register: BSY at once; the handler runs on the next tick. */
static void ata_write_command(struct ata_channel *channel, uint8_t code)
{
    struct ata_channel_state *state = &channel->state;
    /* An absent device 1 executes nothing; EXECUTE DEVICE DIAGNOSTIC runs on device 0 whichever is selected (V1 §6). */
    if (ata_device1_selected(channel) && code != ATA_CMD_EXECUTE_DEVICE_DIAGNOSTIC)
        return;
    /* Writing the Command register clears a pending interrupt (V1 §7, Command register). */
    state->interrupt_pending = false;
    state->command_code = code;
    ata_set_busy(channel, ATA_COMMAND_ACCEPTED);
}

/* Device Control: nIEN, SRST and HOB; always writable, even while BSY (V1 §7, Device Control register). */
static void ata_write_device_control(struct ata_channel *channel, uint8_t value)
{
    struct ata_channel_state *state = &channel->state;
    bool srst = (value & ATA_SRST) != 0;
    state->nien = (value & ATA_NIEN) != 0;
    state->hob = (value & ATA_HOB) != 0;
    if (srst && !state->srst) {
        /* SRST set: abandon any command, go busy, forget the interrupt (V2 §11, software reset protocol). */
        state->phase = ATA_RESET_ASSERTED;
        state->status = ATA_BSY;
        state->has_transfer = false;
        state->interrupt_pending = false;
    } else if (state->srst && !srst) {
        state->phase = ATA_RESET_EXECUTING;
        state->reset_ticks = ATA_RESET_TICKS;
    }
    state->srst = srst;
}

static void ata_write_byte(struct ata_channel *channel, uint32_t port, uint8_t value)
{
    struct ata_channel_state *state = &channel->state;
    if (port == channel->control_port) {
        ata_write_device_control(channel, value);
        return;
    }
    if (ata_in_bus_master(channel, port)) {
        ata_write_bus_master_byte(&state->bus_master, port - channel->bus_master_base, value);
        return;
    }
    if (!ata_in_command_block(channel, port))
        return;
    /* While BSY or DRQ is set the device owns the command block: host writes are ignored (V1 §7). */
    if (state->status & (ATA_BSY | ATA_DRQ))
        return;
    /* Any write to the command block clears HOB (V1 §7, Device Control register). */
    state->hob = false;
    uint32_t offset = port - channel->command_base;
    if (offset == ATA_COMMAND_BLOCK_DEVICE)
        state->registers.device = value;
    else if (offset == ATA_COMMAND_BLOCK_STATUS_COMMAND)
        ata_write_command(channel, value);
    else
        ata_write_two_deep(channel, offset, value);
}

/* The end of a software reset: the signature, diagnostics passed, ready, no interrupt (V2 §11). */
static void ata_finish_reset(struct ata_channel *channel)
{
    ata_write_signature(channel);
    channel->state.registers.error = ATA_DIAGNOSTIC_PASSED;
    channel->state.phase = ATA_IDLE;
    channel->state.status = ATA_DRDY | ATA_DSC;
}

/* --- Data register --- */

static uint32_t ata_read_data_word(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    /* Without DRQ in a data-in phase there is no data: all ones, nothing changes (departure: undefined in V1 §7). */
    if (state->phase != ATA_PIO_IN_TRANSFER || ata_device1_selected(channel))
        return ATA_NO_DATA_WORD;
    struct ata_transfer *transfer = &state->transfer;
    uint32_t word = (uint32_t)channel->buffer[transfer->position] | ((uint32_t)channel->buffer[transfer->position + 1] << 8);
    transfer->position += 2;
    if (transfer->position == transfer->block_bytes)
        ata_pio_in_block_read(channel);
    return word;
}

static uint32_t ata_read_data(struct ata_channel *channel, uint8_t width)
{
    if (width == 4) {
        /* A 32-bit access is two 16-bit bus cycles, low word first (PIIX, 32-bit data port accesses). */
        uint32_t low = ata_read_data_word(channel);
        return low | (ata_read_data_word(channel) << 16);
    }
    uint32_t word = ata_read_data_word(channel);
    /* An 8-bit access still moves a whole word on the 16-bit bus; the guest keeps the low byte. */
    return width == 1 ? (word & 0xFF) : word;
}

static void ata_write_data_word(struct ata_channel *channel, uint32_t word)
{
    struct ata_channel_state *state = &channel->state;
    /* Without DRQ in a data-out phase a Data write is ignored (departure: undefined in V1 §7). */
    if (state->phase != ATA_PIO_OUT_TRANSFER || ata_device1_selected(channel))
        return;
    struct ata_transfer *transfer = &state->transfer;
    channel->buffer[transfer->position] = (uint8_t)word;
    channel->buffer[transfer->position + 1] = (uint8_t)(word >> 8);
    transfer->position += 2;
    if (transfer->position == transfer->block_bytes)
        ata_pio_out_block_written(channel);
}

static void ata_write_data(struct ata_channel *channel, uint8_t width, uint32_t value)
{
    ata_write_data_word(channel, value & 0xFFFF);
    if (width == 4)
        ata_write_data_word(channel, value >> 16);
}

/* --- Events in --- */

static enum core_status ata_event_end(struct ata_channel *channel)
{
    if (channel->cannot_happen || channel->actions->overflow)
        return CORE_CANNOT_HAPPEN;
    return CORE_OK;
}

/* An IN of `width` bytes from `port`: the value the guest receives. */
enum core_status ata_channel_read(struct ata_channel *channel, uint16_t port, uint8_t width, struct core_actions *actions)
{
    channel->actions = actions;
    if (!ata_access_is_valid(channel, port, width))
        return CORE_BAD_EVENT;
    uint32_t value = 0;
    if (port == channel->command_base + ATA_COMMAND_BLOCK_DATA) {
        value = ata_read_data(channel, width);
    } else {
        /* A wide access to byte registers reads consecutive ports, lowest address in the lowest byte. */
        for (uint32_t i = 0; i < width; i++)
            value |= (uint32_t)ata_read_byte(channel, (uint32_t)port + i) << (8 * i);
    }
    core_actions_push(actions, (struct core_action){ .kind = CORE_ACTION_GUEST_VALUE, .u.value = value });
    ata_update_intrq(channel);
    return ata_event_end(channel);
}

/* An OUT of `width` bytes to `port`. */
enum core_status ata_channel_write(struct ata_channel *channel, uint16_t port, uint8_t width, uint32_t value,
                                   struct core_actions *actions)
{
    channel->actions = actions;
    if (!ata_access_is_valid(channel, port, width))
        return CORE_BAD_EVENT;
    if (width < 4 && value >> (8 * width))
        return CORE_BAD_EVENT;
    if (port == channel->command_base + ATA_COMMAND_BLOCK_DATA) {
        ata_write_data(channel, width, value);
    } else {
        for (uint32_t i = 0; i < width; i++)
            ata_write_byte(channel, (uint32_t)port + i, (uint8_t)(value >> (8 * i)));
    }
    ata_update_intrq(channel);
    return ata_event_end(channel);
}

/* One step of time: the store may answer, an accepted command runs, the bus master moves data. */
enum core_status ata_channel_tick(struct ata_channel *channel, struct core_actions *actions)
{
    struct ata_channel_state *state = &channel->state;
    channel->actions = actions;
    if (state->store_busy) {
        struct core_store_result result = { .ok = true, .error = 0 };
        if (channel->store.poll(channel->store.context, &result))
            ata_store_answered(channel, &result);
    }
    if (state->phase == ATA_COMMAND_ACCEPTED) {
        ata_execute_command(channel, state->command_code);
    } else if (state->phase == ATA_RESET_EXECUTING && !state->store_busy) {
        /* The reset waits for an abandoned store request to finish, then completes (V2 §11, software reset). */
        state->reset_ticks -= 1;
        if (state->reset_ticks <= 0)
            ata_finish_reset(channel);
    }
    if (ata_is_dma_ready(channel))
        ata_run_bus_master(channel);
    ata_update_intrq(channel);
    return ata_event_end(channel);
}

/* --- Outputs --- */

/* Everything a guest can observe, as one comparable value. */
void ata_channel_observe(const struct ata_channel *channel, struct ata_observation *observation)
{
    const struct ata_channel_state *s = &channel->state;
    observation->phase = s->phase;
    observation->status = s->status;
    observation->error = s->registers.error;
    observation->sector_count = s->registers.sector_count;
    observation->lba_low = s->registers.lba_low;
    observation->lba_mid = s->registers.lba_mid;
    observation->lba_high = s->registers.lba_high;
    observation->device = s->registers.device;
    observation->previous[0] = s->registers.prev_sector_count;
    observation->previous[1] = s->registers.prev_lba_low;
    observation->previous[2] = s->registers.prev_lba_mid;
    observation->previous[3] = s->registers.prev_lba_high;
    observation->intrq = s->intrq;
    observation->bm_command = ata_command_register(&s->bus_master);
    observation->bm_status = ata_status_register(&s->bus_master);
    observation->bm_prd_pointer = s->bus_master.prd_pointer;
}
