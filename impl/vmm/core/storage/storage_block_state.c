/* The per-block transition table (spec/storage/block_state.py BLOCK_TRANSITIONS). */
#include "storage_block_state.h"

#define N STORAGE_NO_TRANSITION

static const uint8_t BLOCK_TRANSITIONS[STORAGE_BLOCK_STATES][STORAGE_BLOCK_EVENTS] = {
    /*                 FILL_STARTED      FILL_DONE        FILL_FAILED     WHOLE_WRITE_STARTED WRITE_DONE       WRITE_FAILED     INVALIDATED */
    [STORAGE_ABSENT] = {STORAGE_FETCHING, N, N, STORAGE_WRITING, N, N, STORAGE_ABSENT},
    [STORAGE_FETCHING] = {N, STORAGE_PRESENT, STORAGE_ABSENT, N, N, N, N},
    /* a torn whole-block write leaves nothing trustworthy locally */
    [STORAGE_WRITING] = {N, N, N, N, STORAGE_PRESENT, STORAGE_ABSENT, N},
    /* a failed write leaves the sectors indeterminate, as on a real disk, but still local */
    [STORAGE_PRESENT] = {N, N, N, N, STORAGE_PRESENT, STORAGE_PRESENT, STORAGE_ABSENT},
};

uint8_t storage_next_block_state(uint8_t state, uint8_t event)
{
    /* Every legal (state, event) pair is in the table; anything else cannot happen. */
    if (state >= STORAGE_BLOCK_STATES || event >= STORAGE_BLOCK_EVENTS)
        return N;
    return BLOCK_TRANSITIONS[state][event];
}
