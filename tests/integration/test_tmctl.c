/*
 * test_tmctl.c - tmctl against what the real tm-aggregator wrote, with a real
 * redis-server and tm-devkafka on loopback ports picked at run time.
 *
 * Scenario: 30 days of scripted events for four sectors and six operators (malware,
 * ransomware, brute force, DDoS, phishing, scans; one "other" event type tied to a need
 * only through its ATT&CK technique) are produced to tm.events.v1 and aggregated by
 * tm-aggregator. Then needs.csv (10 needs, one closed) and offers.csv (8 offers: an
 * expired one, one whose ceiling is too low, one restricted to another sector, ...) are
 * imported, and with --now fixed:
 *   - every priority equals the one this test computes on its own from the scripted events
 *     and the documented formula and mapping (docs/planners.md), to the cent; the ranking,
 *     tm:priorities, the per-sector sums and the need hashes agree;
 *   - the allocation is exactly the optimum worked out by hand, which covers more priority
 *     than first come, first served; no need is covered twice, no capacity exceeded;
 *     unmatched needs and idle offers carry the expected reasons;
 *   - bad CSV files (wrong column count, unknown category, bad number, ...) are refused
 *     with the row number and column, and the registry is byte-for-byte unchanged;
 *   - needs add / list / close, and the STIX, JSON and CSV exports (structure, ids,
 *     references, the feed's incidents in the window, the top sources);
 *   - the Redis password is used and never printed.
 *
 * Volume: about 600 events in 2 partitions, far below the mock cluster's ~5 MB per
 * partition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"

#define PARTITIONS 2
#define GROUP "tm-ctl-test"
#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
#define NOW "2026-11-23T12:00:00.000Z"
#define DAYS 30
#define MAX_MSGS 2000

/* ---- the scripted events -------------------------------------------------------------- */

struct spec {
    const char *sector, *op, *region, *cat, *tech;
    int sev;
    int day_from, day_to; /* days before D, inclusive (day_from >= day_to) */
    int per_day;
    const char *src;
};

static const struct spec specs[] = {
    {"energy", "op-energy-1", "UA-32", "malware", "T1204", 8, 2, 0, 5, "203.0.113.1"},
    {"energy", "op-energy-1", "UA-32", "ransomware", "T1486", 9, 20, 20, 10, "203.0.113.2"},
    {"energy", "op-energy-1", "UA-32", "bruteforce", "T1110.001", 5, 1, 1, 20, "203.0.113.3"},
    {"energy", "op-energy-2", "UA-12", "ddos", "T1498", 7, 0, 0, 6, "198.51.100.7"},
    {"energy", "op-energy-2", "UA-12", "scan", "T1046", 2, 29, 0, 4, "192.0.2.1"},
    {"drinking-water", "op-water", "UA-51", "phishing", "T1566.001", 4, 6, 0, 1, "203.0.113.20"},
    {"drinking-water", "op-water", "UA-51", "bruteforce", "T1110", 6, 10, 10, 8, "203.0.113.21"},
    {"drinking-water", "op-water", "UA-51", "scan", "", 2, 29, 0, 2, "192.0.2.50"},
    {"drinking-water", "op-water-2", "UA-51", "other", "T1110", 6, 2, 2, 5, "203.0.113.22"},
    {"local-government", "op-lg-1", "UA-46", "phishing", "T1566", 5, 6, 0, 10, "203.0.113.30"},
    {"local-government", "op-lg-1", "UA-46", "ddos", "", 9, 3, 3, 4, "198.51.100.8"},
    {"local-government", "op-lg-1", "UA-46", "scan", "", 1, 29, 0, 3, "192.0.2.60"},
    {"health", "op-health-1", "UA-30", "malware", "", 7, 1, 0, 2, "203.0.113.40"},
    {"health", "op-health-1", "UA-30", "scan", "", 2, 29, 0, 2, "192.0.2.70"},
};

/* ---- the mapping and formula of docs/planners.md, written out independently ---------- */

static const struct {
    const char *key, *needs; /* needs: space-separated */
} mapping[] = {
    {"cat:ddos", "anti-ddos connectivity"},
    {"cat:ransomware", "backup edr incident-response"},
    {"cat:wiper", "backup edr incident-response"},
    {"cat:malware", "backup edr incident-response"},
    {"cat:phishing", "training email-security"},
    {"cat:bruteforce", "mfa edr assessment"},
    {"cat:intrusion", "mfa edr assessment"},
    {"cat:service-outage", "connectivity"},
    {"cat:exploit", "assessment edr"},
    {"cat:defacement", "incident-response assessment"},
    {"cat:data-leak", "incident-response assessment"},
    {"tech:T1110", "mfa"},
    {"tech:T1078", "mfa"},
    {"tech:T1566", "training email-security"},
    {"tech:T1486", "backup incident-response"},
    {"tech:T1485", "backup"},
    {"tech:T1561", "backup"},
    {"tech:T1498", "anti-ddos"},
    {"tech:T1499", "anti-ddos"},
    {"tech:T1190", "assessment"},
};

