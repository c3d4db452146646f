/*
 * test_batch.c - the in-memory increments of one aggregator flush (aggregator/batch.c):
 * sums, min/max, insert-if-absent, long names, growth past the initial table, clearing,
 * and grouped, sorted emission.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "aggregator.h"

struct seen {
    int groups;
    char log[512];
    int64_t total;
};

static int record_cb(void *arg, const struct agg_group *g)
{
    struct seen *s = arg;
    size_t n = strlen(s->log);

    s->groups++;
    snprintf(s->log + n, sizeof(s->log) - n, "%c %s:", g->kind, g->key);
    for (size_t i = 0; i < g->n; i++) {
        n = strlen(s->log);
        snprintf(s->log + n, sizeof(s->log) - n, " %s=%lld", g->members[i],
                 (long long)g->values[i]);
    }
    n = strlen(s->log);
    snprintf(s->log + n, sizeof(s->log) - n, ";");
    return 0;
}

static void test_batch_sum_min_max_and_groups(void **state)
{
    struct agg_batch *b = agg_batch_create();
    struct seen s = {0};
    int64_t v;

    (void)state;
    assert_non_null(b);
    assert_int_equal(agg_batch_put(b, 'H', "tm:s:energy:1m:1", "events", 1, AGG_OP_SUM), 0);
    assert_int_equal(agg_batch_put(b, 'H', "tm:s:energy:1m:1", "events", 2, AGG_OP_SUM), 0);
    assert_int_equal(agg_batch_put(b, 'H', "tm:s:energy:1m:1", "cat:ddos", 1, AGG_OP_SUM), 0);
    /* A key that is a prefix of another stays a group of its own. */
    assert_int_equal(agg_batch_put(b, 'H', "tm:s:energy:1m:1:x", "events", 5, AGG_OP_SUM), 0);
    assert_int_equal(agg_batch_put(b, 'E', "tm:s:energy:1m:1", "", 60, AGG_OP_MAX), 0);
    assert_int_equal(agg_batch_put(b, 'E', "tm:s:energy:1m:1", "", 30, AGG_OP_MAX), 0);
    assert_int_equal(agg_batch_put(b, 'm', "a", "", 7, AGG_OP_MIN), 0);
    assert_int_equal(agg_batch_put(b, 'm', "a", "", 3, AGG_OP_MIN), 0);
    assert_int_equal(agg_batch_put(b, 'm', "a", "", 9, AGG_OP_MIN), 0);
    assert_int_equal(agg_batch_count(b), 5);
    assert_int_equal(agg_batch_get(b, 'H', "tm:s:energy:1m:1", "events", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(agg_batch_get(b, 'E', "tm:s:energy:1m:1", "", &v), 0);
    assert_int_equal(v, 60);
    assert_int_equal(agg_batch_get(b, 'm', "a", "", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(agg_batch_get(b, 'H', "absent", "events", &v), -1);

    assert_int_equal(agg_batch_emit(b, record_cb, &s), 0);
    assert_int_equal(s.groups, 4);
    assert_string_equal(s.log, "E tm:s:energy:1m:1: =60;"
                               "H tm:s:energy:1m:1: cat:ddos=1 events=3;"
                               "H tm:s:energy:1m:1:x: events=5;"
                               "m a: =3;");
    agg_batch_clear(b);
    assert_int_equal(agg_batch_count(b), 0);
    agg_batch_destroy(b);
}

static void test_batch_insert_keeps_the_first(void **state)
{
    struct agg_batch *b = agg_batch_create();
    int64_t v = 0;
    char member[600];

    (void)state;
    assert_non_null(b);
    assert_int_equal(agg_batch_insert(b, 'I', "EV1", "", 7, &v), 1);
    assert_int_equal(agg_batch_insert(b, 'I', "EV1", "", 9, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(agg_batch_insert(b, 'I', "EV1", "", 9, NULL), 0);
    assert_int_equal(agg_batch_get(b, 'I', "EV1", "", &v), 0);
    assert_int_equal(v, 7);
    /* Another kind is another entry. */
    assert_int_equal(agg_batch_insert(b, 'A', "EV1", "", 1, NULL), 1);
    /* A name longer than the stack buffer still works (built on the heap). */
    memset(member, 'x', sizeof(member) - 1);
    member[sizeof(member) - 1] = '\0';
    assert_int_equal(agg_batch_put(b, 'H', "k", member, 2, AGG_OP_SUM), 0);
    assert_int_equal(agg_batch_put(b, 'H', "k", member, 3, AGG_OP_SUM), 0);
    assert_int_equal(agg_batch_get(b, 'H', "k", member, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(agg_batch_count(b), 3);
    /* Cleared, nothing is found; the memory is reused. */
    agg_batch_clear(b);
    assert_int_equal(agg_batch_get(b, 'I', "EV1", "", &v), -1);
    assert_int_equal(agg_batch_insert(b, 'I', "EV1", "", 4, NULL), 1);
    assert_int_equal(agg_batch_count(b), 1);
    agg_batch_destroy(b);
}

static int sum_cb(void *arg, const struct agg_group *g)
{
    struct seen *s = arg;

    s->groups++;
    for (size_t i = 0; i < g->n; i++)
        s->total += g->values[i];
    return 0;
}

static void test_batch_grows(void **state)
{
    struct agg_batch *b = agg_batch_create();
    struct seen s = {0};

    (void)state;
    assert_non_null(b);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 20000; i++) {
            char key[32], member[32];
            snprintf(key, sizeof(key), "k%d", i % 100);
            snprintf(member, sizeof(member), "m%d", i);
            assert_int_equal(agg_batch_put(b, 'Z', key, member, 1, AGG_OP_SUM), 0);
        }
    assert_int_equal(agg_batch_count(b), 20000);
    assert_int_equal(agg_batch_emit(b, sum_cb, &s), 0);
    assert_int_equal(s.groups, 100);
    assert_int_equal(s.total, 40000);
    agg_batch_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_sum_min_max_and_groups),
        cmocka_unit_test(test_batch_insert_keeps_the_first),
        cmocka_unit_test(test_batch_grows),
    };

    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
