/* The storage manager (spec/storage/manager.py): the same functions in the same order, the same checks. */
#include "storage_manager.h"

#include "storage_block_state.h"
#include "storage_fill.h"

#define ALIGN(n) (((n) + 7) & ~(size_t)7)

/* Sizes of the region's tables. */

static uint64_t bitmap_bytes(const struct storage_geometry *g)
{
    return ((uint64_t)g->block_count + 7) / 8;
}

static uint32_t segment_capacity(const struct storage_geometry *g)
{
    /* A transfer covers at most this many blocks; a cache write adds its server write and server flush. */
    return STORAGE_MAX_GUEST_SECTORS / g->sectors_per_block + 1 + 2;
}

static uint32_t outstanding_capacity(const struct storage_config *c)
{
    /* guest segments, one request per fill, the commit, the map read, the switch flush */
    return segment_capacity(&c->geometry) + c->fill.max_in_flight + 3;
}

size_t storage_region_bytes(const struct storage_config *c)
{
    const struct storage_geometry *g = &c->geometry;
    size_t bytes = ALIGN(sizeof(struct storage_segment) * segment_capacity(g));
    bytes += 2 * ALIGN(sizeof(struct storage_outstanding) * outstanding_capacity(c));
    bytes += ALIGN(sizeof(uint32_t) * g->block_count);
    bytes += ALIGN(g->block_count) + 2 * ALIGN(bitmap_bytes(g));
    bytes += ALIGN(storage_reserved_sectors(g) * STORAGE_SECTOR_BYTES);
    bytes += ALIGN((size_t)c->fill.max_in_flight * g->sectors_per_block * STORAGE_SECTOR_BYTES);
    return bytes;
}

static uint8_t *carve(uint8_t **cursor, size_t bytes)
{
    uint8_t *start = *cursor;
    for (size_t i = 0; i < bytes; i++)
        start[i] = 0;
    *cursor += ALIGN(bytes);
    return start;
}

/* Small helpers. */

static struct storage_outstanding *table(struct storage_manager *m, uint8_t device)
{
    return device == STORAGE_LOCAL ? m->local_outstanding : m->remote_outstanding;
}

static uint32_t outstanding_total(const struct storage_manager *m, uint8_t device)
{
    const struct storage_outstanding *t = device == STORAGE_LOCAL ? m->local_outstanding : m->remote_outstanding;
    uint32_t total = 0;
    for (uint32_t i = 0; i < m->outstanding_capacity; i++)
        total += t[i].used;
    return total;
}

static struct storage_fill *find_fill(struct storage_manager *m, uint32_t block)
{
    for (int i = 0; i < STORAGE_MAX_FILLS; i++)
        if (m->fills[i].used && m->fills[i].block == block)
            return &m->fills[i];
    return 0;
}

static uint32_t fill_total(const struct storage_manager *m)
{
    uint32_t total = 0;
    for (int i = 0; i < STORAGE_MAX_FILLS; i++)
        total += m->fills[i].used;
    return total;
}

static uint8_t *fill_buffer(struct storage_manager *m, const struct storage_fill *fill)
{
    uint64_t block_bytes = (uint64_t)m->config.geometry.sectors_per_block * STORAGE_SECTOR_BYTES;
    return m->fill_io + (uint64_t)(fill - m->fills) * block_bytes;
}

static void set_policy(struct storage_manager *m, uint8_t policy)
{
    m->policy_changes[m->policy][policy]++;
    m->policy = policy;
}

static void transition(struct storage_manager *m, uint32_t block, uint8_t event)
{
    uint8_t old = m->blocks[block];
    uint8_t next = storage_next_block_state(old, event);
    /* Every legal (state, event) pair is in the table; anything else cannot happen. */
    if (next == STORAGE_NO_TRANSITION) {
        m->broken = 1;
        return;
    }
    m->transitions[old][event]++;
    m->blocks[block] = next;
}

/* Every request to either device goes through here, so the outstanding tables know all of them. */
static int64_t submit(struct storage_manager *m, uint8_t device, uint8_t purpose, uint64_t argument, uint8_t kind,
                      uint64_t lba, uint64_t count, uint8_t *data)
{
    const struct storage_device *target = device == STORAGE_LOCAL ? &m->local : &m->remote;
    int64_t request_id;
    if (kind == STORAGE_READ_SECTORS)
        request_id = target->submit_read(target->context, lba, count, data);
    else if (kind == STORAGE_WRITE_SECTORS)
        request_id = target->submit_write(target->context, lba, data, count);
    else
        request_id = target->submit_flush(target->context);
    struct storage_outstanding *t = table(m, device);
    for (uint32_t i = 0; i < m->outstanding_capacity; i++)
        if (!t[i].used) {
            t[i].used = 1;
            t[i].purpose = purpose;
            t[i].kind = kind;
            t[i].request_id = request_id;
            t[i].argument = argument;
            t[i].lba = lba;
            t[i].count = count;
            return request_id;
        }
    m->broken = 1; /* the table is sized for every request that can be outstanding */
    return request_id;
}

