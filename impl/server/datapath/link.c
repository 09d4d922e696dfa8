/* One socket served in batches: frames are taken in order, each is answered into the batch's
 * send buffers, sendmmsg sends the answers together. An AF_PACKET socket receives through a
 * memory-mapped ring (PACKET_RX_RING, TPACKET_V2; Linux's Documentation/networking/
 * packet_mmap.rst): the kernel copies each frame into the ring as it arrives, and the loop reads
 * it there without a system call; other sockets (and kernels without rings) use recvmmsg.
 * A UDP socket's frames come with their senders' addresses: a frame is served only when its
 * sender owns its source MAC (peers.c), and each answer goes back to its request's sender.
 * An answer leaves only after its request's work returned (a write's pwritev). Writes waiting one
 * after another that continue each other are done together (answer.c, write runs). A frame the
 * data path cannot answer stops the batch and goes to Python, which queues its answers and lets
 * the batch go on.
 * Answers leave every SEND_EVERY (fewer when long), not only at the batch's end: the initiator
 * starts on the first ones while the rest are read, instead of sleeping until the whole batch is done.
 * While frames keep coming the loop polls instead of sleeping: a wake-up across CPUs costs
 * more than answering a request. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_packet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "datapath.h"

#define SEND_EVERY 4 /* answers; measured: 16 outstanding 4 KiB reads 0.82 -> 1.05x vblade, 1 KiB sequential 0.73 -> 0.81x */
#define SEND_BYTES 16384u /* or sooner when they are long; measured: 8.5 KiB reads, every 2 instead of 4, 0.88 -> 0.96-1.00x vblade */

struct dp_link {
    int fd;
    uint32_t batch;
    uint32_t frame_bytes;
    uint32_t pad_to; /* answers shorter than this are zero-padded (IEEE 802.3 §3.2.8; veth does not pad) */
    struct mmsghdr *in, *out;
    struct iovec *in_iov, *out_iov; /* out: two per answer, its headers and (when it lies in a mapped window) its data */
    uint8_t *in_buffers, *out_buffers;
    uint32_t received; /* frames of the current batch */
    uint32_t next;     /* the first frame of the batch not answered yet */
    uint32_t queued;   /* answers waiting in out */
    uint32_t queued_bytes;
    const volatile uint64_t *sequence;
    uint64_t seen;
    uint8_t *ring; /* NULL: recvmmsg */
    size_t ring_bytes;
    uint32_t ring_frame_bytes;
    uint32_t ring_frames;
    uint32_t ring_next; /* the slot the next frame arrives in */
    struct dp_server *server; /* the one served last: its windows hold the data of mapped answers */
    struct dp_peers *peers;   /* UDP: who owns each MAC; NULL on AF_PACKET */
    uint8_t *in_names, *out_names;
};

struct dp_link *dp_link_new(int fd, uint32_t batch, uint32_t frame_bytes, uint32_t pad_to)
{
    struct dp_link *link = calloc(1, sizeof *link);
    if (!link)
        return NULL;
    link->fd = fd;
    link->batch = batch;
    link->frame_bytes = frame_bytes;
    link->pad_to = pad_to;
    link->in = calloc(batch, sizeof *link->in);
    link->out = calloc(batch, sizeof *link->out);
    link->in_iov = calloc(batch, sizeof *link->in_iov);
    link->out_iov = calloc(2 * (size_t)batch, sizeof *link->out_iov);
    link->in_buffers = malloc((size_t)batch * frame_bytes); /* pages are touched only as long frames use them */
    link->out_buffers = malloc((size_t)batch * frame_bytes);
    if (!link->in || !link->out || !link->in_iov || !link->out_iov || !link->in_buffers || !link->out_buffers) {
        dp_link_free(link);
        return NULL;
    }
    for (uint32_t i = 0; i < batch; i++) {
        link->in_iov[i] = (struct iovec){link->in_buffers + (size_t)i * frame_bytes, frame_bytes};
        link->in[i].msg_hdr.msg_iov = &link->in_iov[i];
        link->in[i].msg_hdr.msg_iovlen = 1;
        link->out_iov[2 * i].iov_base = link->out_buffers + (size_t)i * frame_bytes;
        link->out[i].msg_hdr.msg_iov = &link->out_iov[2 * i];
        link->out[i].msg_hdr.msg_iovlen = 1;
    }
    return link;
}

