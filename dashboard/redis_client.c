/*
 * redis_client.c - tm-dashboard's two Redis connections, both hiredis async contexts on
 * the daemon's libevent loop (hiredis/adapters/libevent.h), never a blocking call:
 *
 *   command   AUTH and SELECT when configured, then PING; ready once PONG is back.
 *             Queries append their commands back to back (one pipeline per request)
 *             and get a copy of every reply (hiredis frees its own after the callback).
 *   pub/sub   AUTH, then SUBSCRIBE tm:updates; each message goes to message_cb.
 *
 * Either connection, when refused, lost, or not ready within [redis] timeout, is freed
 * (pending callbacks get NULL replies: their queries fail and answer 503) and retried
 * after a backoff that doubles from 100 ms to [redis] backoff_max; a successful
 * handshake resets it. A query whose replies take longer than [redis] timeout (a hung
 * or stopped server) drops the command connection the same way, so no request waits
 * forever. Queries are kept in send order; the oldest one is the one that can be late.
 *
 * Invariant: conn->ac is the live context or NULL. A context is forgotten (ac = NULL)
 * before it is freed, so hiredis callbacks of a context being freed see that it is no
 * longer theirs and do nothing but fail their queries.
 */
#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

#define BACKOFF_MIN_MS 100
#define DEADLINE_CHECK_MS 200
#define UPDATES_CHANNEL "tm:updates"

enum conn_kind { CONN_CMD, CONN_SUB };

struct conn {
    struct dash_redis *r;
    enum conn_kind kind;
    redisAsyncContext *ac;
    bool ready;
    int64_t backoff_ms;
    int64_t started_ms; /* monotonic time of the connect attempt */
    struct event *retry_ev;
};

struct dash_redis {
    struct event_base *base;
    const struct dash_config *cfg;
    struct dash_redis_events ev;
    char host[TM_ADDR_LEN];
    int port;
    struct conn cmd, sub;
    struct event *tick_ev;          /* connect timeouts and query deadlines */
    struct dash_query *head, *tail; /* queries owed replies, oldest first */
    char reason[TM_ERR_LEN];
    struct tm_gauge *g_up;
    struct tm_counter *c_commands, *c_reconnects, *c_timeouts;
};

static const char *kind_name(const struct conn *c)
{
    return c->kind == CONN_CMD ? "redis" : "redis pub/sub";
}

static void connect_now(struct conn *c);

static void schedule_retry(struct conn *c)
{
    struct timeval tv;

    tv.tv_sec = c->backoff_ms / 1000;
    tv.tv_usec = (c->backoff_ms % 1000) * 1000;
    evtimer_add(c->retry_ev, &tv);
    c->backoff_ms *= 2;
    if (c->backoff_ms > c->r->cfg->redis_backoff_max_ms)
        c->backoff_ms = c->r->cfg->redis_backoff_max_ms;
}

/* Forgets the connection (freeing it when free_it), then schedules the next attempt. */
static void lost(struct conn *c, const char *why, bool free_it)
{
    struct dash_redis *r = c->r;
    redisAsyncContext *ac = c->ac;
    bool was_ready = c->ready;

    c->ac = NULL;
    c->ready = false;
    if (c->kind == CONN_CMD) {
        snprintf(r->reason, sizeof(r->reason), "%s", why);
        tm_gauge_set(r->g_up, 0);
    }
    if (was_ready)
        tm_log_warn("%s %s:%d: connection lost: %s; reconnecting", kind_name(c), r->host, r->port,
                    why);
    else
        tm_log_debug("%s %s:%d: %s; retrying in %lld ms", kind_name(c), r->host, r->port, why,
                     (long long)c->backoff_ms);
    if (ac != NULL) {
        ac->data = NULL;
        if (free_it)
            redisAsyncFree(ac); /* fails the queries still owed replies */
    }
    schedule_retry(c);
    if (was_ready && c->kind == CONN_CMD && r->ev.down_cb != NULL)
        r->ev.down_cb(r->ev.arg);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    if (c == NULL || c->ac != ac || status == REDIS_OK)
        return;
    /* hiredis frees the context after this callback. */
    lost(c, ac->errstr[0] != '\0' ? ac->errstr : "cannot connect", false);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    (void)status;
    if (c == NULL || c->ac != ac)
        return;
    lost(c, ac->errstr[0] != '\0' ? ac->errstr : "closed by the server", false);
}

