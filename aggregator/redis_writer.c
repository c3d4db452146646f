/*
 * redis_writer.c - the aggregator's only Redis connection (synchronous hiredis, on the
 * consumer thread) and the flush transaction that makes results exactly-once.
 *
 * A flush is two round trips:
 *   1. WATCH every offset key the flush moves; HGET those keys (the fence); SMISMEMBER
 *      each dedup bucket with the batch's event ids.
 *   2. MULTI; window hashes, sets, sorted sets (one EVAL or command per key); rolling
 *      figures, trend and risk (one EVAL per sector touched and one national); SADD of the
 *      new ids to their dedup buckets; agent state; the feed (one EVAL); HSET of every
 *      partition's next offset and greatest event time; PUBLISH tm:updates; EXEC.
 *      agg_redis_flush sends it and returns; agg_redis_flush_wait reads its replies, so
 *      the caller takes in the next messages while Redis runs the transaction. Nothing
 *      else uses the connection in between (the writer refuses to).
 * If a stored offset is not the one this member last wrote, someone else owns or owned
 * the partition since: the flush stops (CONFLICT) before MULTI. If a watched key changes
 * between the reads and EXEC, EXEC returns nil and nothing is applied (CONFLICT). A
 * connection lost at any point is an ERROR; the caller then re-reads the stored offsets,
 * which say whether the EXEC happened, and consumes again from there.
 *
 * Dedup buckets are keyed by the hour of the event's own time, so every copy of an event
 * looks in the same bucket; each bucket lives dedup_horizon + 1 h after its last write.
 * The password is sent with AUTH and never logged.
 */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

#define KEY_MAX 256

static const char hash_script[] =
    "local ttl = tonumber(ARGV[1])\n"
    "for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end\n"
    "return 0\n";

static const char zset_script[] =
    "local ttl = tonumber(ARGV[1])\n"
    "local cap = tonumber(ARGV[2])\n"
    "for i = 3, #ARGV, 2 do redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], ARGV[i]) end\n"
    "redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -cap - 1)\n"
    "if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end\n"
    "return 0\n";

/*
 * An agent's seq state merged inside the transaction (its events may sit in partitions
 * other members own, so no read-modify-write from outside). Seqs stay below 2^53.
 */
static const char seq_script[] =
    "local cur = redis.call('HMGET', KEYS[1], 'seq_min', 'seq_max', 'seq_events')\n"
    "local mn, mx, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if cur[1] then mn = math.min(mn, tonumber(cur[1])) end\n"
    "if cur[2] then mx = math.max(mx, tonumber(cur[2])) end\n"
    "n = n + (tonumber(cur[3]) or 0)\n"
    "redis.call('HSET', KEYS[1], 'seq_min', string.format('%d', mn), 'seq_max',\n"
    "           string.format('%d', mx), 'seq_events', string.format('%d', n), 'seq_lost',\n"
    "           string.format('%d', math.max(0, mx - mn + 1 - n)))\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "return 0\n";

/* One XADD per entry, arguments spelled out: a table per entry and unpack() cost a third more. */
#define FEED_FIELDS 10
static const char feed_script[] =
    "local key, n = KEYS[1], ARGV[1]\n"
    "for i = 2, #ARGV, 10 do\n"
    "  redis.call('XADD', key, 'MAXLEN', '~', n, '*', 'id', ARGV[i], 'ts', ARGV[i + 1],\n"
    "             'sector', ARGV[i + 2], 'operator', ARGV[i + 3], 'region', ARGV[i + 4],\n"
    "             'category', ARGV[i + 5], 'severity', ARGV[i + 6], 'technique', ARGV[i + 7],\n"
    "             'src', ARGV[i + 8], 'summary', ARGV[i + 9])\n"
    "end\n"
    "return 0\n";

