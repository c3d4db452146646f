/*
 * stats.c - what the accepted events of a flush add to Redis (key schema v1,
 * docs/redis-keys.md), as batch entries: window hashes per sector and nationally, per
 * region and operator by day, distinct sources (HyperLogLog), top sources (sorted sets),
 * operators hit (sets), each with its TTL. Also the decoder of tm.heartbeats messages.
 *
 * Window hashes count events: `events` (one per event) and `count` (the observations it
 * stands for), then `cat:{category}`, `sev:{band}`, `tech:{technique}`, `tac:{tactic}` in
 * events; national hashes add `sec:{sector}`. Which windows an event reaches was decided
 * at intake (window.c); the per-day sets follow the day window.
 *
 * Two steps, because a flush holds thousands of events and each reaches a few dozen
 * (key, field) pairs: agg_stats_add files an event under a handful of profiles, the
 * event's attributes that one group of keys sees (sector, minute, category, severity band,
 * technique, tactic and window mask for the sector and national window hashes; day, region
 * or operator, category and band for the region and operator hashes; day, sector and
 * operator for the operator sets; day, sector and source for the source sets), summing
 * events and counts per profile. agg_stats_emit then expands each profile once into the
 * batch. The result is the same as expanding every event (increments add up), at a
 * fraction of the hashing.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_tables.h"
#include "tm/tm_time.h"

#define KEY_MAX 192
#define DAY_LEN 8 /* "YYYYMMDD", the prefix of a minute label */

/* Profile kinds. */
#define P_WINDOWS 'W'  /* sector and national window hashes */
#define P_REGION 'R'   /* tm:r:{region}:1d */
#define P_OPERATOR 'O' /* tm:o:{operator}:1d */
#define P_OPS 'S'      /* tm:s:{sector}:ops:1d */
#define P_SOURCE 'I'   /* source sets of the sector and the nation */

/* Events that share what one group of keys sees; fields a kind does not use are "". */
struct profile {
    char kind;
    unsigned windows;
    char label[AGG_LABEL_LEN]; /* the minute ("W"), else the day */
    char sector[32], category[32], technique[16], tactic[40];
    char who[TM_EVENT_ID_MAX + 1]; /* region, operator or source address */
    const char *band;              /* severity band name (static), or "" */
    int64_t events, count;
};

struct agg_stats {
    struct agg_batch *index; /* profile name -> position in v */
    struct profile *v;
    size_t n, cap;
};

