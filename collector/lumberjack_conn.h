/*
 * lumberjack_conn.h - a Lumberjack v2 connection on a worker (lumberjack_conn.c).
 */
#ifndef COLLECTOR_LUMBERJACK_CONN_H
#define COLLECTOR_LUMBERJACK_CONN_H

#include <sys/socket.h>

struct worker;

/*
 * Takes over an accepted socket (plain or TLS per the config). The connection frees
 * itself when closed and drained. Returns 0, or -1 (fd closed, connection released).
 */
int lumberjack_conn_create(struct worker *w, int fd, const struct sockaddr *peer,
                           socklen_t peerlen);

#endif
