/*
 * cmd_priorities.c - `tmctl priorities`: the score of every open need from the incidents
 * tied to it, and the keys the dashboard reads.
 *
 * Inputs, read in one pipeline: for each sector with an open need the 30 day hashes
 * tm:s:{sector}:1d:{D-29 .. D} and its trend hash; for each operator named by an open
 * need its day hashes tm:o:{operator}:1d:{...}. Per need and day, the events tied to the
 * need's category are max(sum of mapped cat: fields, sum of mapped tech: fields): both
 * count the same events from two sides, so the larger is a lower bound of their union and
 * never counts an event twice. score.c does the arithmetic.
 *
 * Outputs, in one MULTI/EXEC (docs/redis-keys.md): tm:priorities (open needs by score),
 * tm:priorities:sector and tm:priorities:operator (sums), tm:prio:{id} (every input and
 * factor of one need) and tm:priorities:meta. "D" is the UTC day of --now (or the clock),
 * so a report can be reproduced for a given day.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define FORMULA "P = round2(10 x w x T x A x ln(1 + E))"

/* A scope's day hashes: replies[d] is HGETALL of day D - d. */
struct scope {
    char key[CTL_ID_MAX + 16]; /* "s:energy" or "o:op-1" */
    redisReply *days[CTL_DAYS];
    redisReply *trend; /* sectors: HMGET day z */
};

struct scopes {
    struct scope *v;
    size_t n, cap;
};

static struct scope *scope_get(struct scopes *s, const char *kind, const char *id, bool add)
{
    char key[sizeof(s->v[0].key)];

    snprintf(key, sizeof(key), "%s:%s", kind, id);
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].key, key) == 0)
            return &s->v[i];
    if (!add)
        return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct scope *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    memset(&s->v[s->n], 0, sizeof(s->v[0]));
    tm_strlcpy(s->v[s->n].key, key, sizeof(s->v[0].key));
    return &s->v[s->n++];
}

static void scopes_free(struct scopes *s)
{
    for (size_t i = 0; i < s->n; i++) {
        for (int d = 0; d < CTL_DAYS; d++)
            if (s->v[i].days[d] != NULL)
                freeReplyObject(s->v[i].days[d]);
        if (s->v[i].trend != NULL)
            freeReplyObject(s->v[i].trend);
    }
    free(s->v);
}

/* "20261123" of a day number. */
static void day_label(int64_t day, char out[9])
{
    char d[11];

    ctl_day_format(day, d);
    memcpy(out, d, 4);
    memcpy(out + 4, d + 5, 2);
    memcpy(out + 6, d + 8, 2);
    out[8] = '\0';
}

static int64_t field_int(const char *v)
{
    int64_t x = 0;

    if (v == NULL || tm_parse_int64(v, 0, INT64_MAX, &x) != 0)
        return 0;
    return x;
}

/*
 * One day of a scope for need category cat: events, bands, tied events; with detail,
 * also the contributing fields as a JSON object.
 */
static void day_of(const redisReply *r, const struct ctl_mapping *m, int cat, struct ctl_day *d,
                   json_t *detail)
{
    int64_t by_cat = 0, by_tech = 0;

    memset(d, 0, sizeof(*d));
    for (size_t i = 0; r != NULL && i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        bool tech;
        uint16_t set;
        if (f == NULL || v == NULL)
            continue;
        if (strcmp(f, "events") == 0) {
            d->events = field_int(v);
            continue;
        }
        if (strncmp(f, "sev:", 4) == 0) {
            for (int b = 0; b < 4; b++)
                if (strcmp(f + 4, tm_severity_band_name((enum tm_severity_band)b)) == 0)
                    d->band[b] = field_int(v);
            continue;
        }
        set = ctl_mapping_field(m, f, &tech);
        if (!(set & (1u << cat)))
            continue;
        if (tech)
            by_tech += field_int(v);
        else
            by_cat += field_int(v);
        if (detail != NULL)
            json_object_set_new(detail, f, json_integer(field_int(v)));
    }
    d->tied = by_cat > by_tech ? by_cat : by_tech;
}

