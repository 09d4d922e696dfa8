/* Decoding string I/O instructions. Software SVM reports port, width, direction, string and
 * REP in EXITINFO1 but neither the address size nor the segment (AMD APM vol 2 §15.10.2
 * leaves them to decode assists QEMU does not have), so the VMM reads the prefixes itself.
 * SeaBIOS, for one, reads sectors with `addr32 rep insw` in real mode. */
#include "platform.h"

#define EFER_LMA (1ull << 10)
#define MAX_INSTRUCTION_LENGTH 15 /* AMD APM vol 3 §1.1 */

static unsigned segment_override(uint8_t prefix)
{
    switch (prefix) {
    case 0x26: return VMCB_ES;
    case 0x2E: return VMCB_CS;
    case 0x36: return VMCB_SS;
    case 0x3E: return VMCB_DS;
    case 0x64: return VMCB_FS;
    case 0x65: return VMCB_GS;
    default: return 0;
    }
}

bool io_decode_string(struct io_instruction *io)
{
    volatile struct vmcb_segment *cs = VMCB_SEG(VMCB_CS);
    bool long_mode = (VMCB_U64(VMCB_EFER) & EFER_LMA) && (cs->attrib & SEG_ATTRIB_L);
    uint8_t default_size = long_mode ? 8 : (cs->attrib & SEG_ATTRIB_DB) ? 4 : 2;
    uint64_t rip = VMCB_U64(VMCB_RIP);
    io->address_size = default_size;
    io->segment = VMCB_DS;
    io->has_rep = false;
    for (unsigned i = 0; i < MAX_INSTRUCTION_LENGTH; i++) {
        uint64_t offset = default_size == 2 ? (rip + i) & 0xFFFF : rip + i;
        uint8_t byte;
        if (!guest_linear_read(cs->base + offset, &byte, 1))
            return false;
        if (byte == 0x66 || byte == 0xF0) {
            continue; /* operand size comes from EXITINFO1; LOCK would have raised #UD */
        } else if (byte == 0x67) {
            io->address_size = default_size == 4 ? 2 : 4; /* 16<->32, and 64->32 */
        } else if (byte == 0xF2 || byte == 0xF3) {
            io->has_rep = true; /* REPNE acts as REP on INS/OUTS */
        } else if (segment_override(byte)) {
            io->segment = segment_override(byte);
        } else if (long_mode && (byte & 0xF0) == 0x40) {
            continue; /* REX: no meaning for INS/OUTS */
        } else if (byte >= 0x6C && byte <= 0x6F) {
            io->is_in = byte <= 0x6D;
            if (io->is_in)
                io->segment = VMCB_ES; /* INS always stores through ES, no override (APM vol 3, INS) */
            return true;
        } else {
            log_error("I/O exit at rip %lx on opcode %02x, not a string I/O instruction", rip, byte);
            svm_inject_exception(6, false, 0);
            return false;
        }
    }
    log_error("I/O instruction at rip %lx longer than 15 bytes", rip);
    svm_inject_exception(13, true, 0);
    return false;
}
