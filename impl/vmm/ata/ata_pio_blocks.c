/* Polled PIO reads in multi-sector blocks. A READ SECTORS command hands the host one sector
 * per DRQ data block, so the device goes BSY and fetches before every sector (ATA/ATAPI-7 V2
 * §11, PIO data-in command protocol); each of the guest's status polls in that wait is a
 * #VMEXIT. READ MULTIPLE moves a whole block of the device's multiple count per DRQ (V1 §6,
 * READ MULTIPLE), and between the sectors of a block the device stays in DRQ: the guest's
 * per-sector protocol (read 256 words, poll status, see DRQ, go on) is satisfied without a
 * wait. So a polled READ SECTORS (nIEN set: V1, Device Control register)
 * is forwarded as READ MULTIPLE when the multiple count the device is using is known.
 * Interrupt-driven reads are forwarded unchanged: READ MULTIPLE interrupts once per block,
 * a guest waiting for one interrupt per sector would wait forever. A read that fails part way
 * reports the error at the start of the failing block instead of the failing sector. */
#include "ata.h"
#include "../platform/platform.h"

#define ATA_CONTROL_NIEN 0x02
#define ATA_DEVICE_DEV 0x10
#define ATA_DEVICE_OBSOLETE_BITS 0xA0
#define IDENTIFY_WORDS 256
#define IDENTIFY_MULTIPLE_SETTING 59 /* bit 8: valid; bits 7:0: sectors per DRQ block (V1 §6.16, IDENTIFY DEVICE) */
#define IDENTIFY_WAIT_POLLS 1000000

/* The multiple count device 0 uses now: 0 when unknown or disabled. */
static uint8_t multiple_count;
static uint8_t requested_count; /* what a SET MULTIPLE MODE in progress asks for */

/* The status once BSY has cleared, or BSY itself if it never does (no device answers). */
static uint8_t status_when_not_busy(void)
{
    uint8_t status = ATA_STATUS_BSY;
    for (unsigned i = 0; i < IDENTIFY_WAIT_POLLS && (status & ATA_STATUS_BSY); i++)
        status = inb(ATA_CONTROL_PORT);
    return status;
}

/* Reads device 0's current multiple setting with IDENTIFY DEVICE, interrupts masked, before
 * the guest runs: the firmware has finished with the disk, and leaves nIEN clear. */
void ata_pio_blocks_init(void)
{
    multiple_count = 0;
    requested_count = 0;
    if (!options.pio_blocks)
        return;
    outb(ATA_CONTROL_PORT, ATA_CONTROL_NIEN);
    outb(ATA_COMMAND_BLOCK + ATA_REG_DEVICE, ATA_DEVICE_OBSOLETE_BITS);
    bool ready = !(status_when_not_busy() & ATA_STATUS_BSY);
    if (ready)
        outb(ATA_COMMAND_BLOCK + ATA_REG_STATUS_COMMAND, ATA_CMD_IDENTIFY_DEVICE);
    /* A packet device or an empty position aborts IDENTIFY DEVICE or never answers: no count. */
    if (ready && (status_when_not_busy() & (ATA_STATUS_BSY | ATA_STATUS_DRQ | ATA_STATUS_ERR)) == ATA_STATUS_DRQ) {
        uint16_t setting = 0;
        for (unsigned word = 0; word < IDENTIFY_WORDS; word++) {
            uint16_t value = inw(ATA_COMMAND_BLOCK + ATA_REG_DATA);
            if (word == IDENTIFY_MULTIPLE_SETTING)
                setting = value;
        }
        if (setting & 0x100)
            multiple_count = (uint8_t)setting;
    }
    inb(ATA_COMMAND_BLOCK + ATA_REG_STATUS_COMMAND); /* clears the interrupt condition (V1, Status register) */
    outb(ATA_CONTROL_PORT, 0);
    log_info("ata: disk 0 reads %u sectors per PIO block%s", multiple_count,
             multiple_count > 1 ? ": polled READ SECTORS goes to the disk as READ MULTIPLE" : "");
}

/* The command byte the disk receives for the guest's command `code`. */
uint8_t ata_pio_blocks_forwarded_code(const struct ata_channel *ch, uint8_t code)
{
    bool polled_read = (code == ATA_CMD_READ_SECTORS || code == ATA_CMD_READ_SECTORS_EXT) &&
                       (ch->control & ATA_CONTROL_NIEN) && !(ch->device & ATA_DEVICE_DEV) && ch->count > 1;
    if (!polled_read || multiple_count < 2)
        return code;
    stat_add(STAT_ATA_PIO_READ_MULTIPLE);
    log_debug("ata: lba %lu count %u goes to the disk as READ MULTIPLE, %u sectors per block", ch->lba, ch->count,
              multiple_count);
    return code == ATA_CMD_READ_SECTORS ? ATA_CMD_READ_MULTIPLE : ATA_CMD_READ_MULTIPLE_EXT;
}

/* A command that can change the multiple setting makes it unknown until it is seen to succeed:
 * SET MULTIPLE MODE, EXECUTE DEVICE DIAGNOSTIC and SET FEATURES (which may revert to power-on
 * defaults; V1 §6 for each), all on whichever device they select. */
void ata_pio_blocks_command(const struct ata_channel *ch, uint8_t code)
{
    if (code == ATA_CMD_SET_MULTIPLE_MODE && !(ch->device & ATA_DEVICE_DEV)) {
        requested_count = ch->sector_count.current;
        multiple_count = 0;
    } else if (code == ATA_CMD_SET_MULTIPLE_MODE || code == ATA_CMD_EXECUTE_DEVICE_DIAGNOSTIC ||
               code == ATA_CMD_SET_FEATURES) {
        multiple_count = 0;
    }
}

/* The guest saw its command end with `status`: a SET MULTIPLE MODE without error took effect. */
void ata_pio_blocks_completed(const struct ata_channel *ch, uint8_t status)
{
    if (ch->command_code == ATA_CMD_SET_MULTIPLE_MODE && requested_count && !(status & ATA_STATUS_ERR)) {
        multiple_count = requested_count;
        log_debug("ata: disk 0 now reads %u sectors per PIO block", multiple_count);
    }
    requested_count = 0;
}

/* A software reset may return the device to its power-on setting (V2 §11.2, software reset protocol). */
void ata_pio_blocks_reset(void)
{
    multiple_count = 0;
    requested_count = 0;
}
