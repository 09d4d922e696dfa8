/* The secondary channel belongs to the guest (a CD-ROM on QEMU), but its DMA reaches memory
 * like the primary's. Its command block is watched for one reason: a command reaches the
 * device only after PCI configuration has been caught up with (pci_catch_up), and no bus scan
 * releases 0xCF8 while one of its commands may still move data (ATA/ATAPI-7 V2 §11). Every
 * access is forwarded unchanged. */
#include "ata.h"
#include "../platform/platform.h"

#define SECONDARY_COMMAND_BLOCK 0x170

static bool may_dma; /* the last command could use the bus master and has not been seen to end */

static bool covers_status_command(uint16_t port, unsigned size)
{
    return port + size > SECONDARY_COMMAND_BLOCK + ATA_REG_STATUS_COMMAND;
}

static uint32_t secondary_read(uint16_t port, unsigned size)
{
    stat_add(STAT_IO_ATA_SECONDARY);
    uint32_t value = port_read(port, size);
    if (size == 1 && port == SECONDARY_COMMAND_BLOCK + ATA_REG_STATUS_COMMAND &&
        !(value & (ATA_STATUS_BSY | ATA_STATUS_DRQ)))
        may_dma = false;
    return value;
}

/* A write that reaches the command register, whatever its width: PACKET and commands the
 * table does not know count as possible DMA (the DMA bit of PACKET is in Features). */
static void secondary_write(uint16_t port, unsigned size, uint32_t value)
{
    stat_add(STAT_IO_ATA_SECONDARY);
    if (covers_status_command(port, size)) {
        pci_catch_up();
        uint8_t code = (uint8_t)(value >> (8 * (SECONDARY_COMMAND_BLOCK + ATA_REG_STATUS_COMMAND - port)));
        const struct ata_command *command = ata_lookup_command(code);
        may_dma = !command || command->protocol == ATA_PROTOCOL_DMA;
    }
    port_write(port, size, value);
}

static const struct port_handler secondary_handler = { .read = secondary_read, .write = secondary_write };

void ata_secondary_init(void)
{
    may_dma = false;
    /* Only the command register's IOPM bit is set; a wider access that covers it exits too
     * (AMD APM vol 2 §15.10.1) and reaches the handler from its first port, 0x174 at the lowest. */
    ioexit_register(SECONDARY_COMMAND_BLOCK + ATA_REG_LBA_MID, 4, &secondary_handler);
    iopm_intercept(SECONDARY_COMMAND_BLOCK + ATA_REG_LBA_MID, 3, false);
}

bool ata_secondary_may_dma(void)
{
    return may_dma;
}
