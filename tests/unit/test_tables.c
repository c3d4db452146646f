/*
 * test_tables.c - the schema v1 vocabularies: every id DESIGN.md names is present, the
 * lookups find exactly those, severity bands have the documented edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tm/tm_tables.h"

static void test_tables_sectors(void **state)
{
    static const char *const ids[] = {"energy",
                                      "transport",
                                      "banking",
                                      "financial-market",
                                      "health",
                                      "drinking-water",
                                      "waste-water",
                                      "digital-infrastructure",
                                      "ict-services",
                                      "public-administration",
                                      "state-registries",
                                      "local-government",
                                      "space",
                                      "postal",
                                      "waste-management",
                                      "chemicals",
                                      "food",
                                      "manufacturing",
                                      "digital-providers",
                                      "research",
                                      "defence-industry",
                                      "education",
                                      "media",
                                      "other"};
    (void)state;

    assert_int_equal(tm_sectors_count, sizeof(ids) / sizeof(ids[0]));
    for (size_t i = 0; i < tm_sectors_count; i++) {
        const struct tm_sector *s = tm_sector_find(ids[i]);
        assert_non_null(s);
        assert_int_equal(tm_sector_index(ids[i]), (int)i);
        assert_true(s->criticality >= 1 && s->criticality <= 5);
    }
    assert_string_equal(tm_sector_find("local-government")->stix, "government-local");
    assert_string_equal(tm_sector_find("energy")->nis2, "I.1");
    assert_null(tm_sector_find("Energy"));
    assert_null(tm_sector_find(""));
    assert_null(tm_sector_find(NULL));
}

static void test_tables_regions(void **state)
{
    (void)state;
    assert_int_equal(tm_regions_count, 27);
    assert_string_equal(tm_region_find("UA-30")->name, "Kyiv");
    assert_non_null(tm_region_find("UA-43"));
    assert_null(tm_region_find("UA-31"));
    assert_null(tm_region_find("ua-30"));
}

static void test_tables_categories(void **state)
{
    static const char *const ids[] = {
        "ddos", "phishing", "malware",    "ransomware", "wiper",          "intrusion", "bruteforce",
        "scan", "exploit",  "defacement", "data-leak",  "service-outage", "other"};
    (void)state;

    assert_int_equal(tm_categories_count, sizeof(ids) / sizeof(ids[0]));
    for (size_t i = 0; i < tm_categories_count; i++) {
        assert_int_equal(tm_category_index(ids[i]), (int)i);
        assert_non_null(strchr(tm_category_find(ids[i])->rsit, ':'));
    }
    assert_string_equal(tm_category_find("ddos")->rsit, "availability:ddos");
    assert_string_equal(tm_category_find("bruteforce")->rsit, "intrusion-attempts:brute-force");
    assert_int_equal(tm_category_index("spam"), -1);
}

static void test_tables_kinds_and_tactics(void **state)
{
    (void)state;
    assert_int_equal(tm_source_kind_index("suricata"), 0);
    assert_true(tm_source_kind_index("manual") >= 0);
    assert_int_equal(tm_source_kind_index("beats"), -1);
    assert_true(tm_tactic_index("credential-access") >= 0);
    assert_true(tm_tactic_index("inhibit-response-function") >= 0); /* ICS */
    assert_int_equal(tm_tactic_index("TA0006"), -1);
}

static void test_tables_need_categories(void **state)
{
    (void)state;
    assert_int_equal(tm_need_categories_count, 10);
    assert_int_equal(tm_need_category_index("edr"), 0);
    assert_true(tm_need_category_index("incident-response") >= 0);
    assert_true(tm_need_category_index("email-security") >= 0);
    assert_int_equal(tm_need_category_index("other"), (int)tm_need_categories_count - 1);
    assert_int_equal(tm_need_category_index("EDR"), -1);
    assert_int_equal(tm_need_category_index("ddos"), -1);
    assert_int_equal(tm_need_category_index(NULL), -1);
}

static void test_tables_severity_bands(void **state)
{
    static const enum tm_severity_band want[] = {
        TM_SEV_LOW,    TM_SEV_LOW,  TM_SEV_LOW,  TM_SEV_MEDIUM,   TM_SEV_MEDIUM,
        TM_SEV_MEDIUM, TM_SEV_HIGH, TM_SEV_HIGH, TM_SEV_CRITICAL, TM_SEV_CRITICAL};
    (void)state;

    for (int s = 1; s <= 10; s++)
        assert_int_equal(tm_severity_band(s), want[s - 1]);
    assert_string_equal(tm_severity_band_name(TM_SEV_HIGH), "high");
    assert_string_equal(tm_severity_band_name(TM_SEV_CRITICAL), "critical");
}

static void test_tables_technique_ids(void **state)
{
    (void)state;
    assert_true(tm_attack_technique_valid("T1110"));
    assert_true(tm_attack_technique_valid("T1110.001"));
    assert_true(tm_attack_technique_valid("T0831"));
    assert_false(tm_attack_technique_valid("T111"));
    assert_false(tm_attack_technique_valid("t1110"));
    assert_false(tm_attack_technique_valid("T1110.01"));
    assert_false(tm_attack_technique_valid("T1110-001"));
    assert_false(tm_attack_technique_valid("TA0006"));
    assert_false(tm_attack_technique_valid(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_sectors),
        cmocka_unit_test(test_tables_regions),
        cmocka_unit_test(test_tables_categories),
        cmocka_unit_test(test_tables_kinds_and_tactics),
        cmocka_unit_test(test_tables_need_categories),
        cmocka_unit_test(test_tables_severity_bands),
        cmocka_unit_test(test_tables_technique_ids),
    };
    return cmocka_run_group_tests_name("tables", tests, NULL, NULL);
}
