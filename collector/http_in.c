/*
 * http_in.c - HTTP ingest: POST /v1/events on one worker's event loop (libevent evhttp).
 *
 * A request passes, in order: the route (404, 405), the bearer token (401), the media
 * type and content coding (415), the collector's state (503 while Kafka is congested
 * or down, or the collector drains), the body (gzip inflated a chunk at a time and stopped
 * past max_body: 413; bad gzip: 400), the number of lines (413 over HTTP_MAX_LINES) and
 * the operator's token bucket (429; the whole request or none of it). While Kafka
 * reports every broker down, requests get 503 except one at a time, which goes through
 * as a probe: the sink only learns the brokers are back from a delivery. Then every
 * non-blank NDJSON line goes to ingest with a ticket of its own, and the request waits:
 * the answer goes out only when every ticket is back, so a 200 means Kafka has each
 * accepted line (and each rejected line is in the rejected topic). Any line Kafka did
 * not take turns the answer into 503 and the client sends the whole request again;
 * events that carry their own `id` are deduplicated downstream, others may repeat.
 *
 * Lifetime: a struct http_req holds the tickets and lives until the last one is back,
 * whatever happens to the client. evhttp keeps a request it is waiting on alive even
 * when its connection goes, and tells us through the connection's close callback
 * (set per request, cleared before the reply), which forgets the request (freeing it
 * when evhttp has let go of it) so nothing touches it afterwards: the tickets still
 * come back, and the answer is just not sent.
 *
 * Authentication: no token, or a token the identity map does not know, is 401 (with
 * error="invalid_token" for an unknown one); a token in the map's [revoked] list is 403:
 * the sender is known and refused.
 *
 * Connections: a connection is counted (collector_conn_admit: max_connections in all and
 * max_connections_per_ip, shared with the other listeners) from its first request until
 * it closes; a request on a connection over either cap is answered 503 with Retry-After
 * and the connection is closed. evhttp has no hook before the first request, so a
 * connection that sends nothing is bounded only by the idle timeout. Each counted
 * connection has a struct http_conn, whose close callback also tells a request waiting for
 * Kafka that its client left. The rate limit is a token bucket per operator shared by all
 * workers (rate.h: rate_per_sender events per second, holding rate_burst events, or one
 * second's worth when 0); a full bucket admits one request larger than itself and goes
 * into debt, so a big batch slows its sender down instead of failing forever.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "collector.h"
#include "http_in.h"
#include "rate.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

/* Events in one request: bounds the per-line tickets (24 bytes each) of a request. */
#define HTTP_MAX_LINES 100000
/* Rejections listed one by one in the answer; rejected_count has them all. */
#define HTTP_MAX_REJECTED_LISTED 1000
#define HTTP_MAX_HEADERS (8 * 1024)
#define HTTP_MAX_TOKEN 1024
/* Seconds a client is told to wait when Kafka is congested, or down / draining. */
#define RETRY_CONGESTED "1"
#define RETRY_DOWN "5"

struct http_req;

/* A counted connection, from its first request until evhttp closes it. */
struct http_conn {
    struct http_conn *prev, *next; /* in h->conns */
    struct http_in *h;
    struct evhttp_connection *evcon;
    struct sockaddr_storage peer;
    struct http_req *r; /* the request waiting for Kafka on it, or NULL */
};

struct http_in {
    struct worker *w;
    struct evhttp *http;
    char addr[TM_ADDR_LEN];
    struct http_req *waiting; /* requests whose tickets are not all back */
    struct http_conn *conns;  /* counted connections (gauge: lm_http.connections) */
};

struct line_ticket {
    struct kafka_ticket ticket; /* first member: the ticket pointer is the line's pointer */
    struct http_req *r;
};

struct http_req {
    struct http_req *prev, *next; /* in h->waiting */
    struct http_in *h;            /* NULL after http_in_destroy */
    struct evhttp_request *req;   /* NULL once answered or the client is gone */
    struct http_conn *conn;       /* NULL once answered or the client is gone */
    char peer[TM_ADDR_LEN];
    char operator_id[TM_EVENT_NAME_MAX + 1];
    bool submitting; /* still in the ingest loop: do not answer yet */
    long out;        /* tickets not back */
    long lines, accepted, rejected, skipped, undelivered;
    bool queue_failed; /* ingest could not queue a line: the rest were not tried */
    char fail_reason[TM_ERR_LEN];
    json_t *rejected_list;
    struct line_ticket tickets[];
};

