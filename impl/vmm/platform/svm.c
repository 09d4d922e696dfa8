/* Secure Virtual Machine set-up and the exit loop (AMD APM vol 2 chapter 15). The guest runs
 * with every device passed through; the VMM sees only the I/O ports in the IOPM, nested page
 * faults on its own window, VMMCALL from the int 15h stub, and the exits a VMM must take. */
#include "platform.h"

#define MSR_EFER 0xC0000080
#define MSR_VM_HSAVE_PA 0xC0010117
#define EFER_SVME (1u << 12)
#define CPUID_SVM (1u << 2)      /* CPUID 8000_0001h ECX (APM vol 3, appendix E) */
#define CPUID_NPT (1u << 0)      /* CPUID 8000_000Ah EDX */

#define INTERCEPT_INIT (1u << 3) /* misc vector 1 (APM vol 2, appendix B, table B-1) */
#define INTERCEPT_CPUID (1u << 18)
#define INTERCEPT_IOIO (1u << 27)
#define INTERCEPT_MSR (1u << 28)
#define INTERCEPT_SHUTDOWN (1u << 31)
#define INTERCEPT_VMRUN (1u << 0) /* misc vector 2; VMRUN must be intercepted (§15.5.1) */
#define INTERCEPT_VMMCALL (1u << 1)
/* VMLOAD, VMSAVE, STGI, CLGI, SKINIT: with EFER.SVME set they would run natively in the guest,
 * and VMSAVE/VMLOAD take a host-physical address (§15.5.2): a write into the VMM's window. */
#define INTERCEPT_SVM_INSTRUCTIONS (0x7Cu) /* bits 2-6 */
#define INTERCEPT_INVLPGA (1u << 26)       /* misc vector 1 */
#define EXCEPTION_DB 1

#define EXIT_DB 0x41
#define EXIT_INIT 0x63
#define EXIT_CPUID 0x72
#define EXIT_MSR 0x7C
#define EXIT_IOIO 0x7B
#define EXIT_SHUTDOWN 0x7F
#define EXIT_INVLPGA 0x7A
#define EXIT_VMRUN 0x80
#define EXIT_VMLOAD 0x82
#define EXIT_VMSAVE 0x83
#define EXIT_STGI 0x84
#define EXIT_CLGI 0x85
#define EXIT_SKINIT 0x86
#define EXIT_VMMCALL 0x81
#define EXIT_NPF 0x400
#define EXIT_INVALID ((uint64_t)-1)

#define TLB_FLUSH_ALL 1
#define EVENTINJ_VALID (1u << 31)
#define EVENTINJ_ERROR_VALID (1u << 11)
#define EVENTINJ_TYPE_EXCEPTION (3u << 8)
#define RFLAGS_TF (1ull << 8)
#define NPF_WRITE (1ull << 1)

uint8_t vmcb[4096] __attribute__((aligned(4096)));
static uint8_t host_save_area[4096] __attribute__((aligned(4096)));
struct guest_regs guest_regs;
static bool sink_single_step, guest_had_tf;

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

void svm_init(void)
{
    uint32_t a, b, c, d;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a < 0x8000000A)
        vmm_stop("this CPU has no extended CPUID leaf 8000_000Ah: no SVM");
    cpuid(0x80000001, &a, &b, &c, &d);
    if (!(c & CPUID_SVM))
        vmm_stop("this CPU has no AMD SVM (CPUID 8000_0001h ECX bit 2)");
    cpuid(0x8000000A, &a, &b, &c, &d);
    if (!(d & CPUID_NPT))
        vmm_stop("this CPU has no nested paging (CPUID 8000_000Ah EDX bit 0)");
    log_info("SVM revision %u, %u ASIDs, nested paging", a & 0xFF, b);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
    wrmsr(MSR_VM_HSAVE_PA, (uintptr_t)host_save_area);
}

static void set_segment(unsigned offset, uint16_t selector, uint16_t attrib, uint32_t limit, uint64_t base)
{
    volatile struct vmcb_segment *s = VMCB_SEG(offset);
    s->selector = selector;
    s->attrib = attrib;
    s->limit = limit;
    s->base = base;
}

