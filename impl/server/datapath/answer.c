/* Routes and the answer to a plain transfer, in C: what impl/server/target.py's checked path
 * would answer, without entering Python.
 *
 * A route is keyed by a request's first DP_ROUTE_KEY_BYTES (destination, client, ethertype,
 * version and flags, error, shelf, slot, AoE command): Python registers one after it answered
 * an ATA request on it with every check of spec.aoe.target, so what remains to check here is
 * what varies per request (AoEr11 §3.1, ATA/ATAPI-7 V1 §6: READ SECTOR(S) (EXT), WRITE SECTOR(S) (EXT)).
 * The batch loop (link.c) also hands over the frames waiting after a write: those of the same
 * client that continue it make a write run, whose data goes to the overlay with one pwritev. A
 * write costs a system call however short it is, so a sequential writer's run of 8.5 KiB writes
 * costs one instead of several. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datapath.h"
#include "windows.h"

#define INITIAL_ROUTE_SLOTS 64u
#define MAX_ROUTE_SLOTS (2u * DP_ROUTE_CACHE_ENTRIES) /* kept at most half full */

struct route {
    struct dp_route_spec spec;
    uint32_t used;
    uint64_t sequel; /* the sector after the route's last read: a read that starts there is sequential */
    uint32_t run;    /* how many reads in a row were */
};

struct dp_server {
    uint32_t max_sectors;
    struct route *routes;
    uint64_t capacity;
    uint64_t used;
    struct dp_windows windows; /* base images mapped for sequential reads */
    uint64_t write_runs;       /* runs of writes done with one pwritev */
};

struct dp_server *dp_server_new(uint32_t max_sectors)
{
    struct dp_server *server = calloc(1, sizeof *server);
    if (server)
        server->max_sectors = max_sectors;
    return server;
}

void dp_server_free(struct dp_server *server)
{
    if (server) {
        free(server->routes);
        dp_windows_release(&server->windows);
    }
    free(server);
}

static uint64_t key_hash(const uint8_t *key)
{
    uint64_t a, b;
    uint32_t c;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    memcpy(&c, key + 16, 4);
    uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full) ^ (c * 0x165667B19E3779F9ull);
    return h ^ (h >> 29);
}

static struct route *find_route(struct route *routes, uint64_t capacity, const uint8_t *key)
{
    uint64_t mask = capacity - 1;
    for (uint64_t i = key_hash(key) & mask;; i = (i + 1) & mask)
        if (!routes[i].used || memcmp(routes[i].spec.key, key, DP_ROUTE_KEY_BYTES) == 0)
            return &routes[i];
}

void dp_routes_clear(struct dp_server *server)
{
    dp_windows_retire(&server->windows); /* a base image's descriptor may close after this */
    free(server->routes);
    server->routes = NULL;
    server->capacity = server->used = 0;
}

uint64_t dp_route_count(const struct dp_server *server) { return server->used; }

int dp_route_add(struct dp_server *server, const struct dp_route_spec *spec)
{
    if ((server->used + 1) * 2 > server->capacity) {
        uint64_t capacity = server->capacity ? server->capacity * 2 : INITIAL_ROUTE_SLOTS;
        if (capacity > MAX_ROUTE_SLOTS) { /* bounded: senders of arbitrary addresses cannot grow it forever */
            dp_routes_clear(server);
            capacity = INITIAL_ROUTE_SLOTS;
        }
        struct route *routes = calloc(capacity, sizeof *routes);
        if (!routes)
            return -ENOMEM;
        for (uint64_t i = 0; i < server->capacity; i++)
            if (server->routes[i].used)
                *find_route(routes, capacity, server->routes[i].spec.key) = server->routes[i];
        free(server->routes);
        server->routes = routes;
        server->capacity = capacity;
    }
    struct route *route = find_route(server->routes, server->capacity, spec->key);
    if (!route->used) {
        route->used = 1;
        server->used++;
    }
    route->spec = *spec;
    return 0;
}

