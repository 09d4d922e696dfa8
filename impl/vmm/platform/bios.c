/* The guest's start: the VMM takes 1 KiB from the top of base memory for real-mode code,
 * hooks int 15h there so E820 and E801 never show the VMM, and starts the guest at the
 * code that loads the MBR. The BIOS stays the guest's BIOS; the VMM only answers memory queries. */
#include "platform.h"

#define BDA_BASE_MEMORY_KB 0x413 /* BIOS data area: base memory size in KiB */
#define IVT_INT15 (0x15 * 4)
#define SMAP 0x534D4150u /* 'SMAP', the E820 signature */
#define RFLAGS_CF 1ull

extern const char guest_stub_start[], guest_stub_boot[], guest_stub_int15[], guest_stub_end[];

static uint16_t stub_segment;
static uint16_t original_int15_segment, original_int15_offset;

void bios_prepare_guest(const struct multiboot_info *mbi)
{
    uint16_t base_kb, vector[2];
    guest_physical_read(BDA_BASE_MEMORY_KB, &base_kb, sizeof base_kb);
    guest_physical_read(IVT_INT15, vector, sizeof vector);
    base_kb -= 1;
    uint32_t stub_base = (uint32_t)base_kb * 1024;
    stub_segment = (uint16_t)(stub_base >> 4);
    guest_physical_write(stub_base, guest_stub_start, (size_t)(guest_stub_end - guest_stub_start));
    guest_physical_write(BDA_BASE_MEMORY_KB, &base_kb, sizeof base_kb);
    original_int15_offset = vector[0];
    original_int15_segment = vector[1];
    vector[0] = (uint16_t)(guest_stub_int15 - guest_stub_start);
    vector[1] = stub_segment;
    guest_physical_write(IVT_INT15, vector, sizeof vector);
    e820_init(mbi, stub_base);
    log_info("guest starts at %04x:%04x; int 15h hooked (BIOS handler %04x:%04x); base memory %u KiB",
             stub_segment, (unsigned)(guest_stub_boot - guest_stub_start), original_int15_segment,
             original_int15_offset, base_kb);
    svm_setup_guest(stub_segment, (uint16_t)(guest_stub_boot - guest_stub_start));
}

static void set_carry(bool on)
{
    uint64_t flags = VMCB_U64(VMCB_RFLAGS);
    VMCB_U64(VMCB_RFLAGS) = on ? flags | RFLAGS_CF : flags & ~RFLAGS_CF;
}

/* int 15h AX=E820: one map entry per call, EBX is the continuation value (ACPI 6.4 §15.1). */
static void answer_e820(void)
{
    uint32_t index = (uint32_t)guest_regs.rbx;
    uint32_t size = (uint32_t)guest_regs.rcx;
    if ((uint32_t)guest_regs.rdx != SMAP || index >= e820_guest_count || size < 20) {
        set_carry(true);
        return;
    }
    const struct e820_entry *e = &e820_guest[index];
    uint8_t entry[24];
    memcpy(entry, &e->base, 8);
    memcpy(entry + 8, &e->length, 8);
    memcpy(entry + 16, &e->type, 4);
    uint32_t extended = 1; /* ACPI 3.0 extended attributes: entry enabled */
    memcpy(entry + 20, &extended, 4);
    unsigned written = size >= 24 ? 24 : 20;
    uint64_t es_di = VMCB_SEG(VMCB_ES)->base + (guest_regs.rdi & 0xFFFF);
    if (!guest_linear_write(es_di, entry, written))
        return;
    VMCB_U64(VMCB_RAX) = SMAP;
    guest_regs.rcx = written;
    guest_regs.rbx = index + 1 < e820_guest_count ? index + 1 : 0;
    set_carry(false);
}

/* int 15h AX=E801: KiB between 1 and 16 MiB, 64 KiB blocks above 16 MiB, up to the VMM. */
static void answer_e801(void)
{
    uint64_t above_1m = e820_ram_below_vmm();
    uint64_t low_kb = above_1m >> 10 > 0x3C00 ? 0x3C00 : above_1m >> 10;
    uint64_t high_blocks = above_1m > (15ull << 20) ? (above_1m - (15ull << 20)) >> 16 : 0;
    VMCB_U64(VMCB_RAX) = low_kb;
    guest_regs.rcx = low_kb;
    guest_regs.rbx = high_blocks;
    guest_regs.rdx = high_blocks;
    set_carry(false);
}

void bios_handle_vmmcall(void)
{
    volatile struct vmcb_segment *cs = VMCB_SEG(VMCB_CS);
    bool from_stub = !(VMCB_U64(VMCB_CR0) & 1) && cs->selector == stub_segment &&
                     VMCB_U64(VMCB_RIP) == (uint64_t)(guest_stub_int15 - guest_stub_start);
    if (!from_stub) {
        /* VMMCALL anywhere else is an undefined opcode to a guest that knows no VMM (APM vol 3, VMMCALL). */
        svm_inject_exception(6, false, 0);
        return;
    }
    uint16_t function = (uint16_t)VMCB_U64(VMCB_RAX);
    if ((uint32_t)VMCB_U64(VMCB_RAX) == 0xE820) {
        answer_e820();
    } else if (function == 0xE801) {
        answer_e801();
    } else {
        /* Chain: the stack still holds the guest's int frame, so the BIOS handler's iret returns to it. */
        cs->selector = original_int15_segment;
        cs->base = (uint64_t)original_int15_segment << 4;
        VMCB_U64(VMCB_RIP) = original_int15_offset;
        return;
    }
    VMCB_U64(VMCB_RIP) += 3; /* VMMCALL is 0F 01 D9; software SVM provides no next RIP */
}