/* The state a BIOS leaves when it jumps to a boot sector: real mode, flat 64 KiB segments. */
void svm_setup_guest(uint16_t cs, uint16_t ip)
{
    memset(vmcb, 0, sizeof vmcb);
    VMCB_U32(VMCB_INTERCEPT_MISC1) =
        INTERCEPT_INIT | INTERCEPT_CPUID | INTERCEPT_INVLPGA | INTERCEPT_IOIO | INTERCEPT_MSR | INTERCEPT_SHUTDOWN;
    VMCB_U32(VMCB_INTERCEPT_MISC2) = INTERCEPT_VMRUN | INTERCEPT_VMMCALL | INTERCEPT_SVM_INSTRUCTIONS;
    VMCB_U64(VMCB_IOPM_BASE) = (uintptr_t)iopm;
    VMCB_U64(VMCB_MSRPM_BASE) = (uintptr_t)msrpm;
    VMCB_U32(VMCB_GUEST_ASID) = 1;
    VMCB_U8(VMCB_TLB_CONTROL) = TLB_FLUSH_ALL;
    VMCB_U64(VMCB_NP_ENABLE) = 1;
    VMCB_U64(VMCB_NCR3) = npt_root();

    set_segment(VMCB_CS, cs, 0x009B, 0xFFFF, (uint64_t)cs << 4);
    set_segment(VMCB_DS, 0, 0x0093, 0xFFFF, 0);
    set_segment(VMCB_ES, 0, 0x0093, 0xFFFF, 0);
    set_segment(VMCB_SS, 0, 0x0093, 0xFFFF, 0);
    set_segment(VMCB_FS, 0, 0x0093, 0xFFFF, 0);
    set_segment(VMCB_GS, 0, 0x0093, 0xFFFF, 0);
    set_segment(VMCB_GDTR, 0, 0, 0xFFFF, 0);
    set_segment(VMCB_IDTR, 0, 0, 0x03FF, 0);
    set_segment(VMCB_LDTR, 0, 0x0082, 0xFFFF, 0);
    set_segment(VMCB_TR, 0, 0x008B, 0xFFFF, 0);
    VMCB_U8(VMCB_CPL) = 0;
    VMCB_U64(VMCB_EFER) = EFER_SVME; /* VMRUN refuses a guest EFER without SVME (§15.5.1) */
    VMCB_U64(VMCB_CR0) = 0x00000010; /* ET: real mode, paging off */
    VMCB_U64(VMCB_CR4) = 0;
    VMCB_U64(VMCB_CR3) = 0;
    VMCB_U64(VMCB_DR7) = 0x400;
    VMCB_U64(VMCB_DR6) = 0xFFFF0FF0;
    VMCB_U64(VMCB_RFLAGS) = 0x2;
    VMCB_U64(VMCB_RIP) = ip;
    VMCB_U64(VMCB_RSP) = 0x7C00;
    VMCB_U64(VMCB_RAX) = 0;
    VMCB_U64(VMCB_G_PAT) = 0x0007040600070406ull; /* the power-on PAT */
    memset(&guest_regs, 0, sizeof guest_regs);
    guest_regs.rdx = 0x80; /* boot drive, as a BIOS passes it */
}

uint64_t *guest_gpr(unsigned number)
{
    static uint64_t *const table[8] = {
        0, &guest_regs.rcx, &guest_regs.rdx, &guest_regs.rbx, 0, &guest_regs.rbp, &guest_regs.rsi, &guest_regs.rdi,
    };
    if (number == 0)
        return (uint64_t *)(vmcb + VMCB_RAX);
    if (number == 4)
        return (uint64_t *)(vmcb + VMCB_RSP);
    return table[number & 7];
}

void svm_inject_exception(unsigned vector, bool has_error, uint32_t error)
{
    uint64_t event = EVENTINJ_VALID | EVENTINJ_TYPE_EXCEPTION | vector;
    if (has_error)
        event |= EVENTINJ_ERROR_VALID | ((uint64_t)error << 32);
    VMCB_U64(VMCB_EVENTINJ) = event;
}

/* A write to the hidden window: let exactly this instruction write into the sink page. */
static void handle_npf(uint64_t exitinfo1, uint64_t gpa)
{
    if (!range_touches_vmm(gpa, 1))
        vmm_stop("guest access to %lx, beyond the physical memory nested paging maps (info %lx, rip %lx)", gpa,
                 exitinfo1, VMCB_U64(VMCB_RIP));
    if (!(exitinfo1 & NPF_WRITE))
        vmm_stop("read fault on the VMM window at %lx although it maps all ones", gpa);
    stat_add(STAT_NPF_WRITE);
    log_debug("guest write to VMM memory at %lx (rip %lx) discarded", gpa, VMCB_U64(VMCB_RIP));
    npt_open_sink(gpa);
    guest_had_tf = VMCB_U64(VMCB_RFLAGS) & RFLAGS_TF;
    VMCB_U64(VMCB_RFLAGS) |= RFLAGS_TF;
    VMCB_U32(VMCB_INTERCEPT_EXCEPTIONS) |= 1u << EXCEPTION_DB;
    VMCB_U8(VMCB_TLB_CONTROL) = TLB_FLUSH_ALL;
    sink_single_step = true;
}

