/*
 * api.c - the JSON endpoints of docs/dashboard.md: overview, sector, feed, agents,
 * priorities. Each request is checked (parameters against their vocabularies: 400;
 * unknown sector: 404; Redis down or too many requests in flight: 503), then sends all
 * the commands it needs back to back on the command connection (one pipeline; the
 * agents and priorities need a second one for the hashes the first names, the filtered
 * feed pages through tm:feed 500 entries at a time) and turns the replies into JSON.
 *
 * Reads only the keys of docs/redis-keys.md. The overview takes each sector's hourly or
 * daily events from the national hashes' sec:{sector} fields: the same number as the
 * sector hash's events (both are counted from every event), in one HMGET per column
 * instead of one per sector and column.
 *
 * Answers of overview, sector and feed are kept for [dashboard] cache_ttl and dropped
 * as soon as the aggregator announces a flush on tm:updates, so a wall of screens
 * polling the same page costs Redis one query per flush or per second, not one each.
 *
 * A request whose client leaves while Redis works is detached (its evhttp request
 * forgotten or freed); its query finishes and everything is freed without an answer.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "dashboard.h"
#include "tm/tm_log.h"
#include "tm/tm_tables.h"
#include "tm/tm_time.h"

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define MAX_LABELS 60
#define LABEL_LEN 16
#define CACHE_SLOTS 64
#define CACHE_KEY_LEN 160
#define FEED_PAGE 500
#define FEED_SCAN_MAX 5000
#define FEED_LIMIT_MAX 500
#define FEED_LIMIT_DEFAULT 50
#define AGENTS_MAX 5000
#define PRIORITIES_MAX 100
#define TOP_SOURCES 10
#define VOCAB_MAX 64 /* sectors and regions the overview holds on the stack */

enum range { RANGE_24H, RANGE_7D, RANGE_30D };
static const char *const range_names[] = {"24h", "7d", "30d"};

struct cache_entry {
    char key[CACHE_KEY_LEN];
    char *text;
    int64_t at_ms;
    uint64_t generation;
};

struct api_req;

struct dash_api {
    struct dash *d;
    struct api_req *reqs; /* waiting for Redis */
    int64_t inflight;
    struct tm_gauge *g_inflight;
    uint64_t generation;
    struct cache_entry cache[CACHE_SLOTS];
    size_t cache_next;
    char sec_fields[VOCAB_MAX][48]; /* "sec:{sector}" per tm_sectors[] */
};

struct api_req {
    struct dash_api *a;
    struct evhttp_request *req; /* NULL once the client left */
    enum dash_endpoint ep;
    int64_t start_ms, now_ms;
    struct dash_query *q;
    char cache_key[CACHE_KEY_LEN];
    /* parameters */
    enum range range;
    int sector; /* index in tm_sectors[] */
    char f_sector[32], f_region[8], f_category[32];
    int min_severity, limit;
    /* derived */
    char day[LABEL_LEN];
    char labels[MAX_LABELS][LABEL_LEN];
    int nlabels;
    /* feed paging and two-step queries */
    json_t *items;
    int scanned;
    char before[48];
    json_t *names; /* agents: members; priorities: need ids and scores */
    struct api_req *prev, *next;
};

/* ---- small helpers ----------------------------------------------------------------- */

/* UTC label of ms: 'm' YYYYMMDDHHMM, 'h' YYYYMMDDHH, 'd' YYYYMMDD. */
static void label_of(int64_t ms, char res, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&secs, &tm) == NULL) {
        tm_strlcpy(out, "", len);
        return;
    }
    strftime(out, len, res == 'm' ? "%Y%m%d%H%M" : res == 'h' ? "%Y%m%d%H" : "%Y%m%d", &tm);
}

static int64_t reply_int(const redisReply *r)
{
    int64_t v;

    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING && tm_parse_int64(r->str, INT64_MIN, INT64_MAX, &v) == 0)
        return v;
    if (r->type == REDIS_REPLY_STRING) /* "12.5" or "1e3": whatever its integer part is */
        return (int64_t)strtod(r->str, NULL);
    return 0;
}

static double reply_double(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return (double)r->integer;
    if (r->type == REDIS_REPLY_STRING) {
        double v = strtod(r->str, NULL);
        return isfinite(v) ? v : 0;
    }
    return 0;
}

/* Element i of an array reply, or NULL. */
static const redisReply *elem(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    return r->element[i];
}

static bool is_nil(const redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_NIL;
}

static json_t *str_or_empty(const redisReply *r)
{
    json_t *s = NULL;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        s = json_stringn(r->str, r->len);
    return s != NULL ? s : json_string("");
}

/* The trend object of an HMGET trend baseline sd z anomaly reply, or null. */
static json_t *trend_of(const redisReply *r)
{
    if (is_nil(elem(r, 0)) && is_nil(elem(r, 1)) && is_nil(elem(r, 2)) && is_nil(elem(r, 3)))
        return json_null();
    return json_pack("{s:f,s:f,s:f,s:b}", "baseline", reply_double(elem(r, 0)), "sd",
                     reply_double(elem(r, 1)), "z", reply_double(elem(r, 2)), "anomaly",
                     reply_int(elem(r, 3)) != 0);
}

static json_t *int_array(void)
{
    return json_array();
}

