/*
 * test_aggregator_trend.c - the derived figures of tm-aggregator (rolling 24 h / 7 d /
 * 30 d sums, EWMA trend with z-score and anomaly flag, sector risk score) against a
 * ground truth this test computes on its own from the scripted input, with a real
 * redis-server and tm-devkafka on loopback.
 *
 * Input: twelve days of events for four sectors (energy spikes on the last day, banking
 * has a quiet day, local-government starts on day 10, health is steady), with retries
 * (duplicates) and a few events three days late (they still count in hour and day
 * windows). The config sets [trend] ratio_k = 2 and [risk] health = 2 so both options are
 * exercised. The aggregator is SIGKILLed at random moments while consuming and restarted;
 * the final values must equal the truth, and a further SIGKILL and restart (stopped with
 * SIGTERM mid-rebalance, then restarted again) must not move them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"

#define PARTITIONS 3
#define GROUP "tm-agg-trend"
#define DAYS 12
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define ALPHA_PCT 30
#define BASELINE_DAYS 28
#define RATIO_K 2
#define MAX_MSGS 4000

struct sector {
    const char *id;
    int partition;
    int weight; /* criticality weight the aggregator should use */
};

static const struct sector sectors[] = {
    {"energy", 0, 5}, {"health", 1, 2}, {"banking", 2, 4}, {"local-government", 0, 3}};
#define NSECTORS (sizeof(sectors) / sizeof(sectors[0]))
#define NATIONAL NSECTORS /* index of the national totals */

struct msg {
    int partition;
    struct tm_event e;
    char *json;
    size_t len;
};

/* Per sector (and nationally): hour and day sums, indexed from the first day. */
struct sums {
    long long v[6]; /* events, count, sev low, medium, high, critical */
};

struct fixture {
    struct tm_harness_redis redis;
    struct tm_harness_kafka kafka;
    redisContext *c;
    pid_t agg;
    char conf[256];
    char admin[256]; /* the running aggregator's /metrics */
    struct msg *msgs;
    size_t nmsgs;
    long per_part[PARTITIONS];
    int64_t day0; /* ms of the first day */
    struct sums hours[NSECTORS + 1][DAYS * 24];
    struct sums days[NSECTORS + 1][DAYS];
    int64_t anchor[NSECTORS + 1];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct timeval tv = {5, 0};
    FILE *fp;
    int fd;

    if (f == NULL)
        return -1;
    *state = f;
    f->agg = -1;
    if (tm_harness_redis_start(&f->redis) != 0 ||
        tm_harness_kafka_start(&f->kafka, 1, PARTITIONS) != 0)
        return -1;
    f->c = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    if (f->c == NULL || f->c->err)
        return -1;
    redisSetTimeout(f->c, tv);
    snprintf(f->conf, sizeof(f->conf), "/tmp/tm-aggregator-trend-XXXXXX");
    fd = mkstemp(f->conf);
    fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fp == NULL)
        return -1;
    fprintf(fp,
            "[aggregator]\nflush_interval = 50ms\nflush_events = 40\n"
            "[trend]\nratio_k = %d\n[risk]\nhealth = 2\n[kafka]\nsession_timeout = 3s\n",
            RATIO_K);
    fclose(fp);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f == NULL)
        return 0;
    if (f->agg > 0)
        tm_harness_stop(f->agg, 10000);
    if (f->c != NULL)
        redisFree(f->c);
    tm_harness_kafka_stop(&f->kafka);
    tm_harness_redis_stop(&f->redis);
    for (size_t i = 0; i < f->nmsgs; i++)
        free(f->msgs[i].json);
    free(f->msgs);
    unlink(f->conf);
    free(f);
    return 0;
}

/* ---- input ------------------------------------------------------------------------- */

/* Events of sector s on day d (0-based). */
static int per_day(size_t s, int d)
{
    switch (s) {
    case 0:
        return d == DAYS - 1 ? 90 : 20 + (d * 7) % 9; /* energy: spike on the last day */
    case 1:
        return 30 + (d % 3); /* health: steady */
    case 2:
        return d == 5 ? 0 : 12 + (d * 5) % 7; /* banking: a quiet day */
    default:
        return d >= 10 ? 15 + d : 0; /* local-government: new */
    }
}