/* Volume of a scope for need category cat; with explain, the days with tied events. */
static void volume_of(const struct scope *s, const struct ctl_mapping *m, int cat, int64_t today,
                      struct ctl_volume *v, json_t *explain)
{
    struct ctl_day days[CTL_DAYS];
    json_t *list = explain != NULL ? json_array() : NULL;

    for (int d = 0; d < CTL_DAYS; d++) {
        json_t *detail = list != NULL ? json_object() : NULL;
        day_of(s->days[d], m, cat, &days[d], detail);
        if (list != NULL && days[d].tied > 0 && days[d].events > 0) {
            char date[11];
            int64_t weighted = 0;
            for (int b = 0; b < 4; b++)
                weighted += days[d].band[b] * ctl_band_weight(b);
            ctl_day_format(today - d, date);
            json_array_append_new(
                list, json_pack("{s:s, s:I, s:{s:I, s:I, s:I, s:I}, s:f, s:I, s:o, s:f}", "day",
                                date, "events", (json_int_t)days[d].events, "bands", "low",
                                (json_int_t)days[d].band[0], "medium", (json_int_t)days[d].band[1],
                                "high", (json_int_t)days[d].band[2], "critical",
                                (json_int_t)days[d].band[3], "m", (double)weighted / days[d].events,
                                "tied", (json_int_t)days[d].tied, "fields", detail, "weighted",
                                (double)days[d].tied * (double)weighted / (double)days[d].events));
        } else {
            json_decref(detail);
        }
    }
    ctl_score_volume(days, v);
    if (explain != NULL) {
        json_object_set_new(explain, "scope", json_string(s->key));
        json_object_set_new(explain, "tied_7d", json_integer(v->tied7));
        json_object_set_new(explain, "tied_30d", json_integer(v->tied30));
        json_object_set_new(explain, "v7", json_real(v->v7));
        json_object_set_new(explain, "v30", json_real(v->v30));
        json_object_set_new(explain, "e", json_real(v->e));
        json_object_set_new(explain, "days", list);
    }
}

