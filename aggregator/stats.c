/*
 * stats.c - what one accepted event adds to Redis (key schema v1, docs/redis-keys.md),
 * as batch entries: window hashes per sector and nationally, per region and operator by
 * day, distinct sources (HyperLogLog), top sources (sorted sets), operators hit (sets),
 * each with its TTL. Also the decoder of tm.heartbeats messages.
 *
 * Window hashes count events: `events` (one per event) and `count` (the observations it
 * stands for), then `cat:{category}`, `sev:{band}`, `tech:{technique}`, `tac:{tactic}` in
 * events; national hashes add `sec:{sector}`. Which windows an event reaches was decided
 * at intake (window.c); the per-day sets follow the day window.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_tables.h"
#include "tm/tm_time.h"

#define KEY_MAX 192

static int64_t ttl_s(int64_t ms)
{
    return (ms + 999) / 1000;
}

/* The common fields of a window hash. */
static int put_hash(struct agg_batch *b, const char *key, const struct agg_event *e, int64_t ttl,
                    bool detail)
{
    char f[64];
    int rc = 0;

    rc |= agg_batch_put(b, AGG_K_EXPIRE, key, "", ttl, AGG_OP_MAX);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, "events", 1, AGG_OP_SUM);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, "count", e->count, AGG_OP_SUM);
    snprintf(f, sizeof(f), "cat:%s", e->category);
    rc |= agg_batch_put(b, AGG_K_HINCR, key, f, 1, AGG_OP_SUM);
    snprintf(f, sizeof(f), "sev:%s", tm_severity_band_name(tm_severity_band(e->severity)));
    rc |= agg_batch_put(b, AGG_K_HINCR, key, f, 1, AGG_OP_SUM);
    if (detail && e->technique[0] != '\0') {
        snprintf(f, sizeof(f), "tech:%s", e->technique);
        rc |= agg_batch_put(b, AGG_K_HINCR, key, f, 1, AGG_OP_SUM);
    }
    if (detail && e->tactic[0] != '\0') {
        snprintf(f, sizeof(f), "tac:%s", e->tactic);
        rc |= agg_batch_put(b, AGG_K_HINCR, key, f, 1, AGG_OP_SUM);
    }
    return rc != 0 ? -1 : 0;
}

static int put_member(struct agg_batch *b, char kind, const char *key, const char *member,
                      int64_t ttl)
{
    if (agg_batch_put(b, AGG_K_EXPIRE, key, "", ttl, AGG_OP_MAX) != 0 ||
        agg_batch_put(b, kind, key, member, 1, AGG_OP_SUM) != 0)
        return -1;
    return 0;
}

int agg_stats_event(struct agg_batch *b, const struct agg_config *cfg, const struct agg_event *e)
{
    const int64_t retain[AGG_RES_COUNT] = {cfg->retain_minute_ms, cfg->retain_hour_ms,
                                           cfg->retain_day_ms};
    char key[KEY_MAX], label[AGG_LABEL_LEN], day[AGG_LABEL_LEN], f[64];
    int64_t src_ttl = ttl_s(cfg->retain_sources_ms);
    int rc = 0;

    for (int r = 0; r < AGG_RES_COUNT; r++) {
        if (!(e->windows & (1u << r)))
            continue;
        if (agg_window_label(e->ts, (enum agg_res)r, label, sizeof(label)) != 0)
            return 0; /* outside years 0..9999: validation keeps these out */
        snprintf(key, sizeof(key), "tm:s:%s:%s:%s", e->sector, agg_res_name((enum agg_res)r),
                 label);
        rc |= put_hash(b, key, e, ttl_s(retain[r]), true);
        snprintf(key, sizeof(key), "tm:n:%s:%s", agg_res_name((enum agg_res)r), label);
        rc |= put_hash(b, key, e, ttl_s(retain[r]), true);
        snprintf(f, sizeof(f), "sec:%s", e->sector);
        rc |= agg_batch_put(b, AGG_K_HINCR, key, f, 1, AGG_OP_SUM);
    }
    if (!(e->windows & AGG_WIN_1D) || agg_window_label(e->ts, AGG_1D, day, sizeof(day)) != 0)
        return rc != 0 ? -1 : 0;
    if (e->region[0] != '\0') {
        snprintf(key, sizeof(key), "tm:r:%s:1d:%s", e->region, day);
        rc |= put_hash(b, key, e, ttl_s(cfg->retain_day_ms), false);
    }
    snprintf(key, sizeof(key), "tm:o:%s:1d:%s", e->operator_id, day);
    rc |= put_hash(b, key, e, ttl_s(cfg->retain_day_ms), false);
    snprintf(key, sizeof(key), "tm:s:%s:ops:1d:%s", e->sector, day);
    rc |= put_member(b, AGG_K_SADD, key, e->operator_id, src_ttl);
    if (e->src_ip[0] != '\0') {
        snprintf(key, sizeof(key), "tm:s:%s:src:1d:%s", e->sector, day);
        rc |= put_member(b, AGG_K_PFADD, key, e->src_ip, src_ttl);
        snprintf(key, sizeof(key), "tm:n:src:1d:%s", day);
        rc |= put_member(b, AGG_K_PFADD, key, e->src_ip, src_ttl);
        snprintf(key, sizeof(key), "tm:s:%s:top:1d:%s", e->sector, day);
        rc |= put_member(b, AGG_K_ZINCR, key, e->src_ip, src_ttl);
        snprintf(key, sizeof(key), "tm:n:top:1d:%s", day);
        rc |= put_member(b, AGG_K_ZINCR, key, e->src_ip, src_ttl);
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
