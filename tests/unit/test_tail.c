/*
 * test_tail.c - the file input on real files: each test works in its own mkdtemp
 * directory under /tmp, drives an event_base in short non-blocking rounds until the
 * expected lines arrive (hard deadline of a few seconds), then runs a little longer so
 * that late duplicates would show, and asserts the exact line sequence: appends,
 * rotation by rename while the writer goes on, copytruncate, truncation, files that
 * appear later, restarts with and without a checkpoint, inode reuse, long lines,
 * partial lines and CRLF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tail.h"
#include "tm/tm_common.h"
#include "tm/tm_log.h"

#define MAX_GOT 4096
#define GOT_LINE 128
#define DEADLINE_MS 5000
#define SETTLE_MS 150

struct got {
    char name[32]; /* basename of the path line_cb was given */
    char line[GOT_LINE];
    size_t len;
    struct tail_pos pos;
};

struct fixture {
    char dir[64];
    char glob[PATH_MAX];
    char path[PATH_MAX]; /* dir/app.log */
    char registry[PATH_MAX];
    struct event_base *base;
    struct tail *tail;
    struct tail_config cfg;
    const char *globs[1];
    struct got got[MAX_GOT];
    size_t n;
    const char *checkpoint_after; /* line_cb checkpoints after delivering this line */
};

static void line_cb(void *arg, const char *path, const char *line, size_t len,
                    const struct tail_pos *pos)
{
    struct fixture *fx = arg;
    struct got *g;
    const char *slash = strrchr(path, '/');

    assert_true(fx->n < MAX_GOT);
    assert_int_equal(line[len], '\0');
    g = &fx->got[fx->n++];
    tm_strlcpy(g->name, slash != NULL ? slash + 1 : path, sizeof(g->name));
    assert_true(len < sizeof(g->line));
    memcpy(g->line, line, len);
    g->line[len] = '\0';
    g->len = len;
    g->pos = *pos;
    if (fx->checkpoint_after != NULL && strcmp(g->line, fx->checkpoint_after) == 0) {
        char err[TM_ERR_LEN] = "";
        if (tail_checkpoint(fx->tail, err) != 0)
            fail_msg("tail_checkpoint: %s", err);
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void noop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* One loop round that returns within about 10 ms even when nothing happens. */
static void loop_once(struct fixture *fx)
{
    struct timeval tv = {0, 10 * 1000};

    assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, noop_cb, NULL, &tv), 0);
    assert_true(event_base_loop(fx->base, EVLOOP_ONCE) >= 0);
}

static void run_for(struct fixture *fx, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    while (now_ms() < end)
        loop_once(fx);
}

/* Runs the loop until n lines in all have arrived (or the deadline), then a bit more. */
static void wait_lines(struct fixture *fx, size_t n)
{
    uint64_t deadline = now_ms() + DEADLINE_MS;

    while (fx->n < n && now_ms() < deadline)
        loop_once(fx);
    run_for(fx, SETTLE_MS);
}

/* Asserts that the lines received (from index `from` on) are exactly want[0..nwant). */
static void expect_lines(const struct fixture *fx, size_t from, const char *const *want,
                         size_t nwant)
{
    for (size_t i = 0; i < nwant && from + i < fx->n; i++)
        assert_string_equal(fx->got[from + i].line, want[i]);
    assert_int_equal(fx->n - from, nwant);
}

/* Asserts the subsequence of lines starting with prefix is exactly want[0..nwant). */
static void expect_prefixed(const struct fixture *fx, const char *prefix, const char *name,
                            const char *const *want, size_t nwant)
{
    size_t k = 0;

    for (size_t i = 0; i < fx->n; i++) {
        if (strncmp(fx->got[i].line, prefix, strlen(prefix)) != 0)
            continue;
        assert_true(k < nwant);
        assert_string_equal(fx->got[i].line, want[k]);
        if (name != NULL)
            assert_string_equal(fx->got[i].name, name);
        k++;
    }
    assert_int_equal(k, nwant);
}