/* ---- requests ---------------------------------------------------------------------- */

static void gone_cb(struct evhttp_connection *evcon, void *arg)
{
    struct api_req *ar = arg;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (ar->req != NULL && evhttp_request_get_connection(ar->req) == NULL)
        evhttp_request_free(ar->req);
    ar->req = NULL;
}

static void req_free(struct api_req *ar)
{
    struct dash_api *a = ar->a;

    if (ar->q != NULL) {
        a->inflight--;
        tm_gauge_set(a->g_inflight, (double)a->inflight);
        if (ar->prev != NULL)
            ar->prev->next = ar->next;
        else
            a->reqs = ar->next;
        if (ar->next != NULL)
            ar->next->prev = ar->prev;
        dash_query_free(ar->q);
    }
    json_decref(ar->items);
    json_decref(ar->names);
    free(ar);
}

/* Detaches the close callback: the request is about to be answered. */
static struct evhttp_request *take_req(struct api_req *ar)
{
    struct evhttp_request *req = ar->req;
    struct evhttp_connection *evcon;

    if (req != NULL && (evcon = evhttp_request_get_connection(req)) != NULL)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    ar->req = NULL;
    return req;
}

static void cache_put(struct dash_api *a, const char *key, const char *text)
{
    struct cache_entry *e = NULL;

    if (a->d->cfg.cache_ttl_ms <= 0 || key[0] == '\0')
        return;
    for (size_t i = 0; i < CACHE_SLOTS && e == NULL; i++)
        if (strcmp(a->cache[i].key, key) == 0)
            e = &a->cache[i];
    if (e == NULL) {
        e = &a->cache[a->cache_next];
        a->cache_next = (a->cache_next + 1) % CACHE_SLOTS;
    }
    free(e->text);
    e->text = strdup(text);
    tm_strlcpy(e->key, key, sizeof(e->key));
    e->at_ms = tm_time_mono_ms();
    e->generation = a->generation;
}

static const char *cache_get(struct dash_api *a, const char *key)
{
    int64_t now = tm_time_mono_ms();

    if (a->d->cfg.cache_ttl_ms <= 0 || key[0] == '\0')
        return NULL;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_entry *e = &a->cache[i];
        if (e->text != NULL && strcmp(e->key, key) == 0 && e->generation == a->generation &&
            now - e->at_ms < a->d->cfg.cache_ttl_ms)
            return e->text;
    }
    return NULL;
}

void dash_api_invalidate(struct dash_api *a)
{
    a->generation++;
}

/* Answers with o (consumed), caches it when the endpoint allows, frees ar. */
static void finish(struct api_req *ar, json_t *o)
{
    struct dash *d = ar->a->d;
    struct evhttp_request *req = take_req(ar);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;

    json_decref(o);
    if (req != NULL) {
        if (text == NULL) {
            dash_reply_error(d, req, ar->ep, 500, ar->start_ms, "out of memory");
        } else {
            cache_put(ar->a, ar->cache_key, text);
            dash_reply(d, req, ar->ep, 200, "application/json; charset=utf-8", text, strlen(text),
                       ar->start_ms);
        }
    }
    free(text);
    req_free(ar);
}

/* Answers 503 (the query failed: Redis went away or did not answer in time). */
static void fail(struct api_req *ar)
{
    struct dash *d = ar->a->d;
    struct evhttp_request *req = take_req(ar);

    if (req != NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        dash_reply_error(d, req, ar->ep, 503, ar->start_ms, "redis unavailable: %s",
                         dash_redis_reason(d->redis));
    }
    req_free(ar);
}

/* ---- /api/overview ----------------------------------------------------------------- */

struct sector_row {
    int idx;
    int64_t rank;
    double risk;
    json_t *o;
};

static int cmp_rows(const void *x, const void *y)
{
    const struct sector_row *a = x, *b = y;

    if ((a->rank > 0) != (b->rank > 0))
        return a->rank > 0 ? -1 : 1;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    return strcmp(tm_sectors[a->idx].id, tm_sectors[b->idx].id);
}

struct region_row {
    const char *code;
    int64_t today;
};

static int cmp_regions(const void *x, const void *y)
{
    const struct region_row *a = x, *b = y;

    if (a->today != b->today)
        return a->today > b->today ? -1 : 1;
    return strcmp(a->code, b->code);
}

