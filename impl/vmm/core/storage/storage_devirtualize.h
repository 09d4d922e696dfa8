/* De-virtualization: when the VMM may stop intercepting the disk (spec/storage/devirtualize.py). */
#ifndef STORAGE_DEVIRTUALIZE_H
#define STORAGE_DEVIRTUALIZE_H

#include <stdint.h>

/* Every reason de-virtualization must wait, as bits in the spec's order; 0 when it may happen. */
enum storage_devirtualize_blocker {
    STORAGE_BLOCKER_NOT_INSTALL = 1 << 0, /* policy is not install */
    STORAGE_BLOCKER_BLOCK_NOT_PRESENT = 1 << 1, /* a block is not present */
    STORAGE_BLOCKER_MAP_INCOMPLETE = 1 << 2, /* the persisted map does not mark every block present */
    STORAGE_BLOCKER_IN_FLIGHT = 1 << 3, /* requests are in flight */
};

uint32_t storage_devirtualize_blockers(const uint8_t *states, const uint8_t *persisted, uint32_t block_count,
                                       uint32_t requests_in_flight, int guest_outstanding, int commit_pending,
                                       int install);

#endif
