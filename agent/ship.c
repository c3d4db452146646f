/*
 * ship.c - tm-agent's Lumberjack v2 client: spool -> window -> collector -> spool_ack.
 *
 * One connection at a time, to collectors[cur]. Once connected, pump() sends the next
 * window whenever none is in flight: a due heartbeat first, else up to max_window_events
 * (and max_window_bytes) events read from the priority lane, else from the bulk lane,
 * always starting at the lane's acknowledged position. A window goes out as a W frame and
 * one C frame holding its J frames. Its events' spool seqs are kept in win_seqs (the
 * window's J seq n is win_seqs[n - 1]); an ack for n calls spool_ack for win_seqs[n - 1],
 * so partial acks free the spool as they arrive. An ack not above the last one is a
 * keepalive: it only re-arms the ack timer. The next window goes out after the last ack.
 *
 * The window itself is not kept after it is written: after any failure (connect or TLS
 * error, EOF, ack timeout, protocol error) the connection is dropped, cur moves to the
 * next collector and a reconnect is scheduled with exponential backoff and full jitter;
 * the next window is read from the spool again, from its acknowledged position. So the
 * collector may see the unacked part of a window twice, never a gap. The backoff resets
 * after an ack that advances.
 *
 * Heartbeats: a timer marks one due every heartbeat_interval while connected (due marks
 * coalesce); pump() sends it as a window of its own when no window is in flight, and
 * never twice in a row while events wait. Collector names are resolved when connecting,
 * with tm_net_parse_addr's blocking getaddrinfo (addresses are usually IP literals).
 *
 * TLS (tls.c, mbedTLS) sits between the shipper and the socket bufferevent: after the TCP
 * connect the handshake runs as the collector's answers arrive, under the connect
 * timeout, and only then is the connection up; windows are encrypted into the
 * bufferevent's output, and what it reads is decrypted into tin before acks are parsed.
 *
 * Memory is bounded: win_seqs has max_window_events slots; the J frames of one window
 * (at most max_window_bytes plus frame headers, or one event) are built in `plain`,
 * compressed into `wire` and moved into the bufferevent; input holds at most a partial
 * ack (anything that is not an ack closes the connection).
 */
#include "ship.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "tm/tm_log.h"
#include "tm/tm_lumberjack.h"
#include "tm/tm_net.h"
#include "tm/tm_time.h"
#include "tls.h"

#define MAX_WINDOW_EVENTS 100000
#define MIN_WINDOW_BYTES 1024

enum conn_state { ST_WAITING, ST_CONNECTING, ST_CONNECTED };
enum win_kind { WIN_NONE, WIN_EVENTS, WIN_HEARTBEAT };

struct ship {
    struct event_base *base;
    struct spool *spool;
    struct ship_config cfg; /* strings used after create point to the copies below */
    char *agent_id, *version, *server_name;
    char collectors[SHIP_MAX_COLLECTORS][SHIP_ADDR_LEN];
    size_t ncollectors;
    size_t cur;
    struct tls_client *tls; /* NULL: plain TCP */

    enum conn_state state;
    struct bufferevent *bev;    /* the socket; over TLS it carries records */
    struct tls_conn *tconn;     /* with tls: this connection's TLS state */
    struct evbuffer *tin;       /* with tls: decrypted input, at most a partial ack */
    struct event *reconnect_ev; /* one-shot, the backoff */
    struct event *io_ev;        /* one-shot: connect/handshake timeout, then ack timeout */
    struct event *heartbeat_ev; /* persistent while connected */
    struct event *poll_ev;      /* persistent safety net */
    struct event *kick_ev;      /* activated by ship_kick */
    unsigned failures;          /* consecutive, for the backoff */
    uint64_t rng;
    bool heartbeat_due;
    bool last_was_heartbeat; /* the last acked window was a heartbeat */
    int64_t start_ms;

