/* The AoE initiator (spec/aoe/initiator.py): the same functions in the same order, the same checks. */
#include "aoe_initiator.h"

#include "aoe_constants.h"
#include "aoe_frame.h"

#define ATA_ERROR_TARGET_SILENT AOE_ATA_ERROR_BIT_ABRT /* failed without an ATA answer: aborted */

static const uint8_t BROADCAST_MAC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static int same_mac(const uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < 6; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static void copy_mac(uint8_t *to, const uint8_t *from)
{
    for (int i = 0; i < 6; i++)
        to[i] = from[i];
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint8_t command_of(uint8_t kind)
{
    int config = kind == AOE_KIND_DISCOVER || kind == AOE_KIND_VERIFY || kind == AOE_KIND_RECLAIM;
    return config ? AOE_COMMAND_QUERY_CONFIG : AOE_COMMAND_ATA;
}

/* Ordered index lists: removal keeps the order of the others. */

static void list_remove_at(uint16_t *list, uint16_t *total, uint16_t at)
{
    for (uint16_t i = at; i + 1 < *total; i++)
        list[i] = list[i + 1];
    (*total)--;
}

static void list_remove(uint16_t *list, uint16_t *total, uint16_t value)
{
    for (uint16_t i = 0; i < *total; i++)
        if (list[i] == value) {
            list_remove_at(list, total, i);
            return;
        }
}

static int find_outstanding(const struct aoe_initiator *s, uint32_t tag)
{
    for (uint16_t i = 0; i < s->outstanding_total; i++)
        if (s->fragments[s->outstanding[i]].tag == tag)
            return s->outstanding[i];
    return -1;
}

static int free_fragment_count(const struct aoe_initiator *s)
{
    int free = 0;
    for (int i = 0; i < AOE_MAX_FRAGMENTS; i++)
        free += !s->fragments[i].used;
    return free;
}

static int new_fragment(struct aoe_initiator *s, uint16_t request, uint8_t kind, uint64_t lba, uint32_t count,
                        const uint8_t *data)
{
    for (int i = 0; i < AOE_MAX_FRAGMENTS; i++)
        if (!s->fragments[i].used) {
            struct aoe_fragment *f = &s->fragments[i];
            f->used = 1;
            f->kind = kind;
            f->has_tag = 0;
            f->request = request;
            f->lba = lba;
            f->count = count;
            f->data = data;
            f->tag = 0;
            f->sent_at = 0;
            f->rto = 0;
            return i;
        }
    return -1;
}

static uint64_t fragments_needed(const struct aoe_initiator *s, const struct aoe_request *r)
{
    if (r->kind == AOE_KIND_FLUSH)
        return 1;
    return (r->count + s->max_sectors - 1) / s->max_sectors;
}

/* Internals, in the spec's order. */

static void transmit(struct aoe_initiator *s, uint16_t index, int fresh_timer);
static void dispatch(struct aoe_initiator *s);

static int advance(struct aoe_initiator *s, uint64_t now)
{
    /* time never runs backwards */
    if (now < s->now)
        return AOE_ERR_TIME;
    s->now = now;
    return AOE_OK;
}

/* Cut a request into frames of at most max_sectors sectors each (AoEr11 §3.1). */
static void split(struct aoe_initiator *s, uint16_t slot)
{
    struct aoe_request *r = &s->requests[slot];
    if (r->kind == AOE_KIND_FLUSH) {
        s->pending[s->pending_total++] = (uint16_t)new_fragment(s, slot, AOE_KIND_FLUSH, 0, 0, 0);
        r->fragments_left = 1;
        return;
    }
    for (uint64_t offset = 0; offset < r->count; offset += s->max_sectors) {
        uint32_t count = (uint32_t)min_u64(s->max_sectors, r->count - offset);
        const uint8_t *piece = r->kind == AOE_KIND_WRITE ? r->data + offset * AOE_SECTOR_BYTES : 0;
        s->pending[s->pending_total++] = (uint16_t)new_fragment(s, slot, r->kind, r->lba + offset, count, piece);
        r->fragments_left++;
    }
}

static void finish(struct aoe_initiator *s, uint16_t slot, int ok, uint8_t ata_error, uint8_t aoe_error)
{
    struct aoe_request *r = &s->requests[slot];
    uint16_t at = (uint16_t)((s->completion_first + s->completion_total) % AOE_MAX_REQUESTS);
    s->completions[at].request_id = r->request_id;
    s->completions[at].ok = (uint8_t)ok;
    s->completions[at].ata_error = ata_error;
    s->completions[at].aoe_error = aoe_error;
    s->completion_total++;
    r->used = 0;
    list_remove(s->request_order, &s->request_total, slot);
}

/* Abandon every fragment of a request; copies already sent stay fenced until they age out. */
static void fail(struct aoe_initiator *s, uint16_t slot, uint8_t ata_error, uint8_t aoe_error)
{
    for (uint16_t i = 0; i < s->pending_total;) {
        uint16_t index = s->pending[i];
        struct aoe_fragment *f = &s->fragments[index];
        if (f->request != slot) {
            i++;
            continue;
        }
        if (f->has_tag)
            list_remove(s->outstanding, &s->outstanding_total, index);
        list_remove_at(s->pending, &s->pending_total, i);
        f->used = 0;
    }
    s->requests[slot].fragments_left = 0;
    finish(s, slot, 0, ata_error, aoe_error);
}

static int64_t submit(struct aoe_initiator *s, uint8_t kind, uint64_t lba, uint64_t count, const uint8_t *data,
                      uint8_t *buffer)
{
    int slot = -1;
    /* Room for the request and, later, for its completion. */
    if (s->request_total + s->completion_total >= AOE_MAX_REQUESTS)
        return AOE_ERR_FULL;
    for (int i = 0; i < AOE_MAX_REQUESTS; i++)
        if (!s->requests[i].used) {
            slot = i;
            break;
        }
    struct aoe_request *r = &s->requests[slot];
    r->kind = kind;
    r->lba = lba;
    r->count = count;
    r->data = data;
    r->buffer = buffer;
    r->fragments_left = 0;
    /* Room for its fragments once the target's limits are known. */
    if (s->discovered && fragments_needed(s, r) > (uint64_t)free_fragment_count(s))
        return AOE_ERR_FULL;
    r->used = 1;
    r->request_id = s->next_request_id++;
    r->progress_at = s->now;
    s->request_order[s->request_total++] = (uint16_t)slot;
    /* its frames leave on the next tick or receive, which carry the time */
    if (s->discovered)
        split(s, (uint16_t)slot);
    return (int64_t)r->request_id;
}

static int fenced(const struct aoe_initiator *s, const struct aoe_fragment *f)
{
    for (uint16_t i = 0; i < s->fence_total; i++) {
        const struct aoe_fence *fence = &s->fences[i];
        if (fence->until > s->now && fence->lba < f->lba + f->count && f->lba < fence->lba + fence->count)
            return 1;
    }
    return 0;
}

static int overlaps(const struct aoe_fragment *a, const struct aoe_fragment *b)
{
    return a->lba < b->lba + b->count && b->lba < a->lba + a->count;
}

static int may_send(const struct aoe_initiator *s, const struct aoe_fragment *f, uint16_t earlier)
{
    /* a flush waits for everything before it */
    if (s->requests[f->request].kind == AOE_KIND_FLUSH)
        return earlier == 0;
    for (uint16_t i = 0; i < earlier; i++) {
        const struct aoe_fragment *other = &s->fragments[s->pending[i]];
        /* nothing passes a flush, in any of its steps */
        if (s->requests[other->request].kind == AOE_KIND_FLUSH)
            return 0;
        /* same sectors, one a write: keep submission order */
        if ((f->kind == AOE_KIND_WRITE || other->kind == AOE_KIND_WRITE) && overlaps(f, other))
            return 0;
    }
    /* a write waits until every earlier copy of a write to its sectors has aged out */
    if (f->kind == AOE_KIND_WRITE)
        return !fenced(s, f);
    return 1;
}

static void add_fence(struct aoe_initiator *s, const struct aoe_fragment *f, uint64_t until)
{
    /* Fences that ran out fence nothing: drop them to make room. */
    for (uint16_t i = 0; i < s->fence_total;) {
        if (s->fences[i].until <= s->now)
            s->fences[i] = s->fences[--s->fence_total];
        else
            i++;
    }
    if (s->fence_total == AOE_MAX_FENCES) {
        /* At capacity, widen the last fence to cover this one too: fences more, never less. */
        struct aoe_fence *last = &s->fences[AOE_MAX_FENCES - 1];
        uint64_t end = last->lba + last->count > f->lba + f->count ? last->lba + last->count : f->lba + f->count;
        last->lba = last->lba < f->lba ? last->lba : f->lba;
        last->count = end - last->lba;
        last->until = until;
        return;
    }
    s->fences[s->fence_total].lba = f->lba;
    s->fences[s->fence_total].count = f->count;
    s->fences[s->fence_total].until = until;
    s->fence_total++;
}

static void encode(struct aoe_initiator *s, const struct aoe_fragment *f, struct aoe_outgoing *out)
{
    const struct aoe_config *c = &s->config;
    aoe_encode_headers(out->head, s->target_mac, c->mac, c->major, c->minor, command_of(f->kind), f->tag);
    uint8_t *argument = out->head + AOE_ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES;
    out->head_bytes = AOE_ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES + AOE_ATA_ARG_BYTES;
    out->data = 0;
    out->data_bytes = 0;
    const uint8_t *token = c->epoch_token;
    uint16_t token_bytes = (uint16_t)c->epoch_token_bytes;
    switch (f->kind) {
    case AOE_KIND_DISCOVER:
    case AOE_KIND_VERIFY:
    case AOE_KIND_RECLAIM:
        out->head_bytes = AOE_ETHERNET_HEADER_BYTES + AOE_HEADER_BYTES + AOE_CONFIG_ARG_BYTES;
        if (f->kind == AOE_KIND_VERIFY || (f->kind == AOE_KIND_DISCOVER && !token_bytes)) {
            aoe_encode_config_argument(argument, AOE_CONFIG_COMMAND_READ, 0);
            break;
        }
        /* discovery with a token, and a reclaim: claim the target with our token */
        aoe_encode_config_argument(argument, AOE_CONFIG_COMMAND_FORCE_SET, token_bytes);
        out->data = token;
        out->data_bytes = token_bytes;
        break;
    case AOE_KIND_READ:
        aoe_encode_ata_argument(argument, AOE_ATA_FLAG_EXTENDED, (uint8_t)f->count, AOE_ATA_READ_SECTORS_EXT, f->lba);
        break;
    case AOE_KIND_WRITE:
        aoe_encode_ata_argument(argument, AOE_ATA_FLAG_EXTENDED | AOE_ATA_FLAG_WRITE, (uint8_t)f->count,
                                AOE_ATA_WRITE_SECTORS_EXT, f->lba);
        out->data = f->data;
        out->data_bytes = f->count * AOE_SECTOR_BYTES;
        break;
    default:
        aoe_encode_ata_argument(argument, 0, 0, AOE_ATA_FLUSH_CACHE, 0); /* FLUSH CACHE: vblade aborts the EXT form */
        break;
    }
}

/* Send (or resend) a fragment under a tag no transmission in flight uses. */
static void transmit(struct aoe_initiator *s, uint16_t index, int fresh_timer)
{
    struct aoe_fragment *f = &s->fragments[index];
    while (find_outstanding(s, s->next_tag) >= 0)
        s->next_tag++;
    f->tag = s->next_tag++;
    f->has_tag = 1;
    f->sent_at = s->now;
    if (fresh_timer)
        f->rto = aoe_rtt_rto(&s->estimator);
    s->outstanding[s->outstanding_total++] = index;
    if (f->kind == AOE_KIND_WRITE)
        add_fence(s, f, s->now + s->config.timing.max_frame_age + 1); /* a copy may still land at exactly max_frame_age */
    uint16_t at = (uint16_t)((s->outgoing_first + s->outgoing_total) % AOE_MAX_OUTGOING);
    encode(s, f, &s->outgoing[at]);
    s->outgoing_total++;
}

/* Whether dispatch would send a queued fragment now. */
static int has_sendable(const struct aoe_initiator *s)
{
    if (!s->discovered || s->outstanding_total >= aoe_window(s))
        return 0;
    for (uint16_t i = 0; i < s->pending_total; i++) {
        const struct aoe_fragment *f = &s->fragments[s->pending[i]];
        if (!f->has_tag && may_send(s, f, i))
            return 1;
    }
    return 0;
}

/* Send queued fragments in submission order while the window and the ordering rules allow. */
static void dispatch(struct aoe_initiator *s)
{
    /* the target's limits are not known yet */
    if (!s->discovered)
        return;
    for (uint16_t i = 0; i < s->pending_total; i++) {
        if (s->outstanding_total >= aoe_window(s))
            return;
        struct aoe_fragment *f = &s->fragments[s->pending[i]];
        if (!f->has_tag && may_send(s, f, i)) {
            transmit(s, s->pending[i], 1);
            s->requests[f->request].progress_at = s->now;
        }
    }
}

static void process_config_response(struct aoe_initiator *s, const struct aoe_response *response, uint16_t index)
{
    struct aoe_fragment *f = &s->fragments[index];
    /* a refusal teaches nothing: ask again when the timer runs out */
    if (response->flags & AOE_HEADER_FLAG_ERROR) {
        s->ignored_frames++;
        return;
    }
    list_remove(s->outstanding, &s->outstanding_total, index);
    aoe_rtt_sample(&s->estimator, s->now - f->sent_at);
    /* AoEr11 §3.2: a sector count of 0 means 2 */
    uint64_t advertised = response->sector_count ? response->sector_count : AOE_DEFAULT_MAX_SECTORS;
    uint64_t per_frame = s->config.mtu > AOE_MTU_OVERHEAD_BYTES ? (s->config.mtu - AOE_MTU_OVERHEAD_BYTES) / AOE_SECTOR_BYTES : 0;
    uint64_t max_sectors = min_u64(min_u64(advertised, per_frame), AOE_MAX_SECTOR_COUNT_FIELD);
    s->max_sectors = (uint32_t)(max_sectors > 1 ? max_sectors : 1);
    s->buffer_count = response->buffer_count;
    copy_mac(s->target_mac, response->source);
    s->discovered = 1;
    f->used = 0;
    s->discovery = AOE_TAG_NONE;
    /* Requests submitted before discovery, in submission order. */
    for (uint16_t i = 0; i < s->request_total;) {
        uint16_t slot = s->request_order[i];
        if (fragments_needed(s, &s->requests[slot]) > (uint64_t)free_fragment_count(s)) {
            fail(s, slot, AOE_ATA_ERROR_BIT_ABRT, 0); /* capacity: its fragments do not fit */
            continue;
        }
        split(s, slot);
        i++;
    }
}

/* The live transmission of a fragment got its answer. */
static void answered(struct aoe_initiator *s, uint16_t index)
{
    struct aoe_fragment *f = &s->fragments[index];
    list_remove(s->outstanding, &s->outstanding_total, index);
    aoe_rtt_sample(&s->estimator, s->now - f->sent_at);
    s->requests[f->request].progress_at = s->now;
}

/* Send the next step of a multi-step request; it keeps its place (and its barrier) in pending. */
static void next_step(struct aoe_initiator *s, uint16_t index, uint8_t kind)
{
    s->fragments[index].kind = kind;
    transmit(s, index, 1);
}

static void fragment_done(struct aoe_initiator *s, uint16_t index)
{
    struct aoe_fragment *f = &s->fragments[index];
    uint16_t slot = f->request;
    list_remove(s->pending, &s->pending_total, index);
    f->used = 0;
    if (--s->requests[slot].fragments_left == 0)
        finish(s, slot, 1, 0, 0);
}

static void process_ata_response(struct aoe_initiator *s, const struct aoe_response *response, uint16_t index)
{
    struct aoe_fragment *f = &s->fragments[index];
    uint16_t slot = f->request;
    struct aoe_request *r = &s->requests[slot];
    /* the target refused the AoE message */
    if (response->flags & AOE_HEADER_FLAG_ERROR) {
        fail(s, slot, AOE_ATA_ERROR_BIT_ABRT, response->error);
        return;
    }
    /* the ATA command failed (IDNF, ABRT, UNC) */
    if (response->cmd_status & (AOE_ATA_STATUS_ERR | AOE_ATA_STATUS_DF)) {
        fail(s, slot, response->err_feature ? response->err_feature : AOE_ATA_ERROR_BIT_ABRT, 0);
        return;
    }
    /* a read answer without its sectors: wait for the retransmission */
    if (f->kind == AOE_KIND_READ && response->data_bytes < (size_t)f->count * AOE_SECTOR_BYTES) {
        s->ignored_frames++;
        return;
    }
    answered(s, index);
    if (f->kind == AOE_KIND_FLUSH && s->config.epoch_token_bytes) {
        next_step(s, index, AOE_KIND_VERIFY); /* durable only if the target that flushed took the writes */
        return;
    }
    if (f->kind == AOE_KIND_READ) {
        uint8_t *to = r->buffer + (f->lba - r->lba) * AOE_SECTOR_BYTES;
        for (size_t i = 0; i < (size_t)f->count * AOE_SECTOR_BYTES; i++)
            to[i] = response->data[i];
    }
    fragment_done(s, index);
}

static int same_bytes(const uint8_t *a, const uint8_t *b, uint32_t bytes)
{
    for (uint32_t i = 0; i < bytes; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* A flush's check that the target has not restarted since it was claimed (spec/aoe/README.md). */
static void process_epoch_response(struct aoe_initiator *s, const struct aoe_response *response, uint16_t index)
{
    struct aoe_fragment *f = &s->fragments[index];
    /* a refusal teaches nothing: ask again when the timer runs out */
    if (response->flags & AOE_HEADER_FLAG_ERROR) {
        s->ignored_frames++;
        return;
    }
    answered(s, index);
    const struct aoe_config *c = &s->config;
    if (f->kind == AOE_KIND_RECLAIM)
        fail(s, f->request, AOE_ATA_ERROR_BIT_ABRT, 0); /* writes acknowledged before the restart may be lost */
    else if (response->config_bytes == c->epoch_token_bytes && same_bytes(response->config, c->epoch_token, c->epoch_token_bytes))
        fragment_done(s, index); /* same incarnation since the claim: the flush covered every write */
    else {
        s->target_restarts++; /* the target restarted and forgot our token, and any unflushed write */
        next_step(s, index, AOE_KIND_RECLAIM);
    }
}

/* The public interface. */

int aoe_initiator_init(struct aoe_initiator *s, const struct aoe_config *config, uint64_t now)
{
    /* the window is bounded by the state's own tables */
    if (config->max_window > AOE_MAX_WINDOW)
        return AOE_ERR_CONFIG;
    /* the epoch token must fit the 1024-byte config string */
    if (config->epoch_token_bytes > AOE_CONFIG_STRING_MAX)
        return AOE_ERR_CONFIG;
    uint8_t *bytes = (uint8_t *)s;
    for (size_t i = 0; i < sizeof *s; i++)
        bytes[i] = 0;
    s->config = *config;
    s->now = now;
    s->next_request_id = 1;
    const struct aoe_timing *t = &config->timing;
    aoe_rtt_init(&s->estimator, t->initial_rto, t->min_rto, t->max_rto);
    copy_mac(s->target_mac, config->target_mac);
    s->discovery = (uint16_t)new_fragment(s, 0, AOE_KIND_DISCOVER, 0, 0, 0);
    transmit(s, s->discovery, 1);
    return AOE_OK;
}

int64_t aoe_submit_read(struct aoe_initiator *s, uint64_t lba, uint64_t count, uint8_t *buffer)
{
    /* a request covers at least one sector */
    if (count == 0)
        return AOE_ERR_EMPTY;
    /* the sectors must lie within the 48-bit address space */
    if (count > AOE_LBA48_LIMIT || lba > AOE_LBA48_LIMIT - count)
        return AOE_ERR_RANGE;
    return submit(s, AOE_KIND_READ, lba, count, 0, buffer);
}

int64_t aoe_submit_write(struct aoe_initiator *s, uint64_t lba, const uint8_t *data, uint64_t bytes)
{
    /* write data must be a positive whole number of 512-byte sectors */
    if (bytes == 0 || bytes % AOE_SECTOR_BYTES)
        return AOE_ERR_DATA;
    uint64_t count = bytes / AOE_SECTOR_BYTES;
    /* the sectors must lie within the 48-bit address space */
    if (count > AOE_LBA48_LIMIT || lba > AOE_LBA48_LIMIT - count)
        return AOE_ERR_RANGE;
    return submit(s, AOE_KIND_WRITE, lba, count, data, 0);
}

int64_t aoe_submit_flush(struct aoe_initiator *s)
{
    return submit(s, AOE_KIND_FLUSH, 0, 0, 0, 0);
}

/* Match one received frame to the transmission it answers; anything else changes nothing. */
int aoe_receive(struct aoe_initiator *s, const uint8_t *frame, size_t bytes, uint64_t now)
{
    struct aoe_response response;
    if (advance(s, now) != AOE_OK)
        return AOE_ERR_TIME;
    /* not an AoE frame, or a broken one */
    if (!aoe_decode_response(frame, bytes, &response)) {
        s->ignored_frames++;
        return AOE_OK;
    }
    int index = find_outstanding(s, response.tag);
    if (!(response.flags & AOE_HEADER_FLAG_RESPONSE) || !same_mac(response.destination, s->config.mac))
        s->ignored_frames++; /* a request, or a frame for another station */
    else if (index < 0)
        s->ignored_frames++; /* stale: a duplicate, or the answer to a transmission already retransmitted */
    else if (!same_mac(s->target_mac, BROADCAST_MAC) && !same_mac(response.source, s->target_mac))
        s->ignored_frames++; /* another station answering with our tag */
    else if (response.major != s->config.major || response.minor != s->config.minor)
        s->ignored_frames++; /* another shelf or slot */
    else if (response.command != command_of(s->fragments[index].kind))
        s->ignored_frames++; /* an answer to a different kind of request */
    else if (s->fragments[index].kind == AOE_KIND_DISCOVER)
        process_config_response(s, &response, (uint16_t)index);
    else if (s->fragments[index].kind == AOE_KIND_VERIFY || s->fragments[index].kind == AOE_KIND_RECLAIM)
        process_epoch_response(s, &response, (uint16_t)index);
    else
        process_ata_response(s, &response, (uint16_t)index);
    dispatch(s);
    return AOE_OK;
}

/* Let time pass: retransmit what timed out, fail requests past their deadline, send what may go. */
int aoe_tick(struct aoe_initiator *s, uint64_t now)
{
    uint16_t due[AOE_MAX_OUTSTANDING];
    uint16_t due_total = 0;
    if (advance(s, now) != AOE_OK)
        return AOE_ERR_TIME;
    for (uint16_t i = 0; i < s->outstanding_total; i++) {
        const struct aoe_fragment *f = &s->fragments[s->outstanding[i]];
        if (now >= f->sent_at + f->rto)
            due[due_total++] = s->outstanding[i];
    }
    for (uint16_t i = 0; i < due_total; i++) {
        struct aoe_fragment *f = &s->fragments[due[i]];
        list_remove(s->outstanding, &s->outstanding_total, due[i]); /* its answer is stale from now on */
        f->rto = min_u64(2 * f->rto, s->config.timing.max_rto); /* exponential backoff */
        transmit(s, due[i], 0);
    }
    uint16_t late[AOE_MAX_REQUESTS];
    uint16_t late_total = 0;
    for (uint16_t i = 0; i < s->request_total; i++)
        if (now - s->requests[s->request_order[i]].progress_at >= s->config.timing.deadline)
            late[late_total++] = s->request_order[i];
    for (uint16_t i = 0; i < late_total; i++)
        fail(s, late[i], ATA_ERROR_TARGET_SILENT, 0); /* the target is silent: the guest's command fails */
    for (uint16_t i = 0; i < s->fence_total;) {
        if (s->fences[i].until <= now)
            s->fences[i] = s->fences[--s->fence_total]; /* expired fences */
        else
            i++;
    }
    dispatch(s);
    return AOE_OK;
}

size_t aoe_take_outgoing(struct aoe_initiator *s, uint8_t *out, size_t capacity)
{
    if (s->outgoing_total == 0)
        return 0;
    const struct aoe_outgoing *o = &s->outgoing[s->outgoing_first];
    size_t bytes = (size_t)o->head_bytes + o->data_bytes;
    if (bytes > capacity)
        return 0;
    for (uint32_t i = 0; i < o->head_bytes; i++)
        out[i] = o->head[i];
    for (uint32_t i = 0; i < o->data_bytes; i++)
        out[o->head_bytes + i] = o->data[i];
    s->outgoing_first = (uint16_t)((s->outgoing_first + 1) % AOE_MAX_OUTGOING);
    s->outgoing_total--;
    return bytes;
}

int aoe_take_completion(struct aoe_initiator *s, struct aoe_completion *completion)
{
    if (s->completion_total == 0)
        return 0;
    *completion = s->completions[s->completion_first];
    s->completion_first = (uint16_t)((s->completion_first + 1) % AOE_MAX_REQUESTS);
    s->completion_total--;
    return 1;
}

size_t aoe_in_flight(const struct aoe_initiator *s, struct aoe_in_flight *out, size_t capacity)
{
    size_t total = 0;
    for (uint16_t i = 0; i < s->outstanding_total && total < capacity; i++) {
        const struct aoe_fragment *f = &s->fragments[s->outstanding[i]];
        out[total].tag = f->tag;
        out[total].kind = f->kind;
        out[total].lba = f->lba;
        out[total].count = f->count;
        total++;
    }
    return total;
}

/* How many frames may be in flight: the target's buffer count, capped by our own limit. */
uint32_t aoe_window(const struct aoe_initiator *s)
{
    uint32_t buffers = s->discovered && s->buffer_count ? s->buffer_count : 1;
    uint32_t window = buffers < s->config.max_window ? buffers : s->config.max_window;
    return window > 1 ? window : 1;
}

/* The earliest time at which tick has something to do, or 0 when there is none. */
int aoe_next_timer(const struct aoe_initiator *s, uint64_t *when)
{
    int any = 0;
    uint64_t best = 0;
    for (uint16_t i = 0; i < s->outstanding_total; i++) {
        const struct aoe_fragment *f = &s->fragments[s->outstanding[i]];
        uint64_t t = f->sent_at + f->rto;
        best = any ? min_u64(best, t) : t;
        any = 1;
    }
    for (uint16_t i = 0; i < s->request_total; i++) {
        uint64_t t = s->requests[s->request_order[i]].progress_at + s->config.timing.deadline;
        best = any ? min_u64(best, t) : t;
        any = 1;
    }
    /* A sector's fence is the latest until of the ranges covering it (the spec keeps one per sector); it
     * is constant between range boundaries, so evaluating it at every boundary finds its minimum. */
    for (uint16_t i = 0; i < 2 * s->fence_total; i++) {
        const struct aoe_fence *edge = &s->fences[i / 2];
        uint64_t point = i % 2 ? edge->lba + edge->count : edge->lba;
        uint64_t fence = 0;
        for (uint16_t j = 0; j < s->fence_total; j++) {
            const struct aoe_fence *f = &s->fences[j];
            if (f->lba <= point && point < f->lba + f->count && f->until > fence)
                fence = f->until;
        }
        if (fence > s->now) {
            best = any ? min_u64(best, fence) : fence;
            any = 1;
        }
    }
    if (has_sendable(s)) {
        best = any ? min_u64(best, s->now) : s->now;
        any = 1;
    }
    *when = best;
    return any;
}

uint64_t aoe_ignored_frames(const struct aoe_initiator *s)
{
    return s->ignored_frames;
}

uint64_t aoe_target_restarts(const struct aoe_initiator *s)
{
    return s->target_restarts;
}

size_t aoe_initiator_state_bytes(void)
{
    return sizeof(struct aoe_initiator);
}