/* ---- answers ----------------------------------------------------------------------- */

static void count_code(struct http_in *h, int code)
{
    char s[16];

    snprintf(s, sizeof(s), "%d", code);
    tm_counter_inc(tm_metrics_counter(h->w->c->metrics, "tm_collector_http_requests_total",
                                      "HTTP ingest requests, by status code (499: the client "
                                      "left before the answer).",
                                      "code", s, NULL));
}

/*
 * Sends code with body (len bytes of content_type) and an optional Retry-After, and counts
 * it. The request belongs to evhttp afterwards.
 */
static void send_answer(struct http_in *h, struct evhttp_request *req, int code,
                        const char *content_type, const char *body, size_t len,
                        const char *retry_after)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *buf = evbuffer_new();

    count_code(h, code);
    evhttp_add_header(out, "Content-Type", content_type);
    if (retry_after != NULL)
        evhttp_add_header(out, "Retry-After", retry_after);
    if (buf != NULL && len > 0)
        evbuffer_add(buf, body, len);
    /* libevent 2.1 knows no phrase past 417 */
    evhttp_send_reply(req, code, code == 429 ? "Too Many Requests" : NULL, buf);
    if (buf != NULL)
        evbuffer_free(buf);
}

/* Sends {"error": message}. */
static void send_error(struct http_in *h, struct evhttp_request *req, int code,
                       const char *retry_after, const char *fmt, ...) TM_PRINTF(5, 6);

static void send_error(struct http_in *h, struct evhttp_request *req, int code,
                       const char *retry_after, const char *fmt, ...)
{
    char msg[TM_ERR_LEN];
    json_t *o;
    char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o = json_pack("{s:s}", "error", msg);
    if (o != NULL)
        text = json_dumps(o, JSON_COMPACT);
    if (text != NULL) {
        send_answer(h, req, code, "application/json", text, strlen(text), retry_after);
    } else {
        static const char fallback[] = "{\"error\":\"out of memory\"}";
        send_answer(h, req, code, "application/json", fallback, sizeof(fallback) - 1, retry_after);
    }
    free(text);
    json_decref(o);
}

/* A JSON string of s, with '?' for bytes that are not valid UTF-8 (reasons quote input). */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    char clean[TM_ERR_LEN];
    size_t i;

    if (j != NULL)
        return j;
    for (i = 0; s[i] != '\0' && i < sizeof(clean) - 1; i++)
        clean[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    clean[i] = '\0';
    return json_string(clean);
}

/* ---- connections ------------------------------------------------------------------- */

/* Stops counting hc and frees it. */
static void conn_forget(struct http_conn *hc)
{
    struct http_in *h = hc->h;

    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else
        h->conns = hc->next;
    if (hc->next != NULL)
        hc->next->prev = hc->prev;
    collector_conn_release(h->w->c, (const struct sockaddr *)&hc->peer);
    tm_gauge_add(h->w->lm_http.connections, -1);
    free(hc);
}

static void conn_close_cb(struct evhttp_connection *evcon, void *arg);

/*
 * The counted connection evcon is, counting it now when this is its first request.
 * Returns NULL when it is over the caps (or memory ran out): the caller refuses.
 */
static struct http_conn *conn_of(struct http_in *h, struct evhttp_connection *evcon)
{
    const struct sockaddr *sa = evhttp_connection_get_addr(evcon);
    struct http_conn *hc;