/* Replies of the handshake (AUTH, SELECT): an error ends the attempt. */
static void handshake_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = ac->data;
    redisReply *rep = reply;
    char why[TM_ERR_LEN];

    (void)priv;
    if (c == NULL || c->ac != ac || rep == NULL || rep->type != REDIS_REPLY_ERROR)
        return;
    snprintf(why, sizeof(why), "refused: %s", rep->str);
    c->backoff_ms = c->r->cfg->redis_backoff_max_ms; /* a config error: no hurry */
    lost(c, why, true);
}

static void ready(struct conn *c)
{
    struct dash_redis *r = c->r;

    c->ready = true;
    c->backoff_ms = BACKOFF_MIN_MS;
    tm_counter_inc(r->c_reconnects);
    tm_log_info("%s %s:%d: connected", kind_name(c), r->host, r->port);
    if (c->kind == CONN_CMD) {
        r->reason[0] = '\0';
        tm_gauge_set(r->g_up, 1);
        if (r->ev.up_cb != NULL)
            r->ev.up_cb(r->ev.arg);
    } else if (r->ev.subscribed_cb != NULL) {
        r->ev.subscribed_cb(r->ev.arg);
    }
}

/*
 * The connection a reply belongs to, when it is still the live one and the reply is
 * not an error (an error ends the attempt, as in the handshake); else NULL.
 */
static struct conn *answered(redisAsyncContext *ac, redisReply *rep)
{
    struct conn *c = ac->data;

    if (c == NULL || c->ac != ac || rep == NULL)
        return NULL;
    if (rep->type == REDIS_REPLY_ERROR) {
        handshake_cb(ac, rep, NULL);
        return NULL;
    }
    return c;
}

static void ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = answered(ac, reply);

    (void)priv;
    if (c != NULL)
        ready(c);
}

static void message_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = answered(ac, reply);
    redisReply *rep = reply;

    (void)priv;
    if (c == NULL)
        return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(rep->element[0]->str, "subscribe") == 0) {
        ready(c);
    } else if (strcmp(rep->element[0]->str, "message") == 0 &&
               rep->element[2]->type == REDIS_REPLY_STRING && c->r->ev.message_cb != NULL) {
        c->r->ev.message_cb(c->r->ev.arg, rep->element[2]->str, rep->element[2]->len);
    }
}

static void connect_now(struct conn *c)
{
    struct dash_redis *r = c->r;
    const struct dash_config *cfg = r->cfg;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    int rc = REDIS_OK;

    c->started_ms = tm_time_mono_ms();
    if (ac == NULL || ac->err) {
        char why[TM_ERR_LEN];
        snprintf(why, sizeof(why), "%s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        lost(c, why, false);
        return;
    }
    c->ac = ac;
    ac->data = c;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        lost(c, "cannot attach to the event loop", true);
        return;
    }
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    /* The password is sent, never printed. */
    if (cfg->redis_password[0] != '\0' && cfg->redis_username[0] != '\0')
        rc |= redisAsyncCommand(ac, handshake_cb, NULL, "AUTH %s %s", cfg->redis_username,
                                cfg->redis_password);
    else if (cfg->redis_password[0] != '\0')
        rc |= redisAsyncCommand(ac, handshake_cb, NULL, "AUTH %s", cfg->redis_password);
    if (c->kind == CONN_CMD) {
        if (cfg->redis_db != 0)
            rc |=
                redisAsyncCommand(ac, handshake_cb, NULL, "SELECT %lld", (long long)cfg->redis_db);
        rc |= redisAsyncCommand(ac, ping_cb, NULL, "PING");
    } else {
        rc |= redisAsyncCommand(ac, message_cb, NULL, "SUBSCRIBE %s", UPDATES_CHANNEL);
    }
    if (rc != REDIS_OK)
        lost(c, "cannot queue the handshake", true);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dash_redis *r = arg;
    int64_t now = tm_time_mono_ms();
    struct conn *conns[] = {&r->cmd, &r->sub};

    (void)fd;
    (void)what;
    for (size_t i = 0; i < TM_ARRAY_LEN(conns); i++) {
        struct conn *c = conns[i];
        if (c->ac != NULL && !c->ready && now - c->started_ms > r->cfg->redis_timeout_ms)
            lost(c, "no answer to the handshake in time", true);
    }
    if (r->head != NULL && r->cmd.ac != NULL && now - r->head->sent_ms > r->cfg->redis_timeout_ms) {
        char why[TM_ERR_LEN];
        tm_counter_inc(r->c_timeouts);
        snprintf(why, sizeof(why), "no reply within %lld ms", (long long)r->cfg->redis_timeout_ms);
        lost(&r->cmd, why, true);
    }
}

