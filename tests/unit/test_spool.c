/*
 * test_spool.c - the agent's disk spool on real files: round trips across both lanes,
 * reads that start inside a record, acks that delete segments, next_seq across reopens,
 * the bulk cap and its loss counters, torn tails cut at every kind of offset, corrupt
 * records, and a child process killed with SIGKILL while it appends. Every test works in
 * its own mkdtemp directory under /tmp and removes it. The tests know the on-disk layout
 * documented in spool.c (segment names, 40-byte record headers) only to damage files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "spool.h"
#include "tm/tm_common.h"

#define MAX_GOT 4096

struct got {
    size_t n;
    size_t stop_after; /* the callback returns 1 after this many events; 0 = never */
    uint64_t seq[MAX_GOT];
    char data[MAX_GOT][48];
    size_t len[MAX_GOT];
};

static int collect_cb(uint64_t seq, const char *data, size_t len, void *arg)
{
    struct got *g = arg;

    assert_true(g->n < MAX_GOT);
    g->seq[g->n] = seq;
    g->len[g->n] = len;
    memcpy(g->data[g->n], data, len < sizeof(g->data[0]) ? len : sizeof(g->data[0]));
    g->n++;
    return g->stop_after != 0 && g->n >= g->stop_after;
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/test_spool.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    d = strdup(d);
    assert_non_null(d);
    return d;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_dir(char *dir)
{
    assert_int_equal(nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(dir);
}

static struct spool_config config(const char *dir)
{
    struct spool_config c = {
        .dir = dir,
        .max_bytes = 0,
        .segment_bytes = 1024 * 1024,
        .fsync = SPOOL_FSYNC_NEVER,
        .compression_level = 6,
    };
    return c;
}

static struct spool *open_ok(const struct spool_config *c)
{
    char err[TM_ERR_LEN] = "";
    struct spool *s = spool_open(c, err);
    if (s == NULL)
        fail_msg("spool_open: %s", err);
    return s;
}

/* The event text for a seq: tests check every byte that comes back. */
static size_t event_text(uint64_t seq, char *buf, size_t size)
{
    int n = snprintf(buf, size, "{\"seq\":%" PRIu64 ",\"x\":\"event\"}", seq);
    assert_true(n > 0 && (size_t)n < size);
    return (size_t)n;
}

static uint64_t append_ev(struct spool *s, enum spool_lane lane)
{
    char err[TM_ERR_LEN] = "";
    char buf[48];
    uint64_t seq = spool_next_seq(s);
    size_t n = event_text(seq, buf, sizeof(buf));

    if (spool_append(s, lane, buf, n, err) != 0)
        fail_msg("spool_append: %s", err);
    assert_int_equal(spool_next_seq(s), seq + 1);
    return seq;
}

/* Incompressible bytes of a given length, so that record sizes are predictable. */
static uint64_t append_blob(struct spool *s, enum spool_lane lane, size_t len)
{
    char err[TM_ERR_LEN] = "";
    unsigned char buf[2048];
    uint64_t seq = spool_next_seq(s);
    uint32_t x = (uint32_t)seq * 2654435761u + 1;

    assert_true(len <= sizeof(buf));
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    if (spool_append(s, lane, buf, len, err) != 0)
        fail_msg("spool_append: %s", err);
    return seq;
}

static void flush_ok(struct spool *s)
{
    char err[TM_ERR_LEN] = "";
    if (spool_flush(s, err) != 0)
        fail_msg("spool_flush: %s", err);
}

static void ack_ok(struct spool *s, enum spool_lane lane, uint64_t seq)
{
    char err[TM_ERR_LEN] = "";
    if (spool_ack(s, lane, seq, err) != 0)
        fail_msg("spool_ack: %s", err);
    assert_int_equal(spool_acked(s, lane), seq);
}

static long read_ok(struct spool *s, enum spool_lane lane, uint64_t after, size_t max,
                    struct got *g)
{
    char err[TM_ERR_LEN] = "";
    long n = spool_read(s, lane, after, max, collect_cb, g, err);
    if (n < 0)
        fail_msg("spool_read: %s", err);
    return n;
}

/* Reads the whole lane (from the acknowledged position) into a fresh g. */
static void read_all(struct spool *s, enum spool_lane lane, struct got *g)
{
    uint64_t after = 0;
    memset(g, 0, sizeof(*g));
    for (;;) {
        size_t before = g->n;
        long n = read_ok(s, lane, after, 7, g);
        if (n == 0)
            break;
        assert_int_equal((size_t)n, g->n - before);
        after = g->seq[g->n - 1];
    }
}

/* Checks that g holds exactly seqs first..last, in order, each with its own text. */
static void expect_range(const struct got *g, size_t from, uint64_t first, uint64_t last)
{
    char buf[48];
    for (uint64_t seq = first; seq <= last; seq++) {
        size_t i = from + (size_t)(seq - first);
        size_t n = event_text(seq, buf, sizeof(buf));
        assert_true(i < g->n);
        assert_int_equal(g->seq[i], seq);
        assert_int_equal(g->len[i], n);
        assert_memory_equal(g->data[i], buf, n);
    }
}

static struct spool_stats stats(const struct spool *s)
{
    struct spool_stats st;
    spool_get_stats(s, &st);
    return st;
}

static char *lane_dir(const char *dir, enum spool_lane lane)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, lane == SPOOL_PRIORITY ? "priority" : "bulk");
    return path;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The names (first seqs) of a lane's segment files, sorted; returns how many. */
static size_t list_segments(const char *dir, enum spool_lane lane, uint64_t *out, size_t max)
{
    DIR *d = opendir(lane_dir(dir, lane));
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        uint64_t v = 0;
        if (len != 24 || strcmp(e->d_name + 20, ".seg") != 0)
            continue;
        for (int i = 0; i < 20; i++)
            v = v * 10 + (uint64_t)(e->d_name[i] - '0');
        assert_true(n < max);
        out[n++] = v;
    }
    closedir(d);
    qsort(out, n, sizeof(out[0]), cmp_u64);
    return n;
}