static bool word_in(const char *list, const char *w)
{
    size_t n = strlen(w);

    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

/* Is the hash field tied to need category need? tech keys match sub-techniques. */
static bool tied(const char *field, const char *need)
{
    for (size_t i = 0; i < sizeof(mapping) / sizeof(mapping[0]); i++) {
        size_t n = strlen(mapping[i].key);
        if (strncmp(field, mapping[i].key, n) == 0 && (field[n] == '\0' || field[n] == '.') &&
            word_in(mapping[i].needs, need))
            return true;
    }
    return false;
}

struct need_row {
    const char *id, *op, *sector, *region, *cat;
    long cost;
    const char *status, *opened;
};

static const struct need_row needs[] = {
    {"N-1", "op-energy-1", "energy", "UA-32", "edr", 40000, "open", "2026-09-01"},
    {"N-2", "op-energy-1", "energy", "UA-32", "backup", 25000, "open", "2026-11-01"},
    {"N-3", "op-energy-2", "energy", "UA-12", "anti-ddos", 60000, "open", "2026-11-20"},
    {"N-4", "op-water", "drinking-water", "UA-51", "mfa", 5000, "open", "2026-10-15"},
    {"N-5", "", "local-government", "UA-46", "training", 8000, "open", "2026-11-10"},
    {"N-6", "op-water", "drinking-water", "UA-51", "email-security", 3000, "open", "2026-11-15"},
    {"N-7", "", "health", "UA-30", "edr", 30000, "open", "2026-11-22"},
    {"N-8", "", "local-government", "UA-46", "training", 4000, "closed", "2026-06-01"},
    {"N-9", "op-energy-1", "energy", "UA-32", "incident-response", 15000, "open", "2026-08-01"},
    {"N-10", "", "drinking-water", "UA-51", "training", 6000, "open", "2026-11-05"},
};
#define NNEEDS (sizeof(needs) / sizeof(needs[0]))

static const char needs_csv[] =
    "id,operator,sector,region,category,description,cost,status,opened\r\n"
    "N-1,op-energy-1,energy,UA-32,edr,\"EDR for 200 hosts, incl. SCADA jump hosts\",40000,"
    "open,2026-09-01\r\n"
    "N-2,op-energy-1,energy,UA-32,backup,Offline backups of the billing system,25000,open,"
    "2026-11-01\r\n"
    "N-3,op-energy-2,energy,UA-12,anti-ddos,\"Scrubbing for the \"\"customer\"\" portal\","
    "60000,open,2026-11-20\r\n"
    "N-4,op-water,drinking-water,UA-51,mfa,MFA for remote access,5000,open,2026-10-15\r\n"
    "N-5,,local-government,UA-46,training,Phishing training for councils,8000,,2026-11-10\r\n"
    "N-6,op-water,drinking-water,UA-51,email-security,Mail filtering,3000,open,2026-11-15\r\n"
    "N-7,,health,UA-30,edr,EDR for regional hospitals,30000,open,2026-11-22\r\n"
    "N-8,,local-government,UA-46,training,Earlier training round,4000,closed,2026-06-01\r\n"
    "N-9,op-energy-1,energy,UA-32,incident-response,IR retainer,15000,open,2026-08-01\r\n"
    "N-10,,drinking-water,UA-51,training,Awareness for water utilities,6000,open,"
    "2026-11-05\r\n";

static const char offers_csv[] =
    "id,donor,category,capacity,cost_ceiling,sectors,regions,expires,description\n"
    "O-1-EDR-ANY,Estonia,edr,1,50000,energy;health,,2027-06-30,EDR licences\n"
    "O-2-EDR-ENERGY,Germany,edr,1,50000,energy,UA-32,2027-03-31,\n"
    "O-NL-TRAIN,Netherlands,training,1,,*,,2027-01-31,Awareness courses\n"
    "O-PL-DDOS,Poland,anti-ddos,2,50000,,,2027-12-31,\n"
    "O-FR-BACKUP,France,backup,3,30000,,,2026-11-01,expired before today\n"
    "O-SE-MFA,Sweden,mfa,2,,,UA-51 UA-30,,\n"
    "O-UK-EMAIL,United Kingdom,email-security,1,,local-government,,,\n";

/* ---- fixture ----------------------------------------------------------------------- */

struct msg {
    int partition;
    struct tm_event e;
    char *json;
    size_t len;
};

struct fixture {
    struct tm_harness_redis redis;
    struct tm_harness_kafka kafka;
    redisContext *c;
    pid_t agg;
    char dir[256], conf[300], needs[300], offers[300], errfile[300], addr[64];
    struct msg *msgs;
    size_t nmsgs;
    long per_part[PARTITIONS];
    int64_t now, today; /* ms, day number */
    json_t *days;       /* "s:energy" / "o:op-1" -> [30 objects field -> count], [0] = D */
    double prio[NNEEDS];
};

static struct fixture *fx;

static int64_t at(const char *s)
{
    int64_t t;

    assert_int_equal(tm_time_parse(s, strlen(s), &t), 0);
    return t;
}

static void bump(struct fixture *f, const char *scope, int d, const char *field)
{
    json_t *arr = json_object_get(f->days, scope), *o;

    if (arr == NULL) {
        arr = json_array();
        for (int i = 0; i < DAYS; i++)
            json_array_append_new(arr, json_object());
        json_object_set_new(f->days, scope, arr);
    }
    o = json_array_get(arr, (size_t)d);
    json_object_set_new(o, field, json_integer(json_integer_value(json_object_get(o, field)) + 1));
}

static int cmp_ts(const void *a, const void *b)
{
    const struct msg *x = a, *y = b;

    if (x->e.ts != y->e.ts)
        return x->e.ts < y->e.ts ? -1 : 1;
    return strcmp(x->e.id, y->e.id);
}

static int partition_of(const char *sector)
{
    return strcmp(sector, "energy") == 0 || strcmp(sector, "health") == 0 ? 0 : 1;
}

/* The events of specs[], in time order, and the day hashes they should make. */
static void make_input(struct fixture *f)
{
    static const char *const bands[] = {"low",    "low",  "low",  "low",      "medium",  "medium",
                                        "medium", "high", "high", "critical", "critical"};

    f->msgs = calloc(MAX_MSGS, sizeof(*f->msgs));
    assert_non_null(f->msgs);
    f->days = json_object();
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        const struct spec *sp = &specs[s];
        for (int d = sp->day_from; d >= sp->day_to; d--)
            for (int j = 0; j < sp->per_day; j++) {
                struct msg *m = &f->msgs[f->nmsgs++];
                struct tm_event *e = &m->e;
                char scope[96], field[64];
                assert_true(f->nmsgs <= MAX_MSGS);
                tm_event_init(e);
                snprintf(e->id, sizeof(e->id), "TC-%02zu-%02d-%03d", s, d, j);
                /* 00:30 .. 10:00 UTC of day D - d */
                e->ts = (f->today - d) * DAY_MS + 30 * 60000 +
                        (int64_t)j * (9 * HOUR_MS + 30 * 60000) / sp->per_day + (int64_t)s * 1000;
                e->received = e->ts + 300;
                snprintf(e->operator_id, sizeof(e->operator_id), "%s", sp->op);
                snprintf(e->sector, sizeof(e->sector), "%s", sp->sector);
                snprintf(e->region, sizeof(e->region), "%s", sp->region);
                snprintf(e->category, sizeof(e->category), "%s", sp->cat);
                snprintf(e->attack.technique, sizeof(e->attack.technique), "%s", sp->tech);
                snprintf(e->src.ip, sizeof(e->src.ip), "%s", sp->src);
                e->severity = sp->sev;
                snprintf(e->summary, sizeof(e->summary), "%s event %d of day -%d", sp->cat, j, d);
                m->partition = partition_of(sp->sector);
                m->json = tm_event_encode(e, &m->len);
                assert_non_null(m->json);
                f->per_part[m->partition]++;
                /* the aggregator's day hashes: sector (with tech:) and operator */
                snprintf(scope, sizeof(scope), "s:%s", sp->sector);
                bump(f, scope, d, "events");
                snprintf(field, sizeof(field), "sev:%s", bands[sp->sev]);
                bump(f, scope, d, field);
                snprintf(field, sizeof(field), "cat:%s", sp->cat);
                bump(f, scope, d, field);
                if (sp->tech[0] != '\0') {
                    snprintf(field, sizeof(field), "tech:%s", sp->tech);
                    bump(f, scope, d, field);
                }
                snprintf(scope, sizeof(scope), "o:%s", sp->op);
                bump(f, scope, d, "events");
                snprintf(field, sizeof(field), "sev:%s", bands[sp->sev]);
                bump(f, scope, d, field);
                snprintf(field, sizeof(field), "cat:%s", sp->cat);
                bump(f, scope, d, field);
            }
    }
    qsort(f->msgs, f->nmsgs, sizeof(*f->msgs), cmp_ts);
}