double dp_wall_clock(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

void dp_server_answers_sent(struct dp_server *server) { dp_windows_sent(&server->windows); }

void dp_server_mapping_failed(struct dp_server *server) { dp_windows_retire(&server->windows); }

unsigned dp_server_mapped_windows(const struct dp_server *server) { return dp_windows_mapped(&server->windows); }

uint64_t dp_server_windows_made(const struct dp_server *server) { return dp_windows_made(&server->windows); }

uint64_t dp_server_write_runs(const struct dp_server *server) { return server->write_runs; }

unsigned dp_window_limit(void) { return DP_WINDOWS; }

uint64_t dp_window_bytes(void) { return DP_WINDOW_BYTES; }

unsigned dp_window_idle_reads(void) { return DP_WINDOW_IDLE_READS; }

/* Where a read's sectors are in a mapped window of the base image, or NULL: it is copied with pread. */
static const uint8_t *mapped_read(struct dp_server *server, struct route *route, uint64_t lba, uint32_t count)
{
    const struct dp_route_spec *r = &route->spec;
    route->run = lba == route->sequel ? route->run + 1 : 0;
    route->sequel = lba + count;
    uint64_t offset = lba * DP_SECTOR_BYTES;
    struct dp_window *window = dp_windows_find(&server->windows, r->base_fd, offset);
    if (!window && route->run < DP_SEQUENTIAL_READS)
        return NULL;
    if (r->overlay && dp_overlay_run(r->overlay, lba, count, 0) < count)
        return NULL; /* the client wrote some of them: overlay.c reads them */
    return window ? dp_windows_use(&server->windows, window, offset) : dp_windows_map(&server->windows, r->base_fd, offset);
}

/* A plain transfer on a registered route, checked as far as it can be without doing it. */
struct transfer {
    struct route *route;
    const uint8_t *arg; /* AoEr11 §3.1: aflags, feature, count, command, lba0..5 */
    uint64_t lba;
    uint8_t count;
    int writing;
};

/* Whether the data path answers this frame: a READ/WRITE SECTORS (EXT) on a route, its count, W flag,
 * LBA and length needing no error answer. */
static int parse(struct dp_server *server, const uint8_t *frame, size_t length, struct transfer *t)
{
    if (length < DP_ATA_HEADER_BYTES || server->used == 0)
        return 0;
    struct route *route = find_route(server->routes, server->capacity, frame);
    const struct dp_route_spec *r = &route->spec;
    if (!route->used || *r->blocked)
        return 0;
    const uint8_t *arg = frame + DP_HEADER_BYTES;
    uint8_t aflags = arg[0], count = arg[2], command = arg[3];
    int writing = command == DP_WRITE_SECTORS || command == DP_WRITE_SECTORS_EXT;
    int extended = command == DP_READ_SECTORS_EXT || command == DP_WRITE_SECTORS_EXT;
    if (!writing && command != DP_READ_SECTORS && command != DP_READ_SECTORS_EXT)
        return 0;
    if (count == 0 || count > server->max_sectors || !!(aflags & DP_ATA_FLAG_WRITE) != writing)
        return 0;
    uint64_t lba = 0;
    memcpy(&lba, arg + 4, 6); /* little-endian on the wire and on the host */
    lba &= extended ? DP_LBA48_MASK : DP_LBA28_MASK;
    if (lba + count > r->sectors)
        return 0;
    if (writing && (length - DP_ATA_HEADER_BYTES < (size_t)count * DP_SECTOR_BYTES || r->read_only || !r->overlay))
        return 0;
    *t = (struct transfer){route, arg, lba, count, writing};
    return 1;
}

/* The transfer was done: count it and build its answer's headers in `out`. */
static void finish(const struct transfer *t, const uint8_t *frame, uint8_t *out, double now)
{
    const struct dp_route_spec *r = &t->route->spec;
    size_t data_bytes = (size_t)t->count * DP_SECTOR_BYTES;
    if (t->writing)
        r->counters->written_bytes += data_bytes;
    else
        r->counters->read_bytes += data_bytes;
    r->counters->requests++;
    r->counters->last_activity = now;
    dp_saw_request(r->counters, frame);
    memcpy(out, r->prefix, DP_ROUTE_KEY_BYTES);
    memcpy(out + DP_TAG_OFFSET, frame + DP_TAG_OFFSET, DP_HEADER_BYTES - DP_TAG_OFFSET);
    uint8_t *answer = out + DP_HEADER_BYTES;
    answer[0] = t->arg[0];
    answer[1] = 0;
    answer[2] = t->count;
    answer[3] = DP_ATA_STATUS_DRDY;
    memcpy(answer + 4, t->arg + 4, 6);
    answer[10] = answer[11] = 0;
}

/* Do a parsed transfer and build its answer in `out`: its length, or 0 when the I/O failed (Python reports it).
 * With `data`, a read whose sectors lie in a mapped window is built without them and *data points at them. */
static size_t transfer(struct dp_server *server, const struct transfer *t, const uint8_t *frame, uint8_t *out, size_t capacity,
                       double now, const uint8_t **data)
{
    const struct dp_route_spec *r = &t->route->spec;
    size_t data_bytes = (size_t)t->count * DP_SECTOR_BYTES, answer_bytes = DP_ATA_HEADER_BYTES;
    if (t->writing) {
        if (dp_overlay_write(r->overlay, t->lba, frame + DP_ATA_HEADER_BYTES, t->count))
            return 0; /* the checked path tries again and reports it */
    } else {
        answer_bytes += data_bytes;
        if (capacity < answer_bytes)
            return 0;
        const uint8_t *mapped = data ? mapped_read(server, t->route, t->lba, t->count) : NULL;
        int rc = mapped              ? 0
                 : r->overlay        ? dp_overlay_read(r->overlay, r->base_fd, t->lba, t->count, out + DP_ATA_HEADER_BYTES)
                                     : dp_read_exactly(r->base_fd, out + DP_ATA_HEADER_BYTES, data_bytes, t->lba * DP_SECTOR_BYTES);
        if (rc)
            return 0;
        if (mapped)
            *data = mapped;
    }
    finish(t, frame, out, now);
    return answer_bytes;
}

static size_t answer(struct dp_server *server, const uint8_t *frame, size_t length, uint8_t *out, size_t capacity, double now)
{
    struct transfer t;
    return parse(server, frame, length, &t) ? transfer(server, &t, frame, out, capacity, now, NULL) : 0;
}

size_t dp_answer(struct dp_server *server, const uint8_t *frame, size_t length, uint8_t *out, size_t capacity)
{
    return answer(server, frame, length, out, capacity, dp_wall_clock());
}

size_t dp_answer_at(struct dp_server *server, const uint8_t *frame, size_t length, uint8_t *out, size_t capacity, double now)
{
    return answer(server, frame, length, out, capacity, now);
}

/* The write `first` and the frames waiting after it that continue it on its route (each starting where
 * the one before ended), up to `limit` in all: written with one pwritev, then answered. How many, or 0
 * when no frame continues it or the write failed: `first` is then written alone, as any write is. */
static uint32_t write_run(struct dp_server *server, const struct transfer *first, const uint8_t *frame, dp_peek_fn peek,
                          void *context, uint32_t limit, uint8_t *out, size_t stride, double now, uint32_t *lengths)
{
    struct transfer t[DP_WRITE_RUN_FRAMES];
    const uint8_t *frames[DP_WRITE_RUN_FRAMES], *data[DP_WRITE_RUN_FRAMES];
    uint32_t counts[DP_WRITE_RUN_FRAMES], n = 1;
    t[0] = *first;
    frames[0] = frame;
    limit = limit < DP_WRITE_RUN_FRAMES ? limit : DP_WRITE_RUN_FRAMES;
    while (n < limit) {
        uint32_t length;
        const uint8_t *next = peek(context, n, &length);
        if (!next || !parse(server, next, length, &t[n]) || !t[n].writing || t[n].route != first->route ||
            t[n].lba != t[n - 1].lba + t[n - 1].count)
            break;
        frames[n++] = next;
    }
    if (n < 2)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        data[i] = frames[i] + DP_ATA_HEADER_BYTES;
        counts[i] = t[i].count;
    }
    if (dp_overlay_write_run(first->route->spec.overlay, first->lba, data, counts, n))
        return 0;
    server->write_runs++;
    for (uint32_t i = 0; i < n; i++) {
        finish(&t[i], frames[i], out + i * stride, now);
        lengths[i] = DP_ATA_HEADER_BYTES;
    }
    return n;
}

uint32_t dp_answer_frames(struct dp_server *server, const uint8_t *frame, size_t length, dp_peek_fn peek, void *context,
                          uint32_t limit, uint8_t *out, size_t stride, size_t capacity, double now, uint32_t *lengths,
                          const uint8_t **data)
{
    struct transfer t;
    if (!parse(server, frame, length, &t))
        return 0;
    uint32_t n = t.writing ? write_run(server, &t, frame, peek, context, limit, out, stride, now, lengths) : 0;
    if (n) {
        for (uint32_t i = 0; i < n; i++)
            data[i] = NULL;
        return n;
    }
    data[0] = NULL;
    lengths[0] = (uint32_t)transfer(server, &t, frame, out, capacity, now, data);
    return lengths[0] ? 1 : 0;
}
