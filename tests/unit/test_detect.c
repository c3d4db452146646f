/*
 * test_detect.c - the agent's detectors with a scripted clock: threshold per source
 * (edges of the count and of the window, suppression and its follow-up counts, sources
 * independent, eviction), rate spikes against a baseline, pass-through by severity,
 * folding of floods, and severity 9-10 and manual reports never folded. One test runs
 * real sshd lines (tests/data/syslog/loghub-OpenSSH_2k.log) through the libtm auth
 * parser; its expected counts were taken with grep (commands in the comments).
 *
 * Every event the detector emits is checked with tm_event_validate and kept in a list
 * the tests read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "tm/tm_event.h"
#include "tm/tm_parse.h"
#include "tm/tm_time.h"

#define SEC 1000LL
/* Start of every scripted clock: 2026-01-01T00:00:00Z, a multiple of every interval. */
#define T0 1767225600000LL
#define MAX_OUT 64

/* What the emit callback saw. */
struct sink {
    struct tm_event *events; /* MAX_OUT of them */
    size_t n;
    size_t total; /* including those past MAX_OUT */
};

static struct sink sink;
static struct tm_event ev; /* large; the event being fed */
static char err[TM_ERR_LEN];

static void emit_cb(void *arg, struct tm_event *e)
{
    struct sink *s = arg;
    char verr[TM_ERR_LEN];

    if (tm_event_validate(e, TM_EVENT_SUBMITTED, verr) != TM_EVENT_OK)
        fail_msg("emitted an invalid event: %s (summary '%s')", verr, e->summary);
    if (s->n < MAX_OUT)
        s->events[s->n++] = *e;
    s->total++;
}

static int setup(void **state)
{
    (void)state;
    sink.events = calloc(MAX_OUT, sizeof(*sink.events));
    sink.n = sink.total = 0;
    return sink.events == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    free(sink.events);
    sink.events = NULL;
    return 0;
}

static void sink_clear(void)
{
    sink.n = sink.total = 0;
}

static int64_t ms(const char *rfc3339)
{
    int64_t v = -1;

    if (tm_time_parse(rfc3339, strlen(rfc3339), &v) != 0)
        fail_msg("bad time in test: '%s'", rfc3339);
    return v;
}

/* Settings that switch off what a test does not look at. */
static void config_threshold_only(struct detect_config *c)
{
    detect_config_defaults(c);
    c->spike_enabled = false;
}

static void config_spike_only(struct detect_config *c)
{
    detect_config_defaults(c);
    c->threshold_enabled = false;
    c->fold_window_ms = 0;
}

static struct detect *create(const struct detect_config *c, int64_t now)
{
    struct detect *d = detect_create(c, emit_cb, &sink, now, err);

    if (d == NULL)
        fail_msg("detect_create: %s", err);
    return d;
}

/* A failed sshd login from ip, as the auth parser makes it. */
static const struct tm_event *failed_login(const char *ip, int64_t now)
{
    tm_event_init(&ev);
    ev.ts = now;
    tm_strlcpy(ev.source.kind, "auth", sizeof(ev.source.kind));
    tm_strlcpy(ev.source.host, "gw1", sizeof(ev.source.host));
    tm_strlcpy(ev.category, "bruteforce", sizeof(ev.category));
    ev.severity = 3;
    tm_strlcpy(ev.attack.technique, "T1110", sizeof(ev.attack.technique));
    tm_strlcpy(ev.attack.tactic, "credential-access", sizeof(ev.attack.tactic));
    tm_strlcpy(ev.src.ip, ip, sizeof(ev.src.ip));
    ev.src.port = 40000;
    snprintf(ev.summary, sizeof(ev.summary), "failed password for root from %s port 40000 ssh2",
             ip);
    return &ev;
}

/* A Suricata alert as the eve parser makes it (no technique unless given). */
static const struct tm_event *alert(int severity, const char *category, const char *src,
                                    int src_port, const char *dst, int64_t now)
{
    tm_event_init(&ev);
    ev.ts = now;
    tm_strlcpy(ev.source.kind, "suricata", sizeof(ev.source.kind));
    tm_strlcpy(ev.source.host, "ids1", sizeof(ev.source.host));
    tm_strlcpy(ev.category, category, sizeof(ev.category));
    ev.severity = severity;
    ev.confidence = 90;
    tm_strlcpy(ev.src.ip, src, sizeof(ev.src.ip));
    ev.src.port = src_port;
    tm_strlcpy(ev.dst.ip, dst, sizeof(ev.dst.ip));
    ev.dst.port = 443;
    tm_strlcpy(ev.summary, "[1:2031412:10] ET MALWARE FormBook CnC Checkin (GET)",
               sizeof(ev.summary));
    return &ev;
}