/* Forward declarations, in the spec's order. */
static void advance(struct storage_manager *m);
static void recover(struct storage_manager *m, const struct storage_completion *completion);
static void finish_fill(struct storage_manager *m, uint32_t block, int ok);
static void fill_read_done(struct storage_manager *m, uint32_t block, const struct storage_completion *completion);
static void continue_commit(struct storage_manager *m, int ok);
static void begin_switch_commit(struct storage_manager *m, uint8_t old, uint8_t new_policy);

int storage_manager_init(struct storage_manager *m, const struct storage_config *config, const struct storage_device *local,
                         const struct storage_device *remote, uint8_t *region, size_t region_bytes, uint64_t now)
{
    /* Without a local disk only the network policy can serve the guest. */
    if (!config->has_local && config->policy != STORAGE_NETWORK)
        return STORAGE_ERR_NEEDS_LOCAL_DISK;
    /* Passthrough is reached only through de-virtualization, which needs a map to start from. */
    if (config->policy == STORAGE_PASSTHROUGH)
        return STORAGE_ERR_PASSTHROUGH_AT_START;
    /* The tables live in the caller's region. */
    if (region_bytes < storage_region_bytes(config) || config->fill.max_in_flight > STORAGE_MAX_FILLS)
        return STORAGE_ERR_REGION;
    uint8_t *bytes = (uint8_t *)m;
    for (size_t i = 0; i < sizeof *m; i++)
        bytes[i] = 0;
    m->config = *config;
    if (local)
        m->local = *local;
    m->remote = *remote;
    const struct storage_geometry *g = &config->geometry;
    m->segment_capacity = segment_capacity(g);
    m->outstanding_capacity = outstanding_capacity(config);
    uint8_t *cursor = region;
    m->segments = (struct storage_segment *)carve(&cursor, sizeof(struct storage_segment) * m->segment_capacity);
    m->local_outstanding = (struct storage_outstanding *)carve(&cursor, sizeof(struct storage_outstanding) * m->outstanding_capacity);
    m->remote_outstanding = (struct storage_outstanding *)carve(&cursor, sizeof(struct storage_outstanding) * m->outstanding_capacity);
    m->demanded = (uint32_t *)carve(&cursor, sizeof(uint32_t) * g->block_count);
    m->blocks = carve(&cursor, g->block_count); /* every block ABSENT */
    m->persisted = carve(&cursor, bitmap_bytes(g));
    m->snapshot = carve(&cursor, bitmap_bytes(g));
    m->map_io = carve(&cursor, storage_reserved_sectors(g) * STORAGE_SECTOR_BYTES);
    m->fill_io = carve(&cursor, (size_t)config->fill.max_in_flight * g->sectors_per_block * STORAGE_SECTOR_BYTES);
    m->policy = config->policy;
    m->next_slot = 0;
    m->next_generation = 1;
    m->now = now;
    m->tokens = config->fill.token_burst;
    m->phase = STORAGE_STARTING;
    if (!config->has_local)
        m->phase = STORAGE_RUNNING;
    else
        /* The map slots are read before anything else touches the local disk. */
        submit(m, STORAGE_LOCAL, STORAGE_MAP_READ, 0, STORAGE_READ_SECTORS, storage_slot_lba(g, 0),
               storage_reserved_sectors(g), m->map_io);
    return STORAGE_OK;
}

/* BackingStore interface (spec/ata/backing_store.py) */

/* The guest's capacity: the local disk minus the reserved region (reserved_region_hidden). */
uint64_t storage_sector_count(const struct storage_manager *m)
{
    return storage_data_sectors(&m->config.geometry);
}

/* The outcome of a malformed or out-of-range request, or 0 if it is served. */
static int reject(const struct storage_manager *m, const struct storage_request *request, struct storage_result *result)
{
    if (request->kind == STORAGE_FLUSH)
        return 0;
    /* A transfer of no sectors is malformed. */
    if (request->count < 1) {
        result->ok = 0;
        result->error = STORAGE_ERROR_ABRT;
        return 1;
    }
    /* Sectors beyond the capacity, the reserved region included, do not exist (reserved_region_hidden). */
    if (request->lba > storage_data_sectors(&m->config.geometry) ||
        request->count > storage_data_sectors(&m->config.geometry) - request->lba) {
        result->ok = 0;
        result->error = STORAGE_ERROR_IDNF;
        return 1;
    }
    return 0;
}