static void add_msg(struct fixture *f, const struct tm_event *e, int partition)
{
    struct msg *m = &f->msgs[f->nmsgs++];

    assert_true(f->nmsgs <= MAX_MSGS);
    m->partition = partition;
    m->e = *e;
    m->json = tm_event_encode(e, &m->len);
    assert_non_null(m->json);
    f->per_part[partition]++;
}

static int cmp_ts(const void *a, const void *b)
{
    const struct msg *x = a, *y = b;

    if (x->e.ts != y->e.ts)
        return x->e.ts < y->e.ts ? -1 : 1;
    return strcmp(x->e.id, y->e.id);
}

/*
 * Each day's events of a sector are spread evenly over its hours (the last day only up to
 * 14:00, so the rolling 24 h spans two days); the stream is in time order, then every 9th
 * event is retried right after it and five energy events three days old come at the end.
 */
static void make_input(struct fixture *f)
{
    struct msg *all = calloc(MAX_MSGS, sizeof(*all));
    size_t n = 0, late = 0;

    assert_non_null(all);
    f->msgs = calloc(MAX_MSGS, sizeof(*f->msgs));
    assert_non_null(f->msgs);
    assert_int_equal(tm_time_parse("2026-11-10T00:00:00.000Z", 24, &f->day0), 0);
    for (size_t s = 0; s < NSECTORS; s++)
        for (int d = 0; d < DAYS; d++) {
            int k = per_day(s, d);
            int64_t span = d == DAYS - 1 ? 14 * HOUR_MS : DAY_MS;
            for (int j = 0; j < k; j++) {
                struct tm_event *e = &all[n].e;
                tm_event_init(e);
                snprintf(e->id, sizeof(e->id), "TR-%s-%02d-%03d", sectors[s].id, d, j);
                e->ts = f->day0 + d * DAY_MS + span * j / k + (int64_t)s * 1000;
                e->received = e->ts + 300;
                snprintf(e->operator_id, sizeof(e->operator_id), "op-%zu", s);
                snprintf(e->sector, sizeof(e->sector), "%s", sectors[s].id);
                snprintf(e->region, sizeof(e->region), "UA-32");
                snprintf(e->category, sizeof(e->category), "scan");
                e->severity = 1 + (j * 7 + (int)s + d) % 10;
                e->count = 1 + j % 5;
                snprintf(e->src.ip, sizeof(e->src.ip), "198.51.100.%d", j % 7);
                all[n].partition = sectors[s].partition;
                n++;
                assert_true(n < MAX_MSGS);
            }
        }
    qsort(all, n, sizeof(*all), cmp_ts);
    for (size_t i = 0; i < n; i++) {
        add_msg(f, &all[i].e, all[i].partition);
        if (i % 9 == 4)
            add_msg(f, &all[i].e, all[i].partition); /* a retry */
    }
    for (size_t i = 0; i < n && late < 5; i++) {
        struct tm_event e = all[i].e;
        if (strcmp(e.sector, "energy") != 0 || e.ts < f->day0 + (DAYS - 4) * DAY_MS)
            continue;
        if (e.ts >= f->day0 + (DAYS - 3) * DAY_MS)
            break;
        snprintf(e.id, sizeof(e.id), "TR-late-%zu", late++);
        e.received = f->day0 + (DAYS - 1) * DAY_MS + 15 * HOUR_MS;
        add_msg(f, &e, 0);
    }
    assert_int_equal(late, 5);
    free(all);
}

/* ---- the truth, computed here -------------------------------------------------------- */

static void add_sums(struct sums *x, const struct tm_event *e)
{
    x->v[0]++;
    x->v[1] += e->count;
    x->v[2 + (e->severity >= 9 ? 3 : e->severity >= 7 ? 2 : e->severity >= 4 ? 1 : 0)]++;
}