static int split_addr(struct dash_redis *r, const char *addr, char *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char port[16];
    int64_t n;
    int rc;

    if (tm_net_parse_addr(addr, &ss, &len, err) != 0)
        return -1;
    rc = getnameinfo((struct sockaddr *)&ss, len, r->host, sizeof(r->host), port, sizeof(port),
                     NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0)
        return tm_err(err, "redis '%s': %s", addr, gai_strerror(rc));
    if (tm_parse_int64(port, 1, 65535, &n) != 0)
        return tm_err(err, "redis '%s': port 0 is not a Redis server", addr);
    r->port = (int)n;
    return 0;
}

struct dash_redis *dash_redis_create(struct event_base *base, const struct dash_config *cfg,
                                     struct tm_metrics *metrics, const struct dash_redis_events *ev,
                                     char *err)
{
    struct dash_redis *r = calloc(1, sizeof(*r));
    struct timeval tick = {0, DEADLINE_CHECK_MS * 1000};

    if (r == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    r->base = base;
    r->cfg = cfg;
    r->ev = *ev;
    snprintf(r->reason, sizeof(r->reason), "connecting");
    if (split_addr(r, cfg->redis, err) != 0)
        goto fail;
    r->g_up = tm_metrics_gauge(metrics, "tm_dashboard_redis_up",
                               "1 while the Redis command connection is ready.", NULL);
    r->c_commands = tm_metrics_counter(metrics, "tm_dashboard_redis_commands_total",
                                       "Redis commands sent.", NULL);
    r->c_reconnects = tm_metrics_counter(metrics, "tm_dashboard_redis_connects_total",
                                         "Redis connections made ready (both connections).", NULL);
    r->c_timeouts = tm_metrics_counter(metrics, "tm_dashboard_redis_timeouts_total",
                                       "Queries that waited past [redis] timeout.", NULL);
    r->cmd.kind = CONN_CMD;
    r->sub.kind = CONN_SUB;
    r->cmd.r = r->sub.r = r;
    r->cmd.backoff_ms = r->sub.backoff_ms = BACKOFF_MIN_MS;
    r->cmd.retry_ev = evtimer_new(base, retry_cb, &r->cmd);
    r->sub.retry_ev = evtimer_new(base, retry_cb, &r->sub);
    r->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, r);
    if (r->cmd.retry_ev == NULL || r->sub.retry_ev == NULL || r->tick_ev == NULL ||
        event_add(r->tick_ev, &tick) != 0) {
        tm_err(err, "out of memory");
        goto fail;
    }
    connect_now(&r->cmd);
    connect_now(&r->sub);
    return r;
fail:
    dash_redis_destroy(r);
    return NULL;
}

void dash_redis_destroy(struct dash_redis *r)
{
    struct conn *conns[2];

    if (r == NULL)
        return;
    conns[0] = &r->cmd;
    conns[1] = &r->sub;
    for (size_t i = 0; i < TM_ARRAY_LEN(conns); i++) {
        redisAsyncContext *ac = conns[i]->ac;
        conns[i]->ac = NULL;
        if (ac != NULL) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        if (conns[i]->retry_ev != NULL)
            event_free(conns[i]->retry_ev);
    }
    if (r->tick_ev != NULL)
        event_free(r->tick_ev);
    free(r);
}

bool dash_redis_up(const struct dash_redis *r)
{
    return r->cmd.ready;
}

const char *dash_redis_reason(const struct dash_redis *r)
{
    return r->reason[0] != '\0' ? r->reason : "not connected";
}

/* ---- queries ----------------------------------------------------------------------- */