static uint32_t next_power_of_two(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

int dp_link_use_ring(struct dp_link *link, uint32_t receive_bytes, uint32_t frames)
{
    /* a slot holds the tpacket2_hdr, the sockaddr_ll and the frame at an aligned offset */
    uint32_t frame_bytes = next_power_of_two(receive_bytes + TPACKET_ALIGN(TPACKET2_HDRLEN) + 32);
    uint32_t per_block = frame_bytes >= 65536 ? 1 : 65536 / frame_bytes;
    struct tpacket_req request = {
        .tp_block_size = frame_bytes * per_block,
        .tp_block_nr = (frames + per_block - 1) / per_block,
        .tp_frame_size = frame_bytes,
    };
    request.tp_frame_nr = request.tp_block_nr * per_block;
    int version = TPACKET_V2;
    if (setsockopt(link->fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) ||
        setsockopt(link->fd, SOL_PACKET, PACKET_RX_RING, &request, sizeof request))
        return -errno;
    size_t bytes = (size_t)request.tp_block_size * request.tp_block_nr;
    void *ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, link->fd, 0);
    if (ring == MAP_FAILED) {
        int error = errno;
        struct tpacket_req none = {0};
        /* a ring nobody reads would swallow every frame: take it down, recvmmsg serves again */
        setsockopt(link->fd, SOL_PACKET, PACKET_RX_RING, &none, sizeof none);
        return -error;
    }
    link->ring = ring;
    link->ring_bytes = bytes;
    link->ring_frame_bytes = frame_bytes;
    link->ring_frames = request.tp_frame_nr;
    link->ring_next = 0;
    /* frames queued before the ring existed would keep poll() reporting input: they are dropped
     * (AoEr11 §1: best effort; the initiator retransmits) */
    while (recvmmsg(link->fd, link->in, link->batch, MSG_DONTWAIT, NULL) > 0)
        ;
    return 0;
}

static struct tpacket2_hdr *ring_slot(const struct dp_link *link, uint32_t index)
{
    return (struct tpacket2_hdr *)(link->ring + (size_t)index * link->ring_frame_bytes);
}

