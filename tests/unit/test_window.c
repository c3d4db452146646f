/*
 * test_window.c - tm-aggregator's event-time rules (aggregator/window.c): window starts
 * and UTC labels, the watermark, the future-clock clamp and which windows a late event
 * still reaches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aggregator.h"
#include "tm/tm_time.h"

#define MIN 60000LL
#define HOUR 3600000LL
#define DAY 86400000LL

static int64_t at(const char *s)
{
    int64_t t;

    assert_int_equal(tm_time_parse(s, 24, &t), 0);
    return t;
}

static void test_window_start_and_labels(void **state)
{
    int64_t t = at("2026-11-23T07:22:05.123Z");
    char l[AGG_LABEL_LEN];

    (void)state;
    assert_int_equal(agg_window_start(t, AGG_1M), at("2026-11-23T07:22:00.000Z"));
    assert_int_equal(agg_window_start(t, AGG_1H), at("2026-11-23T07:00:00.000Z"));
    assert_int_equal(agg_window_start(t, AGG_1D), at("2026-11-23T00:00:00.000Z"));
    assert_int_equal(agg_window_label(t, AGG_1M, l, sizeof(l)), 0);
    assert_string_equal(l, "202611230722");
    assert_int_equal(agg_window_label(t, AGG_1H, l, sizeof(l)), 0);
    assert_string_equal(l, "2026112307");
    assert_int_equal(agg_window_label(t, AGG_1D, l, sizeof(l)), 0);
    assert_string_equal(l, "20261123");
    assert_int_equal(agg_hour_label(at("2026-12-31T23:59:59.999Z"), l, sizeof(l)), 0);
    assert_string_equal(l, "2026123123");
    /* Before 1970 the window still starts at or before the event (floor, not truncation). */
    assert_int_equal(agg_window_start(-1, AGG_1M), -MIN);
    assert_int_equal(agg_window_label(-1, AGG_1D, l, sizeof(l)), 0);
    assert_string_equal(l, "19691231");
    /* Too small a buffer is an error, not a truncated key. */
    assert_int_equal(agg_window_label(t, AGG_1M, l, 8), -1);
    assert_string_equal(agg_res_name(AGG_1H), "1h");
    assert_int_equal(agg_res_len_ms(AGG_1D), DAY);
}

static void test_window_watermark_and_future_clamp(void **state)
{
    int64_t t = at("2026-11-23T07:00:00.000Z");

    (void)state;
    assert_int_equal(agg_watermark(AGG_TS_NONE, 10 * MIN), AGG_TS_NONE);
    assert_int_equal(agg_watermark(t, 10 * MIN), t - 10 * MIN);
    /* Only forward. */
    assert_int_equal(agg_max_ts_advance(t, t - HOUR, t - HOUR, 5 * MIN), t);
    assert_int_equal(agg_max_ts_advance(AGG_TS_NONE, t, t + 100, 5 * MIN), t);
    /* A clock a day ahead of its receive time moves the watermark only 5 min past it. */
    assert_int_equal(agg_max_ts_advance(t, t + DAY, t, 5 * MIN), t + 5 * MIN);
}

static void test_window_lateness_rule(void **state)
{
    const int64_t retain[AGG_RES_COUNT] = {2 * DAY, 35 * DAY, 400 * DAY};
    int64_t wm = at("2026-11-23T07:00:00.000Z");

    (void)state;
    /* Nothing seen yet, or at/after the watermark: every window. */
    assert_int_equal(agg_window_mask(wm - DAY, AGG_TS_NONE, retain), 7);
    assert_int_equal(agg_window_mask(wm, wm, retain), 7);
    /* Late by a millisecond: hour and day only. */
    assert_int_equal(agg_window_mask(wm - 1, wm, retain), AGG_WIN_1H | AGG_WIN_1D);
    /* 40 days late: the hour window is past its retention, the day window is not. */
    assert_int_equal(agg_window_mask(wm - 40 * DAY, wm, retain), AGG_WIN_1D);
    /* The hour window whose end + retention is exactly the watermark: gone; the next one
     * (an event one millisecond younger) is still open. */
    assert_int_equal(agg_window_mask(wm - 35 * DAY - 1, wm, retain), AGG_WIN_1D);
    assert_int_equal(agg_window_mask(wm - 35 * DAY, wm, retain), AGG_WIN_1H | AGG_WIN_1D);
    /* Older than every retention: nothing. */
    assert_int_equal(agg_window_mask(wm - 500 * DAY, wm, retain), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_start_and_labels),
        cmocka_unit_test(test_window_watermark_and_future_clamp),
        cmocka_unit_test(test_window_lateness_rule),
    };

    return cmocka_run_group_tests_name("window", tests, NULL, NULL);
}
