/* Base images mapped a window at a time for sequential reads (windows.c says why and when). */
#ifndef WINDOWS_H
#define WINDOWS_H

#include <stdint.h>

#define DP_WINDOW_BYTES (2u << 20) /* a window's place in the file: offsets index * DP_WINDOW_BYTES on */
#define DP_WINDOW_MAP_BYTES (DP_WINDOW_BYTES + (128u << 10)) /* and its mapping's length: a read of up to 255 sectors that starts in it ends in it */
#define DP_SEQUENTIAL_READS 4 /* reads of a route in a row, each starting where the one before ended: the last maps its window */
#define DP_WINDOWS 8 /* per server process: at most 8 x 2.1 MiB of the images resident through mappings */
#define DP_WINDOW_IDLE_READS 256 /* reads that passed a window by before it may be taken for another */

struct dp_window {
    const uint8_t *map; /* NULL: the slot is free */
    int fd;
    int retired;        /* the file may close: no new answer uses it */
    uint64_t index;
    uint64_t last_use;  /* the number of the last answer pointed into it */
    uint64_t last_read; /* the clock when a read last found it */
};

struct dp_windows {
    struct dp_window slots[DP_WINDOWS];
    uint64_t uses; /* answers pointed into a window so far */
    uint64_t sent; /* of those, how many have been sent (or dropped) */
    uint64_t made; /* windows mapped so far */
    uint64_t clock; /* reads that looked for a window */
    int retiring;  /* retired windows wait for their answers to be sent */
};

/* The window mapped already that holds the file's byte `offset`, or NULL; a read found it (it is not idle). */
struct dp_window *dp_windows_find(struct dp_windows *windows, int fd, uint64_t offset);
/* Where that byte is in the window `w` found, for an answer that will point there. */
const uint8_t *dp_windows_use(struct dp_windows *windows, struct dp_window *w, uint64_t offset);
/* Map the window of `offset` (in a free slot, or one whose answers were all sent) and return where the
 * byte is; NULL when no slot is free or mmap fails: the read is copied instead. */
const uint8_t *dp_windows_map(struct dp_windows *windows, int fd, uint64_t offset);
/* Every answer pointed into a window so far has left (or was dropped). */
void dp_windows_sent(struct dp_windows *windows);
/* The files may close or have failed: no window is used again; each is unmapped once its answers are sent. */
void dp_windows_retire(struct dp_windows *windows);
/* Unmap every window (nothing queued points into them any more). */
void dp_windows_release(struct dp_windows *windows);
unsigned dp_windows_mapped(const struct dp_windows *windows);
uint64_t dp_windows_made(const struct dp_windows *windows);

#endif
