/*
 * aggregator.h - the pieces of tm-aggregator and how they meet.
 *
 *   main.c              options, config, admin endpoint, signals, the consume/flush loop
 *   aggregator_config.c the INI option table and command-line overrides
 *   window.c            event-time arithmetic: window starts and labels, watermark,
 *                       which windows a (possibly late) event still goes to (pure)
 *   batch.c             the in-memory increments of one flush, keyed by Redis key and
 *                       field, emitted grouped and sorted (pure)
 *   stats.c             one accepted event or heartbeat -> batch entries (key schema v1)
 *   consumer.c          the librdkafka group member: rebalances, per-partition state,
 *                       intake of messages into the pending flush
 *   redis_writer.c      the hiredis connection and the flush transaction: fence and
 *                       dedup pre-check (WATCH + reads), then MULTI ... EXEC
 *   trend.c             rolling 24 h / 7 d / 30 d figures, EWMA trend, anomaly flag and
 *                       sector risk score: the Lua script each flush runs per sector
 *                       touched (and nationally) inside its MULTI/EXEC, and its weights
 *
 * Data flow: Kafka message -> consumer (decode, watermark, window mask) -> pending list
 * -> at flush: redis_writer reads dedup membership and stored offsets under WATCH, stats
 * turns the survivors into a batch, redis_writer sends batch + offsets + watermarks +
 * dedup ids in one MULTI/EXEC; while Redis runs it the consumer takes in the next
 * messages, and reads the transaction's outcome before the next flush. Everything runs on one
 * thread (the main loop); librdkafka's rebalance callback runs inside rd_kafka_consumer_poll on
 * that same thread.
 *
 * Ownership: struct aggregator owns the consumer, the writer, the pending list and the
 * partition table; a flush either applies the whole pending list or none of it.
 */
#ifndef AGGREGATOR_AGGREGATOR_H
#define AGGREGATOR_AGGREGATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_metrics.h"
#include "tm/tm_net.h"

#define AGG_MAX_EXTRA 32
#define AGG_MAX_PARTITIONS 1024
#define AGG_MAX_RISK 64

/* ---- config ------------------------------------------------------------------------ */

struct agg_config {
    /* [aggregator] */
    char admin[TM_ADDR_LEN];
    char log_level[16];
    bool log_syslog;
    int64_t flush_interval_ms;
    int64_t flush_events;
    int64_t allowed_lateness_ms;
    int64_t max_future_ms;
    int64_t dedup_horizon_ms;
    int64_t top_sources;
    int64_t feed_min_severity;
    int64_t feed_maxlen;
    /* [trend] */
    int64_t trend_alpha_pct;     /* EWMA smoothing factor, percent */
    int64_t trend_baseline_days; /* days before the current one the baseline looks at */
    int64_t trend_ratio_k;       /* anomaly when today >= k x baseline */
    /* [risk]: sector = criticality weight, overriding tm_sectors[].criticality */
    struct {
        char sector[32];
        int64_t weight;
    } risk_weights[AGG_MAX_RISK];
    int risk_weight_count;
    /* [retention] */
    int64_t retain_minute_ms, retain_hour_ms, retain_day_ms, retain_sources_ms, retain_agents_ms;
    /* [kafka] */
    char kafka[1024];
    char group[128];
    char topic_events[128], topic_heartbeats[128];
    int64_t session_timeout_ms;
    /* [redis] */
    char redis[TM_ADDR_LEN];
    char redis_username[128];
    char redis_password[256]; /* never logged */
    int64_t redis_db;
    int64_t redis_timeout_ms;
    /* [kafka.librdkafka]: passed through ("key=value") */
    char *kafka_extra[AGG_MAX_EXTRA + 1];
    int kafka_extra_count;
};

/* Fills defaults, reads path (may be NULL). Returns 0 or -1 with err. */
int agg_config_load(struct agg_config *cfg, const char *path, char *err);
/* Applies one command-line override by its long option name ("kafka", "redis", ...). */
int agg_config_override(struct agg_config *cfg, const char *name, const char *value, char *err);
void agg_config_free(struct agg_config *cfg);

/* ---- windows (window.c, pure) ------------------------------------------------------ */

enum agg_res { AGG_1M = 0, AGG_1H = 1, AGG_1D = 2, AGG_RES_COUNT };

