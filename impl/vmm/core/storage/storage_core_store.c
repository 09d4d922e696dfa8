/* The adapter between the ATA device's backing-store interface and the storage manager. */
#include "storage_core_store.h"

static uint64_t sector_count(void *context)
{
    return storage_sector_count(context);
}

static void start(void *context, const struct core_store_request *request)
{
    struct storage_request r;
    r.kind = request->kind == CORE_STORE_READ_SECTORS    ? STORAGE_READ_SECTORS
             : request->kind == CORE_STORE_WRITE_SECTORS ? STORAGE_WRITE_SECTORS
                                                         : STORAGE_FLUSH;
    r.lba = request->lba;
    r.count = request->count;
    r.buffer = request->buffer;
    /* The ATA device starts one request at a time, so the manager is never busy here. */
    storage_start(context, &r);
}

static bool poll(void *context, struct core_store_result *result)
{
    struct storage_result r;
    if (!storage_poll(context, &r))
        return false;
    result->ok = r.ok;
    result->error = r.error;
    return true;
}

void storage_as_core_store(struct core_store *store, struct storage_manager *manager)
{
    store->context = manager;
    store->sector_count = sector_count;
    store->start = start;
    store->poll = poll;
}
