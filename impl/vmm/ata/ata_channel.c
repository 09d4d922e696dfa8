/* The primary channel's command block (0x1F0-0x1F7) and device control (0x3F6) in
 * passthrough: every access is forwarded to the physical device, and the manager follows
 * the protocol (ATA/ATAPI-7 V2 §11) so later modes can answer the guest themselves. */
#include "ata.h"
#include "../platform/platform.h"

/* Status polls served by the VMM wait out BSY on the alternate status register, which
 * has no side effects (ATA/ATAPI-7 V1 §7.3), for at most this many reads. */
#define STATUS_SPIN_LIMIT 5000
#define STATUS_POLL_GAP 200

struct ata_channel ata_primary;

const struct ata_command *ata_lookup_command(uint8_t code)
{
    for (unsigned i = 0; i < ATA_COMMAND_COUNT; i++) {
        if (ata_commands[i].code == code)
            return &ata_commands[i];
    }
    return 0;
}

static void write_fifo(struct ata_fifo_register *r, uint8_t value)
{
    r->previous = r->current;
    r->current = value;
}

/* LBA and sector count as the command will use them (ATA/ATAPI-7 V1 §7: LBA and Sector Count registers, with HOB for 48-bit commands). */
static void latch_address(struct ata_channel *ch)
{
    ch->lba = 0;
    ch->count = 0;
    if (!ch->command || ch->command->addressing == ATA_ADDRESSING_NONE)
        return;
    if (ch->command->addressing == ATA_ADDRESSING_LBA28) {
        ch->lba = (uint64_t)(ch->device & 0x0F) << 24 | (uint64_t)ch->lba_high.current << 16 |
                  (uint64_t)ch->lba_mid.current << 8 | ch->lba_low.current;
        ch->count = ch->sector_count.current ? ch->sector_count.current : 256;
        return;
    }
    ch->lba = (uint64_t)ch->lba_high.previous << 40 | (uint64_t)ch->lba_mid.previous << 32 |
              (uint64_t)ch->lba_low.previous << 24 | (uint64_t)ch->lba_high.current << 16 |
              (uint64_t)ch->lba_mid.current << 8 | ch->lba_low.current;
    uint32_t count = (uint32_t)ch->sector_count.previous << 8 | ch->sector_count.current;
    ch->count = count ? count : 65536;
}

/* The host writes the command register: the device goes BSY (ATA/ATAPI-7 V2 §11, HI4). */
static void ata_process_command(struct ata_channel *ch, uint8_t code)
{
    ch->command_code = code;
    ch->command = ata_lookup_command(code);
    latch_address(ch);
    ch->phase = ATA_PHASE_COMMAND_ACCEPTED;
    ata_pio_blocks_command(ch, code);
    stat_add(STAT_ATA_COMMANDS);
    log_debug("ata: command %02x %s lba %lu count %u", code, ch->command ? ch->command->name : "(not in table)",
              ch->lba, ch->count);
}

static bool command_is(const struct ata_channel *ch, enum ata_protocol protocol)
{
    return ch->command && ch->command->protocol == protocol;
}

static bool command_writes(const struct ata_channel *ch)
{
    return ch->command && ch->command->writes;
}

/* BSY while a command runs: fetching before a data block, storing after one (V2 §11). */
static enum ata_phase busy_phase(const struct ata_channel *ch)
{
    if (command_is(ch, ATA_PROTOCOL_PIO_DATA_IN))
        return ATA_PHASE_PIO_IN_FETCHING;
    if (command_is(ch, ATA_PROTOCOL_PIO_DATA_OUT))
        return ch->phase == ATA_PHASE_PIO_OUT_TRANSFER ? ATA_PHASE_PIO_OUT_STORING : ch->phase;
    if (command_is(ch, ATA_PROTOCOL_DMA))
        return command_writes(ch) ? (ch->phase == ATA_PHASE_DMA_TRANSFER ? ATA_PHASE_DMA_STORING : ch->phase)
                                  : ATA_PHASE_DMA_FETCHING;
    return ATA_PHASE_NON_DATA_EXECUTING;
}

/* DRQ: the data phase of the command's protocol (V2 §11). */
static enum ata_phase transfer_phase(const struct ata_channel *ch)
{
    if (command_is(ch, ATA_PROTOCOL_DMA))
        return ATA_PHASE_DMA_TRANSFER;
    return command_writes(ch) ? ATA_PHASE_PIO_OUT_TRANSFER : ATA_PHASE_PIO_IN_TRANSFER;
}

