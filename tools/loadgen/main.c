/*
 * tm-loadgen - a Lumberjack v2 sender for tests and benchmarks.
 *
 * Opens N connections (plain or TLS with a client certificate) to a collector and sends
 * E events in windows of W, each window as one zlib-compressed frame the way Filebeat
 * does, waiting for the ack of a window before sending the next on that connection.
 * A connection closed before its ack is reopened and the window sent again, so every
 * event is eventually acknowledged (at-least-once), or the run times out.
 *
 * Events are canonical v1 JSON of about --size bytes with unique ids
 * (lg-<run>-<n>); --ids FILE writes the ids that were acknowledged, one per line, for
 * tests that compare with what landed in Kafka. With --pool K, only K distinct windows
 * are built and compressed up front and then replayed (ids then repeat: for throughput
 * runs, so that the generator is not the bottleneck). --input FILE sends the file's
 * lines as payloads instead (cycled), e.g. Beats-shaped JSON or hostile samples.
 *
 * Prints one JSON summary line on stdout: events acked, seconds, events/s, reconnects.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm/tm_common.h"
#include "tm/tm_lumberjack.h"
#include "tm/tm_net.h"
#include "tm/tm_time.h"

struct window {
    struct evbuffer *frames; /* W frame + C frame, ready to send */
    uint32_t count;
    uint32_t last_seq;
    uint64_t first; /* index of its first event */
};

struct conn;

struct run {
    struct event_base *base;
    const char *target;
    struct sockaddr_storage sa;
    socklen_t salen;
    SSL_CTX *tls;
    int connections;
    uint64_t events;
    uint32_t window;
    int size;
    int level;
    int pool;
    char run_id[16];
    const char *sector;
    const char *operator_spoof;
    const char *bind_ip; /* source address of the connections, or NULL */
    char **lines;        /* --input */
    size_t nlines;
    FILE *ids;
    int64_t timeout_ms;
    /* progress */
    uint64_t next_event; /* next event index to put in a window */
    uint64_t acked;
    long reconnects;
    struct window *pooled;
    struct conn *conns;
    int64_t start_ms;
    struct event *deadline_ev;
    int failed;
};

struct conn {
    struct run *r;
    int index;
    struct bufferevent *bev;
    struct window *win; /* in flight, NULL when idle */
    bool owned;         /* win must be freed after its ack (not pooled) */
    struct event *retry_ev;
};

static void conn_open(struct conn *c);

static int make_payload(struct run *r, uint64_t n, char *buf, size_t len)
{
    static const char *const cats[] = {"phishing", "malware", "bruteforce", "scan", "ddos"};
    char ts[TM_TIME_LEN];
    int used, pad;

    if (r->lines != NULL)
        return snprintf(buf, len, "%s", r->lines[n % r->nlines]);
    tm_time_format(tm_time_now_ms(), ts, sizeof(ts));
    used =
        snprintf(buf, len,
                 "{\"id\":\"lg-%s-%llu\",\"ts\":\"%s\",%s%s%s\"category\":\"%s\","
                 "\"severity\":%d,\"src\":{\"ip\":\"198.51.100.%d\",\"port\":%d},"
                 "\"dst\":{\"ip\":\"10.0.%d.%d\",\"port\":443},\"summary\":\"",
                 r->run_id, (unsigned long long)n, ts, r->operator_spoof ? "\"operator\":\"" : "",
                 r->operator_spoof ? r->operator_spoof : "", r->operator_spoof ? "\"," : "",
                 cats[n % 5], (int)(1 + n % 10), (int)(n % 250), (int)(1024 + n % 60000),
                 (int)(n / 250 % 250), (int)(n % 250));
    pad = r->size - used - 2;
    if (pad < 8)
        pad = 8;
    if ((size_t)(used + pad + 3) > len)
        return -1;
    for (int i = 0; i < pad; i++)
        buf[used + i] = (char)('a' + (n + (uint64_t)i) % 26);
    used += pad;
    buf[used++] = '"';
    buf[used++] = '}';
    buf[used] = '\0';
    return used;
}

static struct window *build_window(struct run *r, uint64_t first, uint32_t count)
{
    struct window *w = calloc(1, sizeof(*w));
    struct evbuffer *plain = evbuffer_new();
    char payload[65536];

    w->frames = evbuffer_new();
    w->count = count;
    w->first = first;
    for (uint32_t i = 0; i < count; i++) {
        int n = make_payload(r, first + i, payload, sizeof(payload));
        tm_lj_write_json(plain, i + 1, payload, (size_t)n);
    }
    w->last_seq = count;
    tm_lj_write_window(w->frames, count);
    if (r->level > 0) {
        size_t len = evbuffer_get_length(plain);
        tm_lj_write_compressed(w->frames, evbuffer_pullup(plain, -1), len, r->level);
    } else {
        evbuffer_add_buffer(w->frames, plain);
    }
    evbuffer_free(plain);
    return w;
}

static void window_free(struct window *w)
{
    if (w != NULL) {
        evbuffer_free(w->frames);
        free(w);
    }
}