#define AGG_TS_NONE INT64_MIN /* no event time seen yet */
#define AGG_LABEL_LEN 16      /* "YYYYMMDDHHMM" + NUL, with room */

/* "1m", "1h" or "1d". */
const char *agg_res_name(enum agg_res r);
/* Length of a window in ms. */
int64_t agg_res_len_ms(enum agg_res r);
/* Start (ms) of the window of resolution r holding ts (floor, also before 1970). */
int64_t agg_window_start(int64_t ts, enum agg_res r);
/*
 * Writes the UTC label of the window holding ts into out (AGG_LABEL_LEN bytes):
 * 1m "YYYYMMDDHHMM", 1h "YYYYMMDDHH", 1d "YYYYMMDD". Returns 0, or -1 out of range.
 */
int agg_window_label(int64_t ts, enum agg_res r, char *out, size_t outlen);
/* The hour label of ts (dedup buckets), same as agg_window_label(ts, AGG_1H, ...). */
int agg_hour_label(int64_t ts, char *out, size_t outlen);

/*
 * Watermark of a partition: its greatest event time minus the allowed lateness, or
 * AGG_TS_NONE before the first event.
 */
int64_t agg_watermark(int64_t max_ts, int64_t lateness_ms);
/*
 * The greatest event time after an event with time ts received (collector clock) at
 * received: an event time is believed at most max_future_ms past its receive time, so
 * one bad clock cannot push the watermark into the future and make everything late.
 */
int64_t agg_max_ts_advance(int64_t max_ts, int64_t ts, int64_t received, int64_t max_future_ms);

#define AGG_WIN_1M (1u << AGG_1M)
#define AGG_WIN_1H (1u << AGG_1H)
#define AGG_WIN_1D (1u << AGG_1D)
/*
 * Which windows an event at ts still goes to when its partition's watermark is wm:
 * 1m only when it is not late (ts >= wm); 1h and 1d while the window is retained, that
 * is while window end + retain[r] > wm. retain is indexed by enum agg_res.
 */
unsigned agg_window_mask(int64_t ts, int64_t wm, const int64_t retain_ms[AGG_RES_COUNT]);

/* ---- batch (batch.c, pure) --------------------------------------------------------- */

/*
 * Entry kinds. Sorted emission groups entries by kind, then key, so one group becomes
 * one Redis command (or script call).
 */
#define AGG_K_EXPIRE 'E' /* key -> TTL in seconds (largest wins) */
#define AGG_K_HINCR 'H'  /* key, field -> increment */
#define AGG_K_PFADD 'P'  /* key, member */
#define AGG_K_SADD 'S'   /* key, member */
#define AGG_K_ZINCR 'Z'  /* key, member -> increment */

enum agg_op { AGG_OP_SUM, AGG_OP_MIN, AGG_OP_MAX };

struct agg_batch;

/* Returns NULL on allocation failure. */
struct agg_batch *agg_batch_create(void);
void agg_batch_destroy(struct agg_batch *b);
/* Forgets every entry (keeps the memory for the next flush). */
void agg_batch_clear(struct agg_batch *b);
/* Number of distinct entries. */
size_t agg_batch_count(const struct agg_batch *b);
/*
 * Adds (op SUM), or keeps the smaller / greater (MIN / MAX) of, v under (kind, key,
 * member); member may be "" but not contain '\x1f'. Returns 0, or -1 out of memory.
 */
int agg_batch_put(struct agg_batch *b, char kind, const char *key, const char *member, int64_t v,
                  enum agg_op op);
/*
 * Adds (kind, key, member) -> v unless that entry exists. Returns 1 when it was added, 0
 * when it existed (its value, unchanged, in *old when old is not NULL), -1 out of memory.
 */
int agg_batch_insert(struct agg_batch *b, char kind, const char *key, const char *member, int64_t v,
                     int64_t *old);
/* Looks an entry up. Returns 0 with *v, or -1 when absent. */
int agg_batch_get(const struct agg_batch *b, char kind, const char *key, const char *member,
                  int64_t *v);

/* One group of entries sharing kind and key; members sorted, n >= 1. */
struct agg_group {
    char kind;
    const char *key;
    const char *const *members;
    const int64_t *values;
    size_t n;
};
/*
 * Calls cb once per group, groups in (kind, key) order. Stops at and returns the first
 * non-zero result of cb; returns -1 out of memory, else 0.
 */
int agg_batch_emit(struct agg_batch *b, int (*cb)(void *arg, const struct agg_group *g), void *arg);

