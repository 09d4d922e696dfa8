/* The policy transition table (spec/storage/policy.py POLICY_TRANSITIONS) and the boot policy. */
#include "storage_policy.h"

int storage_is_legal_transition(uint8_t current, uint8_t wanted)
{
    switch (current) {
    case STORAGE_NETWORK:
        /* the server holds every write; the cache starts empty, or the install copies them */
        return wanted == STORAGE_CACHE || wanted == STORAGE_INSTALL;
    case STORAGE_CACHE:
        /* the server holds every write; or present blocks equal the server's and the install continues */
        return wanted == STORAGE_NETWORK || wanted == STORAGE_INSTALL;
    case STORAGE_INSTALL:
        /* only by de-virtualization: every block present, map durable, device quiescent */
        return wanted == STORAGE_PASSTHROUGH;
    default:
        return 0;
    }
}

/* Refuse a transition that is not in the table, with a reason that says why. */
int storage_check_transition(uint8_t current, uint8_t wanted)
{
    if (current == wanted)
        return STORAGE_POLICY_ALREADY;
    if (!storage_is_legal_transition(current, wanted))
        return STORAGE_POLICY_ILLEGAL;
    if (wanted == STORAGE_PASSTHROUGH)
        return STORAGE_POLICY_PASSTHROUGH_ONLY_BY_DEVIRTUALIZATION;
    return STORAGE_POLICY_LEGAL;
}

/* The policy at start: the configured one, unless the persisted map forbids the change. */
uint8_t storage_boot_policy(uint8_t configured, int recovered_valid, uint8_t recovered)
{
    if (!recovered_valid || recovered == configured)
        return configured;
    /* Passthrough is reached from a map only through de-virtualization, never by configuration. */
    if (storage_is_legal_transition(recovered, configured) && configured != STORAGE_PASSTHROUGH)
        return configured;
    /* An install map means the local disk holds writes the server lacks: keep installing. */
    return recovered;
}
