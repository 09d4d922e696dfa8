/* The PRD table check behind invariant dma_confined. Pure apart from reading guest memory,
 * so tests/vmm compiles this file for the host and compares it with a Python reference. */
#include "ata.h"
#include "../platform/platform.h"

/* Bytes one PRD entry moves: bit 0 of the count ignored, 0 means 64 KiB (PIIX datasheet §2.7.3). */
static uint32_t prd_byte_count(uint64_t entry)
{
    uint32_t count = (uint32_t)(entry >> 32) & 0xFFFE;
    return count ? count : 0x10000;
}

bool ata_prd_table_is_confined(uint32_t table, unsigned *entries)
{
    for (unsigned i = 0; i < PRD_TABLE_MAX_ENTRIES; i++) {
        uint64_t entry_address = (uint64_t)table + 8ull * i;
        /* The controller reads the table by DMA too. */
        if (range_touches_vmm(entry_address, 8))
            return false;
        uint64_t entry;
        guest_physical_read(entry_address, &entry, sizeof entry);
        /* The PIIX ignores address bit 0, QEMU does not: cover the bytes either would write. */
        uint64_t address = entry & 0xFFFFFFFFull;
        uint64_t start = address & ~1ull;
        if (range_touches_vmm(start, prd_byte_count(entry) + (address - start)))
            return false;
        if ((entry >> 32) & PRD_END_OF_TABLE) {
            *entries = i + 1;
            return true;
        }
    }
    return false; /* no end-of-table mark within 64 KiB: refuse rather than guess where the device stops */
}
