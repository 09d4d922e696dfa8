/* A memory-mapped receive ring on an AF_PACKET socket (PACKET_RX_RING, TPACKET_V2; Linux's
 * Documentation/networking/packet_mmap.rst) for the null responder: the kernel copies each frame
 * into the ring and the program reads it there, with no system call per frame. Slots hold frames
 * of a 9000-byte MTU.
 * The load generator does not use one, on purpose: over a veth pair the kernel fills a ring in
 * the sender's context, so a ring in the initiator would move its receive copies onto the target
 * being measured (measured: vblade's 64-client write rate fell by 15 %), which a real network
 * never does. */
#ifndef PACKET_RING_H
#define PACKET_RING_H

#include <linux/if_packet.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>

enum { PACKET_RING_SLOT_BYTES = 16384, PACKET_RING_SLOTS = 2048 };

struct packet_ring {
	unsigned char *slots; /* NULL: no ring (the program receives with recvmmsg) */
	unsigned next;        /* the slot the next frame arrives in */
};

/* Put a ring on socket `s`; ring->slots stays NULL when the kernel will not. */
static inline void packet_ring_open(struct packet_ring *ring, int s)
{
	struct tpacket_req request = {
		.tp_block_size = PACKET_RING_SLOT_BYTES * 4,
		.tp_block_nr = PACKET_RING_SLOTS / 4,
		.tp_frame_size = PACKET_RING_SLOT_BYTES,
		.tp_frame_nr = PACKET_RING_SLOTS,
	};
	int version = TPACKET_V2;
	void *mapped;

	ring->slots = NULL;
	ring->next = 0;
	if (setsockopt(s, SOL_PACKET, PACKET_VERSION, &version, sizeof version) ||
	    setsockopt(s, SOL_PACKET, PACKET_RX_RING, &request, sizeof request))
		return;
	mapped = mmap(NULL, (size_t)PACKET_RING_SLOT_BYTES * PACKET_RING_SLOTS, PROT_READ | PROT_WRITE, MAP_SHARED, s, 0);
	if (mapped == MAP_FAILED) {
		struct tpacket_req none = { 0 };

		setsockopt(s, SOL_PACKET, PACKET_RX_RING, &none, sizeof none); /* else it would take every frame */
		return;
	}
	ring->slots = mapped;
}

/* The next frame waiting in the ring (its bytes and length), or NULL; give it back with packet_ring_release. */
static inline struct tpacket2_hdr *packet_ring_frame(const struct packet_ring *ring, unsigned char **frame, size_t *length)
{
	struct tpacket2_hdr *h = (struct tpacket2_hdr *)(ring->slots + (size_t)ring->next * PACKET_RING_SLOT_BYTES);

	if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
		return NULL;
	*frame = (unsigned char *)h + h->tp_mac;
	*length = h->tp_snaplen;
	return h;
}

static inline void packet_ring_release(struct packet_ring *ring, struct tpacket2_hdr *h)
{
	__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
	ring->next = (ring->next + 1) % PACKET_RING_SLOTS;
}

#endif
