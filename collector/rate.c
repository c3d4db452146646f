/*
 * rate.c - per-operator token buckets (rate.h), and the two things every listener does
 * around them: pause a connection in debt, and report drops without flooding the log.
 */
#include "rate.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_log.h"
#include "tm/tm_metrics.h"
#include "tm/tm_time.h"

struct bucket {
    char op[TM_EVENT_NAME_MAX + 1];
    double tokens; /* below 0: debt */
    int64_t last_ms;
    long dropped;           /* rate_note_drop: since the last report */
    int64_t next_report_ms; /* rate_note_drop: 0 = the next drop is reported */
};

struct rate_limiter {
    pthread_mutex_t lock;
    double per_sec, cap;
    struct bucket *b;
    size_t n;
};

struct rate_limiter *rate_create(int64_t per_sec, int64_t burst)
{
    struct rate_limiter *rl;

    if (per_sec <= 0 || (rl = calloc(1, sizeof(*rl))) == NULL)
        return NULL;
    pthread_mutex_init(&rl->lock, NULL);
    rl->per_sec = (double)per_sec;
    rl->cap = burst > 0 ? (double)burst : (double)per_sec;
    return rl;
}

void rate_free(struct rate_limiter *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->b);
    free(rl);
}

/* op's bucket refilled up to now, or NULL when memory ran out. Under the lock. */
static struct bucket *bucket_of(struct rate_limiter *rl, const char *op, int64_t now_ms)
{
    struct bucket *b = NULL;

    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->b[i].op, op) == 0) {
            b = &rl->b[i];
            break;
        }
    if (b == NULL) {
        if (rl->n < RATE_BUCKETS_MAX) {
            struct bucket *nb = realloc(rl->b, (rl->n + 1) * sizeof(*nb));
            if (nb == NULL)
                return NULL;
            rl->b = nb;
            b = &rl->b[rl->n++];
        } else {
            b = &rl->b[0];
            for (size_t i = 1; i < rl->n; i++)
                if (rl->b[i].last_ms < b->last_ms)
                    b = &rl->b[i];
        }
        memset(b, 0, sizeof(*b));
        tm_strlcpy(b->op, op, sizeof(b->op));
        b->tokens = rl->cap;
        b->last_ms = now_ms;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rl->per_sec / 1000.0;
        if (b->tokens > rl->cap)
            b->tokens = rl->cap;
        b->last_ms = now_ms;
    }
    return b;
}

/* Milliseconds until tokens reach want, rounded up. */
static int64_t wait_for(const struct rate_limiter *rl, double tokens, double want)
{
    return tokens >= want ? 0 : (int64_t)((want - tokens) * 1000.0 / rl->per_sec) + 1;
}

bool rate_try(struct rate_limiter *rl, const char *op, long n, int64_t now_ms, int64_t *wait_ms)
{
    struct bucket *b;
    bool ok = true;

    if (rl == NULL)
        return true;
    pthread_mutex_lock(&rl->lock);
    b = bucket_of(rl, op, now_ms);
    if (b != NULL) {
        if (b->tokens >= (double)n || b->tokens >= rl->cap) {
            b->tokens -= (double)n;
        } else {
            ok = false;
            *wait_ms = wait_for(rl, b->tokens, (double)n < rl->cap ? (double)n : rl->cap);
        }
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

int64_t rate_charge(struct rate_limiter *rl, const char *op, long n, int64_t now_ms)
{
    struct bucket *b;
    int64_t wait = 0;

    if (rl == NULL)
        return 0;
    pthread_mutex_lock(&rl->lock);
    b = bucket_of(rl, op, now_ms);
    if (b != NULL) {
        b->tokens -= (double)n;
        wait = wait_for(rl, b->tokens, 0);
    }
    pthread_mutex_unlock(&rl->lock);
    return wait;
}

bool rate_throttle_charge(struct rate_limiter *rl, const char *op, long n, struct rate_throttle *t,
                          struct tm_counter *throttled, const char *listener, const char *peer)
{
    int64_t wait_ms;
    struct timeval tv;

    if (rl == NULL || n <= 0)
        return t->on;
    wait_ms = rate_charge(rl, op, n, tm_time_mono_ms());
    if (wait_ms <= 0 || t->on)
        return t->on;
    tv.tv_sec = (time_t)(wait_ms / 1000);
    tv.tv_usec = (suseconds_t)((wait_ms % 1000) * 1000);
    if (evtimer_add(t->timer, &tv) != 0)
        return t->on; /* cannot pause: the connection goes on unthrottled */
    t->on = true;
    tm_counter_inc(throttled);
    tm_log_debug("%s %s: operator '%s' over its rate: pausing %lld ms", listener, peer, op,
                 (long long)wait_ms);
    return true;
}

long rate_note_drop(struct rate_limiter *rl, const char *op, int64_t now_ms, int64_t every_ms)
{
    struct bucket *b;
    long report = 0;

    if (rl == NULL)
        return 0;
    pthread_mutex_lock(&rl->lock);
    b = bucket_of(rl, op, now_ms);
    if (b != NULL) {
        b->dropped++;
        if (now_ms >= b->next_report_ms) {
            report = b->dropped;
            b->dropped = 0;
            b->next_report_ms = now_ms + every_ms;
        }
    }
    pthread_mutex_unlock(&rl->lock);
    return report;
}
