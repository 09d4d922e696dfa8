/* A client's overlay log in C: the index (sector -> log offset) and the two hot operations.
 *
 * The index is an open-addressing hash table of (lba + 1, place) pairs, 16 bytes a sector,
 * where a place is the sector's log offset (48 bits) and, for records of at most 255 sectors,
 * its record's sector count and its position in it (8 bits each; count 0: not known),
 * kept at most half full; a slot with key 0 is empty. Entries are only added or replaced,
 * never removed one by one (a reset clears the table), so lookups need no tombstones.
 * The record layout is impl/server/overlay.py's: magic, lba, count, CRC-32 over lba, count
 * and data, 4 bytes of padding; little-endian.
 *
 * A write that covers exactly one record appended since the last completed flush, all of whose
 * sectors still live there, rewrites that record in place (header with its new CRC, and data,
 * in one pwritev) instead of appending: an overwrite then costs pages the page cache has, not
 * new ones. A record torn by a power loss fails its CRC and recovery cuts the log there; only
 * writes since the last flush are behind that point, so every flushed write survives and every
 * sector holds its flushed data or a later write (ATA/ATAPI-7 V1 §6.14). Records older than the
 * last flush are never rewritten: a torn one would cut flushed data. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "datapath.h"

#define INITIAL_SLOTS 1024u
#define HASH_MULTIPLIER 0x9E3779B97F4A7C15ull /* Fibonacci hashing: consecutive LBAs spread over the table */

struct index_slot {
    uint64_t key;   /* lba + 1; 0: empty */
    uint64_t place; /* offset | record count << 48 | position in the record << 56 */
};

#define OFFSET_MASK ((1ull << 48) - 1)
#define PLACE_COUNT_SHIFT 48
#define PLACE_POSITION_SHIFT 56
#define MAX_PLACED_COUNT 255u

struct dp_overlay {
    int fd;
    uint64_t end;
    uint64_t flushed_end;         /* records starting below it were complete before the last flush */
    const volatile int32_t *held; /* non-zero while a commit copies the log: no record changes */
    struct index_slot *slots;
    uint64_t capacity; /* a power of two, or 0 before the first write */
    uint64_t used;
};

struct dp_overlay *dp_overlay_new(int fd, uint64_t end)
{
    struct dp_overlay *overlay = calloc(1, sizeof *overlay);
    if (overlay) {
        overlay->fd = fd;
        overlay->end = end;
        overlay->flushed_end = end; /* what the log holds when opened may not be durable yet: keep it */
    }
    return overlay;
}

void dp_overlay_free(struct dp_overlay *overlay)
{
    if (overlay)
        free(overlay->slots);
    free(overlay);
}

void dp_overlay_adopt(struct dp_overlay *overlay, struct dp_overlay *from)
{
    const volatile int32_t *held = overlay->held;
    free(overlay->slots);
    *overlay = *from;
    overlay->held = held;
    free(from);
}

void dp_overlay_mark_flushed(struct dp_overlay *overlay) { overlay->flushed_end = overlay->end; }

void dp_overlay_hold_with(struct dp_overlay *overlay, const volatile int32_t *held) { overlay->held = held; }

int dp_overlay_fd(const struct dp_overlay *overlay) { return overlay->fd; }
uint64_t dp_overlay_end(const struct dp_overlay *overlay) { return overlay->end; }
uint64_t dp_overlay_sectors(const struct dp_overlay *overlay) { return overlay->used; }

void dp_overlay_clear(struct dp_overlay *overlay, uint64_t end)
{
    free(overlay->slots);
    overlay->slots = NULL;
    overlay->capacity = overlay->used = 0;
    overlay->end = overlay->flushed_end = end;
}

static uint64_t slot_of(uint64_t key, uint64_t capacity)
{
    return (key * HASH_MULTIPLIER) >> (64 - __builtin_ctzll(capacity));
}

static struct index_slot *find_slot(struct index_slot *slots, uint64_t capacity, uint64_t key)
{
    uint64_t mask = capacity - 1;
    for (uint64_t i = slot_of(key, capacity);; i = (i + 1) & mask)
        if (slots[i].key == key || slots[i].key == 0)
            return &slots[i];
}

