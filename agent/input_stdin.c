/*
 * input_stdin.c - lines from standard input (a pipe, a terminal or a redirected file).
 * Pipes and terminals are read when readable; a regular file cannot be polled, so it is
 * read a chunk per loop round. A line longer than max_line is cut there and the rest of
 * it skipped (counted). At end of input the input is finished (with --once the agent
 * exits when the spool is empty too); stdin has no read position to save.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "tm/tm_log.h"

#define CHUNK 65536

struct stdin_state {
    struct event *ev;
    bool regular, eof, skipping;
    size_t len, cap;
    char *buf; /* max_line + CHUNK bytes: the unfinished line, then what was read */
};

/* Hands over every complete line in buf; keeps the unfinished rest at the front. */
static void deliver(struct input *in, struct stdin_state *st, bool at_eof)
{
    size_t start = 0;
    size_t max = (size_t)in->cfg->max_line;

    for (;;) {
        char *nl = memchr(st->buf + start, '\n', st->len - start);
        size_t end = nl != NULL ? (size_t)(nl - st->buf) : st->len;
        size_t n = end - start;

        if (nl == NULL && !(at_eof && n > 0) && n <= max)
            break;
        if (!st->skipping) {
            if (n > max) {
                tm_counter_inc(in->truncated);
                n = max;
            }
            if (n > 0 && st->buf[start + n - 1] == '\r')
                n--;
            agent_line(in, st->buf + start, n, NULL);
        }
        st->skipping = nl == NULL && !at_eof; /* cut: skip to the next newline */
        start = nl != NULL ? end + 1 : st->len;
        if (start >= st->len)
            break;
    }
    memmove(st->buf, st->buf + start, st->len - start);
    st->len -= start;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct input *in = arg;
    struct stdin_state *st = in->state;
    ssize_t n;
    (void)what;

    n = read(fd, st->buf + st->len, st->cap - st->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (n < 0)
            tm_log_error("input '%s': cannot read stdin: %s", in->cfg->name, strerror(errno));
        deliver(in, st, true);
        st->eof = true;
        event_del(st->ev);
        tm_log_info("input '%s': end of stdin", in->cfg->name);
        agent_dirty(in->agent);
        return;
    }
    st->len += (size_t)n;
    deliver(in, st, false);
    agent_dirty(in->agent);
    if (st->regular)
        event_active(st->ev, EV_READ, 0);
}

static int stdin_start(struct input *in, char *err)
{
    struct stdin_state *st = calloc(1, sizeof(*st));
    struct stat sb;

    if (st == NULL) {
        tm_err(err, "out of memory");
        return -1;
    }
    in->state = st;
    st->cap = (size_t)in->cfg->max_line + CHUNK;
    st->buf = malloc(st->cap);
    st->regular = fstat(STDIN_FILENO, &sb) == 0 && !S_ISFIFO(sb.st_mode) && !S_ISCHR(sb.st_mode) &&
                  !S_ISSOCK(sb.st_mode);
    st->ev = event_new(agent_base(in->agent), STDIN_FILENO, st->regular ? 0 : EV_READ | EV_PERSIST,
                       read_cb, in);
    if (st->buf == NULL || st->ev == NULL) {
        tm_err(err, "out of memory");
        return -1;
    }
    if (st->regular)
        event_active(st->ev, EV_READ, 0);
    else
        event_add(st->ev, NULL);
    return 0;
}

static bool stdin_finished(const struct input *in)
{
    const struct stdin_state *st = in->state;

    return st != NULL && st->eof;
}

static void stdin_stop(struct input *in)
{
    struct stdin_state *st = in->state;

    if (st == NULL)
        return;
    if (st->ev != NULL)
        event_free(st->ev);
    free(st->buf);
    free(st);
    in->state = NULL;
}

const struct input_ops input_stdin_ops = {
    .type = "stdin",
    .start = stdin_start,
    .checkpoint = NULL,
    .finished = stdin_finished,
    .stop = stdin_stop,
};
