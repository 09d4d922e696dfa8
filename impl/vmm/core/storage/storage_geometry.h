/* Notation, units and geometry of the storage manager (spec/storage/parameters.py). */
#ifndef STORAGE_GEOMETRY_H
#define STORAGE_GEOMETRY_H

#include <stdint.h>

#define STORAGE_SECTOR_BYTES 512 /* ATA/ATAPI-7 V1 §3.1: a logical sector of 256 words */
#define STORAGE_MAP_HEADER_SECTORS 1 /* magic, version, identity, generation, geometry, checksum */
#define STORAGE_MAP_SLOTS 2 /* two alternating slots: a torn map write leaves the other slot valid */

/* The shape of the guest's disk and of the reserved region behind it. */
struct storage_geometry {
    uint32_t sectors_per_block; /* a power of two, at least 1 */
    uint32_t block_count; /* blocks the guest's disk holds */
};

/* How hard the background fill engine may work (spec/storage/fill_engine.py). */
struct storage_fill_parameters {
    uint32_t max_in_flight; /* fills outstanding at once */
    uint32_t tokens_per_tick; /* background fills the rate limit admits per clock tick */
    uint32_t token_burst; /* the most tokens that accumulate while the engine waits */
    uint32_t commit_every; /* fills completed between two map commits */
};

/* The capacity the guest sees (IDENTIFY words 60-61 and 100-103). */
static inline uint64_t storage_data_sectors(const struct storage_geometry *g)
{
    return (uint64_t)g->sectors_per_block * g->block_count;
}

/* Sectors holding one bit per block. */
static inline uint64_t storage_bitmap_sectors(const struct storage_geometry *g)
{
    return ((uint64_t)g->block_count + 8 * STORAGE_SECTOR_BYTES - 1) / (8 * STORAGE_SECTOR_BYTES);
}

static inline uint64_t storage_slot_sectors(const struct storage_geometry *g)
{
    return STORAGE_MAP_HEADER_SECTORS + storage_bitmap_sectors(g);
}

/* Sectors at the end of the local disk the guest never sees. */
static inline uint64_t storage_reserved_sectors(const struct storage_geometry *g)
{
    return STORAGE_MAP_SLOTS * storage_slot_sectors(g);
}

/* First sector of map slot 0 or 1. */
static inline uint64_t storage_slot_lba(const struct storage_geometry *g, uint32_t slot)
{
    return storage_data_sectors(g) + slot * storage_slot_sectors(g);
}

static inline uint32_t storage_block_of(const struct storage_geometry *g, uint64_t lba)
{
    return (uint32_t)(lba / g->sectors_per_block);
}

static inline uint64_t storage_first_lba(const struct storage_geometry *g, uint32_t block)
{
    return (uint64_t)block * g->sectors_per_block;
}

/* Bit sets of blocks (persisted map, commit snapshot): bit b of byte b / 8, least significant first. */
static inline int storage_bit(const uint8_t *set, uint32_t block)
{
    return set[block / 8] >> (block % 8) & 1;
}

static inline void storage_set_bit(uint8_t *set, uint32_t block, int value)
{
    if (value)
        set[block / 8] |= (uint8_t)(1u << (block % 8));
    else
        set[block / 8] &= (uint8_t)~(1u << (block % 8));
}

#endif
