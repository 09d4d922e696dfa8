/* Encode the initiator's requests and decode the responses it receives (spec/aoe/frames.py). */
#include "aoe_frame.h"

#include "aoe_constants.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The argument fits its layout; later bytes are padding, except ATA data which runs to the end. */
static int argument_fits(uint8_t command, const uint8_t *body, size_t bytes)
{
    switch (command) {
    case AOE_COMMAND_ATA:
        /* frame ends inside the 12-byte ATA argument */
        return bytes >= AOE_ATA_ARG_BYTES;
    case AOE_COMMAND_QUERY_CONFIG:
        /* frame ends inside the 8-byte Query Config argument */
        if (bytes < AOE_CONFIG_ARG_BYTES)
            return 0;
        /* config string length exceeds 1024 */
        if (be16(body + 6) > AOE_CONFIG_STRING_MAX)
            return 0;
        /* frame ends inside the config string */
        return bytes >= (size_t)AOE_CONFIG_ARG_BYTES + be16(body + 6);
    case AOE_COMMAND_MAC_MASK_LIST:
        /* frame ends inside the 4-byte MAC Mask List argument */
        if (bytes < AOE_MASK_ARG_BYTES)
            return 0;
        /* frame ends inside the MAC Mask List directives */
        return bytes >= (size_t)AOE_MASK_ARG_BYTES + (size_t)body[3] * AOE_MASK_DIRECTIVE_BYTES;
    case AOE_COMMAND_RESERVE_RELEASE:
        /* frame ends inside the 2-byte Reserve/Release argument */
        if (bytes < AOE_RESERVE_ARG_BYTES)
            return 0;
        /* frame ends inside the Reserve/Release MAC list */
        return bytes >= (size_t)AOE_RESERVE_ARG_BYTES + (size_t)body[1] * AOE_MAC_BYTES;
    default:
        return 1; /* vendor and unknown commands keep their bytes */
    }
}

int aoe_decode_response(const uint8_t *frame, size_t bytes, struct aoe_response *out)
{
    /* frame shorter than the 14-byte Ethernet header */
    if (bytes < AOE_ETHERNET_HEADER_BYTES)
        return 0;
    /* ethertype is not AoE (0x88A2) */
    if (be16(frame + 12) != AOE_ETHERTYPE_AOE)
        return 0;
    /* frame ends inside the 10-byte AoE header */
    if (bytes < AOE_ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES)
        return 0;
    const uint8_t *h = frame + AOE_ETHERNET_HEADER_BYTES;
    const uint8_t *body = h + AOE_HEADER_BYTES;
    size_t body_bytes = bytes - AOE_ETHERNET_HEADER_BYTES - AOE_HEADER_BYTES;
    if (!argument_fits(h[5], body, body_bytes))
        return 0;
    for (int i = 0; i < 6; i++) {
        out->destination[i] = frame[i];
        out->source[i] = frame[6 + i];
    }
    out->version = h[0] >> 4;
    out->flags = h[0] & 0xf;
    out->error = h[1];
    out->major = be16(h + 2);
    out->minor = h[4];
    out->command = h[5];
    out->tag = be32(h + 6);
    out->err_feature = 0;
    out->cmd_status = 0;
    out->data = body;
    out->data_bytes = 0;
    out->buffer_count = 0;
    out->sector_count = 0;
    out->config = 0;
    out->config_bytes = 0;
    if (out->command == AOE_COMMAND_ATA) {
        out->err_feature = body[1];
        out->cmd_status = body[3];
        out->data = body + AOE_ATA_ARG_BYTES;
        out->data_bytes = body_bytes - AOE_ATA_ARG_BYTES;
    } else if (out->command == AOE_COMMAND_QUERY_CONFIG) {
        out->buffer_count = be16(body);
        out->sector_count = body[4];
        out->config = body + AOE_CONFIG_ARG_BYTES;
        out->config_bytes = be16(body + 6);
    }
    return 1;
}

void aoe_encode_headers(uint8_t *out, const uint8_t destination[6], const uint8_t source[6], uint16_t major,
                        uint8_t minor, uint8_t command, uint32_t tag)
{
    for (int i = 0; i < 6; i++) {
        out[i] = destination[i];
        out[6 + i] = source[i];
    }
    out[12] = AOE_ETHERTYPE_AOE >> 8;
    out[13] = AOE_ETHERTYPE_AOE & 0xff;
    uint8_t *h = out + AOE_ETHERNET_HEADER_BYTES;
    h[0] = AOE_VERSION << 4; /* a request carries no flags */
    h[1] = 0;
    h[2] = (uint8_t)(major >> 8);
    h[3] = (uint8_t)major;
    h[4] = minor;
    h[5] = command;
    h[6] = (uint8_t)(tag >> 24);
    h[7] = (uint8_t)(tag >> 16);
    h[8] = (uint8_t)(tag >> 8);
    h[9] = (uint8_t)tag;
}

void aoe_encode_ata_argument(uint8_t *out, uint8_t aflags, uint8_t count, uint8_t command, uint64_t lba)
{
    out[0] = aflags;
    out[1] = 0; /* features */
    out[2] = count;
    out[3] = command;
    for (int i = 0; i < 6; i++)
        out[4 + i] = (uint8_t)(lba >> (8 * i));
    out[10] = 0;
    out[11] = 0;
}

void aoe_encode_config_argument(uint8_t *out, uint8_t ccmd, uint16_t string_bytes)
{
    for (int i = 0; i < AOE_CONFIG_ARG_BYTES; i++)
        out[i] = 0; /* buffer count, firmware version and sector count are 0 in a request */
    out[5] = (uint8_t)(AOE_VERSION << 4 | ccmd);
    out[6] = (uint8_t)(string_bytes >> 8);
    out[7] = (uint8_t)string_bytes;
}
