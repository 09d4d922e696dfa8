/* Chapter 7 — the protocol state machines (spec/ata/protocols.py; V2 §11).
 * Every command shows BSY from the Command register write until its handler runs on the next tick.
 * Apart from software reset (ata_device.c), BSY and DRQ change only through ata_set_busy,
 * ata_set_data_request and the ata_complete_* functions, so they always agree with the phase. */
#include "ata_core.h"
#include "core_lib.h"

/* --- Status register transitions --- */

/* Enter a busy phase: BSY set, DRQ and ERR clear; DRDY and DSC stay, as drives report 0xD0 while busy. */
void ata_set_busy(struct ata_channel *channel, enum ata_protocol_phase phase)
{
    channel->state.phase = phase;
    channel->state.status = ATA_BSY | ATA_DRDY | ATA_DSC;
}

/* Enter a data phase: DRQ set, BSY clear (V2 §11: the device is ready to transfer a DRQ data block). */
void ata_set_data_request(struct ata_channel *channel, enum ata_protocol_phase phase, bool interrupt)
{
    channel->state.phase = phase;
    channel->state.status = ATA_DRDY | ATA_DSC | ATA_DRQ;
    if (interrupt)
        channel->state.interrupt_pending = true;
}

/* End the command successfully: ready, no error; interrupt unless the protocol says otherwise. */
void ata_complete_ok(struct ata_channel *channel, bool interrupt)
{
    channel->state.phase = ATA_IDLE;
    channel->state.status = ATA_DRDY | ATA_DSC;
    channel->state.has_transfer = false;
    if (interrupt)
        channel->state.interrupt_pending = true;
}

/* End the command with an error the standard defines: ERR set, the Error register says which, interrupt. */
void ata_complete_error(struct ata_channel *channel, uint8_t error)
{
    channel->state.phase = ATA_IDLE;
    channel->state.status = ATA_DRDY | ATA_DSC | ATA_ERR;
    channel->state.registers.error = error;
    channel->state.has_transfer = false;
    channel->state.interrupt_pending = true;
}

/* Begin the one outstanding backing-store request; READ fills and WRITE takes the transfer buffer. */
void ata_start_store(struct ata_channel *channel, enum core_store_kind kind, uint64_t lba, uint32_t count)
{
    /* The store takes one request at a time; a second one would be a device bug. */
    if (channel->state.store_busy) {
        ata_cannot_happen(channel, "a backing-store request started while another is outstanding");
        return;
    }
    channel->state.store_busy = true;
    channel->request.kind = kind;
    channel->request.lba = lba;
    channel->request.count = count;
    channel->request.buffer = channel->buffer;
    channel->store.start(channel->store.context, &channel->request);
}

/* --- Non-data (V2 §11, non-data command protocol) --- */

/* A non-data command that needs the store (verify, flush): BSY until it answers. */
void ata_start_non_data_store(struct ata_channel *channel, enum core_store_kind kind, uint64_t lba, uint32_t count)
{
    ata_set_busy(channel, ATA_NON_DATA_EXECUTING);
    ata_start_store(channel, kind, lba, count);
}

/* --- PIO data-in (V2 §11, PIO data-in command protocol) --- */

/* Read the next DRQ data block from the store, BSY meanwhile. */
void ata_start_pio_in_block(struct ata_channel *channel, uint32_t multiple_count)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    uint32_t sectors = ata_block_sectors(channel, multiple_count);
    ata_set_busy(channel, ATA_PIO_IN_FETCHING);
    ata_start_store(channel, CORE_STORE_READ_SECTORS, transfer->lba + transfer->done, sectors);
}

/* Offer a DRQ data block (already in the buffer) to the host: DRQ and an interrupt for every block. */
void ata_offer_pio_in_block(struct ata_channel *channel, uint32_t block_bytes)
{
    channel->state.transfer.block_bytes = block_bytes;
    channel->state.transfer.position = 0;
    ata_set_data_request(channel, ATA_PIO_IN_TRANSFER, true);
}

/* The host read the block's last word: fetch the next block, or end without an interrupt. */
void ata_pio_in_block_read(struct ata_channel *channel)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    transfer->done += transfer->block_bytes / CORE_SECTOR_BYTES;
    if (transfer->done >= transfer->count)
        /* V2 §11 PIO data-in: the interrupt came with the last block's DRQ, none follows it. */
        ata_complete_ok(channel, false);
    else
        ata_start_pio_in_block(channel, channel->state.settings.multiple_count);
}

/* --- PIO data-out (V2 §11, PIO data-out command protocol) --- */

