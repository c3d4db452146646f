/*
 * cmd_export.c - `tmctl export --since 7d --format csv|json|stix`: what tm-telemetry saw
 * in a window of whole UTC days, for partner CERTs.
 *
 * Window: the N days up to and including today (--since Nd; a duration that is not whole
 * days is rounded up) or from a date (--since YYYY-MM-DD), until --now. Read from Redis:
 *   sectors     day hashes tm:s:{sector}:1d:{t} summed over the window (events, count,
 *               severity bands, categories)
 *   incidents   the significant incidents of tm:feed whose event time is in the window
 *               (the feed is capped, docs/redis-keys.md: older ones may be gone)
 *   sources     per-day top sets tm:s:{sector}:top:1d:{t} summed per address, the
 *               [export] top_sources (--top) largest kept
 * CSV prints one table (--table incidents|sectors|sources); JSON all three; STIX the
 * bundle of stix.c.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_config.h"
#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define DAY_MS 86400000LL
#define MAX_DAYS 400
#define FEED_PAGE 1000

enum table { T_INCIDENTS, T_SECTORS, T_SOURCES };

static void day_label(int64_t day, char out[9])
{
    char d[11];

    ctl_day_format(day, d);
    snprintf(out, 9, "%.4s%.2s%.2s", d, d + 5, d + 8);
}

static int64_t int_of(const char *s)
{
    int64_t v = 0;

    if (s == NULL || tm_parse_int64(s, 0, INT64_MAX, &v) != 0)
        return 0;
    return v;
}

/* Sector totals over the window (only sectors with events are kept). */
static int read_sectors(struct ctl *c, struct ctl_export *x, int64_t from, int64_t to, char *err)
{
    size_t nd = (size_t)(to - from + 1);

    x->sectors = calloc(tm_sectors_count, sizeof(*x->sectors));
    if (x->sectors == NULL)
        return tm_err(err, "out of memory");
    for (size_t s = 0; s < tm_sectors_count; s++)
        for (int64_t d = from; d <= to; d++) {
            char label[9];
            day_label(d, label);
            if (redisAppendCommand(c->redis, "HGETALL tm:s:%s:1d:%s", tm_sectors[s].id, label) !=
                REDIS_OK)
                return tm_err(err, "out of memory");
        }
    for (size_t s = 0; s < tm_sectors_count; s++) {
        struct ctl_export_sector *es = &x->sectors[x->nsectors];
        memset(es, 0, sizeof(*es));
        es->sector = (int)s;
        for (size_t d = 0; d < nd; d++) {
            redisReply *r = ctl_redis_reply(c, err);
            if (r == NULL)
                return -1;
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
                if (f == NULL)
                    continue;
                if (strcmp(f, "events") == 0)
                    es->events += int_of(v);
                else if (strcmp(f, "count") == 0)
                    es->count += int_of(v);
                else if (strncmp(f, "sev:", 4) == 0) {
                    for (int b = 0; b < 4; b++)
                        if (strcmp(f + 4, tm_severity_band_name((enum tm_severity_band)b)) == 0)
                            es->band[b] += int_of(v);
                } else if (strncmp(f, "cat:", 4) == 0) {
                    int k = tm_category_index(f + 4);
                    if (k >= 0 && k < 16)
                        es->category[k] += int_of(v);
                }
            }
            freeReplyObject(r);
        }
        if (es->events > 0)
            x->nsectors++;
    }
    return 0;
}

static const char *entry_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; fields != NULL && i + 1 < fields->elements; i += 2)
        if (fields->element[i]->str != NULL && strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1]->str;
    return NULL;
}

