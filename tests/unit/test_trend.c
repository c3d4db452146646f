/*
 * test_trend.c - the rolling figures, EWMA trend with z-score and anomaly flag, and the
 * sector risk score (aggregator/trend.c). They are computed by a Lua script that a flush
 * runs inside its MULTI/EXEC (so national figures see every member's increments; see
 * trend.c), so this test runs that script in a private redis-server (the integration
 * harness starts it): window hashes are written directly, the script is called as a flush
 * calls it, and every figure it stores must equal what this test computes on its own from
 * docs/aggregator.md's formulas: sums over UTC hours and calendar days (across a leap day
 * and a year end), the EWMA from the first day with events, the floor of 1 on sigma, z,
 * both anomaly rules, the risk score with its trend factor capped at z = 6, the anchor
 * that only rises, and the [risk] weights.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator.h"
#include "harness.h"
#include "tm/tm_time.h"

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define TTL_S 34560000 /* 400 days */

struct fixture {
    struct tm_harness_redis redis;
    redisContext *c;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct timeval tv = {5, 0};

    if (f == NULL)
        return -1;
    *state = f;
    if (tm_harness_redis_start(&f->redis) != 0)
        return -1;
    f->c = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    return f->c == NULL || f->c->err ? -1 : 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f == NULL)
        return 0;
    if (f->c != NULL)
        redisFree(f->c);
    tm_harness_redis_stop(&f->redis);
    free(f);
    return 0;
}

/* Each test starts from an empty database. */
static int flush_db(void **state)
{
    struct fixture *f = *state;
    redisReply *r = redisCommand(f->c, "FLUSHALL");

    assert_non_null(r);
    freeReplyObject(r);
    return 0;
}

static int64_t at(const char *s)
{
    int64_t t;

    assert_int_equal(tm_time_parse(s, strlen(s), &t), 0);
    return t;
}

/* UTC label of ms with strftime: "%Y%m%d%H" (hour) or "%Y%m%d" (day). */
static void label(int64_t ms, bool hour, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    assert_non_null(gmtime_r(&secs, &tm));
    assert_true(strftime(out, len, hour ? "%Y%m%d%H" : "%Y%m%d", &tm) > 0);
}

/* Band counts of one window: events, count, low, medium, high, critical. */
struct bands {
    long long events, count, low, medium, high, critical;
};

