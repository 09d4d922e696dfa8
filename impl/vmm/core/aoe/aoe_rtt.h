/* The retransmission timeout: Jacobson/Karels round-trip estimation (spec/aoe/rtt.py, RFC 6298 §2). */
#ifndef AOE_RTT_H
#define AOE_RTT_H

#include <stdint.h>

struct aoe_rtt {
    uint64_t initial_rto;
    uint64_t min_rto;
    uint64_t max_rto;
    uint8_t sampled; /* srtt is valid */
    int64_t srtt; /* smoothed round-trip time */
    int64_t deviation; /* smoothed mean deviation */
};

void aoe_rtt_init(struct aoe_rtt *rtt, uint64_t initial_rto, uint64_t min_rto, uint64_t max_rto);
void aoe_rtt_sample(struct aoe_rtt *rtt, uint64_t measured);
uint64_t aoe_rtt_rto(const struct aoe_rtt *rtt);

#endif
