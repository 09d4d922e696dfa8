/* Host harness for impl/vmm/ata/ata_prd.c: guest memory is a table of 8-byte words that the
 * test fills through prd_harness_set; every other address reads as zero. */
#include <stdint.h>
#include <string.h>
#include "../../impl/vmm/ata/ata_prd.c"

#define HARNESS_WORDS 256

static uint64_t addresses[HARNESS_WORDS], values[HARNESS_WORDS];
static unsigned used;
uint64_t prd_harness_reads;

void prd_harness_reset(void)
{
    used = 0;
    prd_harness_reads = 0;
}

int prd_harness_set(uint64_t address, uint64_t value)
{
    if (used == HARNESS_WORDS)
        return -1;
    addresses[used] = address;
    values[used++] = value;
    return 0;
}

void guest_physical_read(uint64_t gpa, void *dst, size_t n)
{
    uint64_t word = 0;
    prd_harness_reads++;
    for (unsigned i = used; i-- > 0;) {
        if (addresses[i] == gpa) {
            word = values[i];
            break;
        }
    }
    memcpy(dst, &word, n < sizeof word ? n : sizeof word);
}

int prd_harness_check(uint32_t table, unsigned *entries)
{
    return ata_prd_table_is_confined(table, entries);
}
