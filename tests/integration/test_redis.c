/*
 * test_redis.c - the private redis-server the harness gives other integration tests, and
 * the Redis features the aggregator and dashboard build on (DESIGN.md, "Redis"): strings
 * with a TTL, hash counters, HyperLogLog, capped streams and MULTI/EXEC. The server runs
 * without persistence in its own directory, so a restart starts empty on the same port,
 * and stopping it reaps the process and removes the directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"

struct fixture {
    struct tm_harness_redis redis;
    redisContext *c;
};

static redisContext *connect_redis(int port)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    assert_non_null(c);
    if (c->err)
        fail_msg("cannot connect to redis on port %d: %s", port, c->errstr);
    redisSetTimeout(c, tv);
    return c;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || tm_harness_redis_start(&f->redis) < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->c != NULL)
        redisFree(f->c);
    if (f->redis.pid > 0 || f->redis.dir[0] != '\0')
        tm_harness_redis_stop(&f->redis);
    free(f);
    return 0;
}

/* Runs a command that must answer with an integer, and returns it. */
static long long cmd_int(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    long long v;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("'%s': expected an integer reply, got type %d (%s)", fmt, r->type,
                 r->str != NULL ? r->str : "");
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Runs a command that must answer with a status or bulk string equal to want (NULL: nil). */
static void cmd_expect(redisContext *c, const char *want, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (want == NULL) {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    } else {
        if (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_STRING)
            fail_msg("'%s': expected '%s', got reply type %d (%s)", fmt, want, r->type,
                     r->str != NULL ? r->str : "");
        assert_string_equal(r->str, want);
    }
    freeReplyObject(r);
}

/* Runs an XADD, which must answer with the new entry's id. */
static void xadd(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
}

static void test_redis_strings_hashes_hll(void **state)
{
    struct fixture *f = *state;
    redisReply *r;
    long long ttl;

    f->c = connect_redis(f->redis.port);
    cmd_expect(f->c, "PONG", "PING");

    cmd_expect(f->c, "OK", "SET %s %s EX %d", "tm:test:greeting", "слава", 600);
    cmd_expect(f->c, "слава", "GET %s", "tm:test:greeting");
    ttl = cmd_int(f->c, "TTL %s", "tm:test:greeting");
    assert_true(ttl > 590 && ttl <= 600);
    cmd_expect(f->c, NULL, "GET %s", "tm:test:absent");

    /* Per-sector window counters, as the aggregator keeps them. */
    for (int i = 0; i < 57; i++)
        cmd_int(f->c, "HINCRBY %s %s %d", "tm:s:energy:1m:0", "bruteforce", 1);
    assert_int_equal(cmd_int(f->c, "HINCRBY %s %s %d", "tm:s:energy:1m:0", "ddos", 5), 5);
    assert_int_equal(cmd_int(f->c, "HINCRBY %s %s %d", "tm:s:energy:1m:0", "ddos", -2), 3);
    cmd_expect(f->c, "57", "HGET %s %s", "tm:s:energy:1m:0", "bruteforce");
    assert_int_equal(cmd_int(f->c, "HLEN %s", "tm:s:energy:1m:0"), 2);
    r = redisCommand(f->c, "HGETALL %s", "tm:s:energy:1m:0");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4);
    freeReplyObject(r);

    /* Distinct sources: 1,000 addresses, each added twice, counted within HLL's error. */
    for (int i = 0; i < 2000; i++)
        cmd_int(f->c, "PFADD %s 198.51.%d.%d", "tm:hll:test", (i % 1000) / 250, (i % 1000) % 250);
    {
        long long n = cmd_int(f->c, "PFCOUNT %s", "tm:hll:test");
        assert_true(n >= 970 && n <= 1030);
    }
    assert_int_equal(cmd_int(f->c, "PFADD %s %s", "tm:hll:test", "198.51.0.0"), 0);
}

static void test_redis_stream_maxlen(void **state)
{
    struct fixture *f = *state;
    long long len;

    f->c = connect_redis(f->redis.port);
    /* Exact trimming keeps exactly MAXLEN entries. */
    for (int i = 0; i < 120; i++)
        xadd(f->c, "XADD %s MAXLEN %d * n %d", "tm:feed:exact", 50, i);
    assert_int_equal(cmd_int(f->c, "XLEN %s", "tm:feed:exact"), 50);

    /* Approximate trimming ("~") removes whole macro nodes: at least MAXLEN stay. */
    for (int i = 0; i < 1000; i++)
        xadd(f->c, "XADD %s MAXLEN ~ %d * id %d sector %s", "tm:feed", 100, i, "energy");
    len = cmd_int(f->c, "XLEN %s", "tm:feed");
    assert_true(len >= 100);
    assert_true(len < 300);
}

