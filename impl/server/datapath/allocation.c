/* A client overlay's allocation map (allocation.h): a two-level bitmap of sectors. */
#include <errno.h>
#include <stdlib.h>

#include "allocation.h"

#define WORD_BITS 64u
#define LEAF_WORDS (DP_ALLOCATION_LEAF_SECTORS / WORD_BITS)
#define IN_LEAF(lba) ((lba) & (DP_ALLOCATION_LEAF_SECTORS - 1))

static uint64_t *leaf_of(const struct dp_allocation *map, uint64_t lba)
{
    uint64_t index = lba >> DP_ALLOCATION_LEAF_SHIFT;
    return index < map->leaves ? __atomic_load_n(&map->leaf[index], __ATOMIC_ACQUIRE) : NULL;
}

int dp_allocation_init(struct dp_allocation *map, uint64_t sectors)
{
    map->sectors = sectors;
    map->leaves = (sectors + DP_ALLOCATION_LEAF_SECTORS - 1) >> DP_ALLOCATION_LEAF_SHIFT;
    map->allocated = 0;
    map->leaf = calloc(map->leaves ? map->leaves : 1, sizeof *map->leaf);
    return map->leaf ? 0 : -ENOMEM;
}

void dp_allocation_free(struct dp_allocation *map)
{
    dp_allocation_clear(map);
    free(map->leaf);
    map->leaf = NULL;
}

void dp_allocation_clear(struct dp_allocation *map)
{
    for (uint64_t i = 0; i < map->leaves; i++) {
        free(map->leaf[i]);
        __atomic_store_n(&map->leaf[i], NULL, __ATOMIC_RELEASE);
    }
    map->allocated = 0;
}

int dp_allocation_reserve(struct dp_allocation *map, uint64_t lba, uint64_t count)
{
    if (count == 0)
        return 0;
    if (lba + count > map->sectors || lba + count < lba)
        return -EINVAL;
    for (uint64_t index = lba >> DP_ALLOCATION_LEAF_SHIFT; index <= (lba + count - 1) >> DP_ALLOCATION_LEAF_SHIFT; index++) {
        if (map->leaf[index])
            continue;
        uint64_t *leaf = calloc(LEAF_WORDS, sizeof *leaf);
        if (!leaf)
            return -ENOMEM;
        __atomic_store_n(&map->leaf[index], leaf, __ATOMIC_RELEASE);
    }
    return 0;
}

void dp_allocation_set(struct dp_allocation *map, uint64_t lba, uint64_t count)
{
    for (uint64_t at = lba; at < lba + count; at++) {
        uint64_t *word = &map->leaf[at >> DP_ALLOCATION_LEAF_SHIFT][IN_LEAF(at) / WORD_BITS];
        uint64_t bit = 1ull << (at % WORD_BITS);
        map->allocated += !(*word & bit);
        *word |= bit;
    }
}

uint64_t dp_allocation_run(const struct dp_allocation *map, uint64_t lba, uint64_t limit, int allocated)
{
    uint64_t n = 0;
    while (n < limit) {
        uint64_t at = lba + n;
        const uint64_t *leaf = leaf_of(map, at);
        if (!leaf) { /* a whole leaf of unallocated sectors */
            if (allocated)
                break;
            n += DP_ALLOCATION_LEAF_SECTORS - IN_LEAF(at);
            continue;
        }
        uint64_t word = leaf[IN_LEAF(at) / WORD_BITS];
        uint64_t shift = at % WORD_BITS, available = WORD_BITS - shift;
        word = (allocated ? word : ~word) >> shift; /* the sectors from `at` on as ones, then zeros */
        uint64_t same = ~word ? (uint64_t)__builtin_ctzll(~word) : WORD_BITS; /* never past `available`: the shift brought zeros in */
        n += same;
        if (same < available)
            break;
    }
    return n < limit ? n : limit;
}
