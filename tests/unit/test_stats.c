/*
 * test_stats.c - what the accepted events of a flush add to Redis (aggregator/stats.c):
 * events filed under profiles and expanded once must give, key by key and field by
 * field, the increments key schema v1 asks for each event (docs/redis-keys.md), with the
 * TTL of each key; late events miss the minute windows; region and operator hashes carry
 * no technique or tactic; sets and top sources get their members.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_common.h"
#include "tm/tm_time.h"

#define DAY_S 86400

static struct agg_config config(void)
{
    struct agg_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retain_minute_ms = 2LL * DAY_S * 1000;
    cfg.retain_hour_ms = 35LL * DAY_S * 1000;
    cfg.retain_day_ms = 400LL * DAY_S * 1000;
    cfg.retain_sources_ms = 35LL * DAY_S * 1000;
    return cfg;
}

static struct agg_event event(const char *ts, const char *sector, const char *category,
                              int severity, int64_t count, const char *src)
{
    struct agg_event e;

    memset(&e, 0, sizeof(e));
    assert_int_equal(tm_time_parse(ts, strlen(ts), &e.ts), 0);
    e.windows = AGG_WIN_1M | AGG_WIN_1H | AGG_WIN_1D;
    e.severity = severity;
    e.count = count;
    e.seq = -1;
    snprintf(e.sector, sizeof(e.sector), "%s", sector);
    snprintf(e.category, sizeof(e.category), "%s", category);
    snprintf(e.operator_id, sizeof(e.operator_id), "op-1");
    snprintf(e.region, sizeof(e.region), "UA-32");
    snprintf(e.technique, sizeof(e.technique), "T1110");
    snprintf(e.tactic, sizeof(e.tactic), "credential-access");
    snprintf(e.src_ip, sizeof(e.src_ip), "%s", src);
    return e;
}

static int64_t get(const struct agg_batch *b, char kind, const char *key, const char *member)
{
    int64_t v = -1;

    if (agg_batch_get(b, kind, key, member, &v) != 0)
        return -1;
    return v;
}

static void test_stats_profiles_sum_per_key(void **state)
{
    struct agg_config cfg = config();
    struct agg_stats *s = agg_stats_create();
    struct agg_batch *b = agg_batch_create();
    struct agg_event ev[4];

    (void)state;
    assert_non_null(s);
    assert_non_null(b);
    ev[0] = event("2026-11-23T07:22:05.000Z", "energy", "ddos", 9, 3, "198.51.100.1");
    ev[1] = event("2026-11-23T07:22:40.000Z", "energy", "ddos", 9, 4, "198.51.100.1");
    ev[2] = event("2026-11-23T07:22:59.999Z", "energy", "scan", 2, 1, "198.51.100.2");
    /* late: hour and day only; no technique, no source, no region */
    ev[3] = event("2026-11-23T06:01:00.000Z", "health", "phishing", 5, 10, "");
    ev[3].windows = AGG_WIN_1H | AGG_WIN_1D;
    ev[3].technique[0] = ev[3].tactic[0] = ev[3].region[0] = '\0';
    for (size_t i = 0; i < TM_ARRAY_LEN(ev); i++)
        assert_int_equal(agg_stats_add(s, &ev[i]), 0);
    assert_int_equal(agg_stats_emit(s, b, &cfg), 0);

    /* the sector's minute: three events, their counts, per category and band */
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "events"), 3);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "count"), 8);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "cat:ddos"), 2);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "cat:scan"), 1);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "sev:critical"), 2);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "sev:low"), 1);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "tech:T1110"), 3);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "tac:credential-access"),
                     3);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:s:energy:1m:202611230722", "sec:energy"), -1);
    assert_int_equal(get(b, AGG_K_EXPIRE, "tm:s:energy:1m:202611230722", ""), 2 * DAY_S);
    /* nationally: every event, per sector; the late one is not in a minute */
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1m:202611230722", "sec:energy"), 3);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1m:202611230601", "events"), -1);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1h:2026112306", "sec:health"), 1);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1d:20261123", "events"), 4);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1d:20261123", "count"), 18);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1d:20261123", "sev:medium"), 1);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:n:1d:20261123", "tech:T1110"), 3);
    assert_int_equal(get(b, AGG_K_EXPIRE, "tm:n:1h:2026112306", ""), 35 * DAY_S);
    assert_int_equal(get(b, AGG_K_EXPIRE, "tm:n:1d:20261123", ""), 400 * DAY_S);
    /* region and operator by day: no technique or tactic; no region, no region hash */
    assert_int_equal(get(b, AGG_K_HINCR, "tm:r:UA-32:1d:20261123", "events"), 3);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:r:UA-32:1d:20261123", "tech:T1110"), -1);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:o:op-1:1d:20261123", "events"), 4);
    assert_int_equal(get(b, AGG_K_HINCR, "tm:o:op-1:1d:20261123", "cat:phishing"), 1);
    /* sets: operators hit, distinct sources, top sources by events */
    assert_true(get(b, AGG_K_SADD, "tm:s:health:ops:1d:20261123", "op-1") >= 0);
    assert_true(get(b, AGG_K_PFADD, "tm:s:energy:src:1d:20261123", "198.51.100.2") >= 0);
    assert_true(get(b, AGG_K_PFADD, "tm:n:src:1d:20261123", "198.51.100.1") >= 0);
    assert_int_equal(get(b, AGG_K_ZINCR, "tm:s:energy:top:1d:20261123", "198.51.100.1"), 2);
    assert_int_equal(get(b, AGG_K_ZINCR, "tm:n:top:1d:20261123", "198.51.100.2"), 1);
    assert_int_equal(get(b, AGG_K_EXPIRE, "tm:n:top:1d:20261123", ""), 35 * DAY_S);
    assert_int_equal(get(b, AGG_K_PFADD, "tm:s:health:src:1d:20261123", ""), -1);

    /* Cleared, the same stats hold nothing. */
    agg_stats_clear(s);
    agg_batch_clear(b);
    assert_int_equal(agg_stats_emit(s, b, &cfg), 0);
    assert_int_equal(agg_batch_count(b), 0);
    agg_batch_destroy(b);
    agg_stats_destroy(s);
}

