/*
 * dashboard.h - the pieces of tm-dashboard and how they meet.
 *
 *   main.c              options, config, signals, wiring; prints the bound addresses
 *   dashboard_config.c  the INI option table, command-line overrides, the Redis password
 *   auth.c              read-only tokens (SHA-256 digests only), bearer and session-cookie
 *                       checks in constant time, the signed session cookie
 *   redis_client.c      two hiredis async connections on the libevent loop: commands
 *                       (pipelined queries) and pub/sub (tm:updates); AUTH, SELECT,
 *                       reconnect with backoff, a deadline on every query
 *   server.c            the evhttp listener (optionally TLS), routing, security headers,
 *                       access checks, the in-flight bound, metrics, answers, /login
 *   static_files.c      the web root: path checks and content types
 *   api.c               the JSON endpoints of docs/dashboard.md, each a pipelined query
 *                       whose replies become one JSON document; a short answer cache
 *   stream.c            Server-Sent Events: tm:updates messages and new tm:feed entries
 *                       pushed to every client, pings, the client cap
 *
 * Data flow: request -> server.c (route, headers, auth, limits) -> api.c builds a
 * dash_query (commands appended to the command connection in one go) -> replies copied
 * into the query -> api.c turns them into JSON -> server.c answers. Pub/sub messages ->
 * stream.c -> XREAD of entries after the last id sent -> every SSE client.
 *
 * Everything runs on one thread and one event_base. Ownership: struct dash owns every
 * module; a pending API request owns its query; a client that leaves only detaches its
 * request (the query finishes and is freed without answering).
 */
#ifndef DASHBOARD_DASHBOARD_H
#define DASHBOARD_DASHBOARD_H

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "tm/tm_common.h"
#include "tm/tm_metrics.h"
#include "tm/tm_net.h"

#define DASH_PATH_MAX 1024

/* ---- config (dashboard_config.c) ---------------------------------------------------- */

struct dash_config {
    /* [dashboard] */
    char http[TM_ADDR_LEN];
    char admin[TM_ADDR_LEN];
    char web_root[DASH_PATH_MAX]; /* "" = next to the binary, else /usr/share/... */
    char log_level[16];
    bool log_syslog;
    int64_t max_inflight;
    int64_t max_streams;
    int64_t silent_after_ms;
    int64_t cache_ttl_ms;
    int64_t ping_interval_ms;
    /* [redis] */
    char redis[TM_ADDR_LEN];
    char redis_username[128];
    char redis_password[256]; /* never logged */
    char redis_password_file[DASH_PATH_MAX];
    int64_t redis_db;
    int64_t redis_timeout_ms;
    int64_t redis_backoff_max_ms;
    /* [auth] */
    bool auth;
    char tokens[4000]; /* name:token,name:token; never logged */
    char tokens_file[DASH_PATH_MAX];
    int64_t session_lifetime_ms;
    /* [tls] */
    char tls_cert[DASH_PATH_MAX];
    char tls_key[DASH_PATH_MAX];
};

/*
 * Applies the defaults, then the file at path (NULL: defaults only). Returns 0, or -1
 * with "FILE:LINE: ..." in err.
 */
int dash_config_load(struct dash_config *cfg, const char *path, char *err);
/* Sets the option behind a long command-line option (--redis, --http, --admin, --web,
 * --log-level). Returns 0, or -1 with err. */
int dash_config_override(struct dash_config *cfg, const char *name, const char *value, char *err);
/* Reads redis_password_file (first line) into redis_password when set. Returns 0 or -1. */
int dash_config_read_password(struct dash_config *cfg, char *err);

/* ---- tokens and sessions (auth.c) --------------------------------------------------- */

struct dash_auth;

/*
 * Builds the token list from cfg->tokens and cfg->tokens_file (name:token, one per line
 * in the file; '#' comments). Only SHA-256 digests are kept. Returns NULL with err for
 * a malformed entry, a repeated name, an unreadable file, or no token at all while
 * cfg->auth is on.
 */