    /* The window in flight. */
    enum win_kind win_kind;
    enum spool_lane win_lane;
    uint32_t win_count;
    uint32_t win_acked;
    size_t win_bytes;
    uint64_t *win_seqs;
    bool build_failed;
    struct evbuffer *plain; /* J frames of the window being built */
    struct evbuffer *wire;  /* W + C frames, moved into the bufferevent */

    struct ship_stats stats;
};

static void pump(struct ship *s);

/* ---- configuration ---------------------------------------------------------------- */

void ship_config_default(struct ship_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->version = "";
    cfg->max_window_events = 1000;
    /* Stays under the collector's 1 MiB frame limit even when level 0 stores it. */
    cfg->max_window_bytes = 768 * 1024;
    cfg->compression_level = 3;
    cfg->connect_timeout_ms = 10000;
    cfg->ack_timeout_ms = 30000;
    cfg->backoff_base_ms = 500;
    cfg->backoff_max_ms = 30000;
    cfg->heartbeat_interval_ms = 30000;
    cfg->poll_interval_ms = 5000;
}

uint32_t ship_backoff_ms(uint32_t base_ms, uint32_t max_ms, unsigned failures, uint32_t rnd)
{
    uint64_t ceiling = (uint64_t)base_ms << (failures < 32 ? failures : 32);

    if (ceiling > max_ms)
        ceiling = max_ms;
    return (uint32_t)((uint64_t)rnd % (ceiling + 1));
}

/*
 * Splits "host:port" / "[v6]:port" into its host (brackets and zone removed). Returns 0,
 * or -1 when there is no ":port" or the host does not fit.
 */
static int addr_host(const char *addr, char *host, size_t hostlen)
{
    const char *end, *colon;
    size_t n;

    if (addr[0] == '[') {
        end = strchr(addr, ']');
        if (end == NULL || end[1] != ':' || end[2] == '\0')
            return -1;
        addr++;
        colon = memchr(addr, '%', (size_t)(end - addr));
        if (colon != NULL)
            end = colon;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || colon[1] == '\0')
            return -1;
        end = colon;
    }
    n = (size_t)(end - addr);
    if (n >= hostlen)
        return -1;
    memcpy(host, addr, n);
    host[n] = '\0';
    return 0;
}

static int check_config(const struct ship_config *cfg, char *err)
{
    char host[SHIP_ADDR_LEN];
    bool has_cert = cfg->tls_cert != NULL && cfg->tls_cert[0] != '\0';
    bool has_key = cfg->tls_key != NULL && cfg->tls_key[0] != '\0';

    if (cfg->agent_id == NULL || cfg->agent_id[0] == '\0')
        return tm_err(err, "no agent id");
    if (cfg->collectors == NULL || cfg->ncollectors == 0)
        return tm_err(err, "no collectors");
    if (cfg->ncollectors > SHIP_MAX_COLLECTORS)
        return tm_err(err, "%zu collectors, at most %d", cfg->ncollectors, SHIP_MAX_COLLECTORS);
    for (size_t i = 0; i < cfg->ncollectors; i++) {
        const char *c = cfg->collectors[i];
        if (c == NULL || strlen(c) >= SHIP_ADDR_LEN || addr_host(c, host, sizeof(host)) != 0)
            return tm_err(err, "collector '%s': expected HOST:PORT", c != NULL ? c : "");
    }
    if (cfg->max_window_events < 1 || cfg->max_window_events > MAX_WINDOW_EVENTS)
        return tm_err(err, "max window events %u out of range 1..%d", cfg->max_window_events,
                      MAX_WINDOW_EVENTS);
    if (cfg->max_window_bytes < MIN_WINDOW_BYTES)
        return tm_err(err, "max window bytes %u below %d", cfg->max_window_bytes, MIN_WINDOW_BYTES);
    if (cfg->compression_level < -1 || cfg->compression_level > 9)
        return tm_err(err, "compression level %d out of range -1..9", cfg->compression_level);
    if (cfg->connect_timeout_ms == 0 || cfg->ack_timeout_ms == 0)
        return tm_err(err, "connect and ack timeouts must be above 0");
    if (cfg->backoff_base_ms == 0 || cfg->backoff_max_ms < cfg->backoff_base_ms)
        return tm_err(err, "backoff needs 0 < base (%u ms) <= max (%u ms)", cfg->backoff_base_ms,
                      cfg->backoff_max_ms);
    if (has_cert != has_key)
        return tm_err(err, "a TLS client certificate needs its key and the other way round");
    if (has_cert && (cfg->tls_ca == NULL || cfg->tls_ca[0] == '\0'))
        return tm_err(err, "a TLS client certificate needs a CA file to check the collector");
    return 0;
}