static void overview_send(struct api_req *ar)
{
    struct dash_api *a = ar->a;
    struct dash_query *q = ar->q;
    const char *rname = ar->range == RANGE_24H ? "1h" : "1d";
    const char *argv[80];
    char key[128];

    dash_query_cmd(q, "ZREVRANGE tm:risk 0 -1 WITHSCORES");
    for (int i = 0; i < ar->nlabels; i++) {
        int argc = 0;
        snprintf(key, sizeof(key), "tm:n:%s:%s", rname, ar->labels[i]);
        argv[argc++] = "HMGET";
        argv[argc++] = key;
        argv[argc++] = "events";
        for (size_t s = 0; s < tm_sectors_count; s++)
            argv[argc++] = a->sec_fields[s];
        dash_query_argv(q, argc, argv);
    }
    dash_query_cmd(q, "HMGET tm:n:1d:%s events sev:high sev:critical", ar->day);
    dash_query_cmd(q, "PFCOUNT tm:n:src:1d:%s", ar->day);
    dash_query_cmd(q, "HMGET tm:n:roll events_24h serious_24h events_7d events_30d");
    dash_query_cmd(q, "HMGET tm:n:trend baseline sd z anomaly");
    for (size_t s = 0; s < tm_sectors_count; s++) {
        const char *id = tm_sectors[s].id;
        dash_query_cmd(q, "HMGET tm:s:%s:1d:%s events sev:high sev:critical", id, ar->day);
        dash_query_cmd(q, "HMGET tm:s:%s:roll events_24h serious_24h events_7d events_30d", id);
        dash_query_cmd(q, "HMGET tm:s:%s:trend baseline sd z anomaly", id);
    }
    for (size_t i = 0; i < tm_regions_count; i++)
        dash_query_cmd(q, "HGET tm:r:%s:1d:%s events", tm_regions[i].code, ar->day);
    dash_query_wait(q);
}

static void overview_done(struct api_req *ar)
{
    redisReply **r = ar->q->replies;
    size_t k = 0, nl = (size_t)ar->nlabels;
    const redisReply *risk = r[k++];
    const redisReply *const *cols = (const redisReply *const *)&r[k];
    const redisReply *nday, *nsrc, *nroll, *ntrend;
    struct sector_row rows[VOCAB_MAX];
    struct region_row regions[VOCAB_MAX];
    size_t nregions = 0;
    json_t *labels = json_array(), *series = int_array(), *sectors = json_array();
    json_t *jregions = json_array(), *national, *o;

    k += nl;
    nday = r[k++];
    nsrc = r[k++];
    nroll = r[k++];
    ntrend = r[k++];
    for (size_t i = 0; i < nl; i++) {
        json_array_append_new(labels, json_string(ar->labels[i]));
        json_array_append_new(series, json_integer(reply_int(elem(cols[i], 0))));
    }
    national = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "today", (json_int_t)reply_int(elem(nday, 0)),
        "serious_today", (json_int_t)(reply_int(elem(nday, 1)) + reply_int(elem(nday, 2))),
        "sources_today", (json_int_t)reply_int(nsrc), "events_24h",
        (json_int_t)reply_int(elem(nroll, 0)), "serious_24h", (json_int_t)reply_int(elem(nroll, 1)),
        "events_7d", (json_int_t)reply_int(elem(nroll, 2)), "events_30d",
        (json_int_t)reply_int(elem(nroll, 3)), "series", series, "trend", trend_of(ntrend));
    for (size_t s = 0; s < tm_sectors_count; s++) {
        const redisReply *day = r[k++], *roll = r[k++], *trend = r[k++];
        json_t *ser = int_array();
        struct sector_row *row = &rows[s];

        row->idx = (int)s;
        row->rank = 0;
        row->risk = 0;
        for (size_t i = 0; risk != NULL && i + 1 < risk->elements; i += 2)
            if (risk->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(risk->element[i]->str, tm_sectors[s].id) == 0) {
                row->rank = (int64_t)(i / 2 + 1);
                row->risk = reply_double(risk->element[i + 1]);
            }
        for (size_t i = 0; i < nl; i++)
            json_array_append_new(ser, json_integer(reply_int(elem(cols[i], 1 + s))));
        row->o = json_pack(
            "{s:s,s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "sector", tm_sectors[s].id, "rank",
            (json_int_t)row->rank, "risk", row->risk, "today", (json_int_t)reply_int(elem(day, 0)),
            "serious_today", (json_int_t)(reply_int(elem(day, 1)) + reply_int(elem(day, 2))),
            "events_24h", (json_int_t)reply_int(elem(roll, 0)), "serious_24h",
            (json_int_t)reply_int(elem(roll, 1)), "events_7d", (json_int_t)reply_int(elem(roll, 2)),
            "events_30d", (json_int_t)reply_int(elem(roll, 3)), "series", ser, "trend",
            trend_of(trend));
    }
    qsort(rows, tm_sectors_count, sizeof(rows[0]), cmp_rows);
    for (size_t s = 0; s < tm_sectors_count; s++)
        json_array_append_new(sectors, rows[s].o);
    for (size_t i = 0; i < tm_regions_count; i++) {
        int64_t n = reply_int(r[k++]);
        if (n > 0) {
            regions[nregions].code = tm_regions[i].code;
            regions[nregions++].today = n;
        }
    }
    qsort(regions, nregions, sizeof(regions[0]), cmp_regions);
    for (size_t i = 0; i < nregions; i++)
        json_array_append_new(jregions, json_pack("{s:s,s:I}", "region", regions[i].code, "today",
                                                  (json_int_t)regions[i].today));
    o = json_pack("{s:I,s:s,s:s,s:o,s:o,s:o,s:o}", "generated_ms", (json_int_t)ar->now_ms, "day",
                  ar->day, "range", range_names[ar->range], "labels", labels, "national", national,
                  "sectors", sectors, "regions", jregions);
    finish(ar, o);
}

/* ---- /api/sector/{id} -------------------------------------------------------------- */

