/* The I/O permission map: one bit per port, set = #VMEXIT(IOIO) (AMD APM vol 2 §15.10.1).
 * Three pages: 64 Ki ports plus the bits a 4-byte access at port 0xFFFF reaches past the end. */
#include "platform.h"

uint8_t iopm[3 * 4096] __attribute__((aligned(4096)));

void iopm_intercept(uint16_t first_port, unsigned count, bool on)
{
    for (unsigned port = first_port; port < (unsigned)first_port + count; port++) {
        if (on)
            iopm[port / 8] |= (uint8_t)(1u << (port % 8));
        else
            iopm[port / 8] &= (uint8_t)~(1u << (port % 8));
    }
}
