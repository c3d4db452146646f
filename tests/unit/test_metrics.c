/*
 * test_metrics.c - the metrics registry: the exact Prometheus text of counters with
 * labels, gauges (number formatting included), histograms and escaping; get-or-create
 * identity; refusal of bad names, bad bounds and type clashes; and exact totals when
 * four threads update the same metrics at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_metrics.h"

#define THREADS 4
#define PER_THREAD 100000

static int setup(void **state)
{
    *state = tm_metrics_create();
    return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    tm_metrics_destroy(*state);
    return 0;
}

/* Renders m and compares it with want, checking the reported length too. */
static void assert_rendered(struct tm_metrics *m, const char *want)
{
    size_t len = 12345;
    char *text = tm_metrics_render(m, &len);

    assert_non_null(text);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    free(text);
}

static void test_metrics_empty_registry(void **state)
{
    assert_rendered(*state, "");
}

static void test_metrics_counter_with_labels(void **state)
{
    struct tm_metrics *m = *state;
    struct tm_counter *energy, *health, *plain;

    energy = tm_metrics_counter(m, "tm_events_total", "Events accepted.", "sector", "energy",
                                "category", "ddos", NULL);
    health = tm_metrics_counter(m, "tm_events_total", "Events accepted.", "sector", "health",
                                "category", "phishing", NULL);
    plain = tm_metrics_counter(m, "tm_connections_total", "Connections accepted.", NULL);
    assert_non_null(energy);
    assert_non_null(health);
    assert_non_null(plain);
    tm_counter_add(energy, 41);
    tm_counter_inc(energy);
    tm_counter_add(health, 18446744073709551615ULL);
    tm_counter_inc(plain);
    assert_int_equal(tm_counter_value(energy), 42);
    assert_rendered(m, "# HELP tm_events_total Events accepted.\n"
                       "# TYPE tm_events_total counter\n"
                       "tm_events_total{sector=\"energy\",category=\"ddos\"} 42\n"
                       "tm_events_total{sector=\"health\",category=\"phishing\"} "
                       "18446744073709551615\n"
                       "# HELP tm_connections_total Connections accepted.\n"
                       "# TYPE tm_connections_total counter\n"
                       "tm_connections_total 1\n");
}

static void test_metrics_gauge_values(void **state)
{
    struct tm_metrics *m = *state;
    struct tm_gauge *g[8];
    static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

    for (size_t i = 0; i < 8; i++) {
        g[i] = tm_metrics_gauge(m, "tm_value", "Values.", "k", names[i], NULL);
        assert_non_null(g[i]);
    }
    tm_gauge_set(g[0], 3);
    tm_gauge_add(g[0], -0.5);
    assert_true(tm_gauge_value(g[0]) == 2.5);
    tm_gauge_set(g[1], -7);
    tm_gauge_set(g[2], 0.1);
    tm_gauge_set(g[3], 1.0 / 3.0);
    tm_gauge_set(g[4], 1e20);
    tm_gauge_set(g[5], INFINITY);
    tm_gauge_set(g[6], NAN);
    /* g[7] stays at its initial 0. */
    assert_rendered(m, "# HELP tm_value Values.\n"
                       "# TYPE tm_value gauge\n"
                       "tm_value{k=\"a\"} 2.5\n"
                       "tm_value{k=\"b\"} -7\n"
                       "tm_value{k=\"c\"} 0.1\n"
                       "tm_value{k=\"d\"} 0.3333333333333333\n"
                       "tm_value{k=\"e\"} 1e+20\n"
                       "tm_value{k=\"f\"} +Inf\n"
                       "tm_value{k=\"g\"} NaN\n"
                       "tm_value{k=\"h\"} 0\n");
}

/*
 * A removed gauge is gone from the render, first, middle or last of its family; its
 * family keeps its place; the same labels looked up again give a new series at 0.
 */
