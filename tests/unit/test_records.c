/*
 * test_records.c - needs and offers as records (tools/tmctl/records.c): every field's
 * rule and message, defaults, CSV header checks, dates, and field text round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

/* name=value pairs, NULL-terminated. */
struct kv {
    const char *const *pairs;
};

static const char *kv_get(void *arg, const char *name)
{
    const struct kv *k = arg;

    for (size_t i = 0; k->pairs[i] != NULL; i += 2)
        if (strcmp(k->pairs[i], name) == 0)
            return k->pairs[i + 1];
    return NULL;
}

static int64_t day(const char *s)
{
    int64_t d;

    assert_int_equal(ctl_day_parse(s, &d), 0);
    return d;
}

static int need(const char *const *pairs, struct ctl_need *n, char *err)
{
    struct kv k = {pairs};
    return ctl_need_parse(n, kv_get, &k, day("2026-11-23"), err);
}

static void test_records_need_ok_and_defaults(void **state)
{
    const char *const full[] = {"id",       "N-1",        "operator",    "op-a",
                                "sector",   "energy",     "region",      "UA-32",
                                "category", "edr",        "description", "EDR for 200 hosts",
                                "cost",     "40000",      "status",      "open",
                                "opened",   "2026-09-01", NULL};
    const char *const minimal[] = {
        "id", "N-2", "sector", "local-government", "category", "training", "cost", "0", NULL};
    struct ctl_need n;
    char err[TM_ERR_LEN];

    (void)state;
    assert_int_equal(need(full, &n, err), 0);
    assert_string_equal(n.id, "N-1");
    assert_string_equal(n.operator_id, "op-a");
    assert_string_equal(n.region, "UA-32");
    assert_int_equal(n.category, tm_need_category_index("edr"));
    assert_int_equal(n.cost, 40000);
    assert_int_equal(n.status, CTL_NEED_OPEN);
    assert_int_equal(n.opened, day("2026-09-01"));
    assert_int_equal(n.closed, -1);

    assert_int_equal(need(minimal, &n, err), 0);
    assert_string_equal(n.operator_id, "");
    assert_string_equal(n.region, "");
    assert_int_equal(n.status, CTL_NEED_OPEN);
    assert_int_equal(n.opened, day("2026-11-23")); /* today */
}

static void expect_need_error(const char *field, const char *value, const char *msg)
{
    const char *pairs[] = {"id",     "N-1",    "sector",   "energy", "category", "edr",    "cost",
                           "100",    "region", "",         "status", "",         "opened", "",
                           "closed", "",       "operator", "",       NULL};
    struct ctl_need n;
    char err[TM_ERR_LEN];

    for (size_t i = 0; pairs[i] != NULL; i += 2)
        if (strcmp(pairs[i], field) == 0)
            pairs[i + 1] = value;
    assert_int_equal(need(pairs, &n, err), -1);
    if (strstr(err, msg) == NULL)
        fail_msg("%s = '%s': got '%s', expected '%s'", field, value, err, msg);
}

static void test_records_need_errors(void **state)
{
    (void)state;
    expect_need_error("cost", "12k", "column 'cost': '12k' is not a whole number");
    expect_need_error("cost", "12.5", "column 'cost'");
    expect_need_error("cost", "-5", "column 'cost'");
    expect_need_error("cost", "", "column 'cost'");
    expect_need_error("cost", "99999999999999999999", "column 'cost'");
    expect_need_error("category", "firewall", "column 'category': unknown category 'firewall'");
    expect_need_error("category", "ddos", "unknown category"); /* an incident category */
    expect_need_error("sector", "energie", "column 'sector': unknown sector 'energie'");
    expect_need_error("region", "UA-99", "column 'region': unknown region");
    expect_need_error("id", "N 1", "column 'id'");
    expect_need_error("id", "", "column 'id'");
    expect_need_error("operator", "op a", "column 'operator'");
    expect_need_error("status", "pending", "column 'status'");
    expect_need_error("opened", "2026-02-30", "column 'opened'");
    expect_need_error("opened", "23.11.2026", "column 'opened'");
    expect_need_error("closed", "2026-11-20", "status is open");
}

static void test_records_need_closed(void **state)
{
    const char *const a[] = {"id", "N-1",    "sector", "energy", "category",   "edr", "cost",
                             "1",  "status", "closed", "opened", "2026-10-01", NULL};
    const char *const b[] = {"id",     "N-1",        "sector", "energy",     "category",
                             "edr",    "cost",       "1",      "status",     "closed",
                             "opened", "2026-10-01", "closed", "2026-09-01", NULL};
    struct ctl_need n;
    char err[TM_ERR_LEN];

    (void)state;
    assert_int_equal(need(a, &n, err), 0);
    assert_int_equal(n.status, CTL_NEED_CLOSED);
    assert_int_equal(n.closed, day("2026-11-23"));
    assert_int_equal(need(b, &n, err), -1);
    assert_non_null(strstr(err, "before the need was opened"));
}

