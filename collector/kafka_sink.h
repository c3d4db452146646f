/*
 * kafka_sink.h - the collector's way into Kafka: one idempotent librdkafka producer per
 * worker thread, whose delivery reports run on that worker's event loop (librdkafka
 * signals a pipe; the loop polls). Callers embed a struct kafka_ticket in whatever
 * must learn the fate of a message and get exactly one done_cb per accepted produce.
 */
#ifndef COLLECTOR_KAFKA_SINK_H
#define COLLECTOR_KAFKA_SINK_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm/tm_metrics.h"

struct kafka_ticket;
/* err is 0 when the message is in Kafka (acks=all), else librdkafka's error code. */
typedef void (*kafka_done_cb)(struct kafka_ticket *t, int err);

struct kafka_ticket {
    kafka_done_cb done_cb;
    int64_t queued_ms; /* set by kafka_sink_produce, for the latency histogram */
};

enum kafka_topic {
    KAFKA_TOPIC_EVENTS = 0,
    KAFKA_TOPIC_REJECTED = 1,
    KAFKA_TOPIC_HEARTBEATS = 2,
    KAFKA_TOPIC_COUNT
};

struct kafka_sink_config {
    char bootstrap[1024];
    char topics[KAFKA_TOPIC_COUNT][128];
    char compression[16]; /* lz4, zstd, gzip, snappy, none */
    int64_t linger_ms;
    int64_t batch_bytes;
    int64_t message_timeout_ms; /* how long librdkafka retries before giving up */
    int64_t high_water;         /* messages queued: above, stop reading from senders */
    int64_t low_water;          /* resume reading below this */
    /* extra librdkafka properties ("security.protocol=ssl", ...), NUL-separated pairs */
    const char *const *extra; /* NULL or NULL-terminated list of "key=value" */
};

struct kafka_header {
    const char *name;
    const char *value;
    size_t len;
};

struct kafka_sink;

/*
 * Creates a producer for one worker, polled on base. Pressure changes (crossing the
 * high or low water mark) are reported through pressure_cb. Returns NULL with err.
 */
struct kafka_sink *kafka_sink_create(struct event_base *base, const struct kafka_sink_config *cfg,
                                     struct tm_metrics *metrics,
                                     void (*pressure_cb)(void *arg, bool congested), void *arg,
                                     char *err);

/*
 * Queues one message (value copied). headers: n entries. now_ms is the caller's wall
 * clock (the worker loop's cached time), kept in t for the delivery latency histogram.
 * On 0, t->done_cb will be called exactly once, later, from the worker's loop. On -1
 * (queue full, message too large) it is not called and err says why.
 */
int kafka_sink_produce(struct kafka_sink *s, enum kafka_topic topic, const char *key, size_t keylen,
                       const char *value, size_t len, const struct kafka_header *headers, size_t n,
                       int64_t now_ms, struct kafka_ticket *t, char *err);

/* Messages produced but not yet reported delivered or failed. */
long kafka_sink_in_flight(const struct kafka_sink *s);

/* True while the queue is above the high water mark (until it falls below the low one). */
bool kafka_sink_congested(const struct kafka_sink *s);

/* True when some broker connection is up (for /healthz). */
bool kafka_sink_healthy(const struct kafka_sink *s);

/*
 * Waits up to timeout_ms for every queued message to be delivered, running delivery
 * callbacks. Returns the number still in flight afterwards.
 */
long kafka_sink_flush(struct kafka_sink *s, int timeout_ms);

/* Flushes nothing: frees the producer; undelivered messages get done_cb with an error. */
void kafka_sink_destroy(struct kafka_sink *s);

#endif
