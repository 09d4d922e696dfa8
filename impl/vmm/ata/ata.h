/* ATA manager: owns the primary IDE channel's ports. In passthrough every access reaches the
 * physical controller, while the manager tracks the channel as spec/ata describes it (command,
 * LBA, count, protocol phase) and checks every bus-master PRD table before a DMA starts. The
 * secondary channel is the guest's (a CD-ROM on QEMU), but its DMA is checked the same way:
 * device DMA bypasses nested paging, whichever channel starts it. */
#ifndef STORVISOR_ATA_H
#define STORVISOR_ATA_H

#include <stdbool.h>
#include <stdint.h>
#include "ata_commands.h"

/* Primary channel in ISA compatibility mode (ATA/ATAPI-7 V1 §6; PIIX datasheet §2.7). */
#define ATA_COMMAND_BLOCK 0x1F0
#define ATA_COMMAND_BLOCK_PORTS 8
#define ATA_CONTROL_PORT 0x3F6
#define ATA_BUSMASTER_PORTS 16 /* BMIC, BMIS, BMIDTP of the primary channel, then of the secondary */
#define ATA_BUSMASTER_CHANNEL_PORTS 8

/* Command block register offsets from 0x1F0 (ATA/ATAPI-7 V1 §7, table 7). */
enum ata_register {
    ATA_REG_DATA, ATA_REG_ERROR_FEATURES, ATA_REG_COUNT, ATA_REG_LBA_LOW,
    ATA_REG_LBA_MID, ATA_REG_LBA_HIGH, ATA_REG_DEVICE, ATA_REG_STATUS_COMMAND,
};

#define ATA_STATUS_ERR 0x01
#define ATA_STATUS_DRQ 0x08
#define ATA_STATUS_BSY 0x80
#define ATA_DEVICE_LBA 0x40
#define ATA_CONTROL_SRST 0x04
#define ATA_CONTROL_HOB 0x80

/* Bus-master IDE registers, offsets from BAR4 (PIIX datasheet §2.7.1). */
#define BM_COMMAND 0
#define BM_STATUS 2
#define BM_PRD_TABLE 4
#define BM_COMMAND_START 0x01
#define BM_STATUS_ACTIVE 0x01
#define BM_STATUS_ERROR 0x02
#define BM_STATUS_INTERRUPT 0x04

/* Where the channel is in the protocol of ATA/ATAPI-7 V2 §11: the names of spec/ata's Phase.
 * In passthrough the manager sees only what the guest reads, so it follows a coarser path:
 * COMMAND_ACCEPTED on the command write, then the busy or transfer phase the status shows. */
enum ata_phase {
    ATA_PHASE_IDLE,
    ATA_PHASE_RESET_ASSERTED,
    ATA_PHASE_RESET_EXECUTING,
    ATA_PHASE_COMMAND_ACCEPTED,
    ATA_PHASE_NON_DATA_EXECUTING,
    ATA_PHASE_PIO_IN_FETCHING,
    ATA_PHASE_PIO_IN_TRANSFER,
    ATA_PHASE_PIO_OUT_TRANSFER,
    ATA_PHASE_PIO_OUT_STORING,
    ATA_PHASE_DMA_FETCHING,
    ATA_PHASE_DMA_TRANSFER,
    ATA_PHASE_DMA_STORING,
};

/* One 8-bit register with the value before the last write, for 48-bit commands (ATA/ATAPI-7 V1 §7, Device Control: HOB). */
struct ata_fifo_register {
    uint8_t current, previous;
};

struct ata_channel {
    struct ata_fifo_register features, sector_count, lba_low, lba_mid, lba_high;
    uint8_t device, control;
    enum ata_phase phase;
    const struct ata_command *command; /* the last command written; NULL if the table does not know it */
    uint8_t command_code;
    uint64_t lba;                      /* first sector of the command */
    uint32_t count;                    /* sectors in the whole command */
    uint16_t busmaster_base;           /* BAR4; 0 when the bus master is not decoded */
};

extern struct ata_channel ata_primary;

/* One channel's bus master as the guest programs it (PIIX datasheet §2.7). */
struct ata_busmaster {
    const char *name;
    uint16_t offset;                   /* from BAR4: 0 primary, 8 secondary */
    uint32_t guest_prd_table;          /* what the guest wrote to BMIDTP */
    bool dma_refused;                  /* the guest's last PRD table reached VMM memory */
    uint64_t *shadow_prd_table;        /* the copy the controller reads, in VMM memory */
};

/* Takes over the primary channel's ports; `busmaster_base` is BAR4 or 0. */
void ata_init(uint16_t busmaster_base);
/* The guest moved BAR4: intercept the bus-master registers at their new place. */
void ata_move_busmaster(uint16_t busmaster_base);
/* The command table entry for a code, or NULL (ATA/ATAPI-7 V1 §6: unknown codes are aborted). */
const struct ata_command *ata_lookup_command(uint8_t code);

/* Polled PIO reads forwarded as READ MULTIPLE (ata_pio_blocks.c): learn the disk's multiple
 * count, pick the command byte the disk receives, and follow what changes the count. */
void ata_pio_blocks_init(void);
uint8_t ata_pio_blocks_forwarded_code(const struct ata_channel *ch, uint8_t code);
void ata_pio_blocks_command(const struct ata_channel *ch, uint8_t code);
void ata_pio_blocks_completed(const struct ata_channel *ch, uint8_t status);
void ata_pio_blocks_reset(void);

/* The secondary channel's command register (ata_secondary.c). */
void ata_secondary_init(void);
bool ata_secondary_may_dma(void);
/* Whether a command on either channel could still start or run a DMA: while it could, PCI
 * configuration stays watched (pci.c). */
bool ata_dma_may_be_pending(void);

/* Bus-master DMA of both channels (ata_bmdma.c); `offset` is from BAR4, 0..15. */
void ata_bmdma_init(uint16_t busmaster_base);
/* Takes over what the guest wrote to the bus masters while PCI configuration went unwatched. */
void ata_bmdma_catch_up(void);
bool ata_bmdma_active(void);
uint32_t ata_bmdma_read(uint16_t offset, unsigned size);
void ata_bmdma_write(uint16_t offset, unsigned size, uint32_t value);
/* PRD tables (ata_prd.c): true when every entry up to the end-of-table mark, and the table
 * itself, stays out of VMM memory (invariant dma_confined); `entries` counts them. */
#define PRD_END_OF_TABLE (1u << 31)
#define PRD_TABLE_MAX_ENTRIES 8192 /* one 64 KiB region of 8-byte entries (PIIX datasheet §2.7.3) */
bool ata_prd_table_is_confined(uint32_t table, unsigned *entries);

#endif