struct agg_redis {
    const struct agg_config *cfg;
    redisContext *c;
    uint64_t commands;
    size_t pending; /* replies owed by the server */
    bool in_flight; /* a flush's MULTI ... EXEC was sent; its replies are owed */
    /* scratch of the flush, kept for the next one */
    struct agg_batch *seen; /* event ids and agents of the flush */
    struct agg_batch *roll; /* the rolling figures' anchor per sector */
    struct agg_stats *stats;
};

/* A growable argv for redisAppendCommandArgv; formatted arguments are owned. */
struct args {
    size_t n, cap;
    const char **v;
    size_t *len;
    char **own;
};

static int args_grow(struct args *a)
{
    size_t cap = a->cap == 0 ? 16 : a->cap * 2;
    const char **v = realloc(a->v, cap * sizeof(*v));
    size_t *len;
    char **own;

    if (v == NULL)
        return -1;
    a->v = v;
    len = realloc(a->len, cap * sizeof(*len));
    if (len == NULL)
        return -1;
    a->len = len;
    own = realloc(a->own, cap * sizeof(*own));
    if (own == NULL)
        return -1;
    a->own = own;
    a->cap = cap;
    return 0;
}

static int args_add(struct args *a, const char *s)
{
    if (a->n == a->cap && args_grow(a) != 0)
        return -1;
    a->v[a->n] = s;
    a->len[a->n] = strlen(s);
    a->own[a->n] = NULL;
    a->n++;
    return 0;
}

static int args_addf(struct args *a, const char *fmt, ...) TM_PRINTF(2, 3);
static int args_addf(struct args *a, const char *fmt, ...)
{
    char *s;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (args_add(a, s) != 0) {
        free(s);
        return -1;
    }
    a->own[a->n - 1] = s;
    return 0;
}

static void args_reset(struct args *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->own[i]);
    a->n = 0;
}

static void args_free(struct args *a)
{
    args_reset(a);
    free(a->v);
    free(a->len);
    free(a->own);
}

/* Queues the command in hiredis's output buffer (sent by the next read) and resets a. */
static int args_send(struct agg_redis *r, struct args *a)
{
    int rc = redisAppendCommandArgv(r->c, (int)a->n, a->v, a->len) == REDIS_OK ? 0 : -1;

    args_reset(a);
    if (rc == 0) {
        r->commands++;
        r->pending++;
    }
    return rc;
}

/* Reads the next reply. Returns NULL (and sets err) when the connection failed. */
static redisReply *next_reply(struct agg_redis *r, char *err)
{
    void *reply = NULL;

    if (redisGetReply(r->c, &reply) != REDIS_OK || reply == NULL) {
        tm_err(err, "redis: %s", r->c->errstr[0] != '\0' ? r->c->errstr : "no reply");
        agg_redis_disconnect(r);
        return NULL;
    }
    r->pending--;
    return reply;
}

struct agg_redis *agg_redis_create(const struct agg_config *cfg)
{
    struct agg_redis *r = calloc(1, sizeof(*r));

    if (r != NULL)
        r->cfg = cfg;
    return r;
}

void agg_redis_disconnect(struct agg_redis *r)
{
    if (r->c != NULL)
        redisFree(r->c);
    r->c = NULL;
    r->pending = 0;
    r->in_flight = false;
}

void agg_redis_destroy(struct agg_redis *r)
{
    if (r == NULL)
        return;
    agg_redis_disconnect(r);
    agg_batch_destroy(r->seen);
    agg_batch_destroy(r->roll);
    agg_stats_destroy(r->stats);
    free(r);
}

bool agg_redis_connected(const struct agg_redis *r)
{
    return r->c != NULL;
}

uint64_t agg_redis_commands(const struct agg_redis *r)
{
    return r->commands;
}

/* Runs one command and checks its reply is not an error. */
static int simple(struct agg_redis *r, struct args *a, const char *what, char *err)
{
    redisReply *rep;
    int rc = -1;

    if (args_send(r, a) != 0)
        return tm_err(err, "redis: out of memory");
    rep = next_reply(r, err);
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_ERROR)
        tm_err(err, "redis: %s refused: %s", what, rep->str);
    else
        rc = 0;
    freeReplyObject(rep);
    return rc;
}

