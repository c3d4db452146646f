/*
 * test_ship.c - the agent's shipper (agent/ship.c) against fake Lumberjack collectors on
 * 127.0.0.1 port 0, all on one event_base: events shipped and acked in order with the
 * priority lane first (also when priority events arrive while bulk is in flight), partial
 * and keepalive acks, a collector that closes mid-window (resend from the acked position,
 * no gaps), failover past a refused address, ack timeouts, the backoff's growth, bound
 * and reset, heartbeat content and placement, ship_kick, and TLS with a client
 * certificate (good CA, wrong CA, wrong name, no client certificate). The PKI is made at
 * run time with the openssl command line in a mkdtemp directory.
 *
 * The disk spool is replaced by an in-memory test double (below): agent/spool.c has its
 * own tests, and this one checks only what the shipper asks of the spool API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ship.h"
#include "tm/tm_log.h"
#include "tm/tm_lumberjack.h"
#include "tm/tm_time.h"

/* Every wait in this file gives up after this long, so a bug fails instead of hanging. */
#define WAIT_MS 4000

/* ---- test double of the disk spool ------------------------------------------------ */
/*
 * An in-memory spool with the same API as agent/spool.h: every append is immediately
 * "flushed"; spool_read delivers events above the acknowledged position; spool_ack checks
 * that positions only move forward and logs each call so tests can compare.
 */

#define FAKE_MAX 512
#define FAKE_DATA 160

struct fake_event {
    uint64_t seq;
    char data[FAKE_DATA];
    size_t len;
};

struct spool {
    struct fake_event ev[SPOOL_LANES][FAKE_MAX];
    size_t n[SPOOL_LANES];
    uint64_t acked[SPOOL_LANES];
    uint64_t ack_log[SPOOL_LANES][FAKE_MAX];
    size_t nacks[SPOOL_LANES];
    uint64_t next_seq;
    uint64_t lost;
    int backwards_acks; /* spool_ack calls that did not move forward */
};

uint64_t spool_next_seq(const struct spool *s)
{
    return s->next_seq;
}

int spool_append(struct spool *s, enum spool_lane lane, const void *data, size_t len, char *err)
{
    struct fake_event *e;

    if (s->n[lane] >= FAKE_MAX || len >= FAKE_DATA)
        return tm_err(err, "fake spool full");
    e = &s->ev[lane][s->n[lane]++];
    e->seq = s->next_seq++;
    memcpy(e->data, data, len);
    e->len = len;
    return 0;
}

long spool_read(struct spool *s, enum spool_lane lane, uint64_t after_seq, size_t max,
                spool_event_cb cb, void *arg, char *err)
{
    uint64_t after = after_seq != 0 ? after_seq : s->acked[lane];
    long delivered = 0;

    (void)err;
    for (size_t i = 0; i < s->n[lane] && (size_t)delivered < max; i++) {
        const struct fake_event *e = &s->ev[lane][i];
        if (e->seq <= after)
            continue;
        if (cb(e->seq, e->data, e->len, arg) != 0)
            break;
        delivered++;
    }
    return delivered;
}

int spool_ack(struct spool *s, enum spool_lane lane, uint64_t seq, char *err)
{
    (void)err;
    if (seq <= s->acked[lane])
        s->backwards_acks++;
    s->acked[lane] = seq;
    if (s->nacks[lane] < FAKE_MAX)
        s->ack_log[lane][s->nacks[lane]++] = seq;
    return 0;
}

uint64_t spool_acked(const struct spool *s, enum spool_lane lane)
{
    return s->acked[lane];
}

void spool_get_stats(const struct spool *s, struct spool_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->next_seq = s->next_seq;
    for (int l = 0; l < SPOOL_LANES; l++) {
        for (size_t i = 0; i < s->n[l]; i++) {
            if (s->ev[l][i].seq > s->acked[l]) {
                out->depth_events[l]++;
                out->depth_bytes[l] += s->ev[l][i].len;
            }
        }
    }
    out->lost_events = s->lost;
}

static void spool_put(struct spool *s, enum spool_lane lane, const char *name)
{
    char buf[FAKE_DATA];
    int n = snprintf(buf, sizeof(buf), "{\"name\":\"%s\"}", name);

    assert_int_equal(spool_append(s, lane, buf, (size_t)n, NULL), 0);
}

/* ---- fake collector ----------------------------------------------------------------- */

#define MAX_RECS 1024
#define NAME_LEN 48

/* One data frame as the collector saw it. */
struct rec {
    int conn;        /* connection number, 0.. */
    uint32_t window; /* size announced by the W frame before it */
    uint32_t seq;    /* J seq */
    bool heartbeat;  /* "type":"tm.heartbeat" */
    bool complete_w; /* the window before this one's W frame was complete */
    char name[NAME_LEN];
    char payload[512];
};

struct server;

struct sconn {
    struct server *srv;
    struct bufferevent *bev;
    struct tm_lj_decoder *dec;
    struct event *timer_ev; /* delayed acks and keepalives */
    int index;
    uint32_t window, got, acked;
    int keepalives_left;
    bool closing;
    bool stop;
};

struct server {
    struct event_base *base;
    struct evconnlistener *lis;
    SSL_CTX *tls;
    char addr[64];
    int connections;
    struct sconn *conn; /* the current one; older ones are closed */
    /* behaviour */
    uint32_t ack_every;    /* ack every k events (each twice: the repeat is a keepalive) */
    uint32_t ack_delay_ms; /* full acks wait this long */
    int keepalives;        /* before a full ack, this many ack(0) keepalives, 50 ms apart */
    int close_conn;        /* on this connection (-1: none), after close_after events: */
    uint32_t close_after;  /*   ack close_ack of them, then close */
    uint32_t close_ack;
    int silent_conn; /* this connection never acks (-1: none) */
    void (*on_event)(struct server *srv, const struct rec *r);
    void *arg;
    /* what it saw */
    struct rec recs[MAX_RECS];
    int nrecs;
    int windows;
    bool last_window_complete;
    int tls_verified_clients; /* connections whose client certificate verified */
    int compressed_windows;   /* reads that began with a W frame and then a C frame */
    size_t max_window_json;   /* most JSON bytes seen in one window */
    size_t window_json;
};

