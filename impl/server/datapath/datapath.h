/* The storage server's compiled data path: plain reads and writes answered without Python.
 *
 * Python (impl/server/target.py) decides everything once per route with the full checks of
 * spec.aoe.target and registers the route here; from then on a plain, in-range READ/WRITE
 * SECTORS (EXT) on that route is answered in C: the same bytes, the same overlay records, the
 * same counters. Anything else returns 0 and goes back to Python's checked path.
 * Memory of counters and target flags belongs to Python (ctypes); overlays and routes to C.
 */
#ifndef DATAPATH_H
#define DATAPATH_H

#include <stddef.h>
#include <stdint.h>

#include "datapath_constants.h"

/* One client's counters (`storvisor clients`); laid out as impl/server/disks.py's ClientCounters. */
struct dp_recent_request {
    uint64_t tag_key;     /* 0: not used yet */
    uint64_t request_key; /* a hash of the command byte and the ATA argument */
};

struct dp_recent_slot {
    uint64_t key;   /* 0: empty */
    uint64_t count; /* how often the key is in the ring */
};

struct dp_counters {
    uint64_t requests;
    uint64_t read_bytes;
    uint64_t written_bytes;
    uint64_t errors;
    uint64_t duplicates;
    uint64_t flushes;
    double last_activity;
    uint64_t recent_next;
    struct dp_recent_request recent[DP_RECENT_REQUESTS]; /* a ring of the latest requests */
    struct dp_recent_slot recent_set[DP_RECENT_SLOTS];   /* the ring's keys, for lookups in O(1) */
};

/* Count a request that repeats one of the client's last DP_RECENT_REQUESTS: same tag, or same command and argument. */
void dp_saw_request(struct dp_counters *counters, const uint8_t *frame);

/* CRC-32 of IEEE 802.3 (zlib's crc32), continued from `crc`. */
uint32_t dp_crc32(uint32_t crc, const uint8_t *data, size_t length);

/* One client's copy-on-write overlay (impl/server/overlay.py holds the file format). */
struct dp_overlay;

/* An overlay over the file `fd` for an image of `sectors`, nothing allocated, its journal (of `epoch`)
 * ending at journal_end. NULL: no memory. */
struct dp_overlay *dp_overlay_new(int fd, uint64_t sectors, uint64_t journal_end, uint64_t epoch);
void dp_overlay_free(struct dp_overlay *overlay);
int dp_overlay_fd(const struct dp_overlay *overlay);
uint64_t dp_overlay_journal_end(const struct dp_overlay *overlay);
/* The journal was rewritten in a new epoch (a checkpoint); the next record goes at `end`. */
void dp_overlay_set_journal(struct dp_overlay *overlay, uint64_t end, uint64_t epoch);
/* How many sectors the overlay holds. */
uint64_t dp_overlay_sectors(const struct dp_overlay *overlay);
/* Forget every sector (a reset); the journal, of a new epoch, is empty and ends at journal_end. */
void dp_overlay_clear(struct dp_overlay *overlay, uint64_t journal_end, uint64_t epoch);
/* Sectors lba..lba+count-1 are the overlay's (recovery). 0, or -ENOMEM / -EINVAL past the image. */
int dp_overlay_allocate(struct dp_overlay *overlay, uint64_t lba, uint64_t count);
/* How many sectors from lba on, at most limit, the overlay holds (allocated != 0) or does not (0). */
uint64_t dp_overlay_run(const struct dp_overlay *overlay, uint64_t lba, uint64_t limit, int allocated);
/* Whether any sector of lba..lba+count-1 was written. */
int dp_overlay_covers_any(const struct dp_overlay *overlay, uint64_t lba, uint64_t count);
/* Write the data in place, then append allocation records for its sectors not allocated before; when
 * it returns 0 the write is in the OS. Else -errno; records are appended 16 to a pwrite, so those that
 * landed before the failure stay allocated, each over its data already in place. */
int dp_overlay_write(struct dp_overlay *overlay, uint64_t lba, const uint8_t *data, uint32_t count);
#define DP_WRITE_RUN_FRAMES 16 /* writes done with one pwritev at most */
/* The same for n writes (at most DP_WRITE_RUN_FRAMES), each starting where the one before ended: their
 * data with one pwritev, then the records each write alone would append, in order. */