struct dash_auth *dash_auth_load(const struct dash_config *cfg, char *err);
void dash_auth_free(struct dash_auth *a);
size_t dash_auth_count(const struct dash_auth *a);
/*
 * Checks a presented token against every configured one (constant time per entry).
 * Returns the entry's name, or NULL.
 */
const char *dash_auth_token(const struct dash_auth *a, const char *token);
/*
 * Writes the session cookie value for the token named name, valid until expires_s
 * (seconds since the epoch): "name:expires:hex(HMAC-SHA256(SHA-256(token), ...))".
 * Returns 0, or -1 when out is too small or the name is unknown.
 */
int dash_auth_session(const struct dash_auth *a, const char *name, int64_t expires_s, char *out,
                      size_t outlen);
/* Checks a session cookie value at time now_s. Returns the token's name, or NULL. */
const char *dash_auth_check_session(const struct dash_auth *a, const char *value, int64_t now_s);

/* ---- redis (redis_client.c) --------------------------------------------------------- */

struct dash_redis;
struct dash_query;

struct dash_redis_events {
    void (*up_cb)(void *arg);   /* the command connection answers again */
    void (*down_cb)(void *arg); /* it was lost */
    void (*subscribed_cb)(void *arg);
    void (*message_cb)(void *arg, const char *payload, size_t len); /* tm:updates */
    void *arg;
};

/*
 * Creates the client on base (cfg and metrics borrowed) and starts connecting both
 * connections. Returns NULL with err.
 */
struct dash_redis *dash_redis_create(struct event_base *base, const struct dash_config *cfg,
                                     struct tm_metrics *metrics, const struct dash_redis_events *ev,
                                     char *err);
void dash_redis_destroy(struct dash_redis *r);
/* True while the command connection is ready. */
bool dash_redis_up(const struct dash_redis *r);
/* Why it is not ("connection refused", ...), for 503 answers. */
const char *dash_redis_reason(const struct dash_redis *r);

typedef void (*dash_query_cb)(struct dash_query *q, void *arg);

/* A query: commands sent back to back; cb runs once every reply of the batch is in. */
struct dash_query {
    redisReply **replies; /* copies, owned by the query, in command order */
    size_t nreplies;
    bool failed; /* a command could not be sent, or the connection was lost */
    /* private */
    struct dash_redis *r;
    size_t cap, expected;
    dash_query_cb cb;
    void *arg;
    bool waiting, cancelled;
    int64_t sent_ms;
    struct dash_query *prev, *next;
};

/* A new query bound to cb(q, arg). Returns NULL on allocation failure. */
struct dash_query *dash_query_create(struct dash_redis *r, dash_query_cb cb, void *arg);
/*
 * Appends one command (hiredis format: "HGET %s %s", %b for binary) to the command
 * connection. Failures mark the query failed; the caller goes on and learns it in cb.
 */
void dash_query_cmd(struct dash_query *q, const char *fmt, ...);
/* Appends one command given as argc NUL-terminated strings (as dash_query_cmd). */
void dash_query_argv(struct dash_query *q, int argc, const char **argv);
/*
 * Waits for the replies of every command appended since the last reset: cb runs from the
 * event loop once they are in (or at once, from here, when none is owed).
 */
void dash_query_wait(struct dash_query *q);
/* Frees the replies so the query can carry another batch (from inside cb too). */
void dash_query_reset(struct dash_query *q);
/*
 * Frees the query, or, while replies are owed, forgets cb and frees it when the last
 * one arrives. NULL is allowed.
 */
void dash_query_free(struct dash_query *q);

/* ---- the server (server.c) ---------------------------------------------------------- */

enum dash_endpoint {
    EP_OVERVIEW,
    EP_SECTOR,
    EP_FEED,
    EP_AGENTS,
    EP_PRIORITIES,
    EP_STREAM,
    EP_STATIC,
    EP_LOGIN,
    EP_LOGOUT,
    EP_OTHER,
    EP_COUNT
};

struct dash_api;
struct dash_stream;