int storage_start(struct storage_manager *m, const struct storage_request *request)
{
    /* The ATA device starts one request at a time. */
    if (m->guest_active)
        return STORAGE_ERR_BUSY;
    m->guest_active = 1;
    m->guest = *request;
    m->guest_issued = 0;
    m->guest_server_flushed = 0;
    m->guest_has_ticket = 0;
    m->guest_ticket_done = 0;
    m->guest_ticket_ok = 0;
    m->segment_total = 0;
    m->guest_has_result = (uint8_t)reject(m, request, &m->guest_result);
    return STORAGE_OK;
}

int storage_poll(struct storage_manager *m, struct storage_result *result)
{
    storage_step(m);
    if (!m->guest_active || !m->guest_has_result)
        return 0;
    *result = m->guest_result;
    m->guest_active = 0;
    return 1;
}

/* Other inputs */

/* The clock advanced: the rate limit earns tokens, and everything that can progress does. */
void storage_tick(struct storage_manager *m, uint64_t now)
{
    m->tokens = storage_refill_tokens(m->tokens, (int64_t)(now - m->now), &m->config.fill);
    m->now = now > m->now ? now : m->now;
    storage_step(m);
}

/* Begin a run-time policy change; a change the table refuses changes nothing. */
int storage_request_policy(struct storage_manager *m, uint8_t wanted)
{
    /* One change at a time, and only once the map has been read. */
    if (m->phase != STORAGE_RUNNING)
        return STORAGE_ERR_POLICY_PHASE;
    switch (storage_check_transition(m->policy, wanted)) {
    case STORAGE_POLICY_ALREADY:
        return STORAGE_ERR_POLICY_ALREADY;
    case STORAGE_POLICY_ILLEGAL:
        return STORAGE_ERR_POLICY_ILLEGAL;
    case STORAGE_POLICY_PASSTHROUGH_ONLY_BY_DEVIRTUALIZATION:
        return STORAGE_ERR_POLICY_PASSTHROUGH;
    }
    /* Without a local disk only the network policy can serve the guest. */
    if (!m->config.has_local && storage_uses_local_disk(wanted))
        return STORAGE_ERR_NEEDS_LOCAL_DISK;
    m->has_pending_policy = 1;
    m->pending_policy = wanted;
    m->phase = STORAGE_SWITCHING;
    return STORAGE_OK;
}

uint32_t storage_blockers(const struct storage_manager *m)
{
    uint32_t in_flight = outstanding_total(m, STORAGE_LOCAL) + outstanding_total(m, STORAGE_REMOTE);
    return storage_devirtualize_blockers(m->blocks, m->persisted, m->config.geometry.block_count, in_flight,
                                         m->guest_active, m->commit_active || m->commit_wanted,
                                         m->policy == STORAGE_INSTALL);
}

int storage_may_devirtualize(const struct storage_manager *m)
{
    return m->phase == STORAGE_RUNNING && !storage_blockers(m);
}

/* Enter passthrough; the VMM shell then performs the physical steps of the sequence. */
int storage_devirtualize(struct storage_manager *m)
{
    if (m->phase != STORAGE_RUNNING || storage_blockers(m))
        return STORAGE_ERR_DEVIRTUALIZE;
    set_policy(m, STORAGE_PASSTHROUGH);
    m->phase = STORAGE_DEVIRTUALIZED;
    return STORAGE_OK;
}

/* Take every completion the devices have, then start whatever may start. */
void storage_step(struct storage_manager *m)
{
    struct storage_completion completion;
    if (m->config.has_local)
        while (m->local.take_completion(m->local.context, &completion))
            storage_on_local_completion(m, &completion);
    while (m->remote.take_completion(m->remote.context, &completion))
        storage_on_remote_completion(m, &completion);
    advance(m);
}

static int pop_outstanding(struct storage_manager *m, uint8_t device, int64_t request_id, struct storage_outstanding *out)
{
    struct storage_outstanding *t = table(m, device);
    for (uint32_t i = 0; i < m->outstanding_capacity; i++)
        if (t[i].used && t[i].request_id == request_id) {
            *out = t[i];
            t[i].used = 0;
            return 1;
        }
    return 0;
}

static void complete_segment(struct storage_manager *m, uint64_t index, const struct storage_completion *completion)
{
    struct storage_segment *segment = &m->segments[index];
    segment->completed = 1;
    segment->ok = completion->ok;
    segment->ata_error = completion->ata_error;
}