static void write_file(const char *path, int flags, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    size_t len = strlen(text);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void append(const char *path, const char *text)
{
    write_file(path, O_APPEND, text);
}

static void write_fd(int fd, const char *text)
{
    size_t len = strlen(text);

    assert_int_equal(write(fd, text, len), (ssize_t)len);
}

static void start_tail(struct fixture *fx)
{
    char err[TM_ERR_LEN] = "";

    fx->tail = tail_create(fx->base, &fx->cfg, line_cb, fx, err);
    if (fx->tail == NULL)
        fail_msg("tail_create: %s", err);
}

static void stop_tail(struct fixture *fx)
{
    tail_destroy(fx->tail);
    fx->tail = NULL;
}

static void checkpoint(struct fixture *fx)
{
    char err[TM_ERR_LEN] = "";

    if (tail_checkpoint(fx->tail, err) != 0)
        fail_msg("tail_checkpoint: %s", err);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    tm_strlcpy(fx->dir, "/tmp/test_tail.XXXXXX", sizeof(fx->dir));
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/app.log", fx->dir);
    snprintf(fx->glob, sizeof(fx->glob), "%s/app.log", fx->dir);
    snprintf(fx->registry, sizeof(fx->registry), "%s/registry", fx->dir);
    fx->base = event_base_new();
    if (fx->base == NULL)
        return -1;
    fx->globs[0] = fx->glob;
    fx->cfg.globs = fx->globs;
    fx->cfg.n_globs = 1;
    fx->cfg.registry_path = fx->registry;
    fx->cfg.rescan_ms = 10000; /* inotify must do the work unless a test says otherwise */
    *state = fx;
    return 0;
}

static int remove_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    tail_destroy(fx->tail);
    event_base_free(fx->base);
    nftw(fx->dir, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void test_tail_basic_append(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"alpha", "beta", "gamma", "delta"};
    struct tail_stats st;

    write_file(fx->path, O_TRUNC, "alpha\nbeta\n");
    start_tail(fx);
    wait_lines(fx, 2);
    append(fx->path, "gamma\n");
    append(fx->path, "delta\n");
    wait_lines(fx, 4);
    expect_lines(fx, 0, want, 4);
    assert_string_equal(fx->got[0].name, "app.log");
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.lines, 4);
    assert_int_equal(st.bytes, 23);
    assert_int_equal(st.files_watched, 1);
}

/* Each line comes with its file's device and inode and the offset of its first byte. */
static void test_tail_line_positions(void **state)
{
    struct fixture *fx = *state;
    static const uint64_t offs[] = {0, 7, 12, 13};
    struct stat st;

    write_file(fx->path, O_TRUNC, "alpha\r\nbeta\n\ngamma\n");
    assert_int_equal(stat(fx->path, &st), 0);
    start_tail(fx);
    wait_lines(fx, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx->got[i].pos.off, offs[i]);
        assert_int_equal(fx->got[i].pos.ino, (uint64_t)st.st_ino);
        assert_int_equal(fx->got[i].pos.dev, (uint64_t)st.st_dev);
    }
}

static void test_tail_rotation_by_rename(void **state)
{
    struct fixture *fx = *state;
    static const char *const want_a[] = {"a1", "a2", "a3", "a4", "a5"};
    static const char *const want_b[] = {"b1", "b2"};
    char rotated[PATH_MAX];
    struct tail_stats st;
    int old_fd;
    uint64_t deadline;

    fx->cfg.registry_path = NULL;
    fx->cfg.rescan_ms = 100;
    fx->cfg.rotated_idle_ms = 300;
    snprintf(rotated, sizeof(rotated), "%s/app.log.1", fx->dir);
    old_fd = open(fx->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(old_fd >= 0);
    write_fd(old_fd, "a1\na2\n");
    start_tail(fx);
    wait_lines(fx, 2);

    /* The writer keeps its descriptor across the rename, as a daemon does until SIGHUP. */
    assert_int_equal(rename(fx->path, rotated), 0);
    write_fd(old_fd, "a3\n");
    append(fx->path, "b1\n");
    write_fd(old_fd, "a4\n");
    run_for(fx, 50);
    write_fd(old_fd, "a5\n");
    append(fx->path, "b2\n");
    wait_lines(fx, 7);
    close(old_fd);

    expect_prefixed(fx, "a", "app.log", want_a, 5);
    expect_prefixed(fx, "b", "app.log", want_b, 2);
    assert_int_equal(fx->n, 7);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.rotations, 1);
    assert_int_equal(st.truncations, 0);

    /* Idle for rotated_idle_ms, the rotated file is closed; the new one stays. */
    deadline = now_ms() + DEADLINE_MS;
    do {
        loop_once(fx);
        tail_get_stats(fx->tail, &st);
    } while (st.files_watched != 1 && now_ms() < deadline);
    assert_int_equal(st.files_watched, 1);
    assert_int_equal(fx->n, 7);
}

