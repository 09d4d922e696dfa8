/* #VMEXIT(IOIO): find the handler that owns the port, perform IN/OUT or emulate INS/OUTS
 * element by element, then step the guest past the instruction (EXITINFO2 holds the next
 * RIP, AMD APM vol 2 §15.10.2). A page fault on the guest's buffer stops a REP string
 * where the CPU would, with RCX, RSI and RDI counted so far, and the instruction restarts. */
#include "platform.h"

#define IOIO_IN (1u << 0)
#define IOIO_STRING (1u << 2)
#define IOIO_REP (1u << 3)
#define IOIO_SIZE_SHIFT 4 /* bits 4..6: 8-, 16-, 32-bit access */
#define RFLAGS_DF (1ull << 10)
#define EFER_LMA (1ull << 10)
#define MAX_PORT_RANGES 16

struct port_range {
    uint16_t first;
    unsigned count;
    const struct port_handler *handler;
};

static struct port_range ranges[MAX_PORT_RANGES];

void ioexit_register(uint16_t first_port, unsigned count, const struct port_handler *handler)
{
    for (unsigned i = 0; i < MAX_PORT_RANGES; i++) {
        if (!ranges[i].handler) {
            ranges[i] = (struct port_range){ first_port, count, handler };
            iopm_intercept(first_port, count, true);
            return;
        }
    }
    vmm_stop("more than %u intercepted port ranges", MAX_PORT_RANGES);
}

void ioexit_unregister(uint16_t first_port, unsigned count)
{
    for (unsigned i = 0; i < MAX_PORT_RANGES; i++) {
        if (ranges[i].handler && ranges[i].first == first_port && ranges[i].count == count) {
            ranges[i].handler = 0;
            iopm_intercept(first_port, count, false);
        }
    }
}

bool ioexit_overlaps(uint16_t first_port, unsigned count, uint16_t ignored_first)
{
    for (unsigned i = 0; i < MAX_PORT_RANGES; i++) {
        const struct port_range *r = &ranges[i];
        if (!r->handler || (ignored_first && r->first == ignored_first))
            continue;
        if (first_port < r->first + r->count && r->first < (unsigned)first_port + count)
            return true;
    }
    return false;
}

static const struct port_handler *handler_for(uint16_t port)
{
    for (unsigned i = 0; i < MAX_PORT_RANGES; i++) {
        if (ranges[i].handler && port >= ranges[i].first && port < ranges[i].first + ranges[i].count)
            return ranges[i].handler;
    }
    return 0;
}

static uint32_t port_in(uint16_t port, unsigned size)
{
    const struct port_handler *h = handler_for(port);
    return h ? h->read(port, size) : port_read(port, size);
}

static void port_out(uint16_t port, unsigned size, uint32_t value)
{
    const struct port_handler *h = handler_for(port);
    if (h)
        h->write(port, size, value);
    else
        port_write(port, size, value);
}

static uint64_t address_mask(unsigned address_size)
{
    return address_size == 8 ? ~0ull : (1ull << (address_size * 8)) - 1;
}

/* Replaces the low `address_size` bytes of a register as the CPU does: 32-bit results zero the upper half. */
static void set_counter(uint64_t *reg, uint64_t value, unsigned address_size)
{
    if (address_size == 2)
        *reg = (*reg & ~0xFFFFull) | (value & 0xFFFF);
    else
        *reg = value & address_mask(address_size);
}

/* The linear address of a string operand: segment base (zero in 64-bit mode except FS and GS) plus index. */
static uint64_t string_linear(unsigned segment, uint64_t index)
{
    bool long_mode = VMCB_U64(VMCB_EFER) & EFER_LMA;
    if (long_mode && segment != VMCB_FS && segment != VMCB_GS)
        return index;
    return VMCB_SEG(segment)->base + index;
}

/* Checks that an element can be stored before its port is read, so a fault loses no data. */
static bool element_translates(uint64_t linear, unsigned size, enum guest_access access)
{
    uint64_t ignored;
    return guest_linear_to_physical(linear, access, &ignored) &&
           guest_linear_to_physical(linear + size - 1, access, &ignored);
}

/* Elements of a forward REP string that stay in one guest page and do not wrap the index
 * register, when the port's handler moves blocks: 0 means go element by element. */
