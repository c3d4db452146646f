/*
 * test_inifile.c - the line-preserving INI editor: untouched lines come out byte for byte
 * (comments, blank lines, CRLF, odd spacing), lists grow in place before an inline
 * comment, new keys go after the section's last key (not after the next section's
 * comment), missing sections are appended, long lists continue on KEY.N, and what it
 * writes loads with tm_config (no duplicate key, no over-long line). Also tm_file's
 * atomic writes and lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tm/tm_config.h"
#include "tm/tm_file.h"
#include "tm/tm_inifile.h"

static const char map[] = "# national identity map\n"
                          "\n"
                          "[operator.ua-water-kyiv]\n"
                          "sector = drinking-water\n"
                          "region   =   UA-30\n"
                          "certs = a.example, b.example ; the two pumps\r\n"
                          "\n"
                          "# the energy company, since 2025\n"
                          "[operator.ua-energy-lviv]\n"
                          "sector: energy\n"
                          "\n"
                          "; deny list\n"
                          "[revoked]\n"
                          "certs = old.example";

static struct tm_inifile *model(const char *text)
{
    struct tm_inifile *f = tm_inifile_parse(text, strlen(text));
    assert_non_null(f);
    return f;
}

static char *text_of(struct tm_inifile *f)
{
    char *t = tm_inifile_text(f, NULL);
    assert_non_null(t);
    return t;
}

static void test_inifile_round_trip_is_exact(void **state)
{
    struct tm_inifile *f = model(map);
    char *t = text_of(f);
    (void)state;

    /* Byte for byte, plus the final newline the last line lacked. */
    assert_int_equal(strlen(t), strlen(map) + 1);
    assert_memory_equal(t, map, strlen(map));
    assert_int_equal(t[strlen(map)], '\n');
    free(t);
    tm_inifile_free(f);
}

static void test_inifile_get_and_list(void **state)
{
    struct tm_inifile *f = model(map);
    char v[64], small[4];
    (void)state;

    assert_int_equal(tm_inifile_get(f, "operator.ua-water-kyiv", "region", v, sizeof(v)), 0);
    assert_string_equal(v, "UA-30");
    assert_int_equal(tm_inifile_get(f, "operator.ua-energy-lviv", "sector", v, sizeof(v)), 0);
    assert_string_equal(v, "energy");
    assert_int_equal(tm_inifile_get(f, "operator.ua-energy-lviv", "region", v, sizeof(v)), -1);
    assert_int_equal(tm_inifile_get(f, "operator.ua-water-kyiv", "sector", small, sizeof(small)),
                     -2);
    assert_true(tm_inifile_list_has(f, "operator.ua-water-kyiv", "certs", "b.example"));
    assert_false(tm_inifile_list_has(f, "operator.ua-water-kyiv", "certs", "the two pumps"));
    assert_false(tm_inifile_list_has(f, "operator.ua-energy-lviv", "certs", "a.example"));
    assert_true(tm_inifile_list_has(f, "revoked", "certs", "old.example"));
    assert_true(tm_inifile_has_section(f, "revoked"));
    assert_false(tm_inifile_has_section(f, "operator.nobody"));
    tm_inifile_free(f);
}

static void test_inifile_list_add_in_place_before_comment(void **state)
{
    struct tm_inifile *f = model(map);
    char err[TM_ERR_LEN];
    char *t;
    (void)state;

    assert_int_equal(tm_inifile_list_add(f, "operator.ua-water-kyiv", "certs", "c.example", err),
                     0);
    /* again: no duplicate */
    assert_int_equal(tm_inifile_list_add(f, "operator.ua-water-kyiv", "certs", "c.example", err),
                     0);
    t = text_of(f);
    assert_non_null(strstr(t, "certs = a.example, b.example, c.example ; the two pumps\r\n"));
    /* nothing else changed */
    assert_non_null(strstr(t, "region   =   UA-30\n"));
    assert_non_null(strstr(t, "\n# the energy company, since 2025\n[operator.ua-energy-lviv]\n"));
    free(t);
    tm_inifile_free(f);
}