struct agg_stats *agg_stats_create(void)
{
    struct agg_stats *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->index = agg_batch_create();
    if (s->index == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void agg_stats_destroy(struct agg_stats *s)
{
    if (s == NULL)
        return;
    agg_batch_destroy(s->index);
    free(s->v);
    free(s);
}

void agg_stats_clear(struct agg_stats *s)
{
    agg_batch_clear(s->index);
    s->n = 0;
}

static int64_t ttl_s(int64_t ms)
{
    return (ms + 999) / 1000;
}

/*
 * Joins the parts (up to a NULL) into out (size bytes) and returns out. Keys, fields and
 * profile names are built this way rather than with snprintf. Parts are the event's
 * bounded fields, so the sum fits; a longer one would be cut.
 */
static const char *join(char *out, size_t size, ...)
{
    va_list ap;
    const char *part;
    size_t n = 0;

    va_start(ap, size);
    while ((part = va_arg(ap, const char *)) != NULL) {
        size_t l = strlen(part);
        if (l > size - 1 - n)
            l = size - 1 - n;
        memcpy(out + n, part, l);
        n += l;
    }
    va_end(ap);
    out[n] = '\0';
    return out;
}

/* Adds one event (events 1, count) to the profile p describes. Returns 0 or -1. */
static int file(struct agg_stats *s, const struct profile *p, int64_t count)
{
    /* '\x1e' cannot occur in the fields: they are validated ids and vocabulary words */
    char name[KEY_MAX * 2], mask[2] = {(char)('0' + p->windows), '\0'};
    int64_t at;
    int rc;

    join(name, sizeof(name), mask, "\x1e", p->label, "\x1e", p->sector, "\x1e", p->category, "\x1e",
         p->technique, "\x1e", p->tactic, "\x1e", p->who, "\x1e", p->band, NULL);
    rc = agg_batch_insert(s->index, p->kind, name, "", (int64_t)s->n, &at);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        if (s->n == s->cap) {
            size_t cap = s->cap == 0 ? 256 : s->cap * 2;
            struct profile *v = realloc(s->v, cap * sizeof(*v));
            if (v == NULL)
                return -1; /* the index names a slot that does not exist: callers clear */
            s->v = v;
            s->cap = cap;
        }
        at = (int64_t)s->n++;
        s->v[at] = *p;
        s->v[at].events = s->v[at].count = 0;
    }
    s->v[at].events++;
    s->v[at].count += count;
    return 0;
}

int agg_stats_add(struct agg_stats *s, const struct agg_event *e)
{
    struct profile p;
    int rc = 0;

    if (e->windows == 0)
        return 0;
    memset(&p, 0, sizeof(p));
    if (agg_window_label(e->ts, AGG_1M, p.label, sizeof(p.label)) != 0)
        return 0; /* outside years 0..9999: validation keeps these out */
    p.kind = P_WINDOWS;
    p.windows = e->windows;
    tm_strlcpy(p.sector, e->sector, sizeof(p.sector));
    tm_strlcpy(p.category, e->category, sizeof(p.category));
    tm_strlcpy(p.technique, e->technique, sizeof(p.technique));
    tm_strlcpy(p.tactic, e->tactic, sizeof(p.tactic));
    p.band = tm_severity_band_name(tm_severity_band(e->severity));
    rc |= file(s, &p, e->count);
    if (!(e->windows & AGG_WIN_1D))
        return rc != 0 ? -1 : 0;
    /* The per-day profiles: the day label, no window mask, no technique or tactic. */
    p.label[DAY_LEN] = '\0';
    p.windows = 0;
    p.technique[0] = p.tactic[0] = '\0';
    if (e->region[0] != '\0') {
        p.kind = P_REGION;
        tm_strlcpy(p.who, e->region, sizeof(p.who));
        rc |= file(s, &p, e->count);
    }
    p.kind = P_OPERATOR;
    tm_strlcpy(p.who, e->operator_id, sizeof(p.who));
    rc |= file(s, &p, e->count);
    p.category[0] = '\0';
    p.band = "";
    p.kind = P_OPS;
    rc |= file(s, &p, 0);
    if (e->src_ip[0] != '\0') {
        p.kind = P_SOURCE;
        tm_strlcpy(p.who, e->src_ip, sizeof(p.who));
        rc |= file(s, &p, 0);
    }
    return rc != 0 ? -1 : 0;
}

/* The window-hash increments of a profile under key. */
static int put_hash(struct agg_batch *b, const char *key, const struct profile *p, int64_t ttl,
                    bool detail)
{
    char f[64];
    int rc = 0;

    rc |= agg_batch_put(b, AGG_K_EXPIRE, key, "", ttl, AGG_OP_MAX);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, "events", p->events, AGG_OP_SUM);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, "count", p->count, AGG_OP_SUM);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, join(f, sizeof(f), "cat:", p->category, NULL),
                        p->events, AGG_OP_SUM);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, join(f, sizeof(f), "sev:", p->band, NULL), p->events,
                        AGG_OP_SUM);
    if (detail && p->technique[0] != '\0')
        rc |= agg_batch_put(b, AGG_K_HINCR, key, join(f, sizeof(f), "tech:", p->technique, NULL),
                            p->events, AGG_OP_SUM);
    if (detail && p->tactic[0] != '\0')
        rc |= agg_batch_put(b, AGG_K_HINCR, key, join(f, sizeof(f), "tac:", p->tactic, NULL),
                            p->events, AGG_OP_SUM);
    return rc != 0 ? -1 : 0;
}

static int put_member(struct agg_batch *b, char kind, const char *key, const char *member,
                      int64_t v, int64_t ttl)
{
    if (agg_batch_put(b, AGG_K_EXPIRE, key, "", ttl, AGG_OP_MAX) != 0 ||
        agg_batch_put(b, kind, key, member, v, AGG_OP_SUM) != 0)
        return -1;
    return 0;
}

/* The sector and national window hashes of a P_WINDOWS profile. */
static int emit_windows(struct agg_batch *b, const struct agg_config *cfg, const struct profile *p)
{
    const int64_t retain[AGG_RES_COUNT] = {cfg->retain_minute_ms, cfg->retain_hour_ms,
                                           cfg->retain_day_ms};
    /* labels are prefixes of the minute's: "YYYYMMDD" "HH" "MM" */
    static const size_t label_len[AGG_RES_COUNT] = {12, 10, 8};
    char key[KEY_MAX], label[AGG_LABEL_LEN], f[64];
    int rc = 0;

    for (int r = 0; r < AGG_RES_COUNT; r++) {
        const char *res = agg_res_name((enum agg_res)r);
        if (!(p->windows & (1u << r)))
            continue;
        memcpy(label, p->label, label_len[r]);
        label[label_len[r]] = '\0';
        join(key, sizeof(key), "tm:s:", p->sector, ":", res, ":", label, NULL);
        rc |= put_hash(b, key, p, ttl_s(retain[r]), true);
        join(key, sizeof(key), "tm:n:", res, ":", label, NULL);
        rc |= put_hash(b, key, p, ttl_s(retain[r]), true);
        rc |= agg_batch_put(b, AGG_K_HINCR, key, join(f, sizeof(f), "sec:", p->sector, NULL),
                            p->events, AGG_OP_SUM);
    }
    return rc;
}

