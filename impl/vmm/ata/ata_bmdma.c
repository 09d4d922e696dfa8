/* Bus-master IDE DMA of the primary channel (PIIX datasheet §2.7: BMICP, BMISP, BMIDTP).
 * Device DMA bypasses nested paging, so before a transfer starts the manager checks the
 * guest's PRD table and copies it into a shadow table in VMM memory that the guest cannot
 * change; the controller only ever sees the shadow (invariant dma_confined). A table that
 * reaches VMM memory is never started: the guest reads the bus-master error bit instead. */
#include "ata.h"
#include "../platform/platform.h"

#define PRD_END_OF_TABLE (1u << 31)
#define PRD_TABLE_MAX_ENTRIES 8192 /* one 64 KiB region of 8-byte entries (PIIX datasheet §2.7.3) */

static uint64_t shadow_prd_table[PRD_TABLE_MAX_ENTRIES] __attribute__((aligned(65536)));

/* Bytes one PRD entry moves: bit 0 ignored, 0 means 64 KiB (PIIX datasheet §2.7.3; QEMU masks alike). */
static uint32_t prd_byte_count(uint64_t entry)
{
    uint32_t count = (uint32_t)(entry >> 32) & 0xFFFE;
    return count ? count : 0x10000;
}

bool ata_prd_table_is_confined(uint32_t table, unsigned *entries)
{
    for (unsigned i = 0; i < PRD_TABLE_MAX_ENTRIES; i++) {
        uint64_t entry_address = (uint64_t)table + 8ull * i;
        if (range_touches_vmm(entry_address, 8))
            return false;
        uint64_t entry;
        guest_physical_read(entry_address, &entry, sizeof entry);
        uint64_t base = entry & 0xFFFFFFFFull;
        if (range_touches_vmm(base, prd_byte_count(entry) + 1ull))
            return false;
        if ((entry >> 32) & PRD_END_OF_TABLE) {
            *entries = i + 1;
            return true;
        }
    }
    return false; /* no end-of-table mark within 64 KiB: refuse rather than guess where the device stops */
}

/* The guest sets START: check its table, hand the controller the shadow copy, or refuse. */
static void ata_process_dma_start(struct ata_channel *ch, uint8_t command)
{
    unsigned entries = 0;
    if (!ata_prd_table_is_confined(ch->guest_prd_table, &entries)) {
        ch->dma_refused = true;
        stat_add(STAT_DMA_REFUSED);
        log_warn("ata: PRD table at %x reaches VMM memory: DMA refused (command %02x lba %lu)",
                 ch->guest_prd_table, ch->command_code, ch->lba);
        outb((uint16_t)(ch->busmaster_base + BM_COMMAND), command & (uint8_t)~BM_COMMAND_START);
        return;
    }
    guest_physical_read(ch->guest_prd_table, shadow_prd_table, entries * 8ull);
    outl((uint16_t)(ch->busmaster_base + BM_PRD_TABLE), (uint32_t)(uintptr_t)shadow_prd_table);
    ch->dma_refused = false;
    stat_add(STAT_DMA_STARTED);
    log_trace("ata: DMA start, %u PRD entries", entries);
    outb((uint16_t)(ch->busmaster_base + BM_COMMAND), command);
}

static uint8_t read_byte(struct ata_channel *ch, unsigned offset)
{
    if (offset >= BM_PRD_TABLE)
        return (uint8_t)(ch->guest_prd_table >> (8 * (offset - BM_PRD_TABLE)));
    uint8_t value = inb((uint16_t)(ch->busmaster_base + offset));
    if (offset == BM_STATUS && ch->dma_refused)
        value = (uint8_t)((value | BM_STATUS_ERROR | BM_STATUS_INTERRUPT) & ~BM_STATUS_ACTIVE);
    return value;
}

static void write_byte(struct ata_channel *ch, unsigned offset, uint8_t value)
{
    if (offset >= BM_PRD_TABLE) {
        unsigned shift = 8 * (offset - BM_PRD_TABLE);
        ch->guest_prd_table = (ch->guest_prd_table & ~(0xFFu << shift)) | (uint32_t)value << shift;
        return;
    }
    if (offset == BM_COMMAND) {
        bool starting = (value & BM_COMMAND_START) &&
                        !(inb((uint16_t)(ch->busmaster_base + BM_STATUS)) & BM_STATUS_ACTIVE);
        if (starting) {
            ata_process_dma_start(ch, value);
            return;
        }
    }
    if (offset == BM_STATUS && (value & BM_STATUS_ERROR))
        ch->dma_refused = false; /* error and interrupt bits are write-one-to-clear */
    outb((uint16_t)(ch->busmaster_base + offset), value);
}

uint32_t ata_bmdma_read(uint16_t offset, unsigned size)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < size; i++)
        value |= (uint32_t)read_byte(&ata_primary, (offset + i) & 7) << (8 * i);
    return value;
}

void ata_bmdma_write(uint16_t offset, unsigned size, uint32_t value)
{
    for (unsigned i = 0; i < size; i++)
        write_byte(&ata_primary, (offset + i) & 7, (uint8_t)(value >> (8 * i)));
}

void ata_bmdma_init(void)
{
    ata_primary.guest_prd_table = 0;
    ata_primary.dma_refused = false;
}
