/* The few byte operations the core needs, without libc (the VMM links no C library). */
#ifndef STORVISOR_CORE_LIB_H
#define STORVISOR_CORE_LIB_H

#include <stddef.h>
#include <stdint.h>

static inline void core_copy(uint8_t *destination, const uint8_t *source, size_t length)
{
    for (size_t i = 0; i < length; i++)
        destination[i] = source[i];
}

static inline void core_fill(uint8_t *destination, uint8_t value, size_t length)
{
    for (size_t i = 0; i < length; i++)
        destination[i] = value;
}

static inline uint32_t core_load_le16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static inline uint32_t core_load_le32(const uint8_t *p)
{
    return core_load_le16(p) | (core_load_le16(p + 2) << 16);
}

static inline void core_store_le16(uint8_t *p, uint32_t value)
{
    p[0] = (uint8_t)value;
    p[1] = (uint8_t)(value >> 8);
}

#endif
