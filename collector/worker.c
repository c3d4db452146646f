/*
 * worker.c - a collector worker: one thread, one event loop, one Kafka producer.
 *
 * The acceptor (collector.c) hands accepted sockets over through a small locked queue
 * and an event activated across threads; from then on a connection lives entirely on
 * its worker, and so do its Kafka delivery reports, so no connection state is shared
 * between threads. When the producer's queue passes the high water mark the worker
 * pauses reading on all its connections (conn_list), and resumes below the low mark.
 */
#include <event2/thread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "tm/tm_time.h"
#include "lumberjack_conn.h"
#include "syslog_in.h"
#include "tm/tm_log.h"

struct handoff {
    struct handoff *next;
    int fd;
    enum listener_kind kind;
    socklen_t len;
    struct sockaddr_storage peer;
};

static void init_listener_metrics(struct listener_metrics *lm, struct tm_metrics *m,
                                  const char *name)
{
    lm->name = name;
    lm->registry = m;
    lm->events_in = tm_metrics_counter(m, "tm_collector_events_in_total",
                                       "Payloads received, by listener.", "listener", name, NULL);
    lm->accepted = tm_metrics_counter(m, "tm_collector_events_accepted_total",
                                      "Valid events produced to the events topic, by listener.",
                                      "listener", name, NULL);
    lm->skipped = tm_metrics_counter(
        m, "tm_collector_events_skipped_total",
        "Well-formed payloads that are not security events (EVE flow, ...), by listener.",
        "listener", name, NULL);
    lm->bytes = tm_metrics_counter(m, "tm_collector_bytes_in_total",
                                   "Payload bytes received, by listener.", "listener", name, NULL);
    lm->connections = tm_metrics_gauge(m, "tm_collector_connections",
                                       "Open connections, by listener.", "listener", name, NULL);
}

static void pressure_cb(void *arg, bool congested)
{
    struct worker *w = arg;

    w->paused = congested;
    for (struct conn_list *l = w->conns; l != NULL; l = l->next)
        l->pause_cb(l, congested);
}

int64_t worker_now_ms(struct worker *w)
{
    struct timeval tv;

    if (event_base_gettimeofday_cached(w->base, &tv) != 0)
        return tm_time_now_ms();
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void worker_conn_add(struct worker *w, struct conn_list *l)
{
    l->prev = NULL;
    l->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = l;
    w->conns = l;
}

void worker_conn_remove(struct worker *w, struct conn_list *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else if (w->conns == l)
        w->conns = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

static void handoff_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct handoff *h, *next;
    (void)fd;
    (void)what;

    pthread_mutex_lock(&w->handoff_lock);
    h = w->handoff_head;
    w->handoff_head = NULL;
    pthread_mutex_unlock(&w->handoff_lock);
    for (; h != NULL; h = next) {
        next = h->next;
        if (h->kind == LISTENER_LUMBERJACK)
            lumberjack_conn_create(w, h->fd, (struct sockaddr *)&h->peer, h->len);
        else
            syslog_tcp_conn_create(w, h->fd, (struct sockaddr *)&h->peer, h->len);
        free(h);
    }
}

void worker_handoff(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                    enum listener_kind kind)
{
    struct handoff *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        close(fd);
        collector_conn_release(w->c, peer);
        return;
    }
    h->fd = fd;
    h->kind = kind;
    h->len = len;
    memcpy(&h->peer, peer, len);
    pthread_mutex_lock(&w->handoff_lock);
    h->next = w->handoff_head;
    w->handoff_head = h;
    pthread_mutex_unlock(&w->handoff_lock);
    event_active(w->handoff_ev, EV_READ, 0);
}

struct worker *worker_create(struct collector *c, int index, char *err)
{
    const struct collector_config *cfg = &c->cfg;
    struct worker *w = calloc(1, sizeof(*w));
    struct kafka_sink_config kc;

    if (w == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    w->c = c;
    w->index = index;
    pthread_mutex_init(&w->handoff_lock, NULL);
    w->base = event_base_new();
    if (w->base == NULL) {
        tm_err(err, "cannot create event base");
        goto fail;
    }
    w->handoff_ev = event_new(w->base, -1, EV_PERSIST | EV_READ, handoff_cb, w);
    if (w->handoff_ev == NULL) {
        tm_err(err, "cannot create handoff event");
        goto fail;
    }
    init_listener_metrics(&w->lm_lumberjack, c->metrics, "lumberjack");
    init_listener_metrics(&w->lm_syslog, c->metrics, "syslog");
    init_listener_metrics(&w->lm_http, c->metrics, "http");

    memset(&kc, 0, sizeof(kc));
    tm_strlcpy(kc.bootstrap, cfg->kafka, sizeof(kc.bootstrap));
    tm_strlcpy(kc.topics[KAFKA_TOPIC_EVENTS], cfg->topic_events, sizeof(kc.topics[0]));
    tm_strlcpy(kc.topics[KAFKA_TOPIC_REJECTED], cfg->topic_rejected, sizeof(kc.topics[0]));
    tm_strlcpy(kc.topics[KAFKA_TOPIC_HEARTBEATS], cfg->topic_heartbeats, sizeof(kc.topics[0]));
    tm_strlcpy(kc.compression, cfg->compression, sizeof(kc.compression));
    kc.linger_ms = cfg->linger_ms;
    kc.batch_bytes = cfg->batch_bytes;
    kc.message_timeout_ms = cfg->message_timeout_ms;
    kc.high_water = cfg->high_water;
    kc.low_water = cfg->low_water;
    kc.extra = (const char *const *)cfg->kafka_extra;
    w->sink = kafka_sink_create(w->base, &kc, c->metrics, pressure_cb, w, err);
    if (w->sink == NULL)
        goto fail;
    return w;
fail:
    worker_join_and_free(w);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* Stopped: close what is still open (each frees itself once its tickets are back). */
    while (w->conns != NULL)
        w->conns->close_cb(w->conns);
    return NULL;
}

int worker_start(struct worker *w, char *err)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return tm_err(err, "cannot start worker thread %d", w->index);
    return 0;
}

/*
 * Runs on the worker's loop: stop reading from everyone, give Kafka up to the drain
 * timeout to deliver (delivery reports send the acks), then leave the loop.
 */
static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    long left;
    struct timeval grace = {0, 500000};
    (void)fd;
    (void)what;

    pressure_cb(w, true);
    left = kafka_sink_flush(w->sink, (int)w->c->cfg.drain_timeout_ms);
    if (left > 0)
        tm_log_warn("worker %d: %ld messages not delivered within the drain timeout; "
                    "their senders got no ack",
                    w->index, left);
    /* Half a second more of the loop, so the acks the delivery callbacks wrote reach the
     * sockets before the connections are closed. */
    event_base_loopexit(w->base, &grace);
}

void worker_stop(struct worker *w)
{
    event_base_once(w->base, -1, EV_TIMEOUT, drain_cb, w, NULL);
}

void worker_join(struct worker *w)
{
    if (w != NULL && w->thread != 0) {
        pthread_join(w->thread, NULL);
        w->thread = 0;
    }
}

void worker_join_and_free(struct worker *w)
{
    if (w == NULL)
        return;
    worker_join(w);
    kafka_sink_destroy(w->sink);
    if (w->handoff_ev != NULL)
        event_free(w->handoff_ev);
    if (w->base != NULL)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->handoff_lock);
    free(w);
}