int dp_overlay_write_run(struct dp_overlay *overlay, uint64_t lba, const uint8_t *const *data, const uint32_t *counts, uint32_t n);
/* DP_WRITE_RUN_FRAMES, for the tests. */
unsigned dp_write_run_frames(void);
/* Fill `out` with count sectors from lba: the overlay's where written, else the base image's. 0 or -errno. */
int dp_overlay_read(const struct dp_overlay *overlay, int base_fd, uint64_t lba, uint32_t count, uint8_t *out);
/* Start copying base image + overlay, as they are now, into destination_fd (sized already). 0, -EBUSY, -ENOMEM. */
int dp_commit_begin(struct dp_overlay *overlay, int base_fd, int destination_fd);
/* Copy one more chunk (from any thread): the chunks left (> 0), 0 when the copy is complete, or -errno. */
int64_t dp_commit_step(struct dp_overlay *overlay);
/* The commit is over (done or abandoned); writes no longer wait for it. */
void dp_commit_end(struct dp_overlay *overlay);
/* Read count sectors of the base image alone. 0 or -errno (a short read is -EIO). */
int dp_read_exactly(int fd, uint8_t *out, size_t length, uint64_t offset);

/* The routes of one server process: (first DP_ROUTE_KEY_BYTES of a request) -> what answering it needs. */
struct dp_server;

struct dp_route_spec {
    uint8_t key[DP_ROUTE_KEY_BYTES];       /* destination, client, ethertype, version/flags, error, shelf, slot, command */
    uint8_t prefix[DP_ROUTE_KEY_BYTES];    /* the answer's bytes before the tag */
    int32_t base_fd;
    int32_t read_only;
    uint64_t sectors;
    struct dp_overlay *overlay;            /* NULL: the client has not written yet, or read-only */
    const volatile int32_t *blocked;       /* non-zero while the target has a mask list or reservations */
    struct dp_counters *counters;
};

struct dp_server *dp_server_new(uint32_t max_sectors);
void dp_server_free(struct dp_server *server);
/* Register (or replace) a route. 0, or -ENOMEM. */
int dp_route_add(struct dp_server *server, const struct dp_route_spec *spec);
/* Forget every route (a disk was closed, or the table is full). */
void dp_routes_clear(struct dp_server *server);
uint64_t dp_route_count(const struct dp_server *server);
/* The answer to a plain transfer on a registered route, built in `out`: its length, or 0 for Python. */
size_t dp_answer(struct dp_server *server, const uint8_t *frame, size_t length, uint8_t *out, size_t capacity);
/* The same, with the time (seconds since the epoch) the client's last activity is set to. */
size_t dp_answer_at(struct dp_server *server, const uint8_t *frame, size_t length, uint8_t *out, size_t capacity, double now);
/* The frames waiting after the one being answered: the k-th after it (k >= 1), or NULL. */
typedef const uint8_t *(*dp_peek_fn)(void *context, uint32_t k, uint32_t *length);
/* The batch loop's answer to `frame`, and when it is a write that frames waiting after it continue
 * (the same route, each starting where the one before ended), theirs too: their data goes to the
 * overlay with one pwritev, their records as each write alone would append them. At most `limit`
 * frames; answer i is built at out + i * stride, its length in lengths[i]. A read whose sectors all
 * lie in a mapped window of the base image (windows.c) is built without its data, and data[i] says
 * where the data is (else NULL); the answer must be sent before dp_server_answers_sent.
 * Returns how many frames were answered; 0: `frame` goes to Python. */
uint32_t dp_answer_frames(struct dp_server *server, const uint8_t *frame, size_t length, dp_peek_fn peek, void *context,
                          uint32_t limit, uint8_t *out, size_t stride, size_t capacity, double now, uint32_t *lengths,
                          const uint8_t **data);