static void test_metrics_gauge_remove(void **state)
{
    struct tm_metrics *m = *state;
    struct tm_gauge *a = tm_metrics_gauge(m, "tm_lag", "Lag.", "p", "0", NULL);
    struct tm_gauge *b = tm_metrics_gauge(m, "tm_lag", "Lag.", "p", "1", NULL);
    struct tm_gauge *c = tm_metrics_gauge(m, "tm_lag", "Lag.", "p", "2", NULL);
    struct tm_gauge *other = tm_metrics_gauge(m, "tm_other", "Other.", NULL);

    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(other);
    tm_gauge_set(a, 1);
    tm_gauge_set(b, 2);
    tm_gauge_set(c, 3);
    tm_metrics_remove_gauge(m, b);
    assert_rendered(m, "# HELP tm_lag Lag.\n# TYPE tm_lag gauge\n"
                       "tm_lag{p=\"0\"} 1\ntm_lag{p=\"2\"} 3\n"
                       "# HELP tm_other Other.\n# TYPE tm_other gauge\ntm_other 0\n");
    tm_metrics_remove_gauge(m, c); /* the last one: a new series is appended after a */
    b = tm_metrics_gauge(m, "tm_lag", "Lag.", "p", "1", NULL);
    assert_non_null(b);
    assert_true(tm_gauge_value(b) == 0);
    tm_metrics_remove_gauge(m, a); /* the first one */
    assert_rendered(m, "# HELP tm_lag Lag.\n# TYPE tm_lag gauge\ntm_lag{p=\"1\"} 0\n"
                       "# HELP tm_other Other.\n# TYPE tm_other gauge\ntm_other 0\n");
    tm_metrics_remove_gauge(m, b);
    assert_rendered(m, "# HELP tm_lag Lag.\n# TYPE tm_lag gauge\n"
                       "# HELP tm_other Other.\n# TYPE tm_other gauge\ntm_other 0\n");
    a = tm_metrics_gauge(m, "tm_lag", "Lag.", "p", "0", NULL);
    tm_gauge_set(a, 5);
    assert_rendered(m, "# HELP tm_lag Lag.\n# TYPE tm_lag gauge\ntm_lag{p=\"0\"} 5\n"
                       "# HELP tm_other Other.\n# TYPE tm_other gauge\ntm_other 0\n");
    tm_metrics_remove_gauge(m, NULL);
    tm_metrics_remove_gauge(NULL, a);
}

static void test_metrics_histogram_buckets(void **state)
{
    struct tm_metrics *m = *state;
    static const double bounds[] = {0.5, 1, 10};
    struct tm_histogram *h, *plain;

    h = tm_metrics_histogram(m, "tm_delivery_seconds", "Kafka delivery latency.", bounds, 3,
                             "topic", "events", NULL);
    plain =
        tm_metrics_histogram(m, "tm_delivery_seconds", "Kafka delivery latency.", bounds, 3, NULL);
    assert_non_null(h);
    assert_non_null(plain);
    tm_histogram_observe(h, 0.25);
    tm_histogram_observe(h, 0.5); /* on the bound: counted in le="0.5" */
    tm_histogram_observe(h, 0.5);
    tm_histogram_observe(h, 2);
    tm_histogram_observe(h, 20);
    assert_int_equal(tm_histogram_count(h), 5);
    assert_int_equal(tm_histogram_count(plain), 0);
    assert_rendered(m, "# HELP tm_delivery_seconds Kafka delivery latency.\n"
                       "# TYPE tm_delivery_seconds histogram\n"
                       "tm_delivery_seconds_bucket{topic=\"events\",le=\"0.5\"} 3\n"
                       "tm_delivery_seconds_bucket{topic=\"events\",le=\"1\"} 3\n"
                       "tm_delivery_seconds_bucket{topic=\"events\",le=\"10\"} 4\n"
                       "tm_delivery_seconds_bucket{topic=\"events\",le=\"+Inf\"} 5\n"
                       "tm_delivery_seconds_sum{topic=\"events\"} 23.25\n"
                       "tm_delivery_seconds_count{topic=\"events\"} 5\n"
                       "tm_delivery_seconds_bucket{le=\"0.5\"} 0\n"
                       "tm_delivery_seconds_bucket{le=\"1\"} 0\n"
                       "tm_delivery_seconds_bucket{le=\"10\"} 0\n"
                       "tm_delivery_seconds_bucket{le=\"+Inf\"} 0\n"
                       "tm_delivery_seconds_sum 0\n"
                       "tm_delivery_seconds_count 0\n");
}

static void test_metrics_escaping(void **state)
{
    struct tm_metrics *m = *state;
    struct tm_counter *c;

    c = tm_metrics_counter(m, "tm_rejected_total",
                           "Rejected \"events\", by reason\\cause.\nSee docs.", "reason",
                           "bad \"ts\" in C:\\path\nline two", NULL);
    assert_non_null(c);
    tm_counter_add(c, 3);
    assert_rendered(m, "# HELP tm_rejected_total Rejected \"events\", by reason\\\\cause.\\nSee "
                       "docs.\n"
                       "# TYPE tm_rejected_total counter\n"
                       "tm_rejected_total{reason=\"bad \\\"ts\\\" in C:\\\\path\\nline two\"} 3\n");
}

