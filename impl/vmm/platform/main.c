/* vmm_main: from the Multiboot hand-over to the first VMRUN. */
#include "platform.h"
#include "../ata/ata.h"

void vmm_main(uint32_t magic, uint32_t info_address);

void vmm_main(uint32_t magic, uint32_t info_address)
{
    const struct multiboot_info *mbi = (const void *)(uintptr_t)info_address;
    log_info("storvisor VMM at %p-%p (window %lx-%lx)", vmm_image_start, vmm_image_end, VMM_BASE,
             VMM_BASE + VMM_SIZE);
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        vmm_stop("not started by a Multiboot boot loader (magic %x)", magic);
    const char *cmdline = (mbi->flags & MULTIBOOT_INFO_CMDLINE) ? (const char *)(uintptr_t)mbi->cmdline : "";
    char error[160];
    if (!cmdline_parse(cmdline, &options, error, sizeof error)) {
        log_error("command line: %s", error);
        vmm_stop("bad command line");
    }
    log_threshold = options.log_level;
    log_info("command line '%s': log=%u status=%s stats=%s pio=%s pio_blocks=%s", cmdline, options.log_level,
             options.status_served ? "served" : "forwarded", options.stats_at_exit ? "on" : "off",
             options.pio_intercepted ? "intercepted" : "direct", options.pio_blocks ? "multiple" : "single");
    svm_init();
    hide_init();
    npt_init();
    pci_init();
    fwcfg_init();
    bios_prepare_guest(mbi);
    log_info("entering the guest");
    svm_loop();
}