static void sector_send(struct api_req *ar)
{
    struct dash_query *q = ar->q;
    const char *id = tm_sectors[ar->sector].id;
    const char *rname = ar->range == RANGE_24H ? "1h" : "1d";
    char minute[LABEL_LEN];

    dash_query_cmd(q, "ZREVRANK tm:risk %s", id);
    dash_query_cmd(q, "ZSCORE tm:risk %s", id);
    for (int i = 0; i < ar->nlabels; i++)
        dash_query_cmd(q, "HGETALL tm:s:%s:%s:%s", id, rname, ar->labels[i]);
    for (int i = 59; i >= 0; i--) {
        label_of(ar->now_ms - (int64_t)i * 60000, 'm', minute, sizeof(minute));
        dash_query_cmd(q, "HGET tm:s:%s:1m:%s events", id, minute);
    }
    dash_query_cmd(q, "ZREVRANGE tm:s:%s:top:1d:%s 0 %d WITHSCORES", id, ar->day, TOP_SOURCES - 1);
    dash_query_cmd(q, "PFCOUNT tm:s:%s:src:1d:%s", id, ar->day);
    dash_query_cmd(q, "SCARD tm:s:%s:ops:1d:%s", id, ar->day);
    dash_query_cmd(q,
                   "HMGET tm:s:%s:roll events_24h serious_24h events_7d serious_7d events_30d "
                   "serious_30d",
                   id);
    dash_query_cmd(q, "HMGET tm:s:%s:trend baseline sd z anomaly", id);
    dash_query_wait(q);
}

/* Adds v to counts[name]. */
static void bump(json_t *counts, const char *name, int64_t v)
{
    json_t *cur = json_object_get(counts, name);

    json_object_set_new(counts, name,
                        json_integer((cur != NULL ? json_integer_value(cur) : 0) + v));
}

struct kv {
    const char *key;
    json_int_t v;
};

static int cmp_kv(const void *x, const void *y)
{
    const struct kv *a = x, *b = y;

    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return strcmp(a->key, b->key);
}

/* A copy of counts ordered most first (then by name). Consumes counts. */
static json_t *sorted(json_t *counts)
{
    size_t n = json_object_size(counts), i = 0;
    struct kv *v = calloc(n + 1, sizeof(*v));
    json_t *out = json_object();
    const char *key;
    json_t *val;

    if (v != NULL) {
        json_object_foreach(counts, key, val)
        {
            v[i].key = key;
            v[i++].v = json_integer_value(val);
        }
        qsort(v, n, sizeof(*v), cmp_kv);
        for (i = 0; i < n; i++)
            json_object_set_new(out, v[i].key, json_integer(v[i].v));
    }
    free(v);
    json_decref(counts);
    return out;
}

static void sector_done(struct api_req *ar)
{
    redisReply **r = ar->q->replies;
    size_t k = 0;
    const redisReply *rank = r[k++], *score = r[k++];
    json_t *labels = json_array(), *events = int_array(), *count = int_array();
    json_t *serious = int_array(), *mlabels = json_array(), *mevents = int_array();
    json_t *cats = json_object(), *techs = json_object(), *tacs = json_object();
    json_t *sev = json_pack("{s:I,s:I,s:I,s:I}", "low", (json_int_t)0, "medium", (json_int_t)0,
                            "high", (json_int_t)0, "critical", (json_int_t)0);
    json_t *top = json_array(), *o;
    const redisReply *topr, *src, *ops, *roll, *trend;
    char minute[LABEL_LEN];

    for (int i = 0; i < ar->nlabels; i++) {
        const redisReply *h = r[k++];
        int64_t ev = 0, cnt = 0, ser = 0;
        for (size_t j = 0; h != NULL && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements;
             j += 2) {
            const char *f = h->element[j]->str;
            int64_t v = reply_int(h->element[j + 1]);
            if (f == NULL)
                continue;
            if (strcmp(f, "events") == 0)
                ev = v;
            else if (strcmp(f, "count") == 0)
                cnt = v;
            else if (strncmp(f, "cat:", 4) == 0)
                bump(cats, f + 4, v);
            else if (strncmp(f, "tech:", 5) == 0)
                bump(techs, f + 5, v);
            else if (strncmp(f, "tac:", 4) == 0)
                bump(tacs, f + 4, v);
            else if (strncmp(f, "sev:", 4) == 0 && json_object_get(sev, f + 4) != NULL) {
                bump(sev, f + 4, v);
                if (strcmp(f, "sev:high") == 0 || strcmp(f, "sev:critical") == 0)
                    ser += v;
            }
        }
        json_array_append_new(labels, json_string(ar->labels[i]));
        json_array_append_new(events, json_integer(ev));
        json_array_append_new(count, json_integer(cnt));
        json_array_append_new(serious, json_integer(ser));
    }
    for (int i = 59; i >= 0; i--) {
        label_of(ar->now_ms - (int64_t)i * 60000, 'm', minute, sizeof(minute));
        json_array_append_new(mlabels, json_string(minute));
        json_array_append_new(mevents, json_integer(reply_int(r[k++])));
    }
    topr = r[k++];
    src = r[k++];
    ops = r[k++];
    roll = r[k++];
    trend = r[k++];
    for (size_t i = 0; topr != NULL && topr->type == REDIS_REPLY_ARRAY && i + 1 < topr->elements;
         i += 2)
        json_array_append_new(top,
                              json_pack("{s:o,s:I}", "src", str_or_empty(topr->element[i]),
                                        "events", (json_int_t)reply_int(topr->element[i + 1])));
    o = json_pack(
        "{s:s,s:s,s:s,s:I,s:f,s:o,s:{s:o,s:o,s:o},s:{s:o,s:o},s:o,s:o,s:o,s:o,s:o,s:I,s:I,"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I},s:o}",
        "sector", tm_sectors[ar->sector].id, "range", range_names[ar->range], "day", ar->day,
        "rank", (json_int_t)(is_nil(rank) ? 0 : reply_int(rank) + 1), "risk", reply_double(score),
        "labels", labels, "series", "events", events, "count", count, "serious", serious, "minutes",
        "labels", mlabels, "events", mevents, "categories", sorted(cats), "severity", sev,
        "techniques", sorted(techs), "tactics", sorted(tacs), "top_sources", top, "sources_today",
        (json_int_t)reply_int(src), "operators_today", (json_int_t)reply_int(ops), "roll",
        "events_24h", (json_int_t)reply_int(elem(roll, 0)), "serious_24h",
        (json_int_t)reply_int(elem(roll, 1)), "events_7d", (json_int_t)reply_int(elem(roll, 2)),
        "serious_7d", (json_int_t)reply_int(elem(roll, 3)), "events_30d",
        (json_int_t)reply_int(elem(roll, 4)), "serious_30d", (json_int_t)reply_int(elem(roll, 5)),
        "trend", trend_of(trend));
    finish(ar, o);
}