static void finish_if_done(struct run *r)
{
    if (r->acked >= r->events)
        event_base_loopexit(r->base, NULL);
}

/* Takes the next window for a connection, or returns NULL when all are handed out. */
static struct window *next_window(struct conn *c)
{
    struct run *r = c->r;
    uint64_t left = r->events - r->next_event;
    uint32_t count = left < r->window ? (uint32_t)left : r->window;
    struct window *w;

    if (count == 0)
        return NULL;
    if (r->pool > 0 && count == r->window) {
        w = &r->pooled[(r->next_event / r->window) % (uint64_t)r->pool];
        c->owned = false;
    } else {
        w = build_window(r, r->next_event, count);
        c->owned = true;
    }
    w->first = r->next_event;
    r->next_event += count;
    return w;
}

static void send_window(struct conn *c)
{
    struct evbuffer *copy;

    if (c->win == NULL)
        c->win = next_window(c);
    if (c->win == NULL)
        return; /* nothing left: stay connected and idle */
    /* Send a copy: the window must survive a reconnect. */
    copy = evbuffer_new();
    evbuffer_add(copy, evbuffer_pullup(c->win->frames, -1), evbuffer_get_length(c->win->frames));
    bufferevent_write_buffer(c->bev, copy);
    evbuffer_free(copy);
}

