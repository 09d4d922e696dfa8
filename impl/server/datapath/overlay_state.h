/* What one client's overlay is in memory; shared by overlay.c (reads, writes) and commit.c. */
#ifndef OVERLAY_STATE_H
#define OVERLAY_STATE_H

#include <pthread.h>
#include <stdint.h>

#include "allocation.h"

/* A commit's copy of base image + overlay into a new image, chunk by chunk (commit.c). */
struct dp_commit {
    pthread_mutex_t lock; /* held while a chunk is copied, by the copy or by a write that must wait for it */
    int active;           /* read without the lock by writes (atomically); changed under it */
    int error;            /* the first -errno of a chunk copy; the commit failed */
    int base_fd, destination_fd;
    uint64_t chunks, next; /* chunks of DP_COMMIT_CHUNK_SECTORS; the copy's next candidate */
    uint8_t *done;         /* per chunk: copied already, by the copy or before a write */
    uint8_t *buffer;       /* one chunk */
};

struct dp_overlay {
    int fd;
    uint64_t journal_end; /* where the next allocation record goes */
    uint32_t record_seed; /* CRC-32 of the journal's epoch, where a record's field CRC starts */
    struct dp_allocation map;
    struct dp_commit commit;
};

/* Before a write changes sectors lba..lba+count-1: copy the chunks they lie in, if a commit has not yet. */
void dp_commit_before_write(struct dp_overlay *overlay, uint64_t lba, uint64_t count);

#endif