static void feed(struct detect *d, const struct tm_event *e, int64_t now)
{
    assert_int_equal(detect_feed(d, e, now), 0);
}

/* Ticks once a second from after `from` up to and including `to`, as the agent's timer. */
static void tick_until(struct detect *d, int64_t from, int64_t to)
{
    for (int64_t t = from - from % SEC + SEC; t <= to; t += SEC)
        detect_tick(d, t);
}

static struct detect_stats stats(const struct detect *d)
{
    struct detect_stats st;

    detect_get_stats(d, &st);
    return st;
}

/* ---- threshold ---------------------------------------------------------------------- */

static void test_detect_threshold_fires_at_count(void **state)
{
    struct detect_config c;
    struct detect *d;
    const struct tm_event *out;
    (void)state;

    config_threshold_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 19; i++)
        feed(d, failed_login("203.0.113.9", T0 + i * SEC), T0 + i * SEC);
    assert_int_equal(sink.total, 0); /* 19: not yet */
    feed(d, failed_login("203.0.113.9", T0 + 19 * SEC), T0 + 19 * SEC);
    assert_int_equal(sink.total, 1);
    out = &sink.events[0];
    assert_string_equal(out->category, "bruteforce");
    assert_string_equal(out->attack.technique, "T1110");
    assert_string_equal(out->attack.tactic, "credential-access");
    assert_int_equal(out->count, 20);
    assert_int_equal(out->severity, 6);
    assert_string_equal(out->src.ip, "203.0.113.9");
    assert_int_equal(out->src.port, -1);
    assert_string_equal(out->source.kind, "auth");
    assert_string_equal(out->source.host, "gw1");
    assert_int_equal(out->ts, T0 + 19 * SEC);
    assert_string_equal(out->summary, "20 failed ssh logins from 203.0.113.9 in 60 s");
    assert_int_equal(stats(d).emitted[DETECT_THRESHOLD], 1);
    assert_int_equal(stats(d).below_min, 20); /* severity 3 < 4: counted, not passed */
    assert_int_equal(stats(d).passed, 0);
    detect_destroy(d);
}

/* A count of N on one event ("message repeated N times") is N attempts. */
static void test_detect_threshold_counts_repeats(void **state)
{
    struct detect_config c;
    struct detect *d;
    (void)state;

    config_threshold_only(&c);
    d = create(&c, T0);
    sink_clear();
    failed_login("198.51.100.7", T0);
    ev.count = 15;
    feed(d, &ev, T0);
    failed_login("198.51.100.7", T0 + SEC);
    ev.count = 4;
    feed(d, &ev, T0 + SEC);
    assert_int_equal(sink.total, 0);
    failed_login("198.51.100.7", T0 + 2 * SEC);
    ev.count = 3;
    feed(d, &ev, T0 + 2 * SEC);
    assert_int_equal(sink.total, 1);
    assert_int_equal(sink.events[0].count, 22);
    detect_destroy(d);
}

static void test_detect_threshold_window_edges(void **state)
{
    struct detect_config c;
    struct detect *d;
    (void)state;

    config_threshold_only(&c);
    d = create(&c, T0);
    sink_clear();
    /* 40 attempts 3.2 s apart: never 20 within 60 s. */
    for (int i = 0; i < 40; i++)
        feed(d, failed_login("192.0.2.1", T0 + i * 3200), T0 + i * 3200);
    assert_int_equal(sink.total, 0);

    /* 19 at t, the 20th exactly 60 s later: the first 19 have left the window. */
    for (int i = 0; i < 19; i++)
        feed(d, failed_login("192.0.2.2", T0 + 200 * SEC), T0 + 200 * SEC);
    feed(d, failed_login("192.0.2.2", T0 + 260 * SEC), T0 + 260 * SEC);
    assert_int_equal(sink.total, 0);

    /* 19 at t, the 20th 1 ms before the window closes: fires. */
    for (int i = 0; i < 19; i++)
        feed(d, failed_login("192.0.2.3", T0 + 400 * SEC), T0 + 400 * SEC);
    feed(d, failed_login("192.0.2.3", T0 + 460 * SEC - 1), T0 + 460 * SEC - 1);
    assert_int_equal(sink.total, 1);
    assert_string_equal(sink.events[0].src.ip, "192.0.2.3");
    assert_int_equal(sink.events[0].count, 20);
    detect_destroy(d);
}

