/* The guest's power-off: a write of SLP_EN to PM1a_CNT (ACPI 6.4 §4.8.3.2.1; on the PIIX4,
 * PMBA + 4, PIIX4 datasheet §7.2). The VMM prints its statistics first, then lets it through.
 * The VMM powers off the same way when it must stop. */
#include "platform.h"

#define PM1_CNT_OFFSET 4
#define SLP_EN (1u << 13)
#define SLP_TYP_S5_QEMU (0u << 10) /* QEMU's DSDT: _S5 = 0 */

static uint16_t watched_port;

static uint32_t pm1_read(uint16_t port, unsigned size)
{
    stat_add(STAT_IO_ACPI);
    return port_read(port, size);
}

static void pm1_write(uint16_t port, unsigned size, uint32_t value)
{
    stat_add(STAT_IO_ACPI);
    if (port == watched_port && (value & SLP_EN)) {
        log_info("guest enters sleep state (PM1a_CNT %x)", value);
        if (options.stats_at_exit)
            stats_print();
    }
    port_write(port, size, value);
}

static const struct port_handler pm1_handler = { .read = pm1_read, .write = pm1_write };

void acpi_watch(uint16_t pm_base)
{
    if (watched_port)
        ioexit_unregister(watched_port, 2);
    watched_port = pm_base ? (uint16_t)(pm_base + PM1_CNT_OFFSET) : 0;
    if (watched_port)
        ioexit_register(watched_port, 2, &pm1_handler);
    log_debug("watching PM1a_CNT at %x", watched_port);
}

void acpi_power_off(void)
{
    uint16_t pm_base = pci_acpi_pm_base();
    if (pm_base)
        outw((uint16_t)(pm_base + PM1_CNT_OFFSET), SLP_TYP_S5_QEMU | SLP_EN);
}