static void compute_truth(struct fixture *f)
{
    char **seen = calloc(f->nmsgs, sizeof(*seen));
    size_t nseen = 0;

    assert_non_null(seen);
    for (size_t i = 0; i < NSECTORS + 1; i++)
        f->anchor[i] = INT64_MIN;
    for (size_t i = 0; i < f->nmsgs; i++) {
        const struct tm_event *e = &f->msgs[i].e;
        size_t s = 0, k;
        int64_t h = (e->ts - f->day0) / HOUR_MS;
        for (k = 0; k < nseen && strcmp(seen[k], e->id) != 0; k++)
            ;
        if (k < nseen)
            continue; /* a duplicate */
        seen[nseen++] = f->msgs[i].e.id;
        while (strcmp(sectors[s].id, e->sector) != 0)
            s++;
        add_sums(&f->hours[s][h], e);
        add_sums(&f->hours[NATIONAL][h], e);
        add_sums(&f->days[s][h / 24], e);
        add_sums(&f->days[NATIONAL][h / 24], e);
        /* received is within max_future of ts for every event here */
        if (e->ts > f->anchor[s])
            f->anchor[s] = e->ts;
        if (e->ts > f->anchor[NATIONAL])
            f->anchor[NATIONAL] = e->ts;
    }
    free(seen);
}

static long long day_sum(struct fixture *f, size_t s, int64_t d, int field)
{
    return d >= 0 && d < DAYS ? f->days[s][d].v[field] : 0;
}

static long long hour_sum(struct fixture *f, size_t s, int64_t h, int field)
{
    return h >= 0 && h < DAYS * 24 ? f->hours[s][h].v[field] : 0;
}

/* UTC label of ms: the hour ("YYYYMMDDHH") or the day ("YYYYMMDD"). */
static void utc(int64_t ms, bool hour, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    assert_non_null(gmtime_r(&secs, &tm));
    assert_true((hour ? strftime(out, len, "%Y%m%d%H", &tm) : strftime(out, len, "%Y%m%d", &tm)) >
                0);
}

static void expect_field(struct fixture *f, const char *key, const char *field, const char *want)
{
    redisReply *r = redisCommand(f->c, "HGET %s %s", key, field);

    assert_non_null(r);
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0)
        fail_msg("'%s' field '%s' = %s, expected %s", key, field,
                 r->type == REDIS_REPLY_STRING ? r->str : "(none)", want);
    freeReplyObject(r);
}

static void expect_int(struct fixture *f, const char *key, const char *field, long long want)
{
    char s[32];

    snprintf(s, sizeof(s), "%lld", want);
    expect_field(f, key, field, s);
}

