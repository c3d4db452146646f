/*
 * test_mapping.c - incidents to need categories (tools/tmctl/mapping.c): the defaults of
 * issue 7, technique prefixes, [mapping] overrides and their errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

static uint16_t set(const char *list)
{
    char item[32];
    uint16_t s = 0;

    while (*list) {
        size_t n = strcspn(list, " ");
        memcpy(item, list, n);
        item[n] = '\0';
        assert_true(tm_need_category_index(item) >= 0);
        s |= (uint16_t)(1u << tm_need_category_index(item));
        list += n;
        while (*list == ' ')
            list++;
    }
    return s;
}

static uint16_t field(const struct ctl_mapping *m, const char *f, bool expect_tech)
{
    bool tech;
    uint16_t s = ctl_mapping_field(m, f, &tech);

    if (s != 0)
        assert_int_equal(tech, expect_tech);
    return s;
}

static void test_mapping_issue_defaults(void **state)
{
    struct ctl_mapping m;

    (void)state;
    ctl_mapping_defaults(&m);
    assert_int_equal(field(&m, "cat:ddos", false), set("anti-ddos connectivity"));
    assert_int_equal(field(&m, "cat:ransomware", false), set("backup edr incident-response"));
    assert_int_equal(field(&m, "cat:wiper", false), set("backup edr incident-response"));
    assert_int_equal(field(&m, "cat:malware", false), set("backup edr incident-response"));
    assert_int_equal(field(&m, "cat:phishing", false), set("training email-security"));
    assert_int_equal(field(&m, "cat:bruteforce", false), set("mfa edr assessment"));
    assert_int_equal(field(&m, "cat:intrusion", false), set("mfa edr assessment"));
    assert_int_equal(field(&m, "cat:service-outage", false), set("connectivity"));
    assert_int_equal(field(&m, "cat:scan", false), 0);
    assert_int_equal(field(&m, "cat:other", false), 0);
    assert_int_equal(field(&m, "cat:nonsense", false), 0);
    assert_int_equal(field(&m, "events", false), 0);
    assert_int_equal(field(&m, "sev:high", false), 0);
    assert_int_equal(field(&m, "tac:impact", false), 0);
}

static void test_mapping_techniques(void **state)
{
    struct ctl_mapping m;
    char err[TM_ERR_LEN];

    (void)state;
    ctl_mapping_defaults(&m);
    assert_int_equal(field(&m, "tech:T1110", true), set("mfa"));
    assert_int_equal(field(&m, "tech:T1110.001", true), set("mfa")); /* prefix */
    assert_int_equal(field(&m, "tech:T11100", true), 0);
    assert_int_equal(field(&m, "tech:T1566.002", true), set("training email-security"));
    assert_int_equal(field(&m, "tech:T9999", true), 0);
    /* a sub-technique key matches itself only, and ORs with its parent's */
    assert_int_equal(ctl_mapping_set(&m, "T1110.003", "assessment", err), 0);
    assert_int_equal(field(&m, "tech:T1110.003", true), set("mfa assessment"));
    assert_int_equal(field(&m, "tech:T1110.001", true), set("mfa"));
    assert_int_equal(ctl_mapping_set(&m, "T1110", "", err), 0);
    assert_int_equal(field(&m, "tech:T1110", true), 0);
    assert_int_equal(field(&m, "tech:T1110.003", true), set("assessment"));
}

static void test_mapping_overrides_and_errors(void **state)
{
    struct ctl_mapping m;
    char err[TM_ERR_LEN], d[256];

    (void)state;
    ctl_mapping_defaults(&m);
    assert_int_equal(ctl_mapping_set(&m, "ddos", "anti-ddos", err), 0);
    assert_int_equal(field(&m, "cat:ddos", false), set("anti-ddos"));
    assert_int_equal(ctl_mapping_set(&m, "scan", "assessment; edr,mfa", err), 0);
    assert_int_equal(field(&m, "cat:scan", false), set("assessment edr mfa"));
    assert_int_equal(ctl_mapping_set(&m, "phishing", "", err), 0);
    assert_int_equal(field(&m, "cat:phishing", false), 0);
    assert_int_equal(ctl_mapping_set(&m, "ddos", "firewall", err), -1);
    assert_non_null(strstr(err, "'firewall': not a need category"));
    assert_int_equal(field(&m, "cat:ddos", false), set("anti-ddos")); /* unchanged */
    assert_int_equal(ctl_mapping_set(&m, "flood", "anti-ddos", err), -1);
    assert_non_null(strstr(err, "neither an incident category"));
    assert_int_equal(ctl_mapping_set(&m, "t1110", "mfa", err), -1);

    ctl_mapping_defaults(&m);
    ctl_mapping_describe(&m, tm_need_category_index("anti-ddos"), d, sizeof(d));
    assert_string_equal(d, "categories ddos; techniques T1498, T1499");
    ctl_mapping_describe(&m, tm_need_category_index("other"), d, sizeof(d));
    assert_string_equal(d, "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping_issue_defaults),
        cmocka_unit_test(test_mapping_techniques),
        cmocka_unit_test(test_mapping_overrides_and_errors),
    };
    return cmocka_run_group_tests_name("mapping", tests, NULL, NULL);
}
