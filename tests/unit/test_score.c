/*
 * test_score.c - the priority formula (tools/tmctl/score.c) on hand-computed inputs:
 * day weights, the 7/30-day windows, operator evidence, the trend and age factors and
 * their caps, and rounding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "tmctl.h"

/* cmocka's assert_float_equal compares floats; these are doubles. */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%.12f != %.12f", a_, b_);                                                    \
    } while (0)

static void test_score_volume_windows(void **state)
{
    struct ctl_day days[CTL_DAYS];
    struct ctl_volume v;

    (void)state;
    memset(days, 0, sizeof(days));
    /* today: 10 events, 5 low 3 medium 1 high 1 critical = 26 weight; 4 tied */
    days[0] = (struct ctl_day){10, {5, 3, 1, 1}, 4};
    /* 6 days ago: still in the 7 days; 2 events, both critical, 1 tied */
    days[6] = (struct ctl_day){2, {0, 0, 0, 2}, 1};
    /* 7 days ago: only in the 30 days; 4 events all high, 4 tied */
    days[7] = (struct ctl_day){4, {0, 0, 4, 0}, 4};
    /* 29 days ago: last day of the 30 */
    days[29] = (struct ctl_day){1, {1, 0, 0, 0}, 1};
    ctl_score_volume(days, &v);
    assert_int_equal(v.tied7, 5);
    assert_int_equal(v.tied30, 10);
    assert_near(v.v7, 4 * 26.0 / 10 + 1 * 20.0 / 2, 1e-12); /* 10.4 + 10 */
    assert_near(v.v30, 20.4 + 4 * 20.0 / 4 + 1.0, 1e-12);   /* + 20 + 1 */
    assert_near(v.e, 20.4 + 41.4 * 7.0 / 30.0, 1e-12);
}

static void test_score_empty_days(void **state)
{
    struct ctl_day days[CTL_DAYS];
    struct ctl_volume v;

    (void)state;
    memset(days, 0, sizeof(days));
    days[3] = (struct ctl_day){0, {0, 0, 0, 0}, 5}; /* tied without events: ignored */
    days[4] = (struct ctl_day){8, {8, 0, 0, 0}, 0}; /* events, none tied */
    ctl_score_volume(days, &v);
    assert_int_equal(v.tied7, 0);
    assert_near(v.e, 0, 0);
}

static void test_score_formula(void **state)
{
    struct ctl_score_params p = {25, 90};
    struct ctl_score_in in;
    struct ctl_score s;

    (void)state;
    memset(&in, 0, sizeof(in));
    in.sector.e = 17.0;
    in.weight = 5;
    in.z = 1.5;
    in.age_days = 45;
    ctl_score_compute(&in, &p, &s);
    assert_near(s.e, 17.0, 0);
    assert_near(s.t, 1.25, 1e-12);
    assert_near(s.a, 1.5, 1e-12);
    /* 10 x 5 x 1.25 x 1.5 x ln 18 = 270.97... */
    assert_near(s.priority, round(10 * 5 * 1.25 * 1.5 * log(18.0) * 100) / 100, 1e-9);
    assert_near(s.priority, 270.97, 1e-9);

    /* operator need: own evidence plus a quarter of the sector's */
    in.has_op = true;
    in.op.e = 3.0;
    ctl_score_compute(&in, &p, &s);
    assert_near(s.e, 3.0 + 0.25 * 17.0, 1e-12);
}

static void test_score_caps(void **state)
{
    struct ctl_score_params p = {25, 90};
    struct ctl_score_in in;
    struct ctl_score s;

    (void)state;
    memset(&in, 0, sizeof(in));
    in.sector.e = 1.0;
    in.weight = 3;
    in.z = -4; /* a falling trend does not lower the score */
    in.age_days = -3;
    ctl_score_compute(&in, &p, &s);
    assert_near(s.t, 1.0, 0);
    assert_near(s.a, 1.0, 0);
    in.z = 40;         /* capped at 6: T = 2 */
    in.age_days = 500; /* capped: A = 2 */
    ctl_score_compute(&in, &p, &s);
    assert_near(s.t, 2.0, 0);
    assert_near(s.a, 2.0, 0);
    assert_near(s.priority, round(10 * 3 * 2 * 2 * log(2.0) * 100) / 100, 1e-9);
    /* no evidence: 0 whatever the rest */
    in.sector.e = 0;
    ctl_score_compute(&in, &p, &s);
    assert_near(s.priority, 0, 0);
    /* weight 0 (a sector switched off in [risk]) */
    in.sector.e = 5;
    in.weight = 0;
    ctl_score_compute(&in, &p, &s);
    assert_near(s.priority, 0, 0);
}

static void test_score_rounding_and_band_weights(void **state)
{
    (void)state;
    assert_near(ctl_round2(1.005000001), 1.01, 1e-12);
    assert_near(ctl_round2(2.344), 2.34, 1e-12);
    assert_near(ctl_round2(2.346), 2.35, 1e-12);
    assert_int_equal(ctl_band_weight(0), 1);
    assert_int_equal(ctl_band_weight(1), 2);
    assert_int_equal(ctl_band_weight(2), 5);
    assert_int_equal(ctl_band_weight(3), 10);
    assert_int_equal(ctl_band_weight(4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_volume_windows),
        cmocka_unit_test(test_score_empty_days),
        cmocka_unit_test(test_score_formula),
        cmocka_unit_test(test_score_caps),
        cmocka_unit_test(test_score_rounding_and_band_weights),
    };
    return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