void storage_on_local_completion(struct storage_manager *m, const struct storage_completion *completion)
{
    struct storage_outstanding o;
    /* A completion for a request not outstanding changes nothing (stale_response_ignored). */
    if (!pop_outstanding(m, STORAGE_LOCAL, completion->request_id, &o))
        return;
    switch (o.purpose) {
    case STORAGE_MAP_READ:
        recover(m, completion);
        break;
    case STORAGE_FOR_GUEST:
        complete_segment(m, o.argument, completion);
        break;
    case STORAGE_FILL_WRITE:
        finish_fill(m, (uint32_t)o.argument, completion->ok);
        break;
    case STORAGE_FOR_COMMIT:
        continue_commit(m, completion->ok);
        break;
    }
}

void storage_on_remote_completion(struct storage_manager *m, const struct storage_completion *completion)
{
    struct storage_outstanding o;
    /* A completion for a request not outstanding changes nothing (stale_response_ignored). */
    if (!pop_outstanding(m, STORAGE_REMOTE, completion->request_id, &o))
        return;
    switch (o.purpose) {
    case STORAGE_FOR_GUEST:
        complete_segment(m, o.argument, completion);
        break;
    case STORAGE_FILL_READ:
        fill_read_done(m, (uint32_t)o.argument, completion);
        break;
    case STORAGE_SWITCH_FLUSH:
        m->switch_flush = !completion->ok; /* a failed flush is retried */
        break;
    }
}

/* Start: recovery of the persisted map */

static void recover(struct storage_manager *m, const struct storage_completion *completion)
{
    const struct storage_geometry *g = &m->config.geometry;
    struct storage_recovery *recovery = &m->recovery;
    if (!completion->ok) {
        /* A read error says nothing about the map: treating it as empty would lose the guest's local writes. */
        submit(m, STORAGE_LOCAL, STORAGE_MAP_READ, 0, STORAGE_READ_SECTORS, storage_slot_lba(g, 0),
               storage_reserved_sectors(g), m->map_io);
        return;
    }
    storage_recover_map(m->map_io, g, m->config.identity, recovery);
    m->next_slot = recovery->next_slot;
    m->next_generation = recovery->next_generation;
    int has_record = recovery->trusted;
    uint8_t recovered_policy = recovery->newest.policy;
    m->policy = storage_boot_policy(m->config.policy, has_record, recovered_policy);
    for (uint32_t block = 0; block < g->block_count; block++)
        storage_set_bit(m->persisted, block, has_record && storage_bit(recovery->newest.present, block));
    m->durable_clean = has_record && recovered_policy == STORAGE_CACHE && recovery->newest.clean;
    if (m->policy != STORAGE_NETWORK)
        for (uint32_t block = 0; block < g->block_count; block++)
            m->blocks[block] = storage_bit(m->persisted, block) ? STORAGE_PRESENT : STORAGE_ABSENT;
    m->phase = STORAGE_RUNNING;
    if (has_record && recovered_policy != m->policy)
        begin_switch_commit(m, recovered_policy, m->policy);
}

/* Guest requests */

static void demand(struct storage_manager *m, uint32_t block)
{
    for (uint32_t i = 0; i < m->demanded_total; i++)
        if (m->demanded[i] == block)
            return;
    m->demanded[m->demanded_total++] = block;
}

/* The range split at block boundaries: the piece starting at lba is (block, first sector, sectors). */
static uint64_t piece_sectors(const struct storage_manager *m, uint64_t lba, uint64_t count)
{
    const struct storage_geometry *g = &m->config.geometry;
    uint64_t end_of_block = storage_first_lba(g, storage_block_of(g, lba)) + g->sectors_per_block;
    return count < end_of_block - lba ? count : end_of_block - lba;
}

static struct storage_segment *add_segment(struct storage_manager *m, uint8_t device, uint8_t kind, uint64_t lba,
                                           uint64_t count, uint64_t offset)
{
    struct storage_segment *s = &m->segments[m->segment_total++];
    s->device = device;
    s->kind = kind;
    s->completed = 0;
    s->ok = 0;
    s->ata_error = 0;
    s->lba = lba;
    s->count = count;
    s->offset = offset;
    s->request_id = 0;
    return s;
}

static int plan_read(struct storage_manager *m, uint64_t lba, uint64_t count)
{
    if (m->policy == STORAGE_NETWORK) {
        add_segment(m, STORAGE_REMOTE, STORAGE_READ_SECTORS, lba, count, 0);
        return 1;
    }
    if (m->policy == STORAGE_PASSTHROUGH) {
        add_segment(m, STORAGE_LOCAL, STORAGE_READ_SECTORS, lba, count, 0);
        return 1;
    }
    for (uint64_t first = lba, left = count; left;) {
        uint64_t n = piece_sectors(m, first, left);
        uint32_t block = storage_block_of(&m->config.geometry, first);
        /* Only a present block may answer from the local disk (no_unpopulated_local_read). */
        uint8_t device = m->blocks[block] == STORAGE_PRESENT ? STORAGE_LOCAL : STORAGE_REMOTE;
        if (device == STORAGE_REMOTE && m->blocks[block] == STORAGE_ABSENT)
            demand(m, block); /* copy-on-read: the guest touched it, fetch it next */
        struct storage_segment *last = m->segment_total ? &m->segments[m->segment_total - 1] : 0;
        if (last && last->device == device)
            last->count += n;
        else
            add_segment(m, device, STORAGE_READ_SECTORS, first, n, first - lba);
        first += n;
        left -= n;
    }
    return 1;
}