/* The feed's entries whose event time is in [since, until], oldest first. */
static int read_feed(struct ctl *c, struct ctl_export *x, char *err)
{
    char start[64] = "-";
    size_t cap = 0;

    for (;;) {
        const char *argv[6] = {"XRANGE", "tm:feed", start, "+", "COUNT", "1000"};
        redisReply *r = ctl_redis_argv(c, 6, argv, err);
        size_t got;
        if (r == NULL)
            return -1;
        got = r->elements;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            const redisReply *f = e->elements == 2 ? e->element[1] : NULL;
            struct ctl_export_incident *in;
            const char *tsv = entry_field(f, "ts"), *v;
            int64_t t;
            if (e->elements == 2 && e->element[0]->str != NULL)
                snprintf(start, sizeof(start), "(%s", e->element[0]->str);
            if (tsv == NULL || tm_time_parse(tsv, strlen(tsv), &t) != 0 || t < x->since_ms ||
                t > x->until_ms)
                continue;
            if (x->nincidents == cap) {
                size_t c2 = cap ? cap * 2 : 64;
                struct ctl_export_incident *p = realloc(x->incidents, c2 * sizeof(*p));
                if (p == NULL) {
                    freeReplyObject(r);
                    return tm_err(err, "out of memory");
                }
                x->incidents = p;
                cap = c2;
            }
            in = &x->incidents[x->nincidents];
            memset(in, 0, sizeof(*in));
            in->ts = t;
            v = entry_field(f, "id");
            tm_strlcpy(in->event_id, v ? v : e->element[0]->str, sizeof(in->event_id));
            v = entry_field(f, "sector");
            tm_strlcpy(in->sector, v ? v : "", sizeof(in->sector));
            v = entry_field(f, "operator");
            tm_strlcpy(in->operator_id, v ? v : "", sizeof(in->operator_id));
            v = entry_field(f, "region");
            tm_strlcpy(in->region, v ? v : "", sizeof(in->region));
            v = entry_field(f, "category");
            tm_strlcpy(in->category, v ? v : "", sizeof(in->category));
            v = entry_field(f, "technique");
            tm_strlcpy(in->technique, v && tm_attack_technique_valid(v) ? v : "",
                       sizeof(in->technique));
            v = entry_field(f, "src");
            tm_strlcpy(in->src, v ? v : "", sizeof(in->src));
            v = entry_field(f, "summary");
            tm_strlcpy(in->summary, v ? v : "", sizeof(in->summary));
            in->severity = (int)int_of(entry_field(f, "severity"));
            if (in->event_id[0] != '\0' && tm_sector_find(in->sector) != NULL)
                x->nincidents++;
        }
        freeReplyObject(r);
        if (got < FEED_PAGE)
            return 0;
    }
}

static int cmp_sources(const void *a, const void *b)
{
    const struct ctl_export_source *x = a, *y = b;

    if (x->events != y->events)
        return x->events > y->events ? -1 : 1;
    return strcmp(x->ip, y->ip);
}

/* Top sources of the window: every sector's per-day top set summed per address. */
static int read_sources(struct ctl *c, struct ctl_export *x, int64_t from, int64_t to, size_t top,
                        char *err)
{
    size_t cap = 0;

    for (size_t s = 0; s < tm_sectors_count; s++)
        for (int64_t d = from; d <= to; d++) {
            char label[9];
            day_label(d, label);
            if (redisAppendCommand(c->redis, "ZRANGE tm:s:%s:top:1d:%s 0 -1 WITHSCORES",
                                   tm_sectors[s].id, label) != REDIS_OK)
                return tm_err(err, "out of memory");
        }
    for (size_t s = 0; s < tm_sectors_count; s++)
        for (int64_t d = from; d <= to; d++) {
            redisReply *r = ctl_redis_reply(c, err);
            if (r == NULL)
                return -1;
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                const char *ip = r->element[i]->str;
                int64_t n = int_of(r->element[i + 1]->str);
                struct ctl_export_source *src = NULL;
                if (ip == NULL || strlen(ip) >= CTL_IP_MAX || n <= 0)
                    continue;
                for (size_t k = 0; k < x->nsources && src == NULL; k++)
                    if (strcmp(x->sources[k].ip, ip) == 0)
                        src = &x->sources[k];
                if (src == NULL) {
                    if (x->nsources == cap) {
                        size_t c2 = cap ? cap * 2 : 256;
                        struct ctl_export_source *p = realloc(x->sources, c2 * sizeof(*p));
                        if (p == NULL) {
                            freeReplyObject(r);
                            return tm_err(err, "out of memory");
                        }
                        x->sources = p;
                        cap = c2;
                    }
                    src = &x->sources[x->nsources++];
                    memset(src, 0, sizeof(*src));
                    tm_strlcpy(src->ip, ip, sizeof(src->ip));
                    src->first_day = d;
                }
                src->events += n;
                src->by_sector[s] += n;
                if (d < src->first_day)
                    src->first_day = d;
                if (d > src->last_day)
                    src->last_day = d;
            }
            freeReplyObject(r);
        }
    qsort(x->sources, x->nsources, sizeof(*x->sources), cmp_sources);
    if (x->nsources > top)
        x->nsources = top;
    return 0;
}