static void test_detect_threshold_suppression_followup(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0, fired;
    (void)state;

    config_threshold_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 20; i++, t += SEC)
        feed(d, failed_login("203.0.113.9", t), t);
    fired = t - SEC;
    assert_int_equal(sink.total, 1);

    /* It keeps going: 35 more over 210 s, ticking every second: nothing new. */
    for (int i = 0; i < 35; i++) {
        tick_until(d, t - SEC, t);
        feed(d, failed_login("203.0.113.9", t), t);
        t += 6 * SEC;
    }
    tick_until(d, t - 6 * SEC, fired + 300 * SEC - 1);
    assert_int_equal(sink.total, 1);
    assert_int_equal(stats(d).sources, 1);

    /* End of the suppression period: one follow-up with the exact count. */
    detect_tick(d, fired + 300 * SEC);
    assert_int_equal(sink.total, 2);
    assert_int_equal(sink.events[1].count, 35);
    assert_string_equal(sink.events[1].src.ip, "203.0.113.9");
    assert_string_equal(sink.events[1].attack.technique, "T1110");
    assert_string_equal(sink.events[1].summary,
                        "35 more failed ssh logins from 203.0.113.9 in 300 s (still going)");
    assert_int_equal(stats(d).emitted[DETECT_THRESHOLD_MORE], 1);

    /* Quiet for the next period: no follow-up, and the source is forgotten. */
    tick_until(d, fired + 300 * SEC, fired + 700 * SEC);
    assert_int_equal(sink.total, 2);
    assert_int_equal(stats(d).sources, 0);

    /* A new run needs the whole count again. */
    t = fired + 800 * SEC;
    for (int i = 0; i < 19; i++, t += SEC)
        feed(d, failed_login("203.0.113.9", t), t);
    assert_int_equal(sink.total, 2);
    feed(d, failed_login("203.0.113.9", t), t);
    assert_int_equal(sink.total, 3);
    assert_int_equal(sink.events[2].count, 20);
    assert_int_equal(stats(d).emitted[DETECT_THRESHOLD], 2);
    detect_destroy(d);
}

static void test_detect_threshold_sources_independent(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    config_threshold_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 19; i++, t += SEC) {
        feed(d, failed_login("203.0.113.9", t), t);
        feed(d, failed_login("2001:db8::7", t), t);
    }
    assert_int_equal(sink.total, 0);
    feed(d, failed_login("203.0.113.9", t), t);
    assert_int_equal(sink.total, 1);
    assert_string_equal(sink.events[0].src.ip, "203.0.113.9");
    /* The first one's suppression does not hold the second back. */
    feed(d, failed_login("2001:db8::7", t), t);
    assert_int_equal(sink.total, 2);
    assert_string_equal(sink.events[1].src.ip, "2001:db8::7");
    assert_int_equal(sink.events[1].count, 20);
    assert_int_equal(stats(d).sources, 2);
    detect_destroy(d);
}

static void test_detect_threshold_match_criteria(void **state)
{
    struct detect_config c;
    struct detect *d;
    (void)state;

    config_threshold_only(&c);
    tm_strlcpy(c.threshold_match_kind, "auth", sizeof(c.threshold_match_kind));
    tm_strlcpy(c.threshold_match_prefix, "failed ", sizeof(c.threshold_match_prefix));
    c.threshold_count = 3;
    d = create(&c, T0);
    sink_clear();
    /* Wrong kind, wrong prefix, wrong category, no address: none counts. */
    failed_login("192.0.2.9", T0);
    tm_strlcpy(ev.source.kind, "cef", sizeof(ev.source.kind));
    feed(d, &ev, T0);
    failed_login("192.0.2.9", T0);
    tm_strlcpy(ev.summary, "invalid user admin from 192.0.2.9", sizeof(ev.summary));
    feed(d, &ev, T0);
    failed_login("192.0.2.9", T0);
    tm_strlcpy(ev.category, "scan", sizeof(ev.category));
    feed(d, &ev, T0);
    failed_login("", T0);
    feed(d, &ev, T0);
    assert_int_equal(stats(d).sources, 0);
    for (int i = 0; i < 3; i++)
        feed(d, failed_login("192.0.2.9", T0), T0);
    assert_int_equal(sink.total, 1);
    assert_int_equal(sink.events[0].count, 3);
    detect_destroy(d);
}