/* The rolling sums, trend and risk of sector s (NATIONAL: the tm:n: keys). */
static void check_one(struct fixture *f, size_t s)
{
    const char *const fields[3] = {"events", "count", "serious"};
    char prefix[64], key[96], field[32], s1[32];
    int64_t ah = (f->anchor[s] - f->day0) / HOUR_MS, ad = ah / 24;
    double alpha = ALPHA_PCT / 100.0, mu = 0, var = 0, sd, z = 0;
    long long hist = 0, today = day_sum(f, s, ad, 0);
    int anomaly = 0;

    if (s == NATIONAL)
        snprintf(prefix, sizeof(prefix), "tm:n");
    else
        snprintf(prefix, sizeof(prefix), "tm:s:%s", sectors[s].id);

    /* rolling: 24 hours up to the anchor hour; 7 and 30 days up to the anchor day */
    snprintf(key, sizeof(key), "%s:roll", prefix);
    expect_int(f, key, "anchor_ms", f->anchor[s]);
    utc(f->anchor[s], true, s1, sizeof(s1));
    expect_field(f, key, "anchor", s1);
    for (int k = 0; k < 3; k++) {
        long long h24 = 0, d7 = 0, d30 = 0;
        for (int64_t h = ah - 23; h <= ah; h++)
            h24 += k < 2 ? hour_sum(f, s, h, k) : hour_sum(f, s, h, 4) + hour_sum(f, s, h, 5);
        for (int64_t d = ad - 29; d <= ad; d++) {
            long long v = k < 2 ? day_sum(f, s, d, k) : day_sum(f, s, d, 4) + day_sum(f, s, d, 5);
            d30 += v;
            if (d > ad - 7)
                d7 += v;
        }
        snprintf(field, sizeof(field), "%s_24h", fields[k]);
        expect_int(f, key, field, h24);
        snprintf(field, sizeof(field), "%s_7d", fields[k]);
        expect_int(f, key, field, d7);
        snprintf(field, sizeof(field), "%s_30d", fields[k]);
        expect_int(f, key, field, d30);
    }

    /* trend: EWMA from the first day with events among the baseline days */
    for (int64_t d = ad - BASELINE_DAYS; d < ad; d++) {
        double x = (double)day_sum(f, s, d, 0);
        if (hist > 0) {
            double diff = x - mu, incr = alpha * diff;
            mu = mu + incr;
            var = (1 - alpha) * (var + diff * incr);
            hist++;
        } else if (x > 0) {
            mu = x;
            var = 0;
            hist = 1;
        }
    }
    sd = sqrt(var);
    if (hist > 0)
        z = ((double)today - mu) / fmax(sd, 1);
    anomaly = hist > 0 && (z >= 3 || (mu > 0 && (double)today >= RATIO_K * mu));
    snprintf(key, sizeof(key), "%s:trend", prefix);
    utc(f->anchor[s], false, s1, sizeof(s1));
    expect_field(f, key, "day", s1);
    expect_int(f, key, "today", today);
    snprintf(s1, sizeof(s1), "%.4f", mu);
    expect_field(f, key, "baseline", s1);
    snprintf(s1, sizeof(s1), "%.4f", sd);
    expect_field(f, key, "sd", s1);
    snprintf(s1, sizeof(s1), "%.4f", z);
    expect_field(f, key, "z", s1);
    expect_int(f, key, "anomaly", anomaly);
    expect_int(f, key, "history_days", hist);
    if (s != NATIONAL) {
        long long v = 0;
        double tf = 1 + fmin(fmax(z, 0), 6) / 6;
        redisReply *r;
        for (int64_t h = ah - 23; h <= ah; h++)
            v += hour_sum(f, s, h, 2) + 2 * hour_sum(f, s, h, 3) + 5 * hour_sum(f, s, h, 4) +
                 10 * hour_sum(f, s, h, 5);
        expect_int(f, key, "weighted_24h", v);
        snprintf(s1, sizeof(s1), "%.2f", 10 * (double)sectors[s].weight * tf * log(1 + (double)v));
        expect_field(f, key, "risk", s1);
        r = redisCommand(f->c, "ZSCORE tm:risk %s", sectors[s].id);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_true(strtod(r->str, NULL) == strtod(s1, NULL));
        freeReplyObject(r);
        print_message("%-17s today %lld, baseline %.4f, z %.4f, anomaly %d, risk %s\n",
                      sectors[s].id, today, mu, z, anomaly, s1);
    }
}

static void check_truth(struct fixture *f)
{
    for (size_t s = 0; s <= NATIONAL; s++)
        check_one(f, s);
}

/* ---- running ----------------------------------------------------------------------- */