/* ---- pending events and heartbeats ------------------------------------------------- */

enum agg_topic { AGG_TOPIC_EVENTS = 0, AGG_TOPIC_HEARTBEATS = 1, AGG_TOPIC_COUNT };

/* What a flush needs of an event (struct tm_event is ~10 KB; this is ~500 bytes). */
struct agg_event {
    int32_t partition;
    unsigned windows; /* AGG_WIN_* mask decided at intake */
    bool late;
    int severity;
    int64_t ts, count, seq;
    int64_t clock_ts; /* ts, at most received + max_future: moves the rolling anchor */
    char id[TM_EVENT_ID_MAX + 1];
    char operator_id[TM_EVENT_NAME_MAX + 1];
    char agent[TM_EVENT_ID_MAX + 1];
    char sector[32], region[8], category[32];
    char technique[16], tactic[40];
    char src_ip[46];
    char *summary; /* severity >= feed_min_severity only (malloc'd): for the tm:feed entry */
};

struct agg_heartbeat {
    char operator_id[TM_EVENT_NAME_MAX + 1];
    char agent[TM_EVENT_ID_MAX + 1];
    char sector[32], region[8];
    char version[32];
    char last_error[256];
    int64_t received, ts, uptime_s, spool_events, spool_bytes, lost_events, next_seq;
};

/* ---- stats (stats.c) --------------------------------------------------------------- */

struct agg_stats;

/*
 * The increments of the accepted events of one flush: agg_stats_add files each event
 * under its profiles (what one group of keys sees of it), agg_stats_emit expands every
 * profile once into batch entries. Returns NULL on allocation failure.
 */
struct agg_stats *agg_stats_create(void);
void agg_stats_destroy(struct agg_stats *s);
/* Forgets every event added (keeps the memory). */
void agg_stats_clear(struct agg_stats *s);
/* Adds an accepted (not duplicate) event. Returns 0, or -1 out of memory (then clear s). */
int agg_stats_add(struct agg_stats *s, const struct agg_event *e);
/* Adds the increments of every event added since the last clear to b. Returns 0 or -1. */
int agg_stats_emit(const struct agg_stats *s, struct agg_batch *b, const struct agg_config *cfg);
/*
 * Decodes a tm.heartbeats message (docs/protocols.md, "Agent heartbeats"). Returns 0, or
 * -1 with the reason in err.
 */
int agg_heartbeat_decode(struct agg_heartbeat *hb, const char *json, size_t len, char *err);

/* ---- rolling figures, trend, risk (trend.c) --------------------------------------- */

/*
 * The Lua script a flush runs once per sector it touched (and once nationally), after the
 * window increments, inside the same MULTI/EXEC. KEYS: roll hash, trend hash, risk sorted
 * set. ARGV: key prefix ("tm:s:energy" or "tm:n"), candidate anchor (ms), TTL (s), alpha
 * (percent), baseline days, k, criticality weight, risk member (sector; "" nationally).
 * Formulas: docs/aggregator.md, "Rolling figures, trend and risk".
 */
extern const char agg_trend_script[];
/* Criticality weight of a sector: [risk] in the config, else tm_sectors[], else 1. */
int64_t agg_risk_weight(const struct agg_config *cfg, const char *sector);

/* ---- partitions -------------------------------------------------------------------- */

struct agg_part {
    enum agg_topic topic;
    int32_t partition;
    bool resync;            /* state unknown (Redis unreachable): paused, messages dropped */
    int64_t stored_next;    /* next offset as stored in Redis; -1 = nothing stored */
    int64_t stored_max_ts;  /* greatest event time as stored; AGG_TS_NONE = none */
    int64_t pending_next;   /* next offset after what is pending; -1 = take any */
    int64_t pending_max_ts; /* greatest event time including what is pending */
    bool dirty;             /* pending_next moved since the last flush */

    /* consumer lag (consumer.c) */
    struct tm_gauge *lag;       /* tm_aggregator_consumer_lag_messages; NULL until known */
    int64_t asked_lo, asked_hi; /* watermarks asked of the broker while paused; -1 = none */
};

/* ---- redis writer (redis_writer.c) ------------------------------------------------- */

struct agg_redis;