static void produce(struct fixture *f)
{
    struct tm_kafka_msg *km = calloc(f->nmsgs + 1, sizeof(*km));

    assert_non_null(km);
    for (size_t i = 0; i < f->nmsgs; i++)
        km[i] = (struct tm_kafka_msg){f->msgs[i].partition, f->msgs[i].e.sector,
                                      strlen(f->msgs[i].e.sector), f->msgs[i].json, f->msgs[i].len};
    assert_int_equal(tm_kafka_produce(f->kafka.bootstrap, "tm.events.v1", km, f->nmsgs), 0);
    free(km);
}

static long long hget_int(struct fixture *f, const char *key, const char *field)
{
    redisReply *r = redisCommand(f->c, "HGET %s %s", key, field);
    long long v = -1;

    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static void wait_caught_up(struct fixture *f, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        bool all = true;
        for (int p = 0; p < PARTITIONS && all; p++) {
            char key[128];
            snprintf(key, sizeof(key), "tm:offset:%s:tm.events.v1:%d", GROUP, p);
            all = hget_int(f, key, "next") == f->per_part[p];
        }
        if (all)
            return;
        usleep(100000);
    }
    fail_msg("the aggregator did not reach the end of tm.events.v1 in %d s", timeout_s);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct timeval tv = {5, 0};
    char bin[512], redis[64], line[256], conf[512];
    int fd = -1;

    if (f == NULL)
        return -1;
    *state = f;
    fx = f;
    f->agg = -1;
    f->now = at(NOW);
    f->today = f->now / DAY_MS;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tm-ctl-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->conf, sizeof(f->conf), "%s/agg.ini", f->dir);
    snprintf(f->needs, sizeof(f->needs), "%s/needs.csv", f->dir);
    snprintf(f->offers, sizeof(f->offers), "%s/offers.csv", f->dir);
    snprintf(f->errfile, sizeof(f->errfile), "%s/stderr", f->dir);
    if (tm_harness_redis_start(&f->redis) != 0 ||
        tm_harness_kafka_start(&f->kafka, 1, PARTITIONS) != 0)
        return -1;
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->redis.port);
    f->c = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    if (f->c == NULL || f->c->err)
        return -1;
    redisSetTimeout(f->c, tv);
    snprintf(conf, sizeof(conf),
             "[aggregator]\nflush_interval = 50ms\nflush_events = 100\n[kafka]\n"
             "session_timeout = 3s\n");
    write_file(f->conf, conf);
    make_input(f);
    produce(f);
    {
        char *argv[] = {bin,   "-c",      f->conf, "--kafka", f->kafka.bootstrap, "--redis",
                        redis, "--group", GROUP,   "--admin", "127.0.0.1:0",      NULL};
        snprintf(bin, sizeof(bin), "%s/tm-aggregator", tm_harness_build_dir());
        snprintf(redis, sizeof(redis), "%s", f->addr);
        f->agg = tm_harness_spawn(argv, &fd);
    }
    if (f->agg <= 0 || tm_harness_read_line(fd, line, sizeof(line), 10000) <= 0)
        return -1;
    close(fd);
    wait_caught_up(f, 60);
    write_file(f->needs, needs_csv);
    write_file(f->offers, offers_csv);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[600];

    if (f == NULL)
        return 0;
    if (f->agg > 0)
        tm_harness_stop(f->agg, 15000);
    if (f->c != NULL)
        redisFree(f->c);
    tm_harness_kafka_stop(&f->kafka);
    tm_harness_redis_stop(&f->redis);
    for (size_t i = 0; i < f->nmsgs; i++)
        free(f->msgs[i].json);
    free(f->msgs);
    json_decref(f->days);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    tm_sh(cmd, 10000);
    free(f);
    return 0;
}

/* ---- running tmctl ------------------------------------------------------------------ */

/*
 * Runs "tmctl --redis ADDR --now NOW ARGS" (ARGS: shell words, no quoting needed in this
 * test), stdout into *out (may be NULL), stderr into *err (may be NULL). Returns the exit
 * status.
 */
static int tmctl_env(const char *env, char **out, char **err, const char *fmt, ...) TM_PRINTF(4, 5);
static int tmctl_env(const char *env, char **out, char **err, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s exec %s/tmctl --redis %s --now %s %s 2>%s", env ? env : "",
             tm_harness_build_dir(), fx->addr, NOW, args, fx->errfile);
    rc = tm_harness_run(argv, out, NULL, 60000);
    if (err != NULL) {
        FILE *fp = fopen(fx->errfile, "r");
        size_t n;
        *err = calloc(1, 65536);
        assert_non_null(*err);
        if (fp != NULL) {
            n = fread(*err, 1, 65535, fp);
            (*err)[n] = '\0';
            fclose(fp);
        }
    }
    return rc;
}

