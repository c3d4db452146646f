/*
 * test_config.c - the INI config loader: defaults, every value type, every class of error
 * with its exact message (file, line, section, key, value, reason), the typed parsers,
 * command-line overrides, dynamic sections, and loading a real file made with mkstemp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm/tm_config.h"

struct cfg {
    char top[8];
    char name[16];
    int64_t count;
    bool enabled;
    uint64_t max_size;
    int64_t timeout_ms;
    char listen[48];
    int mode;
    int64_t any;
    uint64_t any_size;
    int64_t any_ms;
};

#define OFF(f) offsetof(struct cfg, f)
#define SZ(f) sizeof(((struct cfg *)0)->f)

static const char *const modes[] = {"fast", "safe", "slow", NULL};

static const struct tm_config_option options[] = {
    {"", "top", TM_CONF_STRING, "t", OFF(top), SZ(top), 0, 0, NULL, "a key before any section"},
    {"main", "name", TM_CONF_STRING, "demo", OFF(name), SZ(name), 0, 0, NULL, "a name"},
    {"main", "count", TM_CONF_INT, "3", OFF(count), 0, -5, 100, NULL, "a bounded integer"},
    {"main", "enabled", TM_CONF_BOOL, "yes", OFF(enabled), 0, 0, 0, NULL, "a flag"},
    {"main", "max_size", TM_CONF_SIZE, "1MiB", OFF(max_size), 0, 1024, 1073741824, NULL,
     "a bounded size"},
    {"main", "timeout", TM_CONF_DURATION, "5s", OFF(timeout_ms), 0, 100, 86400000, NULL,
     "a bounded duration"},
    {"main", "mode", TM_CONF_ENUM, "safe", OFF(mode), 0, 0, 0, modes, "one of three"},
    {"net", "listen", TM_CONF_ADDR, "127.0.0.1:5044", OFF(listen), SZ(listen), 0, 0, NULL,
     "an address"},
    {"limits", "any", TM_CONF_INT, NULL, OFF(any), 0, 0, 0, NULL, "any integer"},
    {"limits", "any_size", TM_CONF_SIZE, NULL, OFF(any_size), 0, 0, 0, NULL, "any size"},
    {"limits", "any_time", TM_CONF_DURATION, NULL, OFF(any_ms), 0, 0, 0, NULL, "any duration"},
    {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct tm_config_spec spec = {options, NULL, NULL};

/* What the dynamic callback saw: [input.NAME] path = ... is accepted, the rest refused. */
struct dyn_state {
    int calls;
    char last[64];
};

static int input_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    struct dyn_state *st = arg;

    if (strncmp(section, "input.", 6) != 0)
        return tm_err(err, "expected [input.NAME]");
    if (strcmp(key, "silent") == 0)
        return -1; /* refuses without a reason */
    if (strcmp(key, "path") != 0)
        return tm_err(err, "unknown input key (use path)");
    st->calls++;
    snprintf(st->last, sizeof(st->last), "%s:%s", section + 6, value);
    return 0;
}

static int load(const char *text, struct cfg *c, char *err)
{
    memset(c, 0x5a, sizeof(*c));
    err[0] = '\0';
    return tm_config_load_string(&spec, c, text, "test.ini", err);
}

/* Loads text and checks that it fails with exactly msg. */
static void expect_error(const char *text, const char *msg)
{
    char err[TM_ERR_LEN];
    struct cfg c;

    if (load(text, &c, err) == 0)
        fail_msg("'%s' loaded but should fail with '%s'", text, msg);
    assert_string_equal(err, msg);
}

static int write_temp(char *path, size_t pathlen, const char *data, size_t len)
{
    int fd;

    snprintf(path, pathlen, "%s/tm-config-test.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len) {
        close(fd);
        unlink(path);
        return -1;
    }
    return close(fd);
}