/* ---- /api/feed --------------------------------------------------------------------- */

json_t *dash_feed_item(const redisReply *entry)
{
    static const char *const fields[] = {"id",       "ts",        "sector", "operator", "region",
                                         "category", "technique", "src",    "summary"};
    const redisReply *sid = elem(entry, 0), *kv = elem(entry, 1);
    json_t *o;

    if (sid == NULL || sid->type != REDIS_REPLY_STRING || kv == NULL ||
        kv->type != REDIS_REPLY_ARRAY)
        return NULL;
    o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "stream_id", json_stringn(sid->str, sid->len));
    for (size_t i = 0; i < TM_ARRAY_LEN(fields); i++)
        json_object_set_new(o, fields[i], json_string(""));
    json_object_set_new(o, "severity", json_integer(0));
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *f = kv->element[i], *v = kv->element[i + 1];
        if (f->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "severity") == 0) {
            json_object_set_new(o, "severity", json_integer(reply_int(v)));
            continue;
        }
        for (size_t j = 0; j < TM_ARRAY_LEN(fields); j++)
            if (strcmp(f->str, fields[j]) == 0)
                json_object_set_new(o, fields[j], str_or_empty(v));
    }
    return o;
}

static bool feed_filtered(const struct api_req *ar)
{
    return ar->f_sector[0] != '\0' || ar->f_region[0] != '\0' || ar->f_category[0] != '\0' ||
           ar->min_severity > 1;
}

static bool feed_match(const struct api_req *ar, json_t *item)
{
    const char *s = json_string_value(json_object_get(item, "sector"));
    const char *r = json_string_value(json_object_get(item, "region"));
    const char *c = json_string_value(json_object_get(item, "category"));

    if (ar->f_sector[0] != '\0' && (s == NULL || strcmp(s, ar->f_sector) != 0))
        return false;
    if (ar->f_region[0] != '\0' && (r == NULL || strcmp(r, ar->f_region) != 0))
        return false;
    if (ar->f_category[0] != '\0' && (c == NULL || strcmp(c, ar->f_category) != 0))
        return false;
    return json_integer_value(json_object_get(item, "severity")) >= ar->min_severity;
}

static void feed_send(struct api_req *ar)
{
    int count = feed_filtered(ar) ? FEED_PAGE : ar->limit;

    dash_query_cmd(ar->q, "XREVRANGE tm:feed %s - COUNT %d", ar->before, count);
    dash_query_wait(ar->q);
}

/* The id just below a stream id "ms-seq" (XREVRANGE's end is inclusive). */
static int id_before(const char *id, char *out, size_t len)
{
    unsigned long long ms, seq;
    char extra;

    if (sscanf(id, "%llu-%llu%c", &ms, &seq, &extra) != 2)
        return -1;
    if (seq > 0)
        snprintf(out, len, "%llu-%llu", ms, seq - 1);
    else if (ms > 0)
        snprintf(out, len, "%llu-18446744073709551615", ms - 1);
    else
        return -1;
    return 0;
}

static void feed_done(struct api_req *ar)
{
    const redisReply *r = ar->q->replies[0];
    const char *last = NULL;
    size_t n = r != NULL && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;

    for (size_t i = 0; i < n; i++) {
        json_t *item = dash_feed_item(r->element[i]);
        const redisReply *sid = elem(r->element[i], 0);
        if (sid != NULL && sid->type == REDIS_REPLY_STRING)
            last = sid->str;
        ar->scanned++;
        if (item == NULL)
            continue;
        if (json_array_size(ar->items) < (size_t)ar->limit && feed_match(ar, item))
            json_array_append_new(ar->items, item);
        else
            json_decref(item);
    }
    if (feed_filtered(ar) && json_array_size(ar->items) < (size_t)ar->limit && n == FEED_PAGE &&
        ar->scanned < FEED_SCAN_MAX && last != NULL &&
        id_before(last, ar->before, sizeof(ar->before)) == 0) {
        dash_query_reset(ar->q);
        feed_send(ar);
        return;
    }
    finish(ar, json_pack("{s:O}", "items", ar->items));
}