static char *read_file(const char *rel, size_t *len)
{
    const char *root = getenv("TM_ROOT");
    char path[1024];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/%s", root != NULL ? root : ".", rel);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open '%s' (set TM_ROOT to the source tree)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/*
 * Real sshd lines through the auth parser, fed as a live tail would (now = the line's
 * time, the timer ticking every second). Counting only "Failed <method>" lines, one per
 * attempt. Expected, with a 60 s window:
 *   grep -E 'Failed .* from [0-9.]+ port' loghub-OpenSSH_2k.log: 20 or more within 60 s
 *   only for 183.62.140.253, 103.99.0.122 and 112.95.230.3 (5.188.10.180 and
 *   187.141.143.180 have 20 and 80 lines, spread wider);
 *   grep -c 'Failed password.*183.62.140.253 port' -> 286, from 10:54:29 to 11:04:43, at
 *   most 12 s apart; the 20th at 10:55:07, so periods end at 11:00:07 and 11:05:07;
 *   grep 'Failed password.*183.62.140.253 port' | awk '$3 < "11:00:07"' | wc -l -> 161:
 *   events of 20, 161 - 20 = 141 and 286 - 161 = 125.
 */
static void test_detect_threshold_sshd_log(void **state)
{
    const struct tm_parser *auth = tm_parser_find("auth");
    const struct tm_parse_ctx ctx = {.now_ms = T0};
    struct detect_config c;
    struct detect *d;
    size_t len, n183 = 0;
    char *buf = read_file("tests/data/syslog/loghub-OpenSSH_2k.log", &len);
    const char *p = buf, *end = buf + len;
    int64_t now = ms("2025-12-10T00:00:00Z"), sum183 = 0;
    bool fired103 = false, fired112 = false;
    (void)state;

    assert_non_null(auth);
    config_threshold_only(&c);
    tm_strlcpy(c.threshold_match_kind, "auth", sizeof(c.threshold_match_kind));
    tm_strlcpy(c.threshold_match_prefix, "failed ", sizeof(c.threshold_match_prefix));
    d = create(&c, now);
    sink_clear();
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        if (auth->parse(&ctx, p, n, &ev, err) == TM_PARSE_EVENT) {
            tick_until(d, now, ev.ts);
            now = ev.ts;
            feed(d, &ev, now);
        }
        p += n + 1;
    }
    tick_until(d, now, now + 900 * SEC);
    free(buf);

    assert_true(sink.total <= MAX_OUT);
    for (size_t i = 0; i < sink.n; i++) {
        const struct tm_event *e = &sink.events[i];
        assert_string_equal(e->category, "bruteforce");
        assert_string_equal(e->attack.technique, "T1110");
        assert_string_equal(e->source.kind, "auth");
        assert_string_equal(e->source.host, "LabSZ");
        if (strcmp(e->src.ip, "183.62.140.253") == 0) {
            static const int64_t want[] = {20, 141, 125};
            assert_true(n183 < 3);
            assert_int_equal(e->count, want[n183]);
            if (n183 == 0)
                assert_int_equal(e->ts, ms("2025-12-10T10:55:07Z"));
            sum183 += e->count;
            n183++;
        } else if (strcmp(e->src.ip, "103.99.0.122") == 0) {
            fired103 = true;
        } else if (strcmp(e->src.ip, "112.95.230.3") == 0) {
            fired112 = true;
        } else {
            fail_msg("unexpected event for '%s'", e->src.ip);
        }
    }
    assert_int_equal(n183, 3);
    assert_int_equal(sum183, 286);
    assert_true(fired103 && fired112);
    assert_int_equal(stats(d).emitted[DETECT_THRESHOLD], 3);
    assert_int_equal(stats(d).passed, 0); /* sshd events are severity 1-3 */
    assert_int_equal(stats(d).sources, 0);
    detect_destroy(d);
}

/* ---- rate spike --------------------------------------------------------------------- */

/* One interval of 10 s starting at t with n events (one event of count n, mid-interval). */
static void interval(struct detect *d, int64_t t, int64_t n)
{
    if (n > 0) {
        tm_event_init(&ev);
        ev.ts = t + 5 * SEC;
        tm_strlcpy(ev.source.kind, "suricata", sizeof(ev.source.kind));
        tm_strlcpy(ev.category, "other", sizeof(ev.category));
        ev.severity = 2;
        ev.count = n;
        tm_strlcpy(ev.summary, "[anomaly] stream: packet with invalid ack", sizeof(ev.summary));
        feed(d, &ev, t + 5 * SEC);
    }
    tick_until(d, t, t + 10 * SEC);
}

static void test_detect_spike_fires_against_baseline(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    config_spike_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 40; i++, t += 10 * SEC)
        interval(d, t, 50);
    assert_int_equal(sink.total, 0);
    assert_true(stats(d).baseline > 49.9 && stats(d).baseline < 50.1);
    interval(d, t, 300);
    assert_int_equal(sink.total, 1);
    assert_string_equal(sink.events[0].category, "ddos");
    assert_string_equal(sink.events[0].attack.technique, "T1498");
    assert_string_equal(sink.events[0].attack.tactic, "impact");
    assert_int_equal(sink.events[0].count, 300);
    assert_int_equal(sink.events[0].severity, 7);
    assert_int_equal(sink.events[0].ts, t + 10 * SEC);
    assert_string_equal(sink.events[0].summary, "rate spike: 300 events in 10 s, baseline 50.0");
    assert_int_equal(stats(d).emitted[DETECT_SPIKE], 1);
    detect_destroy(d);
}