static char *segment_path(const char *dir, enum spool_lane lane, uint64_t name)
{
    static char path[PATH_MAX + 32];
    int n = snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", lane_dir(dir, lane), name);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    return path;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void flip_byte(const char *path, off_t off)
{
    unsigned char c;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void append_bytes(const char *path, unsigned char byte, size_t n)
{
    unsigned char buf[4096];
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd >= 0 && n <= sizeof(buf));
    memset(buf, byte, n);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

static void test_spool_round_trip(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s;
    static struct got g;
    uint64_t pri[100], bulk[100];
    size_t npri = 0, nbulk = 0;
    (void)state;

    c.fsync = SPOOL_FSYNC_ALWAYS;
    s = open_ok(&c);
    assert_int_equal(spool_next_seq(s), 1);
    for (int i = 0; i < 100; i++) {
        if (i % 3 == 0)
            pri[npri++] = append_ev(s, SPOOL_PRIORITY);
        else
            bulk[nbulk++] = append_ev(s, SPOOL_BULK);
    }
    assert_int_equal(stats(s).pending_events, 100);
    /* Nothing is readable before it is flushed. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 1000, &g), 0);
    flush_ok(s);
    assert_int_equal(stats(s).pending_events, 0);
    assert_int_equal(stats(s).depth_events[SPOOL_PRIORITY], npri);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], nbulk);
    assert_true(stats(s).depth_bytes[SPOOL_BULK] > 0);

    for (int round = 0; round < 2; round++) {
        char buf[48];
        read_all(s, SPOOL_PRIORITY, &g);
        assert_int_equal(g.n, npri);
        for (size_t i = 0; i < npri; i++) {
            size_t n = event_text(pri[i], buf, sizeof(buf));
            assert_int_equal(g.seq[i], pri[i]);
            assert_int_equal(g.len[i], n);
            assert_memory_equal(g.data[i], buf, n);
        }
        read_all(s, SPOOL_BULK, &g);
        assert_int_equal(g.n, nbulk);
        for (size_t i = 0; i < nbulk; i++) {
            size_t n = event_text(bulk[i], buf, sizeof(buf));
            assert_int_equal(g.seq[i], bulk[i]);
            assert_memory_equal(g.data[i], buf, n);
        }
        /* The lanes share one counter: together they hold 1..100 exactly once. */
        assert_int_equal(pri[0], 1);
        assert_int_equal(bulk[0], 2);
        assert_int_equal(bulk[nbulk - 1], 99);
        assert_int_equal(pri[npri - 1], 100);
        assert_int_equal(npri + nbulk, 100);
        spool_close(s);
        s = open_ok(&c);
        assert_int_equal(spool_next_seq(s), 101);
        assert_int_equal(stats(s).depth_events[SPOOL_BULK], nbulk);
        assert_int_equal(stats(s).torn_bytes, 0);
    }

    /* max and the callback's stop both end the read early. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 5, &g), 5);
    assert_int_equal(g.seq[4], bulk[4]);
    memset(&g, 0, sizeof(g));
    g.stop_after = 3;
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 1000, &g), 3);
    assert_int_equal(g.seq[2], bulk[2]);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 0, &g), 0);
    spool_close(s);
    remove_dir(dir);
}

static void test_spool_read_after_inside_record(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s = open_ok(&c);
    static struct got g;
    (void)state;

    for (int i = 0; i < 10; i++)
        append_ev(s, SPOOL_BULK);
    flush_ok(s);
    for (int i = 0; i < 10; i++)
        append_ev(s, SPOOL_BULK);
    flush_ok(s);

    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 4, 100, &g), 16);
    expect_range(&g, 0, 5, 20);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 4, 2, &g), 2);
    expect_range(&g, 0, 5, 6);
    /* Continue where the last read stopped, then go back: the read hint must not skip. */
    assert_int_equal(read_ok(s, SPOOL_BULK, 6, 3, &g), 3);
    expect_range(&g, 0, 5, 9);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 12, 100, &g), 8);
    expect_range(&g, 0, 13, 20);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 1, 3, &g), 3);
    expect_range(&g, 0, 2, 4);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 10, 100, &g), 10);
    expect_range(&g, 0, 11, 20);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 20, 100, &g), 0);
    assert_int_equal(read_ok(s, SPOOL_BULK, 1000, 100, &g), 0);
    /* An ack inside the first record moves the start of after_seq = 0 reads. */
    ack_ok(s, SPOOL_BULK, 3);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 17);
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 2, &g), 2);
    expect_range(&g, 0, 4, 5);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 1, 1, &g), 1);
    expect_range(&g, 0, 4, 4);
    spool_close(s);
    remove_dir(dir);
}

