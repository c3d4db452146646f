/*
 * test_id.c - ULID event ids: format, time prefix, monotonic order within one thread,
 * uniqueness across threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_id.h"
#include "tm/tm_time.h"

static void test_id_format_and_time(void **state)
{
    char id[TM_ULID_LEN + 1];
    int64_t before = tm_time_now_ms(), t;
    (void)state;

    tm_id_new(id);
    assert_int_equal(strlen(id), TM_ULID_LEN);
    for (int i = 0; i < TM_ULID_LEN; i++)
        assert_non_null(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", id[i]));
    t = tm_id_time(id);
    assert_true(t >= before && t <= tm_time_now_ms());
    assert_int_equal(tm_id_time("not-a-ulid"), -1);
    assert_int_equal(tm_id_time("01JD6Q7Z8X9Y0ABCDEFGHJKMNI"), -1); /* I is not Crockford */
    assert_int_equal(tm_id_time("81JD6Q7Z8X9Y0ABCDEFGHJKMNP"), -1); /* over 48 bits */
}

static void test_id_known_time_prefix(void **state)
{
    char id[TM_ULID_LEN + 1];
    (void)state;

    /* 4102444800000 ms (2100-01-01) in 10 Crockford base-32 digits. */
    tm_id_new_at(4102444800000LL, id);
    assert_int_equal(tm_id_time(id), 4102444800000LL);
    assert_memory_equal(id, "03QCPC7P00", 10);
}

static void test_id_monotonic_same_ms(void **state)
{
    char prev[TM_ULID_LEN + 1], id[TM_ULID_LEN + 1];
    (void)state;

    tm_id_new_at(4102444900000LL, prev);
    for (int i = 0; i < 100000; i++) {
        tm_id_new_at(4102444900000LL, id);
        assert_true(strcmp(id, prev) > 0);
        memcpy(prev, id, sizeof(id));
    }
    /* A clock that steps back does not make ids go back. */
    tm_id_new_at(4102444800000LL, id);
    assert_true(strcmp(id, prev) > 0);
}

#define PER_THREAD 50000

/* Ids from given bits: the same inputs give the same id, any other bits another one. */
static void test_id_from_bits(void **state)
{
    static const uint8_t bits[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    uint8_t other[10];
    char a[TM_ULID_LEN + 1], b[TM_ULID_LEN + 1], c[TM_ULID_LEN + 1];
    (void)state;

    tm_id_from(1795425600123, bits, a);
    tm_id_from(1795425600123, bits, b);
    assert_string_equal(a, b);
    assert_int_equal(tm_id_time(a), 1795425600123);
    memcpy(other, bits, sizeof(other));
    other[9] ^= 1;
    tm_id_from(1795425600123, other, c);
    assert_string_not_equal(a, c);
    assert_int_equal(strncmp(a, c, 25), 0); /* only the last character differs */
}

static void *make_ids(void *arg)
{
    char *out = arg;
    for (int i = 0; i < PER_THREAD; i++)
        tm_id_new(out + (size_t)i * (TM_ULID_LEN + 1));
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_id_unique_across_threads(void **state)
{
    enum { THREADS = 4 };
    size_t n = (size_t)THREADS * PER_THREAD;
    char *ids = malloc(n * (TM_ULID_LEN + 1));
    pthread_t th[THREADS];
    (void)state;

    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, make_ids, ids + (size_t)i * PER_THREAD * (TM_ULID_LEN + 1));
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    qsort(ids, n, TM_ULID_LEN + 1, cmp_id);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(ids + (i - 1) * (TM_ULID_LEN + 1), ids + i * (TM_ULID_LEN + 1)) < 0);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_format_and_time),
        cmocka_unit_test(test_id_known_time_prefix),
        cmocka_unit_test(test_id_monotonic_same_ms),
        cmocka_unit_test(test_id_unique_across_threads),
        cmocka_unit_test(test_id_from_bits),
    };
    return cmocka_run_group_tests_name("id", tests, NULL, NULL);
}
