/* The storage manager: the backing store that routes each block to the local disk or the server.
 *
 * Mirrors spec/storage/manager.py function by function (storage_ prefix, same checks in the same order,
 * same one-line comments). It serves one guest request at a time (start, then poll every tick) in front
 * of two request devices, the local disk and the AoE initiator, reached through struct storage_device.
 * Pure and freestanding: no I/O, no clock reads, no hidden state. Every table whose size depends on the
 * geometry lives in one region the caller provides (storage_region_bytes says how large), so the same
 * code serves the 8-sector proof preset and an 8 GiB disk.
 */
#ifndef STORAGE_MANAGER_H
#define STORAGE_MANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "storage_devirtualize.h"
#include "storage_geometry.h"
#include "storage_map.h"
#include "storage_policy.h"

#define STORAGE_MAX_GUEST_SECTORS 65536 /* ATA/ATAPI-7 V1 §6, READ SECTOR(S) EXT: a count of 0 means 65536 */
#define STORAGE_ERROR_ABRT 0x04 /* ATA/ATAPI-7 V1 §7, Error register: command aborted */
#define STORAGE_ERROR_IDNF 0x10 /* ATA/ATAPI-7 V1 §7, Error register: address not found */

/* Errors a call returns; every one leaves the state as it was. */
enum storage_status {
    STORAGE_OK = 0,
    STORAGE_ERR_NEEDS_LOCAL_DISK = -1, /* the policy needs a local disk */
    STORAGE_ERR_PASSTHROUGH_AT_START = -2, /* passthrough is entered only by de-virtualization */
    STORAGE_ERR_BUSY = -3, /* a device starts one request at a time */
    STORAGE_ERR_POLICY_PHASE = -4, /* cannot change policy while starting, switching or devirtualized */
    STORAGE_ERR_POLICY_ALREADY = -5, /* already in that policy */
    STORAGE_ERR_POLICY_ILLEGAL = -6, /* not a legal transition */
    STORAGE_ERR_POLICY_PASSTHROUGH = -7, /* passthrough is entered only by de-virtualization */
    STORAGE_ERR_DEVIRTUALIZE = -8, /* de-virtualization asked for while the predicate does not hold */
    STORAGE_ERR_REGION = -9, /* the region is smaller than storage_region_bytes */
    STORAGE_ERR_CANNOT_HAPPEN = -10, /* an illegal block transition: always a bug */
};

enum storage_phase { STORAGE_STARTING, STORAGE_RUNNING, STORAGE_SWITCHING, STORAGE_DEVIRTUALIZED };
enum storage_device_id { STORAGE_LOCAL, STORAGE_REMOTE };
enum storage_kind { STORAGE_READ_SECTORS, STORAGE_WRITE_SECTORS, STORAGE_FLUSH };
enum storage_purpose { STORAGE_FOR_GUEST, STORAGE_FILL_READ, STORAGE_FILL_WRITE, STORAGE_FOR_COMMIT, STORAGE_MAP_READ, STORAGE_SWITCH_FLUSH };
enum storage_commit_step { STORAGE_FLUSH_BEFORE, STORAGE_WRITE_MAP, STORAGE_FLUSH_AFTER };
enum storage_fill_stage { STORAGE_FILL_READING, STORAGE_FILL_WRITING };

/* A finished device request; a read's sectors are already in the buffer given at submission. */
struct storage_completion {
    int64_t request_id;
    uint8_t ok;
    uint8_t ata_error; /* ATA Error register bits when not ok */
};

/* The request interface of both devices (spec/storage/devices.py): ids, completions in any order. */
struct storage_device {
    void *context;
    int64_t (*submit_read)(void *context, uint64_t lba, uint64_t count, uint8_t *buffer);
    int64_t (*submit_write)(void *context, uint64_t lba, const uint8_t *data, uint64_t count);
    int64_t (*submit_flush)(void *context);
    int (*take_completion)(void *context, struct storage_completion *completion); /* 1 when one was taken */
};

/* One guest request (spec/ata/backing_store.py): the buffer holds count sectors. */
struct storage_request {
    uint8_t kind; /* enum storage_kind */
    uint64_t lba;
    uint64_t count;
    uint8_t *buffer; /* READ: where the sectors go; WRITE: the sectors */
};

struct storage_result {
    uint8_t ok;
    uint8_t error; /* ATA Error register bits when not ok */
};

/* One request on one device, for a piece of a guest request. */
struct storage_segment {
    uint8_t device;
    uint8_t kind;
    uint8_t completed;
    uint8_t ok;
    uint8_t ata_error;
    uint64_t lba;
    uint64_t count;
    uint64_t offset; /* sectors from the start of the guest request */
    int64_t request_id;
};

