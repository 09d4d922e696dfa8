/* Encode, decode and recover the persistent map (spec/storage/persistent_map.py). */
#include "storage_map.h"

#include "storage_policy.h"

static const uint8_t MAP_MAGIC[8] = {'S', 'T', 'O', 'R', 'V', 'M', 'A', 'P'};

/* CRC-32 of IEEE 802.3 (zlib.crc32), bit by bit: the map is written rarely. */
uint32_t storage_crc32(uint32_t crc, const uint8_t *data, uint64_t bytes)
{
    crc = ~crc;
    for (uint64_t i = 0; i < bytes; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 1 ? crc >> 1 ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

static void store_le(uint8_t *p, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t load_le(const uint8_t *p, int bytes)
{
    uint64_t value = 0;
    for (int i = bytes - 1; i >= 0; i--)
        value = value << 8 | p[i];
    return value;
}

static uint8_t policy_code(uint8_t policy)
{
    return policy == STORAGE_CACHE ? 1 : 2;
}

void storage_encode_map(uint8_t *out, uint64_t generation, uint8_t policy, uint8_t clean, const uint8_t *present,
                        const struct storage_geometry *g, const uint8_t identity[STORAGE_IDENTITY_BYTES])
{
    uint64_t bitmap_bytes = storage_bitmap_sectors(g) * STORAGE_SECTOR_BYTES;
    for (int i = 0; i < STORAGE_SECTOR_BYTES; i++)
        out[i] = 0;
    for (int i = 0; i < 8; i++)
        out[i] = MAP_MAGIC[i];
    store_le(out + 8, STORAGE_MAP_VERSION, 4);
    for (int i = 0; i < STORAGE_IDENTITY_BYTES; i++)
        out[12 + i] = identity[i];
    store_le(out + 44, generation, 8);
    out[52] = policy_code(policy);
    out[53] = clean ? 1 : 0;
    store_le(out + 56, g->sectors_per_block, 4);
    store_le(out + 60, g->block_count, 4);
    uint8_t *bitmap = out + STORAGE_SECTOR_BYTES;
    for (uint64_t i = 0; i < bitmap_bytes; i++)
        bitmap[i] = 0;
    for (uint32_t block = 0; block < g->block_count; block++)
        storage_set_bit(bitmap, block, storage_bit(present, block));
    uint32_t crc = storage_crc32(storage_crc32(0, out, STORAGE_MAP_FIELDS_BYTES), bitmap, bitmap_bytes);
    store_le(out + STORAGE_MAP_FIELDS_BYTES, crc, 4);
}

int storage_decode_map(const uint8_t *raw, const struct storage_geometry *g,
                       const uint8_t identity[STORAGE_IDENTITY_BYTES], struct storage_map_record *record)
{
    const uint8_t *bitmap = raw + STORAGE_SECTOR_BYTES;
    uint64_t bitmap_bytes = storage_bitmap_sectors(g) * STORAGE_SECTOR_BYTES;
    /* A disk that never held a map, or was overwritten. */
    for (int i = 0; i < 8; i++)
        if (raw[i] != MAP_MAGIC[i])
            return STORAGE_MAP_NO_MAGIC;
    /* A layout this specification does not know is never guessed at. */
    if (load_le(raw + 8, 4) != STORAGE_MAP_VERSION)
        return STORAGE_MAP_UNKNOWN_VERSION;
    /* A torn or corrupted slot. */
    uint32_t crc = storage_crc32(storage_crc32(0, raw, STORAGE_MAP_FIELDS_BYTES), bitmap, bitmap_bytes);
    if (load_le(raw + STORAGE_MAP_FIELDS_BYTES, 4) != crc)
        return STORAGE_MAP_BAD_CHECKSUM;
    /* The local disk was filled from another image. */
    for (int i = 0; i < STORAGE_IDENTITY_BYTES; i++)
        if (raw[12 + i] != identity[i])
            return STORAGE_MAP_FOREIGN_IMAGE;
    /* Bits would name other sectors. */
    if (load_le(raw + 56, 4) != g->sectors_per_block || load_le(raw + 60, 4) != g->block_count)
        return STORAGE_MAP_OTHER_GEOMETRY;
    if ((raw[52] != 1 && raw[52] != 2) || raw[53] > 1)
        return STORAGE_MAP_UNKNOWN_POLICY;
    record->generation = load_le(raw + 44, 8);
    record->policy = raw[52] == 1 ? STORAGE_CACHE : STORAGE_INSTALL;
    record->clean = raw[53];
    record->present = bitmap;
    return STORAGE_MAP_VALID;
}

void storage_recover_map(const uint8_t *slots, const struct storage_geometry *g,
                         const uint8_t identity[STORAGE_IDENTITY_BYTES], struct storage_recovery *recovery)
{
    uint64_t slot_bytes = storage_slot_sectors(g) * STORAGE_SECTOR_BYTES;
    recovery->has_newest = 0;
    recovery->slot = 0;
    for (uint8_t slot = 0; slot < STORAGE_MAP_SLOTS; slot++) {
        struct storage_map_record record;
        recovery->rejections[slot] = (uint8_t)storage_decode_map(slots + slot * slot_bytes, g, identity, &record);
        if (recovery->rejections[slot] != STORAGE_MAP_VALID)
            continue;
        /* The newest wins even when it is an untrusted dirty cache map: the older clean one is out of date. */
        if (!recovery->has_newest || record.generation > recovery->newest.generation) {
            recovery->has_newest = 1;
            recovery->slot = slot;
            recovery->newest = record;
        }
    }
    /* A dirty cache map was written before guest writes whose local copies may be older than the server's. */
    recovery->trusted = recovery->has_newest && (recovery->newest.policy == STORAGE_INSTALL || recovery->newest.clean);
    recovery->next_slot = recovery->has_newest ? (uint8_t)(1 - recovery->slot) : 0;
    recovery->next_generation = recovery->has_newest ? recovery->newest.generation + 1 : 1;
}