static void test_spool_ack_deletes_segments_and_resumes(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s;
    static struct got g;
    uint64_t segs[64];
    char err[TM_ERR_LEN] = "";
    (void)state;

    /* Two 300-byte events per record, one record per 700-byte segment. */
    c.segment_bytes = 700;
    c.fsync = SPOOL_FSYNC_INTERVAL;
    s = open_ok(&c);
    for (int i = 0; i < 10; i++) {
        append_blob(s, SPOOL_BULK, 300);
        append_blob(s, SPOOL_BULK, 300);
        flush_ok(s);
    }
    assert_int_equal(spool_sync(s, err), 0);
    assert_int_equal(list_segments(dir, SPOOL_BULK, segs, 64), 10);
    assert_int_equal(segs[0], 1);
    assert_int_equal(segs[9], 19);

    ack_ok(s, SPOOL_BULK, 7);
    assert_int_equal(list_segments(dir, SPOOL_BULK, segs, 64), 7);
    assert_int_equal(segs[0], 7);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 13);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 100, &g), 13);
    assert_int_equal(g.seq[0], 8);
    assert_int_equal(g.seq[12], 20);
    /* Acks never go back, and cannot go past what was handed out. */
    assert_int_equal(spool_ack(s, SPOOL_BULK, 3, err), 0);
    assert_int_equal(spool_acked(s, SPOOL_BULK), 7);
    assert_int_equal(spool_ack(s, SPOOL_BULK, 21, err), -1);
    assert_non_null(strstr(err, "21"));
    spool_close(s);

    s = open_ok(&c);
    assert_int_equal(spool_acked(s, SPOOL_BULK), 7);
    assert_int_equal(spool_acked(s, SPOOL_PRIORITY), 0);
    assert_int_equal(spool_next_seq(s), 21);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 13);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 100, &g), 13);
    assert_int_equal(g.seq[0], 8);
    ack_ok(s, SPOOL_BULK, 20);
    assert_int_equal(list_segments(dir, SPOOL_BULK, segs, 64), 0);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 0);
    assert_int_equal(stats(s).depth_bytes[SPOOL_BULK], 0);
    /* An ack may run ahead of a flush; the depth only counts what is left. */
    append_ev(s, SPOOL_BULK);
    append_ev(s, SPOOL_BULK);
    ack_ok(s, SPOOL_BULK, 21);
    flush_ok(s);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 1);
    memset(&g, 0, sizeof(g));
    assert_int_equal(read_ok(s, SPOOL_BULK, 0, 100, &g), 1);
    assert_int_equal(g.seq[0], 22);
    spool_close(s);
    remove_dir(dir);
}