    for (hc = h->conns; hc != NULL; hc = hc->next)
        if (hc->evcon == evcon)
            return hc;
    if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        return NULL;
    hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    memcpy(&hc->peer, sa,
           sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if (!collector_conn_admit(h->w->c, sa)) {
        free(hc);
        tm_counter_inc(h->w->c->conn_refused);
        return NULL;
    }
    hc->h = h;
    hc->evcon = evcon;
    hc->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = hc;
    h->conns = hc;
    tm_gauge_add(h->w->lm_http.connections, 1);
    evhttp_connection_set_closecb(evcon, conn_close_cb, hc);
    return hc;
}

/* ---- requests waiting for Kafka ---------------------------------------------------- */

/* Answers once every ticket is back (and the client is still there), then frees r. */
static void finish(struct http_req *r)
{
    json_t *o = NULL;
    char *text = NULL;

    if (r->submitting || r->out > 0)
        return;
    if (r->conn != NULL) {
        r->conn->r = NULL;
        r->conn = NULL;
    }
    if (r->req != NULL && r->h != NULL) {
        if (r->queue_failed || r->undelivered > 0) {
            if (r->queue_failed)
                send_error(r->h, r->req, 503, RETRY_CONGESTED,
                           "kafka did not take the events (%s); send the whole request again",
                           r->fail_reason);
            else
                send_error(r->h, r->req, 503, RETRY_CONGESTED,
                           "kafka did not take %ld of %ld events; send the whole request "
                           "again",
                           r->undelivered, r->accepted + r->rejected);
        } else {
            o = json_pack("{s:I,s:O,s:I,s:I}", "accepted", (json_int_t)r->accepted, "rejected",
                          r->rejected_list, "rejected_count", (json_int_t)r->rejected, "skipped",
                          (json_int_t)r->skipped);
            if (o != NULL)
                text = json_dumps(o, JSON_COMPACT);
            if (text != NULL)
                send_answer(r->h, r->req, 200, "application/json", text, strlen(text), NULL);
            else
                send_error(r->h, r->req, 500, NULL, "out of memory for the answer");
        }
        tm_log_debug("http %s: operator '%s': %ld lines, %ld accepted, %ld rejected, "
                     "%ld skipped, %ld undelivered",
                     r->peer, r->operator_id, r->lines, r->accepted, r->rejected, r->skipped,
                     r->undelivered);
    }
    r->req = NULL;
    if (r->h != NULL) {
        if (r->prev != NULL)
            r->prev->next = r->next;
        else
            r->h->waiting = r->next;
        if (r->next != NULL)
            r->next->prev = r->prev;
    }
    free(text);
    json_decref(o);
    json_decref(r->rejected_list);
    free(r);
}

static void line_done_cb(struct kafka_ticket *t, int err)
{
    struct http_req *r = ((struct line_ticket *)t)->r;

    r->out--;
    if (err != 0)
        r->undelivered++;
    finish(r);
}

/*
 * A counted connection is going away. When a request waits for Kafka on it and evhttp has
 * let go of that request (connection failure) it is ours to free; when it has not (the
 * server is being freed) evhttp frees it right after this. Either way the request forgets
 * it. Then the connection is no longer counted.
 */
static void conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
    struct http_conn *hc = arg;
    struct http_in *h = hc->h;
    struct http_req *r = hc->r;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (r != NULL) {
        r->conn = NULL;
        if (r->req != NULL) {
            if (evhttp_request_get_connection(r->req) == NULL)
                evhttp_request_free(r->req);
            r->req = NULL;
            count_code(h, 499);
            tm_log_info("http %s: client left before kafka took its %ld events", r->peer, r->lines);
        }
    }
    conn_forget(hc);
}

/* ---- checks ------------------------------------------------------------------------ */

/* The bearer token of an "Authorization: Bearer TOKEN" header, or NULL. */
static const char *bearer_token(const char *auth, char *token, size_t size)
{
    size_t n;

    if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
        return NULL;
    auth += 6;
    while (*auth == ' ' || *auth == '\t')
        auth++;
    n = strcspn(auth, " \t");
    if (n == 0 || n >= size || auth[n] != '\0')
        return NULL;
    memcpy(token, auth, n);
    token[n] = '\0';
    return token;
}

/*
 * NDJSON goes by several names; application/x-www-form-urlencoded is what curl -d and
 * --data-binary send when not told otherwise, so it is read as "no type given".
 */
static bool media_type_ok(const char *ct)
{
    static const char *const ok[] = {"application/x-ndjson", "application/json", "text/plain",
                                     "application/x-www-form-urlencoded"};
    size_t n;

    if (ct == NULL)
        return true;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    if (n == 0)
        return true;
    for (size_t i = 0; i < TM_ARRAY_LEN(ok); i++)
        if (strlen(ok[i]) == n && strncasecmp(ct, ok[i], n) == 0)
            return true;
    return false;
}

/*
 * Inflates a gzip body (one or more members) from in into a new buffer, stopping as soon
 * as it passes max bytes. Returns 0 with *out (free it) and *outlen, or the HTTP status
 * to answer (400, 413, 500) with err.
 */
