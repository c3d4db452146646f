/*
 * stream.c - GET /api/stream, Server-Sent Events: each aggregator flush announced on
 * tm:updates goes to every client as "event: update" (the message's JSON), followed by
 * one "event: feed" per tm:feed entry added since the last one sent (XREAD after that
 * id, which is exclusive), with the entry's stream id as the event id. A comment line
 * every ping_interval keeps proxies from closing idle streams.
 *
 * One reader serves every client: the last id sent is global, learnt from the newest
 * entry when Redis first answers, so a new client gets what comes after it connected.
 * New entries are read FEED_BATCH at a time until none is left; a jump of more than
 * FEED_PAGES_MAX pages (a Redis restart that refilled the stream) skips to the newest
 * entry instead of replaying history. A reconnection of either Redis connection reads
 * what was added meanwhile.
 *
 * Clients are bounded by max_streams (503 past it, and while Redis is down); a client
 * whose connection holds more than SLOW_CLIENT_BYTES unsent is dropped rather than
 * letting its buffer grow.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

#define FEED_BATCH 1000
#define FEED_PAGES_MAX 10
#define SLOW_CLIENT_BYTES (1024 * 1024)
#define STREAM_IDLE_SECS (24 * 3600)

struct sse_client {
    struct dash_stream *s;
    struct evhttp_request *req;
    struct sse_client *prev, *next;
};

struct dash_stream {
    struct dash *d;
    struct sse_client *clients;
    size_t n;
    struct event *ping_ev;
    char last_id[48];
    bool have_last;
    struct dash_query *q;     /* the one feed read in progress, or NULL */
    bool newest;              /* it asks for the newest id, not for what is new */
    bool again;               /* another update came while it ran */
    int pages;                /* full pages read in a row for one update */
    struct evbuffer *scratch; /* text being put together for every client */
    struct evbuffer *out;     /* one client's copy, handed to evhttp */
    struct tm_gauge *g_clients;
    struct tm_counter *c_update, *c_feed, *c_dropped;
};

static void remove_client(struct sse_client *c)
{
    struct dash_stream *s = c->s;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n--;
    tm_gauge_set(s->g_clients, (double)s->n);
    free(c);
}

static void client_gone_cb(struct evhttp_connection *evcon, void *arg)
{
    struct sse_client *c = arg;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (c->req != NULL && evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    c->req = NULL;
    remove_client(c);
}

/* Sends what scratch holds to every client and empties it; drops the slow clients. */
static void broadcast(struct dash_stream *s)
{
    struct sse_client *c, *next;
    size_t len = evbuffer_get_length(s->scratch);
    const unsigned char *text = evbuffer_pullup(s->scratch, -1);

    for (c = s->clients; c != NULL && text != NULL; c = next) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
        struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;

        next = c->next;
        if (bev != NULL && evbuffer_get_length(bufferevent_get_output(bev)) > SLOW_CLIENT_BYTES) {
            tm_counter_inc(s->c_dropped);
            tm_log_info("stream: dropping a client %d bytes behind", SLOW_CLIENT_BYTES);
            evhttp_connection_free(evcon); /* calls client_gone_cb */
            continue;
        }
        evbuffer_add(s->out, text, len);
        evhttp_send_reply_chunk(c->req, s->out);
        evbuffer_drain(s->out, evbuffer_get_length(s->out));
    }
    evbuffer_drain(s->scratch, len);
}

static void read_feed(struct dash_stream *s);

static void feed_cb(struct dash_query *q, void *arg)
{
    struct dash_stream *s = arg;
    const redisReply *r = q->nreplies > 0 ? q->replies[0] : NULL;
    bool skip = false, more = false;

    if (q->failed) {
        s->again = false; /* read again once Redis is back (dash_stream_redis_up) */
    } else if (s->newest) {
        /* XREVRANGE tm:feed + - COUNT 1: the newest id, or none yet */
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements > 0 &&
            r->element[0]->element[0]->type == REDIS_REPLY_STRING)
            tm_strlcpy(s->last_id, r->element[0]->element[0]->str, sizeof(s->last_id));
        else if (!s->have_last)
            tm_strlcpy(s->last_id, "0-0", sizeof(s->last_id));
        s->have_last = true;
    } else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        /* XREAD: [[tm:feed, [entry, ...]]] */
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
            json_t *item = dash_feed_item(entries->element[i]);
            const char *sid = json_string_value(json_object_get(item, "stream_id"));
            char *data = item != NULL ? json_dumps(item, JSON_COMPACT) : NULL;

            if (sid != NULL && data != NULL) {
                evbuffer_add_printf(s->scratch, "event: feed\nid: %s\ndata: %s\n\n", sid, data);
                tm_strlcpy(s->last_id, sid, sizeof(s->last_id));
                tm_counter_inc(s->c_feed);
            }
            free(data);
            json_decref(item);
        }
        if (evbuffer_get_length(s->scratch) > 0)
            broadcast(s);
        if (entries->type == REDIS_REPLY_ARRAY && entries->elements == FEED_BATCH) {
            if (++s->pages < FEED_PAGES_MAX) {
                more = true;
            } else {
                tm_log_info("stream: more than %d new feed entries at once; skipping to the "
                            "newest",
                            FEED_BATCH * FEED_PAGES_MAX);
                skip = true;
            }
        }
    }
    if (!more)
        s->pages = 0;
    dash_query_free(q);
    s->q = NULL;
    if (skip) {
        s->have_last = false;
        s->pages = 0;
        read_feed(s);
    } else if (more || s->again) {
        s->again = false;
        read_feed(s);
    }
}