static void print_json(struct ctl *c, const struct ctl_export *x)
{
    json_t *doc, *sectors = json_array(), *incidents = json_array(), *sources = json_array();
    char a[TM_TIME_LEN], b[TM_TIME_LEN], now[TM_TIME_LEN];

    for (size_t i = 0; i < x->nsectors; i++) {
        const struct ctl_export_sector *s = &x->sectors[i];
        const struct tm_sector *t = &tm_sectors[s->sector];
        json_t *cats = json_object();
        for (size_t k = 0; k < tm_categories_count && k < 16; k++)
            if (s->category[k] > 0)
                json_object_set_new(cats, tm_categories[k].id, json_integer(s->category[k]));
        json_array_append_new(sectors,
                              json_pack("{s:s, s:s?, s:s, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:o}",
                                        "sector", t->id, "stix", t->stix, "nis2", t->nis2, "events",
                                        (json_int_t)s->events, "count", (json_int_t)s->count,
                                        "severity", "low", (json_int_t)s->band[0], "medium",
                                        (json_int_t)s->band[1], "high", (json_int_t)s->band[2],
                                        "critical", (json_int_t)s->band[3], "categories", cats));
    }
    for (size_t i = 0; i < x->nincidents; i++) {
        const struct ctl_export_incident *in = &x->incidents[i];
        char t[TM_TIME_LEN];
        tm_time_format(in->ts, t, sizeof(t));
        json_array_append_new(incidents,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "id",
                                        in->event_id, "ts", t, "sector", in->sector, "operator",
                                        in->operator_id, "region", in->region, "category",
                                        in->category, "severity", in->severity, "technique",
                                        in->technique, "src", in->src, "summary", in->summary));
    }
    for (size_t i = 0; i < x->nsources; i++) {
        const struct ctl_export_source *s = &x->sources[i];
        json_t *by = json_object();
        char f[11], l[11];
        for (size_t k = 0; k < tm_sectors_count; k++)
            if (s->by_sector[k] > 0)
                json_object_set_new(by, tm_sectors[k].id, json_integer(s->by_sector[k]));
        ctl_day_format(s->first_day, f);
        ctl_day_format(s->last_day, l);
        json_array_append_new(sources, json_pack("{s:s, s:I, s:s, s:s, s:o}", "ip", s->ip, "events",
                                                 (json_int_t)s->events, "first_day", f, "last_day",
                                                 l, "sectors", by));
    }
    tm_time_format(x->since_ms, a, sizeof(a));
    tm_time_format(x->until_ms, b, sizeof(b));
    tm_time_format(x->now_ms, now, sizeof(now));
    doc = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "generated", now, "since", a, "until", b,
                    "sectors", sectors, "incidents", incidents, "top_sources", sources);
    json_dumpf(doc, c->out, JSON_INDENT(2));
    fputc('\n', c->out);
    json_decref(doc);
}

