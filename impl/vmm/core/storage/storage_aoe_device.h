/* The AoE initiator seen as the storage manager's remote request device (spec/storage/devices.py). */
#ifndef STORAGE_AOE_DEVICE_H
#define STORAGE_AOE_DEVICE_H

#include "aoe_initiator.h"
#include "storage_manager.h"

#define STORAGE_AOE_REFUSED_MAX 8 /* refusals reported before the next take_completion: at most one per submission */

/* What the adapter keeps: the initiator, and the requests its tables refused (AOE_ERR_FULL). A refused
 * request gets an id of its own (negative, never an initiator's) and completes at once with ABRT, so the
 * guest's command fails cleanly instead of waiting for a completion that cannot come. */
struct storage_aoe_device {
    struct aoe_initiator *initiator;
    int64_t refused[STORAGE_AOE_REFUSED_MAX];
    uint32_t refused_total;
    int64_t next_refused_id;
};

/* The device whose requests go to this initiator; its completions come back through it. */
void storage_remote_from_aoe(struct storage_device *device, struct storage_aoe_device *adapter, struct aoe_initiator *initiator);

#endif