/* ---- small helpers ---------------------------------------------------------------- */

static struct timeval ms_tv(uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static uint32_t next_random(struct ship *s)
{
    if (s->cfg.random_cb != NULL)
        return s->cfg.random_cb(s->cfg.cb_arg);
    /* xorshift64*: jitter only needs to be spread, not unpredictable. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (uint32_t)((s->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static const char *current(const struct ship *s)
{
    return s->collectors[s->cur];
}

static void set_error(struct ship *s, const char *fmt, ...) TM_PRINTF(2, 3);
static void set_error(struct ship *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->stats.last_error, sizeof(s->stats.last_error), fmt, ap);
    va_end(ap);
    tm_log_warn("ship: %s", s->stats.last_error);
}

static void arm_io(struct ship *s, uint32_t ms)
{
    struct timeval tv = ms_tv(ms);
    event_add(s->io_ev, &tv);
}

/* ---- connection lifecycle --------------------------------------------------------- */

static void drop_connection(struct ship *s)
{
    tls_conn_free(s->tconn);
    s->tconn = NULL;
    if (s->bev != NULL) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    evbuffer_drain(s->tin, evbuffer_get_length(s->tin));
    event_del(s->io_ev);
    event_del(s->heartbeat_ev);
    s->state = ST_WAITING;
    s->stats.connected = false;
    s->heartbeat_due = false;
    s->last_was_heartbeat = false;
    s->win_kind = WIN_NONE;
    s->win_count = 0;
    s->win_acked = 0;
    evbuffer_drain(s->plain, evbuffer_get_length(s->plain));
    evbuffer_drain(s->wire, evbuffer_get_length(s->wire));
}

static void schedule_reconnect(struct ship *s)
{
    uint32_t delay =
        ship_backoff_ms(s->cfg.backoff_base_ms, s->cfg.backoff_max_ms, s->failures, next_random(s));
    struct timeval tv = ms_tv(delay);

    if (s->failures < 64)
        s->failures++;
    s->stats.reconnects++;
    s->stats.last_backoff_ms = delay;
    tm_log_info("ship: next attempt in %u ms with '%s'", (unsigned)delay, current(s));
    event_add(s->reconnect_ev, &tv);
}

/*
 * Every failure ends here: the error is recorded, the connection and the window in
 * flight are dropped (the spool still holds its unacked events), and the next collector
 * is tried after the backoff. The caller must not touch the old bufferevent afterwards.
 */
static void conn_fail(struct ship *s, const char *fmt, ...) TM_PRINTF(2, 3);
static void conn_fail(struct ship *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->stats.last_error, sizeof(s->stats.last_error), fmt, ap);
    va_end(ap);
    tm_log_warn("ship: %s", s->stats.last_error);
    if (s->state == ST_CONNECTING)
        s->stats.connect_errors++;
    drop_connection(s);
    s->cur = (s->cur + 1) % s->ncollectors;
    snprintf(s->stats.collector, sizeof(s->stats.collector), "%s", current(s));
    schedule_reconnect(s);
}

/* Describes why the socket failed. */
static void describe_error(char *out, size_t outlen)
{
    int sock_err = EVUTIL_SOCKET_ERROR();

    if (sock_err != 0)
        snprintf(out, outlen, "%s", evutil_socket_error_to_string(sock_err));
    else
        snprintf(out, outlen, "connection failed");
}

static void fail_ack_bytes(struct ship *s)
{
    conn_fail(s, "collector '%s': sent bytes that are not an ack frame", current(s));
}

/* An ack for seq. Returns 0, or -1 when it closed the connection. */
static int on_ack(struct ship *s, uint32_t seq)
{
    char err[TM_ERR_LEN];

    if (s->win_kind == WIN_NONE) {
        tm_log_debug("ship: collector '%s': ack %u with no window in flight", current(s),
                     (unsigned)seq);
        return 0;
    }
    if (seq > s->win_count) {
        conn_fail(s, "collector '%s': ack %u beyond the window of %u", current(s), (unsigned)seq,
                  (unsigned)s->win_count);
        return -1;
    }
    if (seq <= s->win_acked) {
        arm_io(s, s->cfg.ack_timeout_ms); /* keepalive: still working on it */
        return 0;
    }
    if (s->win_kind == WIN_EVENTS) {
        if (spool_ack(s->spool, s->win_lane, s->win_seqs[seq - 1], err) != 0)
            set_error(s, "cannot ack seq %llu in the spool: %s",
                      (unsigned long long)s->win_seqs[seq - 1], err);
        s->stats.events_acked += seq - s->win_acked;
    }
    s->win_acked = seq;
    s->failures = 0;
    if (seq < s->win_count) {
        arm_io(s, s->cfg.ack_timeout_ms);
        return 0;
    }
    if (s->win_kind == WIN_HEARTBEAT)
        s->stats.heartbeats_acked++;
    s->last_was_heartbeat = s->win_kind == WIN_HEARTBEAT;
    s->win_kind = WIN_NONE;
    s->win_count = 0;
    s->win_acked = 0;
    event_del(s->io_ev);
    pump(s);
    return 0;
}

/* The connection is up (TCP, and TLS when on): windows may go. */
static void on_connected(struct ship *s)
{
    s->state = ST_CONNECTED;
    s->stats.connected = true;
    event_del(s->io_ev);
    if (s->cfg.heartbeat_interval_ms > 0) {
        struct timeval tv = ms_tv(s->cfg.heartbeat_interval_ms);
        event_add(s->heartbeat_ev, &tv);
    }
    tm_log_info("ship: connected to '%s'%s", current(s), s->tls != NULL ? " (tls)" : "");
    pump(s);
}

/*
 * Runs the TLS handshake as far as the input allows (the connect timeout still runs).
 * Returns 0 while it goes on or once connected, -1 when it failed (connection closed).
 */
static int tls_step(struct ship *s)
{
    char why[TM_ERR_LEN];
    int r = tls_conn_handshake(s->tconn, why, sizeof(why));

    if (r == TLS_AGAIN)
        return 0;
    if (r < 0) {
        conn_fail(s, "cannot connect to '%s' (tls): %s", current(s), why);
        return -1;
    }
    on_connected(s);
    return 0;
}

/*
 * Runs the handshake on, or decrypts what arrived into tin. Returns 0 when tin may hold
 * acks, -1 when the handshake still waits for the collector or the connection was closed.
 */
static int tls_input(struct ship *s)
{
    char buf[512], why[TM_ERR_LEN];
    int n;

    if (s->state == ST_CONNECTING && (tls_step(s) != 0 || s->state != ST_CONNECTED))
        return -1;
    while ((n = tls_conn_recv(s->tconn, buf, sizeof(buf), why, sizeof(why))) > 0)
        if (evbuffer_add(s->tin, buf, (size_t)n) != 0) {
            conn_fail(s, "collector '%s': out of memory", current(s));
            return -1;
        }
    if (n == 0) {
        conn_fail(s, "collector '%s' closed the connection%s", current(s),
                  s->win_kind != WIN_NONE ? " with a window in flight" : "");
        return -1;
    }
    if (n < 0 && n != TLS_AGAIN) {
        conn_fail(s, "connection to '%s' failed: %s", current(s), why);
        return -1;
    }
    return 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct ship *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t buf[TM_LJ_HEADER_ACK_LEN];
    uint32_t seq;

    if (s->tconn != NULL) {
        if (tls_input(s) != 0)
            return;
        in = s->tin;
    }
    while (s->bev == bev) {
        size_t n = evbuffer_get_length(in);
        int r;

        if (n == 0)
            return;
        if (n > sizeof(buf))
            n = sizeof(buf);
        if (evbuffer_copyout(in, buf, n) != (ev_ssize_t)n) {
            fail_ack_bytes(s);
            return;
        }
        r = tm_lj_read_ack(buf, n, &seq);
        if (r == TM_AGAIN)
            return;
        if (r != TM_LJ_HEADER_ACK_LEN) {
            fail_ack_bytes(s);
            return;
        }
        evbuffer_drain(in, TM_LJ_HEADER_ACK_LEN);
        if (on_ack(s, seq) != 0)
            return;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct ship *s = arg;
    char why[TM_ERR_LEN];

    if (bev != s->bev)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;

        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (s->tconn != NULL)
            tls_step(s); /* sends the hello; the rest comes with the collector's answers */
        else
            on_connected(s);
        return;
    }
    if ((what & BEV_EVENT_EOF) && s->tconn != NULL && s->state == ST_CONNECTING) {
        tls_conn_input_ended(s->tconn);
        tls_step(s); /* fails, saying the collector closed the TLS connection */
        return;
    }
    if (what & BEV_EVENT_EOF) {
        conn_fail(s, "collector '%s' closed the connection%s", current(s),
                  s->win_kind != WIN_NONE ? " with a window in flight" : "");
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        describe_error(why, sizeof(why));
        if (s->state == ST_CONNECTING)
            conn_fail(s, "cannot connect to '%s'%s: %s", current(s), s->tls != NULL ? " (tls)" : "",
                      why);
        else
            conn_fail(s, "connection to '%s' failed: %s", current(s), why);
    }
}

int ship_expected_name(const char *addr, const char *server_name, char *out, size_t outlen)
{
    if (server_name != NULL && server_name[0] != '\0')
        return tm_strlcpy(out, server_name, outlen);
    return addr_host(addr, out, outlen);
}

static void connect_current(struct ship *s)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    char err[TM_ERR_LEN], name[SHIP_ADDR_LEN];

    snprintf(s->stats.collector, sizeof(s->stats.collector), "%s", current(s));
    s->state = ST_CONNECTING;
    if (tm_net_parse_addr(current(s), &ss, &sslen, err) != 0) {
        conn_fail(s, "cannot connect to '%s': %s", current(s), err);
        return;
    }
    s->bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) {
        conn_fail(s, "cannot create a connection to '%s'", current(s));
        return;
    }
    if (s->tls != NULL) {
        bool check = s->cfg.tls_verify_name;
        if (check && ship_expected_name(current(s), s->server_name, name, sizeof(name)) != 0) {
            conn_fail(s, "cannot set up TLS for '%s': no name to expect", current(s));
            return;
        }
        s->tconn = tls_conn_new(s->tls, check ? name : NULL, err);
        if (s->tconn == NULL) {
            conn_fail(s, "cannot set up TLS for '%s': %s", current(s), err);
            return;
        }
        tls_conn_use_evbuffers(s->tconn, bufferevent_get_input(s->bev),
                               bufferevent_get_output(s->bev));
    }
    bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    arm_io(s, s->cfg.connect_timeout_ms);
    tm_log_debug("ship: connecting to '%s'", current(s));
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, (int)sslen) != 0)
        conn_fail(s, "cannot connect to '%s': %s", current(s),
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_current(arg);
}