static void test_detect_spike_scan_category(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    config_spike_only(&c);
    tm_strlcpy(c.spike_category, "scan", sizeof(c.spike_category));
    c.spike_warmup = 3;
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 3; i++, t += 10 * SEC)
        interval(d, t, 10);
    interval(d, t, 1000);
    assert_int_equal(sink.total, 1);
    assert_string_equal(sink.events[0].category, "scan");
    assert_string_equal(sink.events[0].attack.technique, "T1595");
    assert_string_equal(sink.events[0].attack.tactic, "reconnaissance");
    detect_destroy(d);
}

static void test_detect_spike_not_during_warmup(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    config_spike_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 10; i++, t += 10 * SEC)
        interval(d, t, 50);
    interval(d, t, 5000); /* the 11th of 30 warm-up intervals */
    assert_int_equal(sink.total, 0);
    detect_destroy(d);
}

static void test_detect_spike_not_for_small_bump(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    config_spike_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 30; i++, t += 10 * SEC)
        interval(d, t, 50);
    interval(d, t, 240); /* 4.8 x: under the factor of 5 */
    t += 10 * SEC;
    assert_int_equal(sink.total, 0);
    detect_destroy(d);

    /* A quiet input: 6 x its baseline of 5, but under the minimum of 100 events. */
    d = create(&c, T0);
    t = T0;
    for (int i = 0; i < 30; i++, t += 10 * SEC)
        interval(d, t, 5);
    interval(d, t, 30);
    interval(d, t + 10 * SEC, 99);
    assert_int_equal(sink.total, 0);
    interval(d, t + 20 * SEC, 100);
    assert_int_equal(sink.total, 1);
    detect_destroy(d);
}

/*
 * A spike of 60 intervals of 1000 over a baseline of 50: one event at its first interval,
 * one follow-up per 300 s period with the exact counts, the baseline frozen meanwhile.
 */
static void test_detect_spike_long_suppressed(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0, first_end;
    (void)state;

    config_spike_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 30; i++, t += 10 * SEC)
        interval(d, t, 50);
    first_end = t + 10 * SEC;
    for (int i = 0; i < 60; i++, t += 10 * SEC)
        interval(d, t, 1000);
    /* Fired at the first, then the period [first_end, first_end + 300 s) held 30. */
    assert_int_equal(sink.total, 2);
    assert_int_equal(sink.events[0].count, 1000);
    assert_int_equal(sink.events[0].ts, first_end);
    assert_int_equal(sink.events[1].count, 30000);
    assert_int_equal(sink.events[1].ts, first_end + 300 * SEC);
    assert_string_equal(sink.events[1].summary,
                        "rate spike goes on: 30000 events in 30 intervals of 10 s within 300 s "
                        "(baseline 50.0)");
    assert_true(stats(d).baseline > 49.9 && stats(d).baseline < 50.1);
    /* Back to normal: the second period's 29 spiking intervals, then silence. */
    for (int i = 0; i < 60; i++, t += 10 * SEC)
        interval(d, t, 50);
    assert_int_equal(sink.total, 3);
    assert_int_equal(sink.events[2].count, 29000);
    assert_int_equal(sink.events[2].ts, first_end + 600 * SEC);
    assert_int_equal(stats(d).emitted[DETECT_SPIKE], 1);
    assert_int_equal(stats(d).emitted[DETECT_SPIKE_MORE], 2);
    /* A new spike later is a new event. */
    interval(d, t, 400);
    assert_int_equal(sink.total, 4);
    assert_int_equal(sink.events[3].count, 400);
    assert_int_equal(stats(d).emitted[DETECT_SPIKE], 2);
    detect_destroy(d);
}

/* ---- pass-through and folding ------------------------------------------------------- */

static void test_detect_pass_by_severity(void **state)
{
    struct detect_config c;
    struct detect *d;
    struct tm_event copy;
    (void)state;

    detect_config_defaults(&c);
    c.spike_enabled = false;
    c.threshold_enabled = false;
    d = create(&c, T0);
    sink_clear();
    feed(d, alert(3, "malware", "10.0.0.5", 5000, "198.51.100.20", T0), T0);
    assert_int_equal(sink.total, 0);
    assert_int_equal(stats(d).below_min, 1);

    /* At the minimum: out unchanged. */
    alert(4, "malware", "10.0.0.5", 5000, "198.51.100.20", T0);
    tm_strlcpy(ev.attack.technique, "T1071.001", sizeof(ev.attack.technique));
    tm_strlcpy(ev.attack.tactic, "command-and-control", sizeof(ev.attack.tactic));
    tm_strlcpy(ev.raw, "{\"event_type\":\"alert\"}", sizeof(ev.raw));
    copy = ev;
    feed(d, &ev, T0);
    assert_int_equal(sink.total, 1);
    assert_true(tm_event_equal(&sink.events[0], &copy));

    /* Without a technique, the category's is filled in; nothing else changes. */
    alert(8, "exploit", "10.0.0.6", 5001, "198.51.100.21", T0);
    copy = ev;
    feed(d, &ev, T0);
    assert_int_equal(sink.total, 2);
    assert_string_equal(sink.events[1].attack.technique, "T1190");
    assert_string_equal(sink.events[1].attack.tactic, "initial-access");
    tm_strlcpy(copy.attack.technique, "T1190", sizeof(copy.attack.technique));
    tm_strlcpy(copy.attack.tactic, "initial-access", sizeof(copy.attack.tactic));
    assert_true(tm_event_equal(&sink.events[1], &copy));
    assert_int_equal(stats(d).passed, 2);
    assert_int_equal(stats(d).fed, 3);
    detect_destroy(d);
}

