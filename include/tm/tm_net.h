/*
 * tm_net.h - addresses and listening sockets. ADDR is HOST:PORT as on every command line
 * of the project ("127.0.0.1:5044", "[::1]:0", "0.0.0.0:8080"); port 0 asks the kernel
 * for a free port, which tm_net_local_addr() then reports.
 */
#ifndef TM_NET_H
#define TM_NET_H

#include <sys/socket.h>

#include "tm/tm_common.h"

/* Longest formatted address: "[" IPv6 "]:" port, NUL. */
#define TM_ADDR_LEN 64

/*
 * Parses HOST:PORT (IPv4, or bracketed IPv6 with an optional zone; "localhost" is
 * 127.0.0.1; "*" or an empty host is 0.0.0.0; any other name is resolved with a blocking
 * getaddrinfo(), first answer wins) into *ss and its length into *len (len may be NULL).
 * Returns 0, or -1 with the reason in err (err may be NULL).
 */
int tm_net_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *err);

/*
 * Formats an AF_INET or AF_INET6 address as HOST:PORT ("[IPV6]:PORT") into out
 * (TM_ADDR_LEN bytes). Returns 0, or -1 (other families, out too small) with "(unknown)"
 * in out, so the result can always be printed.
 */
int tm_net_format_addr(const struct sockaddr *sa, char *out, size_t outlen);

/*
 * Opens a non-blocking, close-on-exec socket of the given type (SOCK_STREAM or SOCK_DGRAM)
 * bound to addr, with SO_REUSEADDR (and SO_REUSEPORT when reuseport is true), listening
 * when it is a stream socket. Returns the fd, or -1 with the reason in err.
 */
int tm_net_listen(const char *addr, int type, bool reuseport, char *err);

/* Writes the address fd is bound to into out (TM_ADDR_LEN bytes). Returns 0 or -1. */
int tm_net_local_addr(int fd, char *out, size_t outlen);

#endif
