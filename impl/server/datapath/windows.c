/* Windows of base images mapped into memory, so a sequential reader's answers are sent from the
 * page cache itself: sendmmsg copies the data once, where pread would copy it into a buffer
 * first (measured: 7.4 -> 6.7 µs of CPU per 8.5 KiB answer). Random reads keep pread: a window
 * is mapped only after DP_SEQUENTIAL_READS reads of a route each started where the last ended,
 * and resident memory grows by at most DP_WINDOWS mappings, however large the images and however
 * many the clients.
 * Only the kernel touches a mapping (in sendmmsg): a page that cannot be read, or a file cut
 * short under it, makes that send fail with EFAULT (no SIGBUS), and the link then retires every
 * window, so the request's retransmit is read with pread and answered with its error.
 * A window stays mapped until every answer that points into it has been sent, and is taken for
 * another only once DP_WINDOW_IDLE_READS reads went by without it: with more sequential readers
 * than windows, the first keep theirs and the others are copied, instead of every reader mapping
 * and unmapping a window for each read. */
#include <stddef.h>
#include <sys/mman.h>

#include "windows.h"

static void unmap(struct dp_window *w)
{
    munmap((void *)w->map, DP_WINDOW_MAP_BYTES);
    *w = (struct dp_window){0};
}

/* Whether no queued answer points into the window any more. */
static int all_sent(const struct dp_windows *windows, const struct dp_window *w)
{
    return w->last_use <= windows->sent;
}

struct dp_window *dp_windows_find(struct dp_windows *windows, int fd, uint64_t offset)
{
    uint64_t index = offset / DP_WINDOW_BYTES;
    windows->clock++;
    for (unsigned i = 0; i < DP_WINDOWS; i++) {
        struct dp_window *w = &windows->slots[i];
        if (w->map && !w->retired && w->fd == fd && w->index == index) {
            w->last_read = windows->clock;
            return w;
        }
    }
    return NULL;
}

const uint8_t *dp_windows_use(struct dp_windows *windows, struct dp_window *w, uint64_t offset)
{
    w->last_use = ++windows->uses;
    return w->map + (offset - w->index * DP_WINDOW_BYTES);
}

const uint8_t *dp_windows_map(struct dp_windows *windows, int fd, uint64_t offset)
{
    struct dp_window *victim = NULL;
    for (unsigned i = 0; i < DP_WINDOWS; i++) { /* an empty slot, else the least recently used one, sent and idle */
        struct dp_window *w = &windows->slots[i];
        if (!w->map) {
            victim = w;
            break;
        }
        if (all_sent(windows, w) && windows->clock - w->last_read >= DP_WINDOW_IDLE_READS && (!victim || w->last_use < victim->last_use))
            victim = w;
    }
    if (!victim)
        return NULL; /* every window is in use: this read is copied */
    if (victim->map)
        unmap(victim);
    uint64_t index = offset / DP_WINDOW_BYTES;
    void *map = mmap(NULL, DP_WINDOW_MAP_BYTES, PROT_READ, MAP_SHARED, fd, (off_t)(index * DP_WINDOW_BYTES));
    if (map == MAP_FAILED)
        return NULL;
    *victim = (struct dp_window){.map = map, .fd = fd, .index = index, .last_use = ++windows->uses, .last_read = windows->clock};
    windows->made++;
    return victim->map + (offset - index * DP_WINDOW_BYTES);
}

void dp_windows_sent(struct dp_windows *windows)
{
    windows->sent = windows->uses;
    if (!windows->retiring)
        return;
    for (unsigned i = 0; i < DP_WINDOWS; i++) /* the retired ones' answers have left too */
        if (windows->slots[i].retired)
            unmap(&windows->slots[i]);
    windows->retiring = 0;
}

void dp_windows_retire(struct dp_windows *windows)
{
    for (unsigned i = 0; i < DP_WINDOWS; i++) {
        struct dp_window *w = &windows->slots[i];
        if (!w->map)
            continue;
        if (all_sent(windows, w))
            unmap(w);
        else
            w->retired = windows->retiring = 1; /* unmapped once its answers are sent */
    }
}

void dp_windows_release(struct dp_windows *windows)
{
    for (unsigned i = 0; i < DP_WINDOWS; i++)
        if (windows->slots[i].map)
            unmap(&windows->slots[i]);
}

unsigned dp_windows_mapped(const struct dp_windows *windows)
{
    unsigned mapped = 0;
    for (unsigned i = 0; i < DP_WINDOWS; i++)
        mapped += windows->slots[i].map != NULL;
    return mapped;
}

uint64_t dp_windows_made(const struct dp_windows *windows) { return windows->made; }
