/* CRC-32 of IEEE 802.3, as the overlay format stores it: zlib's crc32, the same function Python's
 * recovery checks records with (zlib.crc32), and about twice as fast as a table-driven one. */
#include <zlib.h>

#include "datapath.h"

uint32_t dp_crc32(uint32_t crc, const uint8_t *data, size_t length)
{
    while (length > UINT32_MAX) { /* zlib takes an unsigned int length */
        crc = (uint32_t)crc32(crc, data, UINT32_MAX);
        data += UINT32_MAX;
        length -= UINT32_MAX;
    }
    return (uint32_t)crc32(crc, data, (uInt)length);
}