static void test_inifile_new_key_goes_after_last_key(void **state)
{
    struct tm_inifile *f = model(map);
    char err[TM_ERR_LEN];
    char *t;
    (void)state;

    assert_int_equal(tm_inifile_list_add(f, "operator.ua-energy-lviv", "certs", "e.example", err),
                     0);
    assert_int_equal(tm_inifile_set(f, "operator.ua-energy-lviv", "region", "UA-46", err), 0);
    t = text_of(f);
    assert_non_null(strstr(t, "[operator.ua-energy-lviv]\nsector: energy\ncerts = e.example\n"
                              "region = UA-46\n\n; deny list\n[revoked]\n"));
    free(t);
    /* set replaces a value, keeping the spacing before it */
    assert_int_equal(tm_inifile_set(f, "operator.ua-water-kyiv", "region", "UA-32", err), 0);
    t = text_of(f);
    assert_non_null(strstr(t, "region   =   UA-32\n"));
    free(t);
    tm_inifile_free(f);
}

static void test_inifile_missing_section_is_appended(void **state)
{
    struct tm_inifile *f = model("[a]\nx = 1\n");
    struct tm_inifile *empty = model("");
    char err[TM_ERR_LEN];
    char *t;
    (void)state;

    assert_int_equal(tm_inifile_list_add(f, "revoked", "certs", "n.example", err), 0);
    t = text_of(f);
    assert_string_equal(t, "[a]\nx = 1\n\n[revoked]\ncerts = n.example\n");
    free(t);
    assert_int_equal(tm_inifile_set(empty, "operator.x", "sector", "energy", err), 0);
    t = text_of(empty);
    assert_string_equal(t, "[operator.x]\nsector = energy\n");
    free(t);
    tm_inifile_free(f);
    tm_inifile_free(empty);
}

static int count_cb(void *arg, const char *item)
{
    (void)item;
    (*(int *)arg)++;
    return 0;
}

static int seen_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    (void)section;
    (void)key;
    (void)value;
    (void)err;
    (*(int *)arg)++;
    return 0;
}

static void test_inifile_long_list_continues_and_loads(void **state)
{
    struct tm_inifile *f = model("[operator.big]\nsector = energy\ncerts = first.example\n");
    static const struct tm_config_option none[] = {
        {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL}};
    char err[TM_ERR_LEN], item[64], dummy;
    int n = 0, keys = 0;
    struct tm_config_spec spec = {none, seen_cb, &keys};
    char *t;
    (void)state;

    for (int i = 0; i < 300; i++) {
        snprintf(item, sizeof(item), "agent-%03d-0123456789abcdef.agents.tm", i);
        assert_int_equal(tm_inifile_list_add(f, "operator.big", "certs", item, err), 0);
    }
    assert_int_equal(tm_inifile_list_each(f, "operator.big", "certs", count_cb, &n), 0);
    assert_int_equal(n, 301);
    assert_true(
        tm_inifile_list_has(f, "operator.big", "certs", "agent-299-0123456789abcdef.agents.tm"));
    t = text_of(f);
    assert_non_null(strstr(t, "\ncerts.2 = "));
    assert_non_null(strstr(t, "\ncerts.5 = "));
    for (char *l = t; *l != '\0';) {
        char *nl = strchr(l, '\n');
        assert_true((size_t)(nl - l) <= TM_INIFILE_LIST_LINE);
        l = nl + 1;
    }
    /* tm_config reads it: no duplicate key, no line too long */
    if (tm_config_load_string(&spec, &dummy, t, "map", err) != 0)
        fail_msg("%s", err);
    assert_true(keys > 3);
    free(t);
    tm_inifile_free(f);
}

