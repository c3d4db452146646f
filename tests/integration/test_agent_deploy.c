/*
 * test_agent_deploy.c - what we ship for installing tm-agent stays sound: the example
 * config deploy/tm-agent.ini passes `tm-agent --check-config`; broken copies of it (an
 * unknown key, an unknown format, a file input without paths) fail with exit 2 and a
 * message that names the file and line or the input; and the systemd unit
 * deploy/systemd/tm-agent.service keeps its user, state directory and hardening
 * directives, with the only writable path being the example config's state_dir.
 *
 * The real binary runs through tm_harness_run with stderr joined to stdout by /bin/sh,
 * so messages are checked as an operator sees them. Broken copies live in a private
 * directory removed at teardown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define UNIT_MAX_LINES 256

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tm-agent-deploy-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char *argv[] = {"rm", "-rf", tmpdir, NULL};
    (void)state;
    return tm_harness_run(argv, NULL, NULL, 10000) == 0 ? 0 : -1;
}

/* Reads a whole (small) file into a NUL-terminated malloc'd string; fails the test. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (f == NULL)
        fail_msg("cannot open '%s'", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0 && len < 1000000);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void repo_path(const char *rel, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", tm_harness_root(), rel);
}

/*
 * Runs `tm-agent -c config --check-config` with stderr joined to stdout. Returns the exit
 * status; *out gets the output (the caller frees it).
 */
static int check_config(const char *config, char **out)
{
    char bin[512];
    char *argv[] = {"/bin/sh", "-c",           "exec \"$0\" -c \"$1\" --check-config 2>&1",
                    bin,       (char *)config, NULL};

    snprintf(bin, sizeof(bin), "%s/tm-agent", tm_harness_build_dir());
    return tm_harness_run(argv, out, NULL, 10000);
}

/* 1-based number of the line of text that starts at p. */
static int line_of(const char *text, const char *p)
{
    int line = 1;

    for (const char *c = text; c < p; c++)
        if (*c == '\n')
            line++;
    return line;
}

/*
 * Writes tmpdir/name: a copy of the example in which the first line equal to `line` is
 * replaced by `with` ("" drops it), or, with `after`, followed by `with` (a "\n"-ended
 * line). Returns the copy's 1-based number of the line that changed.
 */
static int broken_copy(const char *name, const char *line, const char *with, bool after, char *path,
                       size_t pathlen)
{
    char example[512];
    char *text, *p, *end = NULL, *out;
    size_t outlen;
    int n;

    repo_path("deploy/tm-agent.ini", example, sizeof(example));
    text = read_file(example);
    for (p = text; *p != '\0'; p = end + 1) {
        end = strchr(p, '\n');
        if (end == NULL)
            fail_msg("'%s' is not a line of %s", line, example);
        if ((size_t)(end - p) == strlen(line) && strncmp(p, line, strlen(line)) == 0)
            break;
    }
    if (*p == '\0')
        fail_msg("'%s' is not a line of %s", line, example);
    n = line_of(text, p);
    end++; /* past the newline */
    outlen = strlen(text) + strlen(with) + 1;
    out = malloc(outlen);
    assert_non_null(out);
    if (after) {
        snprintf(out, outlen, "%.*s%s%s", (int)(end - text), text, with, end);
        n++;
    } else {
        snprintf(out, outlen, "%.*s%s%s", (int)(p - text), text, with, end);
    }
    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    write_file(path, out);
    free(out);
    free(text);
    return n;
}

static void test_agent_deploy_example_config_is_valid(void **state)
{
    char example[512];
    char *out = NULL;
    (void)state;

    repo_path("deploy/tm-agent.ini", example, sizeof(example));
    assert_int_equal(check_config(example, &out), 0);
    assert_non_null(strstr(out, "config ok: agent 'ua-water-kyiv-gw1', 3 input(s)"));
    free(out);
}

static void test_agent_deploy_unknown_key_names_file_and_line(void **state)
{
    char path[512], where[600];
    char *out = NULL;
    int line;
    (void)state;

    line = broken_copy("unknown-key.ini", "[input.auth]", "treshold_count = 5\n", true, path,
                       sizeof(path));
    assert_int_equal(check_config(path, &out), 2);
    snprintf(where, sizeof(where), "%s:%d:", path, line);
    assert_non_null(strstr(out, where));
    assert_non_null(strstr(out, "[input.auth] treshold_count"));
    assert_non_null(strstr(out, "unknown option"));
    assert_null(strstr(out, "config ok"));
    free(out);
}

static void test_agent_deploy_bad_format_names_input(void **state)
{
    char path[512];
    char *out = NULL;
    (void)state;

    broken_copy("bad-format.ini", "format = eve", "format = suricata\n", false, path, sizeof(path));
    assert_int_equal(check_config(path, &out), 2);
    assert_non_null(strstr(out, "[input.suricata] format 'suricata'"));
    assert_non_null(strstr(out, "eve, auth, cef, syslog, json"));
    free(out);
}

