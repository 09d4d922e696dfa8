/* The fill engine's rules, in the order they apply (spec/storage/fill_engine.py). */
#include "storage_fill.h"

#include "storage_block_state.h"

uint64_t storage_refill_tokens(uint64_t tokens, int64_t elapsed_ticks, const struct storage_fill_parameters *p)
{
    uint64_t elapsed = elapsed_ticks > 0 ? (uint64_t)elapsed_ticks : 0;
    uint64_t earned = tokens + elapsed * p->tokens_per_tick;
    return earned < p->token_burst ? earned : p->token_burst;
}

static int candidate(const uint8_t *states, uint32_t block, uint32_t excluded_first, uint32_t excluded_count,
                     const uint32_t *chosen, uint32_t chosen_count)
{
    /* A block is a candidate only while it is absent and no guest write to it is in flight. */
    if (states[block] != STORAGE_ABSENT)
        return 0;
    if (block >= excluded_first && block - excluded_first < excluded_count)
        return 0;
    for (uint32_t i = 0; i < chosen_count; i++)
        if (chosen[i] == block)
            return 0;
    return 1;
}

uint32_t storage_choose_fills(const uint8_t *states, uint32_t block_count, const uint32_t *demanded,
                              uint32_t demanded_count, uint32_t excluded_first, uint32_t excluded_count,
                              uint32_t in_flight, uint64_t tokens, const struct storage_fill_parameters *p,
                              int background, int guest_active, uint32_t *chosen, uint64_t *spent)
{
    /* At most max_in_flight fills are outstanding at once. */
    int64_t room = (int64_t)p->max_in_flight - in_flight;
    uint32_t total = 0;
    *spent = 0;
    /* Blocks the guest is waiting for come first, in the order it asked, without the rate limit. */
    for (uint32_t i = 0; i < demanded_count; i++) {
        if ((int64_t)total >= room)
            return total;
        if (candidate(states, demanded[i], excluded_first, excluded_count, chosen, total))
            chosen[total++] = demanded[i];
    }
    /* Background blocks only in install, only while the guest is idle, only with a token. */
    if (!background || guest_active)
        return total;
    for (uint32_t block = 0; block < block_count; block++) {
        if ((int64_t)total >= room || *spent >= tokens)
            break;
        if (candidate(states, block, excluded_first, excluded_count, chosen, total)) {
            chosen[total++] = block;
            (*spent)++;
        }
    }
    return total;
}
