/* The AoE initiator: what the VMM's AoE client does between the storage manager and the wire.
 *
 * Mirrors spec/aoe/initiator.py function by function: tags, window, Jacobson/Karels retransmission
 * with a new tag for every transmission, deadlines, and the ordering rules that make the outcome equal
 * to running the requests one at a time (at most one write per sector in flight, flush as a barrier).
 * Pure and freestanding: no I/O, no clock reads, no hidden state; the caller owns the state object,
 * hands in received frames and the time, and takes outgoing frames and completions after every call.
 *
 * Differences from the spec are capacity limits only (the spec's lists are unbounded):
 * - a submission that would exceed AOE_MAX_REQUESTS or AOE_MAX_FRAGMENTS is refused with AOE_ERR_FULL
 *   (the storage manager's adapter turns that into an ABRT completion: storage_aoe_device.h);
 * - a request queued before discovery whose fragments do not fit once the target's limits are known
 *   fails with ABRT.
 * Buffers: a write's data and a read's destination stay owned by the caller and must remain valid until
 * the request's completion has been taken and the outgoing frames drained.
 */
#ifndef AOE_INITIATOR_H
#define AOE_INITIATOR_H

#include <stddef.h>
#include <stdint.h>

#include "aoe_rtt.h"

#define AOE_MAX_REQUESTS 1024 /* requests submitted and not yet taken as completions: a guest request split by block state */
#define AOE_MAX_FRAGMENTS 4096 /* frames' worth of unfinished requests: Linux's 1280 KiB requests at MTU 1500 fit */
#define AOE_MAX_WINDOW 64 /* the largest max_window a configuration may ask for */
#define AOE_MAX_OUTSTANDING (AOE_MAX_WINDOW + 1) /* the window plus the discovery query */
#define AOE_MAX_FENCES 256 /* write ranges whose copies may still be travelling */
#define AOE_MAX_OUTGOING (2 * AOE_MAX_OUTSTANDING) /* one call retransmits and sends at most this many */
#define AOE_REQUEST_HEAD_BYTES 36 /* Ethernet, AoE header and ATA argument (AoEr11 §3.1) */
#define AOE_LBA48_LIMIT (1ull << 48)
#define AOE_TAG_NONE 0xffffu

/* Errors a call returns; every one leaves the state as it was. */
enum aoe_result {
    AOE_OK = 0,
    AOE_ERR_EMPTY = -1, /* a request covers at least one sector */
    AOE_ERR_RANGE = -2, /* the sectors must lie within the 48-bit address space */
    AOE_ERR_DATA = -3, /* write data must be a positive whole number of 512-byte sectors */
    AOE_ERR_FULL = -4, /* no room for another request or its fragments */
    AOE_ERR_TIME = -5, /* time never runs backwards */
    AOE_ERR_CONFIG = -6, /* a window beyond AOE_MAX_WINDOW, or an epoch token longer than a config string */
};

enum aoe_kind {
    AOE_KIND_READ,
    AOE_KIND_WRITE,
    AOE_KIND_FLUSH,
    AOE_KIND_DISCOVER,
    AOE_KIND_VERIFY, /* a flush's second step: is our epoch token still the target's config string? */
    AOE_KIND_RECLAIM, /* a flush's third step after a restart was seen: set the token again */
};

struct aoe_timing {
    uint64_t initial_rto; /* before the first round-trip sample */
    uint64_t min_rto;
    uint64_t max_rto; /* backoff doubles a frame's timeout up to here */
    uint64_t deadline; /* a request with no progress for this long fails */
    uint64_t max_frame_age; /* how long a sent write fences its sectors */
};

struct aoe_config {
    uint8_t mac[6]; /* our address */
    uint16_t major; /* the target's shelf */
    uint8_t minor; /* the target's slot */
    uint32_t mtu;
    uint8_t target_mac[6]; /* broadcast: learn it from the Query Config answer */
    uint32_t max_window;
    struct aoe_timing timing;
    const uint8_t *epoch_token; /* non-empty: claim the target's config string with it and check it after each flush */
    uint32_t epoch_token_bytes; /* 0: off; the bytes stay the caller's for the initiator's lifetime */
};

struct aoe_completion {
    uint64_t request_id;
    uint8_t ok;
    uint8_t ata_error; /* ATA Error register bits when not ok */
    uint8_t aoe_error; /* the AoE error code when the target answered with the E flag */
};

struct aoe_in_flight {
    uint32_t tag;
    uint8_t kind;
    uint64_t lba;
    uint32_t count;
};

