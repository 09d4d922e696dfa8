/* The virtual ATA device of the core: one PIIX IDE channel with device 0 present, exactly as
 * spec/ata describes it. Files mirror the spec's chapters (ata_addressing.c ↔ addressing.py, …);
 * every spec function `f` is `ata_f` here, with the same checks in the same order.
 * The VMM's passthrough tracker (impl/vmm/ata) keeps its own names (ata_init, ata_lookup_command);
 * the spec's `lookup_command` is therefore `ata_lookup_command_index` here, and the command in
 * progress is an index into the table (ata_commands.h defines one copy of it per file). */
#ifndef STORVISOR_ATA_CORE_H
#define STORVISOR_ATA_CORE_H

#include "ata_commands.h"
#include "ata_constants.h"
#include "core_types.h"

/* --- Chapter 4: the channel state (spec/ata/state.py) --- */

/* The command block registers; Features, Sector Count and LBA are two bytes deep (V1 §7, "HOB"). */
struct ata_task_file {
    uint8_t features, prev_features;
    uint8_t sector_count, prev_sector_count;
    uint8_t lba_low, prev_lba_low;
    uint8_t lba_mid, prev_lba_mid;
    uint8_t lba_high, prev_lba_high;
    uint8_t device;
    uint8_t error;
};

/* What SET FEATURES, SET MULTIPLE MODE and INITIALIZE DEVICE PARAMETERS configure; kept across software reset. */
struct ata_settings {
    uint8_t multiple_count; /* 0: multiple mode disabled */
    uint8_t transfer_mode;  /* the last SET FEATURES 03h value */
    bool write_cache;
    uint8_t heads;
    uint8_t sectors_per_track;
    bool chs_valid;
    int32_t power; /* enum ata_power_mode */
};

/* The command in progress and how far it has come; `block` is the caller's transfer buffer. */
struct ata_transfer {
    int32_t command_index; /* index into ata_commands[] (the spec's command table order) */
    uint64_t lba;
    uint32_t count;
    uint32_t done;
    uint32_t block_bytes; /* length of the DRQ data block (PIO) or of the whole transfer (DMA) */
    uint32_t position;
    bool flushing;
};

/* The PIIX bus-master IDE registers of the primary channel. */
struct ata_bus_master {
    bool start, write_to_memory, active, error, interrupt;
    uint8_t drive_dma_capable;
    uint32_t prd_pointer;
};

/* Everything the device remembers (spec ChannelState); only fixed-width fields, so a host
 * binding can read it as it is (difftest/binding/ata.py mirrors this layout). */
struct ata_channel_state {
    int32_t phase; /* enum ata_protocol_phase */
    uint8_t status;
    struct ata_task_file registers;
    bool nien, srst, hob;
    bool interrupt_pending;
    bool intrq;
    bool store_busy;
    int32_t reset_ticks;
    uint8_t command_code;
    bool has_transfer;
    struct ata_transfer transfer;
    struct ata_settings settings;
    struct ata_bus_master bus_master;
};

/* One region of a PRD walk: `length` bytes of the transfer at guest-physical `address`. */
struct ata_prd_segment {
    uint32_t address;
    uint32_t length;
};

#define ATA_PRD_MAX_SEGMENTS (ATA_PRD_BOUNDARY / ATA_PRD_ENTRY_BYTES) /* a table lies in one 64 KiB page */

/* How a PRD walk ends (spec/ata/prd.py, WalkOutcome). */
enum ata_walk_outcome {
    ATA_WALK_EXACT,
    ATA_WALK_TABLE_LONGER,
    ATA_WALK_TABLE_SHORTER,
    ATA_WALK_FAULT,
};

/* The channel: its state plus what the caller gave it (spec AtaChannel). */
struct ata_channel {
    struct ata_channel_state state;
    struct core_store store;
    struct core_memory memory;
    uint16_t command_base, control_port, bus_master_base;
    uint8_t *buffer; /* the DRQ data block or the whole DMA transfer */
    uint32_t buffer_bytes;
    struct core_store_request request; /* the outstanding backing-store request */
    struct core_actions *actions;      /* where the current event's actions go */
    const char *cannot_happen;         /* set when the device broke its own rules; never cleared */
    uint32_t segment_count;
    struct ata_prd_segment segments[ATA_PRD_MAX_SEGMENTS];
};

/* What a guest can observe (spec Observation). */
struct ata_observation {
    int32_t phase;
    uint8_t status, error, sector_count, lba_low, lba_mid, lba_high, device;
    uint8_t previous[4]; /* Sector Count, LBA Low, Mid, High as read with HOB set */
    bool intrq;
    uint8_t bm_command, bm_status;
    uint32_t bm_prd_pointer;
};

/* --- Chapter 10: the public interface (ata_device.c) --- */

/* The transfer buffer a channel over `capacity` sectors needs: the largest DMA transfer or DRQ block. */
uint32_t ata_required_buffer_bytes(uint64_t capacity);
/* CORE_BAD_EVENT when the buffer is smaller than ata_required_buffer_bytes(store capacity). */
enum core_status ata_channel_init(struct ata_channel *channel, struct core_store store, struct core_memory memory,
                                  uint16_t command_base, uint16_t control_port, uint16_t bus_master_base,
                                  uint8_t *buffer, uint32_t buffer_bytes);