static int ring_has_frame(const struct dp_link *link)
{
    return __atomic_load_n(&ring_slot(link, link->ring_next)->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER;
}

/* Give the slot back to the kernel and move on to the next one. */
static void ring_release(struct dp_link *link)
{
    __atomic_store_n(&ring_slot(link, link->ring_next)->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    link->ring_next = (link->ring_next + 1) % link->ring_frames;
}

void dp_link_free(struct dp_link *link)
{
    if (!link)
        return;
    if (link->ring)
        munmap(link->ring, link->ring_bytes);
    free(link->in);
    free(link->out);
    free(link->in_iov);
    free(link->out_iov);
    free(link->in_buffers);
    free(link->out_buffers);
    free(link->in_names);
    free(link->out_names);
    free(link);
}

void dp_link_watch(struct dp_link *link, const volatile uint64_t *sequence, uint64_t seen)
{
    link->sequence = sequence;
    link->seen = seen;
}

int dp_link_use_peers(struct dp_link *link, struct dp_peers *peers)
{
    link->in_names = calloc(link->batch, DP_PEER_NAME_BYTES);
    link->out_names = calloc(link->batch, DP_PEER_NAME_BYTES);
    if (!link->in_names || !link->out_names)
        return -ENOMEM;
    for (uint32_t i = 0; i < link->batch; i++) {
        link->in[i].msg_hdr.msg_name = link->in_names + (size_t)i * DP_PEER_NAME_BYTES;
        link->out[i].msg_hdr.msg_name = link->out_names + (size_t)i * DP_PEER_NAME_BYTES;
    }
    link->peers = peers;
    return 0;
}

static const uint8_t *sender(const struct dp_link *link, uint32_t i, uint32_t *bytes)
{
    *bytes = link->in[i].msg_hdr.msg_namelen < DP_PEER_NAME_BYTES ? link->in[i].msg_hdr.msg_namelen : DP_PEER_NAME_BYTES;
    return link->in_names + (size_t)i * DP_PEER_NAME_BYTES;
}

/* Whether frames i and j of the batch came from the same address. */
static int same_sender(const struct dp_link *link, uint32_t i, uint32_t j)
{
    uint32_t a, b;
    const uint8_t *x = sender(link, i, &a), *y = sender(link, j, &b);
    return a == b && memcmp(x, y, a) == 0;
}

/* UDP: whether frame i's sender owns its source MAC (frames too short to have one are Python's to drop). */
static int sender_owns_mac(struct dp_link *link, uint32_t i, double clock)
{
    uint32_t bytes;
    const uint8_t *name = sender(link, i, &bytes);
    if (link->in[i].msg_len < DP_MAC_BYTES * 2)
        return 1;
    return dp_peers_claim(link->peers, link->in_buffers + (size_t)i * link->frame_bytes + DP_MAC_BYTES, name, bytes, clock);
}

/* Send the queued answers with as few sendmmsg calls as the kernel allows; what it refuses is
 * lost (AoEr11 §1: delivery is best effort; the initiator retransmits). */
static void send_queued(struct dp_link *link)
{
    uint32_t sent = 0;
    while (sent < link->queued) {
        int done = sendmmsg(link->fd, link->out + sent, link->queued - sent, 0);
        if (done > 0)
            sent += (uint32_t)done;
        else if (done < 0 && errno == EINTR)
            continue;
        else {
            if (done < 0 && errno == EFAULT && link->out[sent].msg_hdr.msg_iovlen == 2 && link->server)
                dp_server_mapping_failed(link->server); /* its window could not be read: the retransmit is read with pread */
            sent++; /* skip the frame the kernel refused (sendmmsg reports the first failure) */
        }
    }
    link->queued = 0;
    link->queued_bytes = 0;
    if (link->server)
        dp_server_answers_sent(link->server);
}

static uint8_t *answer_slot(struct dp_link *link)
{
    if (link->queued == link->batch)
        send_queued(link);
    return link->out_buffers + (size_t)link->queued * link->frame_bytes;
}

/* Queue the answer built in the current slot; `data`, when not NULL, holds its bytes after the ATA header. */
static void commit_answer(struct dp_link *link, uint32_t length, const uint8_t *data)
{
    uint8_t *answer = link->out_buffers + (size_t)link->queued * link->frame_bytes;
    struct iovec *iov = &link->out_iov[2 * link->queued];
    if (length < link->pad_to) {
        memset(answer + length, 0, link->pad_to - length);
        length = link->pad_to;
    }
    if (link->peers) { /* to the sender of the frame being answered */
        uint32_t bytes;
        const uint8_t *name = sender(link, link->next, &bytes);
        memcpy(link->out_names + (size_t)link->queued * DP_PEER_NAME_BYTES, name, bytes);
        link->out[link->queued].msg_hdr.msg_namelen = bytes;
    }
    iov[0].iov_len = data ? DP_ATA_HEADER_BYTES : length;
    iov[1] = (struct iovec){(void *)data, data ? length - DP_ATA_HEADER_BYTES : 0};
    link->out[link->queued].msg_hdr.msg_iovlen = data ? 2 : 1;
    link->queued++;
    link->queued_bytes += length;
}

/* Enough answers wait to be worth a system call: the initiator can start on them. */
static int send_due(const struct dp_link *link)
{
    return link->queued >= SEND_EVERY || link->queued_bytes >= SEND_BYTES; /* >=: Python may have queued several */
}

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Nothing to answer: true once nothing has come for idle_ns, else yield and look again. */
static int idle_for(uint64_t *idle_since, uint64_t idle_ns)
{
    uint64_t clock = monotonic_ns();
    if (!*idle_since)
        *idle_since = clock;
    else if (clock - *idle_since > idle_ns)
        return 1;
    sched_yield(); /* an initiator sharing this CPU gets to send its next request */
    return 0;
}

/* Worker 0 published new target state (a reservation, a mask list): Python reloads it before the next frame. */
static int state_moved(const struct dp_link *link) { return link->sequence && *link->sequence != link->seen; }

/* The k-th frame waiting after the current one, for a run of writes (answer.c); none once the state moved. */
static const uint8_t *peek_ring(void *context, uint32_t k, uint32_t *length)
{
    const struct dp_link *link = context;
    if (k >= link->ring_frames || state_moved(link)) /* past the ring's end lies the current frame again */
        return NULL;
    const struct tpacket2_hdr *h = ring_slot(link, (link->ring_next + k) % link->ring_frames);
    if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
        return NULL;
    *length = h->tp_snaplen;
    return (const uint8_t *)h + h->tp_mac;
}

/* The same for a batch taken with recvmmsg. */
static const uint8_t *peek_batch(void *context, uint32_t k, uint32_t *length)
{
    const struct dp_link *link = context;
    uint32_t i = link->next + k;
    if (state_moved(link) || i >= link->received || (link->peers && !same_sender(link, link->next, i)))
        return NULL; /* UDP: another sender's frame is not the client's, whatever MAC it names */
    *length = link->in[i].msg_len;
    return link->in_buffers + (size_t)i * link->frame_bytes;
}

/* Answer the current frame, with the writes after it that continue it, into the queue: how many (0: Python's). */
static uint32_t answer_frames(struct dp_server *server, struct dp_link *link, const uint8_t *frame, uint32_t length, dp_peek_fn peek,
                              double now)
{
    uint8_t *out = answer_slot(link);
    uint32_t lengths[DP_WRITE_RUN_FRAMES];
    const uint8_t *data[DP_WRITE_RUN_FRAMES];
    uint32_t n = dp_answer_frames(server, frame, length, peek, link, link->batch - link->queued, out, link->frame_bytes,
                                  link->frame_bytes, now, lengths, data);
    for (uint32_t i = 0; i < n; i++)
        commit_answer(link, lengths[i], data[i]);
    return n;
}

static int serve_ring(struct dp_server *server, struct dp_link *link, uint64_t idle_ns)
{
    uint64_t idle_since = 0;
    uint32_t since_clock = 0;
    double now = dp_wall_clock();
    for (;;) {
        if (ring_has_frame(link)) {
            if (state_moved(link)) {
                send_queued(link); /* what was answered before the change leaves first */
                return DP_SERVE_REFRESH;
            }
            if (idle_since || ++since_clock == SEND_EVERY * 8) { /* a client's last activity, to a few frames */
                now = dp_wall_clock();
                since_clock = 0;
            }
            idle_since = 0;
            struct tpacket2_hdr *h = ring_slot(link, link->ring_next);
            uint32_t n = answer_frames(server, link, (uint8_t *)h + h->tp_mac, h->tp_snaplen, peek_ring, now);
            if (!n)
                return (int)link->ring_next;
            while (n--)
                ring_release(link);
            if (send_due(link))
                send_queued(link);
            continue;
        }
        if (link->queued)
            send_queued(link);
        if (state_moved(link))
            return DP_SERVE_REFRESH;
        if (idle_for(&idle_since, idle_ns))
            return DP_SERVE_IDLE;
    }
}

int dp_link_serve(struct dp_server *server, struct dp_link *link, uint64_t idle_ns)
{
    if (link->server != server) {
        if (link->queued) /* the server before is freed only once a serve came back with nothing queued */
            send_queued(link); /* what it pointed into leaves while its windows are mapped */
        link->server = server;
    }
    if (link->ring)
        return serve_ring(server, link, idle_ns);
    uint64_t idle_since = 0;
    double now = dp_wall_clock(), clock = monotonic_ns() / 1e9;
    for (;;) {
        while (link->next < link->received) {
            uint32_t i = link->next;
            if (link->peers && !sender_owns_mac(link, i, clock)) {
                link->next++; /* another address's client: dropped, as a frame for another host */
                continue;
            }
            const uint8_t *frame = link->in_buffers + (size_t)i * link->frame_bytes;
            uint32_t n = answer_frames(server, link, frame, link->in[i].msg_len, peek_batch, now);
            if (!n)
                return (int)i;
            link->next += n;
            if (send_due(link))
                send_queued(link);
        }
        if (link->queued)
            send_queued(link);
        if (state_moved(link))
            return DP_SERVE_REFRESH;
        for (uint32_t i = 0; link->peers && i < link->batch; i++)
            link->in[i].msg_hdr.msg_namelen = DP_PEER_NAME_BYTES; /* the kernel wrote the last one's length there */
        int n = recvmmsg(link->fd, link->in, link->batch, MSG_DONTWAIT, NULL);
        if (n > 0) {
            link->received = (uint32_t)n;
            link->next = 0;
            idle_since = 0;
            now = dp_wall_clock(); /* a client's last activity: to the batch, not the frame */
            clock = monotonic_ns() / 1e9;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return DP_SERVE_ERROR;
        if (idle_for(&idle_since, idle_ns))
            return DP_SERVE_IDLE;
    }
}

const uint8_t *dp_link_frame(const struct dp_link *link, uint32_t index, uint32_t *length)
{
    if (link->ring) {
        const struct tpacket2_hdr *h = ring_slot(link, index);
        *length = h->tp_snaplen;
        return (const uint8_t *)h + h->tp_mac;
    }
    *length = link->in[index].msg_len;
    return link->in_buffers + (size_t)index * link->frame_bytes;
}

int dp_link_queue(struct dp_link *link, const uint8_t *answer, uint32_t length)
{
    if (length > link->frame_bytes)
        return -EMSGSIZE;
    memcpy(answer_slot(link), answer, length);
    commit_answer(link, length, NULL);
    return 0;
}

void dp_link_done(struct dp_link *link)
{
    if (link->ring)
        ring_release(link);
    else
        link->next++;
}