static void sconn_free(struct sconn *c)
{
    if (c == NULL)
        return;
    if (c->srv->conn == c)
        c->srv->conn = NULL;
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->timer_ev != NULL)
        event_free(c->timer_ev);
    tm_lj_decoder_destroy(c->dec);
    free(c);
}

static void sconn_write_cb(struct bufferevent *bev, void *arg)
{
    struct sconn *c = arg;

    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        sconn_free(c);
}

/* Closes once what was written (acks) has left. */
static void sconn_close_after_flush(struct sconn *c)
{
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        sconn_free(c);
}

static void send_ack(struct sconn *c, uint32_t seq)
{
    assert_int_equal(tm_lj_write_ack(bufferevent_get_output(c->bev), seq), 0);
}

static void sconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *c = arg;
    struct timeval ka = {0, 50000};
    (void)fd;
    (void)what;

    if (c->keepalives_left > 0) {
        c->keepalives_left--;
        send_ack(c, c->acked);
        event_add(c->timer_ev, &ka);
        return;
    }
    c->acked = c->window;
    send_ack(c, c->window);
}

static int srv_window_cb(void *arg, uint32_t size)
{
    struct sconn *c = arg;

    c->srv->last_window_complete = c->got == c->window;
    c->srv->windows++;
    c->srv->window_json = 0;
    c->window = size;
    c->got = 0;
    c->acked = 0;
    return 0;
}

static void name_of(const char *payload, size_t len, char *out)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    const char *n = json_string_value(json_object_get(o, "name"));

    snprintf(out, NAME_LEN, "%s", n != NULL ? n : "");
    json_decref(o);
}

static int srv_data_cb(void *arg, uint32_t seq, const char *payload, size_t len)
{
    struct sconn *c = arg;
    struct server *srv = c->srv;
    struct rec *r;

    if (c->stop)
        return -1;
    assert_true(srv->nrecs < MAX_RECS);
    r = &srv->recs[srv->nrecs++];
    r->conn = c->index;
    r->window = c->window;
    r->seq = seq;
    r->complete_w = srv->last_window_complete;
    r->heartbeat = memmem(payload, len, "\"tm.heartbeat\"", 14) != NULL;
    snprintf(r->payload, sizeof(r->payload), "%.*s", (int)len, payload);
    name_of(payload, len, r->name);
    srv->window_json += len;
    if (srv->window_json > srv->max_window_json)
        srv->max_window_json = srv->window_json;
    c->got++;
    assert_int_equal(seq, c->got);
    if (srv->on_event != NULL)
        srv->on_event(srv, r);
    if (c->index == srv->close_conn && c->got == srv->close_after) {
        if (srv->close_ack > 0)
            send_ack(c, srv->close_ack);
        c->stop = true;
        return -1;
    }
    if (c->index == srv->silent_conn)
        return 0;
    if (srv->ack_every > 0 && seq % srv->ack_every == 0 && seq < c->window) {
        send_ack(c, seq);
        send_ack(c, seq); /* a keepalive repeating the last ack */
        c->acked = seq;
    }
    if (c->got == c->window) {
        if (srv->ack_delay_ms > 0 || srv->keepalives > 0) {
            struct timeval tv = {0, (suseconds_t)(srv->ack_delay_ms * 1000)};
            c->keepalives_left = srv->keepalives;
            event_add(c->timer_ev, &tv);
        } else {
            c->acked = c->window;
            send_ack(c, c->window);
        }
    }
    return 0;
}

static void sconn_read_cb(struct bufferevent *bev, void *arg)
{
    struct sconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct tm_lj_callbacks cb = {srv_window_cb, srv_data_cb, c};
    char err[TM_ERR_LEN];
    size_t need = 0;
    long used;

    if (evbuffer_get_length(in) >= 8) {
        const uint8_t *p = evbuffer_pullup(in, 8);
        if (p[0] == '2' && p[1] == 'W' && p[6] == '2' && p[7] == 'C')
            c->srv->compressed_windows++;
    }
    if (c->srv->tls != NULL && c->got == 0 && c->window == 0) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        X509 *peer = SSL_get1_peer_certificate(ssl);
        if (peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK)
            c->srv->tls_verified_clients++;
        X509_free(peer);
    }
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0 || c->closing)
            return;
        used = tm_lj_decoder_feed(c->dec, evbuffer_pullup(in, -1), len, &need, &cb, err);
        if (used < 0) {
            assert_true(c->stop); /* only the test's own "stop" may end decoding */
            sconn_close_after_flush(c);
            return;
        }
        if (used == 0)
            return;
        evbuffer_drain(in, (size_t)used);
    }
}

