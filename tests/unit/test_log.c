/*
 * test_log.c - the logger, captured through tm_log_set_fd() on a pipe: the exact line
 * format, level filtering, that a filtered-out macro does not evaluate its arguments,
 * truncation of long messages, masking of control bytes, level names and errno.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tm/tm_log.h"
#include "tm/tm_time.h"

struct capture {
    int fds[2];
    char buf[16384];
    size_t len;
};

static int setup(void **state)
{
    static struct capture cap;

    memset(&cap, 0, sizeof(cap));
    if (pipe(cap.fds) != 0)
        return -1;
    if (fcntl(cap.fds[0], F_SETFL, O_NONBLOCK) != 0)
        return -1;
    tm_log_init("tm-test", TM_LOG_INFO, false);
    tm_log_set_fd(cap.fds[1]);
    *state = &cap;
    return 0;
}

static int teardown(void **state)
{
    struct capture *cap = *state;

    tm_log_set_fd(-1);
    close(cap->fds[0]);
    close(cap->fds[1]);
    return 0;
}

/* Reads everything written so far into cap->buf (NUL-terminated). */
static const char *drain(struct capture *cap)
{
    ssize_t n;

    cap->len = 0;
    while ((n = read(cap->fds[0], cap->buf + cap->len, sizeof(cap->buf) - 1 - cap->len)) > 0)
        cap->len += (size_t)n;
    cap->buf[cap->len] = '\0';
    return cap->buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static int evaluations;

static int bump(void)
{
    return ++evaluations;
}

static void test_log_line_format(void **state)
{
    struct capture *cap = *state;
    char rest[256];
    int64_t before = tm_time_now_ms(), after, ts;
    const char *line;

    tm_log_warn("lumberjack %s: frame of %zu bytes over the limit", "10.0.0.7:51000",
                (size_t)2000000);
    after = tm_time_now_ms();
    line = drain(cap);
    /* "2026-11-23T07:22:05.123Z tm-test[1234] warn: ...\n" */
    assert_true(cap->len > TM_TIME_LEN);
    assert_int_equal(line[TM_TIME_LEN - 1], ' ');
    assert_int_equal(tm_time_parse(line, TM_TIME_LEN - 1, &ts), 0);
    assert_int_equal(line[TM_TIME_LEN - 2], 'Z');
    assert_true(ts >= before - 1 && ts <= after + 1);
    snprintf(rest, sizeof(rest),
             "tm-test[%ld] warn: lumberjack 10.0.0.7:51000: frame of 2000000 bytes over the "
             "limit\n",
             (long)getpid());
    assert_string_equal(line + TM_TIME_LEN, rest);

    tm_log_init("tm-other", TM_LOG_INFO, false);
    tm_log_error("cannot open '%s': %s", "/var/log/eve.json", "permission denied");
    line = drain(cap);
    snprintf(rest, sizeof(rest),
             "tm-other[%ld] error: cannot open '/var/log/eve.json': permission denied\n",
             (long)getpid());
    assert_string_equal(line + TM_TIME_LEN, rest);
}

static void test_log_level_filtering(void **state)
{
    struct capture *cap = *state;
    const char *out;

    tm_log_init("tm-test", TM_LOG_WARN, false);
    tm_log_debug("debug %d", 1);
    tm_log_info("info %d", 2);
    tm_log_warn("warn %d", 3);
    tm_log_error("error %d", 4);
    out = drain(cap);
    assert_int_equal(count_lines(out), 2);
    assert_null(strstr(out, "debug 1"));
    assert_null(strstr(out, "info 2"));
    assert_non_null(strstr(out, "] warn: warn 3\n"));
    assert_non_null(strstr(out, "] error: error 4\n"));
    assert_true(strstr(out, "warn 3") < strstr(out, "error 4"));

    tm_log_init("tm-test", TM_LOG_DEBUG, false);
    tm_log_debug("debug %d", 5);
    out = drain(cap);
    assert_non_null(strstr(out, "] debug: debug 5\n"));

    tm_log_init("tm-test", TM_LOG_ERROR, false);
    tm_log_warn("warn %d", 6);
    out = drain(cap);
    assert_int_equal(cap->len, 0);
    assert_string_equal(out, "");
}

static void test_log_filtered_macro_skips_arguments(void **state)
{
    struct capture *cap = *state;

    evaluations = 0;
    tm_log_init("tm-test", TM_LOG_INFO, false);
    tm_log_debug("expensive %d", bump());
    assert_int_equal(evaluations, 0);
    assert_int_equal(drain(cap)[0], '\0');
    tm_log_info("cheap %d", bump());
    assert_int_equal(evaluations, 1);
    assert_non_null(strstr(drain(cap), "] info: cheap 1\n"));
}

static void test_log_truncates_long_messages(void **state)
{
    struct capture *cap = *state;
    static char big[10000];
    const char *out;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tm_log_error("%s", big);
    out = drain(cap);
    assert_int_equal(count_lines(out), 1);
    assert_true(cap->len <= 4096);
    assert_true(cap->len > 4000);
    assert_string_equal(out + cap->len - 5, "x...\n");
}

static void test_log_masks_control_bytes(void **state)
{
    struct capture *cap = *state;
    const char *out;

    tm_log_warn("peer said '%s'", "a\nfake line\r\x01z\n");
    out = drain(cap);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "] warn: peer said 'a?fake line??z?'\n"));
    /* A trailing newline from the caller is dropped, not doubled or masked. */
    tm_log_warn("done\n");
    out = drain(cap);
    assert_non_null(strstr(out, "] warn: done\n"));
    assert_int_equal(count_lines(out), 1);
}

static void test_log_level_parse(void **state)
{
    static const char *const bad[] = {"", "warning", "WARN", "trace", "info ", "err"};
    enum tm_log_level level = TM_LOG_ERROR;
    (void)state;

    assert_int_equal(tm_log_level_parse("error", &level), 0);
    assert_int_equal(level, TM_LOG_ERROR);
    assert_int_equal(tm_log_level_parse("warn", &level), 0);
    assert_int_equal(level, TM_LOG_WARN);
    assert_int_equal(tm_log_level_parse("info", &level), 0);
    assert_int_equal(level, TM_LOG_INFO);
    assert_int_equal(tm_log_level_parse("debug", &level), 0);
    assert_int_equal(level, TM_LOG_DEBUG);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tm_log_level_parse(bad[i], &level) == 0)
            fail_msg("'%s' parsed as a level", bad[i]);
    }
    assert_int_equal(level, TM_LOG_DEBUG);
}

static void test_log_keeps_errno(void **state)
{
    struct capture *cap = *state;

    errno = ENOSPC;
    tm_log_error("disk full: %s", strerror(errno));
    assert_int_equal(errno, ENOSPC);
    assert_non_null(strstr(drain(cap), "disk full: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_filtered_macro_skips_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_truncates_long_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_masks_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_keeps_errno, setup, teardown),
    };

    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
