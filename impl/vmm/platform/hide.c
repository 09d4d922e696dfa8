/* Keeping SVM to the VMM. The guest's CPUID shows no SVM (AMD APM vol 3, CPUID 8000_0001h
 * ECX bit 2 and leaf 8000_000Ah); its MSRs, and the SMM ones beside them, are closed to it
 * (APM vol 2 §15.30): a guest that could write
 * VM_HSAVE_PA would choose where the CPU reloads the host's state from at the next #VMEXIT
 * (APM vol 2 §15.30.4), and EFER.SVME must stay set for VMRUN to accept the guest (§15.5.1),
 * though the guest reads it clear.
 * RDMSR, WRMSR and CPUID are two bytes after any prefixes; software SVM gives no next RIP. */
#include "platform.h"

#define MSR_EFER 0xC0000080u
#define MSR_SVM_FIRST 0xC0010112u /* SMM_ADDR, SMM_MASK, VM_CR, IGNNE, SMM_CTL, VM_HSAVE_PA, SVM_KEY */
#define MSR_SVM_LAST 0xC0010118u
#define EFER_SVME (1ull << 12)
#define EFER_LMA (1ull << 10)
#define CPUID_SVM (1u << 2)
#define MAX_INSTRUCTION_LENGTH 15

uint8_t msrpm[2 * 4096] __attribute__((aligned(4096)));

/* The permission bits of one MSR: two per MSR, read then write, in three 2 KiB ranges (§15.11). */
static void msrpm_intercept(uint32_t msr, bool read, bool write)
{
    uint32_t base = msr < 0x2000 ? 0 : msr - 0xC0000000u < 0x2000 ? 0x800 : 0x1000;
    uint32_t index = (msr & 0x1FFF) * 2;
    uint8_t *byte = &msrpm[base + index / 8];
    if (read)
        *byte |= (uint8_t)(1u << (index % 8));
    if (write)
        *byte |= (uint8_t)(2u << (index % 8));
}

void hide_init(void)
{
    msrpm_intercept(MSR_EFER, true, true);
    for (uint32_t msr = MSR_SVM_FIRST; msr <= MSR_SVM_LAST; msr++)
        msrpm_intercept(msr, true, true);
}

/* Steps over a two-byte 0F xx instruction and whatever prefixes precede it. */
static void skip_two_byte_instruction(void)
{
    volatile struct vmcb_segment *cs = VMCB_SEG(VMCB_CS);
    uint64_t rip = VMCB_U64(VMCB_RIP);
    bool wide = (cs->attrib & (SEG_ATTRIB_DB | SEG_ATTRIB_L)) != 0;
    for (unsigned i = 0; i < MAX_INSTRUCTION_LENGTH; i++) {
        uint8_t byte;
        uint64_t offset = wide ? rip + i : (rip + i) & 0xFFFF;
        if (!guest_linear_read(cs->base + offset, &byte, 1))
            return;
        if (byte == 0x0F) {
            VMCB_U64(VMCB_RIP) = rip + i + 2;
            return;
        }
    }
    svm_inject_exception(13, true, 0);
}

void hide_handle_cpuid(void)
{
    uint32_t leaf = (uint32_t)VMCB_U64(VMCB_RAX), subleaf = (uint32_t)guest_regs.rcx;
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(subleaf));
    if (leaf == 0x80000001)
        c &= ~CPUID_SVM;
    if (leaf == 0x8000000A)
        a = b = c = d = 0;
    VMCB_U64(VMCB_RAX) = a;
    guest_regs.rbx = b;
    guest_regs.rcx = c;
    guest_regs.rdx = d;
    skip_two_byte_instruction();
}

void hide_handle_msr(bool is_write)
{
    uint32_t msr = (uint32_t)guest_regs.rcx;
    uint64_t value = ((guest_regs.rdx & 0xFFFFFFFFull) << 32) | (VMCB_U64(VMCB_RAX) & 0xFFFFFFFFull);
    if (msr == MSR_EFER && is_write) {
        if (!(value & EFER_SVME))
            log_debug("guest cleared EFER.SVME; kept set so VMRUN still accepts the guest");
        uint64_t efer = VMCB_U64(VMCB_EFER);
        VMCB_U64(VMCB_EFER) = (value & ~EFER_LMA) | (efer & EFER_LMA) | EFER_SVME;
        skip_two_byte_instruction();
        return;
    }
    if (msr == MSR_EFER) {
        /* Reads show SVME clear, as on a CPU without SVM; the VMCB keeps it set. */
        uint64_t efer = VMCB_U64(VMCB_EFER) & ~EFER_SVME;
        VMCB_U64(VMCB_RAX) = efer & 0xFFFFFFFFull;
        guest_regs.rdx = efer >> 32;
        skip_two_byte_instruction();
        return;
    }
    /* The SVM MSRs of a CPU without SVM: #GP, as RDMSR and WRMSR of an absent MSR raise (APM vol 3). */
    log_debug("guest %s MSR %x: #GP", is_write ? "wrote" : "read", msr);
    svm_inject_exception(13, true, 0);
}
