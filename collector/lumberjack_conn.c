/*
 * lumberjack_conn.c - one Beats or tm-agent connection speaking Lumberjack v2.
 *
 * Bytes go through the libtm decoder; each window frame opens a struct lj_window with one
 * slot per announced event, and each data frame fills the next slot and is handed to
 * ingest, which produces it to Kafka with the slot's ticket. Delivery reports mark slots
 * done; when every slot of the oldest window is done, the window is acked with the
 * sequence number of its last event and freed. Acks therefore never run ahead of Kafka:
 * an event acknowledged to its sender is in Kafka. A failed delivery closes the
 * connection without an ack, and the sender sends the window again.
 *
 * Limits: the decoder caps frame and inflated sizes and the window size; the input
 * buffer stops reading at max_frame plus a header; a connection may have at most
 * max_pending_windows unacknowledged windows before reading pauses; it is closed after
 * idle_timeout with nothing in flight. While a window waits for Kafka, the last
 * acknowledged sequence is re-sent every keepalive period so the sender does not time out.
 * Rate: each announced window is charged to the operator's bucket (rate.h); a sender in
 * debt has its connection read only to the end of the current window, then not at all
 * until the debt is paid: it slows down and loses nothing.
 *
 * Lifetime: the connection lives until its socket is closed and every ticket it gave
 * out has come back.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <stddef.h>
#include <stdlib.h>
#include <openssl/err.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "lumberjack_conn.h"
#include "rate.h"
#include "tls.h"
#include "tm/tm_log.h"

/* Contiguous bytes handed to the decoder at a time, when more than one frame waits. */
#define FEED_CHUNK (256 * 1024)

struct lj_window;

struct lj_slot {
    struct kafka_ticket ticket; /* first member: the ticket pointer is the slot pointer */
    struct lj_window *w;
    uint32_t seq;
    bool done;
};

struct lj_window {
    struct lj_conn *conn;
    struct lj_window *next;
    uint32_t size;     /* events announced */
    uint32_t received; /* data frames read so far */
    uint32_t done;     /* slots 0..done-1 are all done */
    struct lj_slot slots[];
};

struct lj_conn {
    struct conn_list link; /* first member: worker's pause list */
    struct worker *w;
    struct bufferevent *bev; /* NULL once closed */
    struct tm_lj_decoder *dec;
    struct identity id;
    bool identified;
    bool tls;
    bool paused_by_worker;
    struct rate_throttle throttle; /* over its rate: reading waits for its timer */
    char peer[TM_ADDR_LEN];
    struct sockaddr_storage peer_sa;
    struct lj_window *head, *tail;
    int nwindows;
    long in_flight;
    size_t need;
    struct event *keepalive_ev;
    char err[TM_ERR_LEN];
};

static void conn_close(struct lj_conn *c, const char *why);
static void conn_read_cb(struct bufferevent *bev, void *arg);

static void conn_free_if_done(struct lj_conn *c)
{
    struct lj_window *win, *next;

    if (c->bev != NULL || c->in_flight > 0)
        return;
    for (win = c->head; win != NULL; win = next) {
        next = win->next;
        free(win);
    }
    tm_lj_decoder_destroy(c->dec);
    free(c);
}

/*
 * Reading goes on while the newest window still expects events (they must arrive before
 * it can be acked), or while fewer than max_pending_windows windows wait for acks.
 */
static bool can_read(const struct lj_conn *c)
{
    bool window_open = c->tail != NULL && c->tail->received < c->tail->size;

    return c->bev != NULL && c->identified && !c->paused_by_worker &&
           (window_open || (!c->throttle.on && c->nwindows < c->w->c->cfg.max_pending_windows));
}

static void update_reading(struct lj_conn *c)
{
    bool want = can_read(c);

    if (c->bev == NULL)
        return;
    if (want)
        bufferevent_enable(c->bev, EV_READ);
    else
        bufferevent_disable(c->bev, EV_READ);
}

/*
 * Reading may go on again: frames may wait in the input buffer while it was paused, so
 * the read callback runs again from the loop, not from here (no recursion).
 */