/* Starts the feed read: the newest id when unknown (or nobody listens), else what is new. */
static void read_feed(struct dash_stream *s)
{
    struct dash *d = s->d;

    if (s->q != NULL) {
        s->again = true;
        return;
    }
    if (!dash_redis_up(d->redis))
        return;
    s->q = dash_query_create(d->redis, feed_cb, s);
    if (s->q == NULL)
        return;
    s->newest = !s->have_last || s->clients == NULL;
    if (s->newest)
        dash_query_cmd(s->q, "XREVRANGE tm:feed + - COUNT 1");
    else
        dash_query_cmd(s->q, "XREAD COUNT %d STREAMS tm:feed %s", FEED_BATCH, s->last_id);
    dash_query_wait(s->q);
}

void dash_stream_update(struct dash_stream *s, const char *payload, size_t len)
{
    if (s->clients != NULL) {
        /* the message is one line of JSON; a line break would end the SSE field */
        evbuffer_add(s->scratch, "event: update\ndata: ", 20);
        for (size_t i = 0; i < len; i++)
            evbuffer_add(s->scratch, payload[i] == '\n' || payload[i] == '\r' ? " " : &payload[i],
                         1);
        evbuffer_add(s->scratch, "\n\n", 2);
        broadcast(s);
        tm_counter_inc(s->c_update);
    }
    read_feed(s);
}

void dash_stream_redis_up(struct dash_stream *s)
{
    read_feed(s);
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dash_stream *s = arg;

    (void)fd;
    (void)what;
    if (s->clients != NULL) {
        evbuffer_add(s->scratch, ": ping\n\n", 8);
        broadcast(s);
    }
}

void dash_stream_open(struct dash_stream *s, struct evhttp_request *req, int64_t start_ms)
{
    struct dash *d = s->d;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct sse_client *c;

    if (s->n >= (size_t)d->cfg.max_streams) {
        evhttp_add_header(h, "Retry-After", "5");
        dash_reply_error(d, req, EP_STREAM, 503, start_ms, "too many streams (max_streams = %lld)",
                         (long long)d->cfg.max_streams);
        return;
    }
    if (!dash_redis_up(d->redis)) {
        evhttp_add_header(h, "Retry-After", "1");
        dash_reply_error(d, req, EP_STREAM, 503, start_ms, "redis unavailable: %s",
                         dash_redis_reason(d->redis));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || evcon == NULL) {
        free(c);
        dash_reply_error(d, req, EP_STREAM, 500, start_ms, "out of memory");
        return;
    }
    c->s = s;
    c->req = req;
    c->next = s->clients;
    if (s->clients != NULL)
        s->clients->prev = c;
    s->clients = c;
    s->n++;
    tm_gauge_set(s->g_clients, (double)s->n);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_connection_set_closecb(evcon, client_gone_cb, c);
    /* The ping keeps it busy; the idle timeout only catches a dead peer. */
    evhttp_connection_set_timeout(evcon, STREAM_IDLE_SECS);
    dash_count(d, EP_STREAM, 200, start_ms);
    evhttp_send_reply_start(req, 200, "OK");
    evbuffer_add_printf(s->out, "retry: 2000\n: connected\n\n");
    evhttp_send_reply_chunk(req, s->out);
    evbuffer_drain(s->out, evbuffer_get_length(s->out));
    if (!s->have_last)
        read_feed(s);
}

size_t dash_stream_clients(const struct dash_stream *s)
{
    return s->n;
}

struct dash_stream *dash_stream_create(struct dash *d)
{
    struct dash_stream *s = calloc(1, sizeof(*s));
    struct timeval tv;

    if (s == NULL)
        return NULL;
    s->d = d;
    tv.tv_sec = d->cfg.ping_interval_ms / 1000;
    tv.tv_usec = (d->cfg.ping_interval_ms % 1000) * 1000;
    s->scratch = evbuffer_new();
    s->out = evbuffer_new();
    s->ping_ev = event_new(d->base, -1, EV_PERSIST, ping_cb, s);
    if (s->scratch == NULL || s->out == NULL || s->ping_ev == NULL ||
        event_add(s->ping_ev, &tv) != 0) {
        dash_stream_destroy(s);
        return NULL;
    }
    s->g_clients = tm_metrics_gauge(d->metrics, "tm_dashboard_sse_clients",
                                    "Server-Sent Events clients connected.", NULL);
    s->c_update = tm_metrics_counter(d->metrics, "tm_dashboard_sse_events_total",
                                     "Events pushed (once per event, whatever the number of "
                                     "clients).",
                                     "event", "update", NULL);
    s->c_feed =
        tm_metrics_counter(d->metrics, "tm_dashboard_sse_events_total", "", "event", "feed", NULL);
    s->c_dropped = tm_metrics_counter(d->metrics, "tm_dashboard_sse_dropped_total",
                                      "SSE clients dropped for falling behind.", NULL);
    return s;
}

void dash_stream_destroy(struct dash_stream *s)
{
    if (s == NULL)
        return;
    while (s->clients != NULL) {
        struct evhttp_connection *evcon =
            s->clients->req != NULL ? evhttp_request_get_connection(s->clients->req) : NULL;
        if (evcon != NULL)
            evhttp_connection_set_closecb(evcon, NULL, NULL);
        remove_client(s->clients);
    }
    dash_query_free(s->q);
    if (s->ping_ev != NULL)
        event_free(s->ping_ev);
    if (s->scratch != NULL)
        evbuffer_free(s->scratch);
    if (s->out != NULL)
        evbuffer_free(s->out);
    free(s);
}
