/*
 * rate.h - per-operator token buckets, shared by every worker of a collector.
 *
 * A bucket fills at per_sec events per second up to burst events (one second's worth when
 * burst is 0) and starts full. Two ways to take from it:
 *   rate_try     (HTTP) all of n or nothing: a request either fits or gets 429 and the
 *                time after which it would fit. A full bucket admits a request larger than
 *                itself and goes into debt, so a big batch slows its sender instead of
 *                failing forever.
 *   rate_charge  (Lumberjack) n always: the events are already on their way. Returns how
 *                long the sender must wait until the bucket is out of debt; the caller stops
 *                reading that connection for that long, so the sender slows down and loses
 *                nothing.
 * At most RATE_BUCKETS_MAX operators have a bucket; past that the least recently seen one
 * is forgotten (it starts full again). A NULL limiter (per_sec 0) limits nothing.
 * Thread-safe.
 */
#ifndef COLLECTOR_RATE_H
#define COLLECTOR_RATE_H

#include <stdbool.h>
#include <stdint.h>

#define RATE_BUCKETS_MAX 4096

struct rate_limiter;

/* NULL when per_sec is 0 (no limit) or memory ran out (then also no limit). */
struct rate_limiter *rate_create(int64_t per_sec, int64_t burst);
void rate_free(struct rate_limiter *rl);

/* True when op may send n events now (they are taken); else *wait_ms says when it may. */
bool rate_try(struct rate_limiter *rl, const char *op, long n, int64_t now_ms, int64_t *wait_ms);

/* Takes n events; returns the ms until op's bucket is out of debt (0: it is not in debt). */
int64_t rate_charge(struct rate_limiter *rl, const char *op, long n, int64_t now_ms);

#endif
