/*
 * ship.h - tm-agent's shipper: takes events out of the disk spool and sends them to a
 * collector over Lumberjack v2 (plain TCP or TLS with a client certificate), one window at
 * a time, and acknowledges them in the spool as the collector acks them.
 *
 * Guarantees: an event leaves the spool (spool_ack) only after a collector acked it; after
 * a failure the next window starts at the spool's acknowledged position, so the collector
 * may see duplicates of the unacked part of a window, never a gap. The priority lane is
 * always drained first. Heartbeats go between windows, each in a window of its own.
 *
 * Runs on the agent's one event_base; not thread-safe. The program must ignore SIGPIPE
 * (writes to a collector that went away would otherwise kill it).
 */
#ifndef TM_AGENT_SHIP_H
#define TM_AGENT_SHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool.h"
#include "tm/tm_common.h"

struct event_base;

/* Most collectors in the failover list. */
#define SHIP_MAX_COLLECTORS 16
/* Longest collector address ("host:port", "[v6]:port") plus NUL. */
#define SHIP_ADDR_LEN 272

/*
 * The numbers a heartbeat carries besides identity and time. The shipper fills them
 * (uptime since ship_create, spool depth, loss and next_seq from spool_get_stats, its own
 * last error) and then calls cfg->heartbeat_cb, if set, which may change any of them.
 */
struct ship_heartbeat {
    uint64_t uptime_s;
    uint64_t spool_events; /* both lanes, flushed and not yet acknowledged */
    uint64_t spool_bytes;  /* both lanes, on disk */
    uint64_t lost_events;
    uint64_t next_seq;
    char last_error[TM_ERR_LEN]; /* "" when there was none */
};

struct ship_config {
    const char *agent_id; /* required; copied */
    const char *version;  /* agent version for heartbeats; copied */
    /* Collectors "host:port", tried in order; on any failure the next one is used. */
    const char *const *collectors;
    size_t ncollectors; /* 1..SHIP_MAX_COLLECTORS; the strings are copied */

    /* TLS: on when tls_ca is set. The CA file is the only trust anchor (pinned). */
    const char *tls_ca;   /* PEM CA that signs the collectors' certificates */
    const char *tls_cert; /* PEM client certificate chain (optional, with tls_key) */
    const char *tls_key;  /* PEM private key of tls_cert */
    /*
     * Check the collector's certificate names: against tls_server_name when set, else
     * against the host part of the collector address (IP literal: IP SAN; name: DNS SAN
     * or CN, also sent as SNI). Off: any certificate signed by the CA is accepted.
     */
    bool tls_verify_name;
    const char *tls_server_name; /* copied; NULL or "": the address's host */

    uint32_t max_window_events;     /* events per window (default 1000; 1..100000) */
    uint32_t max_window_bytes;      /* JSON bytes per window, at least one event (768 KiB) */
    int compression_level;          /* zlib level of the C frame, -1..9 (default 3) */
    uint32_t connect_timeout_ms;    /* TCP connect + TLS handshake (default 10 s) */
    uint32_t ack_timeout_ms;        /* no ack (nor keepalive ack) this long: reconnect (30 s) */
    uint32_t backoff_base_ms;       /* reconnect delay ceiling after the 1st failure (0.5 s) */
    uint32_t backoff_max_ms;        /* largest reconnect delay ceiling (30 s) */
    uint32_t heartbeat_interval_ms; /* while connected; 0 = no heartbeats (default 30 s) */
    uint32_t poll_interval_ms;      /* safety net when ship_kick was missed (default 5 s) */

    /* Optional: adjusts a heartbeat's numbers before it is sent (see ship_heartbeat). */
    void (*heartbeat_cb)(void *arg, struct ship_heartbeat *hb);
    /* Optional: the random source of the backoff jitter (tests); default: seeded PRNG. */
    uint32_t (*random_cb)(void *arg);
    void *cb_arg;
};

struct ship_stats {
    bool connected;                /* TCP (and TLS) established */
    char collector[SHIP_ADDR_LEN]; /* connected to, or next to try */
    uint64_t windows_sent;         /* event windows written (resends included) */
    uint64_t events_acked;         /* events acked by collectors, and so by the spool */
    uint64_t heartbeats_sent;
    uint64_t heartbeats_acked;
    uint64_t reconnects;     /* reconnections scheduled after a failure */
    uint64_t connect_errors; /* failures before the connection was established */
    uint64_t ack_timeouts;
    uint32_t last_backoff_ms;    /* delay of the last scheduled reconnection */
    char last_error[TM_ERR_LEN]; /* most recent error, "" if none; never holds secrets */
};

/* Fills cfg with the defaults above; the caller then sets agent_id, collectors, TLS. */
void ship_config_default(struct ship_config *cfg);

/*
 * Creates a shipper reading from spool (not owned; it must outlive the shipper) on base.
 * Checks the configuration and loads the TLS files now; the first connection attempt is
 * made from the event loop, so collectors being down is not an error here. Returns NULL
 * with err (TM_ERR_LEN bytes) filled: "no collectors", "collector 'x': expected
 * HOST:PORT", "cannot load CA '/etc/tm/ca.pem': ...". The caller owns the shipper.
 */
struct ship *ship_create(struct event_base *base, struct spool *spool,
                         const struct ship_config *cfg, char *err);

/* Closes the connection and frees the shipper (not the spool). NULL is ignored. */
void ship_destroy(struct ship *s);

/*
 * Tells the shipper that the spool has new flushed events (call after spool_flush). Cheap
 * and safe from any callback: the work is done later in the loop. When a window is in
 * flight or the shipper is disconnected it only takes effect when that ends.
 */
void ship_kick(struct ship *s);

/* Copies the counters and state into out. */
void ship_get_stats(const struct ship *s, struct ship_stats *out);

/*
 * The reconnect delay after `failures` consecutive failures (0 for the first), with full
 * jitter: a value in [0, min(max_ms, base_ms * 2^failures)] picked by rnd (uniform
 * random 32 bits). Exposed for tests and for operators' documentation.
 */
uint32_t ship_backoff_ms(uint32_t base_ms, uint32_t max_ms, unsigned failures, uint32_t rnd);

/*
 * The name the collector's certificate must carry: server_name when set, else the host
 * of addr ("host:port", "[v6]:port"). The shipper and `tm-agent enroll` both check it
 * (tls.h says how). Returns 0, or -1 when it does not fit in out.
 */
int ship_expected_name(const char *addr, const char *server_name, char *out, size_t outlen);

#endif