static int plan_write(struct storage_manager *m, uint64_t lba, uint64_t count)
{
    const struct storage_geometry *g = &m->config.geometry;
    uint64_t spb = g->sectors_per_block;
    if (m->policy == STORAGE_NETWORK) {
        add_segment(m, STORAGE_REMOTE, STORAGE_WRITE_SECTORS, lba, count, 0);
        return 1;
    }
    if (m->policy == STORAGE_PASSTHROUGH) {
        add_segment(m, STORAGE_LOCAL, STORAGE_WRITE_SECTORS, lba, count, 0);
        return 1;
    }
    uint32_t first_block = storage_block_of(g, lba), last_block = storage_block_of(g, lba + count - 1);
    /* A block being filled or written finishes first, so its local write lands before ours. */
    for (uint32_t block = first_block; block <= last_block; block++)
        if (m->blocks[block] == STORAGE_FETCHING || m->blocks[block] == STORAGE_WRITING)
            return 0;
    /* partial_absent: absent blocks the write covers only in part (only the first and last can be) */
    int partial_absent = 0;
    for (uint64_t first = lba, left = count; left;) {
        uint64_t n = piece_sectors(m, first, left);
        partial_absent |= m->blocks[storage_block_of(g, first)] == STORAGE_ABSENT && n < spb;
        first += n;
        left -= n;
    }
    if (m->policy == STORAGE_INSTALL && partial_absent) {
        /* Wait for the fill: the rest of the block must come from the server first. */
        for (uint64_t first = lba, left = count; left;) {
            uint64_t n = piece_sectors(m, first, left);
            uint32_t block = storage_block_of(g, first);
            if (m->blocks[block] == STORAGE_ABSENT && n < spb)
                demand(m, block);
            first += n;
            left -= n;
        }
        return 0;
    }
    if (m->policy == STORAGE_CACHE) {
        /* Before the first write after a clean commit, the map on disk is marked dirty (persistent_map.py). */
        if (m->durable_clean || m->commit_active) {
            if (!m->commit_active) {
                m->commit_wanted = 1;
                m->commit_wanted_policy = STORAGE_CACHE;
                m->commit_wanted_clean = 0;
            }
            return 0;
        }
        /* The server is authoritative: every write goes there, whatever the local disk does. */
        add_segment(m, STORAGE_REMOTE, STORAGE_WRITE_SECTORS, lba, count, 0);
    }
    for (uint64_t first = lba, left = count; left;) {
        uint64_t n = piece_sectors(m, first, left);
        uint32_t block = storage_block_of(g, first);
        uint8_t state = m->blocks[block];
        first += n;
        left -= n;
        if (state == STORAGE_ABSENT && n < spb)
            continue; /* cache: the server alone has this block */
        if (state == STORAGE_ABSENT)
            /* The whole block is written: no fill needed (dm-clone's whole-region shortcut). */
            transition(m, block, STORAGE_WHOLE_WRITE_STARTED);
        add_segment(m, STORAGE_LOCAL, STORAGE_WRITE_SECTORS, first - n, n, first - n - lba);
    }
    return 1;
}

static int plan_flush(struct storage_manager *m)
{
    if (m->policy == STORAGE_NETWORK || m->policy == STORAGE_CACHE)
        add_segment(m, STORAGE_REMOTE, STORAGE_FLUSH, 0, 0, 0);
    if (m->policy == STORAGE_PASSTHROUGH)
        add_segment(m, STORAGE_LOCAL, STORAGE_FLUSH, 0, 0, 0);
    if (m->policy == STORAGE_CACHE || m->policy == STORAGE_INSTALL) {
        /* Local data and the map that makes it findable after a restart (flush_is_durable). */
        m->commit_wanted = 1;
        m->commit_wanted_policy = m->policy;
        m->commit_wanted_clean = 1;
        m->guest_has_ticket = 1;
        m->guest_ticket = m->commits_started + 1;
    }
    return 1;
}

/* The segments that serve the request now, or 0 if it must wait (and no segment was planned). */
static int plan(struct storage_manager *m)
{
    m->segment_total = 0;
    switch (m->guest.kind) {
    case STORAGE_READ_SECTORS:
        return plan_read(m, m->guest.lba, m->guest.count);
    case STORAGE_WRITE_SECTORS:
        return plan_write(m, m->guest.lba, m->guest.count);
    default:
        return plan_flush(m);
    }
}

