/* A client's copy-on-write overlay in C: its two hot operations, a write and a read (allocation.c keeps the map).
 *
 * The file is impl/server/overlay.py's format 2: sector `lba` of the client's disk lives at
 * DP_OVERLAY_DATA_OFFSET + lba * 512 (a sparse file), and an allocation journal records which
 * sectors the overlay holds. A write puts its data in place with one pwrite (an overwrite costs
 * the page cache's pages, as a plain disk image does), then, for its sectors not allocated yet,
 * appends allocation records: data before its allocation. Each record carries a CRC-32 of the
 * data it allocates, so after a power loss recovery can tell an allocation whose data never
 * reached the disk (overlay.py says how it uses that). Little-endian record:
 * magic u32, count u32, lba u64, CRC-32 of the data u32, CRC-32 of the 20 bytes before it u32,
 * continued from the CRC-32 of the journal's epoch (u64). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "datapath.h"
#include "overlay_state.h"

#define JOURNAL_BATCH 16 /* records appended with one pwrite */

/* A record's field CRC starts from the CRC of its journal's epoch: records of another epoch fail it. */
static uint32_t epoch_seed(uint64_t epoch) { return dp_crc32(0, (const uint8_t *)&epoch, sizeof epoch); }

struct dp_overlay *dp_overlay_new(int fd, uint64_t sectors, uint64_t journal_end, uint64_t epoch)
{
    struct dp_overlay *overlay = calloc(1, sizeof *overlay);
    if (!overlay)
        return NULL;
    if (dp_allocation_init(&overlay->map, sectors)) {
        free(overlay);
        return NULL;
    }
    overlay->fd = fd;
    overlay->journal_end = journal_end;
    overlay->record_seed = epoch_seed(epoch);
    pthread_mutex_init(&overlay->commit.lock, NULL);
    return overlay;
}

void dp_overlay_free(struct dp_overlay *overlay)
{
    if (!overlay)
        return;
    dp_commit_end(overlay);
    pthread_mutex_destroy(&overlay->commit.lock);
    dp_allocation_free(&overlay->map);
    free(overlay);
}

int dp_overlay_fd(const struct dp_overlay *overlay) { return overlay->fd; }
uint64_t dp_overlay_journal_end(const struct dp_overlay *overlay) { return overlay->journal_end; }
void dp_overlay_set_journal(struct dp_overlay *overlay, uint64_t end, uint64_t epoch)
{
    overlay->journal_end = end;
    overlay->record_seed = epoch_seed(epoch);
}
uint64_t dp_overlay_sectors(const struct dp_overlay *overlay) { return overlay->map.allocated; }

void dp_overlay_clear(struct dp_overlay *overlay, uint64_t journal_end, uint64_t epoch)
{
    dp_allocation_clear(&overlay->map);
    dp_overlay_set_journal(overlay, journal_end, epoch);
}

int dp_overlay_allocate(struct dp_overlay *overlay, uint64_t lba, uint64_t count)
{
    int rc = dp_allocation_reserve(&overlay->map, lba, count);
    if (rc == 0)
        dp_allocation_set(&overlay->map, lba, count);
    return rc;
}

uint64_t dp_overlay_run(const struct dp_overlay *overlay, uint64_t lba, uint64_t limit, int allocated)
{
    return dp_allocation_run(&overlay->map, lba, limit, allocated);
}

int dp_overlay_covers_any(const struct dp_overlay *overlay, uint64_t lba, uint64_t count)
{
    return dp_allocation_run(&overlay->map, lba, count, 0) < count;
}

static int write_exactly(int fd, const uint8_t *data, size_t length, uint64_t offset)
{
    ssize_t written = pwrite(fd, data, length, (off_t)offset);
    if (written < 0)
        return -errno;
    return (size_t)written == length ? 0 : -EIO; /* a full disk; what did land is not allocated */
}

static void encode_record(uint8_t *record, uint32_t seed, uint64_t lba, uint32_t count, const uint8_t *data)
{
    uint32_t magic = DP_RECORD_MAGIC, data_crc = dp_crc32(0, data, (size_t)count * DP_SECTOR_BYTES);
    memcpy(record, &magic, 4); /* little-endian host, little-endian format */
    memcpy(record + 4, &count, 4);
    memcpy(record + 8, &lba, 8);
    memcpy(record + 16, &data_crc, 4);
    uint32_t fields_crc = dp_crc32(seed, record, DP_RECORD_FIELDS_BYTES);
    memcpy(record + DP_RECORD_FIELDS_BYTES, &fields_crc, 4);
}

/* Allocation records waiting to be appended with one pwrite, and the sectors they allocate. */
struct journal_batch {
    uint8_t records[JOURNAL_BATCH * DP_RECORD_BYTES];
    uint64_t firsts[JOURNAL_BATCH];
    uint32_t counts[JOURNAL_BATCH];
    unsigned n;
};