static void print_csv(struct ctl *c, const struct ctl_export *x, enum table t)
{
    if (t == T_INCIDENTS) {
        static const char *const head[] = {"id",     "ts",       "sector",   "operator",
                                           "region", "category", "severity", "technique",
                                           "src",    "summary"};
        ctl_csv_write(c->out, head, TM_ARRAY_LEN(head));
        for (size_t i = 0; i < x->nincidents; i++) {
            const struct ctl_export_incident *in = &x->incidents[i];
            char ts[TM_TIME_LEN], sev[16];
            const char *row[10] = {in->event_id, ts,  in->sector,    in->operator_id, in->region,
                                   in->category, sev, in->technique, in->src,         in->summary};
            tm_time_format(in->ts, ts, sizeof(ts));
            snprintf(sev, sizeof(sev), "%d", in->severity);
            ctl_csv_write(c->out, row, 10);
        }
    } else if (t == T_SECTORS) {
        const char *head[8 + 16] = {"sector", "stix",   "events", "count",
                                    "low",    "medium", "high",   "critical"};
        size_t nh = 8;
        for (size_t k = 0; k < tm_categories_count && k < 16; k++)
            head[nh++] = tm_categories[k].id;
        ctl_csv_write(c->out, head, nh);
        for (size_t i = 0; i < x->nsectors; i++) {
            const struct ctl_export_sector *s = &x->sectors[i];
            char num[8 + 16][24];
            const char *row[8 + 16];
            row[0] = tm_sectors[s->sector].id;
            row[1] = tm_sectors[s->sector].stix ? tm_sectors[s->sector].stix : "";
            snprintf(num[2], 24, "%" PRId64, s->events);
            snprintf(num[3], 24, "%" PRId64, s->count);
            for (int b = 0; b < 4; b++)
                snprintf(num[4 + b], 24, "%" PRId64, s->band[b]);
            for (size_t k = 0; k + 8 < nh; k++)
                snprintf(num[8 + k], 24, "%" PRId64, s->category[k]);
            for (size_t k = 2; k < nh; k++)
                row[k] = num[k];
            ctl_csv_write(c->out, row, nh);
        }
    } else {
        static const char *const head[] = {"ip", "events", "first_day", "last_day", "sectors"};
        ctl_csv_write(c->out, head, TM_ARRAY_LEN(head));
        for (size_t i = 0; i < x->nsources; i++) {
            const struct ctl_export_source *s = &x->sources[i];
            char ev[24], f[11], l[11], secs[1024] = "";
            size_t used = 0;
            const char *row[5] = {s->ip, ev, f, l, secs};
            snprintf(ev, sizeof(ev), "%" PRId64, s->events);
            ctl_day_format(s->first_day, f);
            ctl_day_format(s->last_day, l);
            for (size_t k = 0; k < tm_sectors_count; k++)
                if (s->by_sector[k] > 0 && used < sizeof(secs)) {
                    int w = snprintf(secs + used, sizeof(secs) - used, "%s%s=%" PRId64,
                                     used ? ";" : "", tm_sectors[k].id, s->by_sector[k]);
                    if (w > 0)
                        used += (size_t)w;
                }
            ctl_csv_write(c->out, row, 5);
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tmctl export [--since 7d|YYYY-MM-DD] [--format csv|json|stix]\n"
               "                    [--table incidents|sectors|sources] [--top N]\n");
}

int ctl_cmd_export(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"since", required_argument, NULL, 's'}, {"format", required_argument, NULL, 'f'},
        {"table", required_argument, NULL, 't'}, {"top", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    struct ctl_export x = {0};
    enum ctl_format fmt = CTL_FMT_JSON;
    enum table table = T_INCIDENTS;
    int64_t from = c->today - 6, top = c->cfg.top_sources, ms;
    char err[TM_ERR_LEN];
    int opt, rc = 1;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            if (ctl_day_parse(optarg, &from) == 0)
                break;
            if (tm_config_parse_duration(optarg, &ms) != 0 || ms <= 0) {
                ctl_error("--since: '%s' is neither a duration (7d, 48h) nor a date", optarg);
                return 2;
            }
            from = c->today - (ms + DAY_MS - 1) / DAY_MS + 1;
            break;
        case 'f':
            if (ctl_format_parse(optarg, true, &fmt) != 0 || fmt == CTL_FMT_TABLE) {
                ctl_error("--format: '%s' is not csv, json or stix", optarg);
                return 2;
            }
            break;
        case 't':
            if (strcmp(optarg, "incidents") == 0)
                table = T_INCIDENTS;
            else if (strcmp(optarg, "sectors") == 0)
                table = T_SECTORS;
            else if (strcmp(optarg, "sources") == 0)
                table = T_SOURCES;
            else {
                usage(stderr);
                return 2;
            }
            break;
        case 'n':
            if (tm_parse_int64(optarg, 0, 1000, &top) != 0) {
                ctl_error("--top: '%s' is not a number from 0 to 1000", optarg);
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
    if (from > c->today || c->today - from + 1 > MAX_DAYS) {
        ctl_error("--since: the window must be 1 to %d days up to today", MAX_DAYS);
        return 2;
    }
    x.since_ms = from * DAY_MS;
    x.until_ms = c->now_ms;
    x.now_ms = c->now_ms;
    if (ctl_redis_connect(c, err) != 0 || read_sectors(c, &x, from, c->today, err) != 0 ||
        read_feed(c, &x, err) != 0 || read_sources(c, &x, from, c->today, (size_t)top, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    if (fmt == CTL_FMT_STIX) {
        json_t *b = ctl_stix_bundle(&x);
        if (b == NULL) {
            ctl_error("out of memory");
            goto out;
        }
        json_dumpf(b, c->out, JSON_INDENT(2));
        fputc('\n', c->out);
        json_decref(b);
    } else if (fmt == CTL_FMT_CSV) {
        print_csv(c, &x, table);
    } else {
        print_json(c, &x);
    }
    rc = 0;
out:
    free(x.sectors);
    free(x.incidents);
    free(x.sources);
    return rc;
}
