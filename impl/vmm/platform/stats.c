/* Exit statistics: how often each exit reason and each intercepted device was seen. */
#include "platform.h"

uint64_t stats[STAT_COUNT];

static const char *const stat_names[STAT_COUNT] = {
    [STAT_EXIT_IOIO] = "exit.ioio",
    [STAT_EXIT_NPF] = "exit.npf",
    [STAT_EXIT_VMMCALL] = "exit.vmmcall",
    [STAT_EXIT_DB] = "exit.db",
    [STAT_EXIT_SVM_INSTRUCTION] = "exit.svm_instruction",
    [STAT_EXIT_CPUID] = "exit.cpuid",
    [STAT_EXIT_MSR] = "exit.msr",
    [STAT_EXIT_SHUTDOWN] = "exit.shutdown",
    [STAT_EXIT_OTHER] = "exit.other",
    [STAT_IO_ATA_COMMAND_BLOCK] = "io.ata_command_block",
    [STAT_IO_ATA_CONTROL] = "io.ata_control",
    [STAT_IO_ATA_DATA] = "io.ata_data",
    [STAT_IO_BUSMASTER] = "io.busmaster",
    [STAT_IO_ATA_SECONDARY] = "io.ata_secondary",
    [STAT_IO_PCI_CONFIG] = "io.pci_config",
    [STAT_PCI_ADDRESS_RELEASED] = "pci.address_released",
    [STAT_IO_FWCFG] = "io.fwcfg",
    [STAT_IO_ACPI] = "io.acpi",
    [STAT_IO_STRING] = "io.string_instructions",
    [STAT_ATA_COMMANDS] = "ata.commands",
    [STAT_ATA_PIO_READ_MULTIPLE] = "ata.pio_read_multiple",
    [STAT_ATA_STATUS_SERVED] = "ata.status_served",
    [STAT_ATA_STATUS_SPINS] = "ata.status_spins",
    [STAT_DMA_STARTED] = "dma.started",
    [STAT_DMA_REFUSED] = "dma.refused",
    [STAT_FWCFG_DMA_REFUSED] = "fwcfg.dma_refused",
    [STAT_NPF_WRITE] = "npf.write",
};

/* One line per counter, "storvisor-stat NAME VALUE", easy to grep from a serial log. */
void stats_print(void)
{
    log_raw("storvisor-stats begin");
    for (unsigned i = 0; i < STAT_COUNT; i++)
        log_raw("storvisor-stat %s %lu", stat_names[i], stats[i]);
    log_raw("storvisor-stats end");
}
