/* Chapter 3 — the Physical Region Descriptor table and its walk (spec/ata/prd.py; PIIX, bus master IDE).
 * Guest memory is reached only through the caller's core_memory, so every access is observable. */
#include "ata_core.h"
#include "core_lib.h"

/* One decoded descriptor (spec PrdEntry). */
struct ata_prd_entry {
    uint32_t address;
    uint32_t byte_count;
    bool end_of_table;
};

/* Decode the 8 bytes of a descriptor (PIIX, PRD table: bits 15:1 count bytes, 0 means 64 KiB). */
static struct ata_prd_entry ata_decode_prd_entry(const uint8_t raw[ATA_PRD_ENTRY_BYTES])
{
    struct ata_prd_entry entry;
    uint32_t count = core_load_le16(raw + 4) & 0xFFFE; /* byte count bit 0 is reserved */
    entry.address = core_load_le32(raw) & ~1u;          /* base address bit 0 is reserved */
    entry.byte_count = count ? count : ATA_PRD_MAX_REGION;
    entry.end_of_table = (core_load_le16(raw + 6) & ATA_PRD_EOT) != 0;
    return entry;
}

/* Whether the region [address, address+length) crosses a 64 KiB boundary, which no PRD region may. */
bool ata_crosses_64k(uint64_t address, uint64_t length)
{
    return address / ATA_PRD_BOUNDARY != (address + length - 1) / ATA_PRD_BOUNDARY;
}

static enum ata_walk_outcome ata_walk_ends(struct ata_channel *channel, uint32_t segments, enum ata_walk_outcome outcome)
{
    channel->segment_count = segments;
    return outcome;
}

/* Lay `transfer_bytes` over the table's regions in order, into channel->segments (spec walk_prd over read_prd_table).
 * Entries are fetched one at a time as the transfer needs them; the table may not leave its 64 KiB page (PIIX, BMIDTP). */
enum ata_walk_outcome ata_walk_prd(struct ata_channel *channel, uint32_t table_address, uint32_t transfer_bytes)
{
    uint32_t segments = 0;
    uint32_t remaining = transfer_bytes;
    uint64_t address = table_address;
    while (!ata_crosses_64k(table_address, address + ATA_PRD_ENTRY_BYTES - table_address)) {
        uint8_t raw[ATA_PRD_ENTRY_BYTES];
        /* An entry the controller cannot fetch ends the walk with a bus-master error. */
        if (!channel->memory.read(channel->memory.context, address, raw, ATA_PRD_ENTRY_BYTES))
            return ata_walk_ends(channel, segments, ATA_WALK_FAULT);
        struct ata_prd_entry entry = ata_decode_prd_entry(raw);
        /* The PIIX leaves a region crossing 64 KiB undefined; the spec makes it a bus-master error. */
        if (ata_crosses_64k(entry.address, entry.byte_count))
            return ata_walk_ends(channel, segments, ATA_WALK_FAULT);
        uint32_t take = remaining < entry.byte_count ? remaining : entry.byte_count;
        channel->segments[segments].address = entry.address;
        channel->segments[segments].length = take;
        segments++;
        remaining -= take;
        if (remaining == 0) {
            bool exact = entry.end_of_table && take == entry.byte_count;
            return ata_walk_ends(channel, segments, exact ? ATA_WALK_EXACT : ATA_WALK_TABLE_LONGER);
        }
        if (entry.end_of_table)
            return ata_walk_ends(channel, segments, ATA_WALK_TABLE_SHORTER);
        address += ATA_PRD_ENTRY_BYTES;
    }
    /* The entry after the last one in the table's page cannot be read: the controller would run off its table. */
    return ata_walk_ends(channel, segments, ATA_WALK_FAULT);
}
