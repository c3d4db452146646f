/*
 * test_idmap.c - identity map rules for enrollment: id and name syntax, an operator keeps
 * its sector and region, a name belongs to one operator, a revoked name is never given
 * out again, revocation is idempotent, and an edited map keeps its other sections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_idmap.h"

static const char map[] = "# keep me\n"
                          "[operator.ua-water-kyiv]\n"
                          "sector = drinking-water\n"
                          "region = UA-30\n"
                          "certs = pump-1.vodokanal.example\n"
                          "networks = 10.10.0.0/16\n"
                          "\n"
                          "[revoked]\n"
                          "certs = stolen.vodokanal.example\n";

static struct tm_inifile *model(void)
{
    struct tm_inifile *f = tm_inifile_parse(map, strlen(map));
    assert_non_null(f);
    return f;
}

static void test_idmap_syntax(void **state)
{
    (void)state;
    assert_true(tm_idmap_operator_valid("ua-water-kyiv"));
    assert_true(tm_idmap_operator_valid("UA_Op.1"));
    assert_false(tm_idmap_operator_valid(""));
    assert_false(tm_idmap_operator_valid("ua water"));
    assert_false(tm_idmap_operator_valid("ua]x"));
    assert_false(tm_idmap_operator_valid("a234567890123456789012345678901234567890x"));
    assert_true(tm_idmap_name_valid("ua-water-kyiv-3f9a1c2e.agents.tm"));
    assert_true(tm_idmap_name_valid("a"));
    assert_false(tm_idmap_name_valid("Upper.example"));
    assert_false(tm_idmap_name_valid("-x.example"));
    assert_false(tm_idmap_name_valid("x-.example"));
    assert_false(tm_idmap_name_valid("x..example"));
    assert_false(tm_idmap_name_valid(".example"));
    assert_false(tm_idmap_name_valid("example."));
    assert_false(tm_idmap_name_valid("a,b"));
    assert_false(tm_idmap_name_valid("*.example"));
}

static void test_idmap_check_rules(void **state)
{
    struct tm_inifile *f = model();
    char sector[32], region[8], err[TM_ERR_LEN], op[TM_IDMAP_OPERATOR_MAX + 1];
    bool renewal;
    (void)state;

    /* an existing operator: empty sector/region take the map's */
    sector[0] = region[0] = '\0';
    assert_int_equal(tm_idmap_check(f, "ua-water-kyiv", sector, region, "pump-2.x", &renewal, err),
                     0);
    assert_string_equal(sector, "drinking-water");
    assert_string_equal(region, "UA-30");
    assert_false(renewal);
    /* ... and other values are refused */
    snprintf(sector, sizeof(sector), "energy");
    region[0] = '\0';
    assert_int_equal(tm_idmap_check(f, "ua-water-kyiv", sector, region, "pump-2.x", &renewal, err),
                     -1);
    assert_non_null(strstr(err, "drinking-water"));
    /* the same name again for the same operator: a renewal */
    sector[0] = region[0] = '\0';
    assert_int_equal(tm_idmap_check(f, "ua-water-kyiv", sector, region, "pump-1.vodokanal.example",
                                    &renewal, err),
                     0);
    assert_true(renewal);
    /* another operator's name, a revoked name */
    snprintf(sector, sizeof(sector), "energy");
    snprintf(region, sizeof(region), "UA-46");
    assert_int_equal(tm_idmap_check(f, "ua-energy-lviv", sector, region, "pump-1.vodokanal.example",
                                    &renewal, err),
                     -1);
    assert_non_null(strstr(err, "ua-water-kyiv"));
    assert_int_equal(tm_idmap_check(f, "ua-energy-lviv", sector, region, "stolen.vodokanal.example",
                                    &renewal, err),
                     -1);
    assert_non_null(strstr(err, "revoked"));
    /* a new operator needs known sector and region */
    sector[0] = '\0';
    assert_int_equal(tm_idmap_check(f, "ua-energy-lviv", sector, region, "e1.x", &renewal, err),
                     -1);
    snprintf(sector, sizeof(sector), "steelworks");
    assert_int_equal(tm_idmap_check(f, "ua-energy-lviv", sector, region, "e1.x", &renewal, err),
                     -1);
    snprintf(sector, sizeof(sector), "energy");
    snprintf(region, sizeof(region), "UA-99");
    assert_int_equal(tm_idmap_check(f, "ua-energy-lviv", sector, region, "e1.x", &renewal, err),
                     -1);
    snprintf(region, sizeof(region), "UA-46");
    assert_int_equal(tm_idmap_check(f, "ua-energy-lviv", sector, region, "e1.x", &renewal, err), 0);
    assert_int_equal(tm_idmap_cert_owner(f, "pump-1.vodokanal.example", op), 1);
    assert_string_equal(op, "ua-water-kyiv");
    assert_int_equal(tm_idmap_cert_owner(f, "e1.x", op), 0);
    tm_inifile_free(f);
}

static void test_idmap_add_and_revoke_keep_the_rest(void **state)
{
    struct tm_inifile *f = model();
    char err[TM_ERR_LEN], *t;
    bool added;
    (void)state;

    assert_int_equal(tm_idmap_add_cert(f, "ua-energy-lviv", "energy", "UA-46", "e1.x", err), 0);
    assert_int_equal(tm_idmap_add_cert(f, "ua-water-kyiv", "drinking-water", "UA-30", "p2.x", err),
                     0);
    assert_int_equal(tm_idmap_revoke_cert(f, "p2.x", &added, err), 0);
    assert_true(added);
    assert_int_equal(tm_idmap_revoke_cert(f, "p2.x", &added, err), 0);
    assert_false(added);
    assert_int_equal(tm_idmap_revoke_token(f, "nothex", &added, err), -1);
    assert_int_equal(
        tm_idmap_revoke_token(f, "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
                              &added, err),
        0);
    assert_true(tm_idmap_cert_revoked(f, "p2.x"));
    t = tm_inifile_text(f, NULL);
    assert_string_equal(t, "# keep me\n"
                           "[operator.ua-water-kyiv]\n"
                           "sector = drinking-water\n"
                           "region = UA-30\n"
                           "certs = pump-1.vodokanal.example, p2.x\n"
                           "networks = 10.10.0.0/16\n"
                           "\n"
                           "[revoked]\n"
                           "certs = stolen.vodokanal.example, p2.x\n"
                           "tokens_sha256 = "
                           "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\n"
                           "\n"
                           "[operator.ua-energy-lviv]\n"
                           "sector = energy\n"
                           "region = UA-46\n"
                           "certs = e1.x\n");
    free(t);
    tm_inifile_free(f);
}

static void test_idmap_paths(void **state)
{
    char out[256];
    (void)state;

    assert_int_equal(tm_idmap_lock_path("/etc/tm-collector/identities.ini", out, sizeof(out)), 0);
    assert_string_equal(out, "/etc/tm-collector/identities.ini.lock");
    assert_int_equal(tm_idmap_tokens_path("/etc/tm-collector/identities.ini", out, sizeof(out)), 0);
    assert_string_equal(out, "/etc/tm-collector/enroll-tokens");
    assert_int_equal(tm_idmap_tokens_path("identities.ini", out, sizeof(out)), 0);
    assert_string_equal(out, "./enroll-tokens");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idmap_syntax),
        cmocka_unit_test(test_idmap_check_rules),
        cmocka_unit_test(test_idmap_add_and_revoke_keep_the_rest),
        cmocka_unit_test(test_idmap_paths),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}