static int gunzip_body(struct evbuffer *in, size_t max, char **out, size_t *outlen, char *err)
{
    z_stream zs;
    struct evbuffer_iovec *v = NULL;
    int nv, rc = 500;
    char *buf = NULL;
    size_t cap, used = 0;
    bool ended = false;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        tm_err(err, "cannot start inflating");
        return 500;
    }
    nv = evbuffer_peek(in, -1, NULL, NULL, 0);
    v = calloc(nv > 0 ? (size_t)nv : 1, sizeof(*v));
    cap = max < 64 * 1024 ? max + 1 : 64 * 1024;
    buf = malloc(cap);
    if (v == NULL || buf == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    nv = evbuffer_peek(in, -1, NULL, v, nv);
    for (int i = 0; i < nv; i++) {
        zs.next_in = v[i].iov_base;
        zs.avail_in = (uInt)v[i].iov_len;
        while (zs.avail_in > 0) {
            int zr;

            if (ended) { /* another gzip member follows */
                inflateReset(&zs);
                ended = false;
            }
            if (used == cap) {
                char *nb;
                if (cap > max) {
                    rc = 413;
                    tm_err(err, "body inflates to more than %zu bytes", max);
                    goto out;
                }
                cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                nb = realloc(buf, cap);
                if (nb == NULL) {
                    tm_err(err, "out of memory");
                    goto out;
                }
                buf = nb;
            }
            zs.next_out = (Bytef *)buf + used;
            zs.avail_out = (uInt)(cap - used);
            zr = inflate(&zs, Z_NO_FLUSH);
            used = cap - zs.avail_out;
            if (used > max) {
                rc = 413;
                tm_err(err, "body inflates to more than %zu bytes", max);
                goto out;
            }
            if (zr == Z_STREAM_END) {
                ended = true;
            } else if (zr != Z_OK && !(zr == Z_BUF_ERROR && zs.avail_out == 0)) {
                rc = 400;
                tm_err(err, "invalid gzip body: %s", zs.msg != NULL ? zs.msg : "corrupt data");
                goto out;
            }
        }
    }
    if (!ended) {
        rc = 400;
        tm_err(err, "gzip body ends before its stream does");
        goto out;
    }
    *out = buf;
    *outlen = used;
    buf = NULL;
    rc = 0;
out:
    inflateEnd(&zs);
    free(v);
    free(buf);
    return rc;
}

/* ---- POST /v1/events --------------------------------------------------------------- */

static bool blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