static void test_metrics_get_or_create_identity(void **state)
{
    struct tm_metrics *m = *state;
    static const double bounds[] = {1, 2};
    struct tm_counter *a, *b, *c;
    struct tm_gauge *g1, *g2;
    struct tm_histogram *h1, *h2;
    char *text;

    a = tm_metrics_counter(m, "tm_x_total", "X.", "sector", "energy", "region", "UA-32", NULL);
    b = tm_metrics_counter(m, "tm_x_total", "Another help is ignored.", "sector", "energy",
                           "region", "UA-32", NULL);
    c = tm_metrics_counter(m, "tm_x_total", "X.", "region", "UA-32", "sector", "energy", NULL);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, c); /* label order does not matter */
    assert_ptr_not_equal(
        a, tm_metrics_counter(m, "tm_x_total", "X.", "sector", "health", "region", "UA-32", NULL));
    assert_ptr_not_equal(a, tm_metrics_counter(m, "tm_x_total", "X.", "sector", "energy", NULL));
    tm_counter_inc(a);
    tm_counter_inc(b);
    assert_int_equal(tm_counter_value(c), 2);

    g1 = tm_metrics_gauge(m, "tm_depth", "Depth.", NULL);
    g2 = tm_metrics_gauge(m, "tm_depth", "Depth.", NULL);
    assert_non_null(g1);
    assert_ptr_equal(g1, g2);
    h1 = tm_metrics_histogram(m, "tm_lat", "Latency.", bounds, 2, "k", "v", NULL);
    h2 = tm_metrics_histogram(m, "tm_lat", "Latency.", bounds, 2, "k", "v", NULL);
    assert_non_null(h1);
    assert_ptr_equal(h1, h2);

    /* The first help wins and the family keeps its first position. */
    text = tm_metrics_render(m, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "# HELP tm_x_total X.\n"));
    assert_null(strstr(text, "Another help"));
    assert_true(strstr(text, "tm_x_total") < strstr(text, "tm_depth"));
    assert_true(strstr(text, "tm_depth") < strstr(text, "tm_lat"));
    free(text);
}

static void test_metrics_invalid_names_rejected(void **state)
{
    struct tm_metrics *m = *state;
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "a.b", "é", "a\n"};
    static const char *const bad_labels[] = {"", "1a", "a:b", "a-b", "__reserved", "a b"};
    static const double bounds[] = {1, 2};
    static const double unsorted[] = {2, 1};
    static const double repeated[] = {1, 1};
    double nan_bound[] = {1, NAN};
    double inf_bound[] = {1, INFINITY};
    double many[33];

    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        if (tm_metrics_counter(m, bad_names[i], "h", NULL) != NULL)
            fail_msg("metric name '%s' accepted", bad_names[i]);
        if (tm_metrics_gauge(m, bad_names[i], "h", NULL) != NULL)
            fail_msg("gauge name '%s' accepted", bad_names[i]);
    }
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
        if (tm_metrics_counter(m, "tm_ok_total", "h", bad_labels[i], "v", NULL) != NULL)
            fail_msg("label name '%s' accepted", bad_labels[i]);
    assert_null(tm_metrics_counter(m, NULL, "h", NULL));
    /* A name without a value, and a label given twice. */
    assert_null(tm_metrics_counter(m, "tm_ok_total", "h", "a", NULL));
    assert_null(tm_metrics_counter(m, "tm_ok_total", "h", "a", "1", "a", "2", NULL));
    /* "le" belongs to the buckets of a histogram. */
    assert_null(tm_metrics_histogram(m, "tm_h", "h", bounds, 2, "le", "1", NULL));
    assert_null(tm_metrics_histogram(m, "tm_h", "h", unsorted, 2, NULL));
    assert_null(tm_metrics_histogram(m, "tm_h", "h", repeated, 2, NULL));
    assert_null(tm_metrics_histogram(m, "tm_h", "h", nan_bound, 2, NULL));
    assert_null(tm_metrics_histogram(m, "tm_h", "h", inf_bound, 2, NULL));
    for (size_t i = 0; i < 33; i++)
        many[i] = (double)i;
    assert_null(tm_metrics_histogram(m, "tm_h", "h", many, 33, NULL));
    assert_non_null(tm_metrics_histogram(m, "tm_h32", "h", many, 32, NULL));
    assert_non_null(tm_metrics_histogram(m, "tm_h0", "h", NULL, 0, NULL));

    /* Nothing refused left a trace; valid unusual names are fine. */
    assert_non_null(tm_metrics_counter(m, "ns:sub_name9", "h", "_x", "", "le", "ok", NULL));
    {
        char *text = tm_metrics_render(m, NULL);
        assert_non_null(text);
        assert_null(strstr(text, "tm_ok_total"));
        assert_null(strstr(text, "tm_h "));
        assert_non_null(strstr(text, "ns:sub_name9{_x=\"\",le=\"ok\"} 0\n"));
        assert_non_null(strstr(text, "tm_h0_bucket{le=\"+Inf\"} 0\n"));
        free(text);
    }
}