static void produce(struct fixture *f, size_t from, size_t to)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", f->kafka.bootstrap, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "compression.type", "lz4", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    for (size_t i = from; i < to; i++) {
        const struct msg *m = &f->msgs[i];
        rd_kafka_resp_err_t err;
        do {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC("tm.events.v1"), RD_KAFKA_V_PARTITION(m->partition),
                RD_KAFKA_V_KEY(m->e.sector, strlen(m->e.sector)), RD_KAFKA_V_VALUE(m->json, m->len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

static void start_aggregator(struct fixture *f)
{
    char bin[512], redis[64], line[256];
    char *argv[] = {bin,   "-c",      f->conf, "--kafka", f->kafka.bootstrap, "--redis",
                    redis, "--group", GROUP,   "--admin", "127.0.0.1:0",      NULL};
    int fd = -1;

    snprintf(bin, sizeof(bin), "%s/tm-aggregator", tm_harness_build_dir());
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", f->redis.port);
    f->agg = tm_harness_spawn(argv, &fd);
    assert_true(f->agg > 0);
    assert_true(tm_harness_read_line(fd, line, sizeof(line), 10000) > 0);
    assert_true(strncmp(line, "listening admin ", 16) == 0);
    snprintf(f->admin, sizeof(f->admin), "%s", line + 16);
    close(fd);
}

/* Waits until the running aggregator holds partitions (its group assigned them). */
static void wait_assigned(struct fixture *f, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        char *body = NULL, *at;
        int status = 0;
        long n = 0;
        if (tm_harness_http(f->admin, "GET", "/metrics", &status, &body, 2000) == 0 &&
            status == 200 && (at = strstr(body, "\ntm_aggregator_partitions ")) != NULL)
            n = strtol(at + strlen("\ntm_aggregator_partitions "), NULL, 10);
        free(body);
        if (n > 0)
            return;
        usleep(100000);
    }
    fail_msg("the aggregator was assigned no partition in %d s", timeout_s);
}

static long long stored_next(struct fixture *f, int p)
{
    redisReply *r = redisCommand(f->c, "HGET tm:offset:%s:tm.events.v1:%d next", GROUP, p);
    long long v = -1;

    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static bool caught_up(struct fixture *f)
{
    for (int p = 0; p < PARTITIONS; p++)
        if (stored_next(f, p) != f->per_part[p])
            return false;
    return true;
}

static long long stored_total(struct fixture *f)
{
    long long sum = 0;

    for (int p = 0; p < PARTITIONS; p++)
        sum += stored_next(f, p) > 0 ? stored_next(f, p) : 0;
    return sum;
}

static void wait_caught_up(struct fixture *f, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        if (caught_up(f))
            return;
        usleep(100000);
    }
    fail_msg("the aggregator did not reach the end of tm.events.v1 in %d s", timeout_s);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_aggregator_trend_exact_under_sigkill(void **state)
{
    struct fixture *f = *state;
    unsigned seed = (unsigned)time(NULL);
    int kills = 0;

    srand(seed);
    make_input(f);
    compute_truth(f);
    start_aggregator(f);
    for (int k = 0; k < 5; k++) {
        long long before = stored_total(f);
        produce(f, f->nmsgs * (size_t)k / 5, f->nmsgs * (size_t)(k + 1) / 5);
        for (int i = 0; i < 300 && stored_total(f) == before; i++)
            usleep(20000);
        usleep((useconds_t)(rand() % 100000));
        if (!caught_up(f))
            kills++;
        assert_int_equal(tm_harness_kill9(f->agg), 0);
        f->agg = -1;
        start_aggregator(f);
    }
    print_message("aggregator trend: %d of 5 SIGKILLs hit mid-stream (seed %u)\n", kills, seed);
    wait_caught_up(f, 120);
    usleep(300000);
    check_truth(f);

    /* The anomaly cases the input was built for. */
    expect_int(f, "tm:s:energy:trend", "anomaly", 1);
    expect_int(f, "tm:s:health:trend", "anomaly", 0);
    {
        double score = 0;
        redisReply *r = redisCommand(f->c, "ZREVRANGE tm:risk 0 0 WITHSCORES");
        assert_non_null(r);
        assert_int_equal(r->elements, 2);
        assert_string_equal(r->element[0]->str, "energy");
        score = strtod(r->element[1]->str, NULL);
        freeReplyObject(r);
        assert_true(score > 0);
    }

    /*
     * A SIGKILL and a restart on the same, fully consumed input change nothing. The new
     * member joins while the group still waits for the dead one: SIGTERM then (the member
     * has joined, its assignment is pending) exits 0; the next one gets the partitions,
     * resumes at the stored offsets and finds nothing to do.
     */
    assert_int_equal(tm_harness_kill9(f->agg), 0);
    f->agg = -1;
    start_aggregator(f);
    usleep(2500000); /* joined; the dead member's session (3 s) has not expired yet */
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    start_aggregator(f);
    wait_assigned(f, 30);
    usleep(300000);
    check_truth(f);
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aggregator_trend_exact_under_sigkill, setup, teardown),
    };

    return cmocka_run_group_tests_name("aggregator_trend", tests, NULL, NULL);
}