#define tmctl(out, err, ...) tmctl_env(NULL, out, err, __VA_ARGS__)

static json_t *tmctl_json(const char *fmt, ...) TM_PRINTF(1, 2);
static json_t *tmctl_json(const char *fmt, ...)
{
    char args[2048], *out = NULL, *err = NULL;
    json_error_t je;
    va_list ap;
    json_t *j;
    int rc;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    rc = tmctl(&out, &err, "%s", args);
    if (rc != 0)
        fail_msg("tmctl %s: exit %d: %s", args, rc, err);
    j = json_loads(out, 0, &je);
    if (j == NULL)
        fail_msg("tmctl %s: not JSON (%s): %.200s", args, je.text, out);
    free(out);
    free(err);
    return j;
}

/* A dump of every registry key (needs and offers) to compare before and after. */
static char *registry_dump(struct fixture *f)
{
    redisReply *keys = redisCommand(f->c, "KEYS tm:need*");
    redisReply *okeys = redisCommand(f->c, "KEYS tm:offer*");
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    char **names;
    size_t n = 0;

    assert_non_null(keys);
    assert_non_null(okeys);
    names = calloc(keys->elements + okeys->elements + 1, sizeof(*names));
    for (size_t i = 0; i < keys->elements; i++)
        names[n++] = keys->element[i]->str;
    for (size_t i = 0; i < okeys->elements; i++)
        names[n++] = okeys->element[i]->str;
    for (size_t a = 1; a < n; a++) /* sort the key names */
        for (size_t b = a; b > 0 && strcmp(names[b], names[b - 1]) < 0; b--) {
            char *t = names[b];
            names[b] = names[b - 1];
            names[b - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        redisReply *t = redisCommand(f->c, "TYPE %s", names[i]);
        redisReply *v;
        fprintf(fp, "%s %s:", names[i], t->str);
        if (strcmp(t->str, "hash") == 0)
            v = redisCommand(f->c, "HGETALL %s", names[i]);
        else
            v = redisCommand(f->c, "SMEMBERS %s", names[i]);
        /* sort the elements (pairs for hashes) so the dump is stable */
        {
            size_t step = strcmp(t->str, "hash") == 0 ? 2 : 1;
            char **el = calloc(v->elements / step + 1, sizeof(*el));
            size_t m = 0;
            for (size_t k = 0; k < v->elements; k += step) {
                size_t l = strlen(v->element[k]->str) + 2 +
                           (step == 2 ? strlen(v->element[k + 1]->str) : 0);
                el[m] = malloc(l);
                snprintf(el[m], l, "%s=%s", v->element[k]->str,
                         step == 2 ? v->element[k + 1]->str : "");
                m++;
            }
            for (size_t a = 1; a < m; a++)
                for (size_t b = a; b > 0 && strcmp(el[b], el[b - 1]) < 0; b--) {
                    char *x = el[b];
                    el[b] = el[b - 1];
                    el[b - 1] = x;
                }
            for (size_t k = 0; k < m; k++) {
                fprintf(fp, " %s", el[k]);
                free(el[k]);
            }
            free(el);
        }
        fputc('\n', fp);
        freeReplyObject(v);
        freeReplyObject(t);
    }
    fclose(fp);
    free(names);
    freeReplyObject(keys);
    freeReplyObject(okeys);
    return buf;
}

/* ---- the truth ------------------------------------------------------------------------ */

static double band_weighted(json_t *day)
{
    return 1.0 * (double)json_integer_value(json_object_get(day, "sev:low")) +
           2.0 * (double)json_integer_value(json_object_get(day, "sev:medium")) +
           5.0 * (double)json_integer_value(json_object_get(day, "sev:high")) +
           10.0 * (double)json_integer_value(json_object_get(day, "sev:critical"));
}

/* E of one scope for a need category: V7 + 7/30 V30, days in tmctl's order. */
static double evidence(struct fixture *f, const char *scope, const char *cat)
{
    json_t *arr = json_object_get(f->days, scope);
    double v7 = 0, v30 = 0;

    for (int d = 0; arr != NULL && d < DAYS; d++) {
        json_t *day = json_array_get(arr, (size_t)d), *v;
        long long events = json_integer_value(json_object_get(day, "events"));
        long long by_cat = 0, by_tech = 0, t;
        int64_t weighted;
        const char *k;
        double w;
        json_object_foreach(day, k, v)
        {
            if (!tied(k, cat))
                continue;
            if (strncmp(k, "tech:", 5) == 0)
                by_tech += json_integer_value(v);
            else
                by_cat += json_integer_value(v);
        }
        t = by_cat > by_tech ? by_cat : by_tech;
        if (events <= 0 || t <= 0)
            continue;
        weighted = (int64_t)band_weighted(day);
        w = (double)t * (double)weighted / (double)events;
        if (d < 7)
            v7 += w;
        v30 += w;
    }
    return v7 + v30 * 7.0 / 30.0;
}

static int weight_of(const char *sector)
{
    /* docs/schema.md criticality */
    if (strcmp(sector, "local-government") == 0)
        return 3;
    return 5; /* energy, drinking-water, health */
}

/* The trend z the aggregator stored, as tmctl reads it (fresh: day D or D-1). */
static double trend_z(struct fixture *f, const char *sector)
{
    char key[96], today[16];
    redisReply *r;
    double z = 0;

    snprintf(key, sizeof(key), "tm:s:%s:trend", sector);
    r = redisCommand(f->c, "HMGET %s day z", key);
    assert_non_null(r);
    {
        char t[TM_TIME_LEN];
        tm_time_format(f->now, t, sizeof(t));
        snprintf(today, sizeof(today), "%.4s%.2s%.2s", t, t + 5, t + 8);
    }
    /* every sector of the scenario has events on D, so its trend is of D */
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    assert_string_equal(r->element[0]->str, today);
    z = strtod(r->element[1]->str, NULL);
    freeReplyObject(r);
    return z;
}

static void compute_truth(struct fixture *f)
{
    for (size_t i = 0; i < NNEEDS; i++) {
        const struct need_row *n = &needs[i];
        char scope[96];
        double e, z, t, a;
        int64_t opened = at("2026-01-01T00:00:00Z") / DAY_MS, age;
        char iso[32];

        f->prio[i] = -1;
        if (strcmp(n->status, "open") != 0)
            continue;
        snprintf(iso, sizeof(iso), "%sT00:00:00Z", n->opened);
        opened = at(iso) / DAY_MS;
        snprintf(scope, sizeof(scope), "s:%s", n->sector);
        e = evidence(f, scope, n->cat);
        if (n->op[0] != '\0') {
            snprintf(scope, sizeof(scope), "o:%s", n->op);
            e = evidence(f, scope, n->cat) + 25.0 / 100.0 * e;
        }
        z = trend_z(f, n->sector);
        z = z > 0 ? z : 0;
        t = 1.0 + (z < 6 ? z : 6) / 6.0;
        age = f->today - opened;
        a = 1.0 + (double)(age < 90 ? age : 90) / 90.0;
        f->prio[i] = round(10.0 * weight_of(n->sector) * t * a * log1p(e) * 100.0) / 100.0;
    }
}

static double prio_of(const char *id)
{
    for (size_t i = 0; i < NNEEDS; i++)
        if (strcmp(needs[i].id, id) == 0)
            return fx->prio[i];
    fail_msg("no need %s", id);
    return -1;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_tmctl_import_and_priorities_exact(void **state)
{
    struct fixture *f = *state;
    char *out = NULL, *err = NULL, want[32], got[32];
    json_t *p, *items, *it;
    redisReply *r;
    size_t i;
    double prev = 1e300;

    assert_int_equal(tmctl(&out, &err, "needs import %s", f->needs), 0);
    assert_non_null(strstr(out, "imported 10 needs"));
    free(out);
    free(err);
    assert_int_equal(tmctl(&out, &err, "offers import %s", f->offers), 0);
    assert_non_null(strstr(out, "imported 7 offers"));
    free(out);
    free(err);

    compute_truth(f);
    p = tmctl_json("priorities --format json");
    items = json_object_get(p, "items");
    assert_int_equal(json_array_size(items), NNEEDS - 1); /* N-8 is closed */
    json_array_foreach(items, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "need"));
        double v = json_real_value(json_object_get(it, "priority"));
        snprintf(want, sizeof(want), "%.2f", prio_of(id));
        snprintf(got, sizeof(got), "%.2f", v);
        if (strcmp(want, got) != 0)
            fail_msg("need %s: tmctl %s, expected %s", id, got, want);
        assert_true(v <= prev); /* ranked */
        prev = v;
        assert_int_equal(json_integer_value(json_object_get(it, "rank")), (json_int_t)i + 1);
    }
    /* the scenario's design: evidence everywhere but the closed need */
    for (i = 0; i < NNEEDS; i++)
        if (strcmp(needs[i].status, "open") == 0)
            assert_true(f->prio[i] > 0);
    /* what makes the allocation interesting (test below) */
    if (!(prio_of("N-5") > prio_of("N-10")))
        fail_msg("scenario: N-5 (%.2f) should outrank N-10 (%.2f)", prio_of("N-5"),
                 prio_of("N-10"));

    /* the dashboard's view: ZREVRANGE tm:priorities 0 99 WITHSCORES, HGETALL tm:need:{id} */
    r = redisCommand(f->c, "ZREVRANGE tm:priorities 0 99 WITHSCORES");
    assert_int_equal(r->elements, 2 * (NNEEDS - 1));
    for (i = 0; i < r->elements / 2; i++) {
        it = json_array_get(items, i);
        assert_string_equal(r->element[2 * i]->str, json_string_value(json_object_get(it, "need")));
        snprintf(want, sizeof(want), "%.2f", json_real_value(json_object_get(it, "priority")));
        snprintf(got, sizeof(got), "%.2f", strtod(r->element[2 * i + 1]->str, NULL));
        assert_string_equal(got, want);
    }
    freeReplyObject(r);
    r = redisCommand(f->c, "ZSCORE tm:priorities N-8");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = redisCommand(f->c, "HGETALL tm:need:N-3");
    assert_int_equal(r->elements, 2 * 8); /* operator..opened; no closed date */
    freeReplyObject(r);
    r = redisCommand(f->c, "HGET tm:need:N-3 description");
    assert_string_equal(r->str, "Scrubbing for the \"customer\" portal");
    freeReplyObject(r);
    r = redisCommand(f->c, "HMGET tm:prio:N-1 priority rank w");
    snprintf(want, sizeof(want), "%.2f", prio_of("N-1"));
    assert_string_equal(r->element[0]->str, want);
    assert_string_equal(r->element[2]->str, "5");
    freeReplyObject(r);
    /* per sector: the sum of its open needs */
    r = redisCommand(f->c, "ZSCORE tm:priorities:sector drinking-water");
    snprintf(want, sizeof(want), "%.2f",
             round((prio_of("N-4") + prio_of("N-6") + prio_of("N-10")) * 100) / 100);
    snprintf(got, sizeof(got), "%.2f", strtod(r->str, NULL));
    assert_string_equal(got, want);
    freeReplyObject(r);
    r = redisCommand(f->c, "ZSCORE tm:priorities:operator op-energy-1");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    json_decref(p);

    /* --sector filters the display only; --explain shows the inputs and the formula */
    p = tmctl_json("priorities --sector energy --format json");
    assert_int_equal(json_array_size(json_object_get(p, "items")), 4);
    json_decref(p);
    assert_int_equal(tmctl(&out, &err, "priorities --explain --sector drinking-water"), 0);
    assert_non_null(strstr(out, "P = round2(10 x w x T x A x ln(1 + E))"));
    assert_non_null(strstr(out, "tech:T1110 5")); /* the technique-only day of N-4 */
    assert_non_null(strstr(out, "#"));
    free(out);
    free(err);
}

