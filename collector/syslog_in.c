/*
 * syslog_in.c - syslog senders: TCP connections (RFC 6587) and UDP datagrams.
 *
 * TCP: the acceptor hands a socket to a worker, which makes a struct syslog_conn. Bytes
 * collect in the bufferevent's input buffer, whose read watermark (max_line plus room for
 * an octet count) bounds it; next_frame() cuts one message at a time, choosing the framing
 * per message as RFC 6587 section 3.4 says: a message that starts with a non-zero digit
 * and reads "LEN SP" is octet-counted (exactly LEN bytes follow), anything else ends at LF
 * (a CR before it, or a NUL instead of it, as some senders write, is dropped too). A frame
 * longer than max_line closes the connection after everything before it was ingested.
 * Each message goes to ingest with a ticket from the connection's small free list; syslog
 * has no acknowledgements, so tickets only have to come back before the connection is
 * freed: it lives until its socket is closed and in_flight is zero. A message ingest
 * cannot queue closes the connection, so the sender sees the loss.
 * Rate ([syslog] rate_per_sender): messages are charged to the operator's bucket (rate.h,
 * shared by all its connections and workers) every CHARGE_BATCH messages and at the end
 * of each read; while it is in debt the connection is not read, so the sender slows
 * down through TCP flow control and nothing is lost.
 *
 * UDP: one receiver per worker (a static table indexed by the worker's index, since the
 * worker struct has no slot for it), reading up to UDP_BATCH datagrams per wake-up into a
 * buffer of max_line bytes. Longer datagrams are cut and counted. UDP cannot push back, so
 * while the worker is paused by Kafka backpressure datagrams are read and counted as
 * dropped rather than left to overflow the kernel's buffer unseen. A datagram over its
 * operator's rate cannot be slowed down either: it is dropped, counted, and reported in
 * the log at most once a minute per operator. Each datagram's ticket is a small
 * allocation freed by its own done_cb, so the receiver can stop at any time.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector.h"
#include "rate.h"
#include "syslog_in.h"
#include "tls.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

/* Room above max_line in the input buffer: the octet count ("16777216") and its space. */
#define FRAME_HEADER_MAX 16
/* Digits of an octet count; more than this is not a count (max_line is below 10^9). */
#define COUNT_DIGITS_MAX 9
/* Spare tickets a connection keeps after a burst. */
#define SLOT_CACHE_MAX 256
/* Datagrams read per wake-up before other events get their turn. */
#define UDP_BATCH 256
/* Messages charged to the rate limiter at once (one lock and bucket lookup). */
#define CHARGE_BATCH 64
/* At most one log line per operator this often about its datagrams over the rate. */
#define UDP_RATE_REPORT_MS 60000

struct syslog_conn;

struct syslog_slot {
    struct kafka_ticket ticket; /* first member: the ticket pointer is the slot pointer */
    struct syslog_conn *conn;
    struct syslog_slot *next; /* in the connection's free list */
};

struct syslog_conn {
    struct conn_list link; /* first member: worker's pause list */
    struct worker *w;
    struct bufferevent *bev; /* NULL once closed */
    struct identity id;
    bool paused_by_worker;
    bool tls;
    bool identified;
    struct rate_throttle throttle; /* over its rate: reading waits for its timer */
    char peer[TM_ADDR_LEN];
    struct sockaddr_storage peer_sa;
    long in_flight;
    struct syslog_slot *free_slots;
    int nfree;
};

struct syslog_udp {
    struct worker *w;
    struct event *ev;
    char *buf;
    size_t cap;
    struct tm_counter *truncated;
    struct tm_counter *unknown_sender;
    struct tm_counter *dropped;      /* reason="backpressure" */
    struct tm_counter *dropped_rate; /* reason="rate" */
};

/* Written on the main thread before the workers start, read by each worker on its own. */
static struct syslog_udp *udp_receivers[COLLECTOR_MAX_WORKERS];

/* ---- framing ----------------------------------------------------------------------- */

static void strip_trailer(const char *p, size_t *len)
{
    while (*len > 0 && (p[*len - 1] == '\n' || p[*len - 1] == '\r' || p[*len - 1] == '\0'))
        (*len)--;
}