static void issue(struct storage_manager *m, uint32_t index)
{
    struct storage_segment *s = &m->segments[index];
    uint8_t *data = m->guest.buffer ? m->guest.buffer + s->offset * STORAGE_SECTOR_BYTES : 0;
    s->request_id = submit(m, s->device, STORAGE_FOR_GUEST, index, s->kind, s->lba, s->count, data);
}

static int needs_server_flush(const struct storage_manager *m)
{
    if (m->policy != STORAGE_CACHE || m->guest.kind != STORAGE_WRITE_SECTORS || m->guest_server_flushed)
        return 0;
    for (uint32_t i = 0; i < m->segment_total; i++)
        if (m->segments[i].device == STORAGE_REMOTE && !m->segments[i].ok)
            return 0;
    return 1;
}

static void finish_local_writes(struct storage_manager *m, int ok)
{
    const struct storage_geometry *g = &m->config.geometry;
    for (uint32_t i = 0; i < m->segment_total; i++) {
        const struct storage_segment *s = &m->segments[i];
        if (s->device != STORAGE_LOCAL)
            continue;
        transition(m, storage_block_of(g, s->lba), s->ok ? STORAGE_WRITE_DONE : STORAGE_WRITE_FAILED);
    }
    if (m->policy == STORAGE_CACHE && !ok) {
        /* The server decides, and may hold the old or the new data: the local copies are dropped. */
        uint32_t last = storage_block_of(g, m->guest.lba + m->guest.count - 1);
        for (uint32_t block = storage_block_of(g, m->guest.lba); block <= last; block++)
            transition(m, block, STORAGE_INVALIDATED);
    }
}

static void finish_guest(struct storage_manager *m)
{
    uint8_t error = 0;
    int ok = 1;
    for (uint32_t i = 0; i < m->segment_total; i++)
        if (!m->segments[i].ok) {
            ok = 0;
            if (!error)
                error = m->segments[i].ata_error;
        }
    ok = ok && (!m->guest_has_ticket || m->guest_ticket_ok);
    if (m->guest.kind == STORAGE_WRITE_SECTORS && (m->policy == STORAGE_CACHE || m->policy == STORAGE_INSTALL))
        finish_local_writes(m, ok);
    m->guest_has_result = 1;
    m->guest_result.ok = (uint8_t)ok;
    m->guest_result.error = ok ? 0 : (error ? error : STORAGE_ERROR_ABRT);
}

static void advance_guest(struct storage_manager *m)
{
    if (!m->guest_active || m->guest_has_result)
        return;
    if (!m->guest_issued) {
        if (m->phase != STORAGE_RUNNING && m->phase != STORAGE_DEVIRTUALIZED)
            return;
        if (!plan(m))
            return;
        m->guest_issued = 1;
        for (uint32_t i = 0; i < m->segment_total; i++)
            issue(m, i);
    }
    for (uint32_t i = 0; i < m->segment_total; i++)
        if (!m->segments[i].completed)
            return;
    if (needs_server_flush(m)) {
        /* Cache write-through is synchronous: the local copy must never be ahead of the server's medium. */
        m->guest_server_flushed = 1;
        add_segment(m, STORAGE_REMOTE, STORAGE_FLUSH, 0, 0, 0);
        issue(m, m->segment_total - 1);
        return;
    }
    if (m->guest_has_ticket && !m->guest_ticket_done)
        return;
    finish_guest(m);
}

/* The fill engine */

/* Blocks an issued guest write covers: no fill may start on them (no_fill_clobber). */
static void guest_write_blocks(const struct storage_manager *m, uint32_t *first, uint32_t *count)
{
    *first = 0;
    *count = 0;
    if (!m->guest_active || !m->guest_issued || m->guest.kind != STORAGE_WRITE_SECTORS)
        return;
    const struct storage_geometry *g = &m->config.geometry;
    *first = storage_block_of(g, m->guest.lba);
    *count = storage_block_of(g, m->guest.lba + m->guest.count - 1) - *first + 1;
}