/* The single step after a sink write: take the sink away again. */
static void handle_db(void)
{
    if (!sink_single_step)
        vmm_stop("unexpected #DB intercept at rip %lx", VMCB_U64(VMCB_RIP));
    npt_close_sink();
    sink_single_step = false;
    VMCB_U32(VMCB_INTERCEPT_EXCEPTIONS) &= ~(1u << EXCEPTION_DB);
    VMCB_U8(VMCB_TLB_CONTROL) = TLB_FLUSH_ALL;
    if (guest_had_tf)
        svm_inject_exception(1, false, 0);
    else
        VMCB_U64(VMCB_RFLAGS) &= ~RFLAGS_TF;
    VMCB_U64(VMCB_DR6) &= ~(1ull << 14); /* BS: the step was the VMM's, not the guest's */
}

/* VMRUN loads the guest's CR0 and CR4 and #VMEXIT reloads the host's (APM vol 2 §15.5.1, §15.6);
 * QEMU's software SVM flushes its whole TLB and jump cache whenever that changes CR0.WP or
 * CR4.PGE/PSE, several microseconds per exit. The host takes the guest's values of these bits:
 * every VMM page is writable and non-global and long mode ignores PSE, so nothing else changes. */
#define CR0_WP (1ull << 16)
#define CR4_PSE (1ull << 4)
#define CR4_PGE (1ull << 7)

static void host_paging_bits_follow_guest(void)
{
    uint64_t cr0, cr4;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    uint64_t want_cr0 = (cr0 & ~CR0_WP) | (VMCB_U64(VMCB_CR0) & CR0_WP);
    uint64_t want_cr4 = (cr4 & ~(CR4_PSE | CR4_PGE)) | (VMCB_U64(VMCB_CR4) & (CR4_PSE | CR4_PGE));
    if (want_cr0 != cr0)
        __asm__ volatile("mov %0, %%cr0" : : "r"(want_cr0) : "memory");
    if (want_cr4 != cr4)
        __asm__ volatile("mov %0, %%cr4" : : "r"(want_cr4) : "memory");
}

void svm_loop(void)
{
    for (;;) {
        host_paging_bits_follow_guest();
        svm_run_guest((uintptr_t)vmcb, &guest_regs);
        VMCB_U8(VMCB_TLB_CONTROL) = 0;
        uint64_t code = VMCB_U64(VMCB_EXITCODE);
        uint64_t info1 = VMCB_U64(VMCB_EXITINFO1), info2 = VMCB_U64(VMCB_EXITINFO2);
        VMCB_U64(VMCB_EVENTINJ) = 0;
        if (VMCB_U64(VMCB_EXITINTINFO) & EVENTINJ_VALID) {
            /* An event was being delivered when the exit came: deliver it again (§15.7.2). */
            VMCB_U64(VMCB_EVENTINJ) = VMCB_U64(VMCB_EXITINTINFO);
        }
        switch (code) {
        case EXIT_IOIO:
            stat_add(STAT_EXIT_IOIO);
            ioexit_handle(info1, info2);
            break;
        case EXIT_NPF:
            stat_add(STAT_EXIT_NPF);
            handle_npf(info1, info2);
            break;
        case EXIT_VMMCALL:
            stat_add(STAT_EXIT_VMMCALL);
            bios_handle_vmmcall();
            break;
        case EXIT_CPUID:
            stat_add(STAT_EXIT_CPUID);
            hide_handle_cpuid();
            break;
        case EXIT_MSR:
            stat_add(STAT_EXIT_MSR);
            hide_handle_msr(info1 & 1);
            break;
        case EXIT_DB:
            stat_add(STAT_EXIT_DB);
            handle_db();
            break;
        case EXIT_VMRUN:
        case EXIT_VMLOAD:
        case EXIT_VMSAVE:
        case EXIT_STGI:
        case EXIT_CLGI:
        case EXIT_SKINIT:
        case EXIT_INVLPGA:
            /* The guest sees no SVM it can use: every SVM instruction is an invalid opcode to it. */
            stat_add(STAT_EXIT_SVM_INSTRUCTION);
            log_debug("guest executed an SVM instruction (exit %lx) at rip %lx: #UD", code, VMCB_U64(VMCB_RIP));
            svm_inject_exception(6, false, 0);
            break;
        case EXIT_INIT:
            /* An INIT taken in guest mode would reset the CPU out of the VMM's control (§15.13.3). */
            stats_print();
            vmm_stop("the guest sent INIT to this CPU at rip %lx", VMCB_U64(VMCB_RIP));
        case EXIT_SHUTDOWN:
            stat_add(STAT_EXIT_SHUTDOWN);
            stats_print();
            vmm_stop("the guest shut down (triple fault) at rip %lx", VMCB_U64(VMCB_RIP));
        case EXIT_INVALID:
            vmm_stop("VMRUN refused the guest state (VMEXIT_INVALID)");
        default:
            stat_add(STAT_EXIT_OTHER);
            vmm_stop("unexpected #VMEXIT %lx (info %lx %lx) at rip %lx", code, info1, info2, VMCB_U64(VMCB_RIP));
        }
    }
}
