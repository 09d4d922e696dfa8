/* Policies and the legal run-time transitions between them (spec/storage/policy.py). */
#ifndef STORAGE_POLICY_H
#define STORAGE_POLICY_H

#include <stdint.h>

enum storage_policy { STORAGE_NETWORK, STORAGE_CACHE, STORAGE_INSTALL, STORAGE_PASSTHROUGH, STORAGE_POLICIES };

/* Why check_transition refuses a change; 0 when it is legal. */
enum storage_policy_refusal {
    STORAGE_POLICY_LEGAL = 0,
    STORAGE_POLICY_ALREADY = 1, /* already in that policy */
    STORAGE_POLICY_ILLEGAL = 2, /* not a legal transition */
    STORAGE_POLICY_PASSTHROUGH_ONLY_BY_DEVIRTUALIZATION = 3,
};

int storage_is_legal_transition(uint8_t current, uint8_t wanted);
int storage_check_transition(uint8_t current, uint8_t wanted);
uint8_t storage_boot_policy(uint8_t configured, int recovered_valid, uint8_t recovered);

static inline int storage_uses_local_disk(uint8_t p)
{
    return p == STORAGE_CACHE || p == STORAGE_INSTALL || p == STORAGE_PASSTHROUGH;
}

static inline int storage_fills_in_background(uint8_t p)
{
    return p == STORAGE_INSTALL;
}

static inline int storage_fills_on_demand(uint8_t p)
{
    return p == STORAGE_CACHE || p == STORAGE_INSTALL;
}

#endif