static void test_config_defaults_applied(void **state)
{
    char err[TM_ERR_LEN] = "";
    struct cfg c;
    (void)state;

    memset(&c, 0x5a, sizeof(c));
    assert_int_equal(tm_config_defaults(&spec, &c, err), 0);
    assert_string_equal(c.top, "t");
    assert_string_equal(c.name, "demo");
    assert_int_equal(c.count, 3);
    assert_true(c.enabled);
    assert_int_equal(c.max_size, 1048576);
    assert_int_equal(c.timeout_ms, 5000);
    assert_int_equal(c.mode, 1);
    assert_string_equal(c.listen, "127.0.0.1:5044");
    /* A NULL default is zero. */
    assert_int_equal(c.any, 0);
    assert_int_equal(c.any_size, 0);
    assert_int_equal(c.any_ms, 0);

    /* No path: defaults only. An empty text: the same. */
    memset(&c, 0x5a, sizeof(c));
    assert_int_equal(tm_config_load(&spec, &c, NULL, err), 0);
    assert_int_equal(c.count, 3);
    assert_string_equal(c.listen, "127.0.0.1:5044");
    assert_int_equal(load("", &c, err), 0);
    assert_int_equal(c.timeout_ms, 5000);
    assert_int_equal(c.any_size, 0);
}

static void test_config_each_type_parsed(void **state)
{
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(load("top = here\n"
                          "[main]\n"
                          "name = collector-1\n"
                          "count = -5\n"
                          "enabled = off\n"
                          "max_size = 16MiB\n"
                          "timeout = 250ms\n"
                          "mode = slow\n"
                          "[net]\n"
                          "listen = [::1]:0\n"
                          "[limits]\n"
                          "any = -9223372036854775808\n"
                          "any_size = 18446744073709551615\n"
                          "any_time = 7d\n",
                          &c, err),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(c.top, "here");
    assert_string_equal(c.name, "collector-1");
    assert_int_equal(c.count, -5);
    assert_false(c.enabled);
    assert_int_equal(c.max_size, 16 * 1024 * 1024);
    assert_int_equal(c.timeout_ms, 250);
    assert_int_equal(c.mode, 2);
    assert_string_equal(c.listen, "[::1]:0");
    assert_true(c.any == INT64_MIN);
    assert_true(c.any_size == UINT64_MAX);
    assert_int_equal(c.any_ms, 7LL * 86400000);
}

static void test_config_parse_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "yes", "Yes", "on", "ON", "1"};
    static const char *const no[] = {"false", "FALSE", "no", "No", "off", "OFF", "0"};
    static const char *const bad[] = {"", "2", "y", "n", "tru", "true ", " true", "enabled"};
    bool b;
    (void)state;

    for (size_t i = 0; i < TM_ARRAY_LEN(yes); i++) {
        b = false;
        assert_int_equal(tm_config_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(no); i++) {
        b = true;
        assert_int_equal(tm_config_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++)
        if (tm_config_parse_bool(bad[i], &b) == 0)
            fail_msg("'%s' parsed as a boolean", bad[i]);
    assert_int_equal(tm_config_parse_bool(NULL, &b), -1);
}

static void test_config_parse_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"123", 123},
        {"123b", 123},
        {"64k", 65536},
        {"64K", 65536},
        {"64KB", 65536},
        {"16KiB", 16384},
        {"8M", 8388608},
        {"8MB", 8388608},
        {"16MiB", 16777216},
        {"1G", 1073741824},
        {"1GB", 1073741824},
        {"2GiB", 2147483648ULL},
        {"1TiB", 1099511627776ULL},
        {"007k", 7168},
        {"18446744073709551615", UINT64_MAX},
        {"16777215TiB", 16777215ULL << 40},
    };
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1 k",
        "k",
        "1x",
        "1.5M",
        "0x10",
        "1kk",
        "1KiBs",
        "1e3",
        "16777216TiB",
        "17179869184G",
        "18446744073709551616",
    };
    uint64_t v;
    (void)state;

    for (size_t i = 0; i < TM_ARRAY_LEN(good); i++) {
        v = 42;
        if (tm_config_parse_size(good[i].s, &v) != 0)
            fail_msg("'%s' did not parse as a size", good[i].s);
        if (v != good[i].v)
            fail_msg("'%s' parsed as %llu", good[i].s, (unsigned long long)v);
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++) {
        v = 42;
        if (tm_config_parse_size(bad[i], &v) == 0)
            fail_msg("'%s' parsed as a size (%llu)", bad[i], (unsigned long long)v);
        assert_int_equal(v, 42);
    }
}

