/* The memory map the guest sees: the firmware's E820 map with the VMM's window and the
 * int 15h stub marked reserved, so no guest ever takes them for RAM (ACPI 6.4 §15). */
#include "platform.h"

struct e820_entry e820_guest[E820_MAX_ENTRIES];
unsigned e820_guest_count;

static void append(uint64_t base, uint64_t length, uint32_t type)
{
    if (length == 0)
        return;
    if (e820_guest_count == E820_MAX_ENTRIES)
        vmm_stop("the firmware's memory map has more than %u entries", E820_MAX_ENTRIES);
    e820_guest[e820_guest_count++] = (struct e820_entry){ base, length, type };
}

/* Marks [base, base+length) reserved wherever the map has it, splitting entries around it. */
static void carve(uint64_t base, uint64_t length)
{
    struct e820_entry old[E820_MAX_ENTRIES];
    unsigned count = e820_guest_count;
    memcpy(old, e820_guest, sizeof old);
    e820_guest_count = 0;
    uint64_t end = base + length;
    for (unsigned i = 0; i < count; i++) {
        uint64_t e_base = old[i].base, e_end = old[i].base + old[i].length;
        if (e_end <= base || e_base >= end || old[i].type != E820_RAM) {
            append(e_base, old[i].length, old[i].type);
            continue;
        }
        uint64_t cut_base = e_base > base ? e_base : base;
        uint64_t cut_end = e_end < end ? e_end : end;
        append(e_base, cut_base - e_base, E820_RAM);
        append(cut_base, cut_end - cut_base, E820_RESERVED);
        append(cut_end, e_end - cut_end, E820_RAM);
    }
}

void e820_init(const struct multiboot_info *mbi, uint64_t stub_base)
{
    if (!(mbi->flags & MULTIBOOT_INFO_MMAP))
        vmm_stop("the boot loader passed no memory map (Multiboot flag 6)");
    bool window_is_ram = false;
    uint32_t offset = 0;
    while (offset < mbi->mmap_length) {
        const struct multiboot_mmap_entry *e = (const void *)(uintptr_t)(mbi->mmap_addr + offset);
        append(e->base, e->length, e->type);
        if (e->type == E820_RAM && e->base <= VMM_BASE && e->base + e->length >= VMM_BASE + VMM_SIZE)
            window_is_ram = true;
        offset += e->size + sizeof e->size;
    }
    if (!window_is_ram)
        vmm_stop("memory %lx-%lx is not RAM: the machine needs more than %lu MiB of RAM", VMM_BASE,
                 VMM_BASE + VMM_SIZE, (VMM_BASE + VMM_SIZE) >> 20);
    carve(VMM_BASE, VMM_SIZE);
    carve(stub_base, 1024);
    for (unsigned i = 0; i < e820_guest_count; i++)
        log_debug("e820 %016lx-%016lx type %u", e820_guest[i].base,
                  e820_guest[i].base + e820_guest[i].length, e820_guest[i].type);
}

uint64_t e820_ram_below_vmm(void)
{
    for (unsigned i = 0; i < e820_guest_count; i++) {
        const struct e820_entry *e = &e820_guest[i];
        if (e->type == E820_RAM && e->base <= 0x100000 && e->base + e->length > 0x100000)
            return e->base + e->length - 0x100000;
    }
    return 0;
}
