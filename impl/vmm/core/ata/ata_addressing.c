/* Chapter 2 — how a command names sectors: LBA, CHS and sector counts (spec/ata/addressing.py). */
#include "ata_core.h"

/* The number of sectors a 28-bit command transfers (V1 §6, READ SECTORS: 0 means 256). */
uint32_t ata_sector_count_28(uint8_t count)
{
    return count ? count : ATA_LBA28_MAX_SECTORS;
}

/* The number of sectors a 48-bit command transfers: previous content is bits 15:8 (V1 §6, READ SECTORS EXT: 0 means 65536). */
uint32_t ata_sector_count_48(uint8_t count, uint8_t previous_count)
{
    uint32_t combined = ((uint32_t)previous_count << 8) | count;
    return combined ? combined : ATA_LBA48_MAX_SECTORS;
}

/* The 28-bit LBA: Device bits 3:0 are LBA bits 27:24 (V1 §7, Device register). */
uint64_t ata_lba_28(uint8_t lba_low, uint8_t lba_mid, uint8_t lba_high, uint8_t device)
{
    return ((uint64_t)(device & ATA_DEVICE_LOW_NIBBLE) << 24) | ((uint64_t)lba_high << 16) | ((uint64_t)lba_mid << 8) |
           lba_low;
}

/* The 48-bit LBA: current contents are bits 23:0, previous contents bits 47:24 (V1 §7, "HOB"). */
uint64_t ata_lba_48(uint8_t lba_low, uint8_t lba_mid, uint8_t lba_high, uint8_t prev_low, uint8_t prev_mid,
                    uint8_t prev_high)
{
    return ((uint64_t)prev_high << 40) | ((uint64_t)prev_mid << 32) | ((uint64_t)prev_low << 24) |
           ((uint64_t)lba_high << 16) | ((uint64_t)lba_mid << 8) | lba_low;
}

/* The LBA of a CHS address under the current translation; false when no such sector exists (V1 §6, INITIALIZE DEVICE PARAMETERS). */
bool ata_chs_to_lba(uint32_t cylinder, uint32_t head, uint32_t sector, uint32_t heads, uint32_t sectors_per_track,
                    uint32_t cylinders, uint64_t *lba)
{
    /* CHS sector numbers start at 1; the head and cylinder must lie inside the translation. */
    if (!(1 <= sector && sector <= sectors_per_track && head < heads && cylinder < cylinders))
        return false;
    *lba = ((uint64_t)cylinder * heads + head) * sectors_per_track + sector - 1;
    return true;
}

/* Cylinders of a CHS translation of `capacity` sectors, saturated as IDENTIFY words 1 and 54 require. */
uint32_t ata_cylinders_for(uint64_t capacity, uint32_t heads, uint32_t sectors_per_track)
{
    uint64_t cylinders = capacity / ((uint64_t)heads * sectors_per_track);
    return cylinders < ATA_MAX_CYLINDERS ? (uint32_t)cylinders : ATA_MAX_CYLINDERS;
}

/* Whether sectors lba .. lba+count-1 all lie below `limit`; otherwise the command fails with IDNF. */
bool ata_is_addressable(uint64_t lba, uint64_t count, uint64_t limit)
{
    return lba + count <= limit;
}