static void window_acked(struct conn *c)
{
    struct run *r = c->r;

    if (r->ids != NULL && r->pool == 0 && r->lines == NULL)
        for (uint32_t i = 0; i < c->win->count; i++)
            fprintf(r->ids, "lg-%s-%llu\n", r->run_id, (unsigned long long)(c->win->first + i));
    if (r->ids != NULL)
        fflush(r->ids); /* tests watch the file while we run */
    r->acked += c->win->count;
    if (c->owned)
        window_free(c->win);
    c->win = NULL;
    finish_if_done(r);
    if (c->bev != NULL)
        send_window(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (c->bev != NULL && evbuffer_get_length(in) >= TM_LJ_HEADER_ACK_LEN) {
        uint32_t seq;
        const uint8_t *p = evbuffer_pullup(in, TM_LJ_HEADER_ACK_LEN);

        if (tm_lj_read_ack(p, TM_LJ_HEADER_ACK_LEN, &seq) != TM_LJ_HEADER_ACK_LEN) {
            fprintf(stderr, "tm-loadgen: connection %d: not an ack frame\n", c->index);
            c->r->failed = 1;
            event_base_loopexit(c->r->base, NULL);
            return;
        }
        evbuffer_drain(in, TM_LJ_HEADER_ACK_LEN);
        /* Partial and keepalive acks (seq below the window's last) just mean "wait". */
        if (c->win != NULL && seq == c->win->last_seq)
            window_acked(c);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_open(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct timeval backoff = {0, 200000};
    (void)bev;

    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        send_window(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        if (c->win == NULL && c->r->next_event >= c->r->events)
            return; /* done anyway */
        c->r->reconnects++;
        event_add(c->retry_ev, &backoff);
    }
}

/* A non-blocking socket bound to r->bind_ip (tests tell senders apart by address), or -1. */
static evutil_socket_t bound_socket(const struct run *r)
{
    struct sockaddr_storage src;
    socklen_t len;
    char addr[80], err[TM_ERR_LEN];
    evutil_socket_t fd;

    snprintf(addr, sizeof(addr), "%s:0", r->bind_ip);
    if (tm_net_parse_addr(addr, &src, &len, err) != 0)
        return -1;
    fd = socket(src.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&src, len) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void conn_open(struct conn *c)
{
    struct run *r = c->r;
    evutil_socket_t fd = r->bind_ip != NULL ? bound_socket(r) : -1;

    if (r->tls != NULL) {
        SSL *ssl = SSL_new(r->tls);
        c->bev = bufferevent_openssl_socket_new(r->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    } else {
        c->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&r->sa, (int)r->salen) != 0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        r->reconnects++;
        struct timeval backoff = {0, 200000};
        event_add(c->retry_ev, &backoff);
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    (void)fd;
    (void)what;

    fprintf(stderr, "tm-loadgen: timed out with %llu of %llu events acknowledged\n",
            (unsigned long long)r->acked, (unsigned long long)r->events);
    r->failed = 1;
    event_base_loopexit(r->base, NULL);
}

static int load_lines(struct run *r, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (f == NULL) {
        fprintf(stderr, "tm-loadgen: cannot open '%s'\n", path);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        r->lines = realloc(r->lines, (r->nlines + 1) * sizeof(char *));
        r->lines[r->nlines++] = strdup(line);
    }
    free(line);
    fclose(f);
    return r->nlines > 0 ? 0 : -1;
}

static SSL_CTX *client_tls(const char *cert, const char *key, const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if ((cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
                          SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) ||
        (ca != NULL && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)) {
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (ca != NULL)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tm-loadgen --target HOST:PORT [--connections N] [--events N]\n"
               "                  [--window N] [--size BYTES] [--level 0-9] [--pool K]\n"
               "                  [--input FILE] [--ids FILE] [--timeout SECONDS]\n"
               "                  [--operator SPOOF] [--tls-cert F --tls-key F] [--tls-ca F]\n"
               "                  [--bind SOURCE_IP]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"events", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},
        {"level", required_argument, NULL, 'z'},
        {"pool", required_argument, NULL, 'p'},
        {"input", required_argument, NULL, 'i'},
        {"ids", required_argument, NULL, 'I'},
        {"timeout", required_argument, NULL, 'T'},
        {"operator", required_argument, NULL, 'o'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"bind", required_argument, NULL, 'B'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct run r = {0};
    const char *cert = NULL, *key = NULL, *ca = NULL, *ids = NULL;
    char err[TM_ERR_LEN];
    int64_t v;
    int opt;
    double secs;
    struct timeval tv;

    r.connections = 1;
    r.events = 1000;
    r.window = 1000;
    r.size = 350;
    r.level = 1;
    r.timeout_ms = 120000;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 't':
            r.target = optarg;
            break;
        case 'c':
        case 'n':
        case 'w':
        case 's':
        case 'z':
        case 'p':
        case 'T':
            if (tm_parse_int64(optarg, 0, INT64_MAX, &v) != 0) {
                fprintf(stderr, "tm-loadgen: '%s' is not a number\n", optarg);
                return 2;
            }
            if (opt == 'c')
                r.connections = (int)v;
            else if (opt == 'n')
                r.events = (uint64_t)v;
            else if (opt == 'w')
                r.window = (uint32_t)v;
            else if (opt == 's')
                r.size = (int)v;
            else if (opt == 'z')
                r.level = (int)v;
            else if (opt == 'p')
                r.pool = (int)v;
            else
                r.timeout_ms = v * 1000;
            break;
        case 'i':
            if (load_lines(&r, optarg) != 0)
                return 2;
            break;
        case 'I':
            ids = optarg;
            break;
        case 'o':
            r.operator_spoof = optarg;
            break;
        case 'B':
            r.bind_ip = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'A':
            ca = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (r.target == NULL || r.connections < 1 || r.window < 1) {
        usage(stderr);
        return 2;
    }
    if (tm_net_parse_addr(r.target, &r.sa, &r.salen, err) != 0) {
        fprintf(stderr, "tm-loadgen: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(r.run_id, sizeof(r.run_id), "%llx", (unsigned long long)tm_time_now_ms());
    if (ids != NULL && (r.ids = fopen(ids, "w")) == NULL) {
        fprintf(stderr, "tm-loadgen: cannot write '%s'\n", ids);
        return 2;
    }
    if ((cert != NULL || ca != NULL) && (r.tls = client_tls(cert, key, ca)) == NULL)
        return 2;
    r.base = event_base_new();
    if (r.pool > 0) {
        r.pooled = calloc((size_t)r.pool, sizeof(*r.pooled));
        for (int i = 0; i < r.pool; i++) {
            struct window *w = build_window(&r, (uint64_t)i * r.window, r.window);
            r.pooled[i] = *w;
            free(w);
        }
    }
    r.conns = calloc((size_t)r.connections, sizeof(*r.conns));
    r.start_ms = tm_time_mono_ms();
    for (int i = 0; i < r.connections; i++) {
        r.conns[i].r = &r;
        r.conns[i].index = i;
        r.conns[i].retry_ev = event_new(r.base, -1, 0, retry_cb, &r.conns[i]);
        conn_open(&r.conns[i]);
    }
    tv.tv_sec = r.timeout_ms / 1000;
    tv.tv_usec = 0;
    r.deadline_ev = event_new(r.base, -1, 0, deadline_cb, &r);
    event_add(r.deadline_ev, &tv);
    if (r.events > 0)
        event_base_dispatch(r.base);
    secs = (double)(tm_time_mono_ms() - r.start_ms) / 1000.0;
    printf("{\"events\":%llu,\"acked\":%llu,\"seconds\":%.3f,\"events_per_s\":%.0f,"
           "\"connections\":%d,\"reconnects\":%ld}\n",
           (unsigned long long)r.events, (unsigned long long)r.acked, secs,
           secs > 0 ? (double)r.acked / secs : 0.0, r.connections, r.reconnects);
    for (int i = 0; i < r.connections; i++) {
        if (r.conns[i].bev != NULL)
            bufferevent_free(r.conns[i].bev);
        if (r.conns[i].owned)
            window_free(r.conns[i].win);
        event_free(r.conns[i].retry_ev);
    }
    for (int i = 0; i < r.pool; i++)
        evbuffer_free(r.pooled[i].frames);
    free(r.pooled);
    free(r.conns);
    for (size_t i = 0; i < r.nlines; i++)
        free(r.lines[i]);
    free(r.lines);
    event_free(r.deadline_ev);
    event_base_free(r.base);
    if (r.tls != NULL)
        SSL_CTX_free(r.tls);
    if (r.ids != NULL)
        fclose(r.ids);
    return r.failed || r.acked < r.events ? 1 : 0;
}