int agg_redis_connect(struct agg_redis *r, char *err)
{
    const struct agg_config *cfg = r->cfg;
    struct timeval tv = {(time_t)(cfg->redis_timeout_ms / 1000),
                         (suseconds_t)(cfg->redis_timeout_ms % 1000) * 1000};
    char host[TM_ADDR_LEN];
    const char *colon = strrchr(cfg->redis, ':');
    int64_t port;
    struct args a = {0};
    int rc = -1;

    if (r->c != NULL)
        return 0;
    if (colon == NULL || tm_parse_int64(colon + 1, 1, 65535, &port) != 0)
        return tm_err(err, "redis address '%s': expected HOST:PORT", cfg->redis);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->redis), cfg->redis);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    r->c = redisConnectWithTimeout(host, (int)port, tv);
    if (r->c == NULL || r->c->err) {
        tm_err(err, "redis %s: %s", cfg->redis, r->c != NULL ? r->c->errstr : "out of memory");
        goto out;
    }
    redisSetTimeout(r->c, tv);
    if (cfg->redis_password[0] != '\0') {
        args_add(&a, "AUTH");
        if (cfg->redis_username[0] != '\0')
            args_add(&a, cfg->redis_username);
        args_add(&a, cfg->redis_password);
        if (simple(r, &a, "AUTH", err) != 0)
            goto out;
    }
    if (cfg->redis_db != 0) {
        args_add(&a, "SELECT");
        args_addf(&a, "%lld", (long long)cfg->redis_db);
        if (simple(r, &a, "SELECT", err) != 0)
            goto out;
    }
    args_add(&a, "PING");
    if (simple(r, &a, "PING", err) != 0)
        goto out;
    rc = 0;
out:
    args_free(&a);
    if (rc != 0 && r->c != NULL)
        agg_redis_disconnect(r);
    return rc;
}

static void offset_key(char *out, size_t len, const char *group, const char *topic, int32_t p)
{
    snprintf(out, len, "tm:offset:%s:%s:%d", group, topic, (int)p);
}

/* Parses an integer bulk reply; nil or garbage gives dflt. */
static int64_t reply_int(const redisReply *rep, int64_t dflt)
{
    int64_t v;

    if (rep == NULL || rep->type != REDIS_REPLY_STRING ||
        tm_parse_int64(rep->str, INT64_MIN, INT64_MAX, &v) != 0)
        return dflt;
    return v;
}

int agg_redis_load_parts(struct agg_redis *r, const char *group, const char *const topics[],
                         struct agg_part *const *parts, size_t n, char *err)
{
    struct args a = {0};
    char key[KEY_MAX];
    int rc = -1;
    size_t i;

    if (r->in_flight)
        return tm_err(err, "redis: a flush is still in flight");
    if (agg_redis_connect(r, err) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        offset_key(key, sizeof(key), group, topics[parts[i]->topic], parts[i]->partition);
        args_add(&a, "HMGET");
        args_add(&a, key);
        args_add(&a, "next");
        args_add(&a, "max_ts");
        if (args_send(r, &a) != 0) {
            tm_err(err, "redis: out of memory");
            goto out;
        }
    }
    for (i = 0; i < n; i++) {
        redisReply *rep = next_reply(r, err);
        struct agg_part *p = parts[i];
        if (rep == NULL)
            goto out;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            tm_err(err, "redis: unexpected reply to HMGET");
            freeReplyObject(rep);
            agg_redis_disconnect(r);
            goto out;
        }
        p->stored_next = reply_int(rep->element[0], -1);
        p->stored_max_ts = reply_int(rep->element[1], AGG_TS_NONE);
        p->pending_next = p->stored_next;
        p->pending_max_ts = p->stored_max_ts;
        p->dirty = false;
        freeReplyObject(rep);
    }
    rc = 0;
out:
    args_free(&a);
    return rc;
}

