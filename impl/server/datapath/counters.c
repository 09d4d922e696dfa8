/* A client's recent requests, for counting what looks like a retransmission or a network duplicate. */
#include <string.h>

#include "datapath.h"

void dp_saw_request(struct dp_counters *counters, const uint8_t *frame)
{
    /* the tag closes the AoE header (AoEr11 §2); the command byte precedes it, the ATA argument follows */
    uint32_t tag;
    uint8_t request[16] = {0};
    memcpy(&tag, frame + DP_TAG_OFFSET, 4);
    request[0] = frame[DP_TAG_OFFSET - 1];
    memcpy(request + 1, frame + DP_HEADER_BYTES, DP_ATA_HEADER_BYTES - DP_HEADER_BYTES);
    uint64_t low, high;
    memcpy(&low, request, 8);
    memcpy(&high, request + 8, 8);
    int repeated = 0;
    for (uint32_t i = 0; i < DP_RECENT_REQUESTS; i++) {
        const struct dp_recent_request *r = &counters->recent[i];
        repeated |= r->used & ((r->tag == tag) | ((r->request_low == low) & (r->request_high == high)));
    }
    counters->duplicates += repeated;
    struct dp_recent_request *slot = &counters->recent[counters->recent_next++ % DP_RECENT_REQUESTS];
    slot->tag = tag;
    slot->used = 1;
    slot->request_low = low;
    slot->request_high = high;
}