static void test_detect_attack_map(void **state)
{
    static const char *const rows[][3] = {
        {"bruteforce", "T1110", "credential-access"},
        {"ddos", "T1498", "impact"},
        {"scan", "T1595", "reconnaissance"},
        {"exploit", "T1190", "initial-access"},
        {"phishing", "T1566", "initial-access"},
        {"ransomware", "T1486", "impact"},
        {"wiper", "T1485", "impact"},
        {"defacement", "T1491", "impact"},
    };
    const char *technique, *tactic;
    (void)state;

    for (size_t i = 0; i < TM_ARRAY_LEN(rows); i++) {
        assert_int_equal(detect_attack_for_category(rows[i][0], &technique, &tactic), 0);
        assert_string_equal(technique, rows[i][1]);
        assert_string_equal(tactic, rows[i][2]);
    }
    assert_int_equal(detect_attack_for_category("malware", &technique, &tactic), -1);
    assert_int_equal(detect_attack_for_category("other", &technique, &tactic), -1);
}

static void test_detect_fold_flood(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    detect_config_defaults(&c);
    c.spike_enabled = false;
    c.threshold_enabled = false;
    d = create(&c, T0);
    sink_clear();
    /* 100 identical alerts in 50 s (source ports differ): the first passes. */
    for (int i = 0; i < 100; i++, t += 500)
        feed(d, alert(6, "malware", "10.0.0.5", 40000 + i, "198.51.100.20", t), t);
    /* Same signature to another destination: a key of its own, passes. */
    feed(d, alert(6, "malware", "10.0.0.5", 39999, "198.51.100.99", t), t);
    assert_int_equal(sink.total, 2);
    assert_int_equal(sink.events[0].src.port, 40000);
    assert_string_equal(sink.events[1].dst.ip, "198.51.100.99");
    assert_int_equal(stats(d).suppressed, 99);

    tick_until(d, T0, T0 + 59 * SEC);
    assert_int_equal(sink.total, 2);
    detect_tick(d, T0 + 60 * SEC);
    assert_int_equal(sink.total, 3);
    assert_int_equal(sink.events[2].count, 99);
    assert_string_equal(sink.events[2].category, "malware");
    assert_int_equal(sink.events[2].severity, 6);
    assert_string_equal(sink.events[2].src.ip, "10.0.0.5");
    assert_int_equal(sink.events[2].src.port, -1);
    assert_string_equal(sink.events[2].dst.ip, "198.51.100.20");
    assert_int_equal(sink.events[2].dst.port, 443);
    assert_int_equal(sink.events[2].confidence, 90);
    assert_string_equal(sink.events[2].summary,
                        "99 more in 60 s: [1:2031412:10] ET MALWARE FormBook CnC Checkin (GET)");
    assert_int_equal(stats(d).emitted[DETECT_FOLD_SUMMARY], 1);

    /* Still coming: the next window folds all 10, none passes. */
    t = T0 + 70 * SEC;
    for (int i = 0; i < 10; i++, t += SEC)
        feed(d, alert(6, "malware", "10.0.0.5", 41000 + i, "198.51.100.20", t), t);
    assert_int_equal(sink.total, 3);
    tick_until(d, T0 + 60 * SEC, T0 + 120 * SEC);
    assert_int_equal(sink.total, 4);
    assert_int_equal(sink.events[3].count, 10);

    /* A window with none forgets the key; the next one passes again. */
    tick_until(d, T0 + 120 * SEC, T0 + 181 * SEC);
    assert_int_equal(sink.total, 4);
    assert_int_equal(stats(d).folds, 0);
    feed(d, alert(6, "malware", "10.0.0.5", 42000, "198.51.100.20", t), T0 + 200 * SEC);
    assert_int_equal(sink.total, 5);
    assert_int_equal(sink.events[4].count, 1);
    assert_int_equal(stats(d).passed, 3);
    assert_int_equal(stats(d).suppressed, 109);
    detect_destroy(d);
}