/* Calls fn for each non-blank line (without its CR LF); stops when fn returns -1. */
static long for_each_line(const char *data, size_t len,
                          int (*fn)(void *arg, long lineno, const char *line, size_t n), void *arg)
{
    const char *p = data, *end = data + len;
    long lineno = 0, count = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        size_t n = (size_t)(e - p);

        lineno++;
        while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (!blank(p, n)) {
            count++;
            if (fn != NULL && fn(arg, lineno, p, n) != 0)
                break;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return count;
}

struct submit_ctx {
    struct http_req *r;
    const struct identity *id;
};

static int submit_line(void *arg, long lineno, const char *line, size_t n)
{
    struct submit_ctx *s = arg;
    struct http_req *r = s->r;
    struct worker *w = r->h->w;
    struct line_ticket *t = &r->tickets[r->lines++];
    char reason[TM_ERR_LEN] = "";
    enum ingest_result res;

    t->r = r;
    t->ticket.done_cb = line_done_cb;
    res = ingest_payload(w, s->id, INGEST_JSON_ANY, line, n, &w->lm_http, &t->ticket, reason);
    switch (res) {
    case INGEST_ACCEPTED:
        r->out++;
        r->accepted++;
        break;
    case INGEST_REJECTED:
        r->out++;
        r->rejected++;
        if (json_array_size(r->rejected_list) < HTTP_MAX_REJECTED_LISTED) {
            json_t *o =
                json_pack("{s:I,s:o}", "line", (json_int_t)lineno, "reason", json_text(reason));
            if (o != NULL)
                json_array_append_new(r->rejected_list, o);
        }
        break;
    case INGEST_SKIPPED:
        r->skipped++;
        break;
    case INGEST_FAILED:
    default:
        r->queue_failed = true;
        tm_strlcpy(r->fail_reason, reason, sizeof(r->fail_reason));
        tm_log_warn("http %s: cannot queue line %ld: %s", r->peer, lineno, reason);
        return -1;
    }
    return 0;
}

static void post_events(struct http_in *h, struct evhttp_request *req, const char *peer)
{
    struct worker *w = h->w;
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const char *encoding = evhttp_find_header(hdrs, "Content-Encoding");
    char tokbuf[HTTP_MAX_TOKEN + 1];
    const char *token =
        bearer_token(evhttp_find_header(hdrs, "Authorization"), tokbuf, sizeof(tokbuf));
    struct identity id;
    char err[TM_ERR_LEN];
    char *inflated = NULL;
    const char *data;
    size_t len = evbuffer_get_length(body);
    long n;
    int64_t wait_ms = 0;
    int rc;
    struct http_req *r = NULL;
    struct submit_ctx ctx;

    if (token == NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tm-collector\"");
        send_error(h, req, 401, NULL, "an 'Authorization: Bearer TOKEN' header is required");
        goto out;
    }
    rc = collector_identify_token(w->c, token, &id);
    if (rc == IDENTITY_REVOKED) {
        tm_log_warn("http %s: revoked bearer token: 403", peer);
        send_error(h, req, 403, NULL, "this token is revoked");
        goto out;
    }
    if (rc != 0) {
        tm_log_info("http %s: unknown bearer token", peer);
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tm-collector\", error=\"invalid_token\"");
        send_error(h, req, 401, NULL, "unknown token");
        goto out;
    }
    if (!media_type_ok(evhttp_find_header(hdrs, "Content-Type"))) {
        send_error(h, req, 415, NULL,
                   "content type '%s': expected application/x-ndjson, application/json or "
                   "text/plain",
                   evhttp_find_header(hdrs, "Content-Type"));
        goto out;
    }
    if (encoding != NULL && strcasecmp(encoding, "identity") != 0 &&
        strcasecmp(encoding, "gzip") != 0 && strcasecmp(encoding, "x-gzip") != 0) {
        send_error(h, req, 415, NULL, "content encoding '%s': expected gzip or none", encoding);
        goto out;
    }
    if (w->c->draining) {
        send_error(h, req, 503, RETRY_DOWN, "the collector is shutting down");
        goto out;
    }
    /* While Kafka reports its brokers down, one request at a time still goes through:
     * the sink learns that they are back only from a delivery, and HTTP may be all the
     * traffic there is. */
    if (!kafka_sink_healthy(w->sink) && h->waiting != NULL) {
        send_error(h, req, 503, RETRY_DOWN, "kafka brokers are down");
        goto out;
    }
    if (w->paused || kafka_sink_congested(w->sink)) {
        send_error(h, req, 503, RETRY_CONGESTED, "kafka is congested");
        goto out;
    }

    if (encoding != NULL && strcasecmp(encoding, "identity") != 0 && len > 0) {
        int code = gunzip_body(body, (size_t)w->c->cfg.max_body, &inflated, &len, err);
        if (code != 0) {
            tm_log_info("http %s: operator '%s': %s", peer, id.operator_id, err);
            send_error(h, req, code, NULL, "%s", err);
            goto out;
        }
        data = inflated;
    } else {
        data = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
        if (data == NULL) {
            send_error(h, req, 500, NULL, "out of memory");
            goto out;
        }
    }

    n = for_each_line(data, len, NULL, NULL);
    if (n > HTTP_MAX_LINES) {
        send_error(h, req, 413, NULL, "%ld events in one request; the limit is %d", n,
                   HTTP_MAX_LINES);
        goto out;
    }
    if (!rate_try(w->c->http_rate, id.operator_id, n, tm_time_mono_ms(), &wait_ms)) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)((wait_ms + 999) / 1000));
        tm_log_info("http %s: operator '%s' over its rate of %lld events/s", peer, id.operator_id,
                    (long long)w->c->cfg.rate_per_sender);
        send_error(h, req, 429, ra, "operator '%s' is over its rate of %lld events per second",
                   id.operator_id, (long long)w->c->cfg.rate_per_sender);
        goto out;
    }

    r = calloc(1, sizeof(*r) + (size_t)n * sizeof(r->tickets[0]));
    if (r == NULL || (r->rejected_list = json_array()) == NULL) {
        free(r);
        send_error(h, req, 500, NULL, "out of memory");
        goto out;
    }
    r->h = h;
    r->req = req;
    tm_strlcpy(r->peer, peer, sizeof(r->peer));
    tm_strlcpy(r->operator_id, id.operator_id, sizeof(r->operator_id));
    r->next = h->waiting;
    if (h->waiting != NULL)
        h->waiting->prev = r;
    h->waiting = r;
    r->conn = evcon != NULL ? conn_of(h, evcon) : NULL;
    if (r->conn != NULL)
        r->conn->r = r;

    r->submitting = true;
    ctx.r = r;
    ctx.id = &id;
    for_each_line(data, len, submit_line, &ctx);
    r->submitting = false;
    finish(r); /* answers now if nothing went to Kafka; else the last ticket does */
