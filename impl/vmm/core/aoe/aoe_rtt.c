/* Jacobson/Karels estimation with the spec's integer arithmetic (spec/aoe/rtt.py). */
#include "aoe_rtt.h"

/* Python's // rounds toward minus infinity; C's / toward zero: the spec's arithmetic is the former. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && a < 0)
        q--;
    return q;
}

void aoe_rtt_init(struct aoe_rtt *rtt, uint64_t initial_rto, uint64_t min_rto, uint64_t max_rto)
{
    rtt->initial_rto = initial_rto;
    rtt->min_rto = min_rto;
    rtt->max_rto = max_rto;
    rtt->sampled = 0;
    rtt->srtt = 0;
    rtt->deviation = 0;
}

void aoe_rtt_sample(struct aoe_rtt *rtt, uint64_t measured)
{
    int64_t sample = (int64_t)measured;
    if (!rtt->sampled) {
        rtt->sampled = 1;
        rtt->srtt = sample;
        rtt->deviation = sample / 2;
        return;
    }
    /* Fold one measured round trip in: gains 1/8 for the mean and 1/4 for the deviation (RFC 6298 §2). */
    int64_t delta = sample - rtt->srtt;
    int64_t magnitude = delta < 0 ? -delta : delta;
    rtt->srtt += floor_div(delta, 8);
    rtt->deviation += floor_div(magnitude - rtt->deviation, 4);
}

uint64_t aoe_rtt_rto(const struct aoe_rtt *rtt)
{
    /* 2·RTT + 8·deviation, clamped to [min_rto, max_rto]; the initial value before any sample. */
    if (!rtt->sampled)
        return rtt->initial_rto;
    int64_t rto = 2 * rtt->srtt + 8 * rtt->deviation;
    if (rto > (int64_t)rtt->max_rto)
        rto = (int64_t)rtt->max_rto;
    if (rto < (int64_t)rtt->min_rto)
        rto = (int64_t)rtt->min_rto;
    return (uint64_t)rto;
}
