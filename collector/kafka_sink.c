/*
 * kafka_sink.c - one idempotent librdkafka producer per collector worker.
 *
 * Delivery reports must reach the connection that owns the message without locks, so
 * they run on the worker's own event loop: librdkafka writes a byte to a pipe when its
 * main queue becomes non-empty (rd_kafka_queue_io_event_enable), the loop wakes up and
 * calls rd_kafka_poll(), which runs dr_msg_cb here, which calls the ticket's done_cb.
 * A slow timer polls too, as a safety net and to refresh the queue-depth gauge.
 *
 * Backpressure: after each produce and each poll the queue length is compared with the
 * high and low water marks; crossing them calls pressure_cb, and the worker stops or
 * resumes reading from its senders. librdkafka's own queue limit is set above the high
 * water mark, so a produce refused for a full queue means a bug, not load.
 */
#include "kafka_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm/tm_log.h"
#include "tm/tm_time.h"

#define POLL_INTERVAL_MS 100
/*
 * rd_kafka_outq_len takes a lock; per produce it is only asked once in_flight is this
 * close to the high water mark. The queue holds our in-flight messages plus a few
 * delivery-report and statistics ops (reports come in batches), so it cannot reach the
 * mark while in_flight is further below it than this.
 */
#define OUTQ_SLACK 1024

struct kafka_sink {
    struct event_base *base;
    rd_kafka_t *rk;
    rd_kafka_topic_t *topics[KAFKA_TOPIC_COUNT];
    rd_kafka_queue_t *mainq;
    struct event *wake_ev;
    struct event *timer_ev;
    int pipe_fd[2];
    long in_flight;
    long high_water, low_water;
    bool congested;
    bool brokers_down;
    int64_t poll_ms; /* the loop's time when the current poll began (delivery latency) */
    void (*pressure_cb)(void *arg, bool congested);
    void *pressure_arg;
    struct tm_counter *produced[KAFKA_TOPIC_COUNT];
    struct tm_counter *delivery_errors;
    struct tm_gauge *queue_depth;
    struct tm_histogram *latency;
};

static void update_pressure(struct kafka_sink *s)
{
    long q = rd_kafka_outq_len(s->rk);

    tm_gauge_set(s->queue_depth, (double)q);
    if (!s->congested && q >= s->high_water) {
        s->congested = true;
        tm_log_warn("kafka: %ld messages queued, over the high water mark %ld: pausing senders", q,
                    s->high_water);
        if (s->pressure_cb != NULL)
            s->pressure_cb(s->pressure_arg, true);
    } else if (s->congested && q <= s->low_water) {
        s->congested = false;
        tm_log_info("kafka: queue down to %ld messages: resuming senders", q);
        if (s->pressure_cb != NULL)
            s->pressure_cb(s->pressure_arg, false);
    }
}

/*
 * The loop's cached time in ms: delivery reports and produce calls run in the worker's
 * loop, where libevent has the time of this iteration (no clock call per event).
 */
static int64_t loop_ms(const struct kafka_sink *s)
{
    struct timeval tv;

    event_base_gettimeofday_cached(s->base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_sink *s = opaque;
    struct kafka_ticket *t = m->_private;
    (void)rk;

    s->in_flight--;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tm_counter_inc(s->delivery_errors);
        tm_log_warn("kafka: delivery to '%s' failed: %s", rd_kafka_topic_name(m->rkt),
                    rd_kafka_err2str(m->err));
    } else {
        s->brokers_down = false;
        int64_t waited = s->poll_ms - t->queued_ms; /* wall clock: a step back reads 0 */
        tm_histogram_observe(s->latency, (double)(waited > 0 ? waited : 0) / 1000.0);
    }
    t->done_cb(t, (int)m->err);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_sink *s = opaque;
    (void)rk;

    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        s->brokers_down = true;
    tm_log_warn("kafka: %s", reason);
}

