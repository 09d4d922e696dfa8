/* Guest memory as the VMM reaches it when it emulates an instruction: guest-linear addresses
 * go through the guest's own page tables (AMD APM vol 2 §5), guest-physical addresses are
 * host-physical (nested paging is an identity map) except the VMM's window, which behaves as
 * missing memory. Known deviation: the walk does not set accessed and dirty bits. */
#include "platform.h"

#define CR0_PG (1ull << 31)
#define CR0_WP (1ull << 16)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define EFER_LMA (1ull << 10)
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull
#define PF_PRESENT 0x1u /* #PF error code bits (APM vol 2 §8.4.2) */
#define PF_WRITE 0x2u
#define PF_USER 0x4u
#define ADDRESS_MASK 0x000FFFFFFFFFF000ull
#define GUEST_PHYSICAL_LIMIT (1ull << 32) /* nested paging maps the low 4 GiB only */

static bool is_missing(uint64_t gpa)
{
    return gpa >= GUEST_PHYSICAL_LIMIT || range_touches_vmm(gpa, 1);
}

void guest_physical_read(uint64_t gpa, void *dst, size_t n)
{
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = is_missing(gpa + i) ? 0xFF : *(volatile uint8_t *)(uintptr_t)(gpa + i);
}

void guest_physical_write(uint64_t gpa, const void *src, size_t n)
{
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++) {
        if (!is_missing(gpa + i))
            *(volatile uint8_t *)(uintptr_t)(gpa + i) = s[i];
    }
}

static uint64_t read_entry(uint64_t gpa, bool wide)
{
    uint64_t entry = 0;
    guest_physical_read(gpa, &entry, wide ? 8 : 4);
    return entry;
}

static bool page_fault(uint64_t linear, uint32_t error)
{
    VMCB_U64(VMCB_CR2) = linear;
    svm_inject_exception(14, true, error);
    return false;
}

bool guest_linear_to_physical(uint64_t linear, enum guest_access access, uint64_t *physical)
{
    uint64_t cr0 = VMCB_U64(VMCB_CR0), cr4 = VMCB_U64(VMCB_CR4), cr3 = VMCB_U64(VMCB_CR3);
    if (!(cr0 & CR0_PG)) {
        *physical = linear & 0xFFFFFFFFull;
        return true;
    }
    bool user = VMCB_U8(VMCB_CPL) == 3;
    uint32_t error = (access == GUEST_WRITE ? PF_WRITE : 0) | (user ? PF_USER : 0);
    bool check_write = access == GUEST_WRITE && (user || (cr0 & CR0_WP));
    uint64_t table, entry = 0;
    unsigned level, shift;
    bool wide = true;
    if (VMCB_U64(VMCB_EFER) & EFER_LMA) {
        table = cr3 & ADDRESS_MASK, level = 4, shift = 39;
    } else if (cr4 & CR4_PAE) {
        entry = read_entry((cr3 & 0xFFFFFFE0ull) + ((linear >> 30) & 3) * 8, true);
        if (!(entry & PTE_P))
            return page_fault(linear, error);
        table = entry & ADDRESS_MASK, level = 2, shift = 21;
    } else {
        table = cr3 & 0xFFFFF000ull, level = 2, shift = 22, wide = false;
        linear &= 0xFFFFFFFFull;
    }
    for (; level > 0; level--, shift -= wide ? 9 : 10) {
        unsigned index = (unsigned)((linear >> shift) & (wide ? 511 : 1023));
        entry = read_entry(table + index * (wide ? 8 : 4), wide);
        if (!(entry & PTE_P))
            return page_fault(linear, error);
        if ((user && !(entry & PTE_US)) || (check_write && !(entry & PTE_RW)))
            return page_fault(linear, error | PF_PRESENT);
        bool large = level > 1 && (entry & PTE_PS) && (wide || (cr4 & CR4_PSE));
        if (large) {
            uint64_t page_mask = (1ull << shift) - 1;
            uint64_t base = wide ? entry & ADDRESS_MASK & ~page_mask
                                 : ((entry & 0xFFC00000ull) | ((entry & 0x1FE000ull) << 19));
            *physical = base | (linear & page_mask);
            return true;
        }
        table = entry & (wide ? ADDRESS_MASK : 0xFFFFF000ull);
    }
    *physical = table | (linear & 0xFFF);
    return true;
}

/* Translates every page of the range first, so a fault changes nothing. */
static bool translate_range(uint64_t linear, size_t n, enum guest_access access, uint64_t *first, uint64_t *second)
{
    if (!guest_linear_to_physical(linear, access, first))
        return false;
    uint64_t last = linear + n - 1;
    *second = *first + (last - linear);
    if ((last & ~0xFFFull) != (linear & ~0xFFFull))
        return guest_linear_to_physical(last & ~0xFFFull, access, second);
    return true;
}

bool guest_linear_read(uint64_t linear, void *dst, size_t n)
{
    uint64_t first, second;
    if (n == 0)
        return true;
    if (!translate_range(linear, n, GUEST_READ, &first, &second))
        return false;
    size_t head = PAGE_SIZE - (linear & 0xFFF);
    if (head >= n) {
        guest_physical_read(first, dst, n);
    } else {
        guest_physical_read(first, dst, head);
        guest_physical_read(second, (uint8_t *)dst + head, n - head);
    }
    return true;
}

bool guest_linear_write(uint64_t linear, const void *src, size_t n)
{
    uint64_t first, second;
    if (n == 0)
        return true;
    if (!translate_range(linear, n, GUEST_WRITE, &first, &second))
        return false;
    size_t head = PAGE_SIZE - (linear & 0xFFF);
    if (head >= n) {
        guest_physical_write(first, src, n);
    } else {
        guest_physical_write(first, src, head);
        guest_physical_write(second, (const uint8_t *)src + head, n - head);
    }
    return true;
}