static void test_spool_next_seq_survives_reopen(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s = open_ok(&c);
    static struct got g;
    uint64_t segs[8];
    (void)state;

    for (int i = 0; i < 3; i++)
        append_ev(s, SPOOL_BULK);
    append_ev(s, SPOOL_PRIORITY);
    append_ev(s, SPOOL_PRIORITY);
    flush_ok(s);
    ack_ok(s, SPOOL_BULK, 3);
    ack_ok(s, SPOOL_PRIORITY, 5);
    assert_int_equal(list_segments(dir, SPOOL_BULK, segs, 8), 0);
    assert_int_equal(list_segments(dir, SPOOL_PRIORITY, segs, 8), 0);
    spool_close(s);

    s = open_ok(&c);
    assert_int_equal(spool_next_seq(s), 6);
    assert_int_equal(append_ev(s, SPOOL_BULK), 6);
    /* Unflushed events were never spooled: their seqs may come again. */
    spool_close(s); /* close flushes: 6 is on disk now */
    s = open_ok(&c);
    assert_int_equal(spool_next_seq(s), 7);
    read_all(s, SPOOL_BULK, &g);
    assert_int_equal(g.n, 1);
    expect_range(&g, 0, 6, 6);
    spool_close(s);
    remove_dir(dir);

    /* Everything dropped by the cap, nothing acked: the high-water mark remembers. */
    dir = make_dir();
    c = config(dir);
    c.max_bytes = 1;
    s = open_ok(&c);
    for (int i = 0; i < 5; i++)
        append_ev(s, SPOOL_BULK);
    flush_ok(s);
    assert_int_equal(list_segments(dir, SPOOL_BULK, segs, 8), 0);
    assert_int_equal(stats(s).lost_events, 5);
    assert_int_equal(stats(s).lost_segments, 1);
    spool_close(s);
    s = open_ok(&c);
    assert_int_equal(spool_next_seq(s), 6);
    assert_int_equal(stats(s).lost_events, 5);
    assert_int_equal(stats(s).lost_segments, 1);
    spool_close(s);
    remove_dir(dir);
}

/*
 * spool_lane_last: the highest seq a lane has written or accounted for, pending events
 * not included; it survives a reopen and a torn tail takes it back with the records cut.
 */
static void test_spool_lane_last(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s = open_ok(&c);
    char path[PATH_MAX];
    uint64_t segs[4];
    (void)state;

    assert_int_equal(spool_lane_last(s, SPOOL_BULK), 0);
    assert_int_equal(spool_lane_last(s, SPOOL_PRIORITY), 0);
    for (int i = 0; i < 3; i++)
        append_ev(s, SPOOL_BULK);                        /* 1..3 */
    append_ev(s, SPOOL_PRIORITY);                        /* 4 */
    assert_int_equal(spool_lane_last(s, SPOOL_BULK), 0); /* pending only */
    flush_ok(s);
    assert_int_equal(spool_lane_last(s, SPOOL_BULK), 3);
    assert_int_equal(spool_lane_last(s, SPOOL_PRIORITY), 4);
    append_ev(s, SPOOL_BULK); /* 5, a record of its own */
    flush_ok(s);
    assert_int_equal(spool_lane_last(s, SPOOL_BULK), 5);
    ack_ok(s, SPOOL_PRIORITY, 4); /* the priority lane's only segment goes */
    spool_close(s);

    s = open_ok(&c);
    assert_int_equal(spool_lane_last(s, SPOOL_BULK), 5);
    assert_int_equal(spool_lane_last(s, SPOOL_PRIORITY), 4); /* from its ack position */
    spool_close(s);

    /* the last bulk record torn (as by a power loss): the lane ends at 3 again */
    assert_int_equal(list_segments(dir, SPOOL_BULK, segs, 4), 1);
    tm_strlcpy(path, segment_path(dir, SPOOL_BULK, segs[0]), sizeof(path));
    assert_int_equal(truncate(path, file_size(path) - 3), 0);
    s = open_ok(&c);
    assert_int_equal(spool_lane_last(s, SPOOL_BULK), 3);
    spool_close(s);
    remove_dir(dir);
}