/* Ask the host for the next DRQ data block; the first request of a command comes without an interrupt. */
void ata_request_pio_out_block(struct ata_channel *channel, bool interrupt)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    uint32_t sectors = ata_block_sectors(channel, channel->state.settings.multiple_count);
    transfer->block_bytes = sectors * CORE_SECTOR_BYTES;
    transfer->position = 0;
    core_fill(channel->buffer, 0, transfer->block_bytes);
    ata_set_data_request(channel, ATA_PIO_OUT_TRANSFER, interrupt);
}

/* The host wrote the block's last word: BSY while the store writes it. */
void ata_pio_out_block_written(struct ata_channel *channel)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    ata_set_busy(channel, ATA_PIO_OUT_STORING);
    ata_start_store(channel, CORE_STORE_WRITE_SECTORS, transfer->lba + transfer->done,
                    transfer->block_bytes / CORE_SECTOR_BYTES);
}

/* --- DMA (V2 §11, DMA command protocol) --- */

/* Read every sector of the command, BSY meanwhile; the bus master moves them afterwards. */
void ata_start_dma_read(struct ata_channel *channel)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    ata_set_busy(channel, ATA_DMA_FETCHING);
    ata_start_store(channel, CORE_STORE_READ_SECTORS, transfer->lba, transfer->count);
}

/* Assert DMARQ for the whole transfer: DRQ until the bus master has delivered every byte. */
void ata_start_dma_write(struct ata_channel *channel)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    transfer->block_bytes = transfer->count * CORE_SECTOR_BYTES;
    transfer->position = 0;
    core_fill(channel->buffer, 0, transfer->block_bytes);
    ata_set_data_request(channel, ATA_DMA_TRANSFER, false);
}

/* The bus master moved the last byte: a read is complete; a write goes to the store. */
void ata_dma_transfer_done(struct ata_channel *channel)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    if (!ata_transfer_command(channel)->writes) {
        ata_complete_ok(channel, true);
    } else {
        ata_set_busy(channel, ATA_DMA_STORING);
        ata_start_store(channel, CORE_STORE_WRITE_SECTORS, transfer->lba, transfer->block_bytes / CORE_SECTOR_BYTES);
    }
}

/* --- Backing-store results --- */

/* A write reached the store: with the write cache off it must also be flushed before it counts (V1 §6, SET FEATURES 82h). */
static void ata_write_stored(struct ata_channel *channel)
{
    struct ata_transfer *transfer = &channel->state.transfer;
    if (!channel->state.settings.write_cache && !transfer->flushing) {
        transfer->flushing = true;
        ata_start_store(channel, CORE_STORE_FLUSH, 0, 0);
        return;
    }
    transfer->flushing = false;
    if (channel->state.phase == ATA_DMA_STORING) {
        ata_complete_ok(channel, true);
        return;
    }
    transfer->done += transfer->block_bytes / CORE_SECTOR_BYTES;
    if (transfer->done >= transfer->count)
        ata_complete_ok(channel, true);
    else
        ata_request_pio_out_block(channel, true);
}

/* Continue the protocol with the store's answer to the outstanding request. */
void ata_store_answered(struct ata_channel *channel, const struct core_store_result *result)
{
    struct ata_channel_state *state = &channel->state;
    state->store_busy = false;
    /* A reset abandoned the command; the answer to its request is dropped (V2 §11, software reset). */
    if (state->phase == ATA_RESET_ASSERTED || state->phase == ATA_RESET_EXECUTING)
        return;
    if (!state->has_transfer) {
        ata_cannot_happen(channel, "a backing-store answer arrived without a command in progress");
        return;
    }
    /* The store's error bits (UNC, IDNF, ABRT) are the command's outcome; a failure without them is a store bug. */
    if (!result->ok) {
        if (!result->error) {
            ata_cannot_happen(channel, "the store reported a failure without Error register bits");
            return;
        }
        ata_complete_error(channel, result->error);
        return;
    }
    switch (state->phase) {
    case ATA_NON_DATA_EXECUTING:
        ata_complete_ok(channel, true);
        break;
    case ATA_PIO_IN_FETCHING:
        ata_offer_pio_in_block(channel, channel->request.count * CORE_SECTOR_BYTES);
        break;
    case ATA_DMA_FETCHING:
        state->transfer.block_bytes = channel->request.count * CORE_SECTOR_BYTES;
        state->transfer.position = 0;
        ata_set_data_request(channel, ATA_DMA_TRANSFER, false);
        break;
    case ATA_PIO_OUT_STORING:
    case ATA_DMA_STORING:
        ata_write_stored(channel);
        break;
    default:
        ata_cannot_happen(channel, "a backing-store answer arrived in a phase that waits for none");
    }
}