static const char *trend_field(const struct scope *s, size_t i)
{
    if (s->trend == NULL || s->trend->type != REDIS_REPLY_ARRAY || s->trend->elements <= i ||
        s->trend->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return s->trend->element[i]->str;
}

/* Fetches every scope's day hashes and trends in one pipeline. */
static int fetch(struct ctl *c, struct scopes *sc, char *err)
{
    size_t sent = 0, got = 0;

    for (size_t i = 0; i < sc->n; i++) {
        char key[160], label[9];
        for (int d = 0; d < CTL_DAYS; d++) {
            day_label(c->today - d, label);
            snprintf(key, sizeof(key), "tm:%s:1d:%s", sc->v[i].key, label);
            if (redisAppendCommand(c->redis, "HGETALL %s", key) != REDIS_OK)
                return tm_err(err, "out of memory");
            sent++;
        }
        if (sc->v[i].key[0] == 's') {
            snprintf(key, sizeof(key), "tm:%s:trend", sc->v[i].key);
            if (redisAppendCommand(c->redis, "HMGET %s day z", key) != REDIS_OK)
                return tm_err(err, "out of memory");
            sent++;
        }
    }
    for (size_t i = 0; i < sc->n; i++) {
        int last = sc->v[i].key[0] == 's' ? CTL_DAYS + 1 : CTL_DAYS;
        for (int d = 0; d < last; d++) {
            redisReply *r = ctl_redis_reply(c, err);
            if (r == NULL)
                return -1; /* the connection is out of step now: the command ends */
            got++;
            if (d < CTL_DAYS)
                sc->v[i].days[d] = r;
            else
                sc->v[i].trend = r;
        }
    }
    return got == sent ? 0 : -1;
}

/* z of a sector's trend when its day is D or D-1; 0 otherwise (stale or absent). */
static double trend_z(const struct scope *s, int64_t today, json_t *explain)
{
    const char *day = trend_field(s, 0), *zs = trend_field(s, 1);
    double z = 0;
    bool fresh = false;

    if (day != NULL && zs != NULL && strlen(day) == 8) {
        char iso[11];
        int64_t d;
        snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2s", day, day + 4, day + 6);
        if (ctl_day_parse(iso, &d) == 0 && d <= today && d >= today - 1) {
            char *end;
            z = strtod(zs, &end);
            fresh = *end == '\0' && isfinite(z);
            if (!fresh)
                z = 0;
        }
    }
    if (explain != NULL) {
        json_object_set_new(explain, "day", day != NULL ? json_string(day) : json_null());
        json_object_set_new(explain, "z_stored", zs != NULL ? json_string(zs) : json_null());
        json_object_set_new(explain, "fresh", json_boolean(fresh));
        json_object_set_new(explain, "z", json_real(z));
    }
    return z;
}

static int zadd_sums(struct ctl *c, const char *key, json_t *sums, size_t *queued, char *err)
{
    const char *k;
    json_t *v;

    if (redisAppendCommand(c->redis, "DEL %s", key) != REDIS_OK)
        return tm_err(err, "out of memory");
    (*queued)++;
    json_object_foreach(sums, k, v)
    {
        char score[32];
        snprintf(score, sizeof(score), "%.2f", json_real_value(json_object_get(v, "priority")));
        if (redisAppendCommand(c->redis, "ZADD %s %s %s", key, score, k) != REDIS_OK)
            return tm_err(err, "out of memory");
        (*queued)++;
    }
    return 0;
}

static void sum_into(json_t *sums, const char *key, double p)
{
    json_t *o = json_object_get(sums, key);

    if (o == NULL) {
        o = json_pack("{s:f, s:i}", "priority", 0.0, "needs", 0);
        json_object_set_new(sums, key, o);
    }
    json_object_set_new(o, "priority",
                        json_real(ctl_round2(json_real_value(json_object_get(o, "priority")) + p)));
    json_object_set_new(o, "needs",
                        json_integer(json_integer_value(json_object_get(o, "needs")) + 1));
}

/* One MULTI/EXEC with every key of the ranking. */
static int store(struct ctl *c, const struct ctl_need *needs, size_t n, json_t *items,
                 json_t *sectors, json_t *operators, char *err)
{
    char now[TM_TIME_LEN], day[11], open_n[24];
    size_t queued = 0, idx;
    json_t *it;

    tm_time_format(c->now_ms, now, sizeof(now));
    ctl_day_format(c->today, day);
    if (redisAppendCommand(c->redis, "MULTI") != REDIS_OK ||
        redisAppendCommand(c->redis, "DEL tm:priorities") != REDIS_OK)
        return tm_err(err, "out of memory");
    queued++;
    for (size_t i = 0; i < n; i++) {
        if (redisAppendCommand(c->redis, "DEL tm:prio:%s", needs[i].id) != REDIS_OK)
            return tm_err(err, "out of memory");
        queued++;
    }
    json_array_foreach(items, idx, it)
    {
        const char *id = json_string_value(json_object_get(it, "need"));
        json_t *ev = json_object_get(it, "evidence");
        json_t *sec = json_object_get(ev, "sector"), *op = json_object_get(ev, "operator");
        json_t *tr = json_object_get(it, "trend");
        char p[32], rank[24], e[32], v7s[32], v30s[32], v7o[32], v30o[32], z[32], t[32], w[24],
            age[24], a[32];
        snprintf(p, sizeof(p), "%.2f", json_real_value(json_object_get(it, "priority")));
        snprintf(rank, sizeof(rank), "%zu", idx + 1);
        snprintf(e, sizeof(e), "%.4f", json_real_value(json_object_get(ev, "e")));
        snprintf(v7s, sizeof(v7s), "%.4f", json_real_value(json_object_get(sec, "v7")));
        snprintf(v30s, sizeof(v30s), "%.4f", json_real_value(json_object_get(sec, "v30")));
        snprintf(v7o, sizeof(v7o), "%.4f", op ? json_real_value(json_object_get(op, "v7")) : 0);
        snprintf(v30o, sizeof(v30o), "%.4f", op ? json_real_value(json_object_get(op, "v30")) : 0);
        snprintf(z, sizeof(z), "%.4f", json_real_value(json_object_get(tr, "z")));
        snprintf(t, sizeof(t), "%.4f", json_real_value(json_object_get(tr, "t")));
        snprintf(w, sizeof(w), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(it, "weight")));
        snprintf(age, sizeof(age), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(it, "days_open")));
        snprintf(a, sizeof(a), "%.4f", json_real_value(json_object_get(it, "a")));
        if (redisAppendCommand(c->redis, "ZADD tm:priorities %s %s", p, id) != REDIS_OK ||
            redisAppendCommand(c->redis,
                               "HSET tm:prio:%s priority %s rank %s e %s v7_sector %s "
                               "v30_sector %s v7_operator %s v30_operator %s z %s t %s w %s "
                               "days_open %s a %s day %s computed_at %s",
                               id, p, rank, e, v7s, v30s, v7o, v30o, z, t, w, age, a, day,
                               now) != REDIS_OK)
            return tm_err(err, "out of memory");
        queued += 2;
    }
    if (zadd_sums(c, "tm:priorities:sector", sectors, &queued, err) != 0 ||
        zadd_sums(c, "tm:priorities:operator", operators, &queued, err) != 0)
        return -1;
    snprintf(open_n, sizeof(open_n), "%zu", json_array_size(items));
    if (redisAppendCommand(c->redis,
                           "HSET tm:priorities:meta computed_at %s day %s open_needs %s "
                           "formula %s",
                           now, day, open_n, FORMULA) != REDIS_OK ||
        redisAppendCommand(c->redis, "EXEC") != REDIS_OK)
        return tm_err(err, "out of memory");
    queued++;
    /* MULTI's +OK, a +QUEUED per command, then EXEC's array (nil: aborted) */
    for (size_t i = 0; i < queued + 2; i++) {
        redisReply *r = ctl_redis_reply(c, err);
        bool aborted = r != NULL && i == queued + 1 && r->type != REDIS_REPLY_ARRAY;
        if (r == NULL)
            return -1;
        freeReplyObject(r);
        if (aborted)
            return tm_err(err, "redis: transaction aborted");
    }
    return 0;
}