static void put_window(struct fixture *f, const char *prefix, int64_t ms, bool hour, struct bands b)
{
    char key[128], l[16];
    redisReply *r;

    label(ms, hour, l, sizeof(l));
    snprintf(key, sizeof(key), "%s:%s:%s", prefix, hour ? "1h" : "1d", l);
    r = redisCommand(f->c,
                     "HSET %s events %lld count %lld sev:low %lld sev:medium %lld sev:high %lld "
                     "sev:critical %lld",
                     key, b.events, b.count, b.low, b.medium, b.high, b.critical);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* A day with n events, all medium, count 2 each (enough for the trend). */
static void put_day(struct fixture *f, const char *prefix, int64_t day_ms, long long n)
{
    put_window(f, prefix, day_ms, false, (struct bands){n, 2 * n, 0, n, 0, 0});
}

/* Runs the trend script the way a flush does. */
static void run(struct fixture *f, const char *prefix, int64_t anchor, int alpha_pct, int days,
                int k, int64_t weight, const char *member)
{
    char roll[96], trend[96], a[32], ttl[32], al[16], nb[16], kk[16], w[32];
    const char *argv[] = {
        "EVAL", agg_trend_script, "3", roll, trend, "tm:risk", prefix, a, ttl, al, nb, kk, w,
        member};
    redisReply *r;

    snprintf(roll, sizeof(roll), "%s:roll", prefix);
    snprintf(trend, sizeof(trend), "%s:trend", prefix);
    snprintf(a, sizeof(a), "%lld", (long long)anchor);
    snprintf(ttl, sizeof(ttl), "%d", TTL_S);
    snprintf(al, sizeof(al), "%d", alpha_pct);
    snprintf(nb, sizeof(nb), "%d", days);
    snprintf(kk, sizeof(kk), "%d", k);
    snprintf(w, sizeof(w), "%lld", (long long)weight);
    r = redisCommandArgv(f->c, (int)TM_ARRAY_LEN(argv), argv, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("the trend script failed: %s", r->str);
    freeReplyObject(r);
}

static void expect(struct fixture *f, const char *key, const char *field, const char *want)
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
    expect(f, key, field, s);
}

/* A field stored with %.4f. */
static void expect_num(struct fixture *f, const char *key, const char *field, double want)
{
    char s[64];

    snprintf(s, sizeof(s), "%.4f", want);
    expect(f, key, field, s);
}

/* The documented trend of a daily series x[0..n) whose last element is today. */
struct trend {
    double mu, sd, z;
    long long hist;
    int anomaly;
};

static struct trend trend_of(const long long *x, int n, double alpha, double k)
{
    struct trend t = {0, 0, 0, 0, 0};
    double var = 0, today = (double)x[n - 1];

    for (int d = 0; d < n - 1; d++) {
        if (t.hist == 0 && x[d] == 0)
            continue; /* the baseline starts at the first day with events */
        if (t.hist == 0) {
            t.mu = (double)x[d];
            t.hist = 1;
            continue;
        }
        double diff = (double)x[d] - t.mu, incr = alpha * diff;
        t.mu += incr;
        var = (1 - alpha) * (var + diff * incr);
        t.hist++;
    }
    t.sd = sqrt(var);
    if (t.hist > 0)
        t.z = (today - t.mu) / (t.sd > 1 ? t.sd : 1);
    t.anomaly = t.hist > 0 && (t.z >= 3 || (t.mu > 0 && today >= k * t.mu));
    return t;
}

/* Writes x[0..n) as the n days up to the anchor's, runs the script, checks the trend. */
static struct trend check_series(struct fixture *f, const long long *x, int n, int days, int k)
{
    int64_t anchor = at("2026-11-23T15:30:00.000Z");
    int64_t day = anchor / DAY_MS * DAY_MS;
    struct trend t;
    int m = n - 1 < days ? n : days + 1; /* the days the baseline can see, and today */

    for (int i = 0; i < n; i++)
        if (x[i] > 0)
            put_day(f, "tm:s:energy", day - (int64_t)(n - 1 - i) * DAY_MS, x[i]);
    run(f, "tm:s:energy", anchor, 30, days, k, 5, "energy");
    t = trend_of(x + n - m, m, 0.3, k);
    expect(f, "tm:s:energy:trend", "day", "20261123");
    expect_int(f, "tm:s:energy:trend", "today", x[n - 1]);
    expect_num(f, "tm:s:energy:trend", "baseline", t.mu);
    expect_num(f, "tm:s:energy:trend", "sd", t.sd);
    expect_num(f, "tm:s:energy:trend", "z", t.z);
    expect_int(f, "tm:s:energy:trend", "anomaly", t.anomaly);
    expect_int(f, "tm:s:energy:trend", "history_days", t.hist);
    return t;
}

/* A varied series: the EWMA of mean and variance, z and no anomaly. */
static void test_trend_ewma_and_z(void **state)
{
    static const long long x[] = {20, 24, 19, 30, 22, 25, 21, 28, 23, 26, 27};
    struct trend t = check_series(*state, x, (int)TM_ARRAY_LEN(x), 28, 3);

    assert_int_equal(t.hist, 10);
    assert_true(t.sd > 1 && t.z > 0 && t.z < 3);
    assert_int_equal(t.anomaly, 0);
}

/* A flat baseline has sigma 0: the floor of 1 keeps z finite (20 -> 26 is z = 6). */
static void test_trend_flat_baseline_floor(void **state)
{
    static const long long x[] = {20, 20, 20, 20, 20, 20, 20, 20, 26};
    struct trend t = check_series(*state, x, (int)TM_ARRAY_LEN(x), 28, 3);

    assert_true(t.sd == 0);
    assert_true(t.z == 6);
    assert_int_equal(t.anomaly, 1);
    expect(*state, "tm:s:energy:trend", "z", "6.0000");
}

/*
 * The baseline starts at the first day with events (a new sector is not compared with
 * the days before it existed); a quiet day after that counts as 0. Only the baseline_days
 * before today are seen.
 */
static void test_trend_baseline_start_and_quiet_days(void **state)
{
    static const long long x[] = {40, 0, 0, 0, 12, 15, 0, 14, 13, 16};
    struct trend t;

    t = check_series(*state, x, (int)TM_ARRAY_LEN(x), 5, 3); /* sees 12, 15, 0, 14, 13 */
    assert_int_equal(t.hist, 5);
    flush_db(state);
    t = check_series(*state, x, (int)TM_ARRAY_LEN(x), 28, 3); /* from the 40 on */
    assert_int_equal(t.hist, 9);
}

/* The ratio rule: today >= k x baseline flags an anomaly even when z < 3. */
static void test_trend_ratio_anomaly(void **state)
{
    static const long long x[] = {2, 40, 1, 35, 3, 50, 2, 30, 4, 45, 60};
    struct trend t = check_series(*state, x, (int)TM_ARRAY_LEN(x), 28, 2);

    assert_true(t.z < 3);
    assert_true(60 >= 2 * t.mu);
    assert_int_equal(t.anomaly, 1);
}

/* No history (a sector's first day): z 0, baseline 0, no anomaly. */
static void test_trend_no_history(void **state)
{
    static const long long x[] = {500};
    struct trend t = check_series(*state, x, 1, 28, 3);

    assert_int_equal(t.hist, 0);
    expect(*state, "tm:s:energy:trend", "baseline", "0.0000");
    expect(*state, "tm:s:energy:trend", "z", "0.0000");
    expect_int(*state, "tm:s:energy:trend", "anomaly", 0);
}

/*
 * Rolling sums over UTC hours and calendar days across a leap day and a month end: the
 * anchor at 2028-03-01 05:10 takes the hours from 2028-02-29 06:00 and the days from
 * 2028-02-24 (7 d) and 2028-01-31 (30 d); windows just outside do not count.
 */
static void test_trend_rolling_sums_across_leap_day(void **state)
{
    struct fixture *f = *state;
    int64_t anchor = at("2028-03-01T05:10:00.000Z"), hour = anchor / HOUR_MS * HOUR_MS;
    int64_t day = anchor / DAY_MS * DAY_MS;
    long long h24 = 0, c24 = 0, s24 = 0, d7 = 0, c7 = 0, s7 = 0, d30 = 0, c30 = 0, s30 = 0;

    for (int i = 0; i < 30; i++) { /* hours H-29 .. H */
        struct bands b = {i + 1, 3 * (i + 1), i % 2, 1, i % 3, i % 5 == 0};
        put_window(f, "tm:s:energy", hour - (int64_t)i * HOUR_MS, true, b);
        if (i < 24) {
            h24 += b.events;
            c24 += b.count;
            s24 += b.high + b.critical;
        }
    }
    for (int i = 0; i < 35; i++) { /* days D-34 .. D */
        struct bands b = {100 + i, 7 * i, 1, 2, 3 + i % 4, i % 2};
        put_window(f, "tm:s:energy", day - (int64_t)i * DAY_MS, false, b);
        if (i < 7) {
            d7 += b.events;
            c7 += b.count;
            s7 += b.high + b.critical;
        }
        if (i < 30) {
            d30 += b.events;
            c30 += b.count;
            s30 += b.high + b.critical;
        }
    }
    run(f, "tm:s:energy", anchor, 30, 28, 3, 5, "energy");
    expect_int(f, "tm:s:energy:roll", "anchor_ms", anchor);
    expect(f, "tm:s:energy:roll", "anchor", "2028030105");
    expect_int(f, "tm:s:energy:roll", "events_24h", h24);
    expect_int(f, "tm:s:energy:roll", "count_24h", c24);
    expect_int(f, "tm:s:energy:roll", "serious_24h", s24);
    expect_int(f, "tm:s:energy:roll", "events_7d", d7);
    expect_int(f, "tm:s:energy:roll", "count_7d", c7);
    expect_int(f, "tm:s:energy:roll", "serious_7d", s7);
    expect_int(f, "tm:s:energy:roll", "events_30d", d30);
    expect_int(f, "tm:s:energy:roll", "count_30d", c30);
    expect_int(f, "tm:s:energy:roll", "serious_30d", s30);
    expect(f, "tm:s:energy:trend", "day", "20280301");

    /* Across a year end: the day labels of the 7 days up to 2027-01-02. */
    anchor = at("2027-01-02T00:00:00.000Z");
    d7 = 0;
    for (int i = 0; i < 8; i++) {
        put_day(f, "tm:s:health", anchor - (int64_t)i * DAY_MS, 10 + i);
        if (i < 7)
            d7 += 10 + i;
    }
    run(f, "tm:s:health", anchor, 30, 28, 3, 4, "health");
    expect_int(f, "tm:s:health:roll", "events_7d", d7);
    expect(f, "tm:s:health:roll", "anchor", "2027010200");
}

/* The documented risk of 24 h band counts, weight w and trend z. */
static double risk_of(long long low, long long medium, long long high, long long critical, double w,
                      double z)
{
    double v = (double)(low + 2 * medium + 5 * high + 10 * critical);
    double tf = 1 + (z < 0 ? 0 : z > 6 ? 6 : z) / 6;

    return 10 * w * tf * log(1 + v);
}

static void expect_score(struct fixture *f, const char *member, const char *want)
{
    redisReply *r = redisCommand(f->c, "ZSCORE tm:risk %s", member);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    if (strtod(r->str, NULL) != strtod(want, NULL))
        fail_msg("tm:risk %s = %s, expected %s", member, r->str, want);
    freeReplyObject(r);
}

/*
 * Risk = round2(10 w T ln(1 + V)), V = 1 low + 2 medium + 5 high + 10 critical over the
 * 24 hours up to the anchor, T = 1 + min(max(z, 0), 6) / 6: a steep rise doubles the
 * score at most, a fall does not lower it below the volume's. Written to the trend hash
 * and to tm:risk.
 */
static void test_trend_risk_score(void **state)
{
    struct fixture *f = *state;
    int64_t anchor = at("2026-11-23T10:00:00.000Z"), day = anchor / DAY_MS * DAY_MS;
    char want[32];

    /* the hours: 3 low, 4 medium, 2 high, 1 critical in the 24 h; one more hour outside */
    put_window(f, "tm:s:energy", anchor, true, (struct bands){4, 4, 1, 2, 1, 0});
    put_window(f, "tm:s:energy", anchor - 23 * HOUR_MS, true, (struct bands){6, 6, 2, 2, 1, 1});
    put_window(f, "tm:s:energy", anchor - 24 * HOUR_MS, true, (struct bands){9, 9, 9, 0, 0, 0});
    /* the days: a flat 10 before today, today 10 (z = 0) */
    for (int i = 1; i <= 5; i++)
        put_day(f, "tm:s:energy", day - i * DAY_MS, 10);
    put_day(f, "tm:s:energy", day, 10);
    run(f, "tm:s:energy", anchor, 30, 28, 3, 5, "energy");
    expect_int(f, "tm:s:energy:trend", "weighted_24h", 3 + 2 * 4 + 5 * 2 + 10 * 1);
    snprintf(want, sizeof(want), "%.2f", risk_of(3, 4, 2, 1, 5, 0));
    expect(f, "tm:s:energy:trend", "risk", want);
    expect_score(f, "energy", want);

    /* today 40 on a flat 10: z = 30, the trend factor stops at 2 */
    put_day(f, "tm:s:energy", day, 40);
    run(f, "tm:s:energy", anchor, 30, 28, 3, 5, "energy");
    expect(f, "tm:s:energy:trend", "z", "30.0000");
    snprintf(want, sizeof(want), "%.2f", risk_of(3, 4, 2, 1, 5, 6));
    expect(f, "tm:s:energy:trend", "risk", want);
    expect_score(f, "energy", want);

    /* a quieter day than the baseline (z < 0) scores as z = 0; weight 2 */
    put_window(f, "tm:s:health", anchor, true, (struct bands){5, 5, 5, 0, 0, 0});
    for (int i = 1; i <= 5; i++)
        put_day(f, "tm:s:health", day - i * DAY_MS, 30);
    put_day(f, "tm:s:health", day, 5);
    run(f, "tm:s:health", anchor, 30, 28, 3, 2, "health");
    snprintf(want, sizeof(want), "%.2f", risk_of(5, 0, 0, 0, 2, 0));
    expect(f, "tm:s:health:trend", "risk", want);
    expect_score(f, "health", want);

    /* national: figures, no risk */
    put_day(f, "tm:n", day, 50);
    run(f, "tm:n", anchor, 30, 28, 3, 1, "");
    expect_int(f, "tm:n:trend", "today", 50);
    {
        redisReply *r = redisCommand(f->c, "HEXISTS tm:n:trend risk");
        assert_non_null(r);
        assert_int_equal(r->integer, 0);
        freeReplyObject(r);
        r = redisCommand(f->c, "ZCARD tm:risk");
        assert_non_null(r);
        assert_int_equal(r->integer, 2);
        freeReplyObject(r);
    }
}

/* The anchor (the rolling figures' "now") only rises: an older candidate keeps it. */
static void test_trend_anchor_only_rises(void **state)
{
    struct fixture *f = *state;
    int64_t late = at("2026-11-23T15:00:00.000Z"), early = at("2026-11-20T08:00:00.000Z");
    redisReply *r;

    put_day(f, "tm:s:energy", late / DAY_MS * DAY_MS, 7);
    put_day(f, "tm:s:energy", early / DAY_MS * DAY_MS, 9);
    run(f, "tm:s:energy", late, 30, 28, 3, 5, "energy");
    run(f, "tm:s:energy", early, 30, 28, 3, 5, "energy");
    expect_int(f, "tm:s:energy:roll", "anchor_ms", late);
    expect(f, "tm:s:energy:trend", "day", "20261123");
    expect_int(f, "tm:s:energy:trend", "today", 7);
    r = redisCommand(f->c, "TTL tm:s:energy:trend");
    assert_non_null(r);
    assert_true(r->integer > TTL_S - 10 && r->integer <= TTL_S);
    freeReplyObject(r);
}

/* Weights: [risk] in the config, else the sector table's criticality, else 1. */
static void test_trend_risk_weights(void **state)
{
    struct agg_config cfg;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.risk_weights[0].sector, sizeof(cfg.risk_weights[0].sector), "health");
    cfg.risk_weights[0].weight = 2;
    cfg.risk_weight_count = 1;
    assert_int_equal(agg_risk_weight(&cfg, "health"), 2);
    assert_int_equal(agg_risk_weight(&cfg, "energy"), 5);
    assert_int_equal(agg_risk_weight(&cfg, "local-government"), 3);
    assert_int_equal(agg_risk_weight(&cfg, "no-such-sector"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_trend_ewma_and_z, flush_db),
        cmocka_unit_test_setup(test_trend_flat_baseline_floor, flush_db),
        cmocka_unit_test_setup(test_trend_baseline_start_and_quiet_days, flush_db),
        cmocka_unit_test_setup(test_trend_ratio_anomaly, flush_db),
        cmocka_unit_test_setup(test_trend_no_history, flush_db),
        cmocka_unit_test_setup(test_trend_rolling_sums_across_leap_day, flush_db),
        cmocka_unit_test_setup(test_trend_risk_score, flush_db),
        cmocka_unit_test_setup(test_trend_anchor_only_rises, flush_db),
        cmocka_unit_test(test_trend_risk_weights),
    };

    return cmocka_run_group_tests_name("trend", tests, setup, teardown);
}