/* What a status value the guest reads says about the phase: BSY, then DRQ, then done. */
static void follow_status(struct ata_channel *ch, uint8_t status)
{
    if (ch->phase == ATA_PHASE_IDLE || ch->phase == ATA_PHASE_RESET_ASSERTED)
        return;
    if (status & ATA_STATUS_BSY) {
        if (ch->phase != ATA_PHASE_RESET_EXECUTING)
            ch->phase = busy_phase(ch);
    } else if (status & ATA_STATUS_DRQ) {
        ch->phase = transfer_phase(ch);
    } else {
        ch->phase = ATA_PHASE_IDLE;
        ata_pio_blocks_completed(ch, status);
    }
}

/* A status poll while a PIO or non-data command runs: wait for BSY to clear here instead of
 * letting the guest exit once per poll (the busy-poll storm of a software-emulated disk).
 * Not for DMA, where BSY lasts until the guest starts the bus master, nor while SRST is held. */
static void wait_not_busy(struct ata_channel *ch)
{
    if (!options.status_served || ch->phase == ATA_PHASE_IDLE || ch->phase == ATA_PHASE_RESET_ASSERTED ||
        command_is(ch, ATA_PROTOCOL_DMA))
        return;
    stat_add(STAT_ATA_STATUS_SERVED);
    unsigned spins = 0;
    for (; spins < STATUS_SPIN_LIMIT && (inb(ATA_CONTROL_PORT) & ATA_STATUS_BSY); spins++) {
        stat_add(STAT_ATA_STATUS_SPINS);
        for (unsigned i = 0; i < STATUS_POLL_GAP; i++)
            __asm__ volatile("pause");
    }
    if (spins == STATUS_SPIN_LIMIT)
        log_debug("ata: still BSY after %u polls (command %02x, phase %u)", spins, ch->command_code, ch->phase);
}

static uint32_t command_block_read(uint16_t port, unsigned size)
{
    struct ata_channel *ch = &ata_primary;
    unsigned reg = port - ATA_COMMAND_BLOCK;
    if (reg == ATA_REG_DATA) {
        stat_add(STAT_IO_ATA_DATA);
        return port_read(port, size);
    }
    stat_add(STAT_IO_ATA_COMMAND_BLOCK);
    if (reg == ATA_REG_STATUS_COMMAND) {
        wait_not_busy(ch);
        uint8_t status = inb(port);
        follow_status(ch, status);
        return status;
    }
    return port_read(port, size);
}

static void command_block_write(uint16_t port, unsigned size, uint32_t value)
{
    struct ata_channel *ch = &ata_primary;
    unsigned reg = port - ATA_COMMAND_BLOCK;
    uint8_t byte = (uint8_t)value;
    if (port + size > ATA_COMMAND_BLOCK + ATA_REG_STATUS_COMMAND)
        pci_catch_up(); /* a command may start a DMA: only from bus masters the VMM has caught up with */
    if (reg == ATA_REG_STATUS_COMMAND && size == 1) {
        stat_add(STAT_IO_ATA_COMMAND_BLOCK);
        ata_process_command(ch, byte);
        outb(port, ata_pio_blocks_forwarded_code(ch, byte));
        return;
    }
    port_write(port, size, value);
    if (reg == ATA_REG_DATA) {
        stat_add(STAT_IO_ATA_DATA);
        return;
    }
    stat_add(STAT_IO_ATA_COMMAND_BLOCK);
    switch (reg) {
    case ATA_REG_ERROR_FEATURES: write_fifo(&ch->features, byte); break;
    case ATA_REG_COUNT: write_fifo(&ch->sector_count, byte); break;
    case ATA_REG_LBA_LOW: write_fifo(&ch->lba_low, byte); break;
    case ATA_REG_LBA_MID: write_fifo(&ch->lba_mid, byte); break;
    case ATA_REG_LBA_HIGH: write_fifo(&ch->lba_high, byte); break;
    case ATA_REG_DEVICE: ch->device = byte; break;
    case ATA_REG_STATUS_COMMAND: ata_process_command(ch, byte); break;
    }
}

static uint32_t control_read(uint16_t port, unsigned size)
{
    struct ata_channel *ch = &ata_primary;
    stat_add(STAT_IO_ATA_CONTROL);
    wait_not_busy(ch);
    uint32_t status = port_read(port, size);
    follow_status(ch, (uint8_t)status);
    return status;
}

/* Device control: setting SRST resets the device, clearing it lets the reset run (ATA/ATAPI-7 V1 §7.9, V2 §11.2). */
static void control_write(uint16_t port, unsigned size, uint32_t value)
{
    struct ata_channel *ch = &ata_primary;
    stat_add(STAT_IO_ATA_CONTROL);
    ch->control = (uint8_t)value;
    if (value & ATA_CONTROL_SRST) {
        ch->phase = ATA_PHASE_RESET_ASSERTED;
        ch->command = 0;
        ata_pio_blocks_reset();
    } else if (ch->phase == ATA_PHASE_RESET_ASSERTED) {
        ch->phase = ATA_PHASE_RESET_EXECUTING;
    }
    port_write(port, size, value);
}

