/* Chapter 9 — the PIIX bus master: its registers and the DMA it performs (spec/ata/bus_master.py).
 * BMISTA after a walk: interrupt+!active exact, interrupt+active table longer, !interrupt+!active
 * table shorter or (with ERROR) a fault. */
#include "ata_core.h"

/* --- Registers --- */

/* BMICOM as read: START and the direction, reserved bits 0. */
uint8_t ata_command_register(const struct ata_bus_master *bm)
{
    return (uint8_t)((bm->start ? ATA_BM_START : 0) | (bm->write_to_memory ? ATA_BM_WRITE_TO_MEMORY : 0));
}

/* BMISTA as read. */
uint8_t ata_status_register(const struct ata_bus_master *bm)
{
    return (uint8_t)((bm->active ? ATA_BM_ACTIVE : 0) | (bm->error ? ATA_BM_ERROR : 0) |
                     (bm->interrupt ? ATA_BM_INTERRUPT : 0) | bm->drive_dma_capable);
}

/* One byte of the bus-master register block; reserved offsets read 0. */
uint8_t ata_read_bus_master_byte(const struct ata_bus_master *bm, uint32_t offset)
{
    if (offset == ATA_BUS_MASTER_REGISTER_COMMAND)
        return ata_command_register(bm);
    if (offset == ATA_BUS_MASTER_REGISTER_STATUS)
        return ata_status_register(bm);
    if (ATA_BUS_MASTER_REGISTER_PRD_POINTER <= offset && offset < ATA_BUS_MASTER_REGISTER_PRD_POINTER + 4)
        return (uint8_t)(bm->prd_pointer >> (8 * (offset - ATA_BUS_MASTER_REGISTER_PRD_POINTER)));
    return 0;
}

/* START 0→1 activates the bus master at the table's first entry; START 0 halts it (PIIX, BMICOM). */
static void ata_write_command_register(struct ata_bus_master *bm, uint8_t value)
{
    bool start = (value & ATA_BM_START) != 0;
    /* The direction must not change while the bus master is active; the spec ignores such a change. */
    if (!bm->active)
        bm->write_to_memory = (value & ATA_BM_WRITE_TO_MEMORY) != 0;
    if (start && !bm->start)
        bm->active = true;
    if (!start)
        bm->active = false;
    bm->start = start;
}

/* One byte written to the bus-master register block; writes to reserved offsets are ignored. */
void ata_write_bus_master_byte(struct ata_bus_master *bm, uint32_t offset, uint8_t value)
{
    if (offset == ATA_BUS_MASTER_REGISTER_COMMAND) {
        ata_write_command_register(bm, value & ATA_BM_COMMAND_WRITABLE);
    } else if (offset == ATA_BUS_MASTER_REGISTER_STATUS) {
        /* ERROR and INTERRUPT clear where a 1 is written; the drive DMA-capable bits are plain storage. */
        bm->error = bm->error && !(value & ATA_BM_ERROR);
        bm->interrupt = bm->interrupt && !(value & ATA_BM_INTERRUPT);
        bm->drive_dma_capable = value & ATA_BM_STATUS_WRITABLE;
    } else if (ATA_BUS_MASTER_REGISTER_PRD_POINTER <= offset && offset < ATA_BUS_MASTER_REGISTER_PRD_POINTER + 4) {
        uint32_t shift = 8 * (offset - ATA_BUS_MASTER_REGISTER_PRD_POINTER);
        uint32_t pointer = (bm->prd_pointer & ~(0xFFu << shift)) | ((uint32_t)value << shift);
        bm->prd_pointer = pointer & ~(uint32_t)(ATA_PRD_TABLE_ALIGN - 1); /* bits 1:0 are reserved: the table is dword aligned */
    }
}

/* --- DMA --- */

/* The device asserts DMARQ and the bus master is active in the device's direction. */
bool ata_is_dma_ready(struct ata_channel *channel)
{
    struct ata_channel_state *state = &channel->state;
    if (state->phase != ATA_DMA_TRANSFER || !state->bus_master.active)
        return false;
    bool device_reads = !ata_transfer_command(channel)->writes;
    /* The PIIX does not define a transfer against the programmed direction; the spec moves no data. */
    return device_reads == state->bus_master.write_to_memory;
}

/* Move one PRD region between the transfer and guest memory; false when memory does not answer. */
static bool ata_move_segment(struct ata_channel *channel, uint32_t address, uint32_t length)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    uint8_t *bytes = channel->buffer + transfer->position;
    if (channel->state.bus_master.write_to_memory) {
        if (!channel->memory.write(channel->memory.context, address, bytes, length))
            return false;
    } else {
        if (!channel->memory.read(channel->memory.context, address, bytes, length))
            return false;
    }
    transfer->position += length;
    return true;
}

/* Move as much of the transfer as the PRD table allows, then set the bus-master status as the walk ended. */
void ata_run_bus_master(struct ata_channel *channel)
{
    struct ata_bus_master *bm = &channel->state.bus_master;
    struct ata_transfer *transfer = &channel->state.transfer;
    enum ata_walk_outcome outcome = ata_walk_prd(channel, bm->prd_pointer, transfer->block_bytes - transfer->position);
    for (uint32_t i = 0; i < channel->segment_count; i++) {
        if (!ata_move_segment(channel, channel->segments[i].address, channel->segments[i].length)) {
            /* A region no memory answers is a PCI master abort: error, and the bus master stops. */
            bm->error = true;
            bm->active = false;
            return;
        }
    }
    if (outcome == ATA_WALK_FAULT) {
        bm->error = true;
        bm->active = false;
    } else if (outcome == ATA_WALK_EXACT || outcome == ATA_WALK_TABLE_SHORTER) {
        bm->active = false;
    }
    if (transfer->position == transfer->block_bytes)
        ata_dma_transfer_done(channel);
}