static void test_config_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"0", 0},
        {"10", 10000},
        {"250ms", 250},
        {"10s", 10000},
        {"5m", 300000},
        {"24h", 86400000},
        {"7d", 604800000},
        {"9223372036854775807ms", INT64_MAX},
        {"106751991167d", 106751991167LL * 86400000},
    };
    static const char *const bad[] = {
        "",
        "-1s",
        "+1s",
        "1S",
        "1M",
        "1.5s",
        "10 s",
        "s",
        "1w",
        "1sec",
        "1ms ",
        " 1",
        "1h30m",
        "9223372036854775807", /* seconds: overflows in ms */
        "9223372036854775808ms",
        "106751991168d",
    };
    int64_t ms;
    (void)state;

    for (size_t i = 0; i < TM_ARRAY_LEN(good); i++) {
        ms = -1;
        if (tm_config_parse_duration(good[i].s, &ms) != 0)
            fail_msg("'%s' did not parse as a duration", good[i].s);
        if (ms != good[i].ms)
            fail_msg("'%s' parsed as %lld ms", good[i].s, (long long)ms);
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++) {
        ms = -1;
        if (tm_config_parse_duration(bad[i], &ms) == 0)
            fail_msg("'%s' parsed as a duration (%lld ms)", bad[i], (long long)ms);
        assert_int_equal(ms, -1);
    }
}

static void test_config_addr_forms(void **state)
{
    static const char *const good[] = {
        "", /* unset: "off" */
        "127.0.0.1:0",
        "localhost:65535",
        "[::1]:8080",
        "[fe80::1%eth0]:80",
        "collector-1.example.org:5044",
        "0.0.0.0:5514",
        "[::]:1",
        "my_host:00080",
    };
    static const struct {
        const char *s, *reason;
    } bad[] = {
        {"host", "missing port (use HOST:PORT)"},
        {"host:", "missing port (use HOST:PORT)"},
        {":80", "empty host (use 0.0.0.0:PORT for all addresses)"},
        {"host:65536", "port out of range (0-65535)"},
        {"host:123456", "port out of range (0-65535)"},
        {"host:-1", "port is not a number"},
        {"host:8o", "port is not a number"},
        {"host: 80", "port is not a number"},
        {"::1:80", "IPv6 addresses need brackets ([::1]:PORT)"},
        {"[::1]80", "not an address (use HOST:PORT or [IPV6]:PORT)"},
        {"[::1", "not an address (use HOST:PORT or [IPV6]:PORT)"},
        {"[]:80", "not an IPv6 address"},
        {"[zz::1]:80", "not an IPv6 address"},
        {"[127.0.0.1]:80", "not an IPv6 address"},
        {"[fe80::1%]:80", "empty IPv6 zone"},
        {"[::1]:", "missing port (use HOST:PORT)"},
        {"ho st:80", "bad character in host"},
        {"host/x:80", "bad character in host"},
        {"a-very-long-host-name.example.org.internal.x:504", "too long (max 47 bytes)"},
    };
    char err[TM_ERR_LEN], want[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(tm_config_defaults(&spec, &c, err), 0);
    for (size_t i = 0; i < TM_ARRAY_LEN(good); i++) {
        if (tm_config_set(&spec, &c, "net", "listen", good[i], err) != 0)
            fail_msg("'%s' refused: %s", good[i], err);
        assert_string_equal(c.listen, good[i]);
    }
    for (size_t i = 0; i < TM_ARRAY_LEN(bad); i++) {
        assert_int_equal(tm_config_set(&spec, &c, "net", "listen", bad[i].s, err), -1);
        snprintf(want, sizeof(want), "[net] listen = '%s': %s", bad[i].s, bad[i].reason);
        assert_string_equal(err, want);
        /* A refused value leaves the field as it was. */
        assert_string_equal(c.listen, good[TM_ARRAY_LEN(good) - 1]);
    }
    /* A file can switch off an address that has a default. */
    assert_int_equal(load("[net]\nlisten =\n", &c, err), 0);
    assert_string_equal(c.listen, "");
}

static void test_config_enum_values(void **state)
{
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(load("[main]\nmode = fast\n", &c, err), 0);
    assert_int_equal(c.mode, 0);
    assert_int_equal(load("[main]\nmode = slow\n", &c, err), 0);
    assert_int_equal(c.mode, 2);
    expect_error("[main]\nmode = FAST\n",
                 "test.ini:2: [main] mode = 'FAST': not one of 'fast', 'safe', 'slow'");
}

static void test_config_unknown_key(void **state)
{
    (void)state;
    expect_error("[main]\ncount = 4\ncolour = red\n",
                 "test.ini:3: [main] colour = 'red': unknown key (known: name, count, enabled, "
                 "max_size, timeout, mode)");
    expect_error("other = 1\n", "test.ini:1: other = '1': unknown key (known: top)");
    /* A key of another section is unknown here. */
    expect_error("[net]\ncount = 1\n",
                 "test.ini:2: [net] count = '1': unknown key (known: listen)");
}

static void test_config_unknown_section(void **state)
{
    (void)state;
    expect_error("[main]\n\n[nope]\na = b\n",
                 "test.ini:4: [nope] a = 'b': unknown section (known: main, net, limits)");
    /* Names are case-sensitive. */
    expect_error("[Main]\ncount = 1\n",
                 "test.ini:2: [Main] count = '1': unknown section (known: main, net, limits)");
}

static void test_config_bad_value_each_type(void **state)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"[main]\ncount = 12zz\n", "test.ini:2: [main] count = '12zz': not an integer"},
        {"[main]\ncount =\n", "test.ini:2: [main] count = '': not an integer"},
        {"[main]\ncount = 99999999999999999999\n",
         "test.ini:2: [main] count = '99999999999999999999': not an integer"},
        {"[main]\nenabled = maybe\n",
         "test.ini:2: [main] enabled = 'maybe': not a boolean (use true/false, yes/no, "
         "on/off, 1/0)"},
        {"[main]\nmax_size = 12zz\n",
         "test.ini:2: [main] max_size = '12zz': not a size (use 16MiB, 512k, ...)"},
        {"[main]\ntimeout = 10 s\n",
         "test.ini:2: [main] timeout = '10 s': not a duration (use 250ms, 10s, 5m, 24h, 7d)"},
        {"[net]\nlisten = nowhere\n",
         "test.ini:2: [net] listen = 'nowhere': missing port (use HOST:PORT)"},
        {"[limits]\nany_size = -1\n",
         "test.ini:2: [limits] any_size = '-1': not a size (use 16MiB, 512k, ...)"},
        {"[limits]\nany_time = -1s\n",
         "test.ini:2: [limits] any_time = '-1s': not a duration (use 250ms, 10s, 5m, 24h, "
         "7d)"},
    };
    (void)state;

    for (size_t i = 0; i < TM_ARRAY_LEN(cases); i++)
        expect_error(cases[i].text, cases[i].msg);
}