/* Creates an unconnected writer. Returns NULL on allocation failure. */
struct agg_redis *agg_redis_create(const struct agg_config *cfg);
void agg_redis_destroy(struct agg_redis *r);
/* Connects (AUTH, SELECT, PING) when not connected. Returns 0, or -1 with err. */
int agg_redis_connect(struct agg_redis *r, char *err);
bool agg_redis_connected(const struct agg_redis *r);
/* Drops the connection (after an error: the next call reconnects). */
void agg_redis_disconnect(struct agg_redis *r);
/* Redis commands sent so far (for commands-per-event). */
uint64_t agg_redis_commands(const struct agg_redis *r);
/*
 * Reads the stored next offset and greatest event time of parts[0..n) into their
 * stored_* and pending_* fields. Returns 0, or -1 with err (connection dropped).
 */
int agg_redis_load_parts(struct agg_redis *r, const char *group, const char *const topics[],
                         struct agg_part *const *parts, size_t n, char *err);

/* What one flush writes. */
struct agg_flush {
    struct agg_event *events;
    size_t nevents;
    struct agg_heartbeat *heartbeats;
    size_t nheartbeats;
    const struct agg_part *const *parts; /* dirty partitions: their offsets move */
    size_t nparts;
    const char *group;
    const char *const *topics; /* indexed by enum agg_topic */
    /* results */
    size_t applied, duplicates;
};

enum agg_flush_result {
    AGG_FLUSH_OK = 0,
    AGG_FLUSH_CONFLICT = 1, /* a fence failed: another member wrote these partitions */
    AGG_FLUSH_ERROR = -1,   /* Redis unreachable or refused: nothing known to be applied */
};

/*
 * The exactly-once step (docs/aggregator.md), first half: WATCH the partitions' offset
 * keys, read them and the dedup membership of every event id, check the stored offsets
 * are the ones this member last wrote (the fence: each part's stored_next), then send
 * MULTI, every increment, the dedup ids, the parts' pending_next and pending_max_ts as
 * the new offsets and watermarks, PUBLISH, EXEC, without waiting for the replies. b is
 * scratch (cleared first); f's events are not referenced after the call returns.
 * OK: the transaction is in flight, and agg_redis_flush_wait must be called before the
 * connection is used again (agg_redis_flush and agg_redis_load_parts fail until then).
 * CONFLICT: a fence failed before MULTI; nothing was sent. ERROR: the connection was
 * dropped; nothing of this flush is in Redis.
 */
enum agg_flush_result agg_redis_flush(struct agg_redis *r, const struct agg_config *cfg,
                                      struct agg_batch *b, struct agg_flush *f, char *err);
/*
 * Second half: reads the replies of the flush in flight (OK when there is none). OK: it
 * was applied whole. CONFLICT: EXEC returned nil (a watched offset key changed): nothing
 * was applied. ERROR: the connection was dropped, and the flush may or may not have been
 * applied; the stored offsets say which (they were part of it): callers re-read them.
 */
enum agg_flush_result agg_redis_flush_wait(struct agg_redis *r, char *err);

/* ---- consumer (consumer.c) --------------------------------------------------------- */

struct agg_consumer;

struct agg_metrics {
    struct tm_metrics *registry; /* for the lag series of the partitions owned */
    struct tm_counter *consumed, *applied, *duplicates, *late, *invalid, *heartbeats;
    struct tm_counter *flushes, *flush_errors, *conflicts, *redis_commands;
    struct tm_gauge *partitions, *pending, *redis_up;
    struct tm_histogram *flush_seconds;
};

/*
 * Creates the group member (cooperative-sticky, no auto commit) subscribed to the events
 * and heartbeats topics. cfg, r and m are borrowed. Returns NULL with err.
 */
struct agg_consumer *agg_consumer_create(const struct agg_config *cfg, struct agg_redis *r,
                                         struct agg_metrics *m, char *err);
/*
 * Polls Kafka for up to timeout_ms, takes in what arrived, and flushes when the pending
 * list is full or old enough. Handles Redis outages: pauses every partition, retries with
 * backoff, re-reads stored offsets and resumes. Returns 0, or -1 on a fatal error.
 */
int agg_consumer_run_once(struct agg_consumer *c, int timeout_ms);
/* True while Redis answers and no partition waits for a resync. */
bool agg_consumer_healthy(const struct agg_consumer *c);
/* Flushes what is pending, leaves the group (revoking flushes again), frees. */
void agg_consumer_destroy(struct agg_consumer *c);

#endif