static const char *alloc_of(json_t *doc, const char *need)
{
    size_t i;
    json_t *it;

    json_array_foreach(json_object_get(doc, "allocation"), i,
                       it) if (strcmp(json_string_value(json_object_get(it, "need")), need) ==
                               0) return json_string_value(json_object_get(it, "offer"));
    return NULL;
}

static const char *reason_of(json_t *doc, const char *list, const char *key, const char *id)
{
    size_t i;
    json_t *it;

    json_array_foreach(json_object_get(doc, list), i,
                       it) if (strcmp(json_string_value(json_object_get(it, key)), id) ==
                               0) return json_string_value(json_object_get(it, "reason"));
    return NULL;
}

/* Each need once, each offer within capacity (read back from the registry). */
static void check_allocation_sane(struct fixture *f, json_t *doc)
{
    size_t i, k;
    json_t *it, *jt;

    json_array_foreach(json_object_get(doc, "allocation"), i, it)
    {
        const char *offer = json_string_value(json_object_get(it, "offer"));
        long used = 0;
        redisReply *r;
        json_array_foreach(json_object_get(doc, "allocation"), k, jt)
        {
            if (k != i)
                assert_string_not_equal(json_string_value(json_object_get(it, "need")),
                                        json_string_value(json_object_get(jt, "need")));
            used += strcmp(json_string_value(json_object_get(jt, "offer")), offer) == 0;
        }
        r = redisCommand(f->c, "HGET tm:offer:%s capacity", offer);
        assert_true(used <= strtol(r->str, NULL, 10));
        freeReplyObject(r);
    }
}

