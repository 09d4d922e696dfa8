/* The adapter between the storage manager's device interface and the AoE initiator. */
#include "storage_aoe_device.h"

/* An id for a submission the initiator refused; its failure is reported by the next take_completion. */
static int64_t refused(struct storage_aoe_device *adapter, int64_t result)
{
    if (result > 0 || adapter->refused_total == STORAGE_AOE_REFUSED_MAX)
        return result;
    int64_t id = adapter->next_refused_id--;
    adapter->refused[adapter->refused_total++] = id;
    return id;
}

static int64_t submit_read(void *context, uint64_t lba, uint64_t count, uint8_t *buffer)
{
    struct storage_aoe_device *adapter = context;
    return refused(adapter, aoe_submit_read(adapter->initiator, lba, count, buffer));
}

static int64_t submit_write(void *context, uint64_t lba, const uint8_t *data, uint64_t count)
{
    struct storage_aoe_device *adapter = context;
    return refused(adapter, aoe_submit_write(adapter->initiator, lba, data, count * STORAGE_SECTOR_BYTES));
}

static int64_t submit_flush(void *context)
{
    struct storage_aoe_device *adapter = context;
    return refused(adapter, aoe_submit_flush(adapter->initiator));
}

static int take_completion(void *context, struct storage_completion *completion)
{
    struct storage_aoe_device *adapter = context;
    struct aoe_completion taken;
    if (adapter->refused_total) {
        completion->request_id = adapter->refused[0];
        completion->ok = 0;
        completion->ata_error = STORAGE_ERROR_ABRT; /* the initiator's tables are full: the command is aborted */
        for (uint32_t i = 1; i < adapter->refused_total; i++)
            adapter->refused[i - 1] = adapter->refused[i];
        adapter->refused_total--;
        return 1;
    }
    if (!aoe_take_completion(adapter->initiator, &taken))
        return 0;
    completion->request_id = (int64_t)taken.request_id;
    completion->ok = taken.ok;
    completion->ata_error = taken.ata_error;
    return 1;
}

void storage_remote_from_aoe(struct storage_device *device, struct storage_aoe_device *adapter, struct aoe_initiator *initiator)
{
    adapter->initiator = initiator;
    adapter->refused_total = 0;
    adapter->next_refused_id = -1;
    device->context = adapter;
    device->submit_read = submit_read;
    device->submit_write = submit_write;
    device->submit_flush = submit_flush;
    device->take_completion = take_completion;
}