static void resume_reading(struct lj_conn *c)
{
    update_reading(c);
    if (can_read(c) && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void throttle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lj_conn *c = arg;
    (void)fd;
    (void)what;

    c->throttle.on = false;
    if (c->bev != NULL)
        resume_reading(c);
}

static void send_ack(struct lj_conn *c, uint32_t seq)
{
    if (c->bev != NULL && tm_lj_write_ack(bufferevent_get_output(c->bev), seq) != 0)
        tm_log_error("lumberjack %s: cannot queue the ack of %u", c->peer, seq);
}

/* Acks and frees every complete window at the head, in order. */
static void advance(struct lj_conn *c)
{
    struct lj_window *win;
    bool freed = false;

    while ((win = c->head) != NULL) {
        while (win->done < win->received && win->slots[win->done].done)
            win->done++;
        if (win->done < win->size)
            break;
        send_ack(c, win->slots[win->size - 1].seq);
        c->head = win->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->nwindows--;
        free(win);
        freed = true;
    }
    if (freed)
        resume_reading(c);
}

static void slot_done_cb(struct kafka_ticket *t, int err)
{
    struct lj_slot *s = (struct lj_slot *)t;
    struct lj_conn *c = s->w->conn;

    c->in_flight--;
    s->done = true;
    if (c->bev == NULL) {
        conn_free_if_done(c);
        return;
    }
    if (err != 0) {
        /* No ack for this window: the sender will send it again. */
        conn_close(c, "kafka did not take an event of the window");
        return;
    }
    advance(c);
}

static int window_cb(void *arg, uint32_t size)
{
    struct lj_conn *c = arg;
    struct lj_window *win;

    if (c->tail != NULL && c->tail->received < c->tail->size) {
        tm_err(c->err, "new window after %u of %u events of the previous one", c->tail->received,
               c->tail->size);
        return -1;
    }
    win = calloc(1, sizeof(*win) + (size_t)size * sizeof(win->slots[0]));
    if (win == NULL) {
        tm_err(c->err, "out of memory for a window of %u", size);
        return -1;
    }
    win->conn = c;
    win->size = size;
    if (c->tail != NULL)
        c->tail->next = win;
    else
        c->head = win;
    c->tail = win;
    c->nwindows++;
    rate_throttle_charge(c->w->c->lj_rate, c->id.operator_id, (long)size, &c->throttle,
                         c->w->c->lj_throttled, "lumberjack", c->peer);
    return 0;
}

static int data_cb(void *arg, uint32_t seq, const char *payload, size_t len)
{
    struct lj_conn *c = arg;
    struct lj_window *win = c->tail;
    struct lj_slot *s;
    char reason[TM_ERR_LEN];
    enum ingest_result r;

    if (win == NULL || win->received == win->size) {
        tm_err(c->err, "data frame %u outside a window", seq);
        return -1;
    }
    s = &win->slots[win->received++];
    s->w = win;
    s->seq = seq;
    s->ticket.done_cb = slot_done_cb;
    r = ingest_payload(c->w, &c->id, INGEST_JSON_ANY, payload, len, &c->w->lm_lumberjack,
                       &s->ticket, reason);
    switch (r) {
    case INGEST_ACCEPTED:
    case INGEST_REJECTED:
        c->in_flight++;
        break;
    case INGEST_SKIPPED:
        s->done = true;
        break;
    case INGEST_FAILED:
        tm_err(c->err, "cannot queue event %u: %s", seq, reason);
        s->done = true;
        return -1;
    }
    return 0;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct lj_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct tm_lj_callbacks cb = {window_cb, data_cb, c};

    while (can_read(c)) {
        size_t avail = evbuffer_get_length(in);
        size_t take;
        const uint8_t *data;
        long used;

        if (avail == 0 || avail < c->need)
            break;
        take = avail < FEED_CHUNK ? avail : (c->need > FEED_CHUNK ? c->need : FEED_CHUNK);
        data = evbuffer_pullup(in, (ev_ssize_t)take);
        used = tm_lj_decoder_feed(c->dec, data, take, &c->need, &cb, c->err);
        if (used < 0) {
            conn_close(c, c->err);
            return;
        }
        evbuffer_drain(in, (size_t)used);
        if (used == 0 && take >= c->need)
            break; /* cannot happen with a correct decoder; never spin */
    }
    update_reading(c);
    if (c->bev != NULL)
        advance(c); /* skipped events may have completed a window */
}

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lj_conn *c = arg;
    struct lj_window *win = c->head;
    (void)fd;
    (void)what;

    if (win != NULL && c->bev != NULL)
        send_ack(c, win->done > 0 ? win->slots[win->done - 1].seq : 0);
}