/*
 * Finds the first message in p[0..avail). eof says no more bytes will come, so an
 * unterminated last line is a message. Returns 0 with the message at p + *off, *len bytes
 * (0: an empty line, nothing to ingest), and *used bytes to drain; TM_AGAIN when more
 * bytes are needed; -1 with err when the frame breaks the max_line limit.
 */
static int next_frame(const char *p, size_t avail, size_t max_line, bool eof, size_t *off,
                      size_t *len, size_t *used, char *err)
{
    size_t i = 0, scan;
    const char *lf, *nul;

    if (p[0] >= '1' && p[0] <= '9') {
        uint64_t n = 0;

        while (i < avail && i <= COUNT_DIGITS_MAX && p[i] >= '0' && p[i] <= '9')
            n = n * 10 + (uint64_t)(p[i++] - '0');
        if (i == avail && i <= COUNT_DIGITS_MAX && !eof)
            return TM_AGAIN; /* still reading the count */
        if (i < avail && i <= COUNT_DIGITS_MAX && p[i] == ' ') {
            if (n > max_line)
                return tm_err(err, "octet-counted frame of %llu bytes over the limit of %zu",
                              (unsigned long long)n, max_line);
            if (avail - i - 1 < n) {
                if (eof)
                    return tm_err(err, "connection closed %zu bytes into a frame of %llu",
                                  avail - i - 1, (unsigned long long)n);
                return TM_AGAIN;
            }
            *off = i + 1;
            *len = (size_t)n;
            *used = i + 1 + (size_t)n;
            strip_trailer(p + *off, len);
            return 0;
        }
        /* Digits but no "LEN SP": a line that happens to start with a digit. */
    }
    scan = avail < max_line + 2 ? avail : max_line + 2; /* room for CR LF */
    lf = memchr(p, '\n', scan);
    nul = memchr(p, '\0', lf != NULL ? (size_t)(lf - p) : scan);
    if (nul != NULL)
        lf = nul;
    if (lf == NULL) {
        if (avail > max_line + 1)
            return tm_err(err, "line longer than the limit of %zu bytes", max_line);
        if (!eof)
            return TM_AGAIN;
        *off = 0;
        *len = avail;
        *used = avail;
        strip_trailer(p, len);
        return 0;
    }
    *off = 0;
    *len = (size_t)(lf - p);
    *used = *len + 1;
    strip_trailer(p, len);
    if (*len > max_line)
        return tm_err(err, "line of %zu bytes over the limit of %zu", *len, max_line);
    return 0;
}

/* ---- TCP --------------------------------------------------------------------------- */

static void conn_close(struct syslog_conn *c, const char *why);

static void conn_free_if_done(struct syslog_conn *c)
{
    struct syslog_slot *s, *next;

    if (c->bev != NULL || c->in_flight > 0)
        return;
    for (s = c->free_slots; s != NULL; s = next) {
        next = s->next;
        free(s);
    }
    free(c);
}

static void slot_put(struct syslog_conn *c, struct syslog_slot *s)
{
    if (c->nfree >= SLOT_CACHE_MAX) {
        free(s);
        return;
    }
    s->next = c->free_slots;
    c->free_slots = s;
    c->nfree++;
}

static struct syslog_slot *slot_get(struct syslog_conn *c)
{
    struct syslog_slot *s = c->free_slots;

