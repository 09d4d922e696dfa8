/* A responder that answers AoE ATA requests without any I/O: the load generator's ceiling.
 * Reads go back with zero data, each sector stamped with its LBA as the load generator checks
 * (the benchmark image's sectors begin so), writes with an empty success. It never sleeps: it polls its
 * receive ring (packet_ring.h; recvmmsg() where no ring can be made), yielding the CPU when
 * nothing waits, so no request waits for it to be woken, takes every waiting frame and answers
 * them with one sendmmsg(). Built by
 * benchmarks/server_vs_vblade.py.
 * Usage: server_null_responder IFNAME  (root; raw Ethernet on that interface) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "packet_ring.h"

enum { ETHERTYPE_AOE = 0x88A2, ATA_HEADER = 36, RESPONSE = 0x08, DRDY = 0x40, SECTOR = 512, MIN_FRAME = 60,
       BATCH = 64, FRAME_BYTES = 16384 };

/* Turn the request in `frame` into its answer in place; its length, or 0 for no answer. */
static size_t answer(unsigned char *frame, size_t n, const unsigned char *mac)
{
	size_t out = ATA_HEADER;

	if (n < ATA_HEADER || (frame[14] & RESPONSE) || frame[19] != 0)
		return 0;
	memcpy(frame, frame + 6, 6);  /* back to the sender */
	memcpy(frame + 6, mac, 6);
	frame[14] |= RESPONSE;
	frame[25] = 0;  /* Error register */
	frame[27] = DRDY;  /* Status register */
	if ((frame[24] & 1) == 0) {  /* a read: zero data, each sector's first 8 bytes its LBA */
		uint64_t lba = 0;
		int i;

		out += (size_t)frame[26] * SECTOR;
		if (out > FRAME_BYTES)
			return 0;
		for (i = 0; i < 6; i++)
			lba |= (uint64_t)frame[28 + i] << (8 * i);  /* AoEr11 §3.1: LBA little-endian */
		memset(frame + ATA_HEADER, 0, out - ATA_HEADER);
		for (i = 0; i < frame[26] * 8; i++)
			frame[ATA_HEADER + (size_t)(i / 8) * SECTOR + i % 8] = (unsigned char)((lba + (uint64_t)(i / 8)) >> (8 * (i % 8)));
	}
	return out < MIN_FRAME ? MIN_FRAME : out;
}

int main(int argc, char **argv)
{
	static unsigned char frames[BATCH][FRAME_BYTES];
	static struct mmsghdr in[BATCH], out[BATCH];
	static struct iovec in_iov[BATCH], out_iov[BATCH];
	static struct packet_ring ring;
	unsigned char mac[6];
	struct sockaddr_ll address = { .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE) };
	socklen_t length = sizeof address;
	int s, i, one = 1, buffer = 32 << 20;

	if (argc != 2) {
		fprintf(stderr, "usage: %s IFNAME\n", argv[0]);
		return 2;
	}
	s = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
	address.sll_ifindex = (int)if_nametoindex(argv[1]);
	if (s < 0 || address.sll_ifindex == 0 || bind(s, (struct sockaddr *)&address, sizeof address) < 0) {
		perror("null responder");
		return 1;
	}
	setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
	getsockname(s, (struct sockaddr *)&address, &length);
	memcpy(mac, address.sll_addr, 6);
	for (i = 0; i < BATCH; i++) {
		in_iov[i].iov_base = out_iov[i].iov_base = frames[i];
		in_iov[i].iov_len = FRAME_BYTES;
		in[i].msg_hdr.msg_iov = &in_iov[i];
		in[i].msg_hdr.msg_iovlen = 1;
	}
	packet_ring_open(&ring, s);
	for (;;) {
		int received = 0, answers = 0;

		if (ring.slots) {  /* copy the waiting frames out of the ring: they are answered in place */
			struct tpacket2_hdr *h;
			unsigned char *frame;
			size_t n;

			while (received < BATCH && (h = packet_ring_frame(&ring, &frame, &n))) {
				in[received].msg_len = n <= FRAME_BYTES ? (unsigned)n : 0;
				memcpy(frames[received], frame, in[received].msg_len);
				packet_ring_release(&ring, h);
				received++;
			}
		} else {
			received = recvmmsg(s, in, BATCH, MSG_DONTWAIT, NULL);
		}
		if (received <= 0) {
			sched_yield();  /* a load generator sharing this CPU gets to send */
			continue;
		}

		for (i = 0; i < received; i++) {
			size_t n = answer(frames[i], in[i].msg_len, mac);

			if (!n)
				continue;
			out_iov[answers].iov_base = frames[i];
			out_iov[answers].iov_len = n;
			out[answers].msg_hdr.msg_iov = &out_iov[answers];
			out[answers].msg_hdr.msg_iovlen = 1;
			answers++;
		}
		if (answers > 0)
			sendmmsg(s, out, (unsigned)answers, 0);
	}
}
