/*
 * collector.h - the pieces of tm-collector and how they meet.
 *
 *   main.c            options, config, wiring, signals (SIGTERM drain, SIGHUP reload)
 *   config.c          the INI option table and command-line overrides
 *   identity.c        who a connection is: certificate / token / address -> operator
 *   acceptor.c        one thread accepts TCP connections, enforces connection limits,
 *                     and hands each socket to a worker
 *   worker.c          N threads, each with its own event loop and Kafka producer
 *   lumberjack_conn.c a Beats / tm-agent connection: frames, windows, acks
 *   syslog_in.c       syslog over TCP (octet counting or LF) and UDP
 *   http_in.c         POST /v1/events (NDJSON, gzip)
 *   ingest.c          one payload -> validated, stamped canonical event -> Kafka
 *   kafka_sink.c      the producer and its delivery reports
 *   tls.c             OpenSSL context and peer certificate names
 *   rate.c            per-operator token buckets (HTTP, Lumberjack and syslog rate limits)
 *   enroll.c          POST /v1/enroll on its own TLS listener: a one-time token and an
 *                     agent's certificate request in, a certificate out (optional)
 *
 * Ownership: the collector owns workers, the acceptor and the identity map; a worker owns
 * its event base, producer and connections; a connection owns its windows, and lives
 * until its socket is closed AND every message it produced has a delivery report.
 */
#ifndef COLLECTOR_COLLECTOR_H
#define COLLECTOR_COLLECTOR_H

#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kafka_sink.h"
#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_lumberjack.h"
#include "tm/tm_metrics.h"
#include "tm/tm_net.h"

#define COLLECTOR_MAX_WORKERS 16
#define COLLECTOR_MAX_EXTRA 32

struct collector_config {
    /* [collector] */
    int64_t workers;
    char admin[TM_ADDR_LEN];
    char log_level[16];
    bool log_syslog;
    int64_t drain_timeout_ms;
    int64_t max_connections;
    int64_t max_connections_per_ip;
    /* [kafka] */
    char kafka[1024];
    char topic_events[128], topic_rejected[128], topic_heartbeats[128];
    char compression[16];
    int64_t linger_ms, batch_bytes, message_timeout_ms, high_water, low_water;
    /* [lumberjack] */
    char lumberjack[TM_ADDR_LEN];
    bool lumberjack_tls;
    uint64_t max_frame, max_decompressed;
    int64_t max_window;
    int64_t max_pending_windows;
    int64_t idle_timeout_ms;
    int64_t keepalive_ms;
    int64_t lj_rate_per_sender; /* events per second per operator, 0 = unlimited */
    int64_t lj_rate_burst;
    /* [syslog] */
    char syslog_tcp[TM_ADDR_LEN], syslog_udp[TM_ADDR_LEN];
    bool syslog_tls;
    uint64_t max_line;
    int64_t syslog_rate_per_sender; /* messages per second per operator, 0 = unlimited */
    int64_t syslog_rate_burst;
    /* [http] */
    char http[TM_ADDR_LEN];
    uint64_t max_body;
    int64_t rate_per_sender; /* events per second per operator, 0 = unlimited */
    int64_t rate_burst;
    /* [tls] */
    char tls_cert[512], tls_key[512], tls_ca[512];
    bool tls_require_client_cert;
    /* [identity] */
    char identity_map[512];
    char default_operator[TM_EVENT_NAME_MAX + 1];
    char default_sector[32];
    char default_region[8];
    /* [enroll]: token enrollment (enroll.c, docs/enrollment.md) */
    char enroll[TM_ADDR_LEN];
    char enroll_ca_cert[512], enroll_ca_key[512], enroll_tokens[512];
    int64_t enroll_cert_days;
    /* [kafka.librdkafka]: passed through ("key=value") */
    char *kafka_extra[COLLECTOR_MAX_EXTRA + 1];
    int kafka_extra_count;
};

/* Fills defaults, reads path (may be NULL). Returns 0 or -1 with err. */
int collector_config_load(struct collector_config *cfg, const char *path, char *err);
/* Applies one command-line override by its option name ("kafka", "lumberjack", ...). */
int collector_config_override(struct collector_config *cfg, const char *name, const char *value,
                              char *err);
void collector_config_free(struct collector_config *cfg);

/* ---- identity ---------------------------------------------------------------------- */

struct identity {
    char operator_id[TM_EVENT_NAME_MAX + 1];
    char sector[32];
    char region[8];
};

struct identity_map;

/*
 * Loads an identity map file (docs/collector.md): INI sections [operator.ID] with
 * sector, region, certs (subject CNs / SAN DNS names), tokens_sha256, networks (CIDRs).
 * Returns NULL with err.
 */
struct identity_map *identity_map_load(const char *path, char *err);
void identity_map_free(struct identity_map *m);

/*
 * Lookups: each fills *out and returns 0, returns -1 when nothing matches, or (certificate
 * names and tokens) IDENTITY_REVOKED when the name or token is in the map's [revoked] list.
 */
#define IDENTITY_REVOKED (-2)
int identity_by_cert_name(const struct identity_map *m, const char *name, struct identity *out);
int identity_by_token(const struct identity_map *m, const char *token, struct identity *out);
int identity_by_addr(const struct identity_map *m, const struct sockaddr *sa, struct identity *out);

/* ---- the collector and its workers ------------------------------------------------- */

struct worker;

struct collector {
    struct collector_config cfg;
    struct tm_metrics *metrics;
    struct event_base *base; /* main thread: acceptor, admin, signals */
    SSL_CTX *tls;            /* NULL when no certificate is configured */
    struct tm_lj_limits lj_limits;

    pthread_mutex_t identity_lock;
    struct identity_map *identities; /* swapped on SIGHUP under identity_lock */
    bool have_default_identity;
    struct identity default_identity;