static void advance_fills(struct storage_manager *m)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < m->demanded_total; i++)
        if (m->blocks[m->demanded[i]] == STORAGE_ABSENT)
            m->demanded[kept++] = m->demanded[i];
    m->demanded_total = kept;
    if (m->phase != STORAGE_RUNNING || !storage_fills_on_demand(m->policy))
        return;
    uint32_t excluded_first, excluded_count, chosen[STORAGE_MAX_FILLS];
    uint64_t spent;
    guest_write_blocks(m, &excluded_first, &excluded_count);
    uint32_t total = storage_choose_fills(m->blocks, m->config.geometry.block_count, m->demanded, m->demanded_total,
                                          excluded_first, excluded_count, fill_total(m), m->tokens, &m->config.fill,
                                          storage_fills_in_background(m->policy), m->guest_active, chosen, &spent);
    m->tokens -= spent;
    for (uint32_t i = 0; i < total; i++) {
        uint32_t block = chosen[i];
        transition(m, block, STORAGE_FILL_STARTED);
        struct storage_fill *fill = 0;
        for (int slot = 0; slot < STORAGE_MAX_FILLS && !fill; slot++)
            if (!m->fills[slot].used)
                fill = &m->fills[slot];
        fill->used = 1;
        fill->block = block;
        fill->stage = STORAGE_FILL_READING;
        const struct storage_geometry *g = &m->config.geometry;
        submit(m, STORAGE_REMOTE, STORAGE_FILL_READ, block, STORAGE_READ_SECTORS, storage_first_lba(g, block),
               g->sectors_per_block, fill_buffer(m, fill));
    }
}

static void fill_read_done(struct storage_manager *m, uint32_t block, const struct storage_completion *completion)
{
    if (!completion->ok) {
        finish_fill(m, block, 0);
        return;
    }
    struct storage_fill *fill = find_fill(m, block);
    fill->stage = STORAGE_FILL_WRITING;
    const struct storage_geometry *g = &m->config.geometry;
    submit(m, STORAGE_LOCAL, STORAGE_FILL_WRITE, block, STORAGE_WRITE_SECTORS, storage_first_lba(g, block),
           g->sectors_per_block, fill_buffer(m, fill));
}

static void finish_fill(struct storage_manager *m, uint32_t block, int ok)
{
    find_fill(m, block)->used = 0;
    transition(m, block, ok ? STORAGE_FILL_DONE : STORAGE_FILL_FAILED);
    if (ok)
        m->fills_since_commit++;
    if (m->policy == STORAGE_INSTALL && m->fills_since_commit >= m->config.fill.commit_every && !m->commit_wanted) {
        m->commit_wanted = 1;
        m->commit_wanted_policy = STORAGE_INSTALL;
        m->commit_wanted_clean = 1;
    }
}

/* Map commits */

static void advance_commit(struct storage_manager *m)
{
    uint32_t blocks = m->config.geometry.block_count;
    if (m->policy == STORAGE_INSTALL && !m->commit_active && !m->commit_wanted) {
        /* A complete install is committed at once: a restart then finds it complete. */
        int all_present = 1, all_persisted = 1;
        for (uint32_t block = 0; block < blocks; block++) {
            all_present &= m->blocks[block] == STORAGE_PRESENT;
            all_persisted &= storage_bit(m->persisted, block);
        }
        if (all_present && !all_persisted) {
            m->commit_wanted = 1;
            m->commit_wanted_policy = STORAGE_INSTALL;
            m->commit_wanted_clean = 1;
        }
    }
    if (m->commit_active || !m->commit_wanted || m->phase == STORAGE_STARTING)
        return;
    m->commit_wanted = 0;
    m->commits_started++;
    m->fills_since_commit = 0;
    /* A cache map is clean only if no guest write is in flight while its data is flushed. */
    uint32_t first, count;
    guest_write_blocks(m, &first, &count);
    m->commit_active = 1;
    m->commit_number = m->commits_started;
    m->commit_policy = m->commit_wanted_policy;
    m->commit_clean = m->commit_wanted_clean && count == 0;
    m->commit_step = STORAGE_FLUSH_BEFORE;
    /* The snapshot is taken as the first flush is issued: only data written before it is durable after it. */
    for (uint32_t block = 0; block < blocks; block++)
        storage_set_bit(m->snapshot, block, m->blocks[block] == STORAGE_PRESENT);
    m->commit_request_id = submit(m, STORAGE_LOCAL, STORAGE_FOR_COMMIT, 0, STORAGE_FLUSH, 0, 0, 0);
}