int agg_stats_emit(const struct agg_stats *s, struct agg_batch *b, const struct agg_config *cfg)
{
    char key[KEY_MAX];
    int64_t day_ttl = ttl_s(cfg->retain_day_ms), src_ttl = ttl_s(cfg->retain_sources_ms);
    int rc = 0;

    for (size_t i = 0; i < s->n && rc == 0; i++) {
        const struct profile *p = &s->v[i];
        switch (p->kind) {
        case P_WINDOWS:
            rc |= emit_windows(b, cfg, p);
            break;
        case P_REGION:
            join(key, sizeof(key), "tm:r:", p->who, ":1d:", p->label, NULL);
            rc |= put_hash(b, key, p, day_ttl, false);
            break;
        case P_OPERATOR:
            join(key, sizeof(key), "tm:o:", p->who, ":1d:", p->label, NULL);
            rc |= put_hash(b, key, p, day_ttl, false);
            break;
        case P_OPS:
            join(key, sizeof(key), "tm:s:", p->sector, ":ops:1d:", p->label, NULL);
            rc |= put_member(b, AGG_K_SADD, key, p->who, p->events, src_ttl);
            break;
        default: /* P_SOURCE */
            join(key, sizeof(key), "tm:s:", p->sector, ":src:1d:", p->label, NULL);
            rc |= put_member(b, AGG_K_PFADD, key, p->who, p->events, src_ttl);
            join(key, sizeof(key), "tm:n:src:1d:", p->label, NULL);
            rc |= put_member(b, AGG_K_PFADD, key, p->who, p->events, src_ttl);
            join(key, sizeof(key), "tm:s:", p->sector, ":top:1d:", p->label, NULL);
            rc |= put_member(b, AGG_K_ZINCR, key, p->who, p->events, src_ttl);
            join(key, sizeof(key), "tm:n:top:1d:", p->label, NULL);
            rc |= put_member(b, AGG_K_ZINCR, key, p->who, p->events, src_ttl);
            break;
        }
    }
    return rc != 0 ? -1 : 0;
}

static int get_str(json_t *o, const char *name, char *out, size_t len, bool required, char *err)
{
    json_t *v = json_object_get(o, name);

    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return required ? tm_err(err, "field '%s' is missing", name) : 0;
    if (!json_is_string(v))
        return tm_err(err, "field '%s': must be a string", name);
    if (tm_strlcpy(out, json_string_value(v), len) != 0)
        return tm_err(err, "field '%s': longer than %zu bytes", name, len - 1);
    return 0;
}

static int get_int(json_t *o, const char *name, int64_t *out, bool required, char *err)
{
    json_t *v = json_object_get(o, name);

    *out = -1;
    if (v == NULL || json_is_null(v))
        return required ? tm_err(err, "field '%s' is missing", name) : 0;
    if (!json_is_integer(v))
        return tm_err(err, "field '%s': must be an integer", name);
    *out = json_integer_value(v);
    return 0;
}

static int get_time(json_t *o, const char *name, int64_t *out, bool required, char *err)
{
    char s[64];

    *out = -1;
    if (get_str(o, name, s, sizeof(s), required, err) != 0)
        return -1;
    if (s[0] != '\0' && tm_time_parse(s, strlen(s), out) != 0)
        return tm_err(err, "field '%s': not an RFC 3339 time", name);
    return 0;
}

int agg_heartbeat_decode(struct agg_heartbeat *hb, const char *json, size_t len, char *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    char type[32];
    int rc = -1;

    memset(hb, 0, sizeof(*hb));
    if (root == NULL || !json_is_object(root)) {
        tm_err(err, "not a JSON object");
        goto out;
    }
    if (get_str(root, "type", type, sizeof(type), true, err) != 0)
        goto out;
    if (strcmp(type, "tm.heartbeat") != 0) {
        tm_err(err, "field 'type': expected 'tm.heartbeat'");
        goto out;
    }
    if (get_str(root, "agent", hb->agent, sizeof(hb->agent), true, err) != 0 ||
        get_str(root, "operator", hb->operator_id, sizeof(hb->operator_id), true, err) != 0 ||
        get_str(root, "sector", hb->sector, sizeof(hb->sector), false, err) != 0 ||
        get_str(root, "region", hb->region, sizeof(hb->region), false, err) != 0 ||
        get_str(root, "version", hb->version, sizeof(hb->version), false, err) != 0 ||
        get_str(root, "last_error", hb->last_error, sizeof(hb->last_error), false, err) != 0 ||
        get_time(root, "received", &hb->received, true, err) != 0 ||
        get_time(root, "ts", &hb->ts, false, err) != 0 ||
        get_int(root, "next_seq", &hb->next_seq, true, err) != 0 ||
        get_int(root, "uptime_s", &hb->uptime_s, false, err) != 0 ||
        get_int(root, "spool_events", &hb->spool_events, false, err) != 0 ||
        get_int(root, "spool_bytes", &hb->spool_bytes, false, err) != 0 ||
        get_int(root, "lost_events", &hb->lost_events, false, err) != 0)
        goto out;
    if (hb->agent[0] == '\0' || hb->operator_id[0] == '\0' || strpbrk(hb->agent, "/ ") != NULL ||
        strpbrk(hb->operator_id, "/ ") != NULL) {
        tm_err(err, "empty or malformed 'agent' or 'operator'");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}
