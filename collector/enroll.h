/*
 * enroll.h - token enrollment (enroll.c): `POST /v1/enroll` on a TLS listener of its own
 * ([enroll] listen), where `tm-agent enroll` trades a one-time token and its certificate
 * request for a certificate. docs/enrollment.md.
 */
#ifndef COLLECTOR_ENROLL_H
#define COLLECTOR_ENROLL_H

struct collector;
struct enroll;

/*
 * Reloads the identity map the way SIGHUP does (main.c). Returns 0, or -1 with err (the
 * old map stays).
 */
typedef int (*enroll_reload_cb)(struct collector *c, char *err);

/*
 * Loads the CA ([enroll] ca_cert, ca_key), makes the TLS context from [tls] cert and key
 * (no client certificate asked: the agent has none yet) and binds [enroll] listen on the
 * collector's main event base. Needs [identity] map. Returns NULL with err.
 */
struct enroll *enroll_create(struct collector *c, enroll_reload_cb reload, char *err);

/* The bound address, HOST:PORT. */
const char *enroll_address(const struct enroll *e);

/* Closes the listener and its connections, wipes the CA key. NULL is ignored. */
void enroll_destroy(struct enroll *e);

#endif
