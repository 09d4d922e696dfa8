/* CRC-32 of IEEE 802.3 (reflected polynomial 0xEDB88320, as zlib's crc32), eight bytes per step.
 * Slicing-by-8: table k holds the CRC of a byte followed by k zero bytes, so eight table
 * lookups replace eight one-byte steps. Tables are built once when the library loads. */
#include <string.h>

#include "datapath.h"

#define CRC32_POLYNOMIAL 0xEDB88320u /* IEEE 802.3 §3.2.9, bit-reversed */

static uint32_t crc_tables[8][256];

__attribute__((constructor)) static void build_crc_tables(void)
{
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (CRC32_POLYNOMIAL & -(crc & 1));
        crc_tables[0][byte] = crc;
    }
    for (uint32_t byte = 0; byte < 256; byte++)
        for (int k = 1; k < 8; k++)
            crc_tables[k][byte] = (crc_tables[k - 1][byte] >> 8) ^ crc_tables[0][crc_tables[k - 1][byte] & 0xFF];
}

uint32_t dp_crc32(uint32_t crc, const uint8_t *data, size_t length)
{
    crc = ~crc;
    while (length >= 8) {
        uint32_t low, high;
        memcpy(&low, data, 4); /* little-endian host: x86-64 */
        memcpy(&high, data + 4, 4);
        low ^= crc;
        crc = crc_tables[7][low & 0xFF] ^ crc_tables[6][(low >> 8) & 0xFF] ^ crc_tables[5][(low >> 16) & 0xFF] ^
              crc_tables[4][low >> 24] ^ crc_tables[3][high & 0xFF] ^ crc_tables[2][(high >> 8) & 0xFF] ^
              crc_tables[1][(high >> 16) & 0xFF] ^ crc_tables[0][high >> 24];
        data += 8;
        length -= 8;
    }
    while (length--)
        crc = (crc >> 8) ^ crc_tables[0][(crc ^ *data++) & 0xFF];
    return ~crc;
}