struct dash {
    struct dash_config cfg;
    struct event_base *base;
    struct tm_metrics *metrics;
    struct dash_auth *auth;
    struct dash_redis *redis;
    struct dash_api *api;
    struct dash_stream *stream;
    struct evhttp *http;
    SSL_CTX *tls;
    char http_addr[TM_ADDR_LEN];
    char web_root[DASH_PATH_MAX]; /* resolved (realpath); "" = none */
    struct tm_counter *c_login_fail;
};

/* Binds cfg.http (TLS when cfg.tls_cert is set) and starts serving. Returns 0 or -1. */
int dash_server_start(struct dash *d, char *err);
void dash_server_stop(struct dash *d);

/* Adds the security headers every answer carries. */
void dash_security_headers(struct dash *d, struct evhttp_request *req);
/*
 * Sends a whole answer of content type ctype (body may be NULL) and counts it under ep
 * with its duration since start_ms (monotonic). The request belongs to evhttp after.
 */
void dash_reply(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, int code,
                const char *ctype, const char *body, size_t len, int64_t start_ms);
/* Sends {"error": message} as application/json. */
void dash_reply_error(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, int code,
                      int64_t start_ms, const char *fmt, ...) TM_PRINTF(6, 7);
/* Sends o (consumed) as application/json. */
void dash_reply_json(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, json_t *o,
                     int64_t start_ms);
/* Sends a static file's 200 answer; buf holds the body (a file segment). */
void dash_reply_file(struct dash *d, struct evhttp_request *req, const char *ctype,
                     struct evbuffer *buf, int64_t start_ms);
/* Counts an answer sent some other way (SSE). */
void dash_count(struct dash *d, enum dash_endpoint ep, int code, int64_t start_ms);

/* ---- static files (static_files.c) -------------------------------------------------- */

/*
 * Picks the web root: cfg->web_root when set, else <dir of /proc/self/exe>/../dashboard/web
 * when it exists, else /usr/share/tm-telemetry/web. Writes its realpath into out, or ""
 * (with a warning) when it does not exist.
 */
void dash_static_root(const struct dash_config *cfg, char *out, size_t outlen);
/* Serves the GET/HEAD request for path (as in the URI, still encoded). */
void dash_static_serve(struct dash *d, struct evhttp_request *req, const char *path,
                       int64_t start_ms);

/* ---- the JSON API (api.c) ----------------------------------------------------------- */

struct dash_api *dash_api_create(struct dash *d);
void dash_api_destroy(struct dash_api *a);
/*
 * Serves an authorised GET/HEAD on an /api/ endpoint other than /api/stream: checks the
 * parameters (400), the sector (404), Redis (503), the in-flight bound (503).
 * sector_id is the path part after /api/sector/ (EP_SECTOR only).
 */
void dash_api_handle(struct dash_api *a, struct evhttp_request *req, enum dash_endpoint ep,
                     const char *sector_id, int64_t start_ms);
/*
 * The /api/feed item of one tm:feed entry as XRANGE / XREVRANGE / XREAD return it
 * ([id, [field, value, ...]]). Returns a new object, or NULL for a malformed entry.
 */
json_t *dash_feed_item(const redisReply *entry);
/* Drops cached answers (an aggregator flush changed the data). */
void dash_api_invalidate(struct dash_api *a);

/* ---- Server-Sent Events (stream.c) -------------------------------------------------- */

struct dash_stream *dash_stream_create(struct dash *d);
void dash_stream_destroy(struct dash_stream *s);
/* Serves an authorised GET /api/stream (503 past max_streams or while Redis is down). */
void dash_stream_open(struct dash_stream *s, struct evhttp_request *req, int64_t start_ms);
/* A tm:updates message arrived. */
void dash_stream_update(struct dash_stream *s, const char *payload, size_t len);
/* The command connection is ready: learn the newest tm:feed id when none is known yet. */
void dash_stream_redis_up(struct dash_stream *s);
/* Number of connected clients. */
size_t dash_stream_clients(const struct dash_stream *s);

#endif
