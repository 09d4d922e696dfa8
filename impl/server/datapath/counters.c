/* A client's recent requests, for counting what looks like a retransmission or a network duplicate.
 *
 * The last DP_RECENT_REQUESTS requests sit in a ring, each as two keys: its tag, and a hash of
 * its command and ATA argument. A small open-addressing set counts how often each key is in the
 * ring, so asking "seen lately?" costs two probes, not a scan of the ring. Keys of the two kinds
 * differ in their top bit; 0 marks an empty slot. Removal shifts later entries back (linear
 * probing needs no tombstones then). */
#include <string.h>

#include "datapath.h"

#define TAG_KEY_BIT (1ull << 63)
#define SET_MASK (DP_RECENT_SLOTS - 1)

static uint64_t home_slot(uint64_t key)
{
    return (key * 0x9E3779B97F4A7C15ull) >> (64 - __builtin_ctz(DP_RECENT_SLOTS));
}

static uint32_t find(const struct dp_counters *counters, uint64_t key)
{
    uint32_t i = (uint32_t)home_slot(key);
    while (counters->recent_set[i].key != key && counters->recent_set[i].key != 0)
        i = (i + 1) & SET_MASK;
    return i;
}

static void add_key(struct dp_counters *counters, uint64_t key)
{
    struct dp_recent_slot *slot = &counters->recent_set[find(counters, key)];
    slot->key = key;
    slot->count++;
}

static void remove_key(struct dp_counters *counters, uint64_t key)
{
    uint32_t hole = find(counters, key);
    if (counters->recent_set[hole].key != key || --counters->recent_set[hole].count)
        return;
    /* shift back every later entry of the probe run that may move into the hole */
    for (uint32_t j = (hole + 1) & SET_MASK; counters->recent_set[j].key; j = (j + 1) & SET_MASK) {
        uint32_t home = (uint32_t)home_slot(counters->recent_set[j].key);
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            counters->recent_set[hole] = counters->recent_set[j];
            hole = j;
        }
    }
    counters->recent_set[hole].key = 0;
    counters->recent_set[hole].count = 0;
}

static uint64_t request_key(const uint8_t *frame)
{
    /* the command byte precedes the tag; the ATA argument follows the AoE header (AoEr11 §2, §3.1) */
    uint8_t request[16] = {0};
    uint64_t low, high;
    request[0] = frame[DP_TAG_OFFSET - 1];
    memcpy(request + 1, frame + DP_HEADER_BYTES, DP_ATA_HEADER_BYTES - DP_HEADER_BYTES);
    memcpy(&low, request, 8);
    memcpy(&high, request + 8, 8);
    uint64_t h = (low * 0x9E3779B97F4A7C15ull) ^ (high * 0xC2B2AE3D27D4EB4Full);
    h ^= h >> 31;
    return (h & ~TAG_KEY_BIT) | 1;
}

void dp_saw_request(struct dp_counters *counters, const uint8_t *frame)
{
    uint32_t tag;
    memcpy(&tag, frame + DP_TAG_OFFSET, 4);
    uint64_t tag_key = TAG_KEY_BIT | tag, req_key = request_key(frame);
    counters->duplicates += counters->recent_set[find(counters, tag_key)].key == tag_key ||
                            counters->recent_set[find(counters, req_key)].key == req_key;
    struct dp_recent_request *oldest = &counters->recent[counters->recent_next++ % DP_RECENT_REQUESTS];
    if (oldest->tag_key) {
        remove_key(counters, oldest->tag_key);
        remove_key(counters, oldest->request_key);
    }
    oldest->tag_key = tag_key;
    oldest->request_key = req_key;
    add_key(counters, tag_key);
    add_key(counters, req_key);
}