static int cmp_items(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    double px = json_real_value(json_object_get(x, "priority"));
    double py = json_real_value(json_object_get(y, "priority"));

    if (px != py)
        return px > py ? -1 : 1;
    /* equal scores: the longer-open need first, then by id */
    if (json_integer_value(json_object_get(x, "days_open")) !=
        json_integer_value(json_object_get(y, "days_open")))
        return json_integer_value(json_object_get(x, "days_open")) >
                       json_integer_value(json_object_get(y, "days_open"))
                   ? -1
                   : 1;
    return strverscmp(json_string_value(json_object_get(x, "need")),
                      json_string_value(json_object_get(y, "need")));
}

/*
 * The ranking as JSON: {"items": [...], "sectors": {...}, "operators": {...}}, items
 * sorted. Fills needs[i].priority.
 */
static json_t *rank(struct ctl *c, struct ctl_need *needs, size_t n, struct scopes *sc,
                    bool explain)
{
    const struct ctl_score_params params = {c->cfg.sector_share_pct, c->cfg.age_full_days};
    json_t *out = json_object(), *items = json_array();
    json_t *sectors = json_object(), *operators = json_object();
    json_t **sorted = NULL;
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        struct ctl_need *nd = &needs[i];
        struct scope *ss, *os = NULL;
        struct ctl_score_in in = {0};
        struct ctl_score sco;
        json_t *ev_s = json_object(), *ev_o = NULL, *tr = json_object(), *item;
        char opened[11];
        int si = tm_sector_index(nd->sector);

        nd->priority = 0;
        if (nd->status != CTL_NEED_OPEN) {
            json_decref(ev_s);
            json_decref(tr);
            continue;
        }
        ss = scope_get(sc, "s", nd->sector, false);
        volume_of(ss, &c->cfg.mapping, nd->category, c->today, &in.sector, ev_s);
        if (!explain)
            json_object_del(ev_s, "days");
        if (nd->operator_id[0] != '\0') {
            os = scope_get(sc, "o", nd->operator_id, false);
            ev_o = json_object();
            volume_of(os, &c->cfg.mapping, nd->category, c->today, &in.op, ev_o);
            if (!explain)
                json_object_del(ev_o, "days");
            in.has_op = true;
        }
        in.z = trend_z(ss, c->today, tr);
        in.weight = si >= 0 && si < 32 ? c->cfg.weights[si] : 1;
        in.age_days = c->today - nd->opened;
        ctl_score_compute(&in, &params, &sco);
        nd->priority = sco.priority;
        json_object_set_new(tr, "t", json_real(sco.t));
        ctl_day_format(nd->opened, opened);
        item = json_pack("{s:s, s:f, s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "need", nd->id,
                         "priority", sco.priority, "sector", nd->sector, "operator",
                         nd->operator_id, "region", nd->region, "category",
                         tm_need_categories[nd->category], "cost", (json_int_t)nd->cost, "opened",
                         opened, "days_open", (json_int_t)(in.age_days > 0 ? in.age_days : 0));
        json_object_set_new(item, "description", json_string(nd->description));
        json_object_set_new(
            item, "evidence",
            json_pack("{s:f, s:o, s:o*}", "e", sco.e, "sector", ev_s, "operator", ev_o));
        json_object_set_new(item, "trend", tr);
        json_object_set_new(item, "weight", json_integer(in.weight));
        json_object_set_new(item, "a", json_real(sco.a));
        if (explain) {
            char tied[256];
            ctl_mapping_describe(&c->cfg.mapping, nd->category, tied, sizeof(tied));
            json_object_set_new(item, "tied_to", json_string(tied));
        }
        json_array_append_new(items, item);
        sum_into(sectors, nd->sector, sco.priority);
        if (nd->operator_id[0] != '\0')
            sum_into(operators, nd->operator_id, sco.priority);
    }
    k = json_array_size(items);
    sorted = calloc(k + 1, sizeof(*sorted));
    if (sorted != NULL) {
        json_t *s2 = json_array();
        for (size_t i = 0; i < k; i++)
            sorted[i] = json_array_get(items, i);
        qsort(sorted, k, sizeof(*sorted), cmp_items);
        for (size_t i = 0; i < k; i++) {
            json_object_set_new(sorted[i], "rank", json_integer((json_int_t)i + 1));
            json_array_append(s2, sorted[i]);
        }
        json_decref(items);
        items = s2;
        free(sorted);
    }
    json_object_set_new(out, "items", items);
    json_object_set_new(out, "sectors", sectors);
    json_object_set_new(out, "operators", operators);
    return out;
}