static void test_tail_copytruncate(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"first line", "second line", "third line", "n1", "n2"};
    char copy[PATH_MAX];
    struct tail_stats st;

    snprintf(copy, sizeof(copy), "%s/app.log.1", fx->dir);
    write_file(fx->path, O_TRUNC, "first line\nsecond line\nthird line\n");
    start_tail(fx);
    wait_lines(fx, 3);

    /* logrotate's copytruncate: copy the content, truncate in place, writer goes on. */
    write_file(copy, O_TRUNC, "first line\nsecond line\nthird line\n");
    assert_int_equal(truncate(fx->path, 0), 0);
    append(fx->path, "n1\nn2\n");
    wait_lines(fx, 5);
    expect_lines(fx, 0, want, 5);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.truncations, 1);
    assert_int_equal(st.files_watched, 1);
}

static void test_tail_truncation(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"one", "two", "three", "z"};
    struct tail_stats st;

    write_file(fx->path, O_TRUNC, "one\ntwo\nthree\n");
    start_tail(fx);
    wait_lines(fx, 3);
    assert_int_equal(truncate(fx->path, 0), 0);
    run_for(fx, 100);
    append(fx->path, "z\n");
    wait_lines(fx, 4);
    expect_lines(fx, 0, want, 4);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.truncations, 1);
}

/* Truncated and written again past the old offset before tail looked: the size alone
 * cannot tell, the changed first bytes do. */
static void test_tail_truncation_rewritten_past_offset(void **state)
{
    struct fixture *fx = *state;
    char text[1024];
    const char *want[40];
    char lines[40][16];
    size_t len = 0;
    struct tail_stats st;

    for (int i = 0; i < 30; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "old-line-%02d\n", i);
    write_file(fx->path, O_TRUNC, text); /* 360 bytes: a full 256-byte fingerprint */
    start_tail(fx);
    wait_lines(fx, 30);
    assert_int_equal(fx->n, 30);

    len = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(lines[i], sizeof(lines[i]), "new-line-%02d", i);
        want[i] = lines[i];
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\n", lines[i]);
    }
    write_file(fx->path, O_TRUNC, text); /* 480 bytes, above the old offset */
    wait_lines(fx, 70);
    expect_lines(fx, 30, want, 40);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.truncations, 1);
}

static void test_tail_file_created_later(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"n1", "n2", "o2"};
    char old[PATH_MAX];
    char later[PATH_MAX];

    /* Several globs; start at the end for files present now, from 0 for later ones. */
    snprintf(old, sizeof(old), "%s/old.txt", fx->dir);
    snprintf(later, sizeof(later), "%s/later.log", fx->dir);
    snprintf(fx->glob, sizeof(fx->glob), "%s/*.log", fx->dir);
    {
        char glob2[PATH_MAX];
        const char *globs[2] = {fx->glob, glob2};
        snprintf(glob2, sizeof(glob2), "%s/*.txt", fx->dir);
        fx->cfg.globs = globs;
        fx->cfg.n_globs = 2;
        fx->cfg.start = TAIL_START_END;
        write_file(old, O_TRUNC, "o1\nhal"); /* started mid-line: that line is skipped */
        start_tail(fx);                      /* copies the globs */
    }
    run_for(fx, 100);
    assert_int_equal(fx->n, 0);

    write_file(later, O_TRUNC, "n1\nn2\n");
    wait_lines(fx, 2);
    append(old, "f\no2\n");
    wait_lines(fx, 3);
    expect_lines(fx, 0, want, 3);
    assert_string_equal(fx->got[0].name, "later.log");
    assert_string_equal(fx->got[2].name, "old.txt");
}

static void test_tail_restart_with_registry(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"c", "d"};
    char head[64] = "";
    FILE *fp;

    write_file(fx->path, O_TRUNC, "a\nb\n");
    start_tail(fx);
    wait_lines(fx, 2);
    checkpoint(fx);
    stop_tail(fx);

    fp = fopen(fx->registry, "r");
    assert_non_null(fp);
    assert_non_null(fgets(head, sizeof(head), fp));
    fclose(fp);
    assert_string_equal(head, "tm-tail-registry 2\n");

    append(fx->path, "c\nd\n");
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 2);
    expect_lines(fx, 0, want, 2);
}

/*
 * A fast checkpoint writes the same offsets to its own file with the mark, leaves the
 * durable registry alone, and is removed by the next durable checkpoint; a tail started
 * on the fast file resumes where it was taken.
 */
