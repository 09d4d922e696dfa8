/* A client overlay's allocation map: one bit per sector of its image, set once the overlay holds
 * that sector. Leaves of DP_ALLOCATION_LEAF_SECTORS bits are made on first use, so a client that
 * wrote little costs little; a fully written 256 MiB image takes 64 KiB.
 * One thread changes a map; a commit's copy (commit.c) reads it from another, never the words a
 * write changes meanwhile, so leaf pointers are published atomically and bits need no more. */
#ifndef ALLOCATION_H
#define ALLOCATION_H

#include <stdint.h>

#define DP_ALLOCATION_LEAF_SHIFT 15
#define DP_ALLOCATION_LEAF_SECTORS (1ull << DP_ALLOCATION_LEAF_SHIFT)

struct dp_allocation {
    uint64_t sectors;   /* the image's */
    uint64_t leaves;
    uint64_t **leaf;    /* leaves entries; NULL: no sector of that leaf is allocated */
    uint64_t allocated; /* sectors whose bit is set */
};

/* 0, or -ENOMEM. */
int dp_allocation_init(struct dp_allocation *map, uint64_t sectors);
void dp_allocation_free(struct dp_allocation *map);
/* No sector is allocated any more. */
void dp_allocation_clear(struct dp_allocation *map);
/* Make the leaves sectors lba..lba+count-1 need, so that setting them cannot fail. 0, -ENOMEM, or
 * -EINVAL for sectors past the image. */
int dp_allocation_reserve(struct dp_allocation *map, uint64_t lba, uint64_t count);
/* Set sectors lba..lba+count-1 (their leaves reserved). */
void dp_allocation_set(struct dp_allocation *map, uint64_t lba, uint64_t count);
/* How many sectors from lba on, at most limit, are allocated (allocated != 0) or not (0). */
uint64_t dp_allocation_run(const struct dp_allocation *map, uint64_t lba, uint64_t limit, int allocated);

#endif
