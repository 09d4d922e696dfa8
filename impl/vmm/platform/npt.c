/* Nested paging (AMD APM vol 2 §15.25): guest-physical = host-physical for the low 64 GiB
 * (RAM and the PCI windows QEMU places above 4 GiB), except the VMM's window. There every page maps one read-only page of all ones, which is
 * what a read from a missing page returns on a PC bus; a write gets a nested page fault,
 * and the VMM lets that one instruction write into a sink page nobody reads. */
#include "platform.h"

#define PTE_PRESENT 0x1ull
#define PTE_WRITABLE 0x2ull
#define PTE_USER 0x4ull /* nested walks are user accesses (APM vol 2 §15.25.5) */
#define PTE_LARGE 0x80ull
#define PTE_GUEST (PTE_PRESENT | PTE_WRITABLE | PTE_USER)
#define WINDOW_PAGES (VMM_SIZE / PAGE_SIZE)
#define NPT_MAPPED_GIB 64 /* 2 MiB pages: one page directory per GiB */

static uint64_t npt_pml4[512] __attribute__((aligned(4096)));
static uint64_t npt_pdpt[512] __attribute__((aligned(4096)));
static uint64_t npt_pd[NPT_MAPPED_GIB][512] __attribute__((aligned(4096)));
static uint64_t npt_window_pt[WINDOW_PAGES] __attribute__((aligned(4096)));
static uint8_t npt_ones_page[4096] __attribute__((aligned(4096)));
static uint8_t npt_sink_page[4096] __attribute__((aligned(4096)));
static int64_t open_sink_index = -1;

_Static_assert(VMM_BASE % (2ull << 20) == 0 && VMM_SIZE % (2ull << 20) == 0,
               "the hidden window must be whole 2 MiB pages");

void npt_init(void)
{
    memset(npt_ones_page, 0xFF, sizeof npt_ones_page);
    npt_pml4[0] = (uintptr_t)npt_pdpt | PTE_GUEST;
    for (unsigned i = 0; i < NPT_MAPPED_GIB; i++) {
        npt_pdpt[i] = (uintptr_t)npt_pd[i] | PTE_GUEST;
        for (unsigned j = 0; j < 512; j++)
            npt_pd[i][j] = (((uint64_t)i << 30) | ((uint64_t)j << 21)) | PTE_GUEST | PTE_LARGE;
    }
    for (unsigned k = 0; k < WINDOW_PAGES; k++)
        npt_window_pt[k] = (uintptr_t)npt_ones_page | PTE_PRESENT | PTE_USER;
    for (uint64_t offset = 0; offset < VMM_SIZE; offset += 2ull << 20) {
        uint64_t gpa = VMM_BASE + offset;
        npt_pd[gpa >> 30][(gpa >> 21) & 511] = ((uintptr_t)&npt_window_pt[offset / PAGE_SIZE]) | PTE_GUEST;
    }
}

uint64_t npt_root(void)
{
    return (uintptr_t)npt_pml4;
}

void npt_open_sink(uint64_t gpa)
{
    open_sink_index = (int64_t)((gpa - VMM_BASE) / PAGE_SIZE);
    npt_window_pt[open_sink_index] = (uintptr_t)npt_sink_page | PTE_GUEST;
}

void npt_close_sink(void)
{
    if (open_sink_index < 0)
        return;
    npt_window_pt[open_sink_index] = (uintptr_t)npt_ones_page | PTE_PRESENT | PTE_USER;
    open_sink_index = -1;
}