/* The ranking JSON of refresh: needs' priorities set, keys stored. NULL on error. */
static json_t *refresh(struct ctl *c, struct ctl_need *needs, size_t n, bool explain, char *err)
{
    struct scopes sc = {0};
    json_t *res = NULL;

    for (size_t i = 0; i < n; i++) {
        if (needs[i].status != CTL_NEED_OPEN)
            continue;
        if (scope_get(&sc, "s", needs[i].sector, true) == NULL ||
            (needs[i].operator_id[0] != '\0' &&
             scope_get(&sc, "o", needs[i].operator_id, true) == NULL)) {
            tm_err(err, "out of memory");
            goto out;
        }
    }
    if (fetch(c, &sc, err) != 0)
        goto out;
    res = rank(c, needs, n, &sc, explain);
    if (store(c, needs, n, json_object_get(res, "items"), json_object_get(res, "sectors"),
              json_object_get(res, "operators"), err) != 0) {
        json_decref(res);
        res = NULL;
    }
out:
    scopes_free(&sc);
    return res;
}

int ctl_priorities_refresh(struct ctl *c, struct ctl_need *needs, size_t n, json_t **explain,
                           char *err)
{
    json_t *res = refresh(c, needs, n, explain != NULL, err);

    if (res == NULL)
        return -1;
    if (explain != NULL)
        *explain = res;
    else
        json_decref(res);
    return 0;
}

/* ---- output ------------------------------------------------------------------------- */

static bool wanted(json_t *item, const char *sector)
{
    return sector == NULL ||
           strcmp(json_string_value(json_object_get(item, "sector")), sector) == 0;
}

