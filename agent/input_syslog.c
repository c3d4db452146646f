/*
 * input_syslog.c - syslog from local appliances (firewalls, switches, a Windows event
 * forwarder): one message per UDP datagram, or TCP with RFC 6587 framing - octet
 * counting ("LEN SP MSG") when a frame starts with a digit, otherwise LF-terminated.
 * Messages go to agent_line() and through the input's parser (format, usually syslog or
 * cef). Limits: max_line per message (a longer TCP frame closes that connection; a longer
 * LF line is cut and counted), max_connections for TCP. Syslog has no acknowledgements,
 * so there is no read position to save: what arrived is spooled at the next flush.
 * With port 0 the bound address is printed as "listening syslog-udp|syslog-tcp ADDR".
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "tm/tm_log.h"
#include "tm/tm_net.h"

#define UDP_MAX 65536

struct tcp_conn;

struct syslog_state {
    struct input *in;
    struct tcp_conn *conns; /* open TCP connections, closed with the input */
    int fd;
    struct event *udp_ev;
    struct evconnlistener *listener;
    int nconns;
    char *buf; /* UDP datagram */
};

struct tcp_conn {
    struct syslog_state *st;
    struct bufferevent *bev;
    bool skipping; /* inside an LF line that was cut at max_line */
    struct tcp_conn *prev, *next;
};

static void announce(struct input *in, int fd)
{
    char addr[TM_ADDR_LEN];

    if (tm_net_local_addr(fd, addr, sizeof(addr)) == 0) {
        printf("listening %s %s\n", in->ops->type, addr);
        fflush(stdout);
    }
}

static void udp_cb(evutil_socket_t fd, short what, void *arg)
{
    struct syslog_state *st = arg;
    (void)what;

    /* A bounded batch per wake-up, so a flood cannot starve the rest of the loop. */
    for (int i = 0; i < 256; i++) {
        ssize_t n = recv(fd, st->buf, UDP_MAX, 0);
        if (n <= 0)
            break;
        while (n > 0 && (st->buf[n - 1] == '\n' || st->buf[n - 1] == '\0'))
            n--;
        if ((size_t)n > st->in->cfg->max_line) {
            tm_counter_inc(st->in->truncated);
            n = (ssize_t)st->in->cfg->max_line;
        }
        if (n > 0)
            agent_line(st->in, st->buf, (size_t)n, NULL);
    }
    agent_dirty(st->in->agent);
}

static void conn_close(struct tcp_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->st->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->st->nconns--;
    bufferevent_free(c->bev);
    free(c);
}

/* Takes whole frames from the connection's input; -1 means close it. */
static int take_frames(struct tcp_conn *c)
{
    struct input *in = c->st->in;
    struct evbuffer *buf = bufferevent_get_input(c->bev);
    size_t max = (size_t)in->cfg->max_line;
    char line[64];

    for (;;) {
        size_t avail = evbuffer_get_length(buf);
        unsigned char first;

        if (avail == 0)
            return 0;
        evbuffer_copyout(buf, &first, 1);
        if (!c->skipping && first >= '1' && first <= '9') {
            /* Octet counting: "LEN SP MSG". */
            size_t k = avail < sizeof(line) - 1 ? avail : sizeof(line) - 1;
            char *sp, *end;
            unsigned long len;
            evbuffer_copyout(buf, line, k);
            line[k] = '\0';
            sp = memchr(line, ' ', k);
            if (sp == NULL)
                return k >= 11 ? -1 : 0; /* a length has at most 10 digits */
            len = strtoul(line, &end, 10);
            if (end != sp || len == 0 || len > max) {
                tm_log_warn("input '%s': bad octet-counted frame length '%.*s'", in->cfg->name,
                            (int)(sp - line), line);
                return -1;
            }
            if (avail < (size_t)(sp - line) + 1 + len)
                return 0;
            evbuffer_drain(buf, (size_t)(sp - line) + 1);
            {
                char *msg = (char *)evbuffer_pullup(buf, (ssize_t)len);
                size_t n = len;
                while (n > 0 && msg[n - 1] == '\n')
                    n--;
                agent_line(in, msg, n, NULL);
            }
            evbuffer_drain(buf, len);
            continue;
        }
        /* LF framing. */
        {
            struct evbuffer_ptr p = evbuffer_search(buf, "\n", 1, NULL);
            size_t n = p.pos >= 0 ? (size_t)p.pos : avail;
            if (p.pos < 0 && avail <= max)
                return 0;
            if (!c->skipping) {
                size_t take = n > max ? max : n;
                char *msg = (char *)evbuffer_pullup(buf, (ssize_t)take);
                if (n > max)
                    tm_counter_inc(in->truncated);
                if (take > 0 && msg[take - 1] == '\r')
                    take--;
                if (take > 0)
                    agent_line(in, msg, take, NULL);
            }
            c->skipping = p.pos < 0;
            evbuffer_drain(buf, p.pos >= 0 ? n + 1 : n);
        }
    }
}

