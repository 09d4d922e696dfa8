/* The benchmark's AoE load generator: many clients, each with a window of outstanding ATA requests.
 *
 * One process on one socket: AF_PACKET on an interface, or with --udp a UDP socket connected to
 * the target, each request one datagram holding the whole Ethernet frame (QEMU's -netdev dgram
 * and the storage server's UDP transport), the same bytes as on the wire. It sleeps in poll() until answers arrive, takes
 * every waiting frame with one recvmmsg() and sends the requests that replace them with one
 * sendmmsg(), so it needs far less than a core and its ceiling sits well above the targets'.
 * Client c (0-based) uses source MAC 02:00:00:00:HH:LL with HHLL = c + 1 and its own region
 * of the disk; every slot (client x window place) keeps one request in flight. The tag is
 * generation << 16 | slot, so an answer names its slot; an answer is counted only when its
 * tag is the slot's current one, it comes from the server's MAC to the slot's client, it is no
 * AoE or ATA error, and a read carries its data (AoEr11 §2, §3.1) beginning with the LBA it was
 * asked for: every sector of the benchmark's image, and of every write, starts with its own LBA
 * (8 bytes, little-endian), so a target that answers zeros, the wrong sectors or another
 * client's is caught. Only an answer's first bytes are copied out, MSG_TRUNC gives its whole
 * length, so the data a target sends costs the generator no copy. Error answers and reads with
 * the wrong data are counted apart and are not throughput. A request unanswered after 250 ms is sent again under a new tag and
 * counted as a retransmit.
 * With --warmup S it first runs S seconds unmeasured (a target's first contact with a client,
 * such as creating its overlay, is not its throughput), then prints "measuring" on a line of
 * its own and counts from zero. At the end it prints one JSON object (the keys of
 * impl/server/loadgen.py plus wrong_data, rejected and cpu_s, the CPU time of the measured part).
 *
 * Usage: server_loadgen (--interface IF | --udp HOST:PORT) --server-mac MAC --workload seqread|seqwrite|randread|randwrite
 *        --disk-sectors N [--clients N] [--window N] [--sectors N | --mtu N] [--seconds S] [--warmup S]
 * Built by benchmarks/server_vs_vblade.py and benchmarks/server_udp.py (cc -O2 -Wall -Wextra -Werror).
 * Root for --interface (raw sockets); --udp needs none (without root, net.core.rmem_max and wmem_max cap its buffers). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "udp_socket.h"

enum {
	ETHERTYPE_AOE = 0x88A2,
	AOE_VERSION_FLAGS = 0x10,    /* version 1, no flags (AoEr11 §2) */
	FLAG_RESPONSE = 0x08,
	FLAG_ERROR = 0x04,
	AOE_ATA = 0,
	ATA_EXTENDED = 0x40,         /* AoEr11 §3.1 aflags: E (LBA48) */
	ATA_WRITE = 0x01,            /* W: data follows */
	READ_SECTORS_EXT = 0x24,     /* ATA/ATAPI-7 V1 §6, READ SECTOR(S) EXT */
	WRITE_SECTORS_EXT = 0x34,    /* ATA/ATAPI-7 V1 §6, WRITE SECTOR(S) EXT */
	STATUS_ERR = 0x01,
	HEADER = 36,                 /* Ethernet 14 + AoE 10 + ATA argument 12 */
	SECTOR = 512,
	LBA_STAMP = 8,               /* every sector begins with its LBA, little-endian */
	MIN_FRAME = 60,
	BATCH = 64,                  /* frames per recvmmsg */
	RECEIVE_BYTES = 64,          /* an answer's headers and its data's LBA stamp; MSG_TRUNC reports the full length */
	MAX_SLOTS = 65536,           /* the slot is the tag's low 16 bits */
	LATENCY_BUCKETS = 100000,    /* 1 µs buckets up to 100 ms */
};

#define RETRANSMIT_NS 250000000LL
#define CHECK_NS 50000000LL

struct slot {
	unsigned char *frame;  /* the request, kept for its retransmit */
	uint32_t tag;
	uint64_t lba;
	long long sent_ns;
	int client;
};

