/*
 * acceptor.h - a TCP listener on the main thread that admits connections within the
 * limits and hands them to workers round-robin (collector.c).
 */
#ifndef COLLECTOR_ACCEPTOR_H
#define COLLECTOR_ACCEPTOR_H

#include "collector.h"

struct acceptor;

/* Listens on addr (port 0: any free port). Returns NULL with err. */
struct acceptor *acceptor_create(struct collector *c, const char *addr, enum listener_kind kind,
                                 char *err);
/* The bound address as HOST:PORT. */
const char *acceptor_address(const struct acceptor *a);
/* Stops accepting (SIGTERM). */
void acceptor_disable(struct acceptor *a);
void acceptor_destroy(struct acceptor *a);

#endif