static void test_tail_fast_checkpoint_and_marks(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"d"};
    static const uint64_t m1[TAIL_MARK_WORDS] = {3, 7}, m2[TAIL_MARK_WORDS] = {3, 9};
    char fast[PATH_MAX + 8], v1[PATH_MAX + 8], bad[PATH_MAX + 8], err[TM_ERR_LEN] = "";
    uint64_t m[TAIL_MARK_WORDS];

    snprintf(fast, sizeof(fast), "%s.fast", fx->registry);
    fx->cfg.fast_registry_path = fast;
    assert_int_equal(tail_registry_mark(fast, m, err), 0); /* none yet */
    write_file(fx->path, O_TRUNC, "a\nb\n");
    start_tail(fx);
    wait_lines(fx, 2);
    tail_set_mark(fx->tail, m1);
    checkpoint(fx);
    append(fx->path, "c\n");
    wait_lines(fx, 3);
    tail_set_mark(fx->tail, m2);
    if (tail_checkpoint_fast(fx->tail, err) != 0)
        fail_msg("tail_checkpoint_fast: %s", err);
    stop_tail(fx); /* as after SIGKILL */

    assert_int_equal(tail_registry_mark(fx->registry, m, err), 1);
    assert_true(m[0] == 3 && m[1] == 7);
    assert_int_equal(tail_registry_mark(fast, m, err), 1);
    assert_true(m[0] == 3 && m[1] == 9);

    /* the owner found the fast one good: a tail on it starts after "c" */
    append(fx->path, "d\n");
    fx->cfg.registry_path = fast;
    fx->cfg.fast_registry_path = NULL;
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 1);
    expect_lines(fx, 0, want, 1);
    stop_tail(fx);

    /* a durable checkpoint makes the fast registry stale: it goes */
    fx->cfg.registry_path = fx->registry;
    fx->cfg.fast_registry_path = fast;
    start_tail(fx);
    checkpoint(fx);
    assert_int_equal(access(fast, F_OK), -1);
    stop_tail(fx);

    /* version 1 (no mark line) reads as mark 0 0; anything else is an error */
    snprintf(v1, sizeof(v1), "%s/v1", fx->dir);
    write_file(v1, O_TRUNC, "tm-tail-registry 1\n1 2 3 0 0 0000000000000000 /x\n");
    m[0] = m[1] = 5;
    assert_int_equal(tail_registry_mark(v1, m, err), 1);
    assert_true(m[0] == 0 && m[1] == 0);
    snprintf(bad, sizeof(bad), "%s/bad", fx->dir);
    write_file(bad, O_TRUNC, "tm-tail-registry 2\nmark x\n");
    assert_int_equal(tail_registry_mark(bad, m, err), -1);
    assert_non_null(strstr(err, "mark"));
    /* written without fsync, a power loss can leave it cut short or torn: an error */
    write_file(bad, O_TRUNC, "tm-tail-registry 2\n");
    assert_int_equal(tail_registry_mark(bad, m, err), -1);
    write_file(bad, O_TRUNC, "tm-tail-registry 2\nmark 1 2\n1 2 3 0 0 00000");
    assert_int_equal(tail_registry_mark(bad, m, err), -1);
    write_file(bad, O_TRUNC, "");
    assert_int_equal(tail_registry_mark(bad, m, err), -1);
}

static void test_tail_restart_without_checkpoint(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"c", "d", "e"};

    write_file(fx->path, O_TRUNC, "a\nb\n");
    start_tail(fx);
    wait_lines(fx, 2);
    checkpoint(fx);
    append(fx->path, "c\nd\n");
    wait_lines(fx, 4);
    assert_int_equal(fx->n, 4);
    stop_tail(fx); /* as after SIGKILL: c and d were delivered, never checkpointed */

    append(fx->path, "e\n");
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 3);
    expect_lines(fx, 0, want, 3);
}

/*
 * Same device and inode, other content: what a reused inode looks like. Rewriting the file
 * in place keeps the inode for certain (a new file may or may not get the old number).
 */
static void test_tail_inode_reuse_different_fingerprint(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"other file 1", "other file 2", "other file 3"};

    write_file(fx->path, O_TRUNC, "first\nsecond\n");
    start_tail(fx);
    wait_lines(fx, 2);
    checkpoint(fx);
    stop_tail(fx);

    write_file(fx->path, O_TRUNC, "other file 1\nother file 2\nother file 3\n");
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 3);
    expect_lines(fx, 0, want, 3);
}