/* One request submitted to a device and not yet completed: why, what and where. */
struct storage_outstanding {
    uint8_t used;
    uint8_t purpose;
    uint8_t kind;
    int64_t request_id;
    uint64_t argument; /* the segment index (guest) or the block (fills) */
    uint64_t lba;
    uint64_t count;
};

struct storage_fill {
    uint8_t used;
    uint8_t stage;
    uint32_t block;
};

struct storage_config {
    struct storage_geometry geometry;
    struct storage_fill_parameters fill;
    uint8_t identity[STORAGE_IDENTITY_BYTES]; /* padded with zeros (persistent_map.normalize_identity) */
    uint8_t policy; /* the configured policy */
    uint8_t has_local; /* a local disk exists */
};

#define STORAGE_MAX_FILLS 16 /* fills outstanding at once; max_in_flight may not exceed it */

struct storage_manager {
    struct storage_config config;
    struct storage_device local;
    struct storage_device remote;
    uint8_t phase;
    uint8_t policy;
    uint8_t durable_clean; /* the newest map on disk (perhaps) is a clean cache map */
    uint8_t next_slot;
    uint64_t next_generation;
    uint64_t now;
    uint64_t tokens;
    uint64_t fills_since_commit;
    /* the guest request */
    uint8_t guest_active;
    uint8_t guest_issued;
    uint8_t guest_server_flushed; /* cache: the write-through was followed by a server flush */
    uint8_t guest_has_ticket;
    uint8_t guest_ticket_done;
    uint8_t guest_ticket_ok;
    uint8_t guest_has_result;
    struct storage_request guest;
    struct storage_result guest_result;
    uint64_t guest_ticket; /* the map commit this flush waits for */
    uint32_t segment_total;
    /* the fill engine */
    struct storage_fill fills[STORAGE_MAX_FILLS];
    uint32_t demanded_total;
    /* map commits */
    uint8_t commit_active;
    uint8_t commit_policy;
    uint8_t commit_clean;
    uint8_t commit_step;
    uint64_t commit_number;
    int64_t commit_request_id;
    uint8_t commit_wanted;
    uint8_t commit_wanted_policy;
    uint8_t commit_wanted_clean;
    uint64_t commits_started;
    /* policy changes */
    uint8_t has_pending_policy;
    uint8_t pending_policy;
    uint8_t switch_flush; /* leaving network: the server's volatile data must be durable first */
    uint8_t broken; /* a "cannot happen" was reached */
    uint8_t switch_commit; /* the map commit a policy change still needs */
    uint8_t switch_commit_policy;
    uint8_t switch_commit_clean;
    uint8_t has_switch_commit_number; /* the commit started for it */
    uint8_t switch_commit_done; /* that commit finished ... */
    uint8_t switch_commit_ok; /* ... and succeeded */
    uint64_t switch_commit_number;
    struct storage_recovery recovery;
    /* coverage: how often each block transition and policy change happened */
    uint32_t transitions[4][7];
    uint32_t policy_changes[4][4];
    /* tables in the caller's region */
    uint32_t outstanding_capacity;
    uint32_t segment_capacity;
    uint8_t *blocks; /* per block: enum storage_block_state */
    uint8_t *persisted; /* bitmap: blocks the durable map marks present */
    uint8_t *snapshot; /* bitmap: the commit in progress marks these present */
    uint8_t *map_io; /* both map slots: read at start, one written per commit */
    uint8_t *fill_io; /* one block per fill slot */
    uint32_t *demanded; /* blocks the guest touched, in order */
    struct storage_segment *segments;
    struct storage_outstanding *local_outstanding;
    struct storage_outstanding *remote_outstanding;
};

/* Bytes of the region the tables of this configuration need. */
size_t storage_region_bytes(const struct storage_config *config);

/* A manager in phase STARTING (reading both map slots) or, without a local disk, RUNNING. */
int storage_manager_init(struct storage_manager *m, const struct storage_config *config, const struct storage_device *local,
                         const struct storage_device *remote, uint8_t *region, size_t region_bytes, uint64_t now);

/* The backing store interface (spec/ata/backing_store.py). */
uint64_t storage_sector_count(const struct storage_manager *m);
int storage_start(struct storage_manager *m, const struct storage_request *request);
/* 1 and *result filled once the guest request is complete, else 0. */
int storage_poll(struct storage_manager *m, struct storage_result *result);

/* Other inputs. */
void storage_tick(struct storage_manager *m, uint64_t now);
void storage_step(struct storage_manager *m);
void storage_on_local_completion(struct storage_manager *m, const struct storage_completion *completion);
void storage_on_remote_completion(struct storage_manager *m, const struct storage_completion *completion);
int storage_request_policy(struct storage_manager *m, uint8_t wanted);
uint32_t storage_blockers(const struct storage_manager *m);
int storage_may_devirtualize(const struct storage_manager *m);
int storage_devirtualize(struct storage_manager *m);

size_t storage_manager_state_bytes(void);

#endif