static void test_agent_deploy_file_input_without_paths_names_input(void **state)
{
    char path[512];
    char *out = NULL;
    (void)state;

    broken_copy("no-paths.ini", "paths = /var/log/suricata/eve.json", "", false, path,
                sizeof(path));
    assert_int_equal(check_config(path, &out), 2);
    assert_non_null(strstr(out, "[input.suricata] a file input needs paths"));
    free(out);
}

/* ---- the systemd unit ---------------------------------------------------------------- */

/* --check-config builds the detectors as start-up does: their own checks fail here too. */
static void test_agent_deploy_detector_settings_checked(void **state)
{
    char path[512];
    char *out = NULL;
    (void)state;

    broken_copy("bad-spike.ini", "[input.auth]", "spike_category = flood\n", true, path,
                sizeof(path));
    assert_int_equal(check_config(path, &out), 2);
    assert_non_null(strstr(out, "[input.auth] spike_category: unknown category 'flood'"));
    free(out);
}

struct directive {
    char key[64];
    char value[256];
};

/* Parses KEY=VALUE lines of a unit file (comments, blanks and [Section] lines skipped). */
static size_t parse_unit(char *text, struct directive *d, size_t max)
{
    size_t n = 0;
    char *save = NULL;

    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(l, '=');
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l == '#' || *l == ';' || *l == '[' || *l == '\0' || eq == NULL)
            continue;
        assert_true(n < max);
        *eq = '\0';
        snprintf(d[n].key, sizeof(d[n].key), "%s", l);
        snprintf(d[n].value, sizeof(d[n].value), "%s", eq + 1);
        n++;
    }
    return n;
}

/* How many times key is set, and the last value (as systemd takes it for most keys). */
static int unit_get(const struct directive *d, size_t n, const char *key, const char **value)
{
    int count = 0;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(d[i].key, key) == 0) {
            *value = d[i].value;
            count++;
        }
    }
    return count;
}

static void expect(const struct directive *d, size_t n, const char *key, const char *want)
{
    const char *v = NULL;

    if (unit_get(d, n, key, &v) == 0)
        fail_msg("tm-agent.service: %s is missing", key);
    if (strcmp(v, want) != 0)
        fail_msg("tm-agent.service: %s=%s, expected %s", key, v, want);
}

static void expect_true(const struct directive *d, size_t n, const char *key)
{
    const char *v = NULL;

    if (unit_get(d, n, key, &v) == 0)
        fail_msg("tm-agent.service: %s is missing", key);
    if (strcmp(v, "true") != 0 && strcmp(v, "yes") != 0 && strcmp(v, "1") != 0 &&
        strcmp(v, "on") != 0)
        fail_msg("tm-agent.service: %s=%s, expected true", key, v);
}

static void test_agent_deploy_unit_is_hardened(void **state)
{
    static struct directive d[UNIT_MAX_LINES];
    char unit[512], example[512];
    char *text, *ini;
    const char *v = NULL;
    size_t n;
    (void)state;

    repo_path("deploy/systemd/tm-agent.service", unit, sizeof(unit));
    text = read_file(unit);
    n = parse_unit(text, d, UNIT_MAX_LINES);
    expect(d, n, "Type", "simple");
    expect(d, n, "ExecStart", "/usr/bin/tm-agent -c /etc/tm-agent/tm-agent.ini");
    expect(d, n, "User", "tm-agent");
    expect(d, n, "Group", "tm-agent");
    expect(d, n, "SupplementaryGroups", "adm");
    expect(d, n, "StateDirectory", "tm-agent");
    expect(d, n, "ProtectSystem", "strict");
    expect(d, n, "ProtectHome", "true");
    expect_true(d, n, "PrivateTmp");
    expect_true(d, n, "NoNewPrivileges");
    expect_true(d, n, "ProtectKernelTunables");
    expect_true(d, n, "ProtectKernelModules");
    expect_true(d, n, "ProtectKernelLogs");
    expect(d, n, "RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX");
    expect(d, n, "CapabilityBoundingSet", "CAP_NET_BIND_SERVICE");
    expect(d, n, "AmbientCapabilities", "CAP_NET_BIND_SERVICE");
    expect(d, n, "SystemCallFilter", "@system-service");
    expect(d, n, "Restart", "on-failure");
    assert_int_equal(unit_get(d, n, "MemoryMax", &v), 1);
    assert_true(v[0] >= '1' && v[0] <= '9');
    /* One writable path, and it is where the example config puts the state. */
    assert_int_equal(unit_get(d, n, "ReadWritePaths", &v), 1);
    assert_string_equal(v, "/var/lib/tm-agent");
    repo_path("deploy/tm-agent.ini", example, sizeof(example));
    ini = read_file(example);
    assert_non_null(strstr(ini, "\nstate_dir = /var/lib/tm-agent\n"));
    free(ini);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_deploy_example_config_is_valid),
        cmocka_unit_test(test_agent_deploy_unknown_key_names_file_and_line),
        cmocka_unit_test(test_agent_deploy_bad_format_names_input),
        cmocka_unit_test(test_agent_deploy_detector_settings_checked),
        cmocka_unit_test(test_agent_deploy_file_input_without_paths_names_input),
        cmocka_unit_test(test_agent_deploy_unit_is_hardened),
    };

    return cmocka_run_group_tests_name("agent_deploy", tests, setup, teardown);
}