static void test_spool_cap_drops_oldest_bulk_segment(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s;
    static struct got g;
    static uint64_t bulk[512];
    uint64_t segs[64], expect_lost = 0, expect_segs = 0, pri_first = 0, pri_last = 0;
    size_t nbulk = 0;
    (void)state;

    c.segment_bytes = 4096;
    c.max_bytes = 3 * 4096;
    s = open_ok(&c);
    for (int i = 0; i < 120; i++) {
        uint64_t before[64];
        size_t nbefore;
        struct spool_stats st;

        bulk[nbulk++] = append_blob(s, SPOOL_BULK, 1000);
        pri_last = append_blob(s, SPOOL_PRIORITY, 1000);
        if (pri_first == 0)
            pri_first = pri_last;
        if (i == 3)
            ack_ok(s, SPOOL_BULK, bulk[1]); /* two events of the first segment */
        nbefore = list_segments(dir, SPOOL_BULK, before, 64);
        flush_ok(s);
        st = stats(s);
        assert_true(st.depth_bytes[SPOOL_BULK] <= c.max_bytes);
        /* Each segment dropped costs exactly its events past the ack position. */
        for (uint64_t k = expect_segs; k < st.lost_segments; k++) {
            size_t idx = (size_t)(k - expect_segs);
            assert_true(idx + 1 < nbefore);
            for (size_t j = 0; j < nbulk; j++)
                if (bulk[j] >= before[idx] && bulk[j] < before[idx + 1] &&
                    bulk[j] > spool_acked(s, SPOOL_BULK))
                    expect_lost++;
        }
        expect_segs = st.lost_segments;
        assert_int_equal(st.lost_events, expect_lost);
    }
    assert_true(expect_segs >= 5);
    /* The first segment held 3 or 4 events, 2 of them acknowledged. */
    assert_true(expect_lost >= 2 * expect_segs);

    /* What is left of the bulk lane is the newest events, all of them. */
    read_all(s, SPOOL_BULK, &g);
    assert_true(g.n > 0);
    assert_int_equal(g.n + expect_lost + 2, nbulk);
    for (size_t i = 0; i < g.n; i++)
        assert_int_equal(g.seq[i], bulk[nbulk - g.n + i]);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], g.n);
    /* The priority lane is far over the cap and kept everything. */
    assert_true(stats(s).depth_bytes[SPOOL_PRIORITY] > 8 * c.max_bytes);
    read_all(s, SPOOL_PRIORITY, &g);
    assert_int_equal(g.n, 120);
    assert_int_equal(g.seq[0], pri_first);
    assert_int_equal(g.seq[119], pri_last);
    assert_true(list_segments(dir, SPOOL_PRIORITY, segs, 64) > 8);
    spool_close(s);

    /* The counters persist, and nothing is counted twice on open. */
    s = open_ok(&c);
    assert_int_equal(stats(s).lost_events, expect_lost);
    assert_int_equal(stats(s).lost_segments, expect_segs);
    read_all(s, SPOOL_BULK, &g);
    assert_int_equal(g.n + expect_lost + 2, nbulk);
    spool_close(s);
    remove_dir(dir);
}

/* Writes three bulk records of five events each; returns the record end offsets. */
static void three_records(const struct spool_config *c, uint64_t end[3])
{
    struct spool *s = open_ok(c);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 5; i++)
            append_ev(s, SPOOL_BULK);
        flush_ok(s);
        end[r] = stats(s).depth_bytes[SPOOL_BULK];
    }
    spool_close(s);
}

static void test_spool_torn_tail_is_cut(void **state)
{
    static struct got g;
    (void)state;

    for (int cut = 0; cut < 6; cut++) {
        char *dir = make_dir();
        struct spool_config c = config(dir);
        struct spool *s;
        uint64_t end[3], at;
        const char *seg;

        three_records(&c, end);
        seg = segment_path(dir, SPOOL_BULK, 1);
        assert_int_equal(file_size(seg), (off_t)end[2]);
        /* Inside the header, just past it, in the payload, one byte short, at a record
         * boundary (nothing torn), and one byte of the third record. */
        const uint64_t offsets[] = {end[1] + 20, end[1] + 40, (end[1] + end[2]) / 2,
                                    end[2] - 1,  end[2],      end[1] + 1};
        at = offsets[cut];
        assert_int_equal(truncate(seg, (off_t)at), 0);

        s = open_ok(&c);
        if (at == end[2]) {
            assert_int_equal(stats(s).torn_bytes, 0);
            assert_int_equal(spool_next_seq(s), 16);
        } else {
            assert_int_equal(stats(s).torn_bytes, at - end[1]);
            assert_int_equal(file_size(seg), (off_t)end[1]);
            assert_int_equal(stats(s).depth_bytes[SPOOL_BULK], end[1]);
            assert_int_equal(spool_next_seq(s), 11);
        }
        read_all(s, SPOOL_BULK, &g);
        expect_range(&g, 0, 1, spool_next_seq(s) - 1);
        assert_int_equal(g.n, spool_next_seq(s) - 1);
        /* Appends go on where the good records end. */
        uint64_t first_new = append_ev(s, SPOOL_BULK);
        append_ev(s, SPOOL_BULK);
        flush_ok(s);
        spool_close(s);
        s = open_ok(&c);
        assert_int_equal(stats(s).torn_bytes, 0);
        read_all(s, SPOOL_BULK, &g);
        assert_int_equal(g.n, first_new + 1);
        expect_range(&g, 0, 1, first_new + 1);
        spool_close(s);
        remove_dir(dir);
    }
}