static void io_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ship *s = arg;
    (void)fd;
    (void)what;

    if (s->state == ST_CONNECTING) {
        conn_fail(s, "cannot connect to '%s': timed out after %u ms", current(s),
                  (unsigned)s->cfg.connect_timeout_ms);
        return;
    }
    s->stats.ack_timeouts++;
    conn_fail(s, "collector '%s': no ack for %u ms (%u of %u acked)", current(s),
              (unsigned)s->cfg.ack_timeout_ms, (unsigned)s->win_acked, (unsigned)s->win_count);
}

/* ---- windows ---------------------------------------------------------------------- */

static int window_event_cb(uint64_t seq, const char *data, size_t len, void *arg)
{
    struct ship *s = arg;

    if (s->win_count >= s->cfg.max_window_events)
        return 1;
    if (s->win_count > 0 && s->win_bytes + len > s->cfg.max_window_bytes)
        return 1;
    if (tm_lj_write_json(s->plain, s->win_count + 1, data, len) != 0) {
        s->build_failed = true;
        return 1;
    }
    s->win_seqs[s->win_count++] = seq;
    s->win_bytes += len;
    return 0;
}

/* Compresses the J frames in plain behind a W frame and writes them. Returns 0 or -1. */
static int write_window(struct ship *s)
{
    size_t len = evbuffer_get_length(s->plain);
    char why[TM_ERR_LEN];
    int rc = -1;

    if (tm_lj_write_window(s->wire, s->win_count) != 0 ||
        tm_lj_write_compressed(s->wire, evbuffer_pullup(s->plain, -1), len,
                               s->cfg.compression_level) != 0) {
        conn_fail(s, "cannot queue a window for '%s': out of memory", current(s));
        goto out;
    }
    if (s->tconn != NULL ? tls_conn_send_buffer(s->tconn, s->wire, why, sizeof(why)) != 0
                         : bufferevent_write_buffer(s->bev, s->wire) != 0) {
        conn_fail(s, "cannot queue a window for '%s': %s", current(s),
                  s->tconn != NULL ? why : "out of memory");
        goto out;
    }
    arm_io(s, s->cfg.ack_timeout_ms);
    rc = 0;
out:
    evbuffer_drain(s->plain, evbuffer_get_length(s->plain));
    evbuffer_drain(s->wire, evbuffer_get_length(s->wire));
    return rc;
}

