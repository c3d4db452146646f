/*
 * consumer.c - the aggregator's Kafka side: one librdkafka group member (cooperative-sticky
 * assignment, no offset commits to Kafka: Redis holds the offsets), its per-partition
 * state, the pending list of the next flush, and recovery.
 *
 * Intake: each message is checked against its partition's next expected offset (anything
 * older is a leftover of a seek and skipped), decoded, classified against the partition's
 * watermark (window.c) and appended to the pending list. The watermark moves with every
 * message in partition order, so the decision for an event depends only on the partition's
 * history since the stored offset and watermark.
 *
 * Flushes: when flush_events messages are pending, the oldest is flush_interval old, or a
 * poll brings nothing (the input went quiet). A flush's transaction is sent and its
 * outcome read only before the connection is needed again (the next flush, a rebalance,
 * exit, a quiet poll), so Redis runs it while the next messages are taken in.
 *
 * Lag: once a second every owned partition's tm_aggregator_consumer_lag_messages is set
 * to its high watermark minus the next offset this member applies (the stored one: what
 * is pending in memory is not applied yet). The high watermark is librdkafka's cached
 * one, which every fetch response refreshes, so this costs no request; but a paused
 * partition (Redis down) fetches nothing, so for those the broker is asked every 5 s
 * (at most 1 s of asking per round), else the lag would stand still exactly when it
 * grows. A revoked partition's series is removed: its new owner reports it.
 *
 * Invariants: a partition's stored_* mirror Redis as this member last read or wrote them;
 * pending data is either flushed whole or dropped whole, and whenever pending data is
 * dropped every partition it came from is re-read from Redis and seeked back (resync), so
 * nothing is skipped; a flush in flight that fails drops what was taken in on top of it
 * and re-reads every partition. While Redis is unreachable every partition is paused and
 * marked for resync; the loop retries with backoff (100 ms doubling to 5 s) and resumes
 * from the stored offsets.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SEEK_TIMEOUT_MS 5000
#define JOIN_GRACE_MS 5000       /* past the session timeout, for a join in progress to finish */
#define LAG_INTERVAL_MS 1000     /* lag gauges refreshed this often */
#define LAG_ASK_INTERVAL_MS 5000 /* watermarks of paused partitions asked this often */
#define LAG_ASK_BUDGET_MS 1000   /* time spent asking, at most, per round */
#define LAG_ASK_TIMEOUT_MS 500   /* one partition's ask */
#define LAG_METRIC "tm_aggregator_consumer_lag_messages"

/* What a flush in flight moves, applied to the partitions once its EXEC succeeded. */
struct flight {
    bool active;
    int64_t t0;
    size_t applied, duplicates, late, heartbeats;
    struct {
        enum agg_topic topic;
        int32_t partition;
        int64_t next, max_ts;
    } * parts;
    size_t nparts, cap;
};

struct agg_consumer {
    const struct agg_config *cfg;
    struct agg_redis *r;
    struct agg_metrics *m;
    rd_kafka_t *rk;
    const char *topics[AGG_TOPIC_COUNT];
    rd_kafka_topic_t *rkt[AGG_TOPIC_COUNT]; /* held so their metadata is known early */
    struct agg_part *parts[AGG_TOPIC_COUNT][AGG_MAX_PARTITIONS];
    size_t nparts;

    struct agg_event *events;
    size_t nevents, cap_events;
    struct agg_heartbeat *hbs;
    size_t nhbs, cap_hbs;
    size_t pending_msgs;
    int64_t first_pending_ms;
    struct agg_batch *batch;
    uint64_t commands_seen;

    struct flight flight; /* the flush whose MULTI/EXEC Redis is running */
    bool assigned;        /* the group has given this member an assignment (maybe empty) */

    bool redis_down;
    int64_t retry_at_ms, backoff_ms;

    int64_t lag_at_ms, lag_ask_at_ms; /* next lag refresh; next ask for paused partitions */
};

static int topic_kind(const struct agg_consumer *c, const char *name)
{
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        if (strcmp(c->topics[t], name) == 0)
            return t;
    return -1;
}