static void test_spool_torn_garbage_after_records(void **state)
{
    static struct got g;
    (void)state;

    for (int kind = 0; kind < 3; kind++) {
        char *dir = make_dir();
        struct spool_config c = config(dir);
        struct spool *s;
        uint64_t end[3];
        const char *seg;
        size_t n = kind == 0 ? 100 : kind == 1 ? 4096 : 3;

        three_records(&c, end);
        seg = segment_path(dir, SPOOL_BULK, 1);
        /* Random-looking bytes, zeros (a size extended by a power loss), a short stub. */
        append_bytes(seg, kind == 1 ? 0 : 0xab, n);
        s = open_ok(&c);
        assert_int_equal(stats(s).torn_bytes, n);
        assert_int_equal(file_size(seg), (off_t)end[2]);
        read_all(s, SPOOL_BULK, &g);
        assert_int_equal(g.n, 15);
        expect_range(&g, 0, 1, 15);
        append_ev(s, SPOOL_BULK);
        flush_ok(s);
        read_all(s, SPOOL_BULK, &g);
        expect_range(&g, 0, 1, 16);
        spool_close(s);
        remove_dir(dir);
    }
}

static void test_spool_corrupt_middle_record_counted_lost(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s;
    static struct got g;
    uint64_t end[3];
    const char *seg;
    (void)state;

    /* A bad payload CRC in the middle: the record is skipped, its 5 events are lost. */
    three_records(&c, end);
    seg = segment_path(dir, SPOOL_BULK, 1);
    flip_byte(seg, (off_t)end[0] + 40 + 3);
    for (int round = 0; round < 2; round++) {
        s = open_ok(&c);
        assert_int_equal(stats(s).torn_bytes, 0);
        assert_int_equal(stats(s).lost_events, 5);
        assert_int_equal(stats(s).lost_segments, 0);
        assert_int_equal(stats(s).depth_events[SPOOL_BULK], 10);
        assert_int_equal(spool_next_seq(s), 16);
        read_all(s, SPOOL_BULK, &g);
        assert_int_equal(g.n, 10);
        expect_range(&g, 0, 1, 5);
        expect_range(&g, 5, 11, 15);
        spool_close(s);
    }
    remove_dir(dir);

    /* Found by spool_read after open; only the unacknowledged events count. */
    dir = make_dir();
    c = config(dir);
    s = open_ok(&c);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 5; i++)
            append_ev(s, SPOOL_BULK);
        flush_ok(s);
        end[r] = stats(s).depth_bytes[SPOOL_BULK];
    }
    ack_ok(s, SPOOL_BULK, 7);
    flip_byte(segment_path(dir, SPOOL_BULK, 1), (off_t)end[1] - 1);
    read_all(s, SPOOL_BULK, &g);
    assert_int_equal(g.n, 5);
    expect_range(&g, 0, 11, 15);
    assert_int_equal(stats(s).lost_events, 3);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 5);
    spool_close(s);
    s = open_ok(&c);
    assert_int_equal(stats(s).lost_events, 3);
    assert_int_equal(stats(s).depth_events[SPOOL_BULK], 5);
    spool_close(s);
    remove_dir(dir);

    /* A bad payload in the last record of the last segment is a torn write, not a loss. */
    dir = make_dir();
    c = config(dir);
    three_records(&c, end);
    flip_byte(segment_path(dir, SPOOL_BULK, 1), (off_t)end[2] - 2);
    s = open_ok(&c);
    assert_int_equal(stats(s).torn_bytes, end[2] - end[1]);
    assert_int_equal(stats(s).lost_events, 0);
    assert_int_equal(spool_next_seq(s), 11);
    read_all(s, SPOOL_BULK, &g);
    assert_int_equal(g.n, 10);
    expect_range(&g, 0, 1, 10);
    spool_close(s);
    remove_dir(dir);

    /* A bad header in the middle: the rest of the segment cannot be found, it is cut. */
    dir = make_dir();
    c = config(dir);
    three_records(&c, end);
    seg = segment_path(dir, SPOOL_BULK, 1);
    flip_byte(seg, (off_t)end[0] + 17);
    s = open_ok(&c);
    assert_int_equal(stats(s).torn_bytes, end[2] - end[0]);
    read_all(s, SPOOL_BULK, &g);
    assert_int_equal(g.n, 5);
    expect_range(&g, 0, 1, 5);
    spool_close(s);
    remove_dir(dir);
}