/* Sends the next window of a lane. Returns 1 when one was sent, 0 when the lane is empty. */
static int send_lane(struct ship *s, enum spool_lane lane)
{
    char err[TM_ERR_LEN];
    long n;

    s->win_count = 0;
    s->win_acked = 0;
    s->win_bytes = 0;
    s->build_failed = false;
    evbuffer_drain(s->plain, evbuffer_get_length(s->plain));
    n = spool_read(s->spool, lane, 0, s->cfg.max_window_events, window_event_cb, s, err);
    if (n < 0 || s->build_failed) {
        if (n < 0)
            set_error(s, "cannot read the %s lane of the spool: %s",
                      lane == SPOOL_PRIORITY ? "priority" : "bulk", err);
        else
            set_error(s, "cannot build a window: out of memory");
        s->win_count = 0;
        evbuffer_drain(s->plain, evbuffer_get_length(s->plain));
        return -1;
    }
    if (s->win_count == 0)
        return 0;
    s->win_kind = WIN_EVENTS;
    s->win_lane = lane;
    if (write_window(s) != 0)
        return -1;
    s->stats.windows_sent++;
    tm_log_debug("ship: window of %u %s events (seq %llu..%llu) to '%s'", (unsigned)s->win_count,
                 lane == SPOOL_PRIORITY ? "priority" : "bulk", (unsigned long long)s->win_seqs[0],
                 (unsigned long long)s->win_seqs[s->win_count - 1], current(s));
    return 1;
}