    if (s != NULL) {
        c->free_slots = s->next;
        c->nfree--;
    } else {
        s = malloc(sizeof(*s));
        if (s == NULL)
            return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->conn = c;
    return s;
}

static void slot_done_cb(struct kafka_ticket *t, int err)
{
    struct syslog_slot *s = (struct syslog_slot *)t;
    struct syslog_conn *c = s->conn;
    (void)err; /* syslog has no acks; kafka_sink logs and counts failed deliveries */

    c->in_flight--;
    slot_put(c, s);
    conn_free_if_done(c);
}

static bool can_read(const struct syslog_conn *c)
{
    return c->bev != NULL && c->identified && !c->paused_by_worker && !c->throttle.on;
}

static void update_reading(struct syslog_conn *c)
{
    if (c->bev == NULL)
        return;
    if (can_read(c))
        bufferevent_enable(c->bev, EV_READ);
    else
        bufferevent_disable(c->bev, EV_READ);
}

/*
 * Reading may go on again: messages may wait in the input buffer while it was paused, so
 * they are taken from the loop, not from here (no recursion).
 */
static void resume_reading(struct syslog_conn *c)
{
    update_reading(c);
    if (can_read(c) && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void throttle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct syslog_conn *c = arg;
    (void)fd;
    (void)what;

    c->throttle.on = false;
    if (c->bev != NULL)
        resume_reading(c);
}

/* Charges *n messages to the operator's rate (pausing c when it is in debt); *n = 0. */
static void charge(struct syslog_conn *c, long *n)
{
    rate_throttle_charge(c->w->c->syslog_rate, c->id.operator_id, *n, &c->throttle,
                         c->w->c->syslog_throttled, "syslog", c->peer);
    *n = 0;
}

/* Ingests one message. Returns 0, or -1 when it could not be queued (c is closed). */
static int ingest_one(struct syslog_conn *c, const char *msg, size_t len)
{
    char reason[TM_ERR_LEN] = "";
    struct syslog_slot *s = slot_get(c);
    enum ingest_result r;

    if (s == NULL) {
        conn_close(c, "out of memory for a message ticket");
        return -1;
    }
    s->ticket.done_cb = slot_done_cb;
    r = ingest_payload(c->w, &c->id, INGEST_SYSLOG, msg, len, &c->w->lm_syslog, &s->ticket, reason);
    switch (r) {
    case INGEST_ACCEPTED:
    case INGEST_REJECTED:
        c->in_flight++;
        return 0;
    case INGEST_SKIPPED:
        slot_put(c, s);
        return 0;
    case INGEST_FAILED:
    default:
        slot_put(c, s);
        tm_log_error("syslog %s: cannot queue a message: %s", c->peer, reason);
        conn_close(c, "a message could not be queued for kafka");
        return -1;
    }
}

/*
 * Cuts and ingests every complete message in the input buffer. At eof the last,
 * unterminated line counts as a message, and reading pauses do not apply: what the
 * sender managed to send before closing is taken. Returns 0, or -1 when it closed c
 * (which may then be freed already).
 */
static int process_input(struct syslog_conn *c, bool eof)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t max_line = (size_t)c->w->c->cfg.max_line;
    char err[TM_ERR_LEN];
    long uncharged = 0;

    while (c->bev != NULL && (eof || can_read(c))) {
        size_t avail = evbuffer_get_length(in);
        size_t take = avail < max_line + FRAME_HEADER_MAX ? avail : max_line + FRAME_HEADER_MAX;
        size_t off = 0, len = 0, used = 0;
        const char *p;
        int rc;

        if (avail == 0)
            break;
        p = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
        if (p == NULL) {
            conn_close(c, "out of memory");
            return -1;
        }
        rc = next_frame(p, take, max_line, eof && take == avail, &off, &len, &used, err);
        if (rc == TM_AGAIN)
            break;
        if (rc != 0) {
            conn_close(c, err);
            return -1;
        }
        if (len > 0 && ingest_one(c, p + off, len) != 0)
            return -1;
        evbuffer_drain(in, used);
        if (len > 0 && ++uncharged == CHARGE_BATCH)
            charge(c, &uncharged); /* in debt: the loop stops here */
    }
    if (c->bev != NULL)
        charge(c, &uncharged);
    return 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    (void)process_input(arg, false);
}

/* Plain TCP: at once; TLS: after the handshake, from the client certificate's names. */
static void identify(struct syslog_conn *c)
{
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

    if (collector_identify_conn(c->w->c, ssl, (struct sockaddr *)&c->peer_sa, "syslog", c->peer,
                                &c->id) != 0) {
        conn_close(c, NULL);
        return;
    }
    c->identified = true;
    update_reading(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct syslog_conn *c = arg;
    (void)bev;

    if (what & BEV_EVENT_CONNECTED) {
        identify(c);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        tm_log_info("syslog %s: closing: idle timeout", c->peer);
        conn_close(c, NULL);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (process_input(c, true) == 0)
            conn_close(c, NULL);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        tm_log_info("syslog %s: connection error: %s", c->peer,
                    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_close(c, NULL);
    }
}

static void pause_cb(struct conn_list *l, bool paused)
{
    struct syslog_conn *c = (struct syslog_conn *)l;

    c->paused_by_worker = paused;
    resume_reading(c);
}

static void close_cb(struct conn_list *l)
{
    conn_close((struct syslog_conn *)l, NULL);
}

static void conn_close(struct syslog_conn *c, const char *why)
{
    if (c->bev == NULL)
        return;
    if (why != NULL)
        tm_log_warn("syslog %s: closing: %s", c->peer, why);
    else
        tm_log_debug("syslog %s: closed", c->peer);
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->throttle.timer != NULL) {
        event_free(c->throttle.timer);
        c->throttle.timer = NULL;
    }
    worker_conn_remove(c->w, &c->link);
    tm_gauge_add(c->w->lm_syslog.connections, -1);
    collector_conn_release(c->w->c, (struct sockaddr *)&c->peer_sa);
    conn_free_if_done(c);
}

int syslog_tcp_conn_create(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    struct collector *col = w->c;
    struct syslog_conn *c = NULL;
    struct timeval idle = {col->cfg.idle_timeout_ms / 1000,
                           (col->cfg.idle_timeout_ms % 1000) * 1000};

    if (peerlen > sizeof(struct sockaddr_storage))
        goto fail;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->w = w;
    c->link.pause_cb = pause_cb;
    c->link.close_cb = close_cb;
    memcpy(&c->peer_sa, peer, peerlen);
    tm_net_format_addr(peer, c->peer, sizeof(c->peer));
    c->throttle.timer = evtimer_new(w->base, throttle_cb, c);
    if (c->throttle.timer == NULL)
        goto fail;
    c->tls = col->cfg.syslog_tls;
    if (c->tls) {
        SSL *ssl = SSL_new(col->tls);
        if (ssl == NULL)
            goto fail;
        c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c->bev == NULL)
        goto fail;
    fd = -1; /* owned by the bufferevent */
    bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, (size_t)col->cfg.max_line + FRAME_HEADER_MAX);
    bufferevent_set_timeouts(c->bev, &idle, NULL);
    worker_conn_add(w, &c->link);
    tm_gauge_add(w->lm_syslog.connections, 1);
    c->paused_by_worker = w->paused;
    if (c->tls)
        bufferevent_enable(c->bev, EV_READ); /* the handshake; identify() follows it */
    else
        identify(c); /* may close and free c */
    return 0;
fail:
    tm_log_error("syslog: cannot set up a connection: out of memory or bad address");
    if (fd >= 0)
        close(fd);
    if (c != NULL && c->throttle.timer != NULL)
        event_free(c->throttle.timer);
    free(c);
    collector_conn_release(col, peer);
    return -1;
}

/* ---- UDP --------------------------------------------------------------------------- */

static void udp_done_cb(struct kafka_ticket *t, int err)
{
    (void)err;
    free(t);
}

static void udp_datagram(struct syslog_udp *u, const struct sockaddr *from, size_t len)
{
    struct worker *w = u->w;
    struct identity id;
    struct kafka_ticket *t;
    char reason[TM_ERR_LEN] = "";
    char peer[TM_ADDR_LEN];
    enum ingest_result r;

    if (w->paused) {
        tm_counter_inc(u->dropped);
        return;
    }
    if (collector_identify(w->c, NULL, from, &id) != 0) {
        tm_counter_inc(u->unknown_sender);
        if (tm_log_threshold >= TM_LOG_DEBUG) {
            tm_net_format_addr(from, peer, sizeof(peer));
            tm_log_debug("syslog udp %s: unknown sender: dropped", peer);
        }
        return;
    }
    if (w->c->syslog_rate != NULL) {
        int64_t now_ms = tm_time_mono_ms(), wait_ms;
        long report;

        if (!rate_try(w->c->syslog_rate, id.operator_id, 1, now_ms, &wait_ms)) {
            tm_counter_inc(u->dropped_rate);
            report = rate_note_drop(w->c->syslog_rate, id.operator_id, now_ms, UDP_RATE_REPORT_MS);
            if (report > 0) {
                tm_net_format_addr(from, peer, sizeof(peer));
                tm_log_warn(
                    "syslog udp %s: operator '%s' is over its rate of %lld messages/s: "
                    "%ld datagram%s dropped since this was last logged (once a minute at most)",
                    peer, id.operator_id, (long long)w->c->cfg.syslog_rate_per_sender, report,
                    report == 1 ? "" : "s");
            }
            return;
        }
    }
    strip_trailer(u->buf, &len);
    if (len == 0)
        return;
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        tm_counter_inc(u->dropped);
        return;
    }
    t->done_cb = udp_done_cb;
    r = ingest_payload(w, &id, INGEST_SYSLOG, u->buf, len, &w->lm_syslog, t, reason);
    if (r == INGEST_ACCEPTED || r == INGEST_REJECTED)
        return; /* t is freed by udp_done_cb */
    free(t);
    if (r == INGEST_FAILED) {
        tm_counter_inc(u->dropped);
        tm_log_warn("syslog udp: dropped a datagram: %s", reason);
    }
}

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct syslog_udp *u = arg;
    (void)what;

    for (int i = 0; i < UDP_BATCH; i++) {
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t n;
        size_t len;

        /* MSG_TRUNC: the datagram's real length, even when it did not fit. */
        n = recvfrom(fd, u->buf, u->cap, MSG_TRUNC, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                tm_log_error("syslog udp: recvfrom: %s", strerror(errno));
            return;
        }
        len = (size_t)n;
        if (len > u->cap) {
            tm_counter_inc(u->truncated);
            if (tm_log_threshold >= TM_LOG_DEBUG) {
                char peer[TM_ADDR_LEN];
                tm_net_format_addr((struct sockaddr *)&from, peer, sizeof(peer));
                tm_log_debug("syslog udp %s: datagram of %zu bytes cut to %zu", peer, len, u->cap);
            }
            len = u->cap;
        }
        udp_datagram(u, (struct sockaddr *)&from, len);
    }
}

