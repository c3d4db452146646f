/*
 * test_match.c - offers to needs (tools/tmctl/match.c): eligibility rules, a case where
 * first come, first served covers less priority than the optimum, priority before count,
 * and a few hundred random instances checked against exhaustive search (the optimum's
 * covered priority and need count must equal the best any assignment reaches) with the
 * invariants: each need at most once, each offer within capacity, only eligible pairs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

/* cmocka's assert_float_equal compares floats; these are doubles. */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%.12f != %.12f", a_, b_);                                                    \
    } while (0)

#define TODAY 20000 /* a day number */

static struct ctl_need mk_need(const char *id, const char *cat, const char *sector, double p,
                               int64_t opened)
{
    struct ctl_need n;

    memset(&n, 0, sizeof(n));
    snprintf(n.id, sizeof(n.id), "%s", id);
    snprintf(n.sector, sizeof(n.sector), "%s", sector);
    snprintf(n.region, sizeof(n.region), "UA-32");
    n.category = tm_need_category_index(cat);
    n.cost = 1000;
    n.opened = opened;
    n.closed = -1;
    n.priority = p;
    return n;
}

static struct ctl_offer mk_offer(const char *id, const char *cat, int64_t cap)
{
    struct ctl_offer o;

    memset(&o, 0, sizeof(o));
    snprintf(o.id, sizeof(o.id), "%s", id);
    snprintf(o.donor, sizeof(o.donor), "donor of %s", id);
    o.category = tm_need_category_index(cat);
    o.capacity = cap;
    o.cost_ceiling = -1;
    o.expires = -1;
    return o;
}

static void check_invariants(const struct ctl_need *n, size_t nn, const struct ctl_offer *o,
                             size_t no, const struct ctl_match *m)
{
    int64_t used[16] = {0};

    for (size_t j = 0; j < nn; j++) {
        int i = m->need_offer[j];
        if (i < 0)
            continue;
        assert_true(i < (int)no);
        assert_int_equal(ctl_match_eligible(&o[i], &n[j], TODAY), CTL_ELIG_OK);
        used[i]++;
    }
    for (size_t i = 0; i < no; i++) {
        assert_int_equal(used[i], m->used[i]);
        assert_true(used[i] <= o[i].capacity);
    }
}

static void test_match_beats_first_come(void **state)
{
    struct ctl_need n[2] = {mk_need("A", "edr", "energy", 10, TODAY - 90),
                            mk_need("B", "edr", "health", 9, TODAY - 30)};
    struct ctl_offer o[2] = {mk_offer("X", "edr", 1), mk_offer("Y", "edr", 1)};
    struct ctl_match m;
    char err[TM_ERR_LEN];

    (void)state;
    o[1].sectors = 1u << tm_sector_index("energy"); /* Y: energy only */
    assert_int_equal(ctl_match_run(n, 2, o, 2, TODAY, CTL_MATCH_FIRST_COME, &m, err), 0);
    check_invariants(n, 2, o, 2, &m);
    assert_int_equal(m.need_offer[0], 0); /* A takes X, the first offer that fits */
    assert_int_equal(m.need_offer[1], -1);
    assert_near(m.covered, 10, 1e-9);
    ctl_match_free(&m);

    assert_int_equal(ctl_match_run(n, 2, o, 2, TODAY, CTL_MATCH_OPTIMAL, &m, err), 0);
    check_invariants(n, 2, o, 2, &m);
    assert_int_equal(m.need_offer[0], 1); /* A -> Y, so B can have X */
    assert_int_equal(m.need_offer[1], 0);
    assert_near(m.covered, 19, 1e-9);
    assert_int_equal(m.ncovered, 2);
    ctl_match_free(&m);
}

static void test_match_priority_before_count(void **state)
{
    /* X can cover A or both B and C? No: X has capacity 1. A alone beats B + C only if
       A's priority is larger than their sum. */
    struct ctl_need n[3] = {mk_need("A", "backup", "energy", 7, TODAY),
                            mk_need("B", "backup", "energy", 3, TODAY),
                            mk_need("C", "backup", "energy", 3.5, TODAY)};
    struct ctl_offer o[2] = {mk_offer("X", "backup", 1), mk_offer("Y", "backup", 1)};
    struct ctl_match m;
    char err[TM_ERR_LEN];

    (void)state;
    o[1].sectors = 1u << tm_sector_index("health"); /* Y covers nobody here */
    assert_int_equal(ctl_match_run(n, 3, o, 2, TODAY, CTL_MATCH_OPTIMAL, &m, err), 0);
    assert_int_equal(m.need_offer[0], 0);
    assert_int_equal(m.need_offer[1], -1);
    assert_int_equal(m.need_offer[2], -1);
    assert_int_equal(m.used[1], 0);
    ctl_match_free(&m);

    /* equal priority covered either way: cover more needs (zero-priority ones too) */
    n[0].priority = 0;
    n[1].priority = 0;
    n[2].priority = 0;
    o[1].sectors = 0;
    o[0].capacity = 2;
    assert_int_equal(ctl_match_run(n, 3, o, 2, TODAY, CTL_MATCH_OPTIMAL, &m, err), 0);
    assert_int_equal(m.ncovered, 3);
    check_invariants(n, 3, o, 2, &m);
    ctl_match_free(&m);
}