static int json_set_str(json_t *o, const char *key, const char *v)
{
    json_t *j = json_string(v);

    if (j == NULL) /* not UTF-8: say nothing rather than something broken */
        j = json_string("");
    return json_object_set_new(o, key, j);
}

static int json_set_u64(json_t *o, const char *key, uint64_t v)
{
    return json_object_set_new(o, key, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

/* The heartbeat object, keys in the documented order. Returns a malloc'd string or NULL. */
static char *heartbeat_json(struct ship *s)
{
    struct ship_heartbeat hb;
    struct spool_stats st;
    char ts[TM_TIME_LEN];
    json_t *o = NULL;
    char *text = NULL;

    memset(&hb, 0, sizeof(hb));
    spool_get_stats(s->spool, &st);
    hb.uptime_s = (uint64_t)((tm_time_mono_ms() - s->start_ms) / 1000);
    for (int i = 0; i < SPOOL_LANES; i++) {
        hb.spool_events += st.depth_events[i];
        hb.spool_bytes += st.depth_bytes[i];
    }
    hb.lost_events = st.lost_events;
    hb.next_seq = st.next_seq;
    snprintf(hb.last_error, sizeof(hb.last_error), "%s", s->stats.last_error);
    if (s->cfg.heartbeat_cb != NULL)
        s->cfg.heartbeat_cb(s->cfg.cb_arg, &hb);
    hb.last_error[sizeof(hb.last_error) - 1] = '\0';
    if (tm_time_format(tm_time_now_ms(), ts, sizeof(ts)) != 0)
        goto out;
    o = json_object();
    if (o == NULL || json_set_str(o, "type", "tm.heartbeat") != 0 ||
        json_set_u64(o, "schema", 1) != 0 || json_set_str(o, "agent", s->agent_id) != 0 ||
        json_set_str(o, "version", s->version) != 0 || json_set_str(o, "ts", ts) != 0 ||
        json_set_u64(o, "uptime_s", hb.uptime_s) != 0 ||
        json_set_u64(o, "spool_events", hb.spool_events) != 0 ||
        json_set_u64(o, "spool_bytes", hb.spool_bytes) != 0 ||
        json_set_u64(o, "lost_events", hb.lost_events) != 0 ||
        json_set_u64(o, "next_seq", hb.next_seq) != 0 ||
        json_set_str(o, "last_error", hb.last_error) != 0)
        goto out;
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(o);
    return text;
}

static int send_heartbeat(struct ship *s)
{
    char *text = heartbeat_json(s);
    int rc = -1;

    s->heartbeat_due = false;
    if (text == NULL || tm_lj_write_json(s->plain, 1, text, strlen(text)) != 0) {
        set_error(s, "cannot build a heartbeat: out of memory");
        goto out;
    }
    s->win_kind = WIN_HEARTBEAT;
    s->win_count = 1;
    s->win_acked = 0;
    if (write_window(s) != 0)
        goto out;
    s->stats.heartbeats_sent++;
    rc = 0;
out:
    free(text);
    return rc;
}

static bool idle(const struct ship *s)
{
    return s->state == ST_CONNECTED && s->win_kind == WIN_NONE;
}

/*
 * Sends the next window if the connection is up and idle: a due heartbeat, else priority
 * events, else bulk events, else a due heartbeat. A heartbeat never follows a heartbeat
 * while events wait, so heartbeats slower to ack than their interval cannot starve events.
 */
static void pump(struct ship *s)
{
    if (!idle(s))
        return;
    if (s->heartbeat_due && !s->last_was_heartbeat) {
        send_heartbeat(s);
        return;
    }
    if (send_lane(s, SPOOL_PRIORITY) == 0 && idle(s))
        send_lane(s, SPOOL_BULK);
    if (idle(s) && s->heartbeat_due)
        send_heartbeat(s);
}

static void heartbeat_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ship *s = arg;
    (void)fd;
    (void)what;

    s->heartbeat_due = true;
    pump(s);
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* ---- public ----------------------------------------------------------------------- */

struct ship *ship_create(struct event_base *base, struct spool *spool,
                         const struct ship_config *cfg, char *err)
{
    struct ship *s = NULL;
    struct timeval now = {0, 0}, poll;

    if (base == NULL || spool == NULL || cfg == NULL) {
        tm_err(err, "ship needs an event base, a spool and a configuration");
        return NULL;
    }
    if (check_config(cfg, err) != 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto oom;
    s->base = base;
    s->spool = spool;
    s->cfg = *cfg;
    s->cfg.tls_ca = s->cfg.tls_cert = s->cfg.tls_key = NULL; /* used only here */
    s->agent_id = strdup(cfg->agent_id);
    s->version = strdup(cfg->version != NULL ? cfg->version : "");
    s->server_name = strdup(cfg->tls_server_name != NULL ? cfg->tls_server_name : "");
    s->ncollectors = cfg->ncollectors;
    for (size_t i = 0; i < cfg->ncollectors; i++)
        snprintf(s->collectors[i], SHIP_ADDR_LEN, "%s", cfg->collectors[i]);
    s->win_seqs = calloc(cfg->max_window_events, sizeof(*s->win_seqs));
    s->plain = evbuffer_new();
    s->wire = evbuffer_new();
    s->tin = evbuffer_new();
    s->reconnect_ev = event_new(base, -1, 0, reconnect_cb, s);
    s->io_ev = event_new(base, -1, 0, io_timeout_cb, s);
    s->heartbeat_ev = event_new(base, -1, EV_PERSIST, heartbeat_timer_cb, s);
    s->poll_ev = event_new(base, -1, EV_PERSIST, pump_cb, s);
    s->kick_ev = event_new(base, -1, 0, pump_cb, s);
    if (s->agent_id == NULL || s->version == NULL || s->server_name == NULL ||
        s->win_seqs == NULL || s->plain == NULL || s->wire == NULL || s->tin == NULL ||
        s->reconnect_ev == NULL || s->io_ev == NULL || s->heartbeat_ev == NULL ||
        s->poll_ev == NULL || s->kick_ev == NULL)
        goto oom;
    if (cfg->tls_ca != NULL && cfg->tls_ca[0] != '\0' &&
        (s->tls = tls_client_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, err)) == NULL)
        goto fail;
    if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) != (ssize_t)sizeof(s->rng))
        s->rng = (uint64_t)tm_time_now_ms();
    s->rng |= 1; /* xorshift must not start at 0 */
    s->start_ms = tm_time_mono_ms();
    snprintf(s->stats.collector, sizeof(s->stats.collector), "%s", current(s));
    poll = ms_tv(cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 5000);
    if (event_add(s->poll_ev, &poll) != 0 || event_add(s->reconnect_ev, &now) != 0)
        goto oom;
    return s;
oom:
    tm_err(err, "cannot create the shipper: out of memory");
fail:
    ship_destroy(s);
    return NULL;
}

void ship_destroy(struct ship *s)
{
    if (s == NULL)
        return;
    tls_conn_free(s->tconn);
    if (s->bev != NULL)
        bufferevent_free(s->bev);
    if (s->kick_ev != NULL)
        event_free(s->kick_ev);
    if (s->poll_ev != NULL)
        event_free(s->poll_ev);
    if (s->heartbeat_ev != NULL)
        event_free(s->heartbeat_ev);
    if (s->io_ev != NULL)
        event_free(s->io_ev);
    if (s->reconnect_ev != NULL)
        event_free(s->reconnect_ev);
    if (s->wire != NULL)
        evbuffer_free(s->wire);
    if (s->plain != NULL)
        evbuffer_free(s->plain);
    if (s->tin != NULL)
        evbuffer_free(s->tin);
    tls_client_free(s->tls);
    free(s->win_seqs);
    free(s->server_name);
    free(s->version);
    free(s->agent_id);
    free(s);
}

void ship_kick(struct ship *s)
{
    if (s->state == ST_CONNECTED && s->win_kind == WIN_NONE)
        event_active(s->kick_ev, EV_TIMEOUT, 1);
}

void ship_get_stats(const struct ship *s, struct ship_stats *out)
{
    *out = s->stats;
}