static void print_formula(struct ctl *c)
{
    fprintf(c->out,
            "formula (docs/planners.md):\n"
            "  m_d = (1 low + 2 medium + 5 high + 10 critical) / events      mean severity "
            "weight of day d\n"
            "  t_d = max(sum of mapped cat: fields, sum of mapped tech: fields)  events tied to "
            "the need\n"
            "  V7  = sum over D-6..D of t_d m_d;  V30 = sum over D-29..D\n"
            "  E   = V7 + 7/30 V30   (operator needs: E_operator + %" PRId64 "%% of E_sector)\n"
            "  T   = 1 + min(max(z, 0), 6) / 6   (z of tm:s:{sector}:trend when its day is D or "
            "D-1, else 0)\n"
            "  w   = [risk] weight of the sector (default: its criticality, docs/schema.md)\n"
            "  A   = 1 + min(days open, %" PRId64 ") / %" PRId64 "\n"
            "  " FORMULA "\n",
            c->cfg.sector_share_pct, c->cfg.age_full_days, c->cfg.age_full_days);
}

static void print_scope(struct ctl *c, const char *title, json_t *ev)
{
    size_t i;
    json_t *d;

    fprintf(c->out,
            "  %s %s: tied 7d %" JSON_INTEGER_FORMAT ", 30d %" JSON_INTEGER_FORMAT
            "; V7 = %.4f, V30 = %.4f, E = V7 + 7/30 V30 = %.4f\n",
            title, json_string_value(json_object_get(ev, "scope")) + 2,
            json_integer_value(json_object_get(ev, "tied_7d")),
            json_integer_value(json_object_get(ev, "tied_30d")),
            json_real_value(json_object_get(ev, "v7")), json_real_value(json_object_get(ev, "v30")),
            json_real_value(json_object_get(ev, "e")));
    json_array_foreach(json_object_get(ev, "days"), i, d)
    {
        json_t *b = json_object_get(d, "bands"), *v;
        const char *k;
        fprintf(c->out,
                "    %s  events %" JSON_INTEGER_FORMAT " (low %" JSON_INTEGER_FORMAT
                " medium %" JSON_INTEGER_FORMAT " high %" JSON_INTEGER_FORMAT
                " critical %" JSON_INTEGER_FORMAT ") m = %.4f; tied %" JSON_INTEGER_FORMAT " (",
                json_string_value(json_object_get(d, "day")),
                json_integer_value(json_object_get(d, "events")),
                json_integer_value(json_object_get(b, "low")),
                json_integer_value(json_object_get(b, "medium")),
                json_integer_value(json_object_get(b, "high")),
                json_integer_value(json_object_get(b, "critical")),
                json_real_value(json_object_get(d, "m")),
                json_integer_value(json_object_get(d, "tied")));
        int first = 1;
        json_object_foreach(json_object_get(d, "fields"), k, v)
        {
            fprintf(c->out, "%s%s %" JSON_INTEGER_FORMAT, first ? "" : ", ", k,
                    json_integer_value(v));
            first = 0;
        }
        fprintf(c->out, ") -> %.4f\n", json_real_value(json_object_get(d, "weighted")));
    }
}