static void drop_pending(struct agg_consumer *c)
{
    for (size_t i = 0; i < c->nevents; i++)
        free(c->events[i].summary);
    c->nevents = 0;
    c->nhbs = 0;
    c->pending_msgs = 0;
    tm_gauge_set(c->m->pending, 0);
}

/* Collects the assigned partitions (all, or only the dirty ones). */
static size_t collect(struct agg_consumer *c, struct agg_part **out, bool dirty_only)
{
    size_t n = 0;

    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        for (int p = 0; p < AGG_MAX_PARTITIONS; p++)
            if (c->parts[t][p] != NULL && (!dirty_only || c->parts[t][p]->dirty))
                out[n++] = c->parts[t][p];
    return n;
}

static rd_kafka_topic_partition_list_t *to_list(struct agg_consumer *c, struct agg_part **parts,
                                                size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);

    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(l, c->topics[parts[i]->topic], parts[i]->partition);
        tp->offset = parts[i]->stored_next >= 0 ? parts[i]->stored_next : RD_KAFKA_OFFSET_BEGINNING;
    }
    return l;
}

static void enter_redis_down(struct agg_consumer *c, const char *why)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;

    if (c->flight.active) {
        /* its outcome is re-read from the stored offsets with everything else */
        c->flight.active = false;
        agg_redis_disconnect(c->r);
    }
    drop_pending(c);
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        for (int p = 0; p < AGG_MAX_PARTITIONS; p++)
            if (c->parts[t][p] != NULL)
                c->parts[t][p]->resync = true;
    if (rd_kafka_assignment(c->rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_pause_partitions(c->rk, assigned);
        rd_kafka_topic_partition_list_destroy(assigned);
    }
    if (!c->redis_down)
        tm_log_error("%s: pausing every partition until Redis answers", why);
    c->redis_down = true;
    c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_MIN_MS : c->backoff_ms;
    c->retry_at_ms = tm_time_mono_ms() + c->backoff_ms;
    tm_gauge_set(c->m->redis_up, 0);
}

/*
 * Re-reads the stored offsets and watermarks of parts from Redis and seeks them there
 * (a seek with a timeout also purges what was fetched before it), then resumes them.
 * Returns 0, or -1 after entering the Redis-down state.
 */
static int resync(struct agg_consumer *c, struct agg_part **parts, size_t n)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *e;
    char err[TM_ERR_LEN];

    if (n == 0)
        return 0;
    if (agg_redis_load_parts(c->r, c->cfg->group, c->topics, parts, n, err) != 0) {
        enter_redis_down(c, err);
        return -1;
    }
    l = to_list(c, parts, n);
    e = rd_kafka_seek_partitions(c->rk, l, SEEK_TIMEOUT_MS);
    if (e != NULL) {
        tm_log_warn("kafka: seek failed: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            tm_log_warn("kafka: seek %s/%d: %s", l->elems[i].topic, (int)l->elems[i].partition,
                        rd_kafka_err2str(l->elems[i].err));
    rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    for (size_t i = 0; i < n; i++) {
        parts[i]->resync = false;
        tm_log_info("partition %s/%d: resuming at offset %lld", c->topics[parts[i]->topic],
                    (int)parts[i]->partition, (long long)parts[i]->stored_next);
    }
    return 0;
}

static int resync_all(struct agg_consumer *c)
{
    struct agg_part **all = malloc((c->nparts + 1) * sizeof(*all));
    int rc;

    if (all == NULL) {
        enter_redis_down(c, "out of memory");
        return -1;
    }
    rc = resync(c, all, collect(c, all, false));
    free(all);
    return rc;
}

/*
 * Reads the outcome of the flush in flight, if any. OK: the partitions it moved now have
 * their new stored offsets. Otherwise what is pending (taken in on top of the flush) is
 * dropped and every partition re-read. Returns 0 (applied, or nothing in flight) or -1.
 */