/* An IN: pushes CORE_ACTION_GUEST_VALUE, then CORE_ACTION_INTRQ if the line changed. */
enum core_status ata_channel_read(struct ata_channel *channel, uint16_t port, uint8_t width, struct core_actions *actions);
/* An OUT: pushes CORE_ACTION_INTRQ if the line changed. */
enum core_status ata_channel_write(struct ata_channel *channel, uint16_t port, uint8_t width, uint32_t value,
                                   struct core_actions *actions);
/* Time passes: the store may answer, an accepted command runs, the bus master moves data. */
enum core_status ata_channel_tick(struct ata_channel *channel, struct core_actions *actions);
bool ata_channel_decodes(const struct ata_channel *channel, uint16_t port);
void ata_channel_observe(const struct ata_channel *channel, struct ata_observation *observation);
/* For the host binding: the sizes it checks its mirror of the state against. */
uint32_t ata_channel_state_size(void);
uint32_t ata_channel_size(void);

/* --- Internal, shared between the chapters --- */

void ata_cannot_happen(struct ata_channel *channel, const char *what);
int32_t ata_lookup_command_index(uint8_t code);
const struct ata_command *ata_transfer_command(const struct ata_channel *channel);
uint32_t ata_block_sectors(const struct ata_channel *channel, uint32_t multiple_count);

/* Chapter 2: addressing (ata_addressing.c). */
uint32_t ata_sector_count_28(uint8_t count);
uint32_t ata_sector_count_48(uint8_t count, uint8_t previous_count);
uint64_t ata_lba_28(uint8_t lba_low, uint8_t lba_mid, uint8_t lba_high, uint8_t device);
uint64_t ata_lba_48(uint8_t lba_low, uint8_t lba_mid, uint8_t lba_high, uint8_t prev_low, uint8_t prev_mid,
                    uint8_t prev_high);
bool ata_chs_to_lba(uint32_t cylinder, uint32_t head, uint32_t sector, uint32_t heads, uint32_t sectors_per_track,
                    uint32_t cylinders, uint64_t *lba);
uint32_t ata_cylinders_for(uint64_t capacity, uint32_t heads, uint32_t sectors_per_track);
bool ata_is_addressable(uint64_t lba, uint64_t count, uint64_t limit);

/* Chapter 3: the PRD walk (ata_prd.c). */
bool ata_crosses_64k(uint64_t address, uint64_t length);
enum ata_walk_outcome ata_walk_prd(struct ata_channel *channel, uint32_t table_address, uint32_t transfer_bytes);

/* Chapter 5: IDENTIFY DEVICE (ata_identify.c). */
void ata_identify_bytes(uint64_t capacity, const struct ata_settings *settings, uint8_t bytes[CORE_SECTOR_BYTES]);

/* Chapter 7: the protocols (ata_protocols.c). */
void ata_set_busy(struct ata_channel *channel, enum ata_protocol_phase phase);
void ata_set_data_request(struct ata_channel *channel, enum ata_protocol_phase phase, bool interrupt);
void ata_complete_ok(struct ata_channel *channel, bool interrupt);
void ata_complete_error(struct ata_channel *channel, uint8_t error);
void ata_start_store(struct ata_channel *channel, enum core_store_kind kind, uint64_t lba, uint32_t count);
void ata_start_non_data_store(struct ata_channel *channel, enum core_store_kind kind, uint64_t lba, uint32_t count);
void ata_start_pio_in_block(struct ata_channel *channel, uint32_t multiple_count);
void ata_offer_pio_in_block(struct ata_channel *channel, uint32_t block_bytes);
void ata_pio_in_block_read(struct ata_channel *channel);
void ata_request_pio_out_block(struct ata_channel *channel, bool interrupt);
void ata_pio_out_block_written(struct ata_channel *channel);
void ata_start_dma_read(struct ata_channel *channel);
void ata_start_dma_write(struct ata_channel *channel);
void ata_dma_transfer_done(struct ata_channel *channel);
void ata_store_answered(struct ata_channel *channel, const struct core_store_result *result);

/* Chapter 8: the commands (ata_handlers.c). */
typedef void (*ata_handler)(struct ata_channel *channel);
ata_handler ata_handler_for(uint8_t code);
void ata_execute_command(struct ata_channel *channel, uint8_t code);
void ata_write_signature(struct ata_channel *channel);

/* Chapter 9: the bus master (ata_bus_master.c). */
uint8_t ata_command_register(const struct ata_bus_master *bm);
uint8_t ata_status_register(const struct ata_bus_master *bm);
uint8_t ata_read_bus_master_byte(const struct ata_bus_master *bm, uint32_t offset);
void ata_write_bus_master_byte(struct ata_bus_master *bm, uint32_t offset, uint8_t value);
bool ata_is_dma_ready(struct ata_channel *channel);
void ata_run_bus_master(struct ata_channel *channel);

#endif