out:
    free(inflated);
}

static void healthz(struct http_in *h, struct evhttp_request *req)
{
    struct worker *w = h->w;

    if (w->c->draining)
        send_answer(h, req, 503, "text/plain", "draining\n", 9, RETRY_DOWN);
    else if (!kafka_sink_healthy(w->sink))
        send_answer(h, req, 503, "text/plain", "kafka brokers down\n", 19, RETRY_DOWN);
    else
        send_answer(h, req, 200, "text/plain", "ok\n", 3, NULL);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct http_in *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char peer[TM_ADDR_LEN] = "?";

    if (evcon != NULL) {
        char *host = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(evcon, &host, &port);
        if (host != NULL)
            snprintf(peer, sizeof(peer), "%s:%u", host, (unsigned)port);
    }
    if (evcon != NULL && conn_of(h, evcon) == NULL) {
        tm_log_info("http %s: over max_connections or max_connections_per_ip: refused", peer);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        send_error(h, req, 503, RETRY_CONGESTED,
                   "too many connections (max_connections_per_ip %lld, max_connections "
                   "%lld)",
                   (long long)h->w->c->cfg.max_connections_per_ip,
                   (long long)h->w->c->cfg.max_connections);
    } else if (path == NULL) {
        send_error(h, req, 400, NULL, "cannot parse the request target");
    } else if (strcmp(path, "/v1/events") == 0) {
        if (cmd == EVHTTP_REQ_POST) {
            post_events(h, req, peer);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
            send_error(h, req, 405, NULL, "'%s' takes POST only", path);
        }
    } else if (strcmp(path, "/healthz") == 0) {
        if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
            healthz(h, req);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            send_error(h, req, 405, NULL, "'%s' takes GET only", path);
        }
    } else {
        send_error(h, req, 404, NULL, "no such path; events go to POST /v1/events");
    }
}

/* ---- listener ---------------------------------------------------------------------- */

struct http_in *http_in_create(struct worker *w, const char *addr, char *err)
{
    const struct collector_config *cfg = &w->c->cfg;
    struct http_in *h = calloc(1, sizeof(*h));
    struct timeval idle = {cfg->idle_timeout_ms / 1000, (cfg->idle_timeout_ms % 1000) * 1000};
    int fd = -1;

    if (h == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    h->w = w;
    h->http = evhttp_new(w->base);
    if (h->http == NULL) {
        tm_err(err, "cannot create the http server for '%s'", addr);
        goto fail;
    }
    evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->http, (ev_ssize_t)cfg->max_body);
    evhttp_set_timeout_tv(h->http, &idle);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    /* A body over max_body is read to its end before the 413, so the client sees it. */
    evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(h->http, request_cb, h);
    fd = tm_net_listen(addr, SOCK_STREAM, false, err);
    if (fd < 0)
        goto fail;
    if (tm_net_local_addr(fd, h->addr, sizeof(h->addr)) != 0)
        tm_strlcpy(h->addr, addr, sizeof(h->addr));
    if (evhttp_accept_socket_with_handle(h->http, fd) == NULL) {
        tm_err(err, "cannot serve http on '%s'", addr);
        close(fd);
        goto fail;
    }
    return h;
fail:
    if (h->http != NULL)
        evhttp_free(h->http);
    free(h);
    return NULL;
}

const char *http_in_address(const struct http_in *h)
{
    return h->addr;
}

void http_in_destroy(struct http_in *h)
{
    struct http_req *r, *next;

    if (h == NULL)
        return;
    /* Closes every connection: waiting requests forget theirs in conn_close_cb. */
    evhttp_free(h->http);
    while (h->conns != NULL) { /* closed without their callback: stop counting them */
        if (h->conns->r != NULL)
            h->conns->r->conn = NULL;
        conn_forget(h->conns);
    }
    for (r = h->waiting; r != NULL; r = next) {
        next = r->next;
        r->h = NULL; /* freed by its last ticket */
        r->prev = r->next = NULL;
    }
    free(h);
}