static void test_config_out_of_bounds(void **state)
{
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    expect_error("[main]\ncount = 101\n", "test.ini:2: [main] count = '101': out of range "
                                          "[-5, 100]");
    expect_error("[main]\ncount = -6\n", "test.ini:2: [main] count = '-6': out of range "
                                         "[-5, 100]");
    expect_error("[main]\nmax_size = 1023\n",
                 "test.ini:2: [main] max_size = '1023': out of range [1KiB, 1GiB]");
    expect_error("[main]\nmax_size = 1025M\n",
                 "test.ini:2: [main] max_size = '1025M': out of range [1KiB, 1GiB]");
    expect_error("[main]\ntimeout = 99ms\n",
                 "test.ini:2: [main] timeout = '99ms': out of range [100ms, 1d]");
    expect_error("[main]\ntimeout = 25h\n",
                 "test.ini:2: [main] timeout = '25h': out of range [100ms, 1d]");
    /* The bounds themselves are inside. */
    assert_int_equal(load("[main]\ncount = -5\nmax_size = 1k\ntimeout = 100ms\n", &c, err), 0);
    assert_int_equal(c.count, -5);
    assert_int_equal(c.max_size, 1024);
    assert_int_equal(c.timeout_ms, 100);
    assert_int_equal(load("[main]\ncount = 100\nmax_size = 1G\ntimeout = 1d\n", &c, err), 0);
    assert_int_equal(c.count, 100);
    assert_int_equal(c.max_size, 1073741824);
    assert_int_equal(c.timeout_ms, 86400000);
}