    struct worker *workers[COLLECTOR_MAX_WORKERS];
    int nworkers;
    unsigned next_worker;

    /* connections per source address, shared by acceptor and workers */
    pthread_mutex_t conn_lock;
    struct conn_count *conn_counts;
    long connections;

    struct tm_counter *conn_refused;
    /* per-operator rate limits (rate.h), NULL when unlimited */
    struct rate_limiter *http_rate, *lj_rate, *syslog_rate;
    struct tm_counter *lj_throttled, *syslog_throttled; /* tm_collector_throttled_total */
    volatile int draining;
};

/*
 * Resolves the identity of a connection: a certificate name first, else the peer address
 * ranges, else the default identity (plain TCP on loopback and tests). Thread-safe.
 * Returns 0, -1 (unknown sender) or IDENTITY_REVOKED (a revoked certificate name).
 */
int collector_identify(struct collector *c, const char *cert_name, const struct sockaddr *peer,
                       struct identity *out);
/* As identity_by_token, under the identity lock: 0, -1 or IDENTITY_REVOKED. */
int collector_identify_token(struct collector *c, const char *token, struct identity *out);
/*
 * Resolves a connection: the names of its verified TLS client certificate (ssl may be
 * NULL for plain TCP), else its address, else the default identity. A certificate the
 * map does not name is refused, never given the default identity, and so is one with any
 * name in the [revoked] list. Logs the outcome as
 * "LISTENER PEER: ..." (a refusal names the certificate). Returns 0 or -1.
 */
int collector_identify_conn(struct collector *c, SSL *ssl, const struct sockaddr *peer,
                            const char *listener, const char *peer_text, struct identity *out);

/*
 * Makes ctx's handshakes fail for a client certificate with a name in the identity map's
 * [revoked] list (OpenSSL's "certificate revoked" alert), read at each handshake, so a
 * SIGHUP takes effect from the next one. Does nothing when ctx does not ask for client
 * certificates.
 */
void collector_tls_refuse_revoked(struct collector *c, SSL_CTX *ctx);

/* Connection accounting (acceptor admits, worker releases). */
bool collector_conn_admit(struct collector *c, const struct sockaddr *peer);
void collector_conn_release(struct collector *c, const struct sockaddr *peer);
/* Frees the per-address table at exit. */
void collector_conn_counts_free(struct collector *c);

/* ---- worker ------------------------------------------------------------------------ */

enum listener_kind { LISTENER_LUMBERJACK, LISTENER_SYSLOG_TCP };

/* Per-listener metrics, shared by all workers (atomic counters). */
struct listener_metrics {
    struct tm_counter *events_in;
    struct tm_counter *accepted;
    struct tm_counter *skipped;
    struct tm_counter *bytes;
    struct tm_gauge *connections;
    struct tm_metrics *registry; /* for rejected{reason} counters, created lazily */
    const char *name;
};

struct worker {
    struct collector *c;
    int index;
    pthread_t thread;
    struct event_base *base;
    struct kafka_sink *sink;
    struct event *handoff_ev; /* woken by the acceptor */
    pthread_mutex_t handoff_lock;
    struct handoff *handoff_head;
    struct conn_list *conns; /* for pausing all reads under backpressure */
    bool paused;
    struct listener_metrics lm_lumberjack, lm_syslog, lm_http;
};

struct worker *worker_create(struct collector *c, int index, char *err);
int worker_start(struct worker *w, char *err);
/* Hands an accepted socket to the worker (any thread). The worker owns fd afterwards. */
void worker_handoff(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                    enum listener_kind kind);
/* Asks the worker to stop reading, flush Kafka up to the drain timeout, ack, and exit. */
void worker_stop(struct worker *w);
/* Waits for the worker's thread to leave its loop (after worker_stop). */
void worker_join(struct worker *w);
/* Joins, then frees the worker's producer, loop and itself. */
void worker_join_and_free(struct worker *w);

/* Connections register so the worker can pause and resume them all. */
struct conn_list {
    void (*pause_cb)(struct conn_list *self, bool paused);
    void (*close_cb)(struct conn_list *self); /* closes; must call worker_conn_remove */
    struct conn_list *prev, *next;
};
void worker_conn_add(struct worker *w, struct conn_list *l);

/*
 * Wall-clock milliseconds as of this loop iteration (libevent's cached time): the
 * receive time of everything read in one callback, without a clock call per event.
 */
int64_t worker_now_ms(struct worker *w);
void worker_conn_remove(struct worker *w, struct conn_list *l);

/* ---- ingest ------------------------------------------------------------------------ */

enum ingest_result {
    INGEST_ACCEPTED = 0, /* valid: produced to tm.events.v1 */
    INGEST_REJECTED = 1, /* invalid: produced to tm.events.rejected with the reason */
    INGEST_SKIPPED = 2,  /* well-formed, not a security event: nothing produced */
    INGEST_FAILED = -1,  /* could not be queued (err says why): do not ack */
};

/* How a payload is to be read. */
enum ingest_format {
    INGEST_JSON_ANY, /* canonical v1 event, or a Beats event normalised by its module */
    INGEST_SYSLOG,   /* one syslog line */
};

/*
 * Turns one payload into a message: decode/parse, validate, stamp identity and receive
 * time, produce. When the result is ACCEPTED or REJECTED, t->done_cb will be called
 * once; for SKIPPED and FAILED it will not. reason (TM_ERR_LEN, may be NULL) receives
 * the rejection message.
 */
enum ingest_result ingest_payload(struct worker *w, const struct identity *id,
                                  enum ingest_format fmt, const char *data, size_t len,
                                  struct listener_metrics *lm, struct kafka_ticket *t,
                                  char *reason);

#endif