static void tcp_read_cb(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    (void)bev;

    if (take_frames(c) != 0) {
        conn_close(c);
        return;
    }
    agent_dirty(c->st->in->agent);
}

static void tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct tcp_conn *c = arg;
    (void)bev;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        struct evbuffer *buf = bufferevent_get_input(c->bev);
        size_t n = evbuffer_get_length(buf);
        /* A last LF-framed message without its newline still counts. */
        if (n > 0 && !c->skipping && n <= c->st->in->cfg->max_line) {
            unsigned char first;
            evbuffer_copyout(buf, &first, 1);
            if (first < '0' || first > '9')
                agent_line(c->st->in, (char *)evbuffer_pullup(buf, -1), n, NULL);
            agent_dirty(c->st->in->agent);
        }
        conn_close(c);
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct syslog_state *st = arg;
    struct tcp_conn *c;
    (void)l;
    (void)sa;
    (void)salen;

    if (st->nconns >= st->in->cfg->max_connections) {
        tm_log_warn("input '%s': %d connections open, refusing one", st->in->cfg->name, st->nconns);
        evutil_closesocket(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    c->st = st;
    c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    st->nconns++;
    c->next = st->conns;
    if (st->conns != NULL)
        st->conns->prev = c;
    st->conns = c;
    /* Reading pauses above this much unframed input (the longest frame plus its header). */
    bufferevent_setwatermark(c->bev, EV_READ, 0, st->in->cfg->max_line + 64);
    bufferevent_setcb(c->bev, tcp_read_cb, NULL, tcp_event_cb, c);
    bufferevent_enable(c->bev, EV_READ);
}

static int syslog_start(struct input *in, bool tcp, char *err)
{
    struct syslog_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        tm_err(err, "out of memory");
        return -1;
    }
    in->state = st;
    st->in = in;
    st->fd = tm_net_listen(in->cfg->listen, tcp ? SOCK_STREAM : SOCK_DGRAM, false, err);
    if (st->fd < 0)
        return -1;
    announce(in, st->fd);
    if (tcp) {
        st->listener = evconnlistener_new(agent_base(in->agent), accept_cb, st,
                                          LEV_OPT_CLOSE_ON_FREE, -1, st->fd);
        if (st->listener == NULL) {
            tm_err(err, "cannot listen on '%s'", in->cfg->listen);
            return -1;
        }
        st->fd = -1; /* the listener owns it */
        return 0;
    }
    st->buf = malloc(UDP_MAX);
    st->udp_ev = event_new(agent_base(in->agent), st->fd, EV_READ | EV_PERSIST, udp_cb, st);
    if (st->buf == NULL || st->udp_ev == NULL || event_add(st->udp_ev, NULL) != 0) {
        tm_err(err, "out of memory");
        return -1;
    }
    return 0;
}

static int udp_start(struct input *in, char *err)
{
    return syslog_start(in, false, err);
}

static int tcp_start(struct input *in, char *err)
{
    return syslog_start(in, true, err);
}

static void syslog_stop(struct input *in)
{
    struct syslog_state *st = in->state;

    if (st == NULL)
        return;
    while (st->conns != NULL)
        conn_close(st->conns);
    if (st->udp_ev != NULL)
        event_free(st->udp_ev);
    if (st->listener != NULL)
        evconnlistener_free(st->listener);
    if (st->fd >= 0)
        close(st->fd);
    free(st->buf);
    free(st);
    in->state = NULL;
}

const struct input_ops input_syslog_udp_ops = {
    .type = "syslog-udp",
    .start = udp_start,
    .stop = syslog_stop,
};

const struct input_ops input_syslog_tcp_ops = {
    .type = "syslog-tcp",
    .start = tcp_start,
    .stop = syslog_stop,
};
