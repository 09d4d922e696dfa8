/* The persistent map: which blocks the local disk holds, kept on the disk itself
 * (spec/storage/persistent_map.py has the layout table and the order of writes). */
#ifndef STORAGE_MAP_H
#define STORAGE_MAP_H

#include <stdint.h>

#include "storage_geometry.h"

#define STORAGE_MAP_VERSION 1
#define STORAGE_IDENTITY_BYTES 32 /* room for a SHA-256 of the server image, or its shelf.slot and serial */
#define STORAGE_MAP_FIELDS_BYTES 64 /* every header field before the checksum */

/* Why a slot is treated as empty; every reason is a specified outcome, not a crash. */
enum storage_map_rejection {
    STORAGE_MAP_VALID = 0,
    STORAGE_MAP_NO_MAGIC,
    STORAGE_MAP_UNKNOWN_VERSION,
    STORAGE_MAP_BAD_CHECKSUM,
    STORAGE_MAP_FOREIGN_IMAGE,
    STORAGE_MAP_OTHER_GEOMETRY,
    STORAGE_MAP_UNKNOWN_POLICY,
};

/* A slot's record; the present set is the slot's own bitmap, kept in place. */
struct storage_map_record {
    uint64_t generation;
    uint8_t policy; /* CACHE or INSTALL */
    uint8_t clean;
    const uint8_t *present; /* bitmap, bit b of byte b / 8 */
};

struct storage_recovery {
    uint8_t has_newest; /* a valid slot exists */
    uint8_t slot; /* the slot the newest valid map came from */
    struct storage_map_record newest;
    uint8_t rejections[STORAGE_MAP_SLOTS]; /* per slot: why it is not valid, STORAGE_MAP_VALID if valid */
    uint8_t trusted; /* the newest map may be started from */
    uint8_t next_slot; /* never the one holding the newest valid map */
    uint64_t next_generation;
};

uint32_t storage_crc32(uint32_t crc, const uint8_t *data, uint64_t bytes);

/* One slot's sectors, header sector then bitmap sectors, into out (slot_sectors · 512 bytes). */
void storage_encode_map(uint8_t *out, uint64_t generation, uint8_t policy, uint8_t clean, const uint8_t *present,
                        const struct storage_geometry *g, const uint8_t identity[STORAGE_IDENTITY_BYTES]);

/* A slot's record, or why it must not be trusted. */
int storage_decode_map(const uint8_t *raw, const struct storage_geometry *g,
                       const uint8_t identity[STORAGE_IDENTITY_BYTES], struct storage_map_record *record);

/* The newest valid map among the two slots read back to back; it is trusted, or the start is empty. */
void storage_recover_map(const uint8_t *slots, const struct storage_geometry *g,
                         const uint8_t identity[STORAGE_IDENTITY_BYTES], struct storage_recovery *recovery);

#endif