/* ---- /api/agents ------------------------------------------------------------------- */

struct agent_row {
    bool silent;
    int64_t last_seen;
    json_t *o;
};

static int cmp_agents(const void *x, const void *y)
{
    const struct agent_row *a = x, *b = y;

    if (a->silent != b->silent)
        return a->silent ? -1 : 1;
    if (a->last_seen != b->last_seen)
        return (a->last_seen < b->last_seen) == a->silent ? -1 : 1;
    return 0;
}

static void agents_send(struct api_req *ar)
{
    dash_query_cmd(ar->q, "ZRANGE tm:agents:lastseen 0 %d WITHSCORES", AGENTS_MAX - 1);
    dash_query_wait(ar->q);
}

static void agents_second(struct api_req *ar)
{
    const redisReply *z = ar->q->replies[0];

    ar->names = json_array();
    for (size_t i = 0; z != NULL && z->type == REDIS_REPLY_ARRAY && i + 1 < z->elements; i += 2) {
        const redisReply *m = z->element[i];
        if (m->type != REDIS_REPLY_STRING || strchr(m->str, '/') == NULL)
            continue;
        json_array_append_new(ar->names, json_pack("{s:s,s:I}", "member", m->str, "last_seen",
                                                   (json_int_t)reply_int(z->element[i + 1])));
    }
    dash_query_reset(ar->q);
    for (size_t i = 0; i < json_array_size(ar->names); i++) {
        const char *m = json_string_value(json_object_get(json_array_get(ar->names, i), "member"));
        const char *slash = strchr(m, '/');
        dash_query_cmd(ar->q, "HGETALL tm:agent:%b:%s", m, (size_t)(slash - m), slash + 1);
    }
    dash_query_wait(ar->q);
}

static const redisReply *hash_field(const redisReply *h, const char *name)
{
    for (size_t i = 0; h != NULL && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0)
            return h->element[i + 1];
    return NULL;
}

static void agents_done(struct api_req *ar)
{
    size_t n = json_array_size(ar->names);
    struct agent_row *rows = calloc(n + 1, sizeof(*rows));
    int64_t silent_ms = ar->a->d->cfg.silent_after_ms;
    json_t *list = json_array();

    if (rows == NULL) {
        json_decref(list);
        finish(ar, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(ar->names, i);
        const char *m = json_string_value(json_object_get(e, "member"));
        const char *slash = strchr(m, '/');
        const redisReply *h = ar->q->replies[i];
        int64_t seen = json_integer_value(json_object_get(e, "last_seen"));
        int64_t age = ar->now_ms - seen;

        rows[i].last_seen = seen;
        rows[i].silent = age > silent_ms;
        rows[i].o = json_pack(
            "{s:s%,s:s,s:b,s:I,s:I,s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:o}", "operator", m,
            (size_t)(slash - m), "agent", slash + 1, "silent", rows[i].silent, "last_seen",
            (json_int_t)seen, "age_s", (json_int_t)(age > 0 ? age / 1000 : 0), "sector",
            str_or_empty(hash_field(h, "sector")), "region", str_or_empty(hash_field(h, "region")),
            "version", str_or_empty(hash_field(h, "version")), "uptime_s",
            (json_int_t)reply_int(hash_field(h, "uptime_s")), "spool_events",
            (json_int_t)reply_int(hash_field(h, "spool_events")), "spool_bytes",
            (json_int_t)reply_int(hash_field(h, "spool_bytes")), "agent_lost",
            (json_int_t)reply_int(hash_field(h, "agent_lost")), "seq_lost",
            (json_int_t)reply_int(hash_field(h, "seq_lost")), "last_error",
            str_or_empty(hash_field(h, "last_error")));
    }
    qsort(rows, n, sizeof(*rows), cmp_agents);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, rows[i].o);
    free(rows);
    finish(ar, json_pack("{s:I,s:I,s:o}", "silent_after_ms", (json_int_t)silent_ms, "now_ms",
                         (json_int_t)ar->now_ms, "agents", list));
}

/* ---- /api/priorities --------------------------------------------------------------- */

static void priorities_send(struct api_req *ar)
{
    dash_query_cmd(ar->q, "ZREVRANGE tm:priorities 0 %d WITHSCORES", PRIORITIES_MAX - 1);
    dash_query_wait(ar->q);
}

