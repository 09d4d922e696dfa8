/* The adapter between the storage manager's device interface and the AoE initiator. */
#include "storage_aoe_device.h"

static int64_t submit_read(void *context, uint64_t lba, uint64_t count, uint8_t *buffer)
{
    return aoe_submit_read(context, lba, count, buffer);
}

static int64_t submit_write(void *context, uint64_t lba, const uint8_t *data, uint64_t count)
{
    return aoe_submit_write(context, lba, data, count * STORAGE_SECTOR_BYTES);
}

static int64_t submit_flush(void *context)
{
    return aoe_submit_flush(context);
}

static int take_completion(void *context, struct storage_completion *completion)
{
    struct aoe_completion taken;
    if (!aoe_take_completion(context, &taken))
        return 0;
    completion->request_id = (int64_t)taken.request_id;
    completion->ok = taken.ok;
    completion->ata_error = taken.ata_error;
    return 1;
}

void storage_remote_from_aoe(struct storage_device *device, struct aoe_initiator *initiator)
{
    device->context = initiator;
    device->submit_read = submit_read;
    device->submit_write = submit_write;
    device->submit_flush = submit_flush;
    device->take_completion = take_completion;
}