static int grow(struct dp_overlay *overlay)
{
    uint64_t capacity = overlay->capacity ? overlay->capacity * 2 : INITIAL_SLOTS;
    struct index_slot *slots = calloc(capacity, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (uint64_t i = 0; i < overlay->capacity; i++)
        if (overlay->slots[i].key)
            *find_slot(slots, capacity, overlay->slots[i].key) = overlay->slots[i];
    free(overlay->slots);
    overlay->slots = slots;
    overlay->capacity = capacity;
    return 0;
}

int dp_overlay_index_run(struct dp_overlay *overlay, uint64_t lba, uint32_t count, uint64_t data_offset)
{
    while ((overlay->used + count) * 2 > overlay->capacity)
        if (grow(overlay))
            return -ENOMEM;
    uint64_t known = count <= MAX_PLACED_COUNT ? count : 0;
    for (uint32_t i = 0; i < count; i++) {
        struct index_slot *slot = find_slot(overlay->slots, overlay->capacity, lba + i + 1);
        if (slot->key == 0) {
            slot->key = lba + i + 1;
            overlay->used++;
        }
        uint64_t position = known ? i : 0;
        slot->place = (data_offset + (uint64_t)i * DP_SECTOR_BYTES) | known << PLACE_COUNT_SHIFT | position << PLACE_POSITION_SHIFT;
    }
    return 0;
}

int64_t dp_overlay_lookup(const struct dp_overlay *overlay, uint64_t lba)
{
    if (overlay->used == 0)
        return -1;
    const struct index_slot *slot = find_slot(overlay->slots, overlay->capacity, lba + 1);
    return slot->key ? (int64_t)(slot->place & OFFSET_MASK) : -1;
}

int dp_overlay_covers_any(const struct dp_overlay *overlay, uint64_t lba, uint64_t count)
{
    if (overlay->used == 0)
        return 0;
    for (uint64_t i = 0; i < count; i++)
        if (dp_overlay_lookup(overlay, lba + i) >= 0)
            return 1;
    return 0;
}

uint64_t dp_overlay_export(const struct dp_overlay *overlay, uint64_t *pairs, uint64_t capacity)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < overlay->capacity && n < capacity; i++)
        if (overlay->slots[i].key) {
            pairs[2 * n] = overlay->slots[i].key - 1;
            pairs[2 * n + 1] = overlay->slots[i].place & OFFSET_MASK;
            n++;
        }
    return n;
}

/* The offset of the record that holds exactly sectors lba..lba+count-1, all live, appended since
 * the last flush; or 0 when the write must be appended. */
static uint64_t rewritable_record(const struct dp_overlay *overlay, uint64_t lba, uint32_t count)
{
    if ((overlay->held && *overlay->held) || overlay->used == 0 || count > MAX_PLACED_COUNT)
        return 0;
    const struct index_slot *slot = find_slot(overlay->slots, overlay->capacity, lba + 1);
    uint64_t place = slot->place, first = place & OFFSET_MASK;
    if (!slot->key || place >> PLACE_COUNT_SHIFT != count) /* position 0 of a record of exactly count sectors */
        return 0;
    if (first < overlay->flushed_end + DP_RECORD_BYTES)
        return 0;
    for (uint32_t i = 1; i < count; i++) /* every sector still lives in that record */
        if (dp_overlay_lookup(overlay, lba + i) != (int64_t)(first + (uint64_t)i * DP_SECTOR_BYTES))
            return 0;
    return first - DP_RECORD_BYTES;
}

int dp_overlay_write(struct dp_overlay *overlay, uint64_t lba, const uint8_t *data, uint32_t count)
{
    uint8_t header[DP_RECORD_BYTES] = {0};
    uint32_t magic = DP_RECORD_MAGIC;
    size_t length = (size_t)count * DP_SECTOR_BYTES;
    memcpy(header, &magic, 4); /* little-endian host, little-endian format */
    memcpy(header + 4, &lba, 8);
    memcpy(header + 12, &count, 4);
    uint32_t crc = dp_crc32(dp_crc32(0, header + 4, DP_RECORD_FIELDS_BYTES), data, length);
    memcpy(header + 16, &crc, 4);
    struct iovec parts[2] = {{header, sizeof header}, {(void *)data, length}};
    uint64_t in_place = rewritable_record(overlay, lba, count);
    if (in_place) {
        ssize_t written = pwritev(overlay->fd, parts, 2, (off_t)in_place);
        if (written < 0)
            return -errno;
        return (size_t)written == sizeof header + length ? 0 : -EIO; /* torn: its CRC fails, as after a power loss */
    }
    /* room in the index first: a record that is in the log must be in the index too */
    while ((overlay->used + count) * 2 > overlay->capacity)
        if (grow(overlay))
            return -ENOMEM;
    /* one call: header and data are in the OS together when it returns */
    ssize_t written = pwritev(overlay->fd, parts, 2, (off_t)overlay->end);
    if (written < 0)
        return -errno;
    if ((size_t)written != sizeof header + length)
        return -EIO; /* the next record overwrites this torn one */
    uint64_t data_offset = overlay->end + sizeof header;
    overlay->end += (uint64_t)written;
    return dp_overlay_index_run(overlay, lba, count, data_offset);
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
        uint32_t start = i;
        int64_t offset = dp_overlay_lookup(overlay, lba + i);
        int rc;
        i++;
        if (offset < 0) { /* a run of sectors from the base image */
            while (i < count && dp_overlay_lookup(overlay, lba + i) < 0)
                i++;
            rc = dp_read_exactly(base_fd, out + (size_t)start * DP_SECTOR_BYTES, (size_t)(i - start) * DP_SECTOR_BYTES,
                                 (lba + start) * DP_SECTOR_BYTES);
        } else { /* a run of sectors that sit one after another in the log */
            while (i < count && dp_overlay_lookup(overlay, lba + i) == offset + (int64_t)(i - start) * DP_SECTOR_BYTES)
                i++;
            rc = dp_read_exactly(overlay->fd, out + (size_t)start * DP_SECTOR_BYTES, (size_t)(i - start) * DP_SECTOR_BYTES,
                                 (uint64_t)offset);
        }
        if (rc)
            return rc;
    }
    return 0;
}