static int complete(struct agg_consumer *c)
{
    struct flight *fl = &c->flight;
    char err[TM_ERR_LEN] = "";
    enum agg_flush_result res;

    if (!fl->active)
        return 0;
    fl->active = false;
    res = agg_redis_flush_wait(c->r, err);
    if (res == AGG_FLUSH_OK) {
        for (size_t i = 0; i < fl->nparts; i++) {
            struct agg_part *p = c->parts[fl->parts[i].topic][fl->parts[i].partition];
            if (p == NULL)
                continue;
            p->stored_next = fl->parts[i].next;
            p->stored_max_ts = fl->parts[i].max_ts;
        }
        tm_counter_inc(c->m->flushes);
        tm_counter_add(c->m->applied, fl->applied);
        tm_counter_add(c->m->duplicates, fl->duplicates);
        tm_counter_add(c->m->late, fl->late);
        tm_counter_add(c->m->heartbeats, fl->heartbeats);
        tm_histogram_observe(c->m->flush_seconds, (double)(tm_time_mono_ms() - fl->t0) / 1000.0);
        tm_log_debug("flush: %zu events applied, %zu duplicates, %zu heartbeats, %zu partitions",
                     fl->applied, fl->duplicates, fl->heartbeats, fl->nparts);
        return 0;
    }
    drop_pending(c);
    if (res == AGG_FLUSH_CONFLICT) {
        tm_counter_inc(c->m->conflicts);
        resync_all(c);
    } else {
        tm_counter_inc(c->m->flush_errors);
        enter_redis_down(c, err[0] != '\0' ? err : "redis: flush failed");
    }
    return -1;
}

/* Remembers what the flush just sent moves, for complete(). */
static int record_flight(struct agg_consumer *c, struct agg_part *const *dirty, size_t n,
                         const struct agg_flush *f, int64_t t0)
{
    struct flight *fl = &c->flight;

    if (n > fl->cap) {
        void *v = realloc(fl->parts, n * sizeof(*fl->parts));
        if (v == NULL)
            return -1;
        fl->parts = v;
        fl->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        fl->parts[i].topic = dirty[i]->topic;
        fl->parts[i].partition = dirty[i]->partition;
        fl->parts[i].next = dirty[i]->pending_next;
        fl->parts[i].max_ts = dirty[i]->pending_max_ts;
        dirty[i]->dirty = false;
    }
    fl->nparts = n;
    fl->applied = f->applied;
    fl->duplicates = f->duplicates;
    fl->heartbeats = c->nhbs;
    fl->late = 0;
    for (size_t i = 0; i < c->nevents; i++)
        fl->late += c->events[i].late;
    fl->t0 = t0;
    fl->active = true;
    return 0;
}

/*
 * Sends the pending list as one transaction, after reading the outcome of the previous
 * one: Redis runs it while the loop takes in the next messages. Returns 0 when it was
 * sent (or nothing was pending), -1 otherwise (pending data dropped, partitions re-read).
 */
static int flush(struct agg_consumer *c)
{
    struct agg_part **dirty = NULL;
    struct agg_flush f;
    enum agg_flush_result res;
    char err[TM_ERR_LEN] = "";
    int64_t t0 = tm_time_mono_ms();
    size_t n;
    uint64_t cmds;

    if (complete(c) != 0)
        return -1;
    if (c->pending_msgs == 0 || c->redis_down)
        return c->pending_msgs == 0 ? 0 : -1;
    dirty = malloc((c->nparts + 1) * sizeof(*dirty));
    if (dirty == NULL) {
        enter_redis_down(c, "out of memory");
        return -1;
    }
    n = collect(c, dirty, true);
    memset(&f, 0, sizeof(f));
    f.events = c->events;
    f.nevents = c->nevents;
    f.heartbeats = c->hbs;
    f.nheartbeats = c->nhbs;
    f.parts = (const struct agg_part *const *)dirty;
    f.nparts = n;
    f.group = c->cfg->group;
    f.topics = c->topics;
    res = agg_redis_flush(c->r, c->cfg, c->batch, &f, err);
    cmds = agg_redis_commands(c->r);
    tm_counter_add(c->m->redis_commands, cmds - c->commands_seen);
    c->commands_seen = cmds;
    if (res == AGG_FLUSH_OK && record_flight(c, dirty, n, &f, t0) != 0) {
        agg_redis_disconnect(c->r); /* its outcome cannot be followed: re-read it */
        res = AGG_FLUSH_ERROR;
        tm_err(err, "out of memory");
    }
    drop_pending(c);
    if (res == AGG_FLUSH_CONFLICT) {
        tm_counter_inc(c->m->conflicts);
        resync(c, dirty, n);
    } else if (res == AGG_FLUSH_ERROR) {
        tm_counter_inc(c->m->flush_errors);
        enter_redis_down(c, err[0] != '\0' ? err : "redis: flush failed");
    }
    free(dirty);
    return res == AGG_FLUSH_OK ? 0 : -1;
}