/* ---- the flush --------------------------------------------------------------------- */

struct flush_ctx {
    struct agg_redis *r;
    const struct agg_config *cfg;
    struct args a;
    int64_t ttl_of_key; /* scratch */
    struct agg_batch *b;
};

/* Sorted event indices by dedup bucket (the hour label of ts). */
struct bucket_ref {
    size_t idx;
    char label[AGG_LABEL_LEN];
};

static int cmp_bucket(const void *x, const void *y)
{
    const struct bucket_ref *a = x, *b = y;
    int c = strcmp(a->label, b->label);

    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int64_t ttl_s(int64_t ms)
{
    return (ms + 999) / 1000;
}

/* One batch group -> one command (or one script call), queued inside MULTI. */
static int emit_cb(void *arg, const struct agg_group *g)
{
    struct flush_ctx *x = arg;
    struct args *a = &x->a;
    int64_t ttl = 0;

    if (g->kind == AGG_K_EXPIRE)
        return 0; /* folded into the commands of the key */
    agg_batch_get(x->b, AGG_K_EXPIRE, g->key, "", &ttl);
    switch (g->kind) {
    case AGG_K_HINCR:
        args_add(a, "EVAL");
        args_add(a, hash_script);
        args_add(a, "1");
        args_add(a, g->key);
        args_addf(a, "%lld", (long long)ttl);
        for (size_t i = 0; i < g->n; i++) {
            args_add(a, g->members[i]);
            args_addf(a, "%lld", (long long)g->values[i]);
        }
        return args_send(x->r, a);
    case AGG_K_ZINCR:
        args_add(a, "EVAL");
        args_add(a, zset_script);
        args_add(a, "1");
        args_add(a, g->key);
        args_addf(a, "%lld", (long long)ttl);
        args_addf(a, "%lld", (long long)x->cfg->top_sources);
        for (size_t i = 0; i < g->n; i++) {
            args_add(a, g->members[i]);
            args_addf(a, "%lld", (long long)g->values[i]);
        }
        return args_send(x->r, a);
    case AGG_K_PFADD:
    case AGG_K_SADD:
        args_add(a, g->kind == AGG_K_PFADD ? "PFADD" : "SADD");
        args_add(a, g->key);
        for (size_t i = 0; i < g->n; i++)
            args_add(a, g->members[i]);
        if (args_send(x->r, a) != 0)
            return -1;
        if (ttl <= 0)
            return 0;
        args_add(a, "EXPIRE");
        args_add(a, g->key);
        args_addf(a, "%lld", (long long)ttl);
        return args_send(x->r, a);
    default:
        return -1;
    }
}

/* One sector (or "tm:n") whose rolling figures, trend and risk this flush recomputes. */
static int trend_cb(void *arg, const struct agg_group *g)
{
    struct flush_ctx *x = arg;
    struct args *a = &x->a;
    const char *sector = strcmp(g->key, "tm:n") == 0 ? "" : g->key + strlen("tm:s:");

    args_add(a, "EVAL");
    args_add(a, agg_trend_script);
    args_add(a, "3");
    args_addf(a, "%s:roll", g->key);
    args_addf(a, "%s:trend", g->key);
    args_add(a, "tm:risk");
    args_add(a, g->key);
    args_addf(a, "%lld", (long long)g->values[0]);
    args_addf(a, "%lld", (long long)ttl_s(x->cfg->retain_day_ms));
    args_addf(a, "%lld", (long long)x->cfg->trend_alpha_pct);
    args_addf(a, "%lld", (long long)x->cfg->trend_baseline_days);
    args_addf(a, "%lld", (long long)x->cfg->trend_ratio_k);
    args_addf(a, "%lld", (long long)agg_risk_weight(x->cfg, sector));
    args_add(a, sector);
    return args_send(x->r, a);
}

/* Per-agent seq figures of this flush (merged into Redis by seq_script). */
struct agent_ref {
    char key[KEY_MAX];
    int64_t min, max, n;
};

static int agent_key(char *out, size_t len, const char *op, const char *agent)
{
    int n = snprintf(out, len, "tm:agent:%s:%s", op, agent);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

enum agg_flush_result agg_redis_flush(struct agg_redis *r, const struct agg_config *cfg,
                                      struct agg_batch *b, struct agg_flush *f, char *err)
{
    struct flush_ctx x = {r, cfg, {0}, 0, b};
    struct args *a = &x.a;
    struct bucket_ref *refs = NULL;
    bool *dup = NULL;
    struct agent_ref *agents = NULL;
    struct agg_batch *seen, *roll;
    size_t nagents = 0, nbuckets = 0, feed = 0;
    char key[KEY_MAX];
    enum agg_flush_result res = AGG_FLUSH_ERROR;
    redisReply *rep = NULL;
    bool conflict = false;
    size_t i, j;

    f->applied = f->duplicates = 0;
    if (r->in_flight) {
        tm_err(err, "redis: a flush is still in flight");
        return AGG_FLUSH_ERROR;
    }
    if (agg_redis_connect(r, err) != 0)
        return AGG_FLUSH_ERROR;
    if (r->seen == NULL)
        r->seen = agg_batch_create();
    if (r->roll == NULL)
        r->roll = agg_batch_create();
    if (r->stats == NULL)
        r->stats = agg_stats_create();
    seen = r->seen;
    roll = r->roll;
    refs = calloc(f->nevents + 1, sizeof(*refs));
    dup = calloc(f->nevents + 1, sizeof(*dup));
    if (refs == NULL || dup == NULL || seen == NULL || roll == NULL || r->stats == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    agg_batch_clear(b);
    agg_batch_clear(seen);
    agg_batch_clear(roll);
    agg_stats_clear(r->stats);

    /* Round trip 1: WATCH, fence reads, dedup membership. */
    args_add(a, "WATCH");
    for (i = 0; i < f->nparts; i++) {
        offset_key(key, sizeof(key), f->group, f->topics[f->parts[i]->topic],
                   f->parts[i]->partition);
        if (args_addf(a, "%s", key) != 0)
            goto oom;
    }
    if (f->nparts > 0 && args_send(r, a) != 0)
        goto oom;
    args_reset(a);
    for (i = 0; i < f->nparts; i++) {
        offset_key(key, sizeof(key), f->group, f->topics[f->parts[i]->topic],
                   f->parts[i]->partition);
        args_add(a, "HGET");
        args_add(a, key);
        args_add(a, "next");
        if (args_send(r, a) != 0)
            goto oom;
    }
    for (i = 0; i < f->nevents; i++) {
        refs[i].idx = i;
        if (agg_hour_label(f->events[i].ts, refs[i].label, sizeof(refs[i].label)) != 0)
            refs[i].label[0] = '\0';
    }
    qsort(refs, f->nevents, sizeof(*refs), cmp_bucket);
    for (i = 0; i < f->nevents; i = j) {
        snprintf(key, sizeof(key), "tm:dedup:%s", refs[i].label);
        args_add(a, "SMISMEMBER");
        args_add(a, key);
        for (j = i; j < f->nevents && strcmp(refs[j].label, refs[i].label) == 0; j++)
            args_add(a, f->events[refs[j].idx].id);
        if (args_send(r, a) != 0)
            goto oom;
        nbuckets++;
    }
    for (i = 0; i < f->nevents; i++) {
        const struct agg_event *e = &f->events[i];
        char ak[KEY_MAX];
        int64_t slot;
        if (e->seq < 0 || e->agent[0] == '\0' ||
            agent_key(ak, sizeof(ak), e->operator_id, e->agent) != 0)
            continue;
        switch (agg_batch_insert(seen, 'A', ak, "", (int64_t)nagents, &slot)) {
        case 0:
            continue; /* seen before */
        case 1:
            break;
        default:
            goto oom;
        }
        if (nagents % 64 == 0) {
            struct agent_ref *v = realloc(agents, (nagents + 64) * sizeof(*v));
            if (v == NULL)
                goto oom;
            agents = v;
        }
        tm_strlcpy(agents[nagents].key, ak, sizeof(agents[nagents].key));
        agents[nagents].min = INT64_MAX;
        agents[nagents].max = -1;
        agents[nagents].n = 0;
        nagents++;
    }

    if (f->nparts > 0) {
        if ((rep = next_reply(r, err)) == NULL)
            goto out;
        freeReplyObject(rep);
        rep = NULL;
    }
    for (i = 0; i < f->nparts; i++) {
        int64_t stored;
        if ((rep = next_reply(r, err)) == NULL)
            goto out;
        stored = reply_int(rep, -1);
        if (stored != f->parts[i]->stored_next) {
            tm_log_warn("partition %s/%d: stored offset %lld, expected %lld: another member "
                        "wrote it; re-reading",
                        f->topics[f->parts[i]->topic], (int)f->parts[i]->partition,
                        (long long)stored, (long long)f->parts[i]->stored_next);
            conflict = true;
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    for (i = 0, j = 0; j < nbuckets; j++) {
        size_t k;
        if ((rep = next_reply(r, err)) == NULL)
            goto out;
        if (rep->type != REDIS_REPLY_ARRAY) {
            tm_err(err, "redis: SMISMEMBER: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
            goto out;
        }
        for (k = 0; k < rep->elements && i < f->nevents; k++, i++)
            dup[refs[i].idx] =
                rep->element[k]->type == REDIS_REPLY_INTEGER && rep->element[k]->integer == 1;
        freeReplyObject(rep);
        rep = NULL;
    }
    if (conflict) {
        args_add(a, "UNWATCH");
        simple(r, a, "UNWATCH", err);
        res = AGG_FLUSH_CONFLICT;
        goto out;
    }

    /* Duplicates: already in Redis, or an earlier copy in this very batch. */
    for (i = 0; i < f->nevents; i++) {
        int added = dup[i] ? 0 : agg_batch_insert(seen, 'I', f->events[i].id, "", 1, NULL);
        if (added < 0)
            goto oom;
        if (added == 0) {
            dup[i] = true;
            f->duplicates++;
            continue;
        }
        if (agg_stats_add(r->stats, &f->events[i]) != 0)
            goto oom;
        f->applied++;
        if (f->events[i].windows & AGG_WIN_1H) {
            /* the anchor of the rolling figures: see trend.c */
            snprintf(key, sizeof(key), "tm:s:%s", f->events[i].sector);
            if (agg_batch_put(roll, 'R', key, "", f->events[i].clock_ts, AGG_OP_MAX) != 0 ||
                agg_batch_put(roll, 'R', "tm:n", "", f->events[i].clock_ts, AGG_OP_MAX) != 0)
                goto oom;
        }
        if (f->events[i].seq >= 0 && f->events[i].agent[0] != '\0') {
            char ak[KEY_MAX];
            int64_t slot;
            if (agent_key(ak, sizeof(ak), f->events[i].operator_id, f->events[i].agent) == 0 &&
                agg_batch_get(seen, 'A', ak, "", &slot) == 0) {
                struct agent_ref *ar = &agents[slot];
                if (f->events[i].seq < ar->min)
                    ar->min = f->events[i].seq;
                if (f->events[i].seq > ar->max)
                    ar->max = f->events[i].seq;
                ar->n++;
            }
        }
    }

    /* Round trip 2: MULTI ... EXEC. */
    if (agg_stats_emit(r->stats, b, cfg) != 0)
        goto oom;
    args_add(a, "MULTI");
    if (args_send(r, a) != 0 || agg_batch_emit(b, emit_cb, &x) != 0 ||
        agg_batch_emit(roll, trend_cb, &x) != 0)
        goto oom;
    for (i = 0; i < f->nevents; i = j) {
        size_t added = 0;
        snprintf(key, sizeof(key), "tm:dedup:%s", refs[i].label);
        args_add(a, "SADD");
        args_add(a, key);
        for (j = i; j < f->nevents && strcmp(refs[j].label, refs[i].label) == 0; j++) {
            const struct agg_event *e = &f->events[refs[j].idx];
            /* the first copy of an id in this batch is the one counted */
            if (!dup[refs[j].idx]) {
                args_add(a, e->id);
                added++;
            }
        }
        if (added == 0) {
            args_reset(a);
            continue;
        }
        if (args_send(r, a) != 0)
            goto oom;
        args_add(a, "EXPIRE");
        args_add(a, key);
        args_addf(a, "%lld", (long long)ttl_s(cfg->dedup_horizon_ms + 3600000));
        if (args_send(r, a) != 0)
            goto oom;
    }
    for (i = 0; i < nagents; i++) {
        struct agent_ref *ar = &agents[i];
        if (ar->n == 0)
            continue;
        args_add(a, "EVAL");
        args_add(a, seq_script);
        args_add(a, "1");
        args_add(a, ar->key);
        args_addf(a, "%lld", (long long)ar->min);
        args_addf(a, "%lld", (long long)ar->max);
        args_addf(a, "%lld", (long long)ar->n);
        args_addf(a, "%lld", (long long)ttl_s(cfg->retain_agents_ms));
        if (args_send(r, a) != 0)
            goto oom;
    }
    for (i = 0; i < f->nheartbeats; i++) {
        const struct agg_heartbeat *h = &f->heartbeats[i];
        char member[2 * TM_EVENT_ID_MAX + 2];
        if (agent_key(key, sizeof(key), h->operator_id, h->agent) != 0)
            continue;
        args_add(a, "HSET");
        args_add(a, key);
        args_add(a, "last_seen");
        args_addf(a, "%lld", (long long)h->received);
        args_add(a, "hb_ts");
        args_addf(a, "%lld", (long long)h->ts);
        args_add(a, "next_seq");
        args_addf(a, "%lld", (long long)h->next_seq);
        args_add(a, "uptime_s");
        args_addf(a, "%lld", (long long)h->uptime_s);
        args_add(a, "spool_events");
        args_addf(a, "%lld", (long long)h->spool_events);
        args_add(a, "spool_bytes");
        args_addf(a, "%lld", (long long)h->spool_bytes);
        args_add(a, "agent_lost");
        args_addf(a, "%lld", (long long)h->lost_events);
        args_add(a, "version");
        args_add(a, h->version);
        args_add(a, "last_error");
        args_add(a, h->last_error);
        args_add(a, "sector");
        args_add(a, h->sector);
        args_add(a, "region");
        args_add(a, h->region);
        if (args_send(r, a) != 0)
            goto oom;
        args_add(a, "EXPIRE");
        args_add(a, key);
        args_addf(a, "%lld", (long long)ttl_s(cfg->retain_agents_ms));
        if (args_send(r, a) != 0)
            goto oom;
        snprintf(member, sizeof(member), "%s/%s", h->operator_id, h->agent);
        args_add(a, "ZADD");
        args_add(a, "tm:agents:lastseen");
        args_add(a, "GT");
        args_addf(a, "%lld", (long long)h->received);
        args_add(a, member);
        if (args_send(r, a) != 0)
            goto oom;
    }
    args_add(a, "EVAL");
    args_add(a, feed_script);
    args_add(a, "1");
    args_add(a, "tm:feed");
    args_addf(a, "%lld", (long long)cfg->feed_maxlen);
    {
        /* Times are formatted into a side table that lives until the command is queued. */
        char(*times)[TM_TIME_LEN] = calloc(f->nevents + 1, sizeof(*times));
        if (times == NULL)
            goto oom;
        for (i = 0; i < f->nevents; i++) {
            const struct agg_event *e = &f->events[i];
            char sev[4];
            if (dup[i] || e->summary == NULL)
                continue;
            tm_time_format(e->ts, times[i], sizeof(times[i]));
            snprintf(sev, sizeof(sev), "%d", e->severity);
            args_add(a, e->id);
            args_add(a, times[i]);
            args_add(a, e->sector);
            args_add(a, e->operator_id);
            args_add(a, e->region);
            args_add(a, e->category);
            args_addf(a, "%s", sev);
            args_add(a, e->technique);
            args_add(a, e->src_ip);
            args_add(a, e->summary);
            feed++;
        }
        if (feed > 0 && args_send(r, a) != 0) {
            free(times);
            goto oom;
        }
        free(times);
        args_reset(a);
    }
    for (i = 0; i < f->nparts; i++) {
        const struct agg_part *p = f->parts[i];
        offset_key(key, sizeof(key), f->group, f->topics[p->topic], p->partition);
        args_add(a, "HSET");
        args_add(a, key);
        args_add(a, "next");
        args_addf(a, "%lld", (long long)p->pending_next);
        if (p->pending_max_ts != AGG_TS_NONE) {
            args_add(a, "max_ts");
            args_addf(a, "%lld", (long long)p->pending_max_ts);
            args_add(a, "watermark");
            args_addf(a, "%lld",
                      (long long)agg_watermark(p->pending_max_ts, cfg->allowed_lateness_ms));
        }
        if (args_send(r, a) != 0)
            goto oom;
    }
    args_add(a, "PUBLISH");
    args_add(a, "tm:updates");
    args_addf(a, "{\"events\":%zu,\"heartbeats\":%zu}", f->applied, f->nheartbeats);
    if (args_send(r, a) != 0)
        goto oom;
    args_add(a, "EXEC");
    if (args_send(r, a) != 0)
        goto oom;
    /* Out on the wire now; the replies are read by agg_redis_flush_wait. */
    for (int done = 0; !done;)
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            tm_err(err, "redis: %s", r->c->errstr[0] != '\0' ? r->c->errstr : "write failed");
            goto out;
        }
    r->in_flight = true;
    res = AGG_FLUSH_OK;
    goto out;
oom:
    tm_err(err, "out of memory while building the flush");
    agg_redis_disconnect(r); /* half-queued commands must not reach the server */
out:
    if (rep != NULL)
        freeReplyObject(rep);
    if (res == AGG_FLUSH_ERROR && r->c != NULL && r->pending > 0)
        agg_redis_disconnect(r);
    args_free(a);
    free(agents);
    free(dup);
    free(refs);
    return res;
}

enum agg_flush_result agg_redis_flush_wait(struct agg_redis *r, char *err)
{
    enum agg_flush_result res = AGG_FLUSH_ERROR;
    redisReply *rep = NULL;

    if (!r->in_flight)
        return AGG_FLUSH_OK;
    r->in_flight = false;
    /* Replies: OK to MULTI, QUEUED to each command, then EXEC's. */
    while (r->pending > 1) {
        if ((rep = next_reply(r, err)) == NULL)
            return AGG_FLUSH_ERROR;
        if (rep->type == REDIS_REPLY_ERROR)
            tm_log_error("redis: command refused inside MULTI: %s", rep->str);
        freeReplyObject(rep);
    }
    if ((rep = next_reply(r, err)) == NULL)
        return AGG_FLUSH_ERROR;
    if (rep->type == REDIS_REPLY_NIL) {
        tm_log_warn("redis: a partition's offset changed during the flush; re-reading");
        res = AGG_FLUSH_CONFLICT;
    } else if (rep->type != REDIS_REPLY_ARRAY) {
        tm_err(err, "redis: EXEC failed: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        agg_redis_disconnect(r);
    } else {
        for (size_t i = 0; i < rep->elements; i++)
            if (rep->element[i]->type == REDIS_REPLY_ERROR)
                tm_log_error("redis: command %zu of the flush failed: %s", i, rep->element[i]->str);
        res = AGG_FLUSH_OK;
    }
    freeReplyObject(rep);
    return res;
}
