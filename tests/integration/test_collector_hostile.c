/*
 * test_collector_hostile.c - hostile Lumberjack senders against the real tm-collector.
 * Each case asserts that the collector closes the offending connection, stays up
 * (/healthz 200) and keeps serving a well-behaved sender on another connection, whose
 * events must all be acknowledged and land in Kafka. The hostile sockets come from
 * 127.0.0.2 so the per-address connection limit hits them and not the good sender.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "procs.h"

static struct tm_harness_kafka kafka;
static struct tm_collector_proc col;

static const char conf[] = "[collector]\n"
                           "max_connections = 5000\n"
                           "max_connections_per_ip = 1000\n"
                           "[lumberjack]\n"
                           "idle_timeout = 3s\n"
                           "max_window = 5000\n"
                           "[identity]\n"
                           "default_operator = test-op\n"
                           "default_sector = energy\n";

static int setup(void **state)
{
    struct rlimit rl;
    (void)state;

    /* 2,000 sockets here and as many in the collector (it inherits the limit). */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192) {
        rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (tm_harness_kafka_start(&kafka, 1, 6) != 0)
        return -1;
    return tm_collector_start(&col, kafka.bootstrap, conf);
}

static int teardown(void **state)
{
    (void)state;
    tm_collector_stop(&col);
    tm_harness_kafka_stop(&kafka);
    return 0;
}

/* A socket from 127.0.0.2 connected to a collector's Lumberjack port, or -1. */
static int hostile_connect_to(const struct tm_collector_proc *c)
{
    return tm_harness_tcp_connect(c->lumberjack, "127.0.0.2");
}

static int hostile_connect(void)
{
    return hostile_connect_to(&col);
}

static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the collector may close while we still send: fine */
        p += n;
        len -= (size_t)n;
    }
}

/* True when the peer closes the connection within timeout_ms. */
static bool closed_by_peer(int fd, int timeout_ms)
{
    char buf[4096];
    struct pollfd p = {.fd = fd, .events = POLLIN};

    for (;;) {
        ssize_t n;
        if (poll(&p, 1, timeout_ms) <= 0)
            return false;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

static void assert_healthy_at(const struct tm_collector_proc *c)
{
    int status = 0;
    assert_int_equal(tm_harness_http(c->admin, "GET", "/healthz", &status, NULL, 5000), 0);
    assert_int_equal(status, 200);
}

static void assert_healthy(void)
{
    assert_healthy_at(&col);
}

/* A well-behaved sender on its own connection still gets everything acknowledged. */
static void assert_good_sender_served_at(const struct tm_collector_proc *c)
{
    char bin[512];
    char *argv[] = {bin,        "--target", (char *)c->lumberjack, "--events", "500",
                    "--window", "100",      "--timeout",           "60",       NULL};

    snprintf(bin, sizeof(bin), "%s/tm-loadgen", tm_harness_build_dir());
    assert_int_equal(tm_harness_run(argv, NULL, NULL, 90000), 0);
}

static void assert_good_sender_served(void)
{
    assert_good_sender_served_at(&col);
}

static void expect_closed(const void *bytes, size_t len)
{
    int fd = hostile_connect();

    assert_true(fd >= 0);
    send_all(fd, bytes, len);
    assert_true(closed_by_peer(fd, 8000));
    close(fd);
    assert_healthy();
}

static void test_collector_hostile_truncated_frame(void **state)
{
    (void)state;
    /* Half a data frame header, then silence: closed by the idle timeout. */
    expect_closed("2W\0\0\0\1"
                  "2J\0\0",
                  10);
    assert_good_sender_served();
}

static void test_collector_hostile_wrong_version(void **state)
{
    (void)state;
    expect_closed("1W\0\0\0\1", 6);
    expect_closed("XW\0\0\0\1", 6);
    expect_closed("2D\0\0\0\1\0\0\0\0", 10);
    assert_good_sender_served();
}

static void test_collector_hostile_window_sizes(void **state)
{
    (void)state;
    expect_closed("2W\0\0\0\0", 6);
    expect_closed("2W\xff\xff\xff\xff", 6);
    expect_closed("2W\0\0\x13\x89", 6); /* 5001, one over max_window */
    assert_good_sender_served();
}

static void test_collector_hostile_data_outside_window(void **state)
{
    (void)state;
    expect_closed("2J\0\0\0\1\0\0\0\2{}", 12);
    assert_good_sender_served();
}

static long collector_rss_kb(void)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)col.pid);
    f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

static void test_collector_hostile_zip_bomb(void **state)
{
    size_t raw_len = 256u << 20; /* 256 MiB of zeros: about 250 KiB compressed */
    uint8_t *raw = calloc(1, raw_len);
    uLongf zlen = compressBound(raw_len);
    uint8_t *frame = malloc(zlen + 16);
    long before = collector_rss_kb(), after;
    (void)state;

    assert_int_equal(compress2(frame + 12, &zlen, raw, raw_len, 9), Z_OK);
    free(raw);
    memcpy(frame,
           "2W\0\0\0\1"
           "2C",
           8);
    frame[8] = (uint8_t)(zlen >> 24);
    frame[9] = (uint8_t)(zlen >> 16);
    frame[10] = (uint8_t)(zlen >> 8);
    frame[11] = (uint8_t)zlen;
    expect_closed(frame, 12 + zlen);
    free(frame);
    after = collector_rss_kb();
    /* Inflation stops at max_decompressed (16 MiB): the peak grows by far less than 256 MiB. */
    assert_true(before > 0);
    if (after - before > 64 * 1024)
        fail_msg("collector peak RSS grew by %ld KiB on a zip bomb", after - before);
    assert_good_sender_served();
}

