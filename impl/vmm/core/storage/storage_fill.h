/* The fill engine's choice: which blocks to fetch next, and how many (spec/storage/fill_engine.py). */
#ifndef STORAGE_FILL_H
#define STORAGE_FILL_H

#include <stdint.h>

#include "storage_geometry.h"

/* The rate limit's bucket after elapsed ticks. */
uint64_t storage_refill_tokens(uint64_t tokens, int64_t elapsed_ticks, const struct storage_fill_parameters *p);

/* The blocks to start filling now, in order, into chosen (room for max_in_flight); returns how many.
 * excluded_first/excluded_count: the blocks an issued guest write covers (a contiguous range). */
uint32_t storage_choose_fills(const uint8_t *states, uint32_t block_count, const uint32_t *demanded,
                              uint32_t demanded_count, uint32_t excluded_first, uint32_t excluded_count,
                              uint32_t in_flight, uint64_t tokens, const struct storage_fill_parameters *p,
                              int background, int guest_active, uint32_t *chosen, uint64_t *spent);

#endif