static void test_inifile_refuses_unsafe_items(void **state)
{
    struct tm_inifile *f = model(map);
    char err[TM_ERR_LEN];
    char *before = text_of(f), *after;
    (void)state;

    assert_int_equal(tm_inifile_list_add(f, "revoked", "certs", "a,b", err), -1);
    assert_int_equal(tm_inifile_list_add(f, "revoked", "certs", "x\n[operator.evil]", err), -1);
    assert_int_equal(tm_inifile_list_add(f, "revoked", "certs", "a ; b", err), -1);
    assert_int_equal(tm_inifile_list_add(f, "revoked", "certs", "", err), -1);
    assert_int_equal(tm_inifile_set(f, "operator.x", "sector", "energy\nx = y", err), -1);
    assert_int_equal(tm_inifile_set(f, "bad]name", "sector", "energy", err), -1);
    after = text_of(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    tm_inifile_free(f);
}

static void test_inifile_save_atomic_keeps_mode(void **state)
{
    char dir[] = "/tmp/tm-inifile-XXXXXX", path[128], lock[128], err[TM_ERR_LEN];
    struct tm_inifile *f = NULL;
    struct stat st;
    char *text = NULL;
    int fd, fd2;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/map.ini", dir);
    /* missing file: empty model */
    assert_int_equal(tm_inifile_load(path, &f, err), 0);
    assert_int_equal(tm_inifile_set(f, "revoked", "certs", "x.example", err), 0);
    assert_int_equal(tm_inifile_save(f, path, 0640, err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    chmod(path, 0604);
    assert_int_equal(tm_inifile_save(f, path, 0640, err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0604);
    assert_int_equal(tm_file_read(path, 1 << 20, false, &text, NULL, err), 0);
    assert_string_equal(text, "[revoked]\ncerts = x.example\n");
    free(text);
    tm_inifile_free(f);

    /* NO_REPLACE refuses an existing file and leaves it alone */
    assert_int_equal(tm_file_write_atomic(path, "new", 3, 0600, TM_FILE_NO_REPLACE, err), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(tm_file_read(path, 1 << 20, false, &text, NULL, err), 0);
    assert_string_equal(text, "[revoked]\ncerts = x.example\n");
    free(text);
    /* too large */
    assert_int_equal(tm_file_read(path, 4, false, &text, NULL, err), -1);

    /* the lock excludes a second holder until released */
    snprintf(lock, sizeof(lock), "%s/map.ini.lock", dir);
    fd = tm_file_lock(lock, 1000, err);
    assert_true(fd >= 0);
    if (fork() == 0) /* flock locks belong to open file descriptions: try from a child */
        _exit(tm_file_lock(lock, 100, err) < 0 && errno == EWOULDBLOCK ? 0 : 1);
    {
        int status = 0;
        wait(&status);
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    tm_file_unlock(fd);
    fd2 = tm_file_lock(lock, 100, err);
    assert_true(fd2 >= 0);
    tm_file_unlock(fd2);

    /*
     * A lock file made under a tight umask is still 0660, and made by root it takes the
     * directory's group: the daemon of that group can open what root's tmctl made.
     */
    snprintf(lock, sizeof(lock), "%s/other.lock", dir);
    if (geteuid() == 0)
        assert_int_equal(chown(dir, (uid_t)-1, 4242), 0);
    {
        mode_t old = umask(077);
        fd = tm_file_lock(lock, 100, err);
        umask(old);
    }
    assert_true(fd >= 0);
    tm_file_unlock(fd);
    assert_int_equal(stat(lock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    if (geteuid() == 0)
        assert_int_equal(st.st_gid, 4242);

    snprintf(lock, sizeof(lock), "rm -rf '%s'", dir);
    assert_int_equal(system(lock), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inifile_round_trip_is_exact),
        cmocka_unit_test(test_inifile_get_and_list),
        cmocka_unit_test(test_inifile_list_add_in_place_before_comment),
        cmocka_unit_test(test_inifile_new_key_goes_after_last_key),
        cmocka_unit_test(test_inifile_missing_section_is_appended),
        cmocka_unit_test(test_inifile_long_list_continues_and_loads),
        cmocka_unit_test(test_inifile_refuses_unsafe_items),
        cmocka_unit_test(test_inifile_save_atomic_keeps_mode),
    };
    return cmocka_run_group_tests_name("inifile", tests, NULL, NULL);
}
