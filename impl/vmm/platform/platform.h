/* Platform glue: boot, serial log, command line, SVM, nested paging, guest memory,
 * the I/O-instruction decoder, PCI configuration interception and the int 15h hook.
 * Everything that touches the machine lives behind this header. */
#ifndef STORVISOR_PLATFORM_H
#define STORVISOR_PLATFORM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- memory layout (linker.ld) ---- */

#define VMM_BASE 0x08000000ul /* the window nested paging hides from the guest */
#define VMM_SIZE 0x00400000ul
#define PAGE_SIZE 4096ul

extern char vmm_image_start[], vmm_image_end[];

static inline bool range_touches_vmm(uint64_t start, uint64_t length)
{
    return length != 0 && start < VMM_BASE + VMM_SIZE && start + length > VMM_BASE;
}

/* ---- tiny C library (lib.c) ---- */

void *memset(void *dst, int value, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
int vformat(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- port I/O ---- */

static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

/* A port access of 1, 2 or 4 bytes on the physical machine. */
uint32_t port_read(uint16_t port, unsigned size);
void port_write(uint16_t port, unsigned size, uint32_t value);

/* ---- serial log (log.c) ---- */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

extern enum log_level log_threshold;
void log_message(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_raw(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define log_error(...) log_message(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_message(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_message(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) log_message(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_trace(...) do { if (log_threshold >= LOG_TRACE) log_message(LOG_TRACE, __VA_ARGS__); } while (0)

/* Stop the machine: print why, power it off through ACPI, halt if that fails. */
__attribute__((noreturn)) void vmm_stop(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- command line (cmdline.c) ---- */

struct vmm_options {
    enum log_level log_level;
    bool status_served; /* answer ATA status polls in the VMM instead of exiting per poll */
    bool stats_at_exit;
    bool pio_intercepted; /* ATA Data and Error/Features ports exit too (default: the guest reaches them directly) */
    bool pio_blocks; /* polled READ SECTORS reaches the disk as READ MULTIPLE (default on) */
};

extern struct vmm_options options;

/* Parses the Multiboot command line into `options`; returns false and fills `error` on a bad one. */
bool cmdline_parse(const char *cmdline, struct vmm_options *out, char *error, size_t error_size);

/* ---- Multiboot v1 (boot.S hands over the information structure) ---- */

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_INFO_CMDLINE (1u << 2)
#define MULTIBOOT_INFO_MMAP (1u << 6)

struct multiboot_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
} __attribute__((packed));

struct multiboot_mmap_entry {
    uint32_t size;
    uint64_t base, length;
    uint32_t type;
} __attribute__((packed));

/* ---- E820 map as the guest sees it (e820.c) ---- */

#define E820_MAX_ENTRIES 32
#define E820_RAM 1
#define E820_RESERVED 2

struct e820_entry {
    uint64_t base, length;
    uint32_t type;
};

/* Builds the guest's map from the firmware's, with the VMM window and the stub's page reserved. */
void e820_init(const struct multiboot_info *mbi, uint64_t stub_base);
/* The RAM size the guest believes it has above 1 MiB, for int 15h AX=E801. */
uint64_t e820_ram_below_vmm(void);
extern struct e820_entry e820_guest[E820_MAX_ENTRIES];
extern unsigned e820_guest_count;

/* ---- SVM (svm.c): VMCB offsets from AMD APM vol 2, appendix B ---- */

#define VMCB_INTERCEPT_EXCEPTIONS 0x008
#define VMCB_INTERCEPT_MISC1 0x00C
#define VMCB_INTERCEPT_MISC2 0x010
#define VMCB_IOPM_BASE 0x040
#define VMCB_MSRPM_BASE 0x048
#define VMCB_GUEST_ASID 0x058
#define VMCB_TLB_CONTROL 0x05C
#define VMCB_INTERRUPT_SHADOW 0x068
#define VMCB_EXITCODE 0x070
#define VMCB_EXITINFO1 0x078
#define VMCB_EXITINFO2 0x080
#define VMCB_EXITINTINFO 0x088
#define VMCB_NP_ENABLE 0x090
#define VMCB_EVENTINJ 0x0A8
#define VMCB_NCR3 0x0B0
#define VMCB_ES 0x400
#define VMCB_CS 0x410
#define VMCB_SS 0x420
#define VMCB_DS 0x430
#define VMCB_FS 0x440
#define VMCB_GS 0x450
#define VMCB_GDTR 0x460
#define VMCB_LDTR 0x470
#define VMCB_IDTR 0x480
#define VMCB_TR 0x490
#define VMCB_CPL 0x4CB
#define VMCB_EFER 0x4D0
#define VMCB_CR4 0x548
#define VMCB_CR3 0x550
#define VMCB_CR0 0x558
#define VMCB_DR7 0x560
#define VMCB_DR6 0x568
#define VMCB_RFLAGS 0x570
#define VMCB_RIP 0x578
#define VMCB_RSP 0x5D8
#define VMCB_RAX 0x5F8
#define VMCB_CR2 0x640
#define VMCB_G_PAT 0x668

/* A segment register in the VMCB save area: selector, attributes, limit, base. */
struct vmcb_segment {
    uint16_t selector, attrib;
    uint32_t limit;
    uint64_t base;
} __attribute__((packed));

#define SEG_ATTRIB_L (1u << 9)  /* 64-bit code segment */
#define SEG_ATTRIB_DB (1u << 10) /* 32-bit default operand and address size */

extern uint8_t vmcb[4096];
#define VMCB_U8(off) (*(volatile uint8_t *)(vmcb + (off)))
#define VMCB_U32(off) (*(volatile uint32_t *)(vmcb + (off)))
#define VMCB_U64(off) (*(volatile uint64_t *)(vmcb + (off)))
#define VMCB_SEG(off) ((volatile struct vmcb_segment *)(vmcb + (off)))

/* Guest general registers not kept in the VMCB, in the order boot.S saves them. */
struct guest_regs {
    uint64_t rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15;
};
extern struct guest_regs guest_regs;

void svm_run_guest(uint64_t vmcb_pa, struct guest_regs *regs);
void svm_init(void);
void svm_setup_guest(uint16_t cs, uint16_t ip);
__attribute__((noreturn)) void svm_loop(void);
/* Register number (x86 encoding order rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi) of the guest. */
uint64_t *guest_gpr(unsigned number);
void svm_inject_exception(unsigned vector, bool has_error, uint32_t error);

/* ---- I/O port intercepts (iopm.c) ---- */

void iopm_init(void);
void iopm_intercept(uint16_t first_port, unsigned count, bool on);
extern uint8_t iopm[3 * 4096];

/* ---- SVM kept from the guest: CPUID, EFER and the SVM MSRs (hide.c) ---- */

extern uint8_t msrpm[2 * 4096];
void hide_init(void);
void hide_handle_cpuid(void);
void hide_handle_msr(bool is_write);

/* ---- nested paging (npt.c) ---- */

void npt_init(void);
uint64_t npt_root(void);
/* A write to the hidden window: point that page at a writable sink for one guest instruction. */
void npt_open_sink(uint64_t gpa);
void npt_close_sink(void);

/* ---- guest memory (guestmem.c) ---- */

enum guest_access { GUEST_READ, GUEST_WRITE };

/* Translates a guest-linear address through the guest's own paging; false means a #PF was injected. */
bool guest_linear_to_physical(uint64_t linear, enum guest_access access, uint64_t *physical);
/* Reads or writes guest-physical memory as the guest would see it: the VMM window reads as all ones, writes to it vanish. */
void guest_physical_read(uint64_t gpa, void *dst, size_t n);
void guest_physical_write(uint64_t gpa, const void *src, size_t n);
/* The same through guest-linear addresses; false means a #PF was injected and nothing was done. */
bool guest_linear_read(uint64_t linear, void *dst, size_t n);
bool guest_linear_write(uint64_t linear, const void *src, size_t n);

/* ---- I/O exits (ioexit.c, iodecode.c) ---- */

/* One decoded I/O instruction (AMD APM vol 3: IN, OUT, INS, OUTS). */
struct io_instruction {
    uint16_t port;
    uint8_t size;           /* bytes per element: 1, 2 or 4 */
    bool is_in, is_string, has_rep;
    uint8_t address_size;   /* 2, 4 or 8: width of (E/R)SI, (E/R)DI and (E/R)CX */
    unsigned segment;       /* VMCB offset of the segment string sources use */
    uint64_t next_rip;
};

/* Decodes the prefixes of a string I/O instruction at the guest's CS:RIP; false on a malformed one. */
bool io_decode_string(struct io_instruction *io);
void ioexit_handle(uint64_t exitinfo1, uint64_t exitinfo2);

/* A handler for a range of intercepted ports: returns the value of an IN, consumes an OUT. */
struct port_handler {
    uint32_t (*read)(uint16_t port, unsigned size);
    void (*write)(uint16_t port, unsigned size, uint32_t value);
    /* Optional: `count` elements of `size` bytes at once, for REP INS/OUTS into guest memory the
     * VMM has checked (contiguous, outside the window); NULL, or false returned before touching
     * anything, means element by element. */
    bool (*read_block)(uint16_t port, unsigned size, void *dst, uint32_t count);
    bool (*write_block)(uint16_t port, unsigned size, const void *src, uint32_t count);
};
void ioexit_register(uint16_t first_port, unsigned count, const struct port_handler *handler);
void ioexit_unregister(uint16_t first_port, unsigned count);
/* Whether [first_port, first_port+count) meets an intercepted range other than the one starting at `ignored_first`. */
bool ioexit_overlaps(uint16_t first_port, unsigned count, uint16_t ignored_first);

/* ---- PCI configuration (pci.c) ---- */

uint32_t pci_config_read(unsigned bus, unsigned device, unsigned function, unsigned offset);
void pci_init(void);
uint16_t pci_acpi_pm_base(void);
/* Watch 0xCF8 again if a bus scan released it, and follow BAR4 and PMBA if they moved. */
void pci_catch_up(void);

/* ---- fw_cfg DMA guard (fwcfg.c) and ACPI power-off watch (acpi.c) ---- */

void fwcfg_init(void);
void acpi_watch(uint16_t pm_base);
void acpi_power_off(void);

/* ---- int 15h hook and guest start (bios.c) ---- */

void bios_prepare_guest(const struct multiboot_info *mbi);
void bios_handle_vmmcall(void);

/* ---- exit statistics (stats.c) ---- */

enum stat_counter {
    STAT_EXIT_IOIO, STAT_EXIT_NPF, STAT_EXIT_VMMCALL, STAT_EXIT_DB, STAT_EXIT_SVM_INSTRUCTION, STAT_EXIT_CPUID, STAT_EXIT_MSR,
    STAT_EXIT_SHUTDOWN, STAT_EXIT_OTHER,
    STAT_IO_ATA_COMMAND_BLOCK, STAT_IO_ATA_CONTROL, STAT_IO_ATA_DATA, STAT_IO_BUSMASTER, STAT_IO_ATA_SECONDARY,
    STAT_IO_PCI_CONFIG, STAT_PCI_ADDRESS_RELEASED, STAT_IO_FWCFG, STAT_IO_ACPI, STAT_IO_STRING,
    STAT_ATA_COMMANDS, STAT_ATA_PIO_READ_MULTIPLE, STAT_ATA_STATUS_SERVED, STAT_ATA_STATUS_SPINS,
    STAT_DMA_STARTED, STAT_DMA_REFUSED, STAT_FWCFG_DMA_REFUSED, STAT_NPF_WRITE,
    STAT_COUNT
};
extern uint64_t stats[STAT_COUNT];
static inline void stat_add(enum stat_counter counter) { stats[counter]++; }
void stats_print(void);

#endif
