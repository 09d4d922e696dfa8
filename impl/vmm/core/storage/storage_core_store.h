/* The storage manager as the ATA device's backing store (struct core_store, spec/ata/backing_store.py):
 * in the VMM the virtual ATA device reads and writes sectors through the storage manager. */
#ifndef STORAGE_CORE_STORE_H
#define STORAGE_CORE_STORE_H

#include "core_types.h"
#include "storage_manager.h"

/* The store whose requests the manager serves; the ATA device starts one and polls it every tick. */
void storage_as_core_store(struct core_store *store, struct storage_manager *manager);

#endif