static void test_tail_long_line_truncation(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"short", "xxxxxxxxxxxxxxxx", "after", "yyyyyyyyyyyyyyyy",
                                       "next",  "zzzzzzzzzzzzzzzz"};
    char text[256];
    struct tail_stats st;

    fx->cfg.max_line = 16;
    snprintf(text, sizeof(text), "short\n%.40s\nafter\n",
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    write_file(fx->path, O_TRUNC, text);
    start_tail(fx);
    wait_lines(fx, 3);

    /* A long line arriving in pieces: cut once it passes the limit, rest skipped. */
    append(fx->path, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
    wait_lines(fx, 4);
    assert_int_equal(fx->n, 4);
    append(fx->path, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
    run_for(fx, 50);
    /* A restart inside the skipped rest must not deliver its tail as a line. */
    checkpoint(fx);
    stop_tail(fx);
    append(fx->path, "yyyy\r\nnext\nzzzzzzzzzzzzzzzz\r\n");
    start_tail(fx);
    wait_lines(fx, 6);
    expect_lines(fx, 0, want, 6);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.truncated_lines, 0); /* counters are per tail instance */
}

static void test_tail_long_line_counted(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"0123456789", "ok", "0123456789"};
    struct tail_stats st;

    fx->cfg.max_line = 10;
    write_file(fx->path, O_TRUNC, "0123456789abcdef\nok\n0123456789A\r\n");
    start_tail(fx);
    wait_lines(fx, 3);
    expect_lines(fx, 0, want, 3);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.truncated_lines, 2);
    assert_int_equal(st.bytes, 33);
}

static void test_tail_partial_line_completed_later(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"done", "abcdef", "tail"};

    write_file(fx->path, O_TRUNC, "done\nabc");
    start_tail(fx);
    wait_lines(fx, 1);
    run_for(fx, 200);
    assert_int_equal(fx->n, 1);
    append(fx->path, "def\n");
    wait_lines(fx, 2);
    append(fx->path, "ta");
    run_for(fx, 100);
    append(fx->path, "il\n");
    wait_lines(fx, 3);
    expect_lines(fx, 0, want, 3);
}

static void test_tail_crlf(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"one", "two", "", "th\rree", "four"};

    write_file(fx->path, O_TRUNC, "one\r\ntwo\r\n\r\nth\rree\nfour\r");
    start_tail(fx);
    wait_lines(fx, 4);
    append(fx->path, "\n");
    wait_lines(fx, 5);
    expect_lines(fx, 0, want, 5);
}

/* Stopped while reading a rotated-away file: after the restart its rest is read too. */
static void test_tail_rotated_file_finished_after_restart(void **state)
{
    struct fixture *fx = *state;
    static const char *const want_a[] = {"a3", "a4"};
    static const char *const want_b[] = {"b1"};
    char rotated[PATH_MAX];

    snprintf(rotated, sizeof(rotated), "%s/app.log.1", fx->dir);
    write_file(fx->path, O_TRUNC, "a1\na2\n");
    start_tail(fx);
    wait_lines(fx, 2);
    checkpoint(fx);
    stop_tail(fx);

    assert_int_equal(rename(fx->path, rotated), 0);
    append(rotated, "a3\na4\n");
    write_file(fx->path, O_TRUNC, "b1\n");
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 3);
    expect_prefixed(fx, "a", "app.log.1", want_a, 2);
    expect_prefixed(fx, "b", "app.log", want_b, 1);
    assert_int_equal(fx->n, 3);
}

/* A big file is read in chunks across loop rounds, without losing or repeating lines. */
static void test_tail_big_file_in_chunks(void **state)
{
    struct fixture *fx = *state;
    char other[PATH_MAX];
    char line[32];
    FILE *fp;
    size_t small_at = 0;

    fx->cfg.read_chunk = 1024;
    fx->cfg.max_line = 64; /* the read buffer is max(read_chunk, max_line + 2) */
    snprintf(fx->glob, sizeof(fx->glob), "%s/*.log", fx->dir);
    snprintf(other, sizeof(other), "%s/small.log", fx->dir);
    fp = fopen(fx->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 3000; i++)
        fprintf(fp, "big-%04d\n", i);
    fclose(fp);
    write_file(other, O_TRUNC, "small\n");
    start_tail(fx);
    wait_lines(fx, 3001);
    assert_int_equal(fx->n, 3001);
    for (size_t i = 0, k = 0; i < fx->n; i++) {
        if (strcmp(fx->got[i].line, "small") == 0) {
            small_at = i;
            continue;
        }
        snprintf(line, sizeof(line), "big-%04zu", k++);
        assert_string_equal(fx->got[i].line, line);
    }
    /* The small file did not wait for the 27 KiB one. */
    assert_true(small_at < 500);
}