int syslog_udp_start(struct worker *w, int fd, char *err)
{
    static const char dropped_help[] =
        "Syslog UDP datagrams dropped, by reason: backpressure (Kafka could not take them), "
        "rate (over the operator's [syslog] rate_per_sender).";
    struct tm_metrics *m = w->c->metrics;
    struct syslog_udp *u = NULL;

    if (w->index < 0 || w->index >= COLLECTOR_MAX_WORKERS)
        return tm_err(err, "syslog udp: worker index %d out of range", w->index);
    if (udp_receivers[w->index] != NULL)
        return tm_err(err, "syslog udp: worker %d already has a receiver", w->index);
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        goto nomem;
    u->w = w;
    u->cap = (size_t)w->c->cfg.max_line;
    u->buf = malloc(u->cap);
    if (u->buf == NULL)
        goto nomem;
    u->truncated = tm_metrics_counter(
        m, "tm_collector_syslog_udp_truncated_total",
        "Syslog UDP datagrams longer than max_line, cut to max_line before ingest.", NULL);
    u->unknown_sender = tm_metrics_counter(
        m, "tm_collector_syslog_udp_unknown_sender_total",
        "Syslog UDP datagrams dropped because no operator matches the source address.", NULL);
    u->dropped = tm_metrics_counter(m, "tm_collector_syslog_udp_dropped_total", dropped_help,
                                    "reason", "backpressure", NULL);
    u->dropped_rate = tm_metrics_counter(m, "tm_collector_syslog_udp_dropped_total", dropped_help,
                                         "reason", "rate", NULL);
    u->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, udp_read_cb, u);
    if (u->ev == NULL || event_add(u->ev, NULL) != 0) {
        tm_err(err, "syslog udp: cannot watch the socket");
        goto fail;
    }
    udp_receivers[w->index] = u;
    return 0;
nomem:
    tm_err(err, "syslog udp: out of memory");
fail:
    if (u != NULL) {
        if (u->ev != NULL)
            event_free(u->ev);
        free(u->buf);
        free(u);
    }
    return -1;
}

void syslog_udp_stop(struct worker *w)
{
    struct syslog_udp *u;

    if (w == NULL || w->index < 0 || w->index >= COLLECTOR_MAX_WORKERS)
        return;
    u = udp_receivers[w->index];
    if (u == NULL)
        return;
    udp_receivers[w->index] = NULL;
    event_free(u->ev);
    free(u->buf);
    free(u);
}