/* A deep copy of a reply, freed with freeReplyObject (hiredis frees with free()). */
static redisReply *reply_dup(const redisReply *src)
{
    redisReply *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->type = src->type;
    r->integer = src->integer;
    if (src->str != NULL) {
        r->str = malloc(src->len + 1);
        if (r->str == NULL)
            goto fail;
        memcpy(r->str, src->str, src->len);
        r->str[src->len] = '\0';
        r->len = src->len;
    }
    if (src->type == REDIS_REPLY_ARRAY && src->elements > 0) {
        r->element = calloc(src->elements, sizeof(*r->element));
        if (r->element == NULL)
            goto fail;
        r->elements = src->elements;
        for (size_t i = 0; i < src->elements; i++)
            if ((r->element[i] = reply_dup(src->element[i])) == NULL)
                goto fail;
    }
    return r;
fail:
    freeReplyObject(r);
    return NULL;
}

static void unlink_query(struct dash_query *q)
{
    struct dash_redis *r = q->r;

    if (q->prev != NULL)
        q->prev->next = q->next;
    else if (r->head == q)
        r->head = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    else if (r->tail == q)
        r->tail = q->prev;
    q->prev = q->next = NULL;
}

static void query_free_now(struct dash_query *q)
{
    dash_query_reset(q);
    free(q->replies);
    free(q);
}

/* Runs cb when every reply of the batch is in. */
static void maybe_done(struct dash_query *q)
{
    if (!q->waiting || q->nreplies < q->expected)
        return;
    q->waiting = false;
    unlink_query(q);
    if (q->cancelled)
        query_free_now(q);
    else
        q->cb(q, q->arg);
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct dash_query *q = priv;
    redisReply *copy = NULL;

    (void)ac;
    if (reply == NULL)
        q->failed = true;
    else if ((copy = reply_dup(reply)) == NULL)
        q->failed = true;
    q->replies[q->nreplies++] = copy;
    maybe_done(q);
}

struct dash_query *dash_query_create(struct dash_redis *r, dash_query_cb cb, void *arg)
{
    struct dash_query *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    return q;
}

/* Makes room for one more reply. Returns false (query failed) when it cannot send. */
static bool query_room(struct dash_query *q)
{
    struct dash_redis *r = q->r;

    if (q->failed || r->cmd.ac == NULL || !r->cmd.ready) {
        q->failed = true;
        return false;
    }
    if (q->expected == q->cap) {
        size_t cap = q->cap == 0 ? 16 : q->cap * 2;
        redisReply **v = realloc(q->replies, cap * sizeof(*v));
        if (v == NULL) {
            q->failed = true;
            return false;
        }
        q->replies = v;
        q->cap = cap;
    }
    return true;
}

/* Books one command queued with result rc. */
static void query_sent(struct dash_query *q, int rc)
{
    struct dash_redis *r = q->r;

    if (rc != REDIS_OK) {
        q->failed = true;
        return;
    }
    if (q->expected == q->nreplies && !q->waiting) {
        /* first command of the batch: the query joins the deadline list */
        q->sent_ms = tm_time_mono_ms();
        q->prev = r->tail;
        q->next = NULL;
        if (r->tail != NULL)
            r->tail->next = q;
        else
            r->head = q;
        r->tail = q;
        q->waiting = true;
    }
    q->expected++;
    tm_counter_inc(r->c_commands);
}

void dash_query_cmd(struct dash_query *q, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (!query_room(q))
        return;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(q->r->cmd.ac, reply_cb, q, fmt, ap);
    va_end(ap);
    query_sent(q, rc);
}

void dash_query_argv(struct dash_query *q, int argc, const char **argv)
{
    if (!query_room(q))
        return;
    query_sent(q, redisAsyncCommandArgv(q->r->cmd.ac, reply_cb, q, argc, argv, NULL));
}

void dash_query_wait(struct dash_query *q)
{
    if (!q->waiting) {
        /* nothing owed: finish now */
        if (q->cancelled)
            query_free_now(q);
        else
            q->cb(q, q->arg);
        return;
    }
    maybe_done(q);
}

void dash_query_reset(struct dash_query *q)
{
    for (size_t i = 0; i < q->nreplies; i++)
        if (q->replies[i] != NULL)
            freeReplyObject(q->replies[i]);
    q->nreplies = q->expected = 0;
    q->failed = false;
}

void dash_query_free(struct dash_query *q)
{
    if (q == NULL)
        return;
    if (q->nreplies < q->expected) {
        q->cancelled = true;
        q->waiting = true;
        return;
    }
    unlink_query(q);
    query_free_now(q);
}
