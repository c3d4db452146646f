/*
 * tm_metrics.c - the metrics registry behind GET /metrics: families of counters, gauges
 * and histograms, each family holding one series per label set, rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * Layout: the registry keeps its families in a list in creation order; a family has its
 * name, help, type (and bucket bounds for a histogram) and a list of series in creation
 * order. A series is the label set plus the value, and is the object handed out as
 * struct tm_counter, tm_gauge or tm_histogram (the label set is their first member).
 *
 * Concurrency: lookups and creation (get-or-create by name and label set) and rendering
 * take the registry's mutex; updates never do. Counters are uint64 updated with atomic
 * adds; a gauge and a histogram's sum are doubles kept as uint64 bit patterns and
 * updated with compare-and-swap; histogram buckets are per-bucket atomic counts, summed
 * into the cumulative "le" counts while rendering, and _count is rendered as the +Inf
 * bucket so the two always agree in one scrape.
 *
 * Invariants: names and label names are checked once, when created; a name keeps its
 * first type (and bounds), help and position; series live until tm_metrics_destroy(),
 * except gauges removed with tm_metrics_remove_gauge() (unlinked and freed under the
 * mutex, so a render never sees half of one).
 */
#include "tm/tm_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_common.h"

/* Hard limits: label pairs per series, histogram bounds (the header promises 32). */
#define MAX_LABELS 16
#define MAX_BOUNDS 32
/* Room for any rendered double: "%.17g" needs at most 24 bytes. */
#define NUM_LEN 32

enum family_type { FAMILY_COUNTER, FAMILY_GAUGE, FAMILY_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* One label set of a family; the first member of each metric object. */
struct series {
    struct series *next;
    size_t nlabels;
    char **labels; /* 2 * nlabels strings: name, value, name, value, ... */
};

/*
 * A counter is incremented from several threads at once (a collector's workers share
 * their series): each thread adds to its own slot, 64 bytes from the next, so the
 * increments do not bounce one cache line between cores. Reading sums the slots.
 */
#define COUNTER_SLOTS 8

struct counter_slot {
    uint64_t v;
    char pad[56];
};

struct tm_counter {
    struct series s;
    struct counter_slot slot[COUNTER_SLOTS];
};

/* This thread's slot index: threads take indexes in turn as they first count. */
static unsigned counter_slot(void)
{
    static unsigned next;
    static _Thread_local unsigned mine = COUNTER_SLOTS;

    if (mine == COUNTER_SLOTS)
        mine = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % COUNTER_SLOTS;
    return mine;
}

struct tm_gauge {
    struct series s;
    uint64_t bits; /* the double's bit pattern */
};

struct tm_histogram {
    struct series s;
    const double *bounds; /* the family's; nbounds of them */
    size_t nbounds;
    uint64_t buckets[MAX_BOUNDS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t sum_bits;
};

struct family {
    struct family *next;
    char *name;
    char *help;
    enum family_type type;
    double bounds[MAX_BOUNDS];
    size_t nbounds;
    struct series *first, *last;
};

struct tm_metrics {
    pthread_mutex_t lock;
    struct family *first, *last;
};

/* The label pairs of one call, borrowed from the caller. */
struct label_set {
    size_t n;
    const char *pairs[2 * MAX_LABELS];
};

static uint64_t double_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

/* Adds delta to the double stored as bits at *p, retrying when another thread won. */
static void atomic_add_double(uint64_t *p, double delta)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    uint64_t sum;

