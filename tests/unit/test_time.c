/*
 * test_time.c - RFC 3339 formatting and parsing, checked against known instants and
 * against the C library's timegm over a sweep of dates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tm/tm_time.h"

static int64_t parse(const char *s)
{
    int64_t ms = -12345;
    if (tm_time_parse(s, strlen(s), &ms) != 0)
        fail_msg("'%s' did not parse", s);
    return ms;
}

static void test_time_format_known(void **state)
{
    char buf[TM_TIME_LEN];
    (void)state;

    assert_int_equal(tm_time_format(0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    assert_int_equal(tm_time_format(1795418525123LL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2026-11-23T07:22:05.123Z");
    assert_int_equal(tm_time_format(951782400000LL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
    assert_int_equal(tm_time_format(-1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    assert_int_equal(tm_time_format(253402300799999LL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    /* Out of range and short buffers are refused. */
    assert_int_equal(tm_time_format(253402300800000LL, buf, sizeof(buf)), -1);
    assert_int_equal(tm_time_format(0, buf, TM_TIME_LEN - 1), -1);
}

/*
 * The formatter remembers the last seconds it wrote: times that come back to a second,
 * alternate between seconds (an event's ts and received) or step across midnight must
 * read the same as when formatted alone (checked against gmtime_r).
 */
static void test_time_format_interleaved(void **state)
{
    static const int64_t base[] = {1795418525123LL,  1795391999999LL, 951782399999LL, 0, -1000, -1,
                                   253402300799000LL};
    char buf[TM_TIME_LEN], want[TM_TIME_LEN + 16];
    uint32_t r = 12345;
    (void)state;

    for (int i = 0; i < 20000; i++) {
        int64_t ms;
        time_t sec;
        struct tm tm;

        r = r * 1103515245u + 12345u;
        ms = base[(r >> 8) % (sizeof(base) / sizeof(base[0]))] + (int64_t)((r >> 16) % 3000);
        if (ms > 253402300799999LL)
            ms = 253402300799999LL;
        sec = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
        gmtime_r(&sec, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)sec * 1000));
        assert_int_equal(tm_time_format(ms, buf, sizeof(buf)), 0);
        assert_string_equal(buf, want);
    }
}

static void test_time_parse_forms(void **state)
{
    (void)state;
    assert_int_equal(parse("2026-11-23T07:22:05.123Z"), 1795418525123LL);
    assert_int_equal(parse("2026-11-23t07:22:05.123z"), 1795418525123LL);
    assert_int_equal(parse("2026-11-23 07:22:05.123Z"), 1795418525123LL);
    assert_int_equal(parse("2026-11-23T07:22:05Z"), 1795418525000LL);
    assert_int_equal(parse("2026-11-23T07:22:05.1Z"), 1795418525100LL);
    assert_int_equal(parse("2026-11-23T07:22:05.123456789Z"), 1795418525123LL);
    assert_int_equal(parse("2026-11-23T09:22:05.123+02:00"), 1795418525123LL);
    assert_int_equal(parse("2026-11-22T21:22:05.123-10:00"), 1795418525123LL);
    /* RFC 3339's leap second example, read as the last millisecond of the minute. */
    assert_int_equal(parse("1990-12-31T23:59:60Z"), parse("1990-12-31T23:59:59.999Z"));
}

static void test_time_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11-23",
        "2026-11-23T07:22Z",
        "2026-11-23T07:22:05",
        "2026-11-23T07:22:05.Z",
        "2026-11-23T07:22:05.123",
        "2026-11-23T07:22:05+02",
        "2026-11-23T07:22:05+0200",
        "2026-11-23T07:22:05+24:00",
        "2026-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-23T24:00:00Z",
        "2026-11-23T07:60:00Z",
        "2026-11-23T07:22:61Z",
        "2026-11-23X07:22:05Z",
        "2026-11-23T07:22:05Zjunk",
        "+2026-11-23T07:22:05Z",
        "2026-1-23T07:22:05Z",
        "2026-11-23T07:22:05.1234567890Z",
    };
    int64_t ms;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (tm_time_parse(bad[i], strlen(bad[i]), &ms) == 0)
            fail_msg("'%s' parsed but should not", bad[i]);
    /* The length bounds the input: no reading past len even without a NUL. */
    assert_int_equal(tm_time_parse("2026-11-23T07:22:05Z", 19, &ms), -1);
}

static void test_time_matches_timegm(void **state)
{
    char buf[TM_TIME_LEN];
    (void)state;

    /* Every 1,000,003 seconds over 1970..2100: our day arithmetic against the C library. */
    for (int64_t t = 0; t < 4102444800LL; t += 1000003) {
        struct tm tmv;
        time_t tt = (time_t)t;
        char want[TM_TIME_LEN];

        gmtime_r(&tt, &tmv);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.000Z", &tmv);
        assert_int_equal(tm_time_format(t * 1000, buf, sizeof(buf)), 0);
        assert_string_equal(buf, want);
        assert_int_equal(parse(buf), t * 1000);
        assert_int_equal(tm_time_days_from_civil(tmv.tm_year + 1900, (unsigned)tmv.tm_mon + 1,
                                                 (unsigned)tmv.tm_mday),
                         t / 86400);
    }
}

static void test_time_clocks_advance(void **state)
{
    int64_t a = tm_time_now_ms(), m = tm_time_mono_ms();
    (void)state;

    assert_true(a > 1700000000000LL); /* after 2023 */
    assert_true(tm_time_mono_ms() >= m);
    assert_true(tm_time_now_ms() >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format_known),   cmocka_unit_test(test_time_parse_forms),
        cmocka_unit_test(test_time_parse_rejects),  cmocka_unit_test(test_time_matches_timegm),
        cmocka_unit_test(test_time_clocks_advance), cmocka_unit_test(test_time_format_interleaved),
    };
    return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}
