/* Serial console on COM1 (16550 UART), shared with the guest: the VMM only writes to it and
 * keeps the line settings SeaBIOS programmed, so guest output stays readable. */
#include "platform.h"

#define COM1 0x3F8
#define UART_LSR_THRE 0x20 /* transmit holding register empty (16550 datasheet, LSR bit 5) */

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };

static void serial_put(char c)
{
    for (unsigned spins = 0; spins < 100000 && !(inb(COM1 + 5) & UART_LSR_THRE); spins++)
        ;
    outb(COM1, (uint8_t)c);
}

static void serial_write(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            serial_put('\r');
        serial_put(*s);
    }
}

static void log_vprint(const char *prefix, const char *fmt, va_list ap)
{
    char line[256];
    vformat(line, sizeof line, fmt, ap);
    if (prefix)
        serial_write(prefix);
    serial_write(line);
    serial_write("\n");
}

void log_message(enum log_level level, const char *fmt, ...)
{
    if (level > log_threshold)
        return;
    char prefix[32] = "storvisor: ";
    size_t n = strlen(prefix);
    for (const char *p = level_names[level]; *p; p++)
        prefix[n++] = *p;
    prefix[n++] = ':';
    prefix[n++] = ' ';
    prefix[n] = 0;
    va_list ap;
    va_start(ap, fmt);
    log_vprint(prefix, fmt, ap);
    va_end(ap);
}

void log_raw(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprint(0, fmt, ap);
    va_end(ap);
}

void vmm_stop(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprint("storvisor: stop: ", fmt, ap);
    va_end(ap);
    acpi_power_off();
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* Called from boot.S for any CPU exception taken by the VMM itself: always a bug. */
void vmm_exception(const uint64_t *frame)
{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    vmm_stop("VMM exception %lu error %lx at rip %lx (cr2 %lx)", frame[0], frame[1], frame[2], cr2);
}
