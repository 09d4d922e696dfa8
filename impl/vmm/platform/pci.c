/* PCI configuration mechanism #1 (PCI Local Bus spec 3.0 §3.2.2.3.2): the VMM watches the
 * guest's 0xCF8/0xCFC accesses so it can follow the IDE controller's bus-master BAR (BAR4)
 * and the PIIX4 power-management base (PMBA, function 3 register 0x40) when the guest moves
 * them. Every access is still forwarded: the guest owns PCI. The data ports exit only while
 * the address register selects a watched register. After a run of accesses to other
 * functions (a bus scan) 0xCF8 is released too, while no DMA can be pending; the ATA manager
 * calls pci_catch_up before any command reaches a disk and on every bus-master access, which
 * watches 0xCF8 again and follows whatever the guest moved meanwhile. A DMA needs both a
 * command and a bus-master start, so no DMA starts from a register block the VMM has not
 * caught up with (dma_confined). */
#include "platform.h"
#include "../ata/ata.h"

#define PCI_ADDRESS 0xCF8
#define PCI_DATA 0xCFC
#define PCI_ENABLE (1u << 31)
#define PCI_CLASS_REVISION 0x08
#define PCI_BAR4 0x20
#define PIIX4_PMBA 0x40
#define PIIX4_PM_PORTS 64 /* the power-management I/O block (PIIX4 datasheet §7.1) */
#define CLASS_IDE 0x0101
#define VENDOR_INTEL 0x8086
#define DEVICE_PIIX4_ACPI 0x7113
#define RELEASE_AFTER_FOREIGN_ACCESSES 32

struct pci_function {
    bool present;
    unsigned bus, device, function;
};

static struct pci_function ide, pm;
static uint32_t ide_identity;  /* vendor and device ID of the IDE function, to check config reads by */
static uint32_t guest_address; /* the guest's last 0xCF8 value */
static uint16_t pm_base_followed;
static unsigned foreign_run;   /* 0xCF8 writes in a row that select neither watched function */
static bool address_released;    /* 0xCF8 released: the guest's accesses go unseen until catch-up */

static uint32_t config_address(unsigned bus, unsigned device, unsigned function, unsigned offset)
{
    return PCI_ENABLE | bus << 16 | device << 11 | function << 8 | (offset & 0xFC);
}

uint32_t pci_config_read(unsigned bus, unsigned device, unsigned function, unsigned offset)
{
    uint32_t saved = inl(PCI_ADDRESS);
    outl(PCI_ADDRESS, config_address(bus, device, function, offset));
    uint32_t value = inl(PCI_DATA);
    outl(PCI_ADDRESS, saved);
    return value;
}

static void pci_config_write(const struct pci_function *f, unsigned offset, uint32_t value)
{
    uint32_t saved = inl(PCI_ADDRESS);
    outl(PCI_ADDRESS, config_address(f->bus, f->device, f->function, offset));
    outl(PCI_DATA, value);
    outl(PCI_ADDRESS, saved);
}

static uint16_t busmaster_base(void)
{
    uint32_t bar4 = pci_config_read(ide.bus, ide.device, ide.function, PCI_BAR4);
    return (bar4 & 1) ? (uint16_t)(bar4 & 0xFFF0) : 0;
}

uint16_t pci_acpi_pm_base(void)
{
    if (!pm.present) {
        for (unsigned dev = 0; dev < 32 && !pm.present; dev++) {
            for (unsigned fn = 0; fn < 8; fn++) {
                uint32_t id = pci_config_read(0, dev, fn, 0);
                if ((id & 0xFFFF) == VENDOR_INTEL && id >> 16 == DEVICE_PIIX4_ACPI) {
                    pm = (struct pci_function){ true, 0, dev, fn };
                    break;
                }
            }
        }
    }
    if (!pm.present)
        return 0;
    return (uint16_t)(pci_config_read(pm.bus, pm.device, pm.function, PIIX4_PMBA) & 0xFFC0);
}