static void continue_commit(struct storage_manager *m, int ok)
{
    const struct storage_geometry *g = &m->config.geometry;
    if (ok && m->commit_step == STORAGE_FLUSH_BEFORE) {
        m->commit_step = STORAGE_WRITE_MAP;
        storage_encode_map(m->map_io, m->next_generation, m->commit_policy, m->commit_clean, m->snapshot, g,
                           m->config.identity);
        m->commit_request_id = submit(m, STORAGE_LOCAL, STORAGE_FOR_COMMIT, 0, STORAGE_WRITE_SECTORS,
                                      storage_slot_lba(g, m->next_slot), storage_slot_sectors(g), m->map_io);
        return;
    }
    if (ok && m->commit_step == STORAGE_WRITE_MAP) {
        m->commit_step = STORAGE_FLUSH_AFTER;
        m->commit_request_id = submit(m, STORAGE_LOCAL, STORAGE_FOR_COMMIT, 0, STORAGE_FLUSH, 0, 0, 0);
        return;
    }
    if (m->commit_step != STORAGE_FLUSH_BEFORE) {
        /* The slot was written, perhaps only partly: its generation is used up either way. */
        m->next_generation++;
        if (m->commit_clean && m->commit_policy == STORAGE_CACHE)
            m->durable_clean = 1;
    }
    if (ok) {
        for (uint32_t block = 0; block < g->block_count; block++)
            storage_set_bit(m->persisted, block, storage_bit(m->snapshot, block));
        m->next_slot = (uint8_t)(1 - m->next_slot);
        m->durable_clean = m->commit_policy == STORAGE_CACHE && m->commit_clean;
    }
    if (m->has_switch_commit_number && m->switch_commit_number == m->commit_number) {
        m->switch_commit_done = 1;
        m->switch_commit_ok = (uint8_t)ok;
    }
    if (m->guest_active && m->guest_has_ticket && m->guest_ticket == m->commit_number) {
        m->guest_ticket_done = 1;
        m->guest_ticket_ok = (uint8_t)ok;
    }
    m->commit_active = 0;
}

/* Policy changes */

/* The map commit a change needs, so a restart cannot undo it; the change completes with it. */
static void begin_switch_commit(struct storage_manager *m, uint8_t old, uint8_t new_policy)
{
    m->phase = STORAGE_SWITCHING;
    m->has_pending_policy = 0;
    if (old == STORAGE_NETWORK)
        /* Fills and cached copies read the server: what they read must not vanish in a server crash. */
        m->switch_flush = 1;
    if (new_policy == STORAGE_NETWORK && m->config.has_local) {
        /* The local copy is about to go stale: an empty dirty cache map supersedes any clean one. */
        m->switch_commit = 1;
        m->switch_commit_policy = STORAGE_CACHE;
        m->switch_commit_clean = 0;
    } else if (new_policy == STORAGE_INSTALL && old == STORAGE_CACHE) {
        /* From now on local data may be newer than the server's: an install map forbids booting into cache. */
        m->switch_commit = 1;
        m->switch_commit_policy = STORAGE_INSTALL;
        m->switch_commit_clean = 1;
    }
}

/* The change's commit is asked for until one succeeds: a failed one may have left the old map in force. */
static void advance_switch_commit(struct storage_manager *m)
{
    if (!m->switch_commit || m->commit_active || m->commit_wanted)
        return;
    if (m->has_switch_commit_number && m->switch_commit_done && m->switch_commit_ok) {
        m->switch_commit = 0;
        m->has_switch_commit_number = 0;
        return;
    }
    m->commit_wanted = 1;
    m->commit_wanted_policy = m->switch_commit_policy;
    m->commit_wanted_clean = m->switch_commit_clean;
    m->has_switch_commit_number = 1;
    m->switch_commit_number = m->commits_started + 1;
    m->switch_commit_done = 0;
    m->switch_commit_ok = 0;
}

static void advance_switch(struct storage_manager *m)
{
    if (m->phase != STORAGE_SWITCHING)
        return;
    int quiescent = !m->guest_active || !m->guest_issued;
    if (m->has_pending_policy) {
        if (!quiescent || fill_total(m) || m->commit_active || m->commit_wanted)
            return;
        uint8_t old = m->policy, wanted = m->pending_policy;
        set_policy(m, wanted);
        if (wanted == STORAGE_NETWORK) {
            for (uint32_t block = 0; block < m->config.geometry.block_count; block++)
                transition(m, block, STORAGE_INVALIDATED);
            m->demanded_total = 0;
        }
        begin_switch_commit(m, old, wanted);
        return;
    }
    if (m->switch_flush) {
        int flushing = 0;
        for (uint32_t i = 0; i < m->outstanding_capacity; i++)
            flushing |= m->remote_outstanding[i].used && m->remote_outstanding[i].purpose == STORAGE_SWITCH_FLUSH;
        if (!flushing)
            submit(m, STORAGE_REMOTE, STORAGE_SWITCH_FLUSH, 0, STORAGE_FLUSH, 0, 0, 0);
    }
    advance_switch_commit(m);
    if (!m->commit_active && !m->commit_wanted && !m->switch_flush && !m->switch_commit)
        m->phase = STORAGE_RUNNING;
}

static void advance(struct storage_manager *m)
{
    if (m->phase == STORAGE_STARTING)
        return;
    advance_switch(m);
    advance_guest(m);
    advance_commit(m);
    advance_fills(m);
    advance_guest(m);
    advance_switch(m);
}

size_t storage_manager_state_bytes(void)
{
    return sizeof(struct storage_manager);
}