static void test_records_offer(void **state)
{
    const char *const ok[] = {"id",         "O-1",         "donor",
                              "Estonia",    "category",    "edr",
                              "capacity",   "3",           "cost_ceiling",
                              "50000",      "sectors",     "energy; drinking-water",
                              "regions",    "UA-32,UA-30", "expires",
                              "2027-06-30", NULL};
    const char *const any[] = {"id",       "O-2", "donor",   "NL", "category", "training",
                               "capacity", "1",   "sectors", "*",  NULL};
    const char *bad[] = {"id",           "O-3", "donor",   "X", "category", "edr",
                         "capacity",     "0",   "sectors", "",  "regions",  "",
                         "cost_ceiling", "",    "expires", "",  NULL};
    struct ctl_offer o;
    struct kv k = {ok};
    char err[TM_ERR_LEN], buf[256];

    (void)state;
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), 0);
    assert_int_equal(o.capacity, 3);
    assert_int_equal(o.cost_ceiling, 50000);
    assert_int_equal(o.sectors,
                     (1u << tm_sector_index("energy")) | (1u << tm_sector_index("drinking-water")));
    assert_true(o.regions != 0);
    assert_int_equal(o.expires, day("2027-06-30"));
    assert_string_equal(ctl_offer_field(&o, "sectors", buf, sizeof(buf)), "energy;drinking-water");
    assert_string_equal(ctl_offer_field(&o, "regions", buf, sizeof(buf)), "UA-30;UA-32");

    k.pairs = any;
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), 0);
    assert_int_equal(o.sectors, 0);
    assert_int_equal(o.regions, 0);
    assert_int_equal(o.cost_ceiling, -1);
    assert_int_equal(o.expires, -1);
    assert_string_equal(ctl_offer_field(&o, "cost_ceiling", buf, sizeof(buf)), "");

    k.pairs = bad;
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), -1);
    assert_non_null(strstr(err, "column 'capacity'"));
    bad[7] = "2";
    bad[9] = "energy;space-station";
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), -1);
    assert_non_null(strstr(err, "column 'sectors': 'space-station' is not known"));
    bad[9] = "";
    bad[13] = "ten";
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), -1);
    assert_non_null(strstr(err, "column 'cost_ceiling'"));
    bad[13] = "";
    bad[15] = "2027-13-01";
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), -1);
    assert_non_null(strstr(err, "column 'expires'"));
    bad[15] = "";
    bad[3] = "";
    assert_int_equal(ctl_offer_parse(&o, kv_get, &k, err), -1);
    assert_non_null(strstr(err, "column 'donor'"));
}

static void test_records_header(void **state)
{
    char *good[] = {"cost", "id", "category", "sector"};
    char *unknown[] = {"id", "sector", "category", "cost", "colour"};
    char *twice[] = {"id", "sector", "id", "category", "cost"};
    char *missing[] = {"id", "sector", "category"};
    char err[TM_ERR_LEN];

    (void)state;
    assert_int_equal(ctl_header_check(ctl_need_fields, ctl_need_required, good, 4, err), 0);
    assert_int_equal(ctl_header_check(ctl_need_fields, ctl_need_required, unknown, 5, err), -1);
    assert_non_null(strstr(err, "column 5 'colour': unknown column"));
    assert_int_equal(ctl_header_check(ctl_need_fields, ctl_need_required, twice, 5, err), -1);
    assert_non_null(strstr(err, "column 3 'id': given twice"));
    assert_int_equal(ctl_header_check(ctl_need_fields, ctl_need_required, missing, 3, err), -1);
    assert_non_null(strstr(err, "missing column 'cost'"));
}

static void test_records_days(void **state)
{
    char out[11];
    int64_t d;

    (void)state;
    assert_int_equal(ctl_day_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(ctl_day_parse("2024-02-29", &d), 0);
    ctl_day_format(d, out);
    assert_string_equal(out, "2024-02-29");
    assert_int_equal(ctl_day_parse("2026-02-29", &d), -1);
    assert_int_equal(ctl_day_parse("2100-02-29", &d), -1);
    assert_int_equal(ctl_day_parse("2000-02-29", &d), 0);
    assert_int_equal(ctl_day_parse("2026-11-31", &d), -1);
    assert_int_equal(ctl_day_parse("2026-1-01", &d), -1);
    assert_int_equal(ctl_day_parse("2026-11-01x", &d), -1);
    assert_int_equal(ctl_day_parse("1969-12-31", &d), -1);
    assert_true(ctl_id_valid("N-17.a_b:c"));
    assert_false(ctl_id_valid("N/17"));
}

/* Every field's text parses back into the same need. */
static void test_records_field_round_trip(void **state)
{
    const char *const full[] = {
        "id",          "N-1",      "operator",   "op-a",     "sector",
        "energy",      "region",   "UA-32",      "category", "incident-response",
        "description", "x, \"y\"", "cost",       "40000",    "status",
        "closed",      "opened",   "2026-09-01", "closed",   "2026-10-02",
        NULL};
    struct ctl_need a, b;
    char vals[10][256], err[TM_ERR_LEN];
    const char *pairs[21];
    struct kv k = {pairs};

    (void)state;
    assert_int_equal(need(full, &a, err), 0);
    for (size_t i = 0; ctl_need_fields[i] != NULL; i++) {
        pairs[2 * i] = ctl_need_fields[i];
        pairs[2 * i + 1] = ctl_need_field(&a, ctl_need_fields[i], vals[i], sizeof(vals[i]));
    }
    pairs[20] = NULL;
    assert_int_equal(ctl_need_parse(&b, kv_get, &k, 0, err), 0);
    assert_memory_equal(&a, &b, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_need_ok_and_defaults),
        cmocka_unit_test(test_records_need_errors),
        cmocka_unit_test(test_records_need_closed),
        cmocka_unit_test(test_records_offer),
        cmocka_unit_test(test_records_header),
        cmocka_unit_test(test_records_days),
        cmocka_unit_test(test_records_field_round_trip),
    };
    return cmocka_run_group_tests_name("records", tests, NULL, NULL);
}