static bool targets(const struct pci_function *f, uint32_t address, unsigned offset, unsigned size, unsigned reg)
{
    uint32_t own = config_address(f->bus, f->device, f->function, 0);
    return f->present && (address & ~0xFFu) == own && (address & 0xFC) + offset < reg + 4 &&
           (address & 0xFC) + offset + size > reg;
}

static uint32_t pci_port_read(uint16_t port, unsigned size)
{
    stat_add(STAT_IO_PCI_CONFIG);
    if (port == PCI_ADDRESS && size == 4)
        return guest_address;
    return port_read(port, size);
}

static bool is_watched(uint32_t address)
{
    return targets(&ide, address, 0, 4, PCI_BAR4) || targets(&pm, address, 0, 4, PIIX4_PMBA);
}

/* The register after a data-port write of `size` bytes at `offset` into its dword. */
static uint32_t merged_value(uint32_t current, unsigned offset, unsigned size, uint32_t value)
{
    uint32_t mask = size == 4 ? 0xFFFFFFFFu : ((1u << (8 * size)) - 1);
    unsigned shift = 8 * (offset & 3);
    return (current & ~(mask << shift)) | ((value & mask) << shift);
}

/* A BAR write that would lay a moved register block over ports another intercept owns is not
 * passed on: overlapping I/O ranges leave it to the chipset which device answers, and the VMM
 * could then check a DMA start at one device while another device executes it. */
static bool write_would_overlap(const struct pci_function *f, unsigned reg, unsigned offset, unsigned size,
                                uint32_t value, uint32_t base_mask, unsigned length, uint16_t current_base)
{
    uint32_t merged = merged_value(pci_config_read(f->bus, f->device, f->function, reg), offset, size, value);
    uint16_t base = (uint16_t)(merged & base_mask);
    if (base == 0 || base == current_base || !ioexit_overlaps(base, length, current_base))
        return false;
    log_warn("guest moves PCI 00:%02x.%u register %x over intercepted ports at %x: write not passed on",
             f->device, f->function, reg, base);
    return true;
}

static bool selects(const struct pci_function *f, uint32_t address)
{
    return f->present && (address & ~0xFFu) == config_address(f->bus, f->device, f->function, 0);
}

/* A long run of accesses to other functions is a bus scan (Linux reads the class of every
 * slot of all 256 buses at boot): release 0xCF8 until the next point where a DMA could start. */
static void maybe_release_address(void)
{
    if (++foreign_run < RELEASE_AFTER_FOREIGN_ACCESSES || ata_dma_may_be_pending())
        return;
    address_released = true;
    iopm_intercept(PCI_ADDRESS, 4, false);
    iopm_intercept(PCI_DATA, 4, false);
    stat_add(STAT_PCI_ADDRESS_RELEASED);
    log_trace("pci: 0xCF8 released after %u accesses to other functions", foreign_run);
}

static void pci_port_write(uint16_t port, unsigned size, uint32_t value)
{
    stat_add(STAT_IO_PCI_CONFIG);
    if (port == PCI_ADDRESS && size == 4) {
        guest_address = value;
        iopm_intercept(PCI_DATA, 4, (value & PCI_ENABLE) && is_watched(value));
        if (selects(&ide, value) || selects(&pm, value))
            foreign_run = 0;
        else
            maybe_release_address();
    }
    if (port >= PCI_DATA && (guest_address & PCI_ENABLE)) {
        unsigned offset = port - PCI_DATA;
        if (targets(&ide, guest_address, offset, size, PCI_BAR4) &&
            write_would_overlap(&ide, PCI_BAR4, offset, size, value, 0xFFF0, ATA_BUSMASTER_PORTS,
                                ata_primary.busmaster_base))
            return;
        if (targets(&pm, guest_address, offset, size, PIIX4_PMBA) &&
            write_would_overlap(&pm, PIIX4_PMBA, offset, size, value, 0xFFC0, PIIX4_PM_PORTS, pci_acpi_pm_base()))
            return;
    }
    port_write(port, size, value);
    if (port < PCI_DATA || !(guest_address & PCI_ENABLE))
        return;
    unsigned offset = port - PCI_DATA;
    if (targets(&ide, guest_address, offset, size, PCI_BAR4)) {
        uint16_t base = busmaster_base();
        log_debug("guest wrote IDE BAR4: bus-master registers now at %x", base);
        ata_move_busmaster(base);
    } else if (targets(&pm, guest_address, offset, size, PIIX4_PMBA)) {
        pm_base_followed = pci_acpi_pm_base();
        acpi_watch(pm_base_followed);
    }
}

