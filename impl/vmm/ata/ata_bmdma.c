/* Bus-master IDE DMA (PIIX datasheet §2.7: BMIC, BMIS, BMIDTP per channel).
 * Device DMA bypasses nested paging, so before a transfer starts the manager checks the
 * guest's PRD table and copies it into a shadow table in VMM memory that the guest cannot
 * change; the controller only ever sees the shadow (invariant dma_confined). A table that
 * reaches VMM memory is never started: the guest reads the bus-master error bit instead. */
#include "ata.h"
#include "../platform/platform.h"


static uint64_t shadow_primary[PRD_TABLE_MAX_ENTRIES] __attribute__((aligned(65536)));
static uint64_t shadow_secondary[PRD_TABLE_MAX_ENTRIES] __attribute__((aligned(65536)));

static struct ata_busmaster busmasters[2] = {
    { "primary", 0, 0, false, shadow_primary },
    { "secondary", 8, 0, false, shadow_secondary },
};

static uint16_t port_of(const struct ata_busmaster *bm, unsigned reg)
{
    return (uint16_t)(ata_primary.busmaster_base + bm->offset + reg);
}

/* The guest sets START: check its table, hand the controller the shadow copy, or refuse. */
static void ata_process_dma_start(struct ata_busmaster *bm, uint8_t command)
{
    unsigned entries = 0;
    if (!ata_prd_table_is_confined(bm->guest_prd_table, &entries)) {
        bm->dma_refused = true;
        stat_add(STAT_DMA_REFUSED);
        log_warn("ata: PRD table at %x (%s channel) reaches VMM memory: DMA refused", bm->guest_prd_table,
                 bm->name);
        outb(port_of(bm, BM_COMMAND), command & (uint8_t)~BM_COMMAND_START);
        return;
    }
    guest_physical_read(bm->guest_prd_table, bm->shadow_prd_table, entries * 8ull);
    outl(port_of(bm, BM_PRD_TABLE), (uint32_t)(uintptr_t)bm->shadow_prd_table);
    bm->dma_refused = false;
    stat_add(STAT_DMA_STARTED);
    log_trace("ata: DMA start on the %s channel, %u PRD entries", bm->name, entries);
    outb(port_of(bm, BM_COMMAND), command);
}

static uint8_t read_byte(struct ata_busmaster *bm, unsigned reg)
{
    if (reg >= BM_PRD_TABLE)
        return (uint8_t)(bm->guest_prd_table >> (8 * (reg - BM_PRD_TABLE)));
    uint8_t value = inb(port_of(bm, reg));
    if (reg == BM_STATUS && bm->dma_refused)
        value = (uint8_t)((value | BM_STATUS_ERROR | BM_STATUS_INTERRUPT) & ~BM_STATUS_ACTIVE);
    return value;
}

static void write_byte(struct ata_busmaster *bm, unsigned reg, uint8_t value)
{
    if (reg >= BM_PRD_TABLE) {
        unsigned shift = 8 * (reg - BM_PRD_TABLE);
        bm->guest_prd_table = (bm->guest_prd_table & ~(0xFFu << shift)) | (uint32_t)value << shift;
        return;
    }
    if (reg == BM_COMMAND) {
        bool starting = (value & BM_COMMAND_START) && !(inb(port_of(bm, BM_STATUS)) & BM_STATUS_ACTIVE);
        if (starting) {
            ata_process_dma_start(bm, value);
            return;
        }
    }
    if (reg == BM_STATUS && (value & BM_STATUS_ERROR))
        bm->dma_refused = false; /* error and interrupt bits are write-one-to-clear */
    outb(port_of(bm, reg), value);
}

uint32_t ata_bmdma_read(uint16_t offset, unsigned size)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < size; i++) {
        unsigned at = (offset + i) & (ATA_BUSMASTER_PORTS - 1);
        value |= (uint32_t)read_byte(&busmasters[at / ATA_BUSMASTER_CHANNEL_PORTS], at % ATA_BUSMASTER_CHANNEL_PORTS)
                 << (8 * i);
    }
    return value;
}

void ata_bmdma_write(uint16_t offset, unsigned size, uint32_t value)
{
    for (unsigned i = 0; i < size; i++) {
        unsigned at = (offset + i) & (ATA_BUSMASTER_PORTS - 1);
        write_byte(&busmasters[at / ATA_BUSMASTER_CHANNEL_PORTS], at % ATA_BUSMASTER_CHANNEL_PORTS,
                   (uint8_t)(value >> (8 * i)));
    }
}

/* While 0xCF8 was released the guest may have programmed a bus master at a BAR4 it moved: its
 * table pointer becomes the guest's value and the controller gets the shadow back, and a START
 * it set is stopped and goes through the same check as a watched one. */
void ata_bmdma_catch_up(void)
{
    if (!ata_primary.busmaster_base)
        return;
    for (unsigned c = 0; c < 2; c++) {
        struct ata_busmaster *bm = &busmasters[c];
        uint32_t pointer = inl(port_of(bm, BM_PRD_TABLE));
        if (pointer == (uint32_t)(uintptr_t)bm->shadow_prd_table)
            continue;
        log_debug("ata: %s bus master programmed unseen (table %x): taken over", bm->name, pointer);
        bm->guest_prd_table = pointer;
        uint8_t command = inb(port_of(bm, BM_COMMAND));
        if (command & BM_COMMAND_START) {
            outb(port_of(bm, BM_COMMAND), command & (uint8_t)~BM_COMMAND_START);
            ata_process_dma_start(bm, command);
        } else {
            outl(port_of(bm, BM_PRD_TABLE), (uint32_t)(uintptr_t)bm->shadow_prd_table);
        }
    }
}

bool ata_bmdma_active(void)
{
    if (!ata_primary.busmaster_base)
        return false;
    return (inb(port_of(&busmasters[0], BM_STATUS)) | inb(port_of(&busmasters[1], BM_STATUS))) & BM_STATUS_ACTIVE;
}

/* The guest's BMIDTP values start as the firmware left them; the controller's point at the
 * shadows from the start, so no path to START can find a table the VMM has not copied. */
void ata_bmdma_init(uint16_t busmaster_base)
{
    for (unsigned c = 0; c < 2; c++) {
        struct ata_busmaster *bm = &busmasters[c];
        bm->dma_refused = false;
        bm->guest_prd_table = 0;
        if (!busmaster_base)
            continue;
        uint16_t pointer = (uint16_t)(busmaster_base + bm->offset + BM_PRD_TABLE);
        bm->guest_prd_table = inl(pointer);
        bm->shadow_prd_table[0] = (uint64_t)PRD_END_OF_TABLE << 32 | 0x0000; /* 64 KiB at 0, if ever started */
        outl(pointer, (uint32_t)(uintptr_t)bm->shadow_prd_table);
    }
}
