/* A responder that answers AoE ATA requests without any I/O: the load generator's ceiling.
 * Reads go back with zero data, writes with an empty success; built by benchmarks/server_vs_vblade.py.
 * Usage: server_null_responder IFNAME  (root; raw Ethernet on that interface) */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ETHERTYPE_AOE = 0x88A2, ATA_HEADER = 36, RESPONSE = 0x08, DRDY = 0x40, SECTOR = 512 };

int main(int argc, char **argv)
{
	static unsigned char frame[65536];
	unsigned char mac[6];
	struct sockaddr_ll address = { .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE_AOE) };
	socklen_t length = sizeof address;
	int s, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s IFNAME\n", argv[0]);
		return 2;
	}
	s = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
	address.sll_ifindex = if_nametoindex(argv[1]);
	if (s < 0 || address.sll_ifindex == 0 || bind(s, (struct sockaddr *)&address, sizeof address) < 0) {
		perror("null responder");
		return 1;
	}
	setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
	getsockname(s, (struct sockaddr *)&address, &length);
	memcpy(mac, address.sll_addr, 6);
	for (;;) {
		ssize_t n = read(s, frame, sizeof frame);
		size_t out = ATA_HEADER;
		if (n < ATA_HEADER || (frame[14] & RESPONSE) || frame[19] != 0)
			continue;
		memcpy(frame, frame + 6, 6);  /* back to the sender */
		memcpy(frame + 6, mac, 6);
		frame[14] |= RESPONSE;
		frame[25] = 0;  /* Error register */
		frame[27] = DRDY;  /* Status register */
		if ((frame[24] & 1) == 0) {  /* a read: zero data */
			out += (size_t)frame[26] * SECTOR;
			if (out > sizeof frame)
				continue;
			memset(frame + ATA_HEADER, 0, out - ATA_HEADER);
		}
		if (out < 60)
			out = 60;
		write(s, frame, out);
	}
}