static void test_collector_hostile_random_bytes(void **state)
{
    uint8_t buf[65536];
    uint32_t x = 2463534242u;
    (void)state;

    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            buf[i] = (uint8_t)x;
        }
        expect_closed(buf, sizeof(buf));
    }
    assert_good_sender_served();
}

static void test_collector_hostile_idle_timeout(void **state)
{
    int fd = hostile_connect();
    int64_t t0 = (int64_t)time(NULL);
    (void)state;

    assert_true(fd >= 0);
    assert_true(closed_by_peer(fd, 8000));
    assert_true((int64_t)time(NULL) - t0 <= 6);
    close(fd);
    assert_healthy();
}

static void test_collector_hostile_many_connections(void **state)
{
    /* Its own collector, with an idle timeout long enough to outlast the test. */
    static const char many_conf[] = "[collector]\n"
                                    "max_connections = 5000\n"
                                    "max_connections_per_ip = 1000\n"
                                    "[lumberjack]\n"
                                    "idle_timeout = 120s\n"
                                    "[identity]\n"
                                    "default_operator = test-op\n"
                                    "default_sector = energy\n";
    enum { N = 2000 };
    struct tm_collector_proc many;
    int *fds = calloc(N, sizeof(int));
    int open_ok = 0, refused = 0;
    (void)state;

    assert_int_equal(tm_collector_start(&many, kafka.bootstrap, many_conf), 0);
    for (int i = 0; i < N; i++)
        fds[i] = hostile_connect_to(&many);
    /* Send a byte on each, then see which stay open: 1,000 per address are allowed. */
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            send_all(fds[i], "2", 1);
    usleep(500000);
    for (int i = 0; i < N; i++) {
        char c;
        ssize_t n;
        if (fds[i] < 0) {
            refused++;
            continue;
        }
        n = recv(fds[i], &c, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            refused++;
        else
            open_ok++;
    }
    assert_int_equal(open_ok, 1000);
    assert_int_equal(refused, 1000);
    /* While 1,000 of them sit there, the collector serves others. */
    assert_healthy_at(&many);
    assert_good_sender_served_at(&many);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    assert_int_equal(tm_collector_stop(&many), 0);
}

/* tm-loadgen from source address src: events in windows of window, in the background. */
static pid_t loadgen_from(const struct tm_collector_proc *c, const char *src, const char *events,
                          const char *window)
{
    char bin[512];
    char *argv[] = {bin,
                    "--target",
                    (char *)c->lumberjack,
                    "--events",
                    (char *)events,
                    "--window",
                    (char *)window,
                    "--bind",
                    (char *)src,
                    "--timeout",
                    "60",
                    NULL};

    snprintf(bin, sizeof(bin), "%s/tm-loadgen", tm_harness_build_dir());
    return tm_harness_spawn(argv, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A sender over its rate (1,000 events/s, burst 1,000) is slowed down, not cut off: its
 * 4,000 events all get acknowledged, after at least 2.5 s (the burst is free and a window
 * is read on credit once the debt before it is paid: (4,000 - 1,000 - 500) / 1,000).
 * Another operator's sender, at the same time, is not slowed down: it finishes while the
 * fast one still waits.
 */
static void test_collector_hostile_sender_over_its_rate(void **state)
{
    char map[256], cmd[700], conf_text[1024];
    struct tm_collector_proc rc;
    pid_t fast, good;
    double t0, t_fast;
    int status;
    (void)state;

    snprintf(map, sizeof(map), "/tmp/tm-rate-map-%ld.ini", (long)getpid());
    snprintf(cmd, sizeof(cmd),
             "printf '[operator.op-fast]\\nsector = energy\\nnetworks = 127.0.0.2/32\\n"
             "[operator.op-good]\\nsector = energy\\nnetworks = 127.0.0.3/32\\n' > '%s'",
             map);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    snprintf(conf_text, sizeof(conf_text),
             "[lumberjack]\nrate_per_sender = 1000\nrate_burst = 1000\n[identity]\nmap = %s\n",
             map);
    assert_int_equal(tm_collector_start(&rc, kafka.bootstrap, conf_text), 0);
    t0 = now_s();
    fast = loadgen_from(&rc, "127.0.0.2", "4000", "500");
    assert_true(fast > 0);
    usleep(300000); /* the fast sender has used its burst and is in debt */
    good = loadgen_from(&rc, "127.0.0.3", "500", "100");
    assert_true(good > 0);
    assert_int_equal(tm_harness_wait(good, 60000), 0);
    /* The fast sender is still being held back when the other one is done. */
    assert_int_equal(kill(fast, 0), 0);
    status = tm_harness_wait(fast, 60000);
    t_fast = now_s() - t0;
    assert_int_equal(status, 0); /* every event acknowledged: slowed, nothing lost */
    print_message("rate: 4,000 events at 1,000/s (burst 1,000) took %.1f s\n", t_fast);
    assert_true(t_fast >= 2.4);
    assert_healthy_at(&rc);
    assert_int_equal(tm_collector_stop(&rc), 0);
    unlink(map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collector_hostile_truncated_frame),
        cmocka_unit_test(test_collector_hostile_wrong_version),
        cmocka_unit_test(test_collector_hostile_window_sizes),
        cmocka_unit_test(test_collector_hostile_data_outside_window),
        cmocka_unit_test(test_collector_hostile_zip_bomb),
        cmocka_unit_test(test_collector_hostile_random_bytes),
        cmocka_unit_test(test_collector_hostile_idle_timeout),
        cmocka_unit_test(test_collector_hostile_many_connections),
        cmocka_unit_test(test_collector_hostile_sender_over_its_rate),
    };
    return cmocka_run_group_tests_name("collector_hostile", tests, setup, teardown);
}