static void test_config_duplicate_key(void **state)
{
    struct dyn_state st = {0};
    struct tm_config_spec dspec = {options, input_cb, &st};
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    expect_error("[main]\ncount = 1\ncount = 2\n",
                 "test.ini:3: [main] count = '2': duplicate key (first set on line 2)");
    /* Reopening a section does not reset what it already holds. */
    expect_error("[main]\nname = a\n[net]\nlisten = h:1\n[main]\nname = b\n",
                 "test.ini:6: [main] name = 'b': duplicate key (first set on line 2)");
    expect_error("top = a\ntop = a\n",
                 "test.ini:2: top = 'a': duplicate key (first set on line 1)");

    /* Dynamic sections too; the same key in two sections is fine. */
    assert_int_equal(tm_config_load_string(&dspec, &c,
                                           "[input.a]\npath = /x\n[input.b]\npath = /y\n",
                                           "dyn.ini", err),
                     0);
    assert_int_equal(st.calls, 2);
    assert_int_equal(
        tm_config_load_string(&dspec, &c, "[input.a]\npath = /x\npath = /y\n", "dyn.ini", err), -1);
    assert_string_equal(err,
                        "dyn.ini:3: [input.a] path = '/y': duplicate key (first set on line 2)");
    assert_int_equal(st.calls, 3); /* the duplicate never reached the callback */
}

static void test_config_string_too_long(void **state)
{
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(load("[main]\nname = 123456789012345\n", &c, err), 0);
    assert_string_equal(c.name, "123456789012345");
    expect_error("[main]\nname = 1234567890123456\n",
                 "test.ini:2: [main] name = '1234567890123456': too long (max 15 bytes)");
}

static void test_config_missing_file(void **state)
{
    char err[TM_ERR_LEN] = "";
    struct cfg c;
    (void)state;

    assert_int_equal(tm_config_load(&spec, &c, "/nonexistent/tm-config-test.ini", err), -1);
    assert_string_equal(err,
                        "cannot open '/nonexistent/tm-config-test.ini': no such file or directory");
    /* A directory opens but cannot be read. */
    assert_int_equal(tm_config_load(&spec, &c, "/", err), -1);
    assert_string_equal(err, "cannot read '/': is a directory");
}