/* How many runs of two or more writes dp_answer_frames wrote with one pwritev. */
uint64_t dp_server_write_runs(const struct dp_server *server);
/* Every answer dp_answer_frames pointed into a window has been sent: their windows may be unmapped. */
void dp_server_answers_sent(struct dp_server *server);
/* Sending an answer from a window failed (EFAULT: the file could not be read): map nothing used so far again. */
void dp_server_mapping_failed(struct dp_server *server);
/* How many windows are mapped now (at most DP_WINDOWS). */
unsigned dp_server_mapped_windows(const struct dp_server *server);
/* How many windows it has mapped so far (each reuse of a slot counts). */
uint64_t dp_server_windows_made(const struct dp_server *server);
/* DP_WINDOWS, DP_WINDOW_BYTES and DP_WINDOW_IDLE_READS (windows.h), for the tests. */
unsigned dp_window_limit(void);
uint64_t dp_window_bytes(void);
unsigned dp_window_idle_reads(void);
double dp_wall_clock(void);

/* One socket served in batches of recvmmsg/sendmmsg: AF_PACKET, or UDP with a dp_peers table. */
struct dp_link;

enum dp_serve_result {
    DP_SERVE_IDLE = -1,    /* nothing arrived for the idle time: Python looks at its other work */
    DP_SERVE_REFRESH = -2, /* the shared target state moved: Python reloads it, then serves on */
    DP_SERVE_ERROR = -3,   /* recvmmsg failed; errno says why */
};

struct dp_link *dp_link_new(int fd, uint32_t batch, uint32_t frame_bytes, uint32_t pad_to);
void dp_link_free(struct dp_link *link);
/* An AF_PACKET socket: receive through a ring of `frames` slots for frames of up to receive_bytes.
 * 0, or -errno (the link keeps using recvmmsg). */
int dp_link_use_ring(struct dp_link *link, uint32_t receive_bytes, uint32_t frames);
/* Watch a sequence number another process publishes at `sequence`: serve returns DP_SERVE_REFRESH while it
 * differs from `seen` (call again with the new `seen` after reloading). */
void dp_link_watch(struct dp_link *link, const volatile uint64_t *sequence, uint64_t seen);
/* Answer frames until one needs Python (its index, >= 0) or a dp_serve_result. A dp_serve_result
 * leaves nothing queued: the next serve may name another server, and the one before may be freed. */
int dp_link_serve(struct dp_server *server, struct dp_link *link, uint64_t idle_ns);
/* The frame `dp_link_serve` handed to Python. */
const uint8_t *dp_link_frame(const struct dp_link *link, uint32_t index, uint32_t *length);
/* Python's answer to that frame (call once per answer), then dp_link_done. 0, or -EMSGSIZE. */
int dp_link_queue(struct dp_link *link, const uint8_t *answer, uint32_t length);
/* Python is done with the frame it was handed; the next serve goes on after it. */
void dp_link_done(struct dp_link *link);

/* UDP: which sender address owns each client MAC (peers.c). */
struct dp_peers;
/* What the last refused frame claimed: its MAC, the address that owns it (zeros: the table was full), its sender. */
struct dp_refusals {
    uint64_t count;
    uint8_t mac[DP_MAC_BYTES];
    uint8_t owner[DP_PEER_NAME_BYTES];
    uint8_t sender[DP_PEER_NAME_BYTES];
};
/* A MAC belongs to its address until that address is silent for takeover_seconds; at most `limit` MACs. */
struct dp_peers *dp_peers_new(double takeover_seconds, uint32_t limit);
void dp_peers_free(struct dp_peers *peers);
/* Whether the sender `name` may use `mac` at `now` (monotonic seconds): 1, and it is heard; 0, refused and counted. */
int dp_peers_claim(struct dp_peers *peers, const uint8_t *mac, const uint8_t *name, uint32_t name_bytes, double now);
uint32_t dp_peers_count(const struct dp_peers *peers);
const struct dp_refusals *dp_peers_refusals(const struct dp_peers *peers);
/* A UDP socket: receive every frame with its sender's address, serve only frames whose source MAC the
 * sender owns in `peers` (the others are dropped), and send each answer to its request's sender.
 * 0, or -ENOMEM. The link must not use a ring. */
int dp_link_use_peers(struct dp_link *link, struct dp_peers *peers);

#endif