/*
 * librdkafka reports brokers going down (error_cb) but not coming back; its statistics,
 * every few seconds, say which brokers are up, so health recovers without traffic.
 */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct kafka_sink *s = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *brokers = json_object_get(root, "brokers");
    const char *name;
    json_t *b;
    bool up = false;
    (void)rk;

    json_object_foreach(brokers, name, b)
    {
        json_t *state = json_object_get(b, "state");
        if (json_integer_value(json_object_get(b, "nodeid")) >= 0 && json_is_string(state) &&
            strcmp(json_string_value(state), "UP") == 0)
            up = true;
    }
    if (root != NULL)
        s->brokers_down = !up;
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        tm_log_error("kafka: %s: %s", fac, buf);
    else if (level <= 5)
        tm_log_info("kafka: %s: %s", fac, buf);
}

static void poll_all(struct kafka_sink *s)
{
    s->poll_ms = loop_ms(s); /* one clock read per poll, not per delivery report */
    while (rd_kafka_poll(s->rk, 0) > 0)
        ;
    update_pressure(s);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];
    (void)what;

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    poll_all(arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    poll_all(arg);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return tm_err(err, "kafka property '%s': %s", key, errstr);
    return 0;
}

static int conf_set_int(rd_kafka_conf_t *conf, const char *key, int64_t v, char *err)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return conf_set(conf, key, buf, err);
}

struct kafka_sink *kafka_sink_create(struct event_base *base, const struct kafka_sink_config *cfg,
                                     struct tm_metrics *metrics,
                                     void (*pressure_cb)(void *arg, bool congested), void *arg,
                                     char *err)
{
    static const char *const topic_labels[KAFKA_TOPIC_COUNT] = {"events", "rejected", "heartbeats"};
    struct kafka_sink *s = NULL;
    rd_kafka_conf_t *conf = NULL;
    char errstr[512];
    struct timeval tv = {0, POLL_INTERVAL_MS * 1000};

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto fail;
    s->pipe_fd[0] = s->pipe_fd[1] = -1;
    s->base = base;
    s->high_water = cfg->high_water;
    s->low_water = cfg->low_water;
    s->pressure_cb = pressure_cb;
    s->pressure_arg = arg;

    conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", cfg->bootstrap, err) != 0 ||
        conf_set(conf, "enable.idempotence", "true", err) != 0 ||
        conf_set(conf, "acks", "all", err) != 0 ||
        conf_set(conf, "compression.type", cfg->compression, err) != 0 ||
        conf_set_int(conf, "linger.ms", cfg->linger_ms, err) != 0 ||
        conf_set_int(conf, "batch.size", cfg->batch_bytes, err) != 0 ||
        conf_set_int(conf, "message.timeout.ms", cfg->message_timeout_ms, err) != 0 ||
        conf_set_int(conf, "queue.buffering.max.messages", cfg->high_water * 2 + 10000, err) != 0 ||
        conf_set(conf, "queue.buffering.max.kbytes", "1048576", err) != 0 ||
        conf_set(conf, "log.connection.close", "false", err) != 0 ||
        conf_set(conf, "statistics.interval.ms", "2000", err) != 0)
        goto fail;
    for (size_t i = 0; cfg->extra != NULL && cfg->extra[i] != NULL; i++) {
        char key[256];
        const char *eq = strchr(cfg->extra[i], '=');
        if (eq == NULL || (size_t)(eq - cfg->extra[i]) >= sizeof(key)) {
            tm_err(err, "kafka property '%s': expected key=value", cfg->extra[i]);
            goto fail;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - cfg->extra[i]), cfg->extra[i]);
        if (conf_set(conf, key, eq + 1, err) != 0)
            goto fail;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);

    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (s->rk == NULL) {
        tm_err(err, "cannot create kafka producer: %s", errstr);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++) {
        s->topics[i] = rd_kafka_topic_new(s->rk, cfg->topics[i], NULL);
        if (s->topics[i] == NULL) {
            tm_err(err, "cannot use topic '%s': %s", cfg->topics[i],
                   rd_kafka_err2str(rd_kafka_last_error()));
            goto fail;
        }
        s->produced[i] = tm_metrics_counter(metrics, "tm_collector_kafka_produced_total",
                                            "Messages handed to the Kafka producer, by topic.",
                                            "topic", topic_labels[i], NULL);
    }
    s->delivery_errors = tm_metrics_counter(
        metrics, "tm_collector_kafka_delivery_errors_total",
        "Messages Kafka did not take (their senders got no ack and will resend).", NULL);
    s->queue_depth = tm_metrics_gauge(metrics, "tm_collector_kafka_queue_depth",
                                      "Messages queued in librdkafka, not yet delivered.", NULL);
    {
        static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10,   30};
        s->latency = tm_metrics_histogram(metrics, "tm_collector_kafka_delivery_seconds",
                                          "Time from produce to delivery report.", bounds,
                                          TM_ARRAY_LEN(bounds), NULL);
    }

    if (pipe2(s->pipe_fd, O_NONBLOCK | O_CLOEXEC) != 0) {
        tm_err(err, "pipe: %s", strerror(errno));
        goto fail;
    }
    s->mainq = rd_kafka_queue_get_main(s->rk);
    rd_kafka_queue_io_event_enable(s->mainq, s->pipe_fd[1], "1", 1);
    s->wake_ev = event_new(base, s->pipe_fd[0], EV_READ | EV_PERSIST, wake_cb, s);
    s->timer_ev = event_new(base, -1, EV_PERSIST, timer_cb, s);
    if (s->wake_ev == NULL || s->timer_ev == NULL || event_add(s->wake_ev, NULL) != 0 ||
        event_add(s->timer_ev, &tv) != 0) {
        tm_err(err, "cannot register kafka events");
        goto fail;
    }
    return s;
