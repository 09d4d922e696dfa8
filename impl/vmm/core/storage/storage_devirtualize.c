/* The de-virtualization predicate: devirtualize_only_when_quiescent seen from the storage manager. */
#include "storage_devirtualize.h"

#include "storage_block_state.h"
#include "storage_geometry.h"

uint32_t storage_devirtualize_blockers(const uint8_t *states, const uint8_t *persisted, uint32_t block_count,
                                       uint32_t requests_in_flight, int guest_outstanding, int commit_pending,
                                       int install)
{
    uint32_t reasons = 0;
    int all_present = 1, all_persisted = 1;
    for (uint32_t block = 0; block < block_count; block++) {
        all_present &= states[block] == STORAGE_PRESENT;
        all_persisted &= storage_bit(persisted, block);
    }
    /* Only the install policy ends in passthrough (policy.POLICY_TRANSITIONS). */
    if (!install)
        reasons |= STORAGE_BLOCKER_NOT_INSTALL;
    /* A block still absent would have to come from the server. */
    if (!all_present)
        reasons |= STORAGE_BLOCKER_BLOCK_NOT_PRESENT;
    /* A restart must find the install complete, or it would fetch over the guest's writes. */
    if (!all_persisted)
        reasons |= STORAGE_BLOCKER_MAP_INCOMPLETE;
    /* The physical device must see no command the virtual device started. */
    if (requests_in_flight || guest_outstanding || commit_pending)
        reasons |= STORAGE_BLOCKER_IN_FLIGHT;
    return reasons;
}