static struct slot *slots;
static int clients = 1, window = 16, sectors, sequential, writing;
static uint64_t span, *next_lba;
static size_t request_bytes;
static unsigned char server_mac[6];
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static long long done, errors, wrong_data, retransmits, rejected;
static unsigned latency_us[LATENCY_BUCKETS + 1];

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint64_t random_below(uint64_t n)
{
	rng_state ^= rng_state << 13;  /* xorshift64 */
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static void client_mac(int client, unsigned char *mac)
{
	unsigned number = (unsigned)client + 1;

	mac[0] = 0x02;  /* locally administered */
	mac[1] = 0;
	mac[2] = (unsigned char)(number >> 24);
	mac[3] = (unsigned char)(number >> 16);
	mac[4] = (unsigned char)(number >> 8);
	mac[5] = (unsigned char)number;
}

/* The next address for a slot's client: its region in order, or a random whole request in it. */
static uint64_t next_address(int client)
{
	uint64_t base = (uint64_t)client * span, lba;

	if (!sequential)
		return base + random_below(span / (uint64_t)sectors) * (uint64_t)sectors;
	lba = next_lba[client];
	next_lba[client] = lba + 2 * (uint64_t)sectors <= base + span ? lba + (uint64_t)sectors : base;
	return lba;
}

static void stamp_lba(unsigned char *sector, uint64_t lba)
{
	int i;

	for (i = 0; i < LBA_STAMP; i++)
		sector[i] = (unsigned char)(lba >> (8 * i));
}

static uint64_t stamped_lba(const unsigned char *sector)
{
	uint64_t lba = 0;
	int i;

	for (i = 0; i < LBA_STAMP; i++)
		lba |= (uint64_t)sector[i] << (8 * i);
	return lba;
}

/* Give the slot a new tag and address and write them into its request (a write's sectors stamped). */
static void prepare(int index, long long now, int retransmit)
{
	struct slot *s = &slots[index];
	uint32_t tag = ((s->tag >> 16) + 1) << 16 | (uint32_t)index;
	unsigned char *f = s->frame;
	int i;

	s->tag = tag;
	if (!retransmit)
		s->lba = next_address(s->client);
	s->sent_ns = now;
	f[20] = (unsigned char)(tag >> 24);
	f[21] = (unsigned char)(tag >> 16);
	f[22] = (unsigned char)(tag >> 8);
	f[23] = (unsigned char)tag;
	for (i = 0; i < 6; i++)
		f[28 + i] = (unsigned char)(s->lba >> (8 * i));  /* LBA little-endian (AoEr11 §3.1) */
	for (i = 0; writing && i < sectors; i++)
		stamp_lba(f + HEADER + (size_t)i * SECTOR, s->lba + (uint64_t)i);
}

static void build_request(int index)
{
	struct slot *s = &slots[index];
	unsigned char *f = calloc(1, request_bytes);
	size_t i;

	if (!f) {
		perror("server_loadgen");
		exit(1);
	}
	memcpy(f, server_mac, 6);
	client_mac(s->client, f + 6);
	f[12] = ETHERTYPE_AOE >> 8;
	f[13] = ETHERTYPE_AOE & 0xFF;
	f[14] = AOE_VERSION_FLAGS;
	f[19] = AOE_ATA;  /* major 0, minor 0: shelf 0 slot 0 */
	f[24] = ATA_EXTENDED | (writing ? ATA_WRITE : 0);
	f[26] = (unsigned char)sectors;
	f[27] = writing ? WRITE_SECTORS_EXT : READ_SECTORS_EXT;
	for (i = HEADER; writing && i < request_bytes; i++)
		f[i] = (unsigned char)i;  /* each sector's first bytes are its LBA (prepare) */
	s->frame = f;
}

/* The slot an answer frees (the current answer of its slot, between the right MACs), or -1. It counts
 * as done when it is no error and a read carries its data, starting with the sector asked for. */
static int accept_answer(const unsigned char *f, size_t length, long long now)
{
	uint32_t tag;
	struct slot *s;
	long long us;

	if (length < HEADER || !(f[14] & FLAG_RESPONSE) || f[19] != AOE_ATA)
		return -1;
	tag = (uint32_t)f[20] << 24 | (uint32_t)f[21] << 16 | (uint32_t)f[22] << 8 | f[23];
	if ((int)(tag & 0xFFFF) >= clients * window)
		return -1;
	s = &slots[tag & 0xFFFF];
	if (s->tag != tag || memcmp(f + 6, server_mac, 6) != 0 || memcmp(f, s->frame + 6, 6) != 0)
		return -1;  /* late (already sent again), or not ours */
	if ((f[14] & FLAG_ERROR) || (f[27] & STATUS_ERR)) {
		errors++;
		return (int)(tag & 0xFFFF);
	}
	if (!writing && length < HEADER + (size_t)sectors * SECTOR)
		return -1;
	if (!writing && stamped_lba(f + HEADER) != s->lba) {
		wrong_data++;
		return (int)(tag & 0xFFFF);
	}
	done++;
	us = (now - s->sent_ns) / 1000;
	latency_us[us < LATENCY_BUCKETS ? us : LATENCY_BUCKETS]++;
	return (int)(tag & 0xFFFF);
}

static double cpu_seconds(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
	       (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static double median_ms(void)
{
	long long seen = 0;
	int i;

	for (i = 0; i <= LATENCY_BUCKETS; i++) {
		seen += latency_us[i];
		if (seen * 2 >= done && done)
			return i / 1000.0;
	}
	return 0;
}

static void usage(const char *program)
{
	fprintf(stderr, "usage: %s (--interface IF | --udp HOST:PORT) --server-mac MAC --workload seqread|seqwrite|randread|randwrite"
		" --disk-sectors N [--clients N] [--window N] [--sectors N | --mtu N] [--seconds S] [--warmup S]\n", program);
	exit(2);
}

int main(int argc, char **argv)
{
	static unsigned char receive_buffers[BATCH][RECEIVE_BYTES];
	static struct mmsghdr in[BATCH], out[MAX_SLOTS];
	static struct iovec in_iov[BATCH], out_iov[MAX_SLOTS];
	struct sockaddr_ll address = { .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE) };
	struct sockaddr_in target = { 0 };
	const char *interface = NULL, *udp = NULL, *workload = NULL;
	double seconds = 3, warmup = 0, cpu_before = 0;
	uint64_t disk_sectors = 0;
	int mtu = 1500, s, i, one = 1, buffer = 32 << 20, have_mac = 0, slot_count, pending;
	long long start, end, now, last_check;
	int measuring;

	for (i = 1; i + 1 < argc; i += 2) {
		const char *key = argv[i], *value = argv[i + 1];

		if (!strcmp(key, "--interface"))
			interface = value;
		else if (!strcmp(key, "--udp"))
			udp = value;
		else if (!strcmp(key, "--server-mac"))
			have_mac = sscanf(value, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &server_mac[0], &server_mac[1],
					  &server_mac[2], &server_mac[3], &server_mac[4], &server_mac[5]) == 6;
		else if (!strcmp(key, "--workload"))
			workload = value;
		else if (!strcmp(key, "--clients"))
			clients = atoi(value);
		else if (!strcmp(key, "--window"))
			window = atoi(value);
		else if (!strcmp(key, "--sectors"))
			sectors = atoi(value);
		else if (!strcmp(key, "--mtu"))
			mtu = atoi(value);
		else if (!strcmp(key, "--disk-sectors"))
			disk_sectors = strtoull(value, NULL, 0);
		else if (!strcmp(key, "--seconds"))
			seconds = atof(value);
		else if (!strcmp(key, "--warmup"))
			warmup = atof(value);
		else
			usage(argv[0]);
	}
	if (i != argc || !interface == !udp || (udp && !udp_address(udp, &target)) || !have_mac || !workload || !disk_sectors || clients < 1 || window < 1 ||
	    (long)clients * window > MAX_SLOTS)
		usage(argv[0]);
	if (!strcmp(workload, "seqread") || !strcmp(workload, "seqwrite"))
		sequential = 1;
	else if (strcmp(workload, "randread") && strcmp(workload, "randwrite"))
		usage(argv[0]);
	writing = strstr(workload, "write") != NULL;
	if (!sectors)
		sectors = (mtu - HEADER) / SECTOR;  /* as many as a frame carries */
	span = disk_sectors / (uint64_t)clients / (uint64_t)sectors * (uint64_t)sectors;
	if (sectors < 1 || sectors > 255 || span < (uint64_t)sectors) {
		fprintf(stderr, "server_loadgen: %d sectors per request do not fit the MTU or the disk\n", sectors);
		return 2;
	}
	request_bytes = HEADER + (writing ? (size_t)sectors * SECTOR : 0);
	if (request_bytes < MIN_FRAME)
		request_bytes = MIN_FRAME;  /* IEEE 802.3 §3.2.8; veth does not pad */

	if (udp) {  /* connected: only the target's datagrams arrive, and each send needs no address */
		s = socket(AF_INET, SOCK_DGRAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&target, sizeof target) < 0) {
			perror("server_loadgen");
			return 1;
		}
		large_buffer(s, SO_RCVBUFFORCE, SO_RCVBUF, buffer);
		large_buffer(s, SO_SNDBUFFORCE, SO_SNDBUF, buffer);
	} else {
		s = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
		address.sll_ifindex = (int)if_nametoindex(interface);
		if (s < 0 || address.sll_ifindex == 0 || bind(s, (struct sockaddr *)&address, sizeof address) < 0) {
			perror("server_loadgen");
			return 1;
		}
		setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
		setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
		setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer);
	}

	slot_count = clients * window;
	slots = calloc((size_t)slot_count, sizeof *slots);
	next_lba = calloc((size_t)clients, sizeof *next_lba);
	if (!slots || !next_lba) {
		perror("server_loadgen");
		return 1;
	}
	for (i = 0; i < clients; i++)
		next_lba[i] = (uint64_t)i * span;
	for (i = 0; i < BATCH; i++) {
		in_iov[i].iov_base = receive_buffers[i];
		in_iov[i].iov_len = RECEIVE_BYTES;
		in[i].msg_hdr.msg_iov = &in_iov[i];
		in[i].msg_hdr.msg_iovlen = 1;
	}
	for (i = 0; i < slot_count; i++) {
		slots[i].client = i / window;
		build_request(i);
		out_iov[i].iov_len = request_bytes;
		out[i].msg_hdr.msg_iovlen = 1;
	}

	start = now = now_ns();
	measuring = warmup <= 0;
	end = start + (long long)((measuring ? seconds : warmup) * 1e9);
	last_check = start;
	pending = 0;
	for (i = 0; i < slot_count; i++) {  /* every slot's first request, client by client in turn */
		int index = (i % clients) * window + i / clients;

		prepare(index, now, 0);
		out_iov[pending].iov_base = slots[index].frame;
		out[pending].msg_hdr.msg_iov = &out_iov[pending];
		pending++;
	}
	for (;;) {
		struct pollfd ready = { .fd = s, .events = POLLIN };
		int received, sent_from = 0, wait_ms;

		while (sent_from < pending) {
			int sent = sendmmsg(s, out + sent_from, (unsigned)(pending - sent_from), 0);

			if (sent < 0) {
				if (errno == EINTR)
					continue;
				if (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED)
					break;  /* lost (UDP: refused while the target's port was closed): the retransmit sends it again */
				perror("server_loadgen: sendmmsg");
				return 1;
			}
			sent_from += sent;
		}
		pending = 0;
		if (now >= end) {
			if (measuring)
				break;
			measuring = 1;  /* warmed up: count from here */
			done = errors = wrong_data = retransmits = rejected = 0;
			memset(latency_us, 0, sizeof latency_us);
			cpu_before = cpu_seconds();
			start = now;
			end = now + (long long)(seconds * 1e9);
			printf("measuring\n");
			fflush(stdout);
		}
		if (now - last_check >= CHECK_NS) {
			last_check = now;
			for (i = 0; i < slot_count; i++) {
				if (now - slots[i].sent_ns < RETRANSMIT_NS)
					continue;
				retransmits++;
				prepare(i, now, 1);
				out_iov[pending].iov_base = slots[i].frame;
				out[pending].msg_hdr.msg_iov = &out_iov[pending];
				pending++;
			}
			if (pending)
				continue;
		}
		wait_ms = (int)((CHECK_NS - (now - last_check)) / 1000000) + 1;
		if (poll(&ready, 1, wait_ms) < 0 && errno != EINTR) {
			perror("server_loadgen: poll");
			return 1;
		}
		received = recvmmsg(s, in, BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
		now = now_ns();
		for (i = 0; i < received; i++) {
			int index = accept_answer(receive_buffers[i], in[i].msg_len, now);

			if (index < 0) {
				rejected++;
				continue;
			}
			prepare(index, now, 0);
			out_iov[pending].iov_base = slots[index].frame;
			out[pending].msg_hdr.msg_iov = &out_iov[pending];
			pending++;
		}
	}
	now = now_ns();
	{
		double elapsed = (double)(now - start) / 1e9;
		double cpu = cpu_seconds() - cpu_before;

		printf("{\"workload\": \"%s\", \"clients\": %d, \"window\": %d, \"sectors\": %d, \"ops_per_s\": %.1f, "
		       "\"mb_per_s\": %.3f, \"p50_ms\": %.3f, \"errors\": %lld, \"wrong_data\": %lld, \"retransmits\": %lld, \"rejected\": %lld, "
		       "\"seconds\": %.4f, \"cpu_s\": %.4f}\n",
		       workload, clients, window, sectors, (double)done / elapsed,
		       (double)done * sectors * SECTOR / elapsed / 1e6, median_ms(), errors, wrong_data, retransmits, rejected, elapsed, cpu);
	}
	return 0;
}