static const struct port_handler pci_handler = { .read = pci_port_read, .write = pci_port_write };

/* A register block the guest moved while 0xCF8 was released: follow it, or put it back where
 * it was when it now overlaps ports another intercept owns (as a watched write is refused). */
static uint16_t follow_moved_block(const struct pci_function *f, unsigned reg, uint16_t base_mask, unsigned length,
                                   uint16_t followed)
{
    uint32_t value = pci_config_read(f->bus, f->device, f->function, reg);
    uint16_t base = (uint16_t)(value & base_mask);
    if (base == followed)
        return followed;
    if (base && ioexit_overlaps(base, length, followed)) {
        log_warn("guest moved PCI 00:%02x.%u register %x over intercepted ports at %x: moved back to %x", f->device,
                 f->function, reg, base, followed);
        pci_config_write(f, reg, (value & ~(uint32_t)base_mask) | followed);
        return followed;
    }
    log_debug("pci: 00:%02x.%u register %x moved to %x while 0xCF8 was released", f->device, f->function, reg, base);
    return base;
}

/* Before a command reaches a disk and on every bus-master access: if 0xCF8 was released,
 * watch it again and catch up with what the guest may have changed meanwhile. */
void pci_catch_up(void)
{
    if (!address_released)
        return;
    address_released = false;
    foreign_run = 0;
    iopm_intercept(PCI_ADDRESS, 4, true);
    guest_address = inl(PCI_ADDRESS);
    iopm_intercept(PCI_DATA, 4, (guest_address & PCI_ENABLE) && is_watched(guest_address));
    /* Registers laid over the configuration ports would make every read below a lie. */
    if (pci_config_read(ide.bus, ide.device, ide.function, 0) != ide_identity)
        vmm_stop("PCI configuration space no longer answers at 0xCF8/0xCFC: a device's registers cover them");
    ata_move_busmaster(follow_moved_block(&ide, PCI_BAR4, 0xFFF0, ATA_BUSMASTER_PORTS, ata_primary.busmaster_base));
    ata_bmdma_catch_up();
    if (pm.present) {
        uint16_t base = follow_moved_block(&pm, PIIX4_PMBA, 0xFFC0, PIIX4_PM_PORTS, pm_base_followed);
        if (base != pm_base_followed) {
            pm_base_followed = base;
            acpi_watch(base);
        }
    }
}

void pci_init(void)
{
    guest_address = inl(PCI_ADDRESS);
    for (unsigned dev = 0; dev < 32 && !ide.present; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t id = pci_config_read(0, dev, fn, 0);
            if ((id & 0xFFFF) == 0xFFFF)
                continue;
            if (pci_config_read(0, dev, fn, PCI_CLASS_REVISION) >> 16 == CLASS_IDE) {
                ide = (struct pci_function){ true, 0, dev, fn };
                break;
            }
        }
    }
    if (!ide.present)
        vmm_stop("no IDE controller (PCI class 01:01) on bus 0");
    ide_identity = pci_config_read(ide.bus, ide.device, ide.function, 0);
    uint16_t bm = busmaster_base();
    log_info("IDE controller at 00:%02x.%u, bus-master registers at %x", ide.device, ide.function, bm);
    ata_init(bm);
    uint16_t pm_base = pci_acpi_pm_base();
    pm_base_followed = pm_base;
    if (pm_base)
        acpi_watch(pm_base);
    else
        log_warn("no PIIX4 power management function: statistics will not print at power-off");
    ioexit_register(PCI_ADDRESS, 8, &pci_handler);
    iopm_intercept(PCI_DATA, 4, (guest_address & PCI_ENABLE) && is_watched(guest_address));
}