static void print_explain(struct ctl *c, json_t *it)
{
    json_t *ev = json_object_get(it, "evidence"), *tr = json_object_get(it, "trend");
    const char *op = json_string_value(json_object_get(it, "operator"));
    const char *day = json_string_value(json_object_get(tr, "day"));

    const char *region = json_string_value(json_object_get(it, "region"));

    fprintf(c->out,
            "\n#%" JSON_INTEGER_FORMAT " %s  P = %.2f  (%s%s%s, %s, %s, EUR %" JSON_INTEGER_FORMAT
            ")\n",
            json_integer_value(json_object_get(it, "rank")),
            json_string_value(json_object_get(it, "need")),
            json_real_value(json_object_get(it, "priority")),
            json_string_value(json_object_get(it, "sector")), op[0] ? "/" : "", op,
            region[0] ? region : "no region", json_string_value(json_object_get(it, "category")),
            json_integer_value(json_object_get(it, "cost")));
    fprintf(c->out, "  tied to: %s\n", json_string_value(json_object_get(it, "tied_to")));
    print_scope(c, "sector", json_object_get(ev, "sector"));
    if (json_object_get(ev, "operator") != NULL)
        print_scope(c, "operator", json_object_get(ev, "operator"));
    if (op[0])
        fprintf(c->out, "  E = E_operator + %" PRId64 "%% E_sector = %.4f\n",
                c->cfg.sector_share_pct, json_real_value(json_object_get(ev, "e")));
    else
        fprintf(c->out, "  E = E_sector = %.4f\n", json_real_value(json_object_get(ev, "e")));
    fprintf(c->out, "  trend: day %s, z %s -> %s z = %.4f, T = %.4f\n", day ? day : "(none)",
            json_string_value(json_object_get(tr, "z_stored"))
                ? json_string_value(json_object_get(tr, "z_stored"))
                : "(none)",
            json_is_true(json_object_get(tr, "fresh")) ? "fresh," : "stale or absent, using",
            json_real_value(json_object_get(tr, "z")), json_real_value(json_object_get(tr, "t")));
    fprintf(c->out,
            "  w = %" JSON_INTEGER_FORMAT "; opened %s, %" JSON_INTEGER_FORMAT
            " days open, A = %.4f\n",
            json_integer_value(json_object_get(it, "weight")),
            json_string_value(json_object_get(it, "opened")),
            json_integer_value(json_object_get(it, "days_open")),
            json_real_value(json_object_get(it, "a")));
    fprintf(c->out,
            "  P = round2(10 x %" JSON_INTEGER_FORMAT " x %.4f x %.4f x ln(1 + %.4f)) = %.2f\n",
            json_integer_value(json_object_get(it, "weight")),
            json_real_value(json_object_get(tr, "t")), json_real_value(json_object_get(it, "a")),
            json_real_value(json_object_get(ev, "e")),
            json_real_value(json_object_get(it, "priority")));
}