/* Append the batch's records, then count their sectors as allocated: a record in the file is in the map too. */
static int append_records(struct dp_overlay *overlay, struct journal_batch *batch)
{
    if (batch->n == 0)
        return 0;
    int rc = write_exactly(overlay->fd, batch->records, (size_t)batch->n * DP_RECORD_BYTES, overlay->journal_end);
    if (rc)
        return rc; /* the next append overwrites what part of it landed */
    overlay->journal_end += (uint64_t)batch->n * DP_RECORD_BYTES;
    for (unsigned i = 0; i < batch->n; i++)
        dp_allocation_set(&overlay->map, batch->firsts[i], batch->counts[i]);
    batch->n = 0;
    return 0;
}

/* One record per run of sectors of this write that were not allocated before it. */
static int allocate_new_sectors(struct dp_overlay *overlay, struct journal_batch *batch, uint64_t lba, const uint8_t *data,
                                uint32_t count)
{
    uint32_t i = 0;
    while (i < count) {
        i += (uint32_t)dp_allocation_run(&overlay->map, lba + i, count - i, 1);
        if (i == count)
            break;
        uint32_t fresh = (uint32_t)dp_allocation_run(&overlay->map, lba + i, count - i, 0);
        encode_record(batch->records + batch->n * DP_RECORD_BYTES, overlay->record_seed, lba + i, fresh,
                      data + (size_t)i * DP_SECTOR_BYTES);
        batch->firsts[batch->n] = lba + i;
        batch->counts[batch->n++] = fresh;
        i += fresh;
        if (batch->n == JOURNAL_BATCH) {
            int rc = append_records(overlay, batch);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int dp_overlay_write_run(struct dp_overlay *overlay, uint64_t lba, const uint8_t *const *data, const uint32_t *counts, uint32_t n)
{
    struct iovec pieces[DP_WRITE_RUN_FRAMES];
    uint64_t total = 0;
    if (n == 0 || n > DP_WRITE_RUN_FRAMES)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        if (counts[i] == 0)
            return -EINVAL;
        pieces[i] = (struct iovec){(void *)data[i], (size_t)counts[i] * DP_SECTOR_BYTES};
        total += counts[i];
    }
    if (lba + total > overlay->map.sectors || lba + total < lba)
        return -EINVAL;
    int rc = dp_allocation_reserve(&overlay->map, lba, total); /* room first: a record in the file is in the map */
    if (rc)
        return rc;
    dp_commit_before_write(overlay, lba, total);
    ssize_t written = pwritev(overlay->fd, pieces, (int)n, (off_t)(DP_OVERLAY_DATA_OFFSET + lba * DP_SECTOR_BYTES));
    if (written < 0)
        return -errno;
    if ((uint64_t)written != total * DP_SECTOR_BYTES)
        return -EIO; /* a full disk; what did land is not allocated */
    struct journal_batch batch;
    batch.n = 0;
    for (uint32_t i = 0; i < n; i++) { /* the records a write of each piece alone would append, in order */
        rc = allocate_new_sectors(overlay, &batch, lba, data[i], counts[i]);
        if (rc)
            return rc;
        lba += counts[i];
    }
    return append_records(overlay, &batch);
}

unsigned dp_write_run_frames(void) { return DP_WRITE_RUN_FRAMES; }

int dp_overlay_write(struct dp_overlay *overlay, uint64_t lba, const uint8_t *data, uint32_t count)
{
    return dp_overlay_write_run(overlay, lba, &data, &count, 1);
}

int dp_read_exactly(int fd, uint8_t *out, size_t length, uint64_t offset)
{
    ssize_t got = pread(fd, out, length, (off_t)offset);
    if (got < 0)
        return -errno;
    return (size_t)got == length ? 0 : -EIO;
}

int dp_overlay_read(const struct dp_overlay *overlay, int base_fd, uint64_t lba, uint32_t count, uint8_t *out)
{
    uint32_t i = 0;
    while (i < count) {
        uint32_t run = (uint32_t)dp_allocation_run(&overlay->map, lba + i, count - i, 1);
        int from_overlay = run > 0;
        if (!from_overlay)
            run = (uint32_t)dp_allocation_run(&overlay->map, lba + i, count - i, 0);
        int rc = dp_read_exactly(from_overlay ? overlay->fd : base_fd, out + (size_t)i * DP_SECTOR_BYTES,
                                 (size_t)run * DP_SECTOR_BYTES,
                                 (from_overlay ? DP_OVERLAY_DATA_OFFSET : 0) + (lba + i) * DP_SECTOR_BYTES);
        if (rc)
            return rc;
        i += run;
    }
    return 0;
}