/* The owner made lines durable up to "b" (checkpoint from the callback, mid-buffer). */
static void test_tail_checkpoint_inside_callback(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"c", "d"};

    write_file(fx->path, O_TRUNC, "a\nb\nc\n");
    fx->checkpoint_after = "b";
    start_tail(fx);
    wait_lines(fx, 3);
    assert_int_equal(fx->n, 3);
    stop_tail(fx);

    append(fx->path, "d\n");
    fx->checkpoint_after = NULL;
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 2);
    expect_lines(fx, 0, want, 2);
}

/* A directory that appears later has no inotify watch yet: the rescan timer finds it. */
static void test_tail_rescan_finds_new_directory(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"deep1", "deep2"};
    char sub[PATH_MAX];
    char path[PATH_MAX];

    fx->cfg.rescan_ms = 100;
    snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
    snprintf(path, sizeof(path), "%s/sub/x.log", fx->dir);
    snprintf(fx->glob, sizeof(fx->glob), "%s/sub/*.log", fx->dir);
    start_tail(fx);
    run_for(fx, 50);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_file(path, O_TRUNC, "deep1\n");
    wait_lines(fx, 1);
    append(path, "deep2\n");
    wait_lines(fx, 2);
    expect_lines(fx, 0, want, 2);
    assert_string_equal(fx->got[0].name, "x.log");
}

static void test_tail_max_files(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"from a", "from b"};
    const char *names[] = {"a.log", "b.log", "c.log"};
    struct tail_stats st;

    fx->cfg.max_files = 2;
    snprintf(fx->glob, sizeof(fx->glob), "%s/*.log", fx->dir);
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX];
        char text[16];
        snprintf(path, sizeof(path), "%s/%s", fx->dir, names[i]);
        snprintf(text, sizeof(text), "from %c\n", names[i][0]);
        write_file(path, O_TRUNC, text);
    }
    start_tail(fx);
    wait_lines(fx, 2);
    expect_lines(fx, 0, want, 2);
    tail_get_stats(fx->tail, &st);
    assert_int_equal(st.files_watched, 2);
    assert_int_equal(st.files_over_max, 1);
}

/* A checkpoint while a rotated file is read records its new name; a restart finishes it. */
static void test_tail_checkpoint_names_rotated_file(void **state)
{
    struct fixture *fx = *state;
    static const char *const want[] = {"a3"};
    char rotated[PATH_MAX];
    char text[1024];
    size_t len;
    FILE *fp;

    snprintf(rotated, sizeof(rotated), "%s/app.log.1", fx->dir);
    write_file(fx->path, O_TRUNC, "a1\n");
    start_tail(fx);
    wait_lines(fx, 1);
    assert_int_equal(rename(fx->path, rotated), 0);
    append(rotated, "a2\n");
    wait_lines(fx, 2);
    assert_int_equal(fx->n, 2);
    checkpoint(fx);
    stop_tail(fx);

    fp = fopen(fx->registry, "r");
    assert_non_null(fp);
    len = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[len] = '\0';
    assert_non_null(strstr(text, "/app.log.1\n"));

    append(rotated, "a3\n");
    fx->n = 0;
    start_tail(fx);
    wait_lines(fx, 1);
    expect_lines(fx, 0, want, 1);
    assert_string_equal(fx->got[0].name, "app.log.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tail_line_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_basic_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_rotation_by_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_copytruncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_truncation_rewritten_past_offset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tail_file_created_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_restart_with_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_fast_checkpoint_and_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_restart_without_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_inode_reuse_different_fingerprint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tail_long_line_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_long_line_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_partial_line_completed_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_rotated_file_finished_after_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tail_big_file_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_checkpoint_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_rescan_finds_new_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_max_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_checkpoint_names_rotated_file, setup, teardown),
    };

    tm_log_init("test_tail", TM_LOG_WARN, false);
    return cmocka_run_group_tests_name("tail", tests, NULL, NULL);
}
