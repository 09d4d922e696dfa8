/* QEMU's fw_cfg DMA interface (QEMU docs/specs/fw_cfg.rst) writes and reads any physical
 * address, past nested paging. The guest may keep using it, but every descriptor is checked
 * before the write of the low address half starts it: one that reaches the VMM's window, or
 * asks for a transfer there, is completed with the error bit and never reaches QEMU. */
#include "platform.h"

#define FW_CFG_DMA_HIGH 0x514 /* big-endian address, high 32 bits */
#define FW_CFG_DMA_LOW 0x518  /* low 32 bits: writing it starts the transfer */
#define FW_CFG_DMA_CTL_ERROR 0x01u
#define FW_CFG_DMA_CTL_READ 0x02u
#define FW_CFG_DMA_CTL_WRITE 0x10u

static uint32_t high_half;

static uint32_t be32(uint32_t v)
{
    return __builtin_bswap32(v);
}

static bool descriptor_is_confined(uint64_t descriptor)
{
    uint32_t words[4];
    if (range_touches_vmm(descriptor, sizeof words))
        return false;
    guest_physical_read(descriptor, words, sizeof words);
    uint32_t control = be32(words[0]), length = be32(words[1]);
    uint64_t address = ((uint64_t)be32(words[2]) << 32) | be32(words[3]);
    bool transfers = control & (FW_CFG_DMA_CTL_READ | FW_CFG_DMA_CTL_WRITE);
    return !transfers || !range_touches_vmm(address, length);
}

static uint32_t fwcfg_read(uint16_t port, unsigned size)
{
    stat_add(STAT_IO_FWCFG);
    return port_read(port, size);
}

static void fwcfg_write(uint16_t port, unsigned size, uint32_t value)
{
    stat_add(STAT_IO_FWCFG);
    if (port == FW_CFG_DMA_HIGH && size == 4)
        high_half = be32(value);
    if (port == FW_CFG_DMA_LOW && size == 4) {
        uint64_t descriptor = ((uint64_t)high_half << 32) | be32(value);
        if (!descriptor_is_confined(descriptor)) {
            stat_add(STAT_FWCFG_DMA_REFUSED);
            log_warn("fw_cfg DMA descriptor at %lx reaches VMM memory: refused", descriptor);
            uint32_t error = be32(FW_CFG_DMA_CTL_ERROR);
            guest_physical_write(descriptor, &error, sizeof error);
            return;
        }
    }
    port_write(port, size, value);
}

static const struct port_handler fwcfg_handler = { .read = fwcfg_read, .write = fwcfg_write };

void fwcfg_init(void)
{
    ioexit_register(FW_CFG_DMA_HIGH, 8, &fwcfg_handler);
}
