/*
 * rate.h - per-operator token buckets, shared by every worker of a collector.
 *
 * A bucket fills at per_sec events per second up to burst events (one second's worth when
 * burst is 0) and starts full. Two ways to take from it:
 *   rate_try     (HTTP) all of n or nothing: a request either fits or gets 429 and the
 *                time after which it would fit. A full bucket admits a request larger than
 *                itself and goes into debt, so a big batch slows its sender instead of
 *                failing forever.
 *   rate_charge  (Lumberjack, syslog TCP) n always: the events are already on their way.
 *                Returns how long the sender must wait until the bucket is out of debt; the
 *                caller stops reading that connection for that long, so the sender slows
 *                down through TCP flow control and loses nothing. rate_throttle_charge does
 *                that for a connection: charge, arm its resume timer, count, log.
 * Syslog UDP uses rate_try with n = 1 and drops what does not fit (a datagram cannot be
 * slowed down); rate_note_drop lets it log that at most once a minute per operator.
 * At most RATE_BUCKETS_MAX operators have a bucket; past that the least recently seen one
 * is forgotten (it starts full again). A NULL limiter (per_sec 0) limits nothing.
 * Thread-safe (the throttle of one connection belongs to that connection's worker).
 */
#ifndef COLLECTOR_RATE_H
#define COLLECTOR_RATE_H

#include <stdbool.h>
#include <stdint.h>

#define RATE_BUCKETS_MAX 4096

struct event;
struct rate_limiter;
struct tm_counter;

/*
 * A connection's pause while its operator is in debt: timer is a one-shot evtimer the
 * connection creates and frees on its own loop; its callback clears on and resumes
 * reading. The connection does not read while on is set.
 */
struct rate_throttle {
    struct event *timer;
    bool on;
};

/* NULL when per_sec is 0 (no limit) or memory ran out (then also no limit). */
struct rate_limiter *rate_create(int64_t per_sec, int64_t burst);
void rate_free(struct rate_limiter *rl);

/* True when op may send n events now (they are taken); else *wait_ms says when it may. */
bool rate_try(struct rate_limiter *rl, const char *op, long n, int64_t now_ms, int64_t *wait_ms);

/* Takes n events; returns the ms until op's bucket is out of debt (0: it is not in debt). */
int64_t rate_charge(struct rate_limiter *rl, const char *op, long n, int64_t now_ms);

/*
 * rate_charge for a connection, now: when op's bucket is in debt and t is not on yet,
 * arms t->timer for the wait, sets t->on, adds one to throttled and logs it at debug
 * level as "LISTENER PEER: ...". Returns t->on: true while the caller must not read.
 */
bool rate_throttle_charge(struct rate_limiter *rl, const char *op, long n, struct rate_throttle *t,
                          struct tm_counter *throttled, const char *listener, const char *peer);

/*
 * Notes one event of op dropped for being over the rate. Returns how many were dropped
 * since the last report, this one included, when a report is due (op's first drop, or
 * the first one at least every_ms after the last report), else 0: the caller logs a
 * line when it gets more than 0, at most one per operator every every_ms.
 */
long rate_note_drop(struct rate_limiter *rl, const char *op, int64_t now_ms, int64_t every_ms);

#endif