fail:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    kafka_sink_destroy(s);
    return NULL;
}

int kafka_sink_produce(struct kafka_sink *s, enum kafka_topic topic, const char *key, size_t keylen,
                       const char *value, size_t len, const struct kafka_header *headers, size_t n,
                       int64_t now_ms, struct kafka_ticket *t, char *err)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t e;

    t->queued_ms = now_ms;
    if (n > 0) {
        hdrs = rd_kafka_headers_new(n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                (ssize_t)headers[i].len);
    }
    e = rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->topics[topic]),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, keylen),
                          RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_HEADERS(hdrs),
                          RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (hdrs != NULL)
            rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
        return tm_err(err, "kafka produce: %s", rd_kafka_err2str(e));
    }
    s->in_flight++;
    tm_counter_inc(s->produced[topic]);
    if (!s->congested && s->in_flight + OUTQ_SLACK >= s->high_water &&
        rd_kafka_outq_len(s->rk) >= s->high_water)
        update_pressure(s);
    return 0;
}

long kafka_sink_in_flight(const struct kafka_sink *s)
{
    return s->in_flight;
}

bool kafka_sink_congested(const struct kafka_sink *s)
{
    return s->congested;
}

bool kafka_sink_healthy(const struct kafka_sink *s)
{
    return !s->brokers_down;
}

long kafka_sink_flush(struct kafka_sink *s, int timeout_ms)
{
    int64_t deadline = tm_time_mono_ms() + timeout_ms;

    while (s->in_flight > 0 && tm_time_mono_ms() < deadline) {
        s->poll_ms = tm_time_now_ms();
        rd_kafka_poll(s->rk, 50);
    }
    update_pressure(s);
    return s->in_flight;
}

void kafka_sink_destroy(struct kafka_sink *s)
{
    if (s == NULL)
        return;
    if (s->rk != NULL) {
        /* Undelivered messages come back through dr_msg_cb with a purge error. */
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        s->poll_ms = tm_time_now_ms();
        while (s->in_flight > 0 && rd_kafka_poll(s->rk, 100) >= 0 && rd_kafka_outq_len(s->rk) > 0)
            ;
        rd_kafka_poll(s->rk, 0);
    }
    if (s->wake_ev != NULL)
        event_free(s->wake_ev);
    if (s->timer_ev != NULL)
        event_free(s->timer_ev);
    if (s->mainq != NULL)
        rd_kafka_queue_destroy(s->mainq);
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        if (s->topics[i] != NULL)
            rd_kafka_topic_destroy(s->topics[i]);
    if (s->rk != NULL)
        rd_kafka_destroy(s->rk);
    if (s->pipe_fd[0] >= 0)
        close(s->pipe_fd[0]);
    if (s->pipe_fd[1] >= 0)
        close(s->pipe_fd[1]);
    free(s);
}