static void test_spool_rejects_bad_input(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s;
    char err[TM_ERR_LEN] = "";
    static char big[300 * 1024];
    char path[PATH_MAX];
    int fd;
    (void)state;

    c.compression_level = 0;
    assert_null(spool_open(&c, err));
    assert_string_equal(err, "compression level 0 is not in 1..9");
    c = config(dir);
    s = open_ok(&c);
    assert_int_equal(spool_append(s, SPOOL_BULK, big, sizeof(big), err), -1);
    assert_non_null(strstr(err, "over the limit"));
    assert_int_equal(spool_next_seq(s), 1);
    assert_int_equal(stats(s).pending_events, 0);
    spool_close(s);

    /* A damaged ack file is an error that names the file, not a silent restart. */
    snprintf(path, sizeof(path), "%s/bulk/ack", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage", 7), 7);
    close(fd);
    assert_null(spool_open(&c, err));
    assert_non_null(strstr(err, "/bulk/ack'"));

    /* A spool in a place that cannot be created. */
    snprintf(path, sizeof(path), "%s/bulk/ack/spool", dir);
    c.dir = path;
    assert_null(spool_open(&c, err));
    assert_non_null(strstr(err, "cannot create '"));
    remove_dir(dir);
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/*
 * Writes a one-record bulk segment by hand, CRCs correct, whose header claims raw_len
 * bytes once inflated while the zlib stream holds real_len: a zip bomb when real_len is
 * larger. Layout as documented in spool.c.
 */
static void forge_segment(const char *dir, uint32_t raw_len, size_t real_len, uint32_t count)
{
    static unsigned char raw[2 * 1024 * 1024];
    static unsigned char rec[40 + 2 * 1024 * 1024];
    uLongf clen = sizeof(rec) - 40;
    int fd;

    assert_true(real_len <= sizeof(raw));
    memset(raw, 0, real_len);
    assert_int_equal(compress2(rec + 40, &clen, raw, real_len, 9), Z_OK);
    put_le(rec, 0x31524d54u, 4);
    put_le(rec + 4, clen, 4);
    put_le(rec + 8, raw_len, 4);
    put_le(rec + 12, count, 4);
    put_le(rec + 16, 1, 8);
    put_le(rec + 24, count, 8);
    put_le(rec + 32, crc32(crc32(0, rec + 4, 28), rec + 40, (uInt)clen), 4);
    put_le(rec + 36, crc32(0, rec + 4, 32), 4);
    fd = open(segment_path(dir, SPOOL_BULK, 1), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, rec, 40 + clen), (ssize_t)(40 + clen));
    close(fd);
}

static void test_spool_inflate_is_bounded(void **state)
{
    static struct got g;
    (void)state;

    /* The header claims 120 bytes, the stream inflates to 1 MiB: the record is dropped. */
    for (int kind = 0; kind < 2; kind++) {
        char *dir = make_dir();
        struct spool_config c = config(dir);
        struct spool *s;

        assert_int_equal(mkdir(lane_dir(dir, SPOOL_BULK), 0700), 0);
        if (kind == 0)
            forge_segment(dir, 120, 1024 * 1024, 10);
        else /* a header over the 1 MiB limit is not even read: the segment is cut */
            forge_segment(dir, 1024 * 1024 + 12, 1024 * 1024 + 12, 10);
        s = open_ok(&c);
        if (kind == 0) {
            assert_int_equal(stats(s).torn_bytes, 0);
            read_all(s, SPOOL_BULK, &g);
            assert_int_equal(g.n, 0);
            assert_int_equal(stats(s).lost_events, 10);
            assert_int_equal(stats(s).depth_events[SPOOL_BULK], 0);
        } else {
            assert_true(stats(s).torn_bytes > 0);
            assert_int_equal(stats(s).depth_bytes[SPOOL_BULK], 0);
        }
        /* Seqs of the forged record are never handed out again. */
        assert_int_equal(spool_next_seq(s), kind == 0 ? 11 : 1);
        append_ev(s, SPOOL_BULK);
        flush_ok(s);
        read_all(s, SPOOL_BULK, &g);
        assert_int_equal(g.n, 1);
        spool_close(s);
        remove_dir(dir);
    }
}

/* Child of the SIGKILL test: appends and flushes forever, reporting each flushed seq. */
__attribute__((noreturn)) static void child_append_forever(const char *dir, int wfd)
{
    struct spool_config c = config(dir);
    char err[TM_ERR_LEN];
    char buf[48];
    struct spool *s;

    c.segment_bytes = 16 * 1024;
    s = spool_open(&c, err);
    if (s == NULL)
        _exit(2);
    for (;;) {
        uint64_t last = 0;
        int n = 1 + (int)(spool_next_seq(s) % 37);
        for (int i = 0; i < n; i++) {
            last = spool_next_seq(s);
            size_t len = event_text(last, buf, sizeof(buf));
            if (spool_append(s, last % 5 == 0 ? SPOOL_PRIORITY : SPOOL_BULK, buf, len, err) != 0)
                _exit(3);
        }
        if (spool_flush(s, err) != 0)
            _exit(4);
        if (write(wfd, &last, sizeof(last)) != (ssize_t)sizeof(last))
            _exit(5);
    }
}

static void test_spool_survives_sigkill(void **state)
{
    char *dir = make_dir();
    struct spool_config c = config(dir);
    struct spool *s;
    static struct got g;
    static unsigned char seen[1 << 20];
    uint64_t reported = 0, v;
    int p[2], status;
    pid_t pid;
    (void)state;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_append_forever(dir, p[1]);
    }
    close(p[1]);
    /* Let the child run for a while, then kill it in the middle of whatever it does. */
    while (reported < 20000 && read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
        reported = v;
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    while (read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
        reported = v;
    close(p[0]);
    assert_true(reported >= 20000 && reported < sizeof(seen));

    s = open_ok(&c);
    assert_true(spool_next_seq(s) > reported);
    memset(seen, 0, sizeof(seen));
    for (int lane = 0; lane < SPOOL_LANES; lane++) {
        uint64_t after = 0, prev = 0;
        for (;;) {
            char buf[48];
            memset(&g, 0, sizeof(g));
            long n = read_ok(s, (enum spool_lane)lane, after, MAX_GOT, &g);
            if (n == 0)
                break;
            for (size_t i = 0; i < g.n; i++) {
                size_t len = event_text(g.seq[i], buf, sizeof(buf));
                assert_true(g.seq[i] > prev);
                assert_int_equal(g.seq[i] % 5 == 0, lane == SPOOL_PRIORITY);
                assert_int_equal(g.len[i], len);
                assert_memory_equal(g.data[i], buf, len);
                assert_true(g.seq[i] < sizeof(seen));
                seen[g.seq[i]] = 1;
                prev = g.seq[i];
            }
            after = prev;
        }
    }
    for (uint64_t seq = 1; seq <= reported; seq++)
        if (!seen[seq])
            fail_msg("flushed event %" PRIu64 " is missing", seq);
    /* And the spool goes on. */
    v = append_ev(s, SPOOL_BULK);
    flush_ok(s);
    spool_close(s);
    s = open_ok(&c);
    assert_int_equal(spool_next_seq(s), v + 1);
    spool_close(s);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spool_round_trip),
        cmocka_unit_test(test_spool_read_after_inside_record),
        cmocka_unit_test(test_spool_ack_deletes_segments_and_resumes),
        cmocka_unit_test(test_spool_next_seq_survives_reopen),
        cmocka_unit_test(test_spool_lane_last),
        cmocka_unit_test(test_spool_cap_drops_oldest_bulk_segment),
        cmocka_unit_test(test_spool_torn_tail_is_cut),
        cmocka_unit_test(test_spool_torn_garbage_after_records),
        cmocka_unit_test(test_spool_corrupt_middle_record_counted_lost),
        cmocka_unit_test(test_spool_rejects_bad_input),
        cmocka_unit_test(test_spool_inflate_is_bounded),
        cmocka_unit_test(test_spool_survives_sigkill),
    };
    return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
