/*
 * test_tokens.c - the enrollment token file: generated tokens are unique and only their
 * digest is kept; a token checks as ok once, then as used after it is burned, also after
 * a save and a load (a restart); expiry; an unknown token; the file format round trip,
 * bad lines named by number, and pruning of long-expired tokens on save.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tm/tm_tokens.h"

#define NOW 1795000000000LL /* 2026-11-18 */
#define HOUR 3600000LL

static struct tm_token entry(const char *digest, int64_t expires, const char *name)
{
    struct tm_token t;

    memset(&t, 0, sizeof(t));
    snprintf(t.digest, sizeof(t.digest), "%s", digest);
    t.expires_ms = expires;
    snprintf(t.operator_id, sizeof(t.operator_id), "ua-water-kyiv");
    snprintf(t.sector, sizeof(t.sector), "drinking-water");
    snprintf(t.region, sizeof(t.region), "UA-30");
    snprintf(t.name, sizeof(t.name), "%s", name);
    return t;
}

static void test_tokens_generate_and_digest(void **state)
{
    char a[TM_TOKEN_LEN], b[TM_TOKEN_LEN], da[65], db[65], again[65], err[TM_ERR_LEN];
    (void)state;

    assert_int_equal(tm_tokens_generate(a, da, err), 0);
    assert_int_equal(tm_tokens_generate(b, db, err), 0);
    assert_int_equal(strlen(a), TM_TOKEN_LEN - 1);
    assert_memory_equal(a, TM_TOKEN_PREFIX, 4);
    assert_string_not_equal(a, b);
    assert_string_not_equal(da, db);
    tm_tokens_digest(a, again);
    assert_string_equal(da, again);
    /* sha256("password"), the example of docs/collector.md */
    tm_tokens_digest("password", again);
    assert_string_equal(again, "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8");
}

static void test_tokens_check_burn_expire(void **state)
{
    struct tm_tokens t = {NULL, 0};
    char tok[TM_TOKEN_LEN], dig[65], old[TM_TOKEN_LEN], olddig[65], err[TM_ERR_LEN];
    struct tm_token e;
    long idx;
    (void)state;

    assert_int_equal(tm_tokens_generate(tok, dig, err), 0);
    assert_int_equal(tm_tokens_generate(old, olddig, err), 0);
    e = entry(dig, NOW + 24 * HOUR, "a1.agents.tm");
    assert_int_equal(tm_tokens_add(&t, &e, err), 0);
    assert_int_equal(tm_tokens_add(&t, &e, err), -1); /* same digest twice */
    e = entry(olddig, NOW - HOUR, "a2.agents.tm");
    assert_int_equal(tm_tokens_add(&t, &e, err), 0);

    assert_int_equal(tm_tokens_check(&t, tok, NOW, &idx), TM_TOKEN_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(tm_tokens_check(&t, old, NOW, &idx), TM_TOKEN_EXPIRED);
    assert_int_equal(idx, 1);
    assert_int_equal(tm_tokens_check(&t, "tme_00", NOW, &idx), TM_TOKEN_UNKNOWN);
    assert_int_equal(idx, -1);
    /* the digest itself is not the token */
    assert_int_equal(tm_tokens_check(&t, dig, NOW, &idx), TM_TOKEN_UNKNOWN);
    /* expiry is exclusive */
    assert_int_equal(tm_tokens_check(&t, tok, NOW + 24 * HOUR, &idx), TM_TOKEN_EXPIRED);

    tm_tokens_burn(&t, 0, TM_TOKEN_USED, NOW + 1000);
    assert_int_equal(tm_tokens_check(&t, tok, NOW, &idx), TM_TOKEN_BURNED);
    assert_string_equal(tm_token_check_name(TM_TOKEN_BURNED), "used");
    tm_tokens_free(&t);
}

static void test_tokens_file_round_trip_and_restart(void **state)
{
    char dir[] = "/tmp/tm-tokens-XXXXXX", path[128], cmd[160], err[TM_ERR_LEN];
    char tok[TM_TOKEN_LEN], dig[65], tok2[TM_TOKEN_LEN], dig2[65], *text;
    struct tm_tokens t = {NULL, 0}, back = {NULL, 0};
    struct tm_token e;
    struct stat st;
    long idx;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/enroll-tokens", dir);
    assert_int_equal(tm_tokens_load(path, &t, err), 0); /* missing: empty */
    assert_int_equal(t.n, 0);
    assert_int_equal(tm_tokens_generate(tok, dig, err), 0);
    assert_int_equal(tm_tokens_generate(tok2, dig2, err), 0);
    e = entry(dig, NOW + HOUR, "a1.agents.tm");
    e.region[0] = '\0';
    assert_int_equal(tm_tokens_add(&t, &e, err), 0);
    /* long expired: dropped on save */
    e = entry(dig2, NOW - 8 * 24 * HOUR, "a2.agents.tm");
    assert_int_equal(tm_tokens_add(&t, &e, err), 0);
    tm_tokens_burn(&t, 0, TM_TOKEN_USED, NOW);
    assert_int_equal(tm_tokens_save(path, &t, NOW, err), 0);
    assert_int_equal(t.n, 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    /* the file never holds the token itself */
    f = fopen(path, "r");
    assert_non_null(f);
    text = calloc(1, 8192);
    assert_true(fread(text, 1, 8191, f) > 0);
    fclose(f);
    assert_null(strstr(text, tok));
    assert_null(strstr(text, tok + 4));
    assert_non_null(strstr(text, dig));
    assert_non_null(strstr(text, " - a1.agents.tm used:"));
    free(text);

    /* a restart: load again, still burned */
    assert_int_equal(tm_tokens_load(path, &back, err), 0);
    assert_int_equal(back.n, 1);
    assert_int_equal(tm_tokens_check(&back, tok, NOW, &idx), TM_TOKEN_BURNED);
    assert_int_equal(back.v[0].state_ms, NOW);
    assert_string_equal(back.v[0].region, "");
    assert_int_equal(tm_tokens_check(&back, tok2, NOW, &idx), TM_TOKEN_UNKNOWN);
    tm_tokens_free(&back);
    tm_tokens_free(&t);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_tokens_bad_lines(void **state)
{
    static const char *const bad[] = {
        "nothex 2026-11-24T12:00:00.000Z op energy UA-30 a.x pending\n",
        "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 tomorrow op energy "
        "UA-30 a.x pending\n",
        "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 "
        "2026-11-24T12:00:00.000Z op energy UA-30 a.x maybe\n",
        "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 "
        "2026-11-24T12:00:00.000Z op energy UA-30 A.X pending\n",
        "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 "
        "2026-11-24T12:00:00.000Z op energy UA-30 a.x\n",
    };
    struct tm_tokens t;
    char err[TM_ERR_LEN], text[512];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "# header\n\n%s", bad[i]);
        assert_int_equal(tm_tokens_parse(text, &t, err), -1);
        assert_non_null(strstr(err, "line 3:"));
        tm_tokens_free(&t);
    }
    assert_int_equal(tm_tokens_parse("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1"
                                     "542d8 2026-11-24T12:00:00.000Z op energy UA-30 a.x "
                                     "revoked:2026-11-23T12:00:00.000Z\n",
                                     &t, err),
                     0);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.v[0].state, TM_TOKEN_REVOKED);
    tm_tokens_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_generate_and_digest),
        cmocka_unit_test(test_tokens_check_burn_expire),
        cmocka_unit_test(test_tokens_file_round_trip_and_restart),
        cmocka_unit_test(test_tokens_bad_lines),
    };
    return cmocka_run_group_tests_name("tokens", tests, NULL, NULL);
}