static void test_tmctl_match_exact(void **state)
{
    struct fixture *f = *state;
    json_t *opt, *fc;
    char want[32], got[32];

    opt = tmctl_json("match --format json");
    check_allocation_sane(f, opt);
    assert_int_equal(json_array_size(json_object_get(opt, "allocation")), 4);
    assert_string_equal(alloc_of(opt, "N-1"), "O-2-EDR-ENERGY");
    assert_string_equal(alloc_of(opt, "N-7"), "O-1-EDR-ANY");
    assert_string_equal(alloc_of(opt, "N-5"), "O-NL-TRAIN");
    assert_string_equal(alloc_of(opt, "N-4"), "O-SE-MFA");
    snprintf(want, sizeof(want), "%.2f",
             round((prio_of("N-1") + prio_of("N-7") + prio_of("N-5") + prio_of("N-4")) * 100) /
                 100);
    snprintf(got, sizeof(got), "%.2f", json_real_value(json_object_get(opt, "covered_priority")));
    assert_string_equal(got, want);
    assert_int_equal(json_integer_value(json_object_get(opt, "needs_open")), 9);

    assert_int_equal(json_array_size(json_object_get(opt, "unmatched")), 5);
    assert_non_null(strstr(reason_of(opt, "unmatched", "need", "N-2"), "offer expired"));
    assert_non_null(strstr(reason_of(opt, "unmatched", "need", "N-3"), "cost over ceiling"));
    assert_non_null(strstr(reason_of(opt, "unmatched", "need", "N-6"), "sector not allowed"));
    assert_string_equal(reason_of(opt, "unmatched", "need", "N-9"),
                        "no offer of category incident-response");
    assert_non_null(strstr(reason_of(opt, "unmatched", "need", "N-10"), "full"));

    assert_int_equal(json_array_size(json_object_get(opt, "idle")), 4);
    assert_string_equal(reason_of(opt, "idle", "offer", "O-FR-BACKUP"), "expired 2026-11-01");
    assert_string_equal(reason_of(opt, "idle", "offer", "O-PL-DDOS"), "no eligible open need");
    assert_string_equal(reason_of(opt, "idle", "offer", "O-UK-EMAIL"), "no eligible open need");
    assert_non_null(strstr(reason_of(opt, "idle", "offer", "O-SE-MFA"), "capacity left"));

    /* first come, first served covers less */
    fc = tmctl_json("match --algorithm first-come --format json");
    check_allocation_sane(f, fc);
    assert_int_equal(json_array_size(json_object_get(fc, "allocation")), 3);
    assert_string_equal(alloc_of(fc, "N-1"), "O-1-EDR-ANY");
    assert_string_equal(alloc_of(fc, "N-10"), "O-NL-TRAIN");
    assert_string_equal(alloc_of(fc, "N-4"), "O-SE-MFA");
    assert_null(alloc_of(fc, "N-7"));
    assert_null(alloc_of(fc, "N-5"));
    assert_true(json_real_value(json_object_get(fc, "covered_priority")) <
                json_real_value(json_object_get(opt, "covered_priority")));
    json_decref(fc);
    json_decref(opt);

    /* the table and CSV forms carry the same allocation */
    {
        char *out = NULL, *err = NULL;
        assert_int_equal(tmctl(&out, &err, "match --format csv"), 0);
        assert_non_null(strstr(out, "section,need,priority,"));
        assert_non_null(strstr(out, "allocation,N-7,"));
        assert_non_null(strstr(out, "O-1-EDR-ANY,Estonia"));
        assert_non_null(strstr(out, "idle,,"));
        free(out);
        free(err);
        assert_int_equal(tmctl(&out, &err, "match"), 0);
        assert_non_null(strstr(out, "unmatched needs"));
        assert_non_null(strstr(out, "idle offers"));
        free(out);
        free(err);
    }
}

static void expect_bad_csv(struct fixture *f, const char *kind, const char *text, const char *msg)
{
    char path[400], *before, *after, *out = NULL, *err = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/bad.csv", f->dir);
    write_file(path, text);
    before = registry_dump(f);
    rc = tmctl(&out, &err, "%s import %s", kind, path);
    after = registry_dump(f);
    if (rc != 1 || strstr(err, msg) == NULL)
        fail_msg("%s import: exit %d, stderr '%s', expected '%s'", kind, rc, err, msg);
    assert_non_null(strstr(err, "nothing imported"));
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(out);
    free(err);
}