static void sconn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sconn_free(arg);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct server *srv = arg;
    struct sconn *c = calloc(1, sizeof(*c));
    (void)lis;
    (void)sa;
    (void)salen;

    assert_non_null(c);
    if (srv->conn != NULL)
        sconn_free(srv->conn); /* one connection at a time, like one agent */
    c->srv = srv;
    c->index = srv->connections++;
    c->dec = tm_lj_decoder_create(NULL);
    c->timer_ev = event_new(srv->base, -1, 0, sconn_timer_cb, c);
    if (srv->tls != NULL)
        c->bev = bufferevent_openssl_socket_new(srv->base, fd, SSL_new(srv->tls),
                                                BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    else
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(c->bev);
    bufferevent_setcb(c->bev, sconn_read_cb, sconn_write_cb, sconn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    srv->conn = c;
}

static void server_start(struct server *srv, struct event_base *base, SSL_CTX *tls)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(srv, 0, sizeof(*srv));
    srv->base = base;
    srv->tls = tls;
    srv->close_conn = -1;
    srv->silent_conn = -1;
    srv->last_window_complete = true;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv->lis =
        evconnlistener_new_bind(base, accept_cb, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(srv->lis);
    assert_int_equal(getsockname(evconnlistener_get_fd(srv->lis), (struct sockaddr *)&sin, &len),
                     0);
    snprintf(srv->addr, sizeof(srv->addr), "127.0.0.1:%d", ntohs(sin.sin_port));
}

static void server_stop(struct server *srv)
{
    if (srv->lis == NULL)
        return;
    sconn_free(srv->conn);
    evconnlistener_free(srv->lis);
    srv->lis = NULL;
}

/* Data frames that were events (not heartbeats), as "name@conn" joined by spaces. */
static void event_names(const struct server *srv, char *out, size_t outlen, bool with_conn)
{
    size_t used = 0;

    out[0] = '\0';
    for (int i = 0; i < srv->nrecs && used < outlen; i++) {
        const struct rec *r = &srv->recs[i];
        int n;
        if (r->heartbeat)
            continue;
        if (with_conn)
            n = snprintf(out + used, outlen - used, "%s%s@%d", used ? " " : "", r->name, r->conn);
        else
            n = snprintf(out + used, outlen - used, "%s%s", used ? " " : "", r->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* ---- fixture ------------------------------------------------------------------------ */

struct pki {
    char dir[64];
    bool ok;
};
static struct pki pki;

struct fixture {
    struct event_base *base;
    struct event *tick_ev;
    struct spool *spool;
    struct server srv[2];
    struct ship_config cfg;
    const char *collectors[3];
    char addrs[3][64];
    struct ship *ship;
    SSL_CTX *server_tls;
    int refused_fd;
    char refused_addr[64];
    uint32_t rnd; /* what random_cb returns */
};

static uint32_t fixed_random_cb(void *arg)
{
    return ((struct fixture *)arg)->rnd;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct timeval tick = {0, 5000};
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    if (fx == NULL)
        return -1;
    *state = fx;
    fx->base = event_base_new();
    fx->spool = calloc(1, sizeof(*fx->spool));
    if (fx->base == NULL || fx->spool == NULL)
        return -1;
    fx->spool->next_seq = 1;
    /* Keeps EVLOOP_ONCE from sleeping past a condition the tests poll. */
    fx->tick_ev = event_new(fx->base, -1, EV_PERSIST, tick_cb, NULL);
    event_add(fx->tick_ev, &tick);
    /* Bound, never listening: connecting to it is refused. */
    fx->refused_fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fx->refused_fd < 0 || bind(fx->refused_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fx->refused_fd, (struct sockaddr *)&sin, &len) != 0)
        return -1;
    snprintf(fx->refused_addr, sizeof(fx->refused_addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    ship_config_default(&fx->cfg);
    fx->cfg.agent_id = "agent-7";
    fx->cfg.version = "1.2.3";
    fx->cfg.collectors = fx->collectors;
    fx->cfg.backoff_base_ms = 10;
    fx->cfg.backoff_max_ms = 80;
    fx->cfg.ack_timeout_ms = 2000;
    fx->cfg.connect_timeout_ms = 2000;
    fx->cfg.heartbeat_interval_ms = 0;
    fx->cfg.poll_interval_ms = 60000; /* so only ship_kick can explain prompt sends */
    fx->cfg.compression_level = 1;
    fx->cfg.random_cb = fixed_random_cb;
    fx->cfg.cb_arg = fx;
    /*
     * 255716 + 1 = 11 * 7 * 41 * 81 is a multiple of every (ceiling + 1) of the 10..80 ms
     * backoff, so rnd % (ceiling + 1) == ceiling: each delay is its step's largest.
     */
    fx->rnd = 255716;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    ship_destroy(fx->ship);
    server_stop(&fx->srv[0]);
    server_stop(&fx->srv[1]);
    if (fx->server_tls != NULL)
        SSL_CTX_free(fx->server_tls);
    if (fx->refused_fd >= 0)
        close(fx->refused_fd);
    if (fx->tick_ev != NULL)
        event_free(fx->tick_ev);
    if (fx->base != NULL)
        event_base_free(fx->base);
    free(fx->spool);
    free(fx);
    return 0;
}

static void use_collectors(struct fixture *fx, int n, ...)
{
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        snprintf(fx->addrs[i], sizeof(fx->addrs[i]), "%s", va_arg(ap, const char *));
        fx->collectors[i] = fx->addrs[i];
    }
    va_end(ap);
    fx->cfg.ncollectors = (size_t)n;
}

static void start_ship(struct fixture *fx)
{
    char err[TM_ERR_LEN] = "";

    fx->ship = ship_create(fx->base, fx->spool, &fx->cfg, err);
    if (fx->ship == NULL)
        fail_msg("ship_create: %s", err);
}

/* Runs the loop until done(fx) or WAIT_MS; returns done(fx). */
static bool run_until(struct fixture *fx, bool (*done)(struct fixture *))
{
    int64_t deadline = tm_time_mono_ms() + WAIT_MS;

    while (!done(fx) && tm_time_mono_ms() < deadline)
        event_base_loop(fx->base, EVLOOP_ONCE);
    return done(fx);
}

static void run_for(struct fixture *fx, int ms)
{
    int64_t deadline = tm_time_mono_ms() + ms;

    while (tm_time_mono_ms() < deadline)
        event_base_loop(fx->base, EVLOOP_ONCE);
}

static struct ship_stats stats_of(struct fixture *fx)
{
    struct ship_stats st;

    ship_get_stats(fx->ship, &st);
    return st;
}

static bool all_acked(struct fixture *fx)
{
    for (int l = 0; l < SPOOL_LANES; l++)
        if (fx->spool->n[l] > 0 && fx->spool->acked[l] != fx->spool->ev[l][fx->spool->n[l] - 1].seq)
            return false;
    return true;
}

static bool connected(struct fixture *fx)
{
    return stats_of(fx).connected;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_ship_backoff_grows_and_is_bounded(void **state)
{
    static const uint32_t ceilings[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    (void)state;

    for (unsigned i = 0; i < TM_ARRAY_LEN(ceilings); i++) {
        assert_int_equal(ship_backoff_ms(500, 30000, i, UINT32_MAX) % (ceilings[i] + 1),
                         ship_backoff_ms(500, 30000, i, UINT32_MAX));
        assert_int_equal(ship_backoff_ms(500, 30000, i, ceilings[i]), ceilings[i]);
        assert_int_equal(ship_backoff_ms(500, 30000, i, 0), 0);
        for (uint32_t r = 1; r < 4000000000u; r += 7777777u)
            assert_true(ship_backoff_ms(500, 30000, i, r) <= ceilings[i]);
    }
    /* Huge failure counts neither overflow nor pass the bound. */
    assert_int_equal(ship_backoff_ms(500, 30000, 1000, 30000), 30000);
    assert_true(ship_backoff_ms(500, 30000, UINT32_MAX, UINT32_MAX) <= 30000);
    assert_int_equal(ship_backoff_ms(4000000000u, 4000000000u, 40, 3999999999u), 3999999999u);
}

static bool six_reconnects(struct fixture *fx)
{
    return stats_of(fx).reconnects >= 6;
}

static void test_ship_backoff_schedules_growing_delays(void **state)
{
    struct fixture *fx = *state;
    uint32_t seen[8] = {0};
    uint64_t last = 0;
    int64_t t0, elapsed;

    use_collectors(fx, 1, fx->refused_addr);
    t0 = tm_time_mono_ms();
    start_ship(fx);
    /* Record the delay chosen after each failure (each takes at least one loop turn). */
    while (stats_of(fx).reconnects < 6 && tm_time_mono_ms() < t0 + WAIT_MS) {
        struct ship_stats st = stats_of(fx);
        if (st.reconnects != last && st.reconnects <= 8) {
            seen[st.reconnects - 1] = st.last_backoff_ms;
            last = st.reconnects;
        }
        event_base_loop(fx->base, EVLOOP_ONCE);
    }
    assert_true(six_reconnects(fx));
    /* Each step's largest delay (see fx->rnd): doubling, then capped at 80. */
    for (int i = 0; i < 6; i++) {
        static const uint32_t want[] = {10, 20, 40, 80, 80, 80};
        if (seen[i] != 0)
            assert_int_equal(seen[i], want[i]);
    }
    assert_int_equal(stats_of(fx).last_backoff_ms, 80);
    /*
     * They were waited for: 10 + 20 + 40 + 80 + 80 ms before the 6th failure, give or take
     * libevent's cached loop time (a timer added in a callback starts at the loop's wake-up).
     */
    elapsed = tm_time_mono_ms() - t0;
    if (elapsed < 200)
        fail_msg("6 failures took %lld ms, expected about 230", (long long)elapsed);
    assert_true(stats_of(fx).connect_errors >= 6);
    assert_int_equal(stats_of(fx).events_acked, 0);
    assert_non_null(strstr(stats_of(fx).last_error, fx->refused_addr));
}

static void test_ship_ships_in_order_priority_first(void **state)
{
    struct fixture *fx = *state;
    char names[2048];
    struct ship_stats st;

    server_start(&fx->srv[0], fx->base, NULL);
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.max_window_events = 3;
    spool_put(fx->spool, SPOOL_BULK, "b1");
    spool_put(fx->spool, SPOOL_PRIORITY, "p1");
    spool_put(fx->spool, SPOOL_BULK, "b2");
    spool_put(fx->spool, SPOOL_BULK, "b3");
    spool_put(fx->spool, SPOOL_PRIORITY, "p2");
    spool_put(fx->spool, SPOOL_BULK, "b4");
    spool_put(fx->spool, SPOOL_PRIORITY, "p3");
    spool_put(fx->spool, SPOOL_PRIORITY, "p4");
    spool_put(fx->spool, SPOOL_BULK, "b5");
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    event_names(&fx->srv[0], names, sizeof(names), false);
    assert_string_equal(names, "p1 p2 p3 p4 b1 b2 b3 b4 b5");
    /* Windows: p1-p3, p4, b1-b3, b4-b5 (a window never mixes lanes). */
    assert_int_equal(fx->srv[0].windows, 4);
    st = stats_of(fx);
    assert_int_equal(st.events_acked, 9);
    assert_int_equal(st.windows_sent, 4);
    assert_int_equal(st.reconnects, 0);
    assert_true(st.connected);
    assert_string_equal(st.collector, fx->srv[0].addr);
    assert_int_equal(fx->spool->backwards_acks, 0);
    assert_true(fx->srv[0].compressed_windows >= 1);
}

static void test_ship_window_bytes_are_capped(void **state)
{
    struct fixture *fx = *state;
    char name[FAKE_DATA];
    struct ship_stats st;

    server_start(&fx->srv[0], fx->base, NULL);
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.max_window_bytes = 1024;
    /* 20 events of 130 bytes: 7 fit in 1024 bytes, so windows of 7, 7 and 6. */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "%02d-%0116d", i, 0);
        spool_put(fx->spool, SPOOL_BULK, name);
    }
    assert_int_equal(fx->spool->ev[SPOOL_BULK][0].len, 130);
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    assert_int_equal(fx->srv[0].windows, 3);
    assert_int_equal(fx->srv[0].max_window_json, 7 * 130);
    st = stats_of(fx);
    assert_int_equal(st.windows_sent, 3);
    assert_int_equal(st.events_acked, 20);
}

/* When b1 reaches the collector, a priority event is spooled (as a manual report would). */
static void late_priority_on_event(struct server *srv, const struct rec *r)
{
    struct fixture *fx = srv->arg;

    if (strcmp(r->name, "b1") == 0) {
        spool_put(fx->spool, SPOOL_PRIORITY, "urgent");
        ship_kick(fx->ship);
    }
}

static void test_ship_priority_overtakes_bulk_between_windows(void **state)
{
    struct fixture *fx = *state;
    char names[2048];

    server_start(&fx->srv[0], fx->base, NULL);
    fx->srv[0].on_event = late_priority_on_event;
    fx->srv[0].arg = fx;
    fx->srv[0].ack_delay_ms = 30;
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.max_window_events = 2;
    for (int i = 1; i <= 6; i++) {
        char n[8];
        snprintf(n, sizeof(n), "b%d", i);
        spool_put(fx->spool, SPOOL_BULK, n);
    }
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    event_names(&fx->srv[0], names, sizeof(names), false);
    /* The bulk window in flight finishes, then the priority event goes next. */
    assert_string_equal(names, "b1 b2 urgent b3 b4 b5 b6");
}

static void test_ship_partial_acks_advance_the_spool(void **state)
{
    struct fixture *fx = *state;
    uint64_t want[4];
    struct ship_stats st;

    server_start(&fx->srv[0], fx->base, NULL);
    fx->srv[0].ack_every = 3;
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.max_window_events = 10;
    spool_put(fx->spool, SPOOL_PRIORITY, "p0"); /* seq 1: makes bulk seqs not start at 1 */
    for (int i = 1; i <= 10; i++) {
        char n[8];
        snprintf(n, sizeof(n), "e%d", i);
        spool_put(fx->spool, SPOOL_BULK, n);
    }
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    /* Acks 3, 3, 6, 6, 9, 9, 10: the spool hears of events 3, 6, 9 and 10 once each. */
    want[0] = fx->spool->ev[SPOOL_BULK][2].seq;
    want[1] = fx->spool->ev[SPOOL_BULK][5].seq;
    want[2] = fx->spool->ev[SPOOL_BULK][8].seq;
    want[3] = fx->spool->ev[SPOOL_BULK][9].seq;
    assert_int_equal(fx->spool->nacks[SPOOL_BULK], 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(fx->spool->ack_log[SPOOL_BULK][i], want[i]);
    assert_int_equal(fx->spool->backwards_acks, 0);
    st = stats_of(fx);
    assert_int_equal(st.events_acked, 11);
    assert_int_equal(st.reconnects, 0);
}

static void test_ship_resends_from_acked_position_after_close(void **state)
{
    struct fixture *fx = *state;
    char names[2048];
    struct ship_stats st;

    server_start(&fx->srv[0], fx->base, NULL);
    /* First connection: ack 4 of the window, read 6, then hang up. */
    fx->srv[0].close_conn = 0;
    fx->srv[0].close_after = 6;
    fx->srv[0].close_ack = 4;
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.max_window_events = 10;
    for (int i = 1; i <= 10; i++) {
        char n[8];
        snprintf(n, sizeof(n), "e%d", i);
        spool_put(fx->spool, SPOOL_BULK, n);
    }
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    event_names(&fx->srv[0], names, sizeof(names), true);
    /* Duplicates only of what was not acked (e5, e6); nothing skipped. */
    assert_string_equal(names, "e1@0 e2@0 e3@0 e4@0 e5@0 e6@0 "
                               "e5@1 e6@1 e7@1 e8@1 e9@1 e10@1");
    assert_int_equal(fx->spool->ack_log[SPOOL_BULK][0], fx->spool->ev[SPOOL_BULK][3].seq);
    assert_int_equal(fx->spool->backwards_acks, 0);
    st = stats_of(fx);
    assert_int_equal(st.events_acked, 10);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.windows_sent, 2);
    assert_non_null(strstr(st.last_error, "closed the connection with a window in flight"));
}

static bool server1_has_all(struct fixture *fx)
{
    return all_acked(fx) && fx->srv[1].nrecs >= 3;
}

static void test_ship_fails_over_and_resets_backoff(void **state)
{
    struct fixture *fx = *state;
    struct ship_stats st;

    server_start(&fx->srv[1], fx->base, NULL);
    use_collectors(fx, 2, fx->refused_addr, fx->srv[1].addr);
    for (int i = 1; i <= 3; i++) {
        char n[8];
        snprintf(n, sizeof(n), "e%d", i);
        spool_put(fx->spool, SPOOL_BULK, n);
    }
    start_ship(fx);
    assert_true(run_until(fx, server1_has_all));
    st = stats_of(fx);
    assert_int_equal(st.connect_errors, 1);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.last_backoff_ms, 10); /* first failure: ceiling = base */
    assert_string_equal(st.collector, fx->srv[1].addr);
    assert_non_null(strstr(st.last_error, fx->refused_addr));
    assert_true(st.connected);

    /*
     * The second collector goes away: the failure count was reset by the acks, so the
     * delay is again at most the base; then the refused one is tried and fails too.
     */
    server_stop(&fx->srv[1]);
    assert_true(run_until(fx, six_reconnects));
    st = stats_of(fx);
    assert_false(st.connected);
    assert_true(st.last_backoff_ms <= 80);
    assert_true(st.last_backoff_ms > 10);
}

static bool got_one_window(struct fixture *fx)
{
    return fx->srv[0].nrecs >= 2;
}

static void test_ship_backoff_restarts_at_base_after_ack(void **state)
{
    struct fixture *fx = *state;

    server_start(&fx->srv[0], fx->base, NULL);
    use_collectors(fx, 1, fx->srv[0].addr);
    spool_put(fx->spool, SPOOL_BULK, "e1");
    spool_put(fx->spool, SPOOL_BULK, "e2");
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    assert_true(got_one_window(fx));
    /* The collector hangs up an idle, healthy connection. */
    sconn_free(fx->srv[0].conn);
    run_for(fx, 50);
    assert_int_equal(stats_of(fx).reconnects, 1);
    assert_int_equal(stats_of(fx).last_backoff_ms, 10);
}

static bool two_connections_all_acked(struct fixture *fx)
{
    return all_acked(fx) && fx->srv[0].connections >= 2;
}

static void test_ship_ack_timeout_reconnects(void **state)
{
    struct fixture *fx = *state;
    char names[512];
    struct ship_stats st;

    server_start(&fx->srv[0], fx->base, NULL);
    fx->srv[0].silent_conn = 0;
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.ack_timeout_ms = 150;
    spool_put(fx->spool, SPOOL_BULK, "e1");
    spool_put(fx->spool, SPOOL_BULK, "e2");
    start_ship(fx);
    assert_true(run_until(fx, two_connections_all_acked));
    event_names(&fx->srv[0], names, sizeof(names), true);
    assert_string_equal(names, "e1@0 e2@0 e1@1 e2@1");
    st = stats_of(fx);
    assert_int_equal(st.ack_timeouts, 1);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.events_acked, 2);
    assert_non_null(strstr(st.last_error, "no ack for 150 ms"));
}

static void test_ship_keepalive_acks_hold_the_window(void **state)
{
    struct fixture *fx = *state;
    struct ship_stats st;
    int64_t t0 = tm_time_mono_ms();

    server_start(&fx->srv[0], fx->base, NULL);
    fx->srv[0].keepalives = 8; /* 8 x 50 ms of ack(0) before the real ack: 400 ms */
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.ack_timeout_ms = 150;
    spool_put(fx->spool, SPOOL_BULK, "e1");
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    assert_true(tm_time_mono_ms() - t0 >= 350);
    st = stats_of(fx);
    assert_int_equal(st.ack_timeouts, 0);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(fx->srv[0].connections, 1);
}

static bool got_events(struct fixture *fx)
{
    return fx->srv[0].nrecs >= 1;
}

static void test_ship_kick_sends_promptly(void **state)
{
    struct fixture *fx = *state;
    int64_t t0;

    server_start(&fx->srv[0], fx->base, NULL);
    use_collectors(fx, 1, fx->srv[0].addr);
    start_ship(fx);
    assert_true(run_until(fx, connected));
    run_for(fx, 30);
    assert_int_equal(fx->srv[0].nrecs, 0);
    spool_put(fx->spool, SPOOL_BULK, "e1");
    ship_kick(fx->ship);
    t0 = tm_time_mono_ms();
    assert_true(run_until(fx, all_acked));
    /* The poll timer is 60 s: only the kick can have sent it this fast. */
    assert_true(tm_time_mono_ms() - t0 < 1000);
    assert_true(got_events(fx));
}

static void hb_override_cb(void *arg, struct ship_heartbeat *hb)
{
    (void)arg;
    hb->uptime_s = 4242;
    snprintf(hb->last_error, sizeof(hb->last_error), "cannot open '/var/log/x': gone");
}

static bool got_heartbeat(struct fixture *fx)
{
    for (int i = 0; i < fx->srv[0].nrecs; i++)
        if (fx->srv[0].recs[i].heartbeat)
            return stats_of(fx).heartbeats_acked >= 1;
    return false;
}

static void check_heartbeat_json(const char *payload, uint64_t uptime, uint64_t spool_events,
                                 uint64_t spool_bytes, uint64_t lost, uint64_t next_seq,
                                 const char *last_error)
{
    static const char *const keys[] = {"type",        "schema",   "agent",        "version",
                                       "ts",          "uptime_s", "spool_events", "spool_bytes",
                                       "lost_events", "next_seq", "last_error"};
    json_error_t jerr;
    json_t *o = json_loads(payload, 0, &jerr);
    const char *ts;
    int64_t ms;
    size_t i = 0;
    const char *key;
    json_t *v;

    assert_non_null(o);
    assert_int_equal(strncmp(payload,
                             "{\"type\":\"tm.heartbeat\",\"schema\":1,\"agent\":\"agent-7\","
                             "\"version\":\"1.2.3\",\"ts\":\"",
                             strlen("{\"type\":\"tm.heartbeat\",\"schema\":1,\"agent\":"
                                    "\"agent-7\",\"version\":\"1.2.3\",\"ts\":\"")),
                     0);
    json_object_foreach(o, key, v)
    {
        assert_true(i < TM_ARRAY_LEN(keys));
        assert_string_equal(key, keys[i]);
        i++;
    }
    assert_int_equal(i, TM_ARRAY_LEN(keys));
    ts = json_string_value(json_object_get(o, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), TM_TIME_LEN - 1);
    assert_int_equal(tm_time_parse(ts, strlen(ts), &ms), 0);
    assert_true(ms > tm_time_now_ms() - 60000 && ms <= tm_time_now_ms());
    assert_int_equal(json_integer_value(json_object_get(o, "uptime_s")), uptime);
    assert_int_equal(json_integer_value(json_object_get(o, "spool_events")), spool_events);
    assert_int_equal(json_integer_value(json_object_get(o, "spool_bytes")), spool_bytes);
    assert_int_equal(json_integer_value(json_object_get(o, "lost_events")), lost);
    assert_int_equal(json_integer_value(json_object_get(o, "next_seq")), next_seq);
    assert_string_equal(json_string_value(json_object_get(o, "last_error")), last_error);
    json_decref(o);
}

static void test_ship_heartbeat_content(void **state)
{
    struct fixture *fx = *state;
    const struct rec *hb = NULL;

    server_start(&fx->srv[0], fx->base, NULL);
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.heartbeat_interval_ms = 40;
    fx->spool->lost = 7;
    fx->spool->next_seq = 1234;
    start_ship(fx);
    assert_true(run_until(fx, got_heartbeat));
    for (int i = 0; i < fx->srv[0].nrecs && hb == NULL; i++)
        if (fx->srv[0].recs[i].heartbeat)
            hb = &fx->srv[0].recs[i];
    assert_non_null(hb);
    assert_int_equal(hb->window, 1);
    assert_int_equal(hb->seq, 1);
    check_heartbeat_json(hb->payload, 0, 0, 0, 7, 1234, "");
    /* Heartbeats never reach the spool. */
    assert_int_equal(fx->spool->nacks[SPOOL_BULK] + fx->spool->nacks[SPOOL_PRIORITY], 0);
    assert_int_equal(stats_of(fx).events_acked, 0);
}

static void test_ship_heartbeat_numbers_from_spool_and_callback(void **state)
{
    struct fixture *fx = *state;
    const struct rec *hb = NULL;

    server_start(&fx->srv[0], fx->base, NULL);
    fx->srv[0].silent_conn = 0; /* events stay unacked, so they count as spooled */
    use_collectors(fx, 2, fx->srv[0].addr, fx->srv[0].addr);
    fx->cfg.heartbeat_interval_ms = 40;
    fx->cfg.ack_timeout_ms = 100;
    fx->cfg.heartbeat_cb = hb_override_cb;
    spool_put(fx->spool, SPOOL_BULK, "e1");
    spool_put(fx->spool, SPOOL_PRIORITY, "p22");
    start_ship(fx);
    /* Connection 0 times out (the window waits: no heartbeat inside it); 1 acks all. */
    assert_true(run_until(fx, got_heartbeat));
    for (int i = 0; i < fx->srv[0].nrecs && hb == NULL; i++)
        if (fx->srv[0].recs[i].heartbeat)
            hb = &fx->srv[0].recs[i];
    assert_non_null(hb);
    assert_int_equal(hb->conn, 1);
    /* Spool numbers are read when the heartbeat is built: after both events were acked. */
    check_heartbeat_json(hb->payload, 4242, 0, 0, 0, 3, "cannot open '/var/log/x': gone");
}

static bool many_windows_and_heartbeats(struct fixture *fx)
{
    return all_acked(fx) && stats_of(fx).heartbeats_acked >= 3;
}

static void test_ship_heartbeat_only_between_windows(void **state)
{
    struct fixture *fx = *state;
    int heartbeats = 0;

    server_start(&fx->srv[0], fx->base, NULL);
    fx->srv[0].ack_delay_ms = 40; /* windows stay in flight longer than a heartbeat period */
    fx->srv[0].ack_every = 2;
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.heartbeat_interval_ms = 15;
    fx->cfg.max_window_events = 5;
    for (int i = 1; i <= 30; i++) {
        char n[8];
        snprintf(n, sizeof(n), "e%d", i);
        spool_put(fx->spool, SPOOL_BULK, n);
    }
    start_ship(fx);
    if (!run_until(fx, many_windows_and_heartbeats)) {
        struct ship_stats st = stats_of(fx);
        fail_msg("acked %llu events, %llu heartbeats (%llu sent), %llu reconnects, '%s'",
                 (unsigned long long)st.events_acked, (unsigned long long)st.heartbeats_acked,
                 (unsigned long long)st.heartbeats_sent, (unsigned long long)st.reconnects,
                 st.last_error);
    }
    for (int i = 0; i < fx->srv[0].nrecs; i++) {
        const struct rec *r = &fx->srv[0].recs[i];
        if (!r->heartbeat) {
            assert_int_equal(r->window, 5);
            continue;
        }
        heartbeats++;
        assert_int_equal(r->window, 1);
        assert_int_equal(r->seq, 1);
        assert_true(r->complete_w); /* the window before it had all its events */
        if (i > 0 && !fx->srv[0].recs[i - 1].heartbeat)
            assert_int_equal(fx->srv[0].recs[i - 1].seq, 5);
    }
    assert_true(heartbeats >= 3);
    assert_int_equal(stats_of(fx).events_acked, 30);
    assert_int_equal(stats_of(fx).reconnects, 0);
}

/* ---- TLS ---------------------------------------------------------------------------- */

static int pki_setup(void **state)
{
    char cmd[4096];
    (void)state;

    snprintf(pki.dir, sizeof(pki.dir), "%s", "/tmp/tm-test-ship.XXXXXX");
    if (mkdtemp(pki.dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; "
             "for ca in ca evil; do "
             "  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "    -subj \"/CN=$ca test CA\" -keyout $ca.key -out $ca.crt 2>/dev/null; done; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "  -subj /CN=collector.test -keyout server.key -out server.csr 2>/dev/null; "
             "printf 'subjectAltName=DNS:collector.test,IP:127.0.0.1\\n' > server.ext; "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "  -days 2 -extfile server.ext -out server.crt 2>/dev/null; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "  -subj /CN=agent.vodokanal.test -keyout agent.key -out agent.csr 2>/dev/null; "
             "openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "  -days 2 -out agent.crt 2>/dev/null",
             pki.dir);
    pki.ok = system(cmd) == 0;
    if (!pki.ok)
        print_message("openssl command line failed: TLS tests will be skipped\n");
    return 0;
}

static int pki_teardown(void **state)
{
    char cmd[256];
    (void)state;

    if (pki.dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki.dir);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

static const char *pki_path(const char *name)
{
    static char paths[8][128];
    static int next;
    char *p = paths[next++ % 8];

    snprintf(p, 128, "%s/%s", pki.dir, name);
    return p;
}

static void start_tls_server(struct fixture *fx)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, pki_path("server.crt")), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, pki_path("server.key"), SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, pki_path("ca.crt"), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    fx->server_tls = ctx;
    server_start(&fx->srv[0], fx->base, ctx);
    use_collectors(fx, 1, fx->srv[0].addr);
    fx->cfg.tls_ca = pki_path("ca.crt");
    fx->cfg.tls_cert = pki_path("agent.crt");
    fx->cfg.tls_key = pki_path("agent.key");
    fx->cfg.tls_verify_name = true;
    spool_put(fx->spool, SPOOL_BULK, "e1");
    spool_put(fx->spool, SPOOL_PRIORITY, "p1");
}

static void test_ship_tls_with_client_certificate(void **state)
{
    struct fixture *fx = *state;
    char names[256];

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
    event_names(&fx->srv[0], names, sizeof(names), false);
    assert_string_equal(names, "p1 e1");
    assert_int_equal(fx->srv[0].tls_verified_clients, 1);
    assert_int_equal(stats_of(fx).reconnects, 0);
}

static void test_ship_tls_checks_dns_name(void **state)
{
    struct fixture *fx = *state;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    fx->cfg.tls_server_name = "collector.test";
    start_ship(fx);
    assert_true(run_until(fx, all_acked));
}

static bool failed_twice(struct fixture *fx)
{
    return stats_of(fx).connect_errors >= 2;
}

static void expect_refused(struct fixture *fx, const char *why)
{
    struct ship_stats st;

    start_ship(fx);
    assert_true(run_until(fx, failed_twice));
    run_for(fx, 50);
    st = stats_of(fx);
    assert_false(st.connected);
    assert_int_equal(st.events_acked, 0);
    assert_int_equal(fx->srv[0].nrecs, 0);
    assert_int_equal(fx->spool->acked[SPOOL_BULK] + fx->spool->acked[SPOOL_PRIORITY], 0);
    if (strstr(st.last_error, why) == NULL)
        fail_msg("last error '%s' does not say '%s'", st.last_error, why);
}

static void test_ship_tls_wrong_ca_is_refused(void **state)
{
    struct fixture *fx = *state;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    fx->cfg.tls_ca = pki_path("evil.crt");
    expect_refused(fx, "certificate verify failed");
}

static void test_ship_tls_wrong_name_is_refused(void **state)
{
    struct fixture *fx = *state;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    fx->cfg.tls_server_name = "other.test";
    expect_refused(fx, "certificate verify failed");
}

/* An IP literal must be one of the certificate's IP SANs (it names 127.0.0.1 only). */
static void test_ship_tls_wrong_ip_is_refused(void **state)
{
    struct fixture *fx = *state;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    fx->cfg.tls_server_name = "127.0.0.9";
    expect_refused(fx, "certificate verify failed");
}

/* Only ECDHE with an AEAD cipher: a collector offering CBC suites alone is refused. */
static void test_ship_tls_weak_cipher_is_refused(void **state)
{
    struct fixture *fx = *state;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    assert_int_equal(SSL_CTX_set_max_proto_version(fx->server_tls, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_CTX_set_cipher_list(fx->server_tls, "ECDHE-ECDSA-AES128-SHA256"), 1);
    expect_refused(fx, "no TLS version or cipher in common");
}

/* The test collector's verify callback: every client certificate is revoked. */
static int revoke_every_client(int ok, X509_STORE_CTX *x)
{
    if (ok && X509_STORE_CTX_get_error_depth(x) == 0) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REVOKED);
        return 0;
    }
    return ok;
}

/* A collector that refuses the certificate in the handshake: the agent says why. */
static void test_ship_tls_revoked_certificate_is_named(void **state)
{
    struct fixture *fx = *state;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    SSL_CTX_set_verify(fx->server_tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       revoke_every_client);
    expect_refused(fx, "TLS alert 44 (this agent's certificate is revoked");
}

static bool failed_or_closed_twice(struct fixture *fx)
{
    return stats_of(fx).reconnects >= 2;
}

static void test_ship_tls_without_client_certificate_is_refused(void **state)
{
    struct fixture *fx = *state;
    struct ship_stats st;

    if (!pki.ok)
        skip();
    start_tls_server(fx);
    fx->cfg.tls_cert = NULL;
    fx->cfg.tls_key = NULL;
    start_ship(fx);
    /* With TLS 1.3 the client may count the handshake done before the server's alert. */
    assert_true(run_until(fx, failed_or_closed_twice));
    st = stats_of(fx);
    assert_int_equal(st.events_acked, 0);
    assert_int_equal(fx->srv[0].nrecs, 0);
    assert_int_equal(fx->spool->acked[SPOOL_BULK] + fx->spool->acked[SPOOL_PRIORITY], 0);
}

static bool connect_failed(struct fixture *fx)
{
    return stats_of(fx).connect_errors >= 1;
}

static void test_ship_tls_handshake_timeout(void **state)
{
    struct fixture *fx = *state;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char addr[64];
    int fd;

    if (!pki.ok)
        skip();
    /* Listens but never accepts: TCP connects, the ClientHello is never answered. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    use_collectors(fx, 1, addr);
    fx->cfg.tls_ca = pki_path("ca.crt");
    fx->cfg.connect_timeout_ms = 100;
    spool_put(fx->spool, SPOOL_BULK, "e1");
    start_ship(fx);
    assert_true(run_until(fx, connect_failed));
    assert_non_null(strstr(stats_of(fx).last_error, "timed out after 100 ms"));
    assert_false(stats_of(fx).connected);
    assert_int_equal(stats_of(fx).events_acked, 0);
    ship_destroy(fx->ship);
    fx->ship = NULL;
    close(fd);
}

static void test_ship_config_errors(void **state)
{
    struct fixture *fx = *state;
    char err[TM_ERR_LEN];
    struct ship_config cfg;
    const char *bad[] = {"no-port"};

    cfg = fx->cfg;
    cfg.ncollectors = 0;
    assert_null(ship_create(fx->base, fx->spool, &cfg, err));
    assert_string_equal(err, "no collectors");

    cfg = fx->cfg;
    cfg.collectors = bad;
    cfg.ncollectors = 1;
    assert_null(ship_create(fx->base, fx->spool, &cfg, err));
    assert_string_equal(err, "collector 'no-port': expected HOST:PORT");

    use_collectors(fx, 1, "127.0.0.1:1");
    cfg = fx->cfg;
    cfg.compression_level = 10;
    assert_null(ship_create(fx->base, fx->spool, &cfg, err));
    assert_non_null(strstr(err, "compression level"));

    cfg = fx->cfg;
    cfg.tls_ca = "/nonexistent/ca.pem";
    assert_null(ship_create(fx->base, fx->spool, &cfg, err));
    assert_non_null(strstr(err, "cannot load CA '/nonexistent/ca.pem'"));

    cfg = fx->cfg;
    cfg.tls_cert = "/x/agent.crt";
    assert_null(ship_create(fx->base, fx->spool, &cfg, err));
    assert_non_null(strstr(err, "needs its key"));

    cfg = fx->cfg;
    cfg.agent_id = "";
    assert_null(ship_create(fx->base, fx->spool, &cfg, err));
    assert_string_equal(err, "no agent id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ship_backoff_grows_and_is_bounded),
        cmocka_unit_test_setup_teardown(test_ship_backoff_schedules_growing_delays, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_ships_in_order_priority_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_window_bytes_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_priority_overtakes_bulk_between_windows, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_partial_acks_advance_the_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_resends_from_acked_position_after_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_fails_over_and_resets_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_backoff_restarts_at_base_after_ack, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_ack_timeout_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_keepalive_acks_hold_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_kick_sends_promptly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_heartbeat_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_heartbeat_numbers_from_spool_and_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_heartbeat_only_between_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_with_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_checks_dns_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_wrong_ca_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_wrong_name_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_wrong_ip_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_weak_cipher_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_revoked_certificate_is_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_without_client_certificate_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ship_tls_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_config_errors, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    tm_log_init("test_ship", getenv("TEST_SHIP_DEBUG") ? TM_LOG_DEBUG : TM_LOG_ERROR, false);
    return cmocka_run_group_tests_name("ship", tests, pki_setup, pki_teardown);
}
