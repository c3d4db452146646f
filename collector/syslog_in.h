/*
 * syslog_in.h - syslog listeners (syslog_in.c): TCP connections with RFC 6587 framing
 * (octet counting or LF) handed over by the acceptor, and a UDP socket per worker.
 */
#ifndef COLLECTOR_SYSLOG_IN_H
#define COLLECTOR_SYSLOG_IN_H

#include <sys/socket.h>

struct worker;

/* Takes over an accepted TCP socket. Returns 0, or -1 (fd closed, connection released). */
int syslog_tcp_conn_create(struct worker *w, int fd, const struct sockaddr *peer,
                           socklen_t peerlen);

/*
 * Starts receiving datagrams on fd (a bound UDP socket, shared by all workers with
 * SO_REUSEPORT or given to one worker). Returns 0 or -1 with err.
 */
int syslog_udp_start(struct worker *w, int fd, char *err);

/* Stops and frees the worker's UDP receiver (worker teardown). */
void syslog_udp_stop(struct worker *w);

#endif