static void test_detect_critical_and_manual_never_folded(void **state)
{
    struct detect_config c;
    struct detect *d;
    (void)state;

    detect_config_defaults(&c);
    c.spike_enabled = false;
    c.pass_min_severity = 10;
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 30; i++)
        feed(d, alert(9, "ransomware", "10.0.0.5", 40000, "198.51.100.20", T0 + i), T0 + i);
    for (int i = 0; i < 30; i++) {
        alert(2, "phishing", "", -1, "", T0 + i);
        ev.dst.port = -1;
        tm_strlcpy(ev.source.kind, "manual", sizeof(ev.source.kind));
        tm_strlcpy(ev.summary, "phishing mail to the accounting team", sizeof(ev.summary));
        feed(d, &ev, T0 + i);
    }
    assert_int_equal(sink.total, 60);
    assert_string_equal(sink.events[0].attack.technique, "T1486");
    assert_string_equal(sink.events[59].source.kind, "manual");
    assert_string_equal(sink.events[59].attack.technique, "T1566");
    tick_until(d, T0, T0 + 120 * SEC);
    detect_flush(d, T0 + 121 * SEC);
    assert_int_equal(sink.total, 60);
    assert_int_equal(stats(d).suppressed, 0);
    assert_int_equal(stats(d).passed, 60);
    detect_destroy(d);
}

/* A summary at its limit, prefixed with the count, is cut at a character boundary. */
static void test_detect_fold_summary_cut_utf8(void **state)
{
    struct detect_config c;
    struct detect *d;
    size_t len;
    (void)state;

    detect_config_defaults(&c);
    c.spike_enabled = false;
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 2; i++) {
        alert(6, "malware", "10.0.0.5", 1, "198.51.100.20", T0);
        tm_strlcpy(ev.summary, "[1:1:1] ", sizeof(ev.summary));
        for (len = 8; len + 2 <= TM_EVENT_SUMMARY_MAX; len += 2)
            memcpy(ev.summary + len, "\xd0\xb6", 2); /* U+0436 */
        ev.summary[len] = '\0';
        feed(d, &ev, T0);
    }
    detect_tick(d, T0 + 60 * SEC); /* emit_cb validates (UTF-8, length) */
    assert_int_equal(sink.total, 2);
    len = strlen(sink.events[1].summary);
    assert_true(len >= TM_EVENT_SUMMARY_MAX - 3 && len <= TM_EVENT_SUMMARY_MAX);
    assert_int_equal(strncmp(sink.events[1].summary, "1 more in 60 s: [1:1:1] ", 24), 0);
    detect_destroy(d);
}

/* ---- bounds, flush, configuration --------------------------------------------------- */

static void test_detect_eviction_bound(void **state)
{
    struct detect_config c;
    struct detect *d;
    int64_t t = T0;
    (void)state;

    config_threshold_only(&c);
    c.threshold_max_sources = 3;
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 19; i++)
        feed(d, failed_login("192.0.2.1", t), t);
    feed(d, failed_login("192.0.2.2", t + 1), t + 1);
    feed(d, failed_login("192.0.2.3", t + 2), t + 2);
    feed(d, failed_login("192.0.2.4", t + 3), t + 3); /* evicts .1, least recently seen */
    assert_int_equal(stats(d).sources, 3);
    assert_int_equal(stats(d).evicted_sources, 1);
    feed(d, failed_login("192.0.2.1", t + 4), t + 4); /* starts again at 1: no event */
    assert_int_equal(sink.total, 0);
    assert_int_equal(stats(d).evicted_sources, 2);

    /* A firing source evicted first hands over the attempts it held back. */
    for (int i = 0; i < 19 + 7; i++)
        feed(d, failed_login("192.0.2.1", t + 5), t + 5);
    assert_int_equal(sink.total, 1);
    assert_int_equal(sink.events[0].count, 20);
    for (int i = 5; i < 8; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "192.0.2.%d", i);
        feed(d, failed_login(ip, t + 6), t + 6);
    }
    assert_int_equal(sink.total, 2);
    assert_string_equal(sink.events[1].src.ip, "192.0.2.1");
    assert_int_equal(sink.events[1].count, 7);
    assert_int_equal(stats(d).sources, 3);
    assert_int_equal(stats(d).evicted_sources, 5);
    detect_destroy(d);

    /* Fold keys are bounded the same way; an evicted key's count is emitted. */
    detect_config_defaults(&c);
    c.spike_enabled = false;
    c.threshold_enabled = false;
    c.fold_max_keys = 2;
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 5; i++)
        feed(d, alert(6, "malware", "10.0.0.1", 1, "198.51.100.1", T0), T0);
    feed(d, alert(6, "malware", "10.0.0.2", 1, "198.51.100.1", T0), T0);
    feed(d, alert(6, "malware", "10.0.0.3", 1, "198.51.100.1", T0), T0);
    assert_int_equal(sink.total, 4); /* three firsts and the evicted key's 4 */
    assert_int_equal(sink.events[2].count, 4);
    assert_string_equal(sink.events[2].src.ip, "10.0.0.1");
    assert_int_equal(stats(d).folds, 2);
    assert_int_equal(stats(d).evicted_folds, 1);
    detect_destroy(d);
}

