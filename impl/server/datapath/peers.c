/* UDP: which sender address owns a client MAC, as spec/aoe/udp_peers.py specifies. Over UDP a
 * datagram's Ethernet source says nothing about who sent it, so a MAC (and with it the client's
 * overlay) belongs to the address that used it first, until that address has been silent for the
 * takeover time: a QEMU restarted on a new port gets its disk back, no other sender reaches it
 * meanwhile. The table holds at most `limit` MACs. When it is full, MACs silent for the takeover
 * time are forgotten; when none is, a new MAC is refused until one is, so a sender inventing MACs
 * cannot grow the server's memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "datapath.h"

#define INITIAL_SLOTS 64u

struct owner {
    uint8_t mac[DP_MAC_BYTES];
    uint8_t used;
    uint8_t name_bytes;
    uint8_t name[DP_PEER_NAME_BYTES];
    double heard;
};

struct dp_peers {
    double takeover_seconds;
    uint32_t limit;
    struct owner *owners;
    uint32_t capacity; /* a power of two, kept at least twice `used` */
    uint32_t used;
    struct dp_refusals refusals;
};

struct dp_peers *dp_peers_new(double takeover_seconds, uint32_t limit)
{
    struct dp_peers *peers = calloc(1, sizeof *peers);
    if (peers) {
        peers->takeover_seconds = takeover_seconds;
        peers->limit = limit ? limit : 1;
    }
    return peers;
}

void dp_peers_free(struct dp_peers *peers)
{
    if (peers)
        free(peers->owners);
    free(peers);
}

static uint32_t mac_hash(const uint8_t *mac)
{
    uint64_t k = 0;
    memcpy(&k, mac, DP_MAC_BYTES);
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32);
}

static struct owner *find(struct owner *owners, uint32_t capacity, const uint8_t *mac)
{
    uint32_t mask = capacity - 1;
    for (uint32_t i = mac_hash(mac) & mask;; i = (i + 1) & mask)
        if (!owners[i].used || memcmp(owners[i].mac, mac, DP_MAC_BYTES) == 0)
            return &owners[i];
}

/* Heard last at `heard`, silent for the takeover time at `now` (the spec's expression, for the same rounding). */
static int silent(const struct dp_peers *peers, double heard, double now) { return !(now - heard < peers->takeover_seconds); }

/* Move the owners into a table of `capacity` slots; with `forget`, leave out those silent at `now`. */
static int rebuild(struct dp_peers *peers, uint32_t capacity, int forget, double now)
{
    struct owner *owners = calloc(capacity, sizeof *owners);
    if (!owners)
        return -ENOMEM;
    uint32_t used = 0;
    for (uint32_t i = 0; i < peers->capacity; i++)
        if (peers->owners[i].used && !(forget && silent(peers, peers->owners[i].heard, now))) {
            *find(owners, capacity, peers->owners[i].mac) = peers->owners[i];
            used++;
        }
    free(peers->owners);
    peers->owners = owners;
    peers->capacity = capacity;
    peers->used = used;
    return 0;
}

/* Room for one more MAC: forget silent ones when full, grow when half the slots are taken. */
static int make_room(struct dp_peers *peers, double now)
{
    if (peers->used >= peers->limit && rebuild(peers, peers->capacity, 1, now))
        return 0;
    if (peers->used >= peers->limit)
        return 0;
    if ((peers->used + 1) * 2 > peers->capacity && rebuild(peers, peers->capacity ? peers->capacity * 2 : INITIAL_SLOTS, 0, now))
        return 0;
    return 1;
}

static void refuse(struct dp_peers *peers, const uint8_t *mac, const struct owner *owner, const uint8_t *name, uint32_t name_bytes)
{
    struct dp_refusals *r = &peers->refusals;
    r->count++;
    memcpy(r->mac, mac, DP_MAC_BYTES);
    memset(r->owner, 0, sizeof r->owner);
    if (owner)
        memcpy(r->owner, owner->name, owner->name_bytes);
    memset(r->sender, 0, sizeof r->sender);
    memcpy(r->sender, name, name_bytes);
}

int dp_peers_claim(struct dp_peers *peers, const uint8_t *mac, const uint8_t *name, uint32_t name_bytes, double now)
{
    if (name_bytes > DP_PEER_NAME_BYTES)
        name_bytes = DP_PEER_NAME_BYTES;
    struct owner *owner = peers->capacity ? find(peers->owners, peers->capacity, mac) : NULL;
    if (owner && owner->used) {
        int same = owner->name_bytes == name_bytes && memcmp(owner->name, name, name_bytes) == 0;
        if (!same && !silent(peers, owner->heard, now)) {
            refuse(peers, mac, owner, name, name_bytes);
            return 0;
        }
    } else {
        if (!make_room(peers, now)) {
            refuse(peers, mac, NULL, name, name_bytes);
            return 0;
        }
        owner = find(peers->owners, peers->capacity, mac);
        owner->used = 1;
        memcpy(owner->mac, mac, DP_MAC_BYTES);
        peers->used++;
    }
    owner->name_bytes = (uint8_t)name_bytes;
    memset(owner->name, 0, sizeof owner->name);
    memcpy(owner->name, name, name_bytes);
    owner->heard = now;
    return 1;
}

uint32_t dp_peers_count(const struct dp_peers *peers) { return peers->used; }

const struct dp_refusals *dp_peers_refusals(const struct dp_peers *peers) { return &peers->refusals; }