struct compare {
    const struct agg_batch *other;
    size_t entries;
};

static int same_cb(void *arg, const struct agg_group *g)
{
    struct compare *c = arg;

    for (size_t i = 0; i < g->n; i++) {
        int64_t v;
        if (agg_batch_get(c->other, g->kind, g->key, g->members[i], &v) != 0 || v != g->values[i])
            fail_msg("%c %s %s: %lld in one flush, other apart", g->kind, g->key, g->members[i],
                     (long long)g->values[i]);
        c->entries++;
    }
    return 0;
}

/*
 * Events filed together in one flush give the same increments as each event expanded on
 * its own and the results added up: profiles only save work.
 */
static void test_stats_one_flush_equals_events_apart(void **state)
{
    static const char *const cats[] = {"ddos", "scan", "malware"};
    static const char *const sectors[] = {"energy", "health", "banking", "space"};
    struct agg_config cfg = config();
    struct agg_stats *together = agg_stats_create(), *apart = agg_stats_create();
    struct agg_batch *all = agg_batch_create(), *sum = agg_batch_create();
    struct compare c = {sum, 0};

    (void)state;
    assert_non_null(together);
    assert_non_null(apart);
    for (int i = 0; i < 2000; i++) {
        char ts[TM_TIME_LEN], src[32];
        struct agg_event e;
        assert_int_equal(tm_time_format(1795420800000LL + (int64_t)i * 7919, ts, sizeof(ts)), 0);
        snprintf(src, sizeof(src), "203.0.113.%d", i % 37);
        e = event(ts, sectors[i % 4], cats[i % 3], 1 + i % 10, 1 + i % 5, src);
        if (i % 7 == 0)
            e.windows = AGG_WIN_1H | AGG_WIN_1D; /* late */
        if (i % 11 == 0)
            e.technique[0] = '\0';
        assert_int_equal(agg_stats_add(together, &e), 0);
        agg_stats_clear(apart);
        assert_int_equal(agg_stats_add(apart, &e), 0);
        assert_int_equal(agg_stats_emit(apart, sum, &cfg), 0);
    }
    assert_int_equal(agg_stats_emit(together, all, &cfg), 0);
    assert_int_equal(agg_batch_emit(all, same_cb, &c), 0);
    assert_int_equal(c.entries, agg_batch_count(all));
    assert_int_equal(agg_batch_count(all), agg_batch_count(sum));
    assert_true(c.entries > 1000);
    agg_batch_destroy(sum);
    agg_batch_destroy(all);
    agg_stats_destroy(apart);
    agg_stats_destroy(together);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_profiles_sum_per_key),
        cmocka_unit_test(test_stats_one_flush_equals_events_apart),
    };

    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
