/* The AoE frame layouts the initiator sends and receives (spec/aoe/frames.py, AoEr11 §2–§3). */
#ifndef AOE_FRAME_H
#define AOE_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* A received frame, decoded as far as the initiator needs it. */
struct aoe_response {
    uint8_t destination[6];
    uint8_t source[6];
    uint8_t version;
    uint8_t flags; /* AOE_HEADER_FLAG_RESPONSE | AOE_HEADER_FLAG_ERROR */
    uint8_t error;
    uint16_t major;
    uint8_t minor;
    uint8_t command;
    uint32_t tag;
    /* ATA argument (AoEr11 §3.1), valid when command is ATA */
    uint8_t err_feature;
    uint8_t cmd_status;
    const uint8_t *data; /* everything after the ATA argument */
    size_t data_bytes;
    /* Query Config argument (AoEr11 §3.2), valid when command is QUERY_CONFIG */
    uint16_t buffer_count;
    uint8_t sector_count;
    const uint8_t *config; /* the config string */
    uint16_t config_bytes;
};

/* 1 if the frame fits its layout (spec decode_frame does not raise MalformedFrame), else 0. */
int aoe_decode_response(const uint8_t *frame, size_t bytes, struct aoe_response *out);

/* The Ethernet and AoE headers of a request, 24 bytes (AoEr11 §2; multi-byte fields big-endian). */
void aoe_encode_headers(uint8_t *out, const uint8_t destination[6], const uint8_t source[6], uint16_t major,
                        uint8_t minor, uint8_t command, uint32_t tag);
/* The 12-byte ATA argument; the LBA is little-endian, lba0 first (AoEr11 §3.1). */
void aoe_encode_ata_argument(uint8_t *out, uint8_t aflags, uint8_t count, uint8_t command, uint64_t lba);
/* The 8-byte Query Config argument of a request: its ccmd and the length of the string that follows (AoEr11 §3.2). */
void aoe_encode_config_argument(uint8_t *out, uint8_t ccmd, uint16_t string_bytes);

#endif