static void test_match_eligibility(void **state)
{
    struct ctl_need n = mk_need("A", "edr", "energy", 5, TODAY);
    struct ctl_offer o = mk_offer("X", "edr", 1);

    (void)state;
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_OK);
    o.expires = TODAY; /* usable through its expiry day */
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_OK);
    o.expires = TODAY - 1;
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_EXPIRED);
    o.expires = -1;
    o.sectors = 1u << tm_sector_index("health");
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_SECTOR);
    o.sectors |= 1u << tm_sector_index("energy");
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_OK);
    o.regions = 1u << (tm_region_find("UA-46") - tm_regions);
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_REGION);
    n.region[0] = '\0'; /* a need without region cannot take a region-bound offer */
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_REGION);
    snprintf(n.region, sizeof(n.region), "UA-46");
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_OK);
    o.cost_ceiling = 999;
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_COST);
    o.cost_ceiling = 1000; /* at the ceiling is fine */
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_OK);
    n.category = tm_need_category_index("mfa");
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_CATEGORY);
    n.status = CTL_NEED_CLOSED;
    assert_int_equal(ctl_match_eligible(&o, &n, TODAY), CTL_ELIG_CLOSED);
    assert_string_equal(ctl_elig_name(CTL_ELIG_COST), "cost over ceiling");
}

/* ---- random instances against exhaustive search ------------------------------------ */

static uint64_t rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

struct best {
    int64_t cents;
    size_t count;
};

static void search(const struct ctl_need *n, size_t nn, const struct ctl_offer *o, size_t no,
                   size_t j, int64_t *left, int64_t cents, size_t count, struct best *b)
{
    if (j == nn) {
        if (cents > b->cents || (cents == b->cents && count > b->count)) {
            b->cents = cents;
            b->count = count;
        }
        return;
    }
    search(n, nn, o, no, j + 1, left, cents, count, b);
    for (size_t i = 0; i < no; i++)
        if (left[i] > 0 && ctl_match_eligible(&o[i], &n[j], TODAY) == CTL_ELIG_OK) {
            left[i]--;
            search(n, nn, o, no, j + 1, left, cents + llround(n[j].priority * 100), count + 1, b);
            left[i]++;
        }
}

static void test_match_random_against_exhaustive(void **state)
{
    static const char *const cats[] = {"edr", "backup"};
    static const char *const secs[] = {"energy", "health", "local-government"};
    int beaten = 0;

    (void)state;
    for (int round = 0; round < 400; round++) {
        struct ctl_need n[8];
        struct ctl_offer o[4];
        size_t nn = 1 + rnd(8), no = 1 + rnd(4);
        int64_t left[4];
        struct best b = {0, 0};
        struct ctl_match m, fc;
        char err[TM_ERR_LEN], id[8];
        int64_t got = 0;

        for (size_t j = 0; j < nn; j++) {
            snprintf(id, sizeof(id), "N%zu", j);
            n[j] = mk_need(id, cats[rnd(2)], secs[rnd(3)], rnd(5) == 0 ? 0 : rnd(3000) / 100.0,
                           TODAY - rnd(100));
            n[j].cost = 500 * (1 + rnd(4));
            if (rnd(10) == 0)
                n[j].status = CTL_NEED_CLOSED;
        }
        for (size_t i = 0; i < no; i++) {
            snprintf(id, sizeof(id), "O%zu", i);
            o[i] = mk_offer(id, cats[rnd(2)], 1 + rnd(3));
            if (rnd(2))
                o[i].sectors = (uint32_t)(1u << tm_sector_index(secs[rnd(3)])) |
                               (uint32_t)(1u << tm_sector_index(secs[rnd(3)]));
            if (rnd(3) == 0)
                o[i].cost_ceiling = 500 * (1 + rnd(4));
            if (rnd(8) == 0)
                o[i].expires = TODAY - 1;
            left[i] = o[i].capacity;
        }
        search(n, nn, o, no, 0, left, 0, 0, &b);
        assert_int_equal(ctl_match_run(n, nn, o, no, TODAY, CTL_MATCH_OPTIMAL, &m, err), 0);
        check_invariants(n, nn, o, no, &m);
        for (size_t j = 0; j < nn; j++)
            if (m.need_offer[j] >= 0)
                got += llround(n[j].priority * 100);
        if (got != b.cents || m.ncovered != b.count)
            fail_msg("round %d: optimum %lld cents / %zu needs, matcher %lld / %zu", round,
                     (long long)b.cents, b.count, (long long)got, m.ncovered);
        assert_int_equal(ctl_match_run(n, nn, o, no, TODAY, CTL_MATCH_FIRST_COME, &fc, err), 0);
        check_invariants(n, nn, o, no, &fc);
        assert_true(fc.covered <= m.covered + 1e-9);
        beaten += fc.covered < m.covered - 1e-9;
        ctl_match_free(&fc);
        ctl_match_free(&m);
    }
    /* the random instances do exercise cases where first come is worse */
    assert_true(beaten > 10);
}

static void test_match_empty(void **state)
{
    struct ctl_match m;
    char err[TM_ERR_LEN];
    struct ctl_need n = mk_need("A", "edr", "energy", 5, TODAY);

    (void)state;
    assert_int_equal(ctl_match_run(NULL, 0, NULL, 0, TODAY, CTL_MATCH_OPTIMAL, &m, err), 0);
    assert_int_equal(m.ncovered, 0);
    ctl_match_free(&m);
    assert_int_equal(ctl_match_run(&n, 1, NULL, 0, TODAY, CTL_MATCH_OPTIMAL, &m, err), 0);
    assert_int_equal(m.need_offer[0], -1);
    ctl_match_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_beats_first_come),
        cmocka_unit_test(test_match_priority_before_count),
        cmocka_unit_test(test_match_eligibility),
        cmocka_unit_test(test_match_random_against_exhaustive),
        cmocka_unit_test(test_match_empty),
    };
    return cmocka_run_group_tests_name("match", tests, NULL, NULL);
}