static void test_redis_multi_exec_atomic(void **state)
{
    struct fixture *f = *state;
    redisContext *other;
    redisReply *r;

    f->c = connect_redis(f->redis.port);
    other = connect_redis(f->redis.port);

    /* Queued commands are invisible to other clients until EXEC, then both keys appear. */
    cmd_expect(f->c, "OK", "MULTI");
    cmd_expect(f->c, "QUEUED", "SET %s %s", "tm:agg:counts", "42");
    cmd_expect(f->c, "QUEUED", "SET %s %s", "tm:agg:offset:0", "1000");
    cmd_expect(other, NULL, "GET %s", "tm:agg:counts");
    cmd_expect(other, NULL, "GET %s", "tm:agg:offset:0");
    r = redisCommand(f->c, "EXEC");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    freeReplyObject(r);
    cmd_expect(other, "42", "GET %s", "tm:agg:counts");
    cmd_expect(other, "1000", "GET %s", "tm:agg:offset:0");

    /* A watched key changed by another client aborts the whole transaction: neither write. */
    cmd_expect(f->c, "OK", "WATCH %s", "tm:agg:offset:0");
    cmd_expect(other, "OK", "SET %s %s", "tm:agg:offset:0", "1500");
    cmd_expect(f->c, "OK", "MULTI");
    cmd_expect(f->c, "QUEUED", "SET %s %s", "tm:agg:counts", "99");
    cmd_expect(f->c, "QUEUED", "SET %s %s", "tm:agg:offset:0", "2000");
    r = redisCommand(f->c, "EXEC");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    cmd_expect(other, "42", "GET %s", "tm:agg:counts");
    cmd_expect(other, "1500", "GET %s", "tm:agg:offset:0");

    /* DISCARD drops what was queued. */
    cmd_expect(f->c, "OK", "MULTI");
    cmd_expect(f->c, "QUEUED", "SET %s %s", "tm:agg:counts", "7");
    cmd_expect(f->c, "OK", "DISCARD");
    cmd_expect(other, "42", "GET %s", "tm:agg:counts");
    redisFree(other);
}

static void test_redis_restart_forgets_and_stop_cleans_up(void **state)
{
    struct fixture *f = *state;
    int port = f->redis.port;
    pid_t old_pid = f->redis.pid, pid;
    char dir[256];
    struct stat st;

    f->c = connect_redis(port);
    cmd_expect(f->c, "OK", "SET %s %s", "tm:test:persist", "1");
    assert_int_equal(cmd_int(f->c, "DBSIZE"), 1);
    redisFree(f->c);
    f->c = NULL;

    /* Same port, a new process, and nothing survived. */
    assert_int_equal(tm_harness_redis_restart(&f->redis), 0);
    assert_int_equal(f->redis.port, port);
    assert_true(f->redis.pid > 0);
    assert_int_not_equal(f->redis.pid, old_pid);
    f->c = connect_redis(port);
    cmd_expect(f->c, NULL, "GET %s", "tm:test:persist");
    assert_int_equal(cmd_int(f->c, "DBSIZE"), 0);
    redisFree(f->c);
    f->c = NULL;
    /* No persistence: no dump and no append-only file in its directory. */
    {
        char path[512];
        snprintf(path, sizeof(path), "%s/dump.rdb", f->redis.dir);
        assert_int_equal(stat(path, &st), -1);
        snprintf(path, sizeof(path), "%s/appendonlydir", f->redis.dir);
        assert_int_equal(stat(path, &st), -1);
    }

    /* Stop: the pid is reaped (no longer our child) and the directory is gone. */
    pid = f->redis.pid;
    snprintf(dir, sizeof(dir), "%s", f->redis.dir);
    assert_int_equal(tm_harness_redis_stop(&f->redis), 0);
    f->redis.dir[0] = '\0';
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    /* Stopping again is harmless and signals nobody. */
    assert_int_equal(tm_harness_stop(pid, 100), -1);
}

/*
 * A test process that exits without stopping its servers still leaves nothing behind: a
 * forked copy starts a redis and exits; the harness's exit handler must stop it and
 * remove its directory. We are the subreaper, so a leaked server would show up as our
 * child and make waitpid() succeed.
 */
static void test_redis_harness_cleans_up_on_exit(void **state)
{
    int pipefd[2];
    struct tm_harness_redis leaked;
    struct stat st;
    pid_t child, r;
    int status;

    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL); /* or the child's exit() prints cmocka's buffered lines a second time */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct tm_harness_redis inner;
        close(pipefd[0]);
        if (tm_harness_redis_start(&inner) < 0)
            _exit(3);
        if (write(pipefd[1], &inner, sizeof(inner)) != (ssize_t)sizeof(inner))
            _exit(4);
        exit(0); /* runs the harness's atexit handler */
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &leaked, sizeof(leaked)), (ssize_t)sizeof(leaked));
    close(pipefd[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(leaked.pid > 0);

    /* Already reaped by the child's handler: not ours to wait for, and gone. */
    r = waitpid(leaked.pid, NULL, WNOHANG);
    if (r != -1) {
        kill(leaked.pid, SIGKILL); /* leaked to us: end it before failing */
        waitpid(leaked.pid, NULL, 0);
        fail_msg("redis-server %ld outlived the test process that started it", (long)leaked.pid);
    }
    assert_int_equal(kill(leaked.pid, 0), -1);
    assert_int_equal(stat(leaked.dir, &st), -1);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_redis_strings_hashes_hll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_stream_maxlen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_multi_exec_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart_forgets_and_stop_cleans_up, setup,
                                        teardown),
        cmocka_unit_test(test_redis_harness_cleans_up_on_exit),
    };

    return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