static void print_sums(struct ctl *c, const char *title, json_t *sums, const char *sector,
                       json_t *items)
{
    const char *k;
    json_t *v;

    fprintf(c->out, "\n%s (sum of the open needs' priorities):\n", title);
    json_object_foreach(sums, k, v)
    {
        if (sector != NULL) {
            /* operators: only those with a need in the sector */
            bool in = strcmp(k, sector) == 0;
            size_t i;
            json_t *it;
            json_array_foreach(items, i,
                               it) if (wanted(it, sector) &&
                                       strcmp(json_string_value(json_object_get(it, "operator")),
                                              k) == 0) in = true;
            if (!in)
                continue;
        }
        fprintf(c->out, "  %-24s %10.2f  (%" JSON_INTEGER_FORMAT " need%s)\n", k,
                json_real_value(json_object_get(v, "priority")),
                json_integer_value(json_object_get(v, "needs")),
                json_integer_value(json_object_get(v, "needs")) == 1 ? "" : "s");
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tmctl priorities [--sector S] [--explain] [--format table|csv|json]\n");
}

int ctl_cmd_priorities(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"sector", required_argument, NULL, 's'},
        {"explain", no_argument, NULL, 'e'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sector = NULL;
    bool explain = false;
    enum ctl_format fmt = CTL_FMT_TABLE;
    struct ctl_need *needs = NULL;
    size_t n = 0, i;
    json_t *res = NULL, *it, *items, *out_items;
    char err[TM_ERR_LEN], day[11];
    int opt, rc = 1;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sector = optarg;
            if (tm_sector_find(sector) == NULL) {
                ctl_error("unknown sector '%s' (docs/schema.md)", sector);
                return 2;
            }
            break;
        case 'e':
            explain = true;
            break;
        case 'f':
            if (ctl_format_parse(optarg, false, &fmt) != 0) {
                ctl_error("--format: '%s' is not table, csv or json", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (ctl_redis_connect(c, err) != 0 || ctl_store_load_needs(c, &needs, &n, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    res = refresh(c, needs, n, true, err);
    if (res == NULL) {
        ctl_error("%s", err);
        goto out;
    }
    items = json_object_get(res, "items");
    out_items = json_array();
    json_array_foreach(items, i, it) if (wanted(it, sector)) json_array_append(out_items, it);
    ctl_day_format(c->today, day);
    if (fmt == CTL_FMT_JSON) {
        json_t *doc = json_pack(
            "{s:s, s:s, s:{s:I, s:I}, s:O, s:O, s:O}", "day", day, "formula", FORMULA, "params",
            "sector_share_percent", (json_int_t)c->cfg.sector_share_pct, "age_full_days",
            (json_int_t)c->cfg.age_full_days, "items", out_items, "sectors",
            json_object_get(res, "sectors"), "operators", json_object_get(res, "operators"));
        if (!explain)
            json_array_foreach(json_object_get(doc, "items"), i, it)
            {
                json_object_del(json_object_get(json_object_get(it, "evidence"), "sector"), "days");
                json_object_del(json_object_get(json_object_get(it, "evidence"), "operator"),
                                "days");
            }
        json_dumpf(doc, c->out, JSON_INDENT(2));
        fputc('\n', c->out);
        json_decref(doc);
    } else if (fmt == CTL_FMT_CSV) {
        const char *head[] = {"rank",   "need",     "priority", "sector", "operator",
                              "region", "category", "cost",     "opened", "days_open",
                              "e",      "t",        "w",        "a"};
        ctl_csv_write(c->out, head, TM_ARRAY_LEN(head));
        json_array_foreach(out_items, i, it)
        {
            char rk[24], p[32], cost[24], days[24], e[32], t[32], w[24], a[32];
            const char *row[14];
            snprintf(rk, sizeof(rk), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(it, "rank")));
            snprintf(p, sizeof(p), "%.2f", json_real_value(json_object_get(it, "priority")));
            snprintf(cost, sizeof(cost), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(it, "cost")));
            snprintf(days, sizeof(days), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(it, "days_open")));
            snprintf(e, sizeof(e), "%.4f",
                     json_real_value(json_object_get(json_object_get(it, "evidence"), "e")));
            snprintf(t, sizeof(t), "%.4f",
                     json_real_value(json_object_get(json_object_get(it, "trend"), "t")));
            snprintf(w, sizeof(w), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(it, "weight")));
            snprintf(a, sizeof(a), "%.4f", json_real_value(json_object_get(it, "a")));
            row[0] = rk;
            row[1] = json_string_value(json_object_get(it, "need"));
            row[2] = p;
            row[3] = json_string_value(json_object_get(it, "sector"));
            row[4] = json_string_value(json_object_get(it, "operator"));
            row[5] = json_string_value(json_object_get(it, "region"));
            row[6] = json_string_value(json_object_get(it, "category"));
            row[7] = cost;
            row[8] = json_string_value(json_object_get(it, "opened"));
            row[9] = days;
            row[10] = e;
            row[11] = t;
            row[12] = w;
            row[13] = a;
            ctl_csv_write(c->out, row, 14);
        }
    } else {
        fprintf(c->out, "priorities on %s (UTC): %zu open need%s%s%s\n", day,
                json_array_size(out_items), json_array_size(out_items) == 1 ? "" : "s",
                sector ? " in " : "", sector ? sector : "");
        if (explain)
            print_formula(c);
        fprintf(c->out, "\n%4s  %-16s %9s  %-22s %-18s %-6s %-17s %10s  %-10s %5s\n", "rank",
                "need", "priority", "sector", "operator", "region", "category", "cost EUR",
                "opened", "days");
        json_array_foreach(out_items, i, it)
        {
            fprintf(c->out,
                    "%4" JSON_INTEGER_FORMAT
                    "  %-16s %9.2f  %-22s %-18s %-6s %-17s %10" JSON_INTEGER_FORMAT
                    "  %-10s %5" JSON_INTEGER_FORMAT "\n",
                    json_integer_value(json_object_get(it, "rank")),
                    json_string_value(json_object_get(it, "need")),
                    json_real_value(json_object_get(it, "priority")),
                    json_string_value(json_object_get(it, "sector")),
                    json_string_value(json_object_get(it, "operator")),
                    json_string_value(json_object_get(it, "region")),
                    json_string_value(json_object_get(it, "category")),
                    json_integer_value(json_object_get(it, "cost")),
                    json_string_value(json_object_get(it, "opened")),
                    json_integer_value(json_object_get(it, "days_open")));
        }
        if (explain)
            json_array_foreach(out_items, i, it) print_explain(c, it);
        print_sums(c, "by sector", json_object_get(res, "sectors"), sector, out_items);
        print_sums(c, "by operator", json_object_get(res, "operators"), sector, out_items);
    }
    json_decref(out_items);
    rc = 0;
out:
    json_decref(res);
    free(needs);
    return rc;
}