/* Catching up with PCI configuration may find that the guest moved the bus masters away from
 * the port it touches: then the access goes where the guest aimed it, as on the bare machine. */
static bool still_busmaster(uint16_t port)
{
    pci_catch_up();
    uint16_t base = ata_primary.busmaster_base;
    return base && port >= base && port < base + ATA_BUSMASTER_PORTS;
}

static uint32_t busmaster_read(uint16_t port, unsigned size)
{
    stat_add(STAT_IO_BUSMASTER);
    if (!still_busmaster(port))
        return port_read(port, size);
    return ata_bmdma_read((uint16_t)(port - ata_primary.busmaster_base), size);
}

static void busmaster_write(uint16_t port, unsigned size, uint32_t value)
{
    stat_add(STAT_IO_BUSMASTER);
    if (!still_busmaster(port)) {
        port_write(port, size, value);
        return;
    }
    ata_bmdma_write((uint16_t)(port - ata_primary.busmaster_base), size, value);
}

/* REP INSW/OUTSW on the data register, straight between the device and checked guest memory;
 * string I/O on the other registers goes element by element through the tracking above. */
static bool data_read_block(uint16_t port, unsigned size, void *dst, uint32_t count)
{
    if (port != ATA_COMMAND_BLOCK + ATA_REG_DATA)
        return false;
    stats[STAT_IO_ATA_DATA] += count;
    if (size == 4)
        __asm__ volatile("rep insl" : "+D"(dst), "+c"(count) : "d"(port) : "memory");
    else if (size == 2)
        __asm__ volatile("rep insw" : "+D"(dst), "+c"(count) : "d"(port) : "memory");
    else
        __asm__ volatile("rep insb" : "+D"(dst), "+c"(count) : "d"(port) : "memory");
    return true;
}

static bool data_write_block(uint16_t port, unsigned size, const void *src, uint32_t count)
{
    if (port != ATA_COMMAND_BLOCK + ATA_REG_DATA)
        return false;
    stats[STAT_IO_ATA_DATA] += count;
    if (size == 4)
        __asm__ volatile("rep outsl" : "+S"(src), "+c"(count) : "d"(port) : "memory");
    else if (size == 2)
        __asm__ volatile("rep outsw" : "+S"(src), "+c"(count) : "d"(port) : "memory");
    else
        __asm__ volatile("rep outsb" : "+S"(src), "+c"(count) : "d"(port) : "memory");
    return true;
}

static const struct port_handler command_block_handler = {
    command_block_read, command_block_write, data_read_block, data_write_block,
};
static const struct port_handler control_handler = { .read = control_read, .write = control_write };
static const struct port_handler busmaster_handler = { .read = busmaster_read, .write = busmaster_write };

bool ata_dma_may_be_pending(void)
{
    const struct ata_channel *ch = &ata_primary;
    bool primary = ch->phase != ATA_PHASE_IDLE && ch->phase != ATA_PHASE_RESET_ASSERTED &&
                   ch->phase != ATA_PHASE_RESET_EXECUTING && (!ch->command || ch->command->protocol == ATA_PROTOCOL_DMA);
    return primary || ata_secondary_may_dma() || ata_bmdma_active();
}

void ata_move_busmaster(uint16_t busmaster_base)
{
    struct ata_channel *ch = &ata_primary;
    if (busmaster_base == ch->busmaster_base)
        return;
    if (ch->busmaster_base)
        ioexit_unregister(ch->busmaster_base, ATA_BUSMASTER_PORTS);
    ch->busmaster_base = busmaster_base;
    if (busmaster_base)
        ioexit_register(busmaster_base, ATA_BUSMASTER_PORTS, &busmaster_handler);
    log_debug("ata: bus-master registers at %x", busmaster_base);
}

void ata_init(uint16_t busmaster_base)
{
    ata_primary = (struct ata_channel){ .phase = ATA_PHASE_IDLE };
    ata_bmdma_init(busmaster_base);
    ioexit_register(ATA_COMMAND_BLOCK, ATA_COMMAND_BLOCK_PORTS, &command_block_handler);
    /* Passthrough needs neither the data words nor Error/Features to track command, LBA, count
     * and phase, and PIO data reaches guest memory through nested paging like any CPU store. The
     * IOPM bit is per port and a word access checks the bits of both ports it covers (AMD APM
     * vol 2 §15.10.1), so Data alone would still exit on 0x1F1: release both. A 32-bit Data
     * access also covers Sector Count and LBA Low, so it still exits and goes to the handler. */
    if (!options.pio_intercepted)
        iopm_intercept(ATA_COMMAND_BLOCK + ATA_REG_DATA, 2, false);
    ioexit_register(ATA_CONTROL_PORT, 1, &control_handler);
    ata_move_busmaster(busmaster_base);
    ata_secondary_init();
    ata_pio_blocks_init();
}