static void test_tmctl_bad_csv_leaves_registry_unchanged(void **state)
{
    struct fixture *f = *state;
    static const char head[] = "id,operator,sector,region,category,description,cost,status,"
                               "opened\n";
    char text[1024];

    /* good rows first: nothing of them may land either */
    snprintf(text, sizeof(text),
             "%sN-20,,energy,UA-32,edr,new,100,open,2026-11-01\n"
             "N-1,,energy,UA-32,edr,changed,1,open,2026-11-01\n"
             "N-21,,energy,UA-32,edr,too few columns,100,open\n",
             head);
    expect_bad_csv(f, "needs", text, "row 4: 8 columns, the header has 9");
    snprintf(text, sizeof(text),
             "%sN-20,,energy,UA-32,edr,new,100,open,2026-11-01\n"
             "N-21,,energy,UA-32,firewall,x,100,open,2026-11-01\n",
             head);
    expect_bad_csv(f, "needs", text, "row 3, column 'category': unknown category 'firewall'");
    snprintf(text, sizeof(text),
             "%sN-20,,energy,UA-32,edr,new,100,open,2026-11-01\n"
             "N-21,,energy,UA-32,edr,\"a, b\",12.5k,open,2026-11-01\n",
             head);
    expect_bad_csv(f, "needs", text, "row 3, column 'cost': '12.5k' is not a whole number");
    snprintf(text, sizeof(text), "%sN-20,,energy,UA-32,edr,\"never closed,100,open,2026-11-01\n",
             head);
    expect_bad_csv(f, "needs", text, "row 2, column 6: quoted field never closed");
    snprintf(text, sizeof(text),
             "%sN-20,,energy,UA-32,edr,a,1,open,2026-11-01\nN-20,,energy,,edr,b,2,open,\n", head);
    expect_bad_csv(f, "needs", text, "row 3, column 'id': 'N-20' is also on row 2");
    expect_bad_csv(f, "needs", "id,sector,category\nN-20,energy,edr\n", "missing column 'cost'");
    expect_bad_csv(f, "needs", "", "a header row is required");
    expect_bad_csv(f, "offers",
                   "id,donor,category,capacity\nO-9,Latvia,edr,1\nO-10,Latvia,edr,many\n",
                   "row 3, column 'capacity': 'many' is not a whole number");
    expect_bad_csv(f, "offers",
                   "id,donor,category,capacity,sectors\nO-9,Latvia,edr,1,energy;mars\n",
                   "row 2, column 'sectors': 'mars' is not known");
}

static void test_tmctl_needs_add_list_close(void **state)
{
    struct fixture *f = *state;
    char *out = NULL, *err = NULL;
    redisReply *r;
    json_t *l;

    assert_int_equal(tmctl(&out, &err,
                           "needs add --id N-30 --sector health --category backup --cost 7000 "
                           "--region UA-30 --opened 2026-11-01"),
                     0);
    free(out);
    free(err);
    r = redisCommand(f->c, "ZSCORE tm:priorities N-30");
    assert_int_equal(r->type, REDIS_REPLY_STRING); /* ranked at once */
    assert_true(strtod(r->str, NULL) > 0);
    freeReplyObject(r);
    assert_int_equal(tmctl(&out, &err,
                           "needs add --id N-30 --sector health --category backup "
                           "--cost 1"),
                     1);
    assert_non_null(strstr(err, "exists already"));
    free(out);
    free(err);
    assert_int_equal(tmctl(&out, &err,
                           "needs add --id N-31 --sector health --category backup "
                           "--cost lots"),
                     1);
    assert_non_null(strstr(err, "--cost"));
    free(out);
    free(err);
    assert_int_equal(tmctl(&out, &err, "needs add --id N-31 --sector health"), 2);
    free(out);
    free(err);

    l = tmctl_json("needs list --status all --format json");
    assert_int_equal(json_array_size(json_object_get(l, "needs")), NNEEDS + 1);
    json_decref(l);

    assert_int_equal(tmctl(&out, &err, "needs close N-30 --date 2026-11-23"), 0);
    free(out);
    free(err);
    r = redisCommand(f->c, "ZSCORE tm:priorities N-30");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = redisCommand(f->c, "HMGET tm:need:N-30 status closed");
    assert_string_equal(r->element[0]->str, "closed");
    assert_string_equal(r->element[1]->str, "2026-11-23");
    freeReplyObject(r);
    assert_int_equal(tmctl(&out, &err, "needs close N-99"), 1);
    assert_non_null(strstr(err, "no need 'N-99'"));
    free(out);
    free(err);

    /* list --format csv is importable as it is (round trip, registry unchanged) */
    {
        char path[400], *before, *after;
        FILE *fp;
        assert_int_equal(tmctl(&out, &err, "needs list --status all --format csv"), 0);
        snprintf(path, sizeof(path), "%s/roundtrip.csv", f->dir);
        fp = fopen(path, "w");
        fputs(out, fp);
        fclose(fp);
        free(out);
        free(err);
        before = registry_dump(f);
        assert_int_equal(tmctl(&out, &err, "needs import %s", path), 0);
        after = registry_dump(f);
        assert_string_equal(before, after);
        free(before);
        free(after);
        free(out);
        free(err);
    }
}

