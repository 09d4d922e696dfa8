/* The AoE initiator seen as the storage manager's remote request device (spec/storage/devices.py). */
#ifndef STORAGE_AOE_DEVICE_H
#define STORAGE_AOE_DEVICE_H

#include "aoe_initiator.h"
#include "storage_manager.h"

/* The device whose requests go to this initiator; its completions come back through it. */
void storage_remote_from_aoe(struct storage_device *device, struct aoe_initiator *initiator);

#endif
