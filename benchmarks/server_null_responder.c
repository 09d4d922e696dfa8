/* A responder that answers AoE ATA requests without any I/O: the load generator's ceiling.
 * Reads go back with zero data, each sector stamped with its LBA as the load generator checks
 * (the benchmark image's sectors begin so), writes with an empty success. It never sleeps: it polls its
 * receive ring (packet_ring.h; recvmmsg() where no ring can be made), yielding the CPU when
 * nothing waits, so no request waits for it to be woken, takes every waiting frame and answers
 * them with one sendmmsg(). With --udp it listens on a UDP address instead, each datagram one
 * whole Ethernet frame (the storage server's UDP transport), and answers every request to the
 * address it came from, as the server's default MAC 02:53:56:00:00:01. Built by
 * benchmarks/server_vs_vblade.py and benchmarks/server_udp.py.
 * Usage: server_null_responder IFNAME  (root; raw Ethernet on that interface)
 *        server_null_responder --udp HOST:PORT  (no root needed) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "packet_ring.h"
#include "udp_socket.h"

enum { ETHERTYPE_AOE = 0x88A2, ATA_HEADER = 36, RESPONSE = 0x08, DRDY = 0x40, SECTOR = 512, MIN_FRAME = 60,
       BATCH = 64, FRAME_BYTES = 16384 };

static const unsigned char UDP_MAC[6] = { 0x02, 0x53, 0x56, 0x00, 0x00, 0x01 };  /* storvisor serve's default */

/* The AF_PACKET socket on interface `name` and its MAC, or -1. */
static int open_raw(const char *name, unsigned char *mac)
{
	struct sockaddr_ll address = { .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE) };
	socklen_t length = sizeof address;
	int s, one = 1, buffer = 32 << 20;

	s = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
	address.sll_ifindex = (int)if_nametoindex(name);
	if (s < 0 || address.sll_ifindex == 0 || bind(s, (struct sockaddr *)&address, sizeof address) < 0) {
		perror("null responder");
		return -1;
	}
	setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
	getsockname(s, (struct sockaddr *)&address, &length);
	memcpy(mac, address.sll_addr, 6);
	return s;
}

/* The UDP socket bound to HOST:PORT and the MAC it answers as, or -1. */
static int open_udp(const char *text, unsigned char *mac)
{
	struct sockaddr_in address = { 0 };
	int s;

	if (!udp_address(text, &address)) {
		fprintf(stderr, "null responder: %s is no IPv4 HOST:PORT\n", text);
		return -1;
	}
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&address, sizeof address) < 0) {
		perror("null responder");
		return -1;
	}
	large_buffer(s, SO_RCVBUFFORCE, SO_RCVBUF, 32 << 20);
	large_buffer(s, SO_SNDBUFFORCE, SO_SNDBUF, 32 << 20);
	memcpy(mac, UDP_MAC, 6);
	return s;
}

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
	static struct sockaddr_in peers[BATCH];  /* UDP: each request's sender, its answer's destination */
	unsigned char mac[6];
	int s, i, udp = argc == 3 && !strcmp(argv[1], "--udp");

	if (argc != 2 && !udp) {
		fprintf(stderr, "usage: %s IFNAME | --udp HOST:PORT\n", argv[0]);
		return 2;
	}
	s = udp ? open_udp(argv[2], mac) : open_raw(argv[1], mac);
	if (s < 0)
		return 1;
	for (i = 0; i < BATCH; i++) {
		in_iov[i].iov_base = out_iov[i].iov_base = frames[i];
		in_iov[i].iov_len = FRAME_BYTES;
		in[i].msg_hdr.msg_iov = &in_iov[i];
		in[i].msg_hdr.msg_iovlen = 1;
		if (udp)
			in[i].msg_hdr.msg_name = &peers[i];
	}
	if (!udp)
		packet_ring_open(&ring, s);  /* a UDP socket has no ring: it receives with recvmmsg */
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
			for (i = 0; udp && i < BATCH; i++)
				in[i].msg_hdr.msg_namelen = sizeof peers[i];  /* recvmmsg set it to the last sender's length */
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
			out[answers].msg_hdr.msg_name = in[i].msg_hdr.msg_name;  /* UDP: back to its sender; raw: none */
			out[answers].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
			answers++;
		}
		if (answers > 0)
			sendmmsg(s, out, (unsigned)answers, 0);
	}
}