    do {
        sum = double_bits(bits_double(old) + delta);
    } while (!__atomic_compare_exchange_n(p, &old, sum, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static bool valid_metric_name(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || *c == ':';
        if (!alpha && (c == s || *c < '0' || *c > '9'))
            return false;
    }
    return true;
}

/* Label names: [a-zA-Z_][a-zA-Z0-9_]*, and names starting with "__" are reserved. */
static bool valid_label_name(const char *s)
{
    if (s == NULL || *s == '\0' || strncmp(s, "__", 2) == 0)
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_';
        if (!alpha && (c == s || *c < '0' || *c > '9'))
            return false;
    }
    return true;
}

/*
 * Reads the NULL-terminated name, value pairs of ap into ls. Returns 0, or -1 for a bad
 * or repeated label name, a missing value, too many pairs, or "le" on a histogram.
 */
static int read_labels(va_list ap, enum family_type type, struct label_set *ls)
{
    const char *name, *value;

    ls->n = 0;
    while ((name = va_arg(ap, const char *)) != NULL) {
        value = va_arg(ap, const char *);
        if (value == NULL || ls->n == MAX_LABELS || !valid_label_name(name))
            return -1;
        if (type == FAMILY_HISTOGRAM && strcmp(name, "le") == 0)
            return -1;
        for (size_t i = 0; i < ls->n; i++)
            if (strcmp(ls->pairs[2 * i], name) == 0)
                return -1;
        ls->pairs[2 * ls->n] = name;
        ls->pairs[2 * ls->n + 1] = value;
        ls->n++;
    }
    return 0;
}

/* Whether the series has exactly the labels of ls, in any order. */
static bool same_labels(const struct series *s, const struct label_set *ls)
{
    if (s->nlabels != ls->n)
        return false;
    for (size_t i = 0; i < ls->n; i++) {
        bool found = false;
        for (size_t j = 0; j < s->nlabels && !found; j++)
            found = strcmp(s->labels[2 * j], ls->pairs[2 * i]) == 0 &&
                    strcmp(s->labels[2 * j + 1], ls->pairs[2 * i + 1]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static void series_free(struct series *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < 2 * s->nlabels; i++)
        free(s->labels[i]);
    free(s->labels);
    free(s);
}

/* Allocates a zeroed metric object of size bytes whose series holds a copy of ls. */
static struct series *series_new(size_t size, const struct label_set *ls)
{
    struct series *s = calloc(1, size);

    if (s == NULL)
        return NULL;
    if (ls->n > 0) {
        s->labels = calloc(2 * ls->n, sizeof(*s->labels));
        if (s->labels == NULL)
            goto fail;
        s->nlabels = ls->n;
        for (size_t i = 0; i < 2 * ls->n; i++)
            if ((s->labels[i] = strdup(ls->pairs[i])) == NULL)
                goto fail;
    }
    return s;
fail:
    series_free(s);
    return NULL;
}

static void family_free(struct family *f)
{
    struct series *s, *next;

    if (f == NULL)
        return;
    for (s = f->first; s != NULL; s = next) {
        next = s->next;
        series_free(s);
    }
    free(f->name);
    free(f->help);
    free(f);
}

static struct family *family_new(const char *name, const char *help, enum family_type type,
                                 const double *bounds, size_t nbounds)
{
    struct family *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help != NULL ? help : "");
    if (f->name == NULL || f->help == NULL) {
        family_free(f);
        return NULL;
    }
    if (nbounds > 0)
        memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
    f->nbounds = nbounds;
    return f;
}

static bool valid_bounds(const double *bounds, size_t nbounds)
{
    if (nbounds > MAX_BOUNDS || (nbounds > 0 && bounds == NULL))
        return false;
    for (size_t i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return false;
    }
    return true;
}

/*
 * The get-or-create behind the three constructors: finds the family by name (checking
 * its type and bounds) and the series by label set, creating what is missing.
 */
static struct series *get_or_create(struct tm_metrics *m, enum family_type type, const char *name,
                                    const char *help, const double *bounds, size_t nbounds,
                                    va_list ap)
{
    struct label_set ls;
    struct family *f = NULL, *new_family = NULL;
    struct series *s = NULL, *result = NULL;
    size_t size;

    if (m == NULL || !valid_metric_name(name) || read_labels(ap, type, &ls) != 0)
        return NULL;
    if (type == FAMILY_HISTOGRAM && !valid_bounds(bounds, nbounds))
        return NULL;
    pthread_mutex_lock(&m->lock);
    for (f = m->first; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f != NULL) {
        if (f->type != type)
            goto out;
        if (type == FAMILY_HISTOGRAM &&
            (f->nbounds != nbounds ||
             (nbounds > 0 && memcmp(f->bounds, bounds, nbounds * sizeof(*bounds)) != 0)))
            goto out;
        for (s = f->first; s != NULL; s = s->next)
            if (same_labels(s, &ls)) {
                result = s;
                goto out;
            }
    } else {
        f = new_family = family_new(name, help, type, bounds, nbounds);
        if (f == NULL)
            goto out;
    }
    size = type == FAMILY_COUNTER ? sizeof(struct tm_counter)
           : type == FAMILY_GAUGE ? sizeof(struct tm_gauge)
                                  : sizeof(struct tm_histogram);
    s = series_new(size, &ls);
    if (s == NULL)
        goto out;
    if (type == FAMILY_HISTOGRAM) {
        struct tm_histogram *h = (struct tm_histogram *)s;
        h->bounds = f->bounds;
        h->nbounds = f->nbounds;
    }
    if (f->last != NULL)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    if (new_family != NULL) {
        if (m->last != NULL)
            m->last->next = new_family;
        else
            m->first = new_family;
        m->last = new_family;
        new_family = NULL;
    }
    result = s;
out:
    pthread_mutex_unlock(&m->lock);
    family_free(new_family);
    return result;
}

struct tm_metrics *tm_metrics_create(void)
{
    struct tm_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void tm_metrics_destroy(struct tm_metrics *m)
{
    struct family *f, *next;

    if (m == NULL)
        return;
    for (f = m->first; f != NULL; f = next) {
        next = f->next;
        family_free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

struct tm_counter *tm_metrics_counter(struct tm_metrics *m, const char *name, const char *help, ...)
{
    struct series *s;
    va_list ap;

    va_start(ap, help);
    s = get_or_create(m, FAMILY_COUNTER, name, help, NULL, 0, ap);
    va_end(ap);
    return (struct tm_counter *)s;
}

struct tm_gauge *tm_metrics_gauge(struct tm_metrics *m, const char *name, const char *help, ...)
{
    struct series *s;
    va_list ap;

    va_start(ap, help);
    s = get_or_create(m, FAMILY_GAUGE, name, help, NULL, 0, ap);
    va_end(ap);
    return (struct tm_gauge *)s;
}

struct tm_histogram *tm_metrics_histogram(struct tm_metrics *m, const char *name, const char *help,
                                          const double *bounds, size_t nbounds, ...)
{
    struct series *s;
    va_list ap;

    va_start(ap, nbounds);
    s = get_or_create(m, FAMILY_HISTOGRAM, name, help, bounds, nbounds, ap);
    va_end(ap);
    return (struct tm_histogram *)s;
}

void tm_metrics_remove_gauge(struct tm_metrics *m, struct tm_gauge *g)
{
    if (m == NULL || g == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    for (struct family *f = m->first; f != NULL; f = f->next) {
        struct series *prev = NULL;
        if (f->type != FAMILY_GAUGE)
            continue;
        for (struct series *s = f->first; s != NULL; prev = s, s = s->next) {
            if (s != &g->s)
                continue;
            if (prev == NULL)
                f->first = s->next;
            else
                prev->next = s->next;
            if (f->last == s)
                f->last = prev;
            series_free(s);
            goto out;
        }
    }
out:
    pthread_mutex_unlock(&m->lock);
}

void tm_counter_add(struct tm_counter *c, uint64_t n)
{
    if (c != NULL)
        __atomic_fetch_add(&c->slot[counter_slot()].v, n, __ATOMIC_RELAXED);
}

void tm_counter_inc(struct tm_counter *c)
{
    tm_counter_add(c, 1);
}

uint64_t tm_counter_value(const struct tm_counter *c)
{
    uint64_t sum = 0;

    for (int i = 0; c != NULL && i < COUNTER_SLOTS; i++)
        sum += __atomic_load_n(&c->slot[i].v, __ATOMIC_RELAXED);
    return sum;
}

void tm_gauge_set(struct tm_gauge *g, double v)
{
    if (g != NULL)
        __atomic_store_n(&g->bits, double_bits(v), __ATOMIC_RELAXED);
}

void tm_gauge_add(struct tm_gauge *g, double delta)
{
    if (g != NULL)
        atomic_add_double(&g->bits, delta);
}

double tm_gauge_value(const struct tm_gauge *g)
{
    return g != NULL ? bits_double(__atomic_load_n(&g->bits, __ATOMIC_RELAXED)) : 0.0;
}

void tm_histogram_observe(struct tm_histogram *h, double v)
{
    size_t i = 0;

    if (h == NULL)
        return;
    /* Bucket i counts bounds[i-1] < v <= bounds[i]; NaN lands in +Inf. */
    while (i < h->nbounds && !(v <= h->bounds[i]))
        i++;
    __atomic_fetch_add(&h->buckets[i], 1, __ATOMIC_RELAXED);
    atomic_add_double(&h->sum_bits, v);
}

uint64_t tm_histogram_count(const struct tm_histogram *h)
{
    uint64_t n = 0;

    if (h == NULL)
        return 0;
    for (size_t i = 0; i <= h->nbounds; i++)
        n += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
    return n;
}

/* Growing output buffer; after a failed allocation every append is a no-op. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        char *p;

        while (b->len + n + 1 > cap)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Appends s with the given characters escaped: '\\' and '\n' always, '"' when quoted. */
static void sb_escaped(struct sbuf *b, const char *s, bool quoted)
{
    const char *run = s;

    for (; *s != '\0'; s++) {
        const char *esc = NULL;

        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quoted)
            esc = "\\\"";
        if (esc != NULL) {
            sb_add(b, run, (size_t)(s - run));
            sb_str(b, esc);
            run = s + 1;
        }
    }
    sb_add(b, run, (size_t)(s - run));
}

/*
 * Formats v as Prometheus expects: integers without a fraction or exponent, NaN and
 * +Inf/-Inf by name, anything else with the fewest digits (up to 17) that read back as
 * the same double.
 */
static void format_number(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        tm_strlcpy(out, "NaN", outlen);
    } else if (isinf(v)) {
        tm_strlcpy(out, v > 0 ? "+Inf" : "-Inf", outlen);
    } else if (v == trunc(v) && fabs(v) < 1e15) {
        snprintf(out, outlen, "%lld", (long long)v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, outlen, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

static void sb_number(struct sbuf *b, double v)
{
    char num[NUM_LEN];

    format_number(v, num, sizeof(num));
    sb_str(b, num);
}

static void sb_uint(struct sbuf *b, uint64_t v)
{
    char num[NUM_LEN];

    snprintf(num, sizeof(num), "%" PRIu64, v);
    sb_str(b, num);
}

/* Appends "{name="value",...}" with an optional extra label last; nothing when empty. */
static void sb_labels(struct sbuf *b, const struct series *s, const char *extra,
                      const char *extra_value)
{
    if (s->nlabels == 0 && extra == NULL)
        return;
    sb_str(b, "{");
    for (size_t i = 0; i < s->nlabels; i++) {
        if (i > 0)
            sb_str(b, ",");
        sb_str(b, s->labels[2 * i]);
        sb_str(b, "=\"");
        sb_escaped(b, s->labels[2 * i + 1], true);
        sb_str(b, "\"");
    }
    if (extra != NULL) {
        if (s->nlabels > 0)
            sb_str(b, ",");
        sb_str(b, extra);
        sb_str(b, "=\"");
        sb_str(b, extra_value);
        sb_str(b, "\"");
    }
    sb_str(b, "}");
}

static void render_histogram(struct sbuf *b, const struct family *f, const struct tm_histogram *h)
{
    char le[NUM_LEN];
    uint64_t cumulative = 0;

    for (size_t i = 0; i <= h->nbounds; i++) {
        cumulative += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
        if (i < h->nbounds)
            format_number(h->bounds[i], le, sizeof(le));
        else
            tm_strlcpy(le, "+Inf", sizeof(le));
        sb_str(b, f->name);
        sb_str(b, "_bucket");
        sb_labels(b, &h->s, "le", le);
        sb_str(b, " ");
        sb_uint(b, cumulative);
        sb_str(b, "\n");
    }
    sb_str(b, f->name);
    sb_str(b, "_sum");
    sb_labels(b, &h->s, NULL, NULL);
    sb_str(b, " ");
    sb_number(b, bits_double(__atomic_load_n(&h->sum_bits, __ATOMIC_RELAXED)));
    sb_str(b, "\n");
    sb_str(b, f->name);
    sb_str(b, "_count");
    sb_labels(b, &h->s, NULL, NULL);
    sb_str(b, " ");
    sb_uint(b, cumulative);
    sb_str(b, "\n");
}

static void render_family(struct sbuf *b, const struct family *f)
{
    sb_str(b, "# HELP ");
    sb_str(b, f->name);
    sb_str(b, " ");
    sb_escaped(b, f->help, false);
    sb_str(b, "\n# TYPE ");
    sb_str(b, f->name);
    sb_str(b, " ");
    sb_str(b, type_names[f->type]);
    sb_str(b, "\n");
    for (const struct series *s = f->first; s != NULL; s = s->next) {
        if (f->type == FAMILY_HISTOGRAM) {
            render_histogram(b, f, (const struct tm_histogram *)s);
            continue;
        }
        sb_str(b, f->name);
        sb_labels(b, s, NULL, NULL);
        sb_str(b, " ");
        if (f->type == FAMILY_COUNTER)
            sb_uint(b, tm_counter_value((const struct tm_counter *)s));
        else
            sb_number(b, tm_gauge_value((const struct tm_gauge *)s));
        sb_str(b, "\n");
    }
}

char *tm_metrics_render(struct tm_metrics *m, size_t *len)
{
    struct sbuf b = {NULL, 0, 0, false};

    if (m == NULL)
        return NULL;
    sb_add(&b, "", 0); /* an empty registry renders as "" */
    pthread_mutex_lock(&m->lock);
    for (const struct family *f = m->first; f != NULL; f = f->next)
        render_family(&b, f);
    pthread_mutex_unlock(&m->lock);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len != NULL)
        *len = b.len;
    return b.p;
}
