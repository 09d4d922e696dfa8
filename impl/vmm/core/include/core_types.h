/* The core's shared types: what the caller provides (guest memory, a backing store) and what
 * the core returns (actions). The core touches no hardware and keeps no global state: every
 * function takes its state object, every effect is an action or a call through an interface
 * the caller gave it (ARCHITECTURE.md, "Functional core, imperative shell"). */
#ifndef STORVISOR_CORE_TYPES_H
#define STORVISOR_CORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_SECTOR_BYTES 512 /* ATA/ATAPI-7 V1 §3.1: a logical sector of 256 words */

/* What an event function reports besides its actions. */
enum core_status {
    CORE_OK = 0,
    CORE_BAD_EVENT = 1,     /* the caller passed an event the core does not decode (port, width, value) */
    CORE_CANNOT_HAPPEN = 2, /* the core reached a state its own rules exclude: always a bug */
};

/* Guest-physical memory as a bus master sees it (spec/ata/prd.py, GuestMemory).
 * Each function returns false when no memory answers there (a PCI master abort). */
struct core_memory {
    void *context;
    bool (*read)(void *context, uint64_t address, uint8_t *buffer, uint32_t length);
    bool (*write)(void *context, uint64_t address, const uint8_t *data, uint32_t length);
};

/* --- The backing store between the ATA device and whatever holds the sectors (spec/ata/backing_store.py) --- */

enum core_store_kind {
    CORE_STORE_READ_SECTORS,
    CORE_STORE_WRITE_SECTORS,
    CORE_STORE_FLUSH,
};

struct core_store_request {
    enum core_store_kind kind;
    uint64_t lba;
    uint32_t count;  /* sectors; 0 for a flush */
    uint8_t *buffer; /* READ: where the store puts count sectors; WRITE: the sectors to write */
};

struct core_store_result {
    bool ok;
    uint8_t error; /* ATA Error register bits when not ok (UNC, IDNF, ABRT) */
};

/* One request at a time: `start` begins it, `poll` (every tick) reports its result once complete.
 * The request and its buffer stay valid until `poll` has returned true. */
struct core_store {
    void *context;
    uint64_t (*sector_count)(void *context);
    void (*start)(void *context, const struct core_store_request *request);
    bool (*poll)(void *context, struct core_store_result *result);
};

/* --- Actions: what an event asks the caller to do --- */

enum core_action_kind {
    CORE_ACTION_GUEST_VALUE, /* the value the guest's IN instruction receives */
    CORE_ACTION_INTRQ,       /* the interrupt line changed to `level` */
    CORE_ACTION_SEND_FRAME,  /* transmit `length` bytes at `data` (valid until the next event) */
    CORE_ACTION_DISK_OP,     /* start local-disk operation `id` */
    CORE_ACTION_DEVIRTUALIZE /* every condition holds: stop intercepting the disk controller */
};

enum core_disk_op_kind {
    CORE_DISK_READ,
    CORE_DISK_WRITE,
    CORE_DISK_FLUSH,
};

struct core_action {
    enum core_action_kind kind;
    union {
        uint32_t value; /* GUEST_VALUE */
        bool level;     /* INTRQ */
        struct {
            const uint8_t *data;
            uint32_t length;
        } frame; /* SEND_FRAME */
        struct {
            uint32_t id;
            enum core_disk_op_kind op;
            uint64_t lba;
            uint32_t count;
            uint8_t *buffer; /* READ: destination; WRITE: source; valid until the operation completes */
        } disk; /* DISK_OP */
    } u;
};

#define CORE_MAX_ACTIONS 64 /* more actions from one event is a core bug (CORE_CANNOT_HAPPEN) */

/* The actions one event produced, in order. The caller clears it before each event. */
struct core_actions {
    uint32_t count;
    bool overflow; /* an action did not fit: the event's result is CORE_CANNOT_HAPPEN */
    struct core_action items[CORE_MAX_ACTIONS];
};

static inline void core_actions_clear(struct core_actions *actions)
{
    actions->count = 0;
    actions->overflow = false;
}

/* Append an action; false (and `overflow`) when the list is full. */
static inline bool core_actions_push(struct core_actions *actions, struct core_action action)
{
    if (actions->count >= CORE_MAX_ACTIONS) {
        actions->overflow = true;
        return false;
    }
    actions->items[actions->count++] = action;
    return true;
}

#endif
