/* A commit: base image + a client's overlay, as they are at one moment, copied into a new image
 * while the client goes on writing.
 *
 * The copy goes chunk by chunk (DP_COMMIT_CHUNK_SECTORS): each chunk is the base image's sectors
 * with the overlay's allocated ones over them. A write to a chunk not yet copied first copies it,
 * holding the lock the copy holds, so the new image is the disk as it was when the commit began,
 * however writes and the copy interleave. A chunk copy that fails ends the commit with its error
 * and lets writes go on. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "datapath.h"
#include "overlay_state.h"

#define CHUNK_BYTES ((size_t)DP_COMMIT_CHUNK_SECTORS * DP_SECTOR_BYTES)

static int copy_range(int from, uint64_t from_offset, int to, uint64_t to_offset, size_t length, uint8_t *buffer)
{
    int rc = dp_read_exactly(from, buffer, length, from_offset);
    if (rc)
        return rc;
    ssize_t written = pwrite(to, buffer, length, (off_t)to_offset);
    if (written < 0)
        return -errno;
    return (size_t)written == length ? 0 : -EIO;
}

/* The base image's part of a chunk: in the kernel (copy_file_range, which can share blocks where the
 * filesystem does), else through the buffer. */
static int copy_base(struct dp_commit *commit, uint64_t offset, size_t length)
{
    loff_t from = (loff_t)offset, to = (loff_t)offset;
    size_t left = length;
    while (left > 0) {
        ssize_t copied = copy_file_range(commit->base_fd, &from, commit->destination_fd, &to, left, 0);
        if (copied <= 0)
            break;
        left -= (size_t)copied;
    }
    if (left == 0)
        return 0;
    return copy_range(commit->base_fd, (uint64_t)from, commit->destination_fd, (uint64_t)to, left, commit->buffer);
}

/* Copy one chunk (the caller holds the lock); 0 or -errno. */
static int copy_chunk(struct dp_overlay *overlay, uint64_t chunk)
{
    struct dp_commit *commit = &overlay->commit;
    uint64_t first = chunk * DP_COMMIT_CHUNK_SECTORS, end = first + DP_COMMIT_CHUNK_SECTORS;
    if (end > overlay->map.sectors)
        end = overlay->map.sectors;
    int rc = copy_base(commit, first * DP_SECTOR_BYTES, (size_t)(end - first) * DP_SECTOR_BYTES);
    for (uint64_t lba = first; rc == 0 && lba < end;) {
        lba += dp_allocation_run(&overlay->map, lba, end - lba, 0);
        uint64_t run = dp_allocation_run(&overlay->map, lba, end - lba, 1);
        if (run)
            rc = copy_range(overlay->fd, DP_OVERLAY_DATA_OFFSET + lba * DP_SECTOR_BYTES, commit->destination_fd,
                            lba * DP_SECTOR_BYTES, (size_t)run * DP_SECTOR_BYTES, commit->buffer);
        lba += run;
    }
    if (rc) {
        commit->error = rc;
        __atomic_store_n(&commit->active, 0, __ATOMIC_RELEASE); /* writes no longer wait for a failed commit */
    } else {
        commit->done[chunk] = 1;
    }
    return rc;
}

int dp_commit_begin(struct dp_overlay *overlay, int base_fd, int destination_fd)
{
    struct dp_commit *commit = &overlay->commit;
    pthread_mutex_lock(&commit->lock);
    int rc = 0;
    if (commit->active || commit->done) {
        rc = -EBUSY;
    } else {
        commit->chunks = (overlay->map.sectors + DP_COMMIT_CHUNK_SECTORS - 1) / DP_COMMIT_CHUNK_SECTORS;
        commit->done = calloc(commit->chunks ? commit->chunks : 1, 1);
        commit->buffer = malloc(CHUNK_BYTES);
        if (!commit->done || !commit->buffer) {
            free(commit->done);
            free(commit->buffer);
            commit->done = commit->buffer = NULL;
            rc = -ENOMEM;
        } else {
            commit->base_fd = base_fd;
            commit->destination_fd = destination_fd;
            commit->next = 0;
            commit->error = 0;
            __atomic_store_n(&commit->active, 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&commit->lock);
    return rc;
}

/* The first chunk not yet copied (a write may have copied some ahead of the step); chunks if none. */
static uint64_t skip_copied(struct dp_commit *commit)
{
    while (commit->next < commit->chunks && commit->done[commit->next])
        commit->next++;
    return commit->next;
}

int64_t dp_commit_step(struct dp_overlay *overlay)
{
    struct dp_commit *commit = &overlay->commit;
    pthread_mutex_lock(&commit->lock);
    int64_t result = commit->error;
    if (result == 0 && !commit->done)
        result = -EINVAL;
    if (result == 0 && skip_copied(commit) < commit->chunks)
        result = copy_chunk(overlay, commit->next);
    if (result == 0)
        result = (int64_t)(commit->chunks - skip_copied(commit)); /* the chunk just copied is not left */
    pthread_mutex_unlock(&commit->lock);
    return result;
}

void dp_commit_end(struct dp_overlay *overlay)
{
    struct dp_commit *commit = &overlay->commit;
    pthread_mutex_lock(&commit->lock);
    __atomic_store_n(&commit->active, 0, __ATOMIC_RELEASE);
    free(commit->done);
    free(commit->buffer);
    commit->done = commit->buffer = NULL;
    pthread_mutex_unlock(&commit->lock);
}

void dp_commit_before_write(struct dp_overlay *overlay, uint64_t lba, uint64_t count)
{
    struct dp_commit *commit = &overlay->commit;
    if (!__atomic_load_n(&commit->active, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&commit->lock);
    for (uint64_t chunk = lba / DP_COMMIT_CHUNK_SECTORS; commit->active && chunk <= (lba + count - 1) / DP_COMMIT_CHUNK_SECTORS; chunk++)
        if (!commit->done[chunk])
            copy_chunk(overlay, chunk);
    pthread_mutex_unlock(&commit->lock);
}