static void test_metrics_type_clash_rejected(void **state)
{
    struct tm_metrics *m = *state;
    static const double bounds[] = {1, 2};
    static const double other[] = {1, 3};

    assert_non_null(tm_metrics_counter(m, "tm_thing", "h", NULL));
    assert_null(tm_metrics_gauge(m, "tm_thing", "h", NULL));
    assert_null(tm_metrics_histogram(m, "tm_thing", "h", bounds, 2, NULL));
    assert_non_null(tm_metrics_gauge(m, "tm_level", "h", NULL));
    assert_null(tm_metrics_counter(m, "tm_level", "h", "k", "v", NULL));
    /* A histogram keeps its buckets: other bounds under the same name are refused. */
    assert_non_null(tm_metrics_histogram(m, "tm_lat", "h", bounds, 2, NULL));
    assert_null(tm_metrics_histogram(m, "tm_lat", "h", other, 2, "k", "v", NULL));
    assert_null(tm_metrics_histogram(m, "tm_lat", "h", bounds, 1, NULL));
    assert_null(tm_metrics_counter(m, "tm_lat", "h", NULL));
    assert_rendered(m, "# HELP tm_thing h\n# TYPE tm_thing counter\ntm_thing 0\n"
                       "# HELP tm_level h\n# TYPE tm_level gauge\ntm_level 0\n"
                       "# HELP tm_lat h\n# TYPE tm_lat histogram\n"
                       "tm_lat_bucket{le=\"1\"} 0\ntm_lat_bucket{le=\"2\"} 0\n"
                       "tm_lat_bucket{le=\"+Inf\"} 0\ntm_lat_sum 0\ntm_lat_count 0\n");
}

static void test_metrics_null_metric_is_ignored(void **state)
{
    (void)state;
    /* Callers may pass the result of a lookup that failed straight to an update. */
    tm_counter_inc(NULL);
    tm_gauge_add(NULL, 1);
    tm_histogram_observe(NULL, 1);
    assert_int_equal(tm_counter_value(NULL), 0);
    assert_int_equal(tm_histogram_count(NULL), 0);
    assert_null(tm_metrics_render(NULL, NULL));
}

struct worker_arg {
    struct tm_metrics *m;
    struct tm_counter *c;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;
    static const double bounds[] = {0.5};
    struct tm_gauge *g = tm_metrics_gauge(w->m, "tm_par_gauge", "g", NULL);
    struct tm_histogram *h = tm_metrics_histogram(w->m, "tm_par_seconds", "h", bounds, 1, NULL);

    for (int i = 0; i < PER_THREAD; i++) {
        tm_counter_inc(w->c);
        tm_gauge_add(g, 1.0);
        tm_histogram_observe(h, (i & 1) ? 1.0 : 0.25);
    }
    /* Lazy lookups from several threads at once find the one shared object. */
    tm_counter_inc(tm_metrics_counter(w->m, "tm_par_lazy_total", "l", "k", "v", NULL));
    return NULL;
}

static void test_metrics_concurrent_updates_exact(void **state)
{
    struct tm_metrics *m = *state;
    static const double bounds[] = {0.5};
    pthread_t threads[THREADS];
    struct worker_arg arg;
    char *text;

    arg.m = m;
    arg.c = tm_metrics_counter(m, "tm_par_total", "c", NULL);
    assert_non_null(arg.c);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &arg), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(tm_counter_value(arg.c), THREADS * PER_THREAD);
    assert_true(tm_gauge_value(tm_metrics_gauge(m, "tm_par_gauge", "g", NULL)) ==
                (double)(THREADS * PER_THREAD));
    assert_int_equal(
        tm_histogram_count(tm_metrics_histogram(m, "tm_par_seconds", "h", bounds, 1, NULL)),
        THREADS * PER_THREAD);
    assert_int_equal(
        tm_counter_value(tm_metrics_counter(m, "tm_par_lazy_total", "l", "k", "v", NULL)), THREADS);
    text = tm_metrics_render(m, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "tm_par_total 400000\n"));
    assert_non_null(strstr(text, "tm_par_gauge 400000\n"));
    assert_non_null(strstr(text, "tm_par_seconds_bucket{le=\"0.5\"} 200000\n"));
    assert_non_null(strstr(text, "tm_par_seconds_bucket{le=\"+Inf\"} 400000\n"));
    assert_non_null(strstr(text, "tm_par_seconds_sum 250000\n"));
    assert_non_null(strstr(text, "tm_par_lazy_total{k=\"v\"} 4\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_empty_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_counter_with_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_gauge_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_gauge_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_histogram_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_get_or_create_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_invalid_names_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_type_clash_rejected, setup, teardown),
        cmocka_unit_test(test_metrics_null_metric_is_ignored),
        cmocka_unit_test_setup_teardown(test_metrics_concurrent_updates_exact, setup, teardown),
    };

    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