struct aoe_request {
    uint8_t used;
    uint8_t kind;
    uint64_t request_id;
    uint64_t lba;
    uint64_t count;
    const uint8_t *data; /* a write's sectors */
    uint8_t *buffer; /* where a read's sectors go */
    uint64_t progress_at; /* submission, a first transmission or an answer of one of its fragments */
    uint32_t fragments_left;
};

struct aoe_fragment {
    uint8_t used;
    uint8_t kind;
    uint8_t has_tag; /* transmitted at least once */
    uint16_t request; /* slot in requests[] */
    uint64_t lba;
    uint32_t count;
    const uint8_t *data;
    uint32_t tag; /* the tag of the live transmission */
    uint64_t sent_at;
    uint64_t rto;
};

struct aoe_fence {
    uint64_t lba;
    uint64_t count;
    uint64_t until; /* no new write to these sectors before this time */
};

struct aoe_outgoing {
    uint8_t head[AOE_REQUEST_HEAD_BYTES];
    uint32_t head_bytes;
    const uint8_t *data;
    uint32_t data_bytes;
};

struct aoe_initiator {
    struct aoe_config config;
    uint64_t now; /* the latest time handed in */
    uint8_t target_mac[6];
    uint8_t discovered; /* Query Config has answered: buffer_count and max_sectors are known */
    uint32_t buffer_count;
    uint32_t max_sectors;
    uint32_t next_tag;
    uint64_t next_request_id;
    struct aoe_rtt estimator;
    uint16_t discovery; /* fragment slot of the Query Config, or AOE_TAG_NONE once answered */
    struct aoe_request requests[AOE_MAX_REQUESTS];
    uint16_t request_order[AOE_MAX_REQUESTS]; /* live requests in submission order */
    uint16_t request_total;
    struct aoe_fragment fragments[AOE_MAX_FRAGMENTS];
    uint16_t pending[AOE_MAX_FRAGMENTS]; /* unfinished fragments in submission order */
    uint16_t pending_total;
    uint16_t outstanding[AOE_MAX_OUTSTANDING]; /* fragments in flight, in order of transmission */
    uint16_t outstanding_total;
    struct aoe_fence fences[AOE_MAX_FENCES];
    uint16_t fence_total;
    struct aoe_outgoing outgoing[AOE_MAX_OUTGOING];
    uint16_t outgoing_first, outgoing_total;
    struct aoe_completion completions[AOE_MAX_REQUESTS];
    uint16_t completion_first, completion_total;
    uint64_t ignored_frames; /* malformed, stale or foreign frames seen by receive */
    uint64_t target_restarts; /* restarts the epoch token revealed */
};

/* Construction queues a Query Config READ; requests submitted earlier than its answer wait for it. */
int aoe_initiator_init(struct aoe_initiator *initiator, const struct aoe_config *config, uint64_t now);

/* The storage manager's side: a request id (> 0) or a negative enum aoe_result. A submission only
 * queues; its frames leave from aoe_tick and aoe_receive, which carry the time, so a write's fence
 * starts when it is sent (aoe_next_timer reports `now` while a queued frame may go). */
int64_t aoe_submit_read(struct aoe_initiator *initiator, uint64_t lba, uint64_t count, uint8_t *buffer);
int64_t aoe_submit_write(struct aoe_initiator *initiator, uint64_t lba, const uint8_t *data, uint64_t bytes);
int64_t aoe_submit_flush(struct aoe_initiator *initiator);

/* The network's side and the clock: AOE_OK or AOE_ERR_TIME. */
int aoe_receive(struct aoe_initiator *initiator, const uint8_t *frame, size_t bytes, uint64_t now);
int aoe_tick(struct aoe_initiator *initiator, uint64_t now);

/* The next frame to send, unpadded, copied into out: its length, or 0 when none is queued. */
size_t aoe_take_outgoing(struct aoe_initiator *initiator, uint8_t *out, size_t capacity);
/* The next completion: 1 and *completion filled, or 0 when none is queued. */
int aoe_take_completion(struct aoe_initiator *initiator, struct aoe_completion *completion);

/* Introspection for invariants and callers that sleep. */
size_t aoe_in_flight(const struct aoe_initiator *initiator, struct aoe_in_flight *out, size_t capacity);
uint32_t aoe_window(const struct aoe_initiator *initiator);
int aoe_next_timer(const struct aoe_initiator *initiator, uint64_t *when);
uint64_t aoe_ignored_frames(const struct aoe_initiator *initiator);
uint64_t aoe_target_restarts(const struct aoe_initiator *initiator);
/* The size of the state object, for callers that allocate it without this header (bindings). */
size_t aoe_initiator_state_bytes(void);

#endif