static uint64_t block_elements(const struct io_instruction *io, const struct port_handler *h, uint64_t index,
                               uint64_t remaining, int64_t step, uint64_t mask)
{
    bool has_block = h && (io->is_in ? h->read_block != 0 : h->write_block != 0);
    if (!has_block || step < 0)
        return 0;
    uint64_t linear = string_linear(io->segment, index & mask);
    uint64_t fit = (PAGE_SIZE - (linear & 0xFFF)) / io->size;
    uint64_t before_wrap = ((mask - (index & mask)) + 1) / io->size;
    uint64_t n = remaining < fit ? remaining : fit;
    return n < before_wrap ? n : before_wrap;
}

/* Moves `n` elements between the port and one guest page at once; false when the page is not
 * plain guest memory (then the caller goes element by element). */
static bool move_block(struct io_instruction *io, const struct port_handler *h, uint64_t linear, uint64_t n,
                       bool *faulted)
{
    uint64_t physical;
    uint64_t bytes = n * io->size;
    if (!guest_linear_to_physical(linear, io->is_in ? GUEST_WRITE : GUEST_READ, &physical)) {
        *faulted = true;
        return false;
    }
    if (physical + bytes > (1ull << 32) || range_touches_vmm(physical, bytes))
        return false;
    if (io->is_in)
        return h->read_block(io->port, io->size, (void *)(uintptr_t)physical, (uint32_t)n);
    return h->write_block(io->port, io->size, (const void *)(uintptr_t)physical, (uint32_t)n);
}

static void emulate_string(struct io_instruction *io)
{
    uint64_t mask = address_mask(io->address_size);
    uint64_t *counter = &guest_regs.rcx;
    uint64_t *index = io->is_in ? &guest_regs.rdi : &guest_regs.rsi;
    int64_t step = (VMCB_U64(VMCB_RFLAGS) & RFLAGS_DF) ? -(int64_t)io->size : io->size;
    uint64_t remaining = io->has_rep ? (*counter & mask) : 1;
    const struct port_handler *h = handler_for(io->port);
    stat_add(STAT_IO_STRING);
    while (remaining) {
        uint64_t linear = string_linear(io->segment, *index & mask);
        uint64_t n = io->has_rep ? block_elements(io, h, *index, remaining, step, mask) : 0;
        bool faulted = false;
        if (n > 1 && move_block(io, h, linear, n, &faulted)) {
            set_counter(index, *index + n * io->size, io->address_size);
            remaining -= n;
            set_counter(counter, remaining, io->address_size);
            continue;
        }
        if (faulted)
            return;
        uint32_t value = 0;
        if (io->is_in) {
            if (!element_translates(linear, io->size, GUEST_WRITE))
                return;
            value = port_in(io->port, io->size);
            guest_linear_write(linear, &value, io->size);
        } else {
            if (!guest_linear_read(linear, &value, io->size))
                return;
            port_out(io->port, io->size, value);
        }
        set_counter(index, *index + (uint64_t)step, io->address_size);
        remaining--;
        if (io->has_rep)
            set_counter(counter, remaining, io->address_size);
    }
    VMCB_U64(VMCB_RIP) = io->next_rip;
}

void ioexit_handle(uint64_t exitinfo1, uint64_t exitinfo2)
{
    struct io_instruction io = {
        .port = (uint16_t)(exitinfo1 >> 16),
        .size = (uint8_t)((exitinfo1 >> IOIO_SIZE_SHIFT) & 7), /* one-hot 1, 2 or 4 */
        .is_in = exitinfo1 & IOIO_IN,
        .is_string = exitinfo1 & IOIO_STRING,
        .has_rep = exitinfo1 & IOIO_REP,
        .next_rip = exitinfo2,
    };
    VMCB_U64(VMCB_INTERRUPT_SHADOW) = 0;
    if (io.is_string) {
        if (io_decode_string(&io))
            emulate_string(&io);
        return;
    }
    uint64_t *rax = guest_gpr(0);
    if (io.is_in) {
        uint32_t value = port_in(io.port, io.size);
        if (io.size == 4)
            *rax = value; /* a 32-bit destination zero-extends into RAX */
        else if (io.size == 2)
            *rax = (*rax & ~0xFFFFull) | value;
        else
            *rax = (*rax & ~0xFFull) | value;
    } else {
        port_out(io.port, io.size, (uint32_t)(*rax & (io.size == 4 ? 0xFFFFFFFFu : io.size == 2 ? 0xFFFFu : 0xFFu)));
    }
    VMCB_U64(VMCB_RIP) = io.next_rip;
}