static void priorities_second(struct api_req *ar)
{
    const redisReply *z = ar->q->replies[0];

    ar->names = json_array();
    for (size_t i = 0; z != NULL && z->type == REDIS_REPLY_ARRAY && i + 1 < z->elements; i += 2)
        if (z->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(ar->names, json_pack("{s:s,s:f}", "need", z->element[i]->str,
                                                       "score", reply_double(z->element[i + 1])));
    dash_query_reset(ar->q);
    for (size_t i = 0; i < json_array_size(ar->names); i++)
        dash_query_cmd(ar->q, "HGETALL tm:need:%s",
                       json_string_value(json_object_get(json_array_get(ar->names, i), "need")));
    dash_query_wait(ar->q);
}

static void priorities_done(struct api_req *ar)
{
    json_t *items = json_array();

    for (size_t i = 0; i < json_array_size(ar->names); i++) {
        json_t *item = json_deep_copy(json_array_get(ar->names, i));
        const redisReply *h = ar->q->replies[i];
        for (size_t j = 0; h != NULL && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements;
             j += 2) {
            const char *f = h->element[j]->str;
            if (f == NULL || strcmp(f, "need") == 0 || strcmp(f, "score") == 0)
                continue;
            json_object_set_new(item, f, str_or_empty(h->element[j + 1]));
        }
        json_array_append_new(items, item);
    }
    finish(ar, json_pack("{s:o}", "items", items));
}

/* ---- dispatch ---------------------------------------------------------------------- */

static void query_cb(struct dash_query *q, void *arg)
{
    struct api_req *ar = arg;

    (void)q;
    if (ar->q->failed) {
        fail(ar);
        return;
    }
    switch (ar->ep) {
    case EP_OVERVIEW:
        overview_done(ar);
        break;
    case EP_SECTOR:
        sector_done(ar);
        break;
    case EP_FEED:
        feed_done(ar);
        break;
    case EP_AGENTS:
        if (ar->names == NULL)
            agents_second(ar);
        else
            agents_done(ar);
        break;
    case EP_PRIORITIES:
        if (ar->names == NULL)
            priorities_second(ar);
        else
            priorities_done(ar);
        break;
    default:
        fail(ar);
        break;
    }
}

/* Parameters each endpoint takes. */
static bool known_param(enum dash_endpoint ep, const char *k)
{
    if (ep == EP_OVERVIEW || ep == EP_SECTOR)
        return strcmp(k, "range") == 0;
    if (ep == EP_FEED)
        return strcmp(k, "sector") == 0 || strcmp(k, "region") == 0 || strcmp(k, "category") == 0 ||
               strcmp(k, "min_severity") == 0 || strcmp(k, "limit") == 0;
    return false;
}

/* Checks and stores the query string. Returns 0, or -1 with the 400 reason in err. */
static int parse_params(struct api_req *ar, struct evhttp_request *req, char *err)
{
    const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq kv;
    struct evkeyval *p;
    int64_t n;
    int rc = -1;

    TAILQ_INIT(&kv);
    ar->range = RANGE_24H;
    ar->min_severity = 1;
    ar->limit = FEED_LIMIT_DEFAULT;
    if (qs == NULL || qs[0] == '\0')
        return 0;
    if (evhttp_parse_query_str(qs, &kv) != 0) {
        tm_err(err, "cannot parse the query string");
        goto out;
    }
    TAILQ_FOREACH(p, &kv, next)
    {
        const char *k = p->key, *v = p->value;
        for (struct evkeyval *q = TAILQ_FIRST(&kv); q != p; q = TAILQ_NEXT(q, next))
            if (strcmp(q->key, k) == 0) {
                tm_err(err, "parameter '%.40s' given twice", k);
                goto out;
            }
        if (!known_param(ar->ep, k)) {
            tm_err(err, "unknown parameter '%.40s'", k);
            goto out;
        }
        if (strcmp(k, "range") == 0) {
            size_t i;
            for (i = 0; i < TM_ARRAY_LEN(range_names); i++)
                if (strcmp(v, range_names[i]) == 0)
                    break;
            if (i == TM_ARRAY_LEN(range_names)) {
                tm_err(err, "range '%.40s': expected 24h, 7d or 30d", v);
                goto out;
            }
            ar->range = (enum range)i;
        } else if (strcmp(k, "sector") == 0) {
            if (tm_sector_find(v) == NULL) {
                tm_err(err, "sector '%.40s': not a sector id (docs/schema.md)", v);
                goto out;
            }
            tm_strlcpy(ar->f_sector, v, sizeof(ar->f_sector));
        } else if (strcmp(k, "region") == 0) {
            if (tm_region_find(v) == NULL) {
                tm_err(err, "region '%.40s': not an ISO 3166-2:UA code", v);
                goto out;
            }
            tm_strlcpy(ar->f_region, v, sizeof(ar->f_region));
        } else if (strcmp(k, "category") == 0) {
            if (tm_category_find(v) == NULL) {
                tm_err(err, "category '%.40s': not a category id (docs/schema.md)", v);
                goto out;
            }
            tm_strlcpy(ar->f_category, v, sizeof(ar->f_category));
        } else if (strcmp(k, "min_severity") == 0) {
            if (tm_parse_int64(v, 1, 10, &n) != 0) {
                tm_err(err, "min_severity '%.40s': expected an integer from 1 to 10", v);
                goto out;
            }
            ar->min_severity = (int)n;
        } else if (strcmp(k, "limit") == 0) {
            if (tm_parse_int64(v, 1, FEED_LIMIT_MAX, &n) != 0) {
                tm_err(err, "limit '%.40s': expected an integer from 1 to %d", v, FEED_LIMIT_MAX);
                goto out;
            }
            ar->limit = (int)n;
        }
    }
    rc = 0;
out:
    evhttp_clear_headers(&kv);
    return rc;
}

static void make_labels(struct api_req *ar)
{
    label_of(ar->now_ms, 'd', ar->day, sizeof(ar->day));
    if (ar->range == RANGE_24H) {
        ar->nlabels = 24;
        for (int i = 0; i < 24; i++)
            label_of(ar->now_ms - (int64_t)(23 - i) * HOUR_MS, 'h', ar->labels[i], LABEL_LEN);
    } else {
        ar->nlabels = ar->range == RANGE_7D ? 7 : 30;
        for (int i = 0; i < ar->nlabels; i++)
            label_of(ar->now_ms - (int64_t)(ar->nlabels - 1 - i) * DAY_MS, 'd', ar->labels[i],
                     LABEL_LEN);
    }
}

void dash_api_handle(struct dash_api *a, struct evhttp_request *req, enum dash_endpoint ep,
                     const char *sector_id, int64_t start_ms)
{
    struct dash *d = a->d;
    struct api_req *ar = calloc(1, sizeof(*ar));
    struct evhttp_connection *evcon;
    char err[TM_ERR_LEN];
    const char *cached;

    if (ar == NULL) {
        dash_reply_error(d, req, ep, 500, start_ms, "out of memory");
        return;
    }
    ar->a = a;
    ar->req = req;
    ar->ep = ep;
    ar->start_ms = start_ms;
    ar->now_ms = tm_time_now_ms();
    ar->sector = -1;
    tm_strlcpy(ar->before, "+", sizeof(ar->before));
    if (parse_params(ar, req, err) != 0) {
        dash_reply_error(d, req, ep, 400, start_ms, "%s", err);
        free(ar);
        return;
    }
    if (ep == EP_SECTOR && (ar->sector = tm_sector_index(sector_id)) < 0) {
        dash_reply_error(d, req, ep, 404, start_ms, "unknown sector '%.40s'", sector_id);
        free(ar);
        return;
    }
    if (!dash_redis_up(d->redis)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        dash_reply_error(d, req, ep, 503, start_ms, "redis unavailable: %s",
                         dash_redis_reason(d->redis));
        free(ar);
        return;
    }
    if (ep == EP_OVERVIEW)
        snprintf(ar->cache_key, sizeof(ar->cache_key), "overview:%s", range_names[ar->range]);
    else if (ep == EP_SECTOR)
        snprintf(ar->cache_key, sizeof(ar->cache_key), "sector:%s:%s", sector_id,
                 range_names[ar->range]);
    else if (ep == EP_FEED)
        snprintf(ar->cache_key, sizeof(ar->cache_key), "feed:%s:%s:%s:%d:%d", ar->f_sector,
                 ar->f_region, ar->f_category, ar->min_severity, ar->limit);
    if ((cached = cache_get(a, ar->cache_key)) != NULL) {
        dash_reply(d, req, ep, 200, "application/json; charset=utf-8", cached, strlen(cached),
                   start_ms);
        free(ar);
        return;
    }
    if (a->inflight >= d->cfg.max_inflight) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        dash_reply_error(d, req, ep, 503, start_ms, "busy: %lld requests wait for redis",
                         (long long)a->inflight);
        free(ar);
        return;
    }
    ar->q = dash_query_create(d->redis, query_cb, ar);
    ar->items = json_array();
    if (ar->q == NULL || ar->items == NULL) {
        dash_query_free(ar->q);
        json_decref(ar->items);
        dash_reply_error(d, req, ep, 500, start_ms, "out of memory");
        free(ar);
        return;
    }
    a->inflight++;
    tm_gauge_set(a->g_inflight, (double)a->inflight);
    ar->next = a->reqs;
    if (a->reqs != NULL)
        a->reqs->prev = ar;
    a->reqs = ar;
    evcon = evhttp_request_get_connection(req);
    if (evcon != NULL)
        evhttp_connection_set_closecb(evcon, gone_cb, ar);
    make_labels(ar);
    switch (ep) {
    case EP_OVERVIEW:
        overview_send(ar);
        break;
    case EP_SECTOR:
        sector_send(ar);
        break;
    case EP_FEED:
        feed_send(ar);
        break;
    case EP_AGENTS:
        agents_send(ar);
        break;
    default:
        priorities_send(ar);
        break;
    }
}

struct dash_api *dash_api_create(struct dash *d)
{
    struct dash_api *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    if (tm_sectors_count > VOCAB_MAX || tm_regions_count > VOCAB_MAX) {
        tm_log_error("api: %zu sectors and %zu regions; raise VOCAB_MAX (%d) in api.c",
                     tm_sectors_count, tm_regions_count, VOCAB_MAX);
        free(a);
        return NULL;
    }
    a->d = d;
    a->g_inflight = tm_metrics_gauge(d->metrics, "tm_dashboard_inflight_requests",
                                     "API requests waiting for Redis.", NULL);
    for (size_t s = 0; s < tm_sectors_count; s++)
        snprintf(a->sec_fields[s], sizeof(a->sec_fields[s]), "sec:%s", tm_sectors[s].id);
    return a;
}

void dash_api_destroy(struct dash_api *a)
{
    if (a == NULL)
        return;
    while (a->reqs != NULL) {
        struct api_req *ar = a->reqs;
        take_req(ar);
        req_free(ar);
    }
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        free(a->cache[i].text);
    free(a);
}