static void test_config_real_file(void **state)
{
    static const char good[] = "; tm test\n[main]\ncount = 42\n[net]\nlisten = 10.0.0.1:5044\n";
    static const char bad[] = "[main]\n\n# a comment\ncount = 42\nmax_size = lots\n";
    char path[128], err[TM_ERR_LEN] = "", want[2 * TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(write_temp(path, sizeof(path), good, strlen(good)), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(tm_config_load(&spec, &c, path, err), 0);
    unlink(path);
    assert_int_equal(c.count, 42);
    assert_string_equal(c.listen, "10.0.0.1:5044");
    assert_string_equal(c.name, "demo"); /* default kept */

    assert_int_equal(write_temp(path, sizeof(path), bad, strlen(bad)), 0);
    assert_int_equal(tm_config_load(&spec, &c, path, err), -1);
    unlink(path);
    snprintf(want, sizeof(want),
             "%s:5: [main] max_size = 'lots': not a size (use 16MiB, 512k, ...)", path);
    assert_string_equal(err, want);
}

static void test_config_nul_byte_in_file(void **state)
{
    static const char data[] = "[main]\ncount = 4\x00\n";
    char path[128], err[TM_ERR_LEN] = "", want[2 * TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(write_temp(path, sizeof(path), data, sizeof(data) - 1), 0);
    assert_int_equal(tm_config_load(&spec, &c, path, err), -1);
    unlink(path);
    snprintf(want, sizeof(want), "%s:2: 'count = 4': NUL byte in line", path);
    assert_string_equal(err, want);
}

static void test_config_set_overrides_win(void **state)
{
    static const char text[] = "[net]\nlisten = 10.0.0.1:5044\n[main]\ncount = 7\n";
    char err[TM_ERR_LEN] = "";
    struct cfg c;
    (void)state;

    assert_int_equal(load(text, &c, err), 0);
    assert_string_equal(c.listen, "10.0.0.1:5044");
    assert_int_equal(tm_config_set(&spec, &c, "net", "listen", "127.0.0.1:0", err), 0);
    assert_string_equal(c.listen, "127.0.0.1:0");
    assert_int_equal(tm_config_set(&spec, &c, "main", "timeout", "2m", err), 0);
    assert_int_equal(c.timeout_ms, 120000);
    assert_int_equal(tm_config_set(&spec, &c, NULL, "top", "cli", err), 0);
    assert_string_equal(c.top, "cli");

    /* A bad override is refused with its own message and changes nothing. */
    assert_int_equal(tm_config_set(&spec, &c, "main", "count", "1000", err), -1);
    assert_string_equal(err, "[main] count = '1000': out of range [-5, 100]");
    assert_int_equal(c.count, 7);
    assert_int_equal(tm_config_set(&spec, &c, "main", "nope", "1", err), -1);
    assert_string_equal(err, "[main] nope = '1': unknown option");
    assert_int_equal(tm_config_set(&spec, &c, NULL, "count", "1", err), -1);
    assert_string_equal(err, "count = '1': unknown option");
}

static void test_config_dynamic_accepted(void **state)
{
    struct dyn_state st = {0};
    struct tm_config_spec dspec = {options, input_cb, &st};
    char err[TM_ERR_LEN] = "";
    struct cfg c;
    (void)state;

    assert_int_equal(tm_config_load_string(
                         &dspec, &c, "[main]\ncount = 9\n[input.eve]\npath = /var/log/eve.json\n",
                         "dyn.ini", err),
                     0);
    assert_int_equal(st.calls, 1);
    assert_string_equal(st.last, "eve:/var/log/eve.json");
    /* Known sections still go to the table, not the callback. */
    assert_int_equal(c.count, 9);
}

static void test_config_dynamic_rejected(void **state)
{
    struct dyn_state st = {0};
    struct tm_config_spec dspec = {options, input_cb, &st};
    char err[TM_ERR_LEN] = "";
    struct cfg c;
    (void)state;

    assert_int_equal(
        tm_config_load_string(&dspec, &c, "[input.eve]\nglob = *.json\n", "dyn.ini", err), -1);
    assert_string_equal(err,
                        "dyn.ini:2: [input.eve] glob = '*.json': unknown input key (use path)");
    assert_int_equal(tm_config_load_string(&dspec, &c, "\n[other]\npath = x\n", "dyn.ini", err),
                     -1);
    assert_string_equal(err, "dyn.ini:3: [other] path = 'x': expected [input.NAME]");
    /* A callback that refuses without a reason still yields a message. */
    assert_int_equal(tm_config_load_string(&dspec, &c, "[input.a]\nsilent = 1\n", "dyn.ini", err),
                     -1);
    assert_string_equal(err, "dyn.ini:2: [input.a] silent = '1': not accepted");
    /* Keys of known sections never reach it. */
    assert_int_equal(tm_config_load_string(&dspec, &c, "[main]\npath = x\n", "dyn.ini", err), -1);
    assert_string_equal(err, "dyn.ini:2: [main] path = 'x': unknown key (known: name, count, "
                             "enabled, max_size, timeout, mode)");
    assert_int_equal(st.calls, 0);
}

static void test_config_syntax_errors(void **state)
{
    char text[128];
    (void)state;

    expect_error("[main]\ncount 1\n",
                 "test.ini:2: 'count 1': expected '[section]' or 'key = value'");
    expect_error("[main]\n  [net\n", "test.ini:2: '[net': expected '[section]' or 'key = value'");
    expect_error("[]\ncount = 1\n", "test.ini:1: '[]': empty section name");
    expect_error("[main]\n= 5\n", "test.ini:2: [main]  = '5': empty key");
    snprintf(text, sizeof(text), "[%s]\n", "s123456789012345678901234567890123456789012345678x");
    expect_error(text, "test.ini:1: '[s1234567890123456789012345678901234567890123456...': "
                       "section name too long (max 49 bytes)");
}

static void test_config_line_length(void **state)
{
    size_t n = 4095;
    char *text = malloc(n + 64);
    char err[TM_ERR_LEN], want[TM_ERR_LEN], quoted[49];
    struct cfg c;
    (void)state;

    assert_non_null(text);
    /* A 4095-byte comment line is fine and the line numbers after it stay right. */
    text[0] = '#';
    memset(text + 1, 'x', n - 1);
    snprintf(text + n, 64, "\n[main]\ncount = 8\ncount = x\n");
    assert_int_equal(load(text, &c, err), -1);
    assert_string_equal(err, "test.ini:4: [main] count = 'x': duplicate key (first set on line 3)");
    /* One byte more is refused rather than split in two. */
    text[n] = 'x';
    snprintf(text + n + 1, 63, "\n[main]\n");
    assert_int_equal(load(text, &c, err), -1);
    memset(quoted, 'x', 48);
    quoted[0] = '#';
    snprintf(want, sizeof(want), "test.ini:1: '%.48s...': line too long (max 4095 bytes)", quoted);
    assert_string_equal(err, want);
    free(text);
}

static void test_config_comments_and_whitespace(void **state)
{
    char err[TM_ERR_LEN] = "";
    struct cfg c;
    (void)state;

    assert_int_equal(load("\xEF\xBB\xBFtop = x\r\n"
                          "; a comment\n"
                          "# another\n"
                          "   [main]   \r\n"
                          "\tcount = 7 ; inline comment\r\n"
                          "name=  spaced out  \n"
                          "timeout:2s\n",
                          &c, err),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(c.top, "x");
    assert_int_equal(c.count, 7);
    assert_string_equal(c.name, "spaced out");
    assert_int_equal(c.timeout_ms, 2000);
}

static void test_config_stops_at_first_error(void **state)
{
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    expect_error("[main]\ncount = 8\nenabled = nah\nbogus line\n",
                 "test.ini:3: [main] enabled = 'nah': not a boolean (use true/false, yes/no, "
                 "on/off, 1/0)");
    assert_int_equal(load("[main]\ncount = 8\nenabled = nah\nname = later\n", &c, err), -1);
    assert_int_equal(c.count, 8);        /* before the error: applied */
    assert_string_equal(c.name, "demo"); /* after it: not */
}

static void test_config_long_value_clipped(void **state)
{
    char text[400], value[300];
    char err[TM_ERR_LEN], want[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    memset(value, '7', sizeof(value) - 2);
    value[sizeof(value) - 2] = 'z';
    value[sizeof(value) - 1] = '\0';
    snprintf(text, sizeof(text), "[main]\ncount = %s\n", value);
    assert_int_equal(load(text, &c, err), -1);
    /* The value is cut so that the reason survives. */
    snprintf(want, sizeof(want), "test.ini:2: [main] count = '%.48s...': not an integer", value);
    assert_string_equal(err, want);
    /* Control bytes are not copied into messages. */
    expect_error("[main]\ncount = 1\x1b[2J\n", "test.ini:2: [main] count = '1?[2J': not an "
                                               "integer");
}

static void test_config_bad_default(void **state)
{
    static const struct tm_config_option bad[] = {
        {"main", "count", TM_CONF_INT, "lots", OFF(count), 0, 0, 10, NULL, NULL},
        {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
    };
    static const struct tm_config_option no_size[] = {
        {"main", "name", TM_CONF_STRING, "x", OFF(name), 0, 0, 0, NULL, NULL},
        {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
    };
    struct tm_config_spec s1 = {bad, NULL, NULL}, s2 = {no_size, NULL, NULL};
    char err[TM_ERR_LEN];
    struct cfg c;
    (void)state;

    assert_int_equal(tm_config_defaults(&s1, &c, err), -1);
    assert_string_equal(err, "bad default: [main] count = 'lots': not an integer");
    assert_int_equal(tm_config_load_string(&s1, &c, "", "x.ini", err), -1);
    assert_string_equal(err, "bad default: [main] count = 'lots': not an integer");
    assert_int_equal(tm_config_defaults(&s2, &c, err), -1);
    assert_string_equal(err, "bad default: [main] name = 'x': option has no size");
}

/* tm_config_apply gives the bare reason; tm_config_set names section, key and value. */
static void test_config_apply_reason_only(void **state)
{
    struct cfg c;
    char err[TM_ERR_LEN];
    (void)state;

    assert_int_equal(tm_config_defaults(&spec, &c, err), 0);
    assert_int_equal(tm_config_apply(&spec, &c, "main", "count", "7", err), 0);
    assert_int_equal(c.count, 7);
    assert_int_equal(tm_config_apply(&spec, &c, "main", "nope", "1", err), -1);
    assert_string_equal(err, "unknown option");
    assert_int_equal(tm_config_apply(&spec, &c, "main", "count", "101", err), -1);
    assert_null(strstr(err, "count"));
    assert_int_equal(c.count, 7);
    assert_int_equal(tm_config_set(&spec, &c, "main", "count", "101", err), -1);
    assert_non_null(strstr(err, "[main] count = '101'"));
}

static void test_config_kv_append_bounded(void **state)
{
    char *list[3] = {NULL, NULL, NULL};
    char err[TM_ERR_LEN];
    int n = 0;
    (void)state;

    assert_int_equal(tm_config_kv_append(list, &n, 2, "linger.ms", "5", err), 0);
    assert_int_equal(tm_config_kv_append(list, &n, 2, "acks", "all", err), 0);
    assert_int_equal(tm_config_kv_append(list, &n, 2, "one", "more", err), -1);
    assert_non_null(strstr(err, "more than 2"));
    assert_int_equal(n, 2);
    assert_string_equal(list[0], "linger.ms=5");
    assert_string_equal(list[1], "acks=all");
    assert_null(list[2]);
    free(list[0]);
    free(list[1]);
}

/* A secret file: its first line without the line end; errors never quote the secret. */
static void test_config_read_secret(void **state)
{
    char path[] = "/tmp/tm-config-secret-XXXXXX";
    char out[16], err[TM_ERR_LEN];
    int fd = mkstemp(path);
    FILE *fp;

    (void)state;
    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs("s3cret-pass\r\nsecond line\n", fp);
    fclose(fp);
    assert_int_equal(tm_config_read_secret(path, out, sizeof(out), err), 0);
    assert_string_equal(out, "s3cret-pass");
    /* longer than the buffer */
    assert_int_equal(tm_config_read_secret(path, out, 8, err), -1);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "longer than 7 bytes"));
    assert_null(strstr(err, "s3cret"));
    /* empty first line */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("\nlater\n", fp);
    fclose(fp);
    assert_int_equal(tm_config_read_secret(path, out, sizeof(out), err), -1);
    assert_non_null(strstr(err, "empty first line"));
    unlink(path);
    assert_int_equal(tm_config_read_secret(path, out, sizeof(out), err), -1);
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_applied),
        cmocka_unit_test(test_config_each_type_parsed),
        cmocka_unit_test(test_config_parse_bool),
        cmocka_unit_test(test_config_parse_size),
        cmocka_unit_test(test_config_parse_duration),
        cmocka_unit_test(test_config_addr_forms),
        cmocka_unit_test(test_config_enum_values),
        cmocka_unit_test(test_config_unknown_key),
        cmocka_unit_test(test_config_unknown_section),
        cmocka_unit_test(test_config_bad_value_each_type),
        cmocka_unit_test(test_config_out_of_bounds),
        cmocka_unit_test(test_config_duplicate_key),
        cmocka_unit_test(test_config_string_too_long),
        cmocka_unit_test(test_config_missing_file),
        cmocka_unit_test(test_config_real_file),
        cmocka_unit_test(test_config_nul_byte_in_file),
        cmocka_unit_test(test_config_set_overrides_win),
        cmocka_unit_test(test_config_dynamic_accepted),
        cmocka_unit_test(test_config_dynamic_rejected),
        cmocka_unit_test(test_config_syntax_errors),
        cmocka_unit_test(test_config_line_length),
        cmocka_unit_test(test_config_comments_and_whitespace),
        cmocka_unit_test(test_config_stops_at_first_error),
        cmocka_unit_test(test_config_long_value_clipped),
        cmocka_unit_test(test_config_bad_default),
        cmocka_unit_test(test_config_apply_reason_only),
        cmocka_unit_test(test_config_kv_append_bounded),
        cmocka_unit_test(test_config_read_secret),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
