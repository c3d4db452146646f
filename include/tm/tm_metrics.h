/*
 * tm_metrics.h - a registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * Metrics are created (or found again) by name plus label pairs; creating the same name
 * and labels twice returns the same object, so code may look a metric up lazily (for
 * example a rejection counter per reason). Updates are lock-free atomics and safe from
 * any thread; creation, removal and rendering take the registry's mutex. Metric objects
 * are owned by the registry and live until tm_metrics_destroy(), or, for a gauge, until
 * tm_metrics_remove_gauge().
 *
 * Label arguments are NULL-terminated pairs: name, value, name, value, ..., NULL (at most
 * 16 pairs; the order does not matter for finding a series again). The update functions
 * accept NULL and do nothing, so a failed lookup passed straight to tm_counter_inc() is
 * harmless.
 */
#ifndef TM_METRICS_H
#define TM_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct tm_metrics;
struct tm_counter;
struct tm_gauge;
struct tm_histogram;

/* Creates an empty registry. Returns NULL on allocation failure. */
struct tm_metrics *tm_metrics_create(void);

/* Frees the registry and every metric in it. */
void tm_metrics_destroy(struct tm_metrics *m);

/*
 * Returns the counter with this name and labels, creating it at 0. Returns NULL when the
 * name or a label name is not a valid Prometheus identifier (label names starting with
 * "__" are reserved), when a label is repeated or has no value, when the name is already
 * used by a metric of another type, or on allocation failure. The first help given for a
 * name is the one rendered.
 */
struct tm_counter *tm_metrics_counter(struct tm_metrics *m, const char *name, const char *help, ...)
    __attribute__((sentinel));

/* Same as tm_metrics_counter, for a gauge (a value that goes up and down). */
struct tm_gauge *tm_metrics_gauge(struct tm_metrics *m, const char *name, const char *help, ...)
    __attribute__((sentinel));

/*
 * Same as tm_metrics_counter, for a histogram with the given finite, strictly ascending
 * upper bounds (the +Inf bucket is implicit). nbounds is at most 32. Every series of a
 * name has the same bounds: other bounds, or a label named "le", return NULL.
 */
struct tm_histogram *tm_metrics_histogram(struct tm_metrics *m, const char *name, const char *help,
                                          const double *bounds, size_t nbounds, ...)
    __attribute__((sentinel));

/*
 * Removes the gauge series g (from tm_metrics_gauge on m) and frees it: renders no longer
 * show it, and g must not be used again by anyone. A series whose subject went away (a
 * partition this process no longer owns) is removed rather than left at a stale value;
 * looking the same name and labels up again creates a new series at 0. The family (its
 * name, help, type and position) stays. NULL, or a gauge not in m, is ignored.
 */
void tm_metrics_remove_gauge(struct tm_metrics *m, struct tm_gauge *g);

void tm_counter_add(struct tm_counter *c, uint64_t n);
void tm_counter_inc(struct tm_counter *c);
uint64_t tm_counter_value(const struct tm_counter *c);

void tm_gauge_set(struct tm_gauge *g, double v);
void tm_gauge_add(struct tm_gauge *g, double delta);
double tm_gauge_value(const struct tm_gauge *g);

void tm_histogram_observe(struct tm_histogram *h, double v);
/* Number of observations so far. */
uint64_t tm_histogram_count(const struct tm_histogram *h);

/*
 * Renders every metric, families in creation order, with # HELP and # TYPE lines.
 * Returns a NUL-terminated string the caller frees with free(), its length in *len
 * (when len is not NULL), or NULL on allocation failure.
 */
char *tm_metrics_render(struct tm_metrics *m, size_t *len);

#endif