static void test_detect_flush_pending(void **state)
{
    struct detect_config c;
    struct detect *d;
    (void)state;

    config_threshold_only(&c);
    d = create(&c, T0);
    sink_clear();
    for (int i = 0; i < 25; i++)
        feed(d, failed_login("203.0.113.9", T0), T0);
    for (int i = 0; i < 3; i++)
        feed(d, alert(5, "scan", "10.0.0.1", 1, "198.51.100.1", T0), T0);
    assert_int_equal(sink.total, 2); /* the threshold and the first alert */
    detect_flush(d, T0 + SEC);
    assert_int_equal(sink.total, 4);
    assert_int_equal(sink.events[2].count, 5);
    assert_int_equal(sink.events[3].count, 2);
    assert_string_equal(sink.events[3].attack.technique, "T1595");
    detect_destroy(d);
}

static void test_detect_config_errors(void **state)
{
    struct detect_config c;
    (void)state;

    config_threshold_only(&c);
    c.threshold_count = 0;
    assert_null(detect_create(&c, emit_cb, &sink, T0, err));
    assert_string_equal(err, "threshold_count: must be from 1 to 1000000000, got 0");

    config_threshold_only(&c);
    tm_strlcpy(c.threshold_category, "brute", sizeof(c.threshold_category));
    assert_null(detect_create(&c, emit_cb, &sink, T0, err));
    assert_string_equal(err, "threshold_category: unknown category 'brute'");

    detect_config_defaults(&c);
    c.spike_suppress_ms = 5000;
    assert_null(detect_create(&c, emit_cb, &sink, T0, err));
    assert_string_equal(err, "spike_suppress_ms: must be from 10000 to 2678400000, got 5000");

    detect_config_defaults(&c);
    tm_strlcpy(c.threshold_match_kind, "ssh", sizeof(c.threshold_match_kind));
    assert_null(detect_create(&c, emit_cb, &sink, T0, err));
    assert_string_equal(err, "threshold_match_kind: unknown source kind 'ssh'");

    detect_config_defaults(&c);
    assert_null(detect_create(&c, NULL, NULL, T0, err));
    assert_string_equal(err, "detector: no emit callback");
    detect_destroy(create(&c, T0));
    detect_destroy(NULL);
}

static void test_detect_rejects_bad_severity(void **state)
{
    struct detect_config c;
    struct detect *d;
    (void)state;

    detect_config_defaults(&c);
    d = create(&c, T0);
    alert(0, "malware", "10.0.0.1", 1, "198.51.100.1", T0);
    assert_int_equal(detect_feed(d, &ev, T0), -1);
    ev.severity = 11;
    assert_int_equal(detect_feed(d, &ev, T0), -1);
    assert_int_equal(stats(d).fed, 0);
    detect_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_threshold_fires_at_count),
        cmocka_unit_test(test_detect_threshold_counts_repeats),
        cmocka_unit_test(test_detect_threshold_window_edges),
        cmocka_unit_test(test_detect_threshold_suppression_followup),
        cmocka_unit_test(test_detect_threshold_sources_independent),
        cmocka_unit_test(test_detect_threshold_match_criteria),
        cmocka_unit_test(test_detect_threshold_sshd_log),
        cmocka_unit_test(test_detect_spike_fires_against_baseline),
        cmocka_unit_test(test_detect_spike_scan_category),
        cmocka_unit_test(test_detect_spike_not_during_warmup),
        cmocka_unit_test(test_detect_spike_not_for_small_bump),
        cmocka_unit_test(test_detect_spike_long_suppressed),
        cmocka_unit_test(test_detect_pass_by_severity),
        cmocka_unit_test(test_detect_attack_map),
        cmocka_unit_test(test_detect_fold_flood),
        cmocka_unit_test(test_detect_critical_and_manual_never_folded),
        cmocka_unit_test(test_detect_fold_summary_cut_utf8),
        cmocka_unit_test(test_detect_eviction_bound),
        cmocka_unit_test(test_detect_flush_pending),
        cmocka_unit_test(test_detect_config_errors),
        cmocka_unit_test(test_detect_rejects_bad_severity),
    };
    return cmocka_run_group_tests_name("detect", tests, setup, teardown);
}
