/* A UDP address from the command line, and socket buffers as large as the caller may have, for the
 * load generator and the null responder when they speak UDP-encapsulated Ethernet (--udp). */
#ifndef UDP_SOCKET_H
#define UDP_SOCKET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* HOST:PORT (IPv4 dotted quad) into `address`; 0 when it is not one. */
static inline int udp_address(const char *text, struct sockaddr_in *address)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - text) >= sizeof host)
		return 0;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = 0;
	port = strtol(colon + 1, &end, 10);
	address->sin_family = AF_INET;
	address->sin_port = htons((uint16_t)port);
	return *end == 0 && port > 0 && port < 65536 && inet_pton(AF_INET, host, &address->sin_addr) == 1;
}

/* A socket buffer of `bytes`: the FORCE option lifts net.core's cap for root; others get the capped size. */
static inline void large_buffer(int s, int force, int plain, int bytes)
{
	if (setsockopt(s, SOL_SOCKET, force, &bytes, sizeof bytes) < 0)
		setsockopt(s, SOL_SOCKET, plain, &bytes, sizeof bytes);
}

#endif