/* Flushes and waits for the outcome (before partitions go, and on exit). */
static int flush_sync(struct agg_consumer *c)
{
    if (flush(c) != 0)
        return -1;
    return complete(c);
}

static struct agg_event *next_event(struct agg_consumer *c)
{
    if (c->nevents == c->cap_events) {
        size_t cap = c->cap_events == 0 ? 256 : c->cap_events * 2;
        struct agg_event *v = realloc(c->events, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        c->events = v;
        c->cap_events = cap;
    }
    return &c->events[c->nevents];
}

static struct agg_heartbeat *next_heartbeat(struct agg_consumer *c)
{
    if (c->nhbs == c->cap_hbs) {
        size_t cap = c->cap_hbs == 0 ? 64 : c->cap_hbs * 2;
        struct agg_heartbeat *v = realloc(c->hbs, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        c->hbs = v;
        c->cap_hbs = cap;
    }
    return &c->hbs[c->nhbs];
}

static void take_event(struct agg_consumer *c, struct agg_part *p, const rd_kafka_message_t *msg)
{
    static _Thread_local struct tm_event ev;
    const int64_t retain[AGG_RES_COUNT] = {c->cfg->retain_minute_ms, c->cfg->retain_hour_ms,
                                           c->cfg->retain_day_ms};
    char err[TM_ERR_LEN];
    struct agg_event *e;
    int64_t wm;

    if (tm_event_decode(&ev, msg->payload, msg->len, TM_EVENT_STAMPED, err) != TM_EVENT_OK) {
        tm_counter_inc(c->m->invalid);
        tm_log_warn("kafka %s/%d@%lld: skipping an invalid event: %s", c->topics[p->topic],
                    (int)p->partition, (long long)msg->offset, err);
        return;
    }
    e = next_event(c);
    if (e == NULL) {
        enter_redis_down(c, "out of memory");
        return;
    }
    wm = agg_watermark(p->pending_max_ts, c->cfg->allowed_lateness_ms);
    memset(e, 0, sizeof(*e));
    e->partition = p->partition;
    e->late = wm != AGG_TS_NONE && ev.ts < wm;
    e->windows = agg_window_mask(ev.ts, wm, retain);
    e->severity = ev.severity;
    e->ts = ev.ts;
    e->count = ev.count;
    e->seq = ev.seq;
    e->clock_ts = agg_max_ts_advance(AGG_TS_NONE, ev.ts, ev.received, c->cfg->max_future_ms);
    tm_strlcpy(e->id, ev.id, sizeof(e->id));
    tm_strlcpy(e->operator_id, ev.operator_id, sizeof(e->operator_id));
    tm_strlcpy(e->agent, ev.agent, sizeof(e->agent));
    tm_strlcpy(e->sector, ev.sector, sizeof(e->sector));
    tm_strlcpy(e->region, ev.region, sizeof(e->region));
    tm_strlcpy(e->category, ev.category, sizeof(e->category));
    tm_strlcpy(e->technique, ev.attack.technique, sizeof(e->technique));
    tm_strlcpy(e->tactic, ev.attack.tactic, sizeof(e->tactic));
    tm_strlcpy(e->src_ip, ev.src.ip, sizeof(e->src_ip));
    if (ev.severity >= c->cfg->feed_min_severity) {
        e->summary = strdup(ev.summary);
        if (e->summary == NULL) {
            enter_redis_down(c, "out of memory");
            return;
        }
    }
    c->nevents++;
    p->pending_max_ts =
        agg_max_ts_advance(p->pending_max_ts, ev.ts, ev.received, c->cfg->max_future_ms);
}

static void take_heartbeat(struct agg_consumer *c, struct agg_part *p,
                           const rd_kafka_message_t *msg)
{
    char err[TM_ERR_LEN];
    struct agg_heartbeat *h = next_heartbeat(c);

    if (h == NULL) {
        enter_redis_down(c, "out of memory");
        return;
    }
    if (agg_heartbeat_decode(h, msg->payload, msg->len, err) != 0) {
        tm_counter_inc(c->m->invalid);
        tm_log_warn("kafka %s/%d@%lld: skipping an invalid heartbeat: %s", c->topics[p->topic],
                    (int)p->partition, (long long)msg->offset, err);
        return;
    }
    c->nhbs++;
}

static void take(struct agg_consumer *c, const rd_kafka_message_t *msg)
{
    int t;
    struct agg_part *p;

    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            tm_log_warn("kafka: %s", rd_kafka_message_errstr(msg));
        return;
    }
    t = topic_kind(c, rd_kafka_topic_name(msg->rkt));
    if (t < 0 || msg->partition < 0 || msg->partition >= AGG_MAX_PARTITIONS)
        return;
    p = c->parts[t][msg->partition];
    if (p == NULL || p->resync || c->redis_down)
        return; /* not ours (any more), or its position is being re-read */
    if (p->pending_next >= 0 && msg->offset < p->pending_next)
        return; /* fetched before a seek back */
    tm_counter_inc(c->m->consumed);
    if (c->pending_msgs == 0)
        c->first_pending_ms = tm_time_mono_ms();
    c->pending_msgs++;
    p->pending_next = msg->offset + 1;
    p->dirty = true;
    if (t == AGG_TOPIC_EVENTS)
        take_event(c, p, msg);
    else
        take_heartbeat(c, p, msg);
    tm_gauge_set(c->m->pending, (double)c->pending_msgs);
}

static void assign(struct agg_consumer *c, rd_kafka_topic_partition_list_t *list)
{
    struct agg_part **added = calloc((size_t)list->cnt + 1, sizeof(*added));
    rd_kafka_error_t *e;
    char err[TM_ERR_LEN];
    size_t n = 0;
    bool loaded = false;

    if (added == NULL) {
        tm_log_error("out of memory on assignment");
        abort(); /* cannot keep the group's state consistent */
    }
    complete(c); /* the connection is needed for the stored offsets */
    for (int i = 0; i < list->cnt; i++) {
        int t = topic_kind(c, list->elems[i].topic);
        int32_t pn = list->elems[i].partition;
        struct agg_part *p;
        if (t < 0 || pn < 0 || pn >= AGG_MAX_PARTITIONS || c->parts[t][pn] != NULL)
            continue;
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            abort();
        p->topic = (enum agg_topic)t;
        p->partition = pn;
        p->stored_next = p->pending_next = -1;
        p->stored_max_ts = p->pending_max_ts = AGG_TS_NONE;
        p->asked_lo = p->asked_hi = -1;
        c->parts[t][pn] = p;
        c->nparts++;
        added[n++] = p;
    }
    if (!c->redis_down && agg_redis_load_parts(c->r, c->cfg->group, c->topics, added, n, err) == 0)
        loaded = true;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            list, c->topics[added[i]->topic], added[i]->partition);
        if (tp != NULL && loaded)
            tp->offset =
                added[i]->stored_next >= 0 ? added[i]->stored_next : RD_KAFKA_OFFSET_BEGINNING;
        added[i]->resync = !loaded;
        if (loaded)
            tm_log_info("partition %s/%d assigned: starting at offset %lld",
                        c->topics[added[i]->topic], (int)added[i]->partition,
                        (long long)added[i]->stored_next);
    }
    e = rd_kafka_incremental_assign(c->rk, list);
    if (e != NULL) {
        tm_log_error("kafka: incremental assign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    if (!loaded && n > 0)
        enter_redis_down(c, c->redis_down ? "redis down" : err);
    tm_gauge_set(c->m->partitions, (double)c->nparts);
    free(added);
}

static void revoke(struct agg_consumer *c, rd_kafka_topic_partition_list_t *list)
{
    rd_kafka_error_t *e;

    /* Whatever is pending (lost or not: the fence refuses stale writes) goes out first. */
    flush_sync(c);
    if (c->pending_msgs > 0)
        drop_pending(c);
    for (int i = 0; i < list->cnt; i++) {
        int t = topic_kind(c, list->elems[i].topic);
        int32_t pn = list->elems[i].partition;
        if (t < 0 || pn < 0 || pn >= AGG_MAX_PARTITIONS || c->parts[t][pn] == NULL)
            continue;
        tm_log_info("partition %s/%d revoked", list->elems[i].topic, (int)pn);
        tm_metrics_remove_gauge(c->m->registry, c->parts[t][pn]->lag);
        free(c->parts[t][pn]);
        c->parts[t][pn] = NULL;
        c->nparts--;
    }
    e = rd_kafka_incremental_unassign(c->rk, list);
    if (e != NULL) {
        tm_log_error("kafka: incremental unassign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    tm_gauge_set(c->m->partitions, (double)c->nparts);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    struct agg_consumer *c = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(c, list);
        c->assigned = true;
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        revoke(c, list);
    else
        tm_log_error("kafka: rebalance failed: %s", rd_kafka_err2str(err));
    (void)rk;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    tm_log_warn("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        tm_log_error("kafka: %s: %s", fac, buf);
    else if (level <= 5)
        tm_log_info("kafka: %s: %s", fac, buf);
    else
        tm_log_debug("kafka: %s: %s", fac, buf); /* [kafka.librdkafka] debug = ... */
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return tm_err(err, "kafka property '%s': %s", key, errstr);
    return 0;
}

struct agg_consumer *agg_consumer_create(const struct agg_config *cfg, struct agg_redis *r,
                                         struct agg_metrics *m, char *err)
{
    struct agg_consumer *c = calloc(1, sizeof(*c));
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    rd_kafka_resp_err_t kerr;
    char errstr[512], num[32], hb[32];

    if (c == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    c->r = r;
    c->m = m;
    c->topics[AGG_TOPIC_EVENTS] = cfg->topic_events;
    c->topics[AGG_TOPIC_HEARTBEATS] = cfg->topic_heartbeats;
    c->batch = agg_batch_create();
    if (c->batch == NULL) {
        tm_err(err, "out of memory");
        goto fail;
    }
    conf = rd_kafka_conf_new();
    snprintf(num, sizeof(num), "%lld", (long long)cfg->session_timeout_ms);
    snprintf(hb, sizeof(hb), "%lld", (long long)(cfg->session_timeout_ms / 4));
    if (conf_set(conf, "bootstrap.servers", cfg->kafka, err) != 0 ||
        conf_set(conf, "group.id", cfg->group, err) != 0 ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err) != 0 ||
        conf_set(conf, "enable.auto.commit", "false", err) != 0 ||
        conf_set(conf, "enable.auto.offset.store", "false", err) != 0 ||
        conf_set(conf, "auto.offset.reset", "earliest", err) != 0 ||
        conf_set(conf, "session.timeout.ms", num, err) != 0 ||
        conf_set(conf, "heartbeat.interval.ms", hb, err) != 0 ||
        conf_set(conf, "log.connection.close", "false", err) != 0 ||
        /* A fetch that finds no data is held this long by the broker, and holds up the
         * connection's other requests: 500 ms (the default) stalls a start or a catch-up. */
        conf_set(conf, "fetch.wait.max.ms", "100", err) != 0 ||
        /* Every partition feeds the one consumer queue, and librdkafka compares that
         * queue's length with this per-partition threshold: at the default (100,000) a
         * catch-up stops fetching for up to a second each time the queue fills. The byte
         * cap, queued.max.messages.kbytes (64 MB), still bounds the memory. */
        conf_set(conf, "queued.min.messages", "1000000", err) != 0)
        goto fail;
    for (int i = 0; i < cfg->kafka_extra_count; i++) {
        char key[256];
        const char *eq = strchr(cfg->kafka_extra[i], '=');
        if (eq == NULL || (size_t)(eq - cfg->kafka_extra[i]) >= sizeof(key)) {
            tm_err(err, "kafka property '%s': expected key=value", cfg->kafka_extra[i]);
            goto fail;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - cfg->kafka_extra[i]), cfg->kafka_extra[i]);
        if (conf_set(conf, key, eq + 1, err) != 0)
            goto fail;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (c->rk == NULL) {
        tm_err(err, "kafka consumer: %s", errstr);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(c->rk);
    subs = rd_kafka_topic_partition_list_new(AGG_TOPIC_COUNT);
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        rd_kafka_topic_partition_list_add(subs, c->topics[t], RD_KAFKA_PARTITION_UA);
    kerr = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tm_err(err, "kafka subscribe: %s", rd_kafka_err2str(kerr));
        goto fail;
    }
    /*
     * Topic handles made now have their partition leaders by the time the group assigns
     * them (seconds later); made by the assignment itself, the partitions that start from
     * the beginning race their leader lookup and retry their offset query 500 ms later.
     */
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        c->rkt[t] = rd_kafka_topic_new(c->rk, c->topics[t], NULL);
    tm_gauge_set(m->redis_up, 1);
    return c;
fail:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    if (c->rk != NULL)
        rd_kafka_destroy(c->rk);
    agg_batch_destroy(c->batch);
    free(c);
    return NULL;
}

static void retry_redis(struct agg_consumer *c)
{
    char err[TM_ERR_LEN];

    if (tm_time_mono_ms() < c->retry_at_ms)
        return;
    if (agg_redis_connect(c->r, err) != 0) {
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
        c->retry_at_ms = tm_time_mono_ms() + c->backoff_ms;
        tm_log_debug("%s; retrying in %lld ms", err, (long long)c->backoff_ms);
        return;
    }
    c->redis_down = false;
    c->backoff_ms = 0;
    tm_gauge_set(c->m->redis_up, 1);
    tm_log_info("redis answers again: re-reading %zu partition offsets", c->nparts);
    resync_all(c);
}

/*
 * Sets p's lag gauge: high watermark minus the next offset to apply, which is the stored
 * one or, with nothing stored, the oldest offset (where consumption starts). Nothing is
 * published until both are known. With ask, a paused partition's watermarks are asked of
 * the broker (blocking, at most timeout_ms), since the cache only moves with fetches.
 */
static void update_lag(struct agg_consumer *c, struct agg_part *p, bool ask, int timeout_ms)
{
    const char *topic = c->topics[p->topic];
    int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID, next;

    if (rd_kafka_get_watermark_offsets(c->rk, topic, p->partition, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        lo = hi = RD_KAFKA_OFFSET_INVALID;
    if (ask && p->resync) {
        int64_t alo = -1, ahi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(c->rk, topic, p->partition, &alo, &ahi, timeout_ms);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            p->asked_lo = alo;
            p->asked_hi = ahi;
        } else
            tm_log_debug("kafka: watermarks of %s/%d: %s", topic, (int)p->partition,
                         rd_kafka_err2str(err));
    }
    if (p->asked_hi > hi) /* offsets only grow: the later of the two */
        hi = p->asked_hi;
    if (p->asked_lo > lo)
        lo = p->asked_lo;
    next = p->stored_next >= 0 ? p->stored_next : lo;
    if (hi < 0 || next < 0)
        return;
    if (p->lag == NULL) {
        char num[16];
        snprintf(num, sizeof(num), "%d", (int)p->partition);
        p->lag = tm_metrics_gauge(c->m->registry, LAG_METRIC,
                                  "Messages of an owned partition not yet applied to Redis "
                                  "(high watermark minus the next offset to apply).",
                                  "topic", topic, "partition", num, NULL);
    }
    tm_gauge_set(p->lag, hi > next ? (double)(hi - next) : 0);
}

/* Refreshes the lag of every owned partition, once a second. */
static void update_lags(struct agg_consumer *c, int64_t now)
{
    bool ask = now >= c->lag_ask_at_ms;
    int64_t deadline = now + LAG_ASK_BUDGET_MS;

    if (now < c->lag_at_ms)
        return;
    c->lag_at_ms = now + LAG_INTERVAL_MS;
    if (ask)
        c->lag_ask_at_ms = now + LAG_ASK_INTERVAL_MS;
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        for (int p = 0; p < AGG_MAX_PARTITIONS; p++) {
            int64_t left;
            if (c->parts[t][p] == NULL)
                continue;
            left = deadline - tm_time_mono_ms();
            update_lag(c, c->parts[t][p], ask && left > 0,
                       (int)(left < LAG_ASK_TIMEOUT_MS ? left : LAG_ASK_TIMEOUT_MS));
        }
}

int agg_consumer_run_once(struct agg_consumer *c, int timeout_ms)
{
    rd_kafka_message_t *msg;
    int64_t now;
    bool quiet;

    if (c->redis_down)
        retry_redis(c);
    msg = rd_kafka_consumer_poll(c->rk, timeout_ms);
    quiet = msg == NULL; /* nothing arrived for a whole poll interval */
    while (msg != NULL) {
        take(c, msg);
        rd_kafka_message_destroy(msg);
        if (c->pending_msgs >= (size_t)c->cfg->flush_events)
            break;
        msg = rd_kafka_consumer_poll(c->rk, 0);
    }
    now = tm_time_mono_ms();
    if (c->pending_msgs > 0 && (quiet || c->pending_msgs >= (size_t)c->cfg->flush_events ||
                                now - c->first_pending_ms >= c->cfg->flush_interval_ms))
        flush(c);
    else if (c->pending_msgs == 0)
        complete(c); /* idle: no reason to leave the outcome unread */
    update_lags(c, tm_time_mono_ms());
    return 0;
}

bool agg_consumer_healthy(const struct agg_consumer *c)
{
    return !c->redis_down;
}

/*
 * A member that has joined the group (it has a member id) but has not yet been given its
 * first assignment must not be destroyed: librdkafka 2.0 asserts in the cooperative-sticky
 * assignor when a consumer that received its JoinGroup response but no SyncGroup
 * assignment is destroyed (the assignor's state is still NULL; librdkafka issue #4312,
 * fixed in 2.3.0), and SIGTERM during a rebalance (a member restarted while the group
 * still waits for a dead one, or a member stopped right after it joined) hits exactly that
 * window. So the member finishes the join first: it keeps serving the consumer, and the
 * rebalance callback, until the assignment arrives, for at most the session timeout plus
 * a grace period. Messages polled meanwhile are not taken in: their offsets do not move.
 */
static void finish_join(struct agg_consumer *c)
{
    char *id = rd_kafka_memberid(c->rk);
    bool joined = id != NULL && id[0] != '\0';
    int64_t deadline = tm_time_mono_ms() + c->cfg->session_timeout_ms + JOIN_GRACE_MS;

    if (id != NULL)
        rd_kafka_mem_free(c->rk, id);
    if (c->assigned || !joined)
        return;
    tm_log_info("the group is still assigning partitions to this member: waiting for the "
                "assignment before leaving");
    while (!c->assigned && tm_time_mono_ms() < deadline) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 100);
        if (msg != NULL)
            rd_kafka_message_destroy(msg);
    }
    if (!c->assigned)
        tm_log_warn("kafka: no assignment after %lld ms: leaving anyway",
                    (long long)(c->cfg->session_timeout_ms + JOIN_GRACE_MS));
}

void agg_consumer_destroy(struct agg_consumer *c)
{
    rd_kafka_resp_err_t err;

    if (c == NULL)
        return;
    flush_sync(c);
    finish_join(c);
    err = rd_kafka_consumer_close(c->rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        tm_log_warn("kafka: closing the consumer: %s", rd_kafka_err2str(err));
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        if (c->rkt[t] != NULL)
            rd_kafka_topic_destroy(c->rkt[t]);
    rd_kafka_destroy(c->rk);
    drop_pending(c);
    for (int t = 0; t < AGG_TOPIC_COUNT; t++)
        for (int p = 0; p < AGG_MAX_PARTITIONS; p++)
            free(c->parts[t][p]);
    free(c->events);
    free(c->hbs);
    free(c->flight.parts);
    agg_batch_destroy(c->batch);
    free(c);
}