static void identify(struct lj_conn *c)
{
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

    if (collector_identify_conn(c->w->c, ssl, (struct sockaddr *)&c->peer_sa, "lumberjack", c->peer,
                                &c->id) != 0) {
        conn_close(c, NULL);
        return;
    }
    c->identified = true;
    update_reading(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct lj_conn *c = arg;
    (void)bev;

    if (what & BEV_EVENT_CONNECTED) {
        identify(c);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        /* Every announced event arrived and waits for Kafka: the sender is not idle.
         * A sender that stalls in the middle of a window is. */
        if (c->tail != NULL && c->tail->received == c->tail->size) {
            update_reading(c);
            return;
        }
        conn_close(c, "idle timeout");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        conn_close(c, c->head != NULL ? "closed by peer with windows unacknowledged" : NULL);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = c->tls ? bufferevent_get_openssl_error(c->bev) : 0;
        char buf[160] = "";
        if (e != 0)
            ERR_error_string_n(e, buf, sizeof(buf));
        tm_log_info("lumberjack %s: connection error%s%s", c->peer, buf[0] ? ": " : "", buf);
        conn_close(c, NULL);
    }
}

static void pause_cb(struct conn_list *l, bool paused)
{
    struct lj_conn *c = (struct lj_conn *)l;

    c->paused_by_worker = paused;
    update_reading(c);
}

static void close_cb(struct conn_list *l)
{
    conn_close((struct lj_conn *)l, NULL);
}

static void conn_close(struct lj_conn *c, const char *why)
{
    if (c->bev == NULL)
        return;
    if (why != NULL)
        tm_log_warn("lumberjack %s: closing: %s", c->peer, why);
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->keepalive_ev != NULL) {
        event_free(c->keepalive_ev);
        c->keepalive_ev = NULL;
    }
    if (c->throttle.timer != NULL) {
        event_free(c->throttle.timer);
        c->throttle.timer = NULL;
    }
    worker_conn_remove(c->w, &c->link);
    tm_gauge_add(c->w->lm_lumberjack.connections, -1);
    collector_conn_release(c->w->c, (struct sockaddr *)&c->peer_sa);
    conn_free_if_done(c);
}

int lumberjack_conn_create(struct worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    struct collector *col = w->c;
    struct lj_conn *c = calloc(1, sizeof(*c));
    struct timeval idle = {col->cfg.idle_timeout_ms / 1000,
                           (col->cfg.idle_timeout_ms % 1000) * 1000};
    struct timeval ka = {col->cfg.keepalive_ms / 1000, (col->cfg.keepalive_ms % 1000) * 1000};

    if (c == NULL)
        goto fail;
    c->w = w;
    c->need = 2;
    c->link.pause_cb = pause_cb;
    c->link.close_cb = close_cb;
    memcpy(&c->peer_sa, peer, peerlen);
    tm_net_format_addr(peer, c->peer, sizeof(c->peer));
    c->dec = tm_lj_decoder_create(&col->lj_limits);
    if (c->dec == NULL)
        goto fail;
    c->tls = col->cfg.lumberjack_tls;
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
    c->keepalive_ev = event_new(w->base, -1, EV_PERSIST, keepalive_cb, c);
    c->throttle.timer = evtimer_new(w->base, throttle_cb, c);
    if (c->keepalive_ev == NULL || c->throttle.timer == NULL ||
        event_add(c->keepalive_ev, &ka) != 0)
        goto fail_bev;
    bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, col->lj_limits.max_frame + 64);
    bufferevent_set_timeouts(c->bev, &idle, NULL);
    worker_conn_add(w, &c->link);
    tm_gauge_add(w->lm_lumberjack.connections, 1);
    c->paused_by_worker = w->paused;
    if (!c->tls)
        identify(c); /* TLS: after the handshake (BEV_EVENT_CONNECTED) */
    else
        bufferevent_enable(c->bev, EV_READ);
    return 0;
fail_bev:
    bufferevent_free(c->bev);
    c->bev = NULL;
fail:
    if (fd >= 0)
        close(fd);
    if (c != NULL) {
        if (c->keepalive_ev != NULL)
            event_free(c->keepalive_ev);
        if (c->throttle.timer != NULL)
            event_free(c->throttle.timer);
        tm_lj_decoder_destroy(c->dec);
        free(c);
    }
    collector_conn_release(col, peer);
    return -1;
}
