/* Per-block state and its transition relation: one table, (state, event) -> state
 * (spec/storage/block_state.py). */
#ifndef STORAGE_BLOCK_STATE_H
#define STORAGE_BLOCK_STATE_H

#include <stdint.h>

enum storage_block_state {
    STORAGE_ABSENT, /* the local disk does not hold this block's data; the server does */
    STORAGE_FETCHING, /* a fill is reading the block from the server or writing it locally */
    STORAGE_WRITING, /* a guest write covering the whole block is on its way to the local disk */
    STORAGE_PRESENT, /* the local disk holds the block's current data (perhaps not yet durable) */
    STORAGE_BLOCK_STATES
};

enum storage_block_event {
    STORAGE_FILL_STARTED, /* the fill engine chose this block */
    STORAGE_FILL_DONE, /* the server's data reached the local disk */
    STORAGE_FILL_FAILED, /* the server read or the local write failed */
    STORAGE_WHOLE_WRITE_STARTED, /* a guest write covers the whole absent block (dm-clone's shortcut) */
    STORAGE_WRITE_DONE, /* the guest's local write completed */
    STORAGE_WRITE_FAILED, /* the guest's local write failed */
    STORAGE_INVALIDATED, /* the local copy may differ from the server's in a policy where the server decides */
    STORAGE_BLOCK_EVENTS
};

#define STORAGE_NO_TRANSITION 0xff /* a pair missing from the table: a bug in the caller */

/* The next state, or STORAGE_NO_TRANSITION when the table does not allow the event in this state. */
uint8_t storage_next_block_state(uint8_t state, uint8_t event);

#endif