static bool matches(const char *re, const char *s)
{
    regex_t r;
    bool ok;

    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    ok = s != NULL && regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static json_t *by_id(json_t *objects, const char *id)
{
    size_t i;
    json_t *o;

    json_array_foreach(objects, i, o) if (strcmp(json_string_value(json_object_get(o, "id")), id) ==
                                          0) return o;
    return NULL;
}

static void test_tmctl_export_stix(void **state)
{
    const char *id_re = "^[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                        "[0-9a-f]{12}$";
    const char *ts_re = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$";
    json_t *b = tmctl_json("export --since 7d --format stix"), *objects, *o, *v, *r, *ids;
    size_t i, k, incidents = 0, expected = 0, indicators = 0;
    const char *key;
    bool top_ip = false;

    (void)state;
    assert_string_equal(json_string_value(json_object_get(b, "type")), "bundle");
    assert_true(matches(id_re, json_string_value(json_object_get(b, "id"))));
    objects = json_object_get(b, "objects");
    ids = json_object();
    json_array_foreach(objects, i, o)
    {
        const char *type = json_string_value(json_object_get(o, "type"));
        const char *id = json_string_value(json_object_get(o, "id"));
        assert_true(matches(id_re, id));
        if (json_object_get(ids, id) != NULL)
            fail_msg("id '%s' twice in the bundle", id);
        json_object_set_new(ids, id, json_true());
        assert_true(strncmp(id, type, strlen(type)) == 0);
        assert_string_equal(json_string_value(json_object_get(o, "spec_version")), "2.1");
        if (strcmp(type, "ipv4-addr") != 0 && strcmp(type, "ipv6-addr") != 0) {
            assert_true(matches(ts_re, json_string_value(json_object_get(o, "created"))));
            assert_true(matches(ts_re, json_string_value(json_object_get(o, "modified"))));
        }
        if (strcmp(type, "incident") == 0)
            incidents++;
        if (strcmp(type, "indicator") == 0) {
            indicators++;
            assert_string_equal(json_string_value(json_object_get(o, "pattern_type")), "stix");
            assert_true(matches(ts_re, json_string_value(json_object_get(o, "valid_from"))));
            assert_true(matches("^\\[ipv4-addr:value = '[0-9.]+'\\]$",
                                json_string_value(json_object_get(o, "pattern"))));
            if (strcmp(json_string_value(json_object_get(o, "pattern")),
                       "[ipv4-addr:value = '203.0.113.30']") == 0)
                top_ip = true; /* local-government's phishing source, 70 events */
        }
        if (strcmp(type, "identity") == 0 && json_object_get(o, "x_tm_sector") != NULL &&
            strcmp(json_string_value(json_object_get(o, "x_tm_sector")), "local-government") == 0)
            assert_string_equal(json_string_value(json_array_get(json_object_get(o, "sectors"), 0)),
                                "government-local");
        /* every reference resolves inside the bundle */
        json_object_foreach(o, key, v)
        {
            size_t n = strlen(key);
            if (n > 4 && strcmp(key + n - 4, "_ref") == 0)
                assert_non_null(by_id(objects, json_string_value(v)));
            if (n > 5 && strcmp(key + n - 5, "_refs") == 0)
                json_array_foreach(v, k, r) assert_non_null(by_id(objects, json_string_value(r)));
        }
    }
    /* significant incidents (severity >= 7) of the last 7 days, from tm:feed */
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++)
        for (int d = specs[s].day_from; d >= specs[s].day_to; d--)
            if (specs[s].sev >= 7 && d <= 6)
                expected += (size_t)specs[s].per_day;
    assert_int_equal(incidents, expected);
    assert_true(indicators >= 10);
    assert_true(top_ip);
    json_decref(ids);
    json_decref(b);

    /* JSON and CSV */
    b = tmctl_json("export --since 7d --format json");
    assert_int_equal(json_array_size(json_object_get(b, "incidents")), expected);
    o = json_array_get(json_object_get(b, "top_sources"), 0);
    assert_string_equal(json_string_value(json_object_get(o, "ip")), "203.0.113.30");
    assert_int_equal(json_integer_value(json_object_get(o, "events")), 70);
    json_decref(b);
    {
        char *out = NULL, *err = NULL;
        assert_int_equal(tmctl(&out, &err, "export --since 2026-11-17 --format csv"), 0);
        static const char head[] =
            "id,ts,sector,operator,region,category,severity,technique,src,summary\r\n";
        assert_true(strncmp(out, head, strlen(head)) == 0);
        assert_non_null(strstr(out, "\r\nTC-"));
        free(out);
        free(err);
        assert_int_equal(tmctl(&out, &err, "export --since 7d --format csv --table sectors"), 0);
        assert_non_null(strstr(out, "\r\nenergy,energy,"));
        free(out);
        free(err);
        assert_int_equal(tmctl(&out, &err, "export --since 0d --format stix"), 2);
        free(out);
        free(err);
    }
}

static void test_tmctl_password_never_printed(void **state)
{
    struct fixture *f = *state;
    char *out = NULL, *err = NULL, conf[400], pwfile[400];
    redisReply *r = redisCommand(f->c, "CONFIG SET requirepass s3cret-pw");

    freeReplyObject(r);
    r = redisCommand(f->c, "AUTH s3cret-pw");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    /* no password: refused */
    assert_int_equal(tmctl(&out, &err, "needs list"), 1);
    free(out);
    free(err);
    /* wrong one from the environment: refused, and not echoed */
    assert_int_equal(tmctl_env("TMCTL_REDIS_PASSWORD=wrong-pw", &out, &err, "needs list"), 1);
    assert_null(strstr(err, "wrong-pw"));
    assert_null(strstr(out, "wrong-pw"));
    free(out);
    free(err);
    /* right one from the environment */
    assert_int_equal(tmctl_env("TMCTL_REDIS_PASSWORD=s3cret-pw", &out, &err, "needs list"), 0);
    assert_null(strstr(out, "s3cret-pw"));
    assert_null(strstr(err, "s3cret-pw"));
    free(out);
    free(err);
    /* and from a password file named in the config */
    snprintf(pwfile, sizeof(pwfile), "%s/pw", f->dir);
    write_file(pwfile, "s3cret-pw\n");
    snprintf(conf, sizeof(conf), "%s/tmctl.ini", f->dir);
    {
        char text[600];
        snprintf(text, sizeof(text), "[redis]\npassword_file = %s\n", pwfile);
        write_file(conf, text);
    }
    assert_int_equal(tmctl(&out, &err, "-c %s needs list", conf), 0);
    assert_null(strstr(out, "s3cret-pw"));
    assert_null(strstr(err, "s3cret-pw"));
    free(out);
    free(err);
    /* a bad password file is an error that names the file, not its content */
    write_file(pwfile, "\n");
    assert_int_equal(tmctl(&out, &err, "-c %s needs list", conf), 2);
    assert_non_null(strstr(err, "empty first line"));
    free(out);
    free(err);
    r = redisCommand(f->c, "CONFIG SET requirepass %s", "");
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tmctl_import_and_priorities_exact),
        cmocka_unit_test(test_tmctl_match_exact),
        cmocka_unit_test(test_tmctl_bad_csv_leaves_registry_unchanged),
        cmocka_unit_test(test_tmctl_needs_add_list_close),
        cmocka_unit_test(test_tmctl_export_stix),
        cmocka_unit_test(test_tmctl_password_never_printed),
    };
    return cmocka_run_group_tests_name("tmctl", tests, setup, teardown);
}
