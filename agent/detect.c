/*
 * detect.c - the agent's detectors for one input (see detect.h for what each does).
 *
 * Data flow: detect_feed() first closes any rate intervals that time has ended, then
 * decides pass-through (copy the event, fill ATT&CK, fold or emit it), then counts the
 * event for its source's threshold and for the current rate interval. detect_tick()
 * closes intervals and ends suppression periods and fold windows whose time has come.
 *
 * State lives in two bounded tables of the same shape (struct table): a hash of
 * entries chained per bucket plus a recency list, most recently seen at the head, so
 * eviction takes the tail. Threshold sources are keyed by src.ip; fold keys by category,
 * technique, signature, src ip, dst ip and dst port. A source's sliding window is
 * WINDOW_BUCKETS counters of window/WINDOW_BUCKETS ms each, so its memory does not grow
 * with the attempt rate.
 *
 * Invariants: d->now never goes backwards; an entry in a table is on both its hash chain
 * and the recency list; a source that is firing has an empty window (attempts during
 * suppression go to 'further' only); every count an entry holds is emitted before the
 * entry is freed (period end, eviction, flush) except by detect_destroy.
 */
#include "detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"

#define WINDOW_BUCKETS 60
/* Closing more empty intervals than this at once changes nothing the EWMA can show. */
#define SPIKE_MAX_EMPTY 10000
#define DAY_MS (24LL * 3600 * 1000)

/* ---- ATT&CK by category ------------------------------------------------------------- */

static const struct {
    const char *category;
    const char *technique;
    const char *tactic;
} attack_map[] = {
    {"bruteforce", "T1110", "credential-access"}, /* Brute Force */
    {"ddos", "T1498", "impact"},                  /* Network Denial of Service */
    {"scan", "T1595", "reconnaissance"},          /* Active Scanning */
    {"exploit", "T1190", "initial-access"},       /* Exploit Public-Facing Application */
    {"phishing", "T1566", "initial-access"},      /* Phishing */
    {"ransomware", "T1486", "impact"},            /* Data Encrypted for Impact */
    {"wiper", "T1485", "impact"},                 /* Data Destruction */
    {"defacement", "T1491", "impact"},            /* Defacement */
};

int detect_attack_for_category(const char *category, const char **technique, const char **tactic)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(attack_map); i++) {
        if (strcmp(attack_map[i].category, category) == 0) {
            *technique = attack_map[i].technique;
            *tactic = attack_map[i].tactic;
            return 0;
        }
    }
    return -1;
}

/* Fills a missing technique (and a missing tactic with it) from the category. */
static void fill_attack(struct tm_event *ev)
{
    const char *technique, *tactic;

    if (ev->attack.technique[0] != '\0')
        return;
    if (detect_attack_for_category(ev->category, &technique, &tactic) != 0)
        return;
    tm_strlcpy(ev->attack.technique, technique, sizeof(ev->attack.technique));
    if (ev->attack.tactic[0] == '\0')
        tm_strlcpy(ev->attack.tactic, tactic, sizeof(ev->attack.tactic));
}

/* ---- bounded hash + recency list ---------------------------------------------------- */

struct slot {
    uint64_t hash;
    struct slot *hnext;       /* next on the hash chain */
    struct slot *prev, *next; /* recency list, head = most recently seen */
};

struct table {
    struct slot **buckets;
    size_t mask;
    struct slot *head, *tail;
    size_t len, max;
};

static int table_init(struct table *t, size_t max)
{
    size_t n = 16;

    while (n < max)
        n *= 2;
    t->buckets = calloc(n, sizeof(*t->buckets));
    if (t->buckets == NULL)
        return -1;
    t->mask = n - 1;
    t->head = t->tail = NULL;
    t->len = 0;
    t->max = max;
    return 0;
}

static void list_unlink(struct table *t, struct slot *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        t->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        t->tail = s->prev;
}

static void list_push_head(struct table *t, struct slot *s)
{
    s->prev = NULL;
    s->next = t->head;
    if (t->head != NULL)
        t->head->prev = s;
    else
        t->tail = s;
    t->head = s;
}

static void table_insert(struct table *t, struct slot *s, uint64_t hash)
{
    struct slot **b = &t->buckets[hash & t->mask];

    s->hash = hash;
    s->hnext = *b;
    *b = s;
    list_push_head(t, s);
    t->len++;
}

/* Takes s out of the table; the caller frees it. */
static void table_remove(struct table *t, struct slot *s)
{
    struct slot **p = &t->buckets[s->hash & t->mask];

    while (*p != s)
        p = &(*p)->hnext;
    *p = s->hnext;
    list_unlink(t, s);
    t->len--;
}

static void table_touch(struct table *t, struct slot *s)
{
    if (t->head == s)
        return;
    list_unlink(t, s);
    list_push_head(t, s);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

/* ---- the detector ------------------------------------------------------------------- */

struct source {
    struct slot slot; /* first: a struct slot * is a struct source * */
    char ip[46];
    uint32_t buckets[WINDOW_BUCKETS];
    int64_t newest; /* bucket number of the newest bucket */
    int64_t total;  /* sum of buckets */
    int64_t last_ms;
    bool firing; /* in a suppression period */
    int64_t until_ms;
    int64_t further; /* attempts during the current suppression period */
    char kind[16];
    char host[TM_EVENT_HOST_MAX + 1];
};

/* What a fold summary repeats of the first event of its key. */
struct fold {
    struct slot slot; /* first */
    int64_t until_ms;
    int64_t folded;
    size_t sig_len; /* the signature is summary[0..sig_len) */
    char category[32];
    int severity;
    int confidence;
    char technique[16];
    char tactic[40];
    struct tm_endpoint src, dst;
    char kind[16];
    char host[TM_EVENT_HOST_MAX + 1];
    char summary[TM_EVENT_SUMMARY_MAX + 1];
};

struct detect {
    struct detect_config cfg;
    detect_emit_cb emit_cb;
    void *arg;
    int64_t now;
    int64_t origin;       /* now at creation: bucket numbers count from here */
    int64_t bucket_ms;    /* threshold window / WINDOW_BUCKETS */
    struct table sources; /* of struct source */
    struct table folds;   /* of struct fold */

    /* rate */
    int64_t iv_start;
    int64_t iv_count;
    int64_t intervals; /* closed so far, up to the warm-up */
    double baseline;
    bool spiking; /* in a suppression period */
    int64_t spike_until;
    int64_t spike_more; /* events of spiking intervals in the current period */
    int64_t spike_more_intervals;
    char kind[16]; /* source of the input's latest event, for spike events */
    char host[TM_EVENT_HOST_MAX + 1];

    struct detect_stats stats;
    struct tm_event in;  /* the fed event as it passes through */
    struct tm_event out; /* events born here */
};

void detect_config_defaults(struct detect_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->pass_min_severity = 4;
    cfg->fold_window_ms = 60000;
    cfg->fold_max_keys = 1024;

    cfg->threshold_enabled = true;
    tm_strlcpy(cfg->threshold_match_category, "bruteforce", sizeof(cfg->threshold_match_category));
    cfg->threshold_count = 20;
    cfg->threshold_window_ms = 60000;
    cfg->threshold_suppress_ms = 300000;
    cfg->threshold_severity = 6;
    tm_strlcpy(cfg->threshold_category, "bruteforce", sizeof(cfg->threshold_category));
    tm_strlcpy(cfg->threshold_label, "failed ssh logins", sizeof(cfg->threshold_label));
    cfg->threshold_max_sources = 10000;

    cfg->spike_enabled = true;
    cfg->spike_interval_ms = 10000;
    cfg->spike_factor_pct = 500;
    cfg->spike_min_count = 100;
    cfg->spike_warmup = 30;
    cfg->spike_alpha_pct = 10;
    cfg->spike_alpha_spiking_pct = 0;
    cfg->spike_suppress_ms = 300000;
    cfg->spike_severity = 7;
    tm_strlcpy(cfg->spike_category, "ddos", sizeof(cfg->spike_category));
}

const char *detect_kind_name(enum detect_kind kind)
{
    switch (kind) {
    case DETECT_FOLD_SUMMARY:
        return "fold_summary";
    case DETECT_THRESHOLD:
        return "threshold";
    case DETECT_THRESHOLD_MORE:
        return "threshold_more";
    case DETECT_SPIKE:
        return "spike";
    case DETECT_SPIKE_MORE:
        return "spike_more";
    case DETECT_KINDS:
        break;
    }
    return "unknown";
}

static int check_range(const char *name, int64_t v, int64_t min, int64_t max, char *err)
{
    if (v < min || v > max)
        return tm_err(err, "%s: must be from %lld to %lld, got %lld", name, (long long)min,
                      (long long)max, (long long)v);
    return 0;
}

static int check_category(const char *name, const char *v, bool may_be_empty, char *err)
{
    if (v[0] == '\0' && may_be_empty)
        return 0;
    if (tm_category_find(v) == NULL)
        return tm_err(err, "%s: unknown category '%s'", name, v);
    return 0;
}

static int check_config(const struct detect_config *c, char *err)
{
    const int64_t month = 31 * DAY_MS;

    if (check_range("pass_min_severity", c->pass_min_severity, 1, 10, err) != 0 ||
        check_range("fold_window_ms", c->fold_window_ms, 0, month, err) != 0 ||
        check_range("fold_max_keys", c->fold_max_keys, 1, 1000000, err) != 0)
        return -1;
    if (c->threshold_enabled) {
        if (check_category("threshold_match_category", c->threshold_match_category, true, err) !=
                0 ||
            check_category("threshold_category", c->threshold_category, false, err) != 0 ||
            check_range("threshold_count", c->threshold_count, 1, 1000000000, err) != 0 ||
            check_range("threshold_window_ms", c->threshold_window_ms, 1000, month, err) != 0 ||
            check_range("threshold_suppress_ms", c->threshold_suppress_ms, 1000, month, err) != 0 ||
            check_range("threshold_severity", c->threshold_severity, 1, 10, err) != 0 ||
            check_range("threshold_max_sources", c->threshold_max_sources, 1, 10000000, err) != 0)
            return -1;
        if (c->threshold_match_kind[0] != '\0' && tm_source_kind_index(c->threshold_match_kind) < 0)
            return tm_err(err, "threshold_match_kind: unknown source kind '%s'",
                          c->threshold_match_kind);
    }
    if (c->spike_enabled) {
        if (check_category("spike_match_category", c->spike_match_category, true, err) != 0 ||
            check_category("spike_category", c->spike_category, false, err) != 0 ||
            check_range("spike_interval_ms", c->spike_interval_ms, 1000, DAY_MS, err) != 0 ||
            check_range("spike_factor_pct", c->spike_factor_pct, 101, 1000000, err) != 0 ||
            check_range("spike_min_count", c->spike_min_count, 1, 1000000000000LL, err) != 0 ||
            check_range("spike_warmup", c->spike_warmup, 1, 1000000, err) != 0 ||
            check_range("spike_alpha_pct", c->spike_alpha_pct, 1, 100, err) != 0 ||
            check_range("spike_alpha_spiking_pct", c->spike_alpha_spiking_pct, 0, 100, err) != 0 ||
            check_range("spike_suppress_ms", c->spike_suppress_ms, c->spike_interval_ms, month,
                        err) != 0 ||
            check_range("spike_severity", c->spike_severity, 1, 10, err) != 0)
            return -1;
    }
    return 0;
}

struct detect *detect_create(const struct detect_config *cfg, detect_emit_cb emit_cb, void *arg,
                             int64_t now_ms, char *err)
{
    struct detect *d = NULL;

    if (emit_cb == NULL) {
        tm_err(err, "detector: no emit callback");
        goto fail;
    }
    if (check_config(cfg, err) != 0)
        goto fail;
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        tm_err(err, "detector: out of memory");
        goto fail;
    }
    d->cfg = *cfg;
    d->emit_cb = emit_cb;
    d->arg = arg;
    d->now = now_ms;
    d->origin = now_ms;
    d->bucket_ms = cfg->threshold_window_ms / WINDOW_BUCKETS;
    d->iv_start = now_ms;
    if (table_init(&d->sources, cfg->threshold_enabled ? (size_t)cfg->threshold_max_sources : 1) !=
            0 ||
        table_init(&d->folds, (size_t)cfg->fold_max_keys) != 0) {
        tm_err(err, "detector: out of memory");
        goto fail;
    }
    return d;

fail:
    detect_destroy(d);
    return NULL;
}

static void table_free_all(struct table *t)
{
    struct slot *s = t->head;

    while (s != NULL) {
        struct slot *next = s->next;
        free(s);
        s = next;
    }
    free(t->buckets);
}

void detect_destroy(struct detect *d)
{
    if (d == NULL)
        return;
    table_free_all(&d->folds);
    table_free_all(&d->sources);
    free(d);
}

/* ---- building events ---------------------------------------------------------------- */

/* Cuts a string that snprintf truncated back to a whole UTF-8 character. */
static void cut_utf8(char *s)
{
    size_t len = strlen(s);
    size_t i = len, need;
    unsigned char lead;

    while (i > 0 && len - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    lead = (unsigned char)s[i - 1];
    if (lead < 0x80)
        return;
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

static void format_summary(struct tm_event *ev, const char *fmt, ...) TM_PRINTF(2, 3);

static void format_summary(struct tm_event *ev, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(ev->summary, sizeof(ev->summary), fmt, ap);
    va_end(ap);
    if (n < 0)
        ev->summary[0] = '\0';
    else if ((size_t)n >= sizeof(ev->summary))
        cut_utf8(ev->summary);
}

/* "60 s", or "1500 ms" when not whole seconds. */
static const char *duration(int64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%lld s", (long long)(ms / 1000));
    else
        snprintf(buf, len, "%lld ms", (long long)ms);
    return buf;
}

/* Starts d->out as a detector-born event of this category and severity at d->now. */
static struct tm_event *out_begin(struct detect *d, const char *category, int64_t severity,
                                  int64_t count, const char *kind, const char *host)
{
    struct tm_event *ev = &d->out;

    tm_event_init(ev);
    ev->ts = d->now;
    tm_strlcpy(ev->category, category, sizeof(ev->category));
    ev->severity = (int)severity;
    ev->count = count;
    tm_strlcpy(ev->source.kind, kind, sizeof(ev->source.kind));
    tm_strlcpy(ev->source.host, host, sizeof(ev->source.host));
    fill_attack(ev);
    return ev;
}

static void emit(struct detect *d, enum detect_kind kind)
{
    d->stats.emitted[kind]++;
    d->emit_cb(d->arg, &d->out);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t event_count(const struct tm_event *ev)
{
    return ev->count >= 1 ? ev->count : 1;
}

/* ---- folding ------------------------------------------------------------------------ */

/* The part of a summary that names the rule: EVE's "[gid:sid:rev]", else all of it. */
static size_t signature_len(const char *summary)
{
    const char *end;

    if (summary[0] == '[' && (end = strchr(summary, ']')) != NULL)
        return (size_t)(end - summary) + 1;
    return strlen(summary);
}

static uint64_t fold_hash(const struct tm_event *ev, size_t sig_len)
{
    uint64_t h = FNV_OFFSET;
    int32_t port = ev->dst.port;

    h = fnv1a(h, ev->category, strlen(ev->category) + 1);
    h = fnv1a(h, ev->attack.technique, strlen(ev->attack.technique) + 1);
    h = fnv1a(h, ev->src.ip, strlen(ev->src.ip) + 1);
    h = fnv1a(h, ev->dst.ip, strlen(ev->dst.ip) + 1);
    h = fnv1a(h, &port, sizeof(port));
    return fnv1a(h, ev->summary, sig_len);
}

static bool fold_same(const struct fold *f, const struct tm_event *ev, size_t sig_len)
{
    return f->sig_len == sig_len && f->dst.port == ev->dst.port &&
           strcmp(f->category, ev->category) == 0 &&
           strcmp(f->technique, ev->attack.technique) == 0 && strcmp(f->src.ip, ev->src.ip) == 0 &&
           strcmp(f->dst.ip, ev->dst.ip) == 0 && memcmp(f->summary, ev->summary, sig_len) == 0;
}

static struct fold *fold_find(struct detect *d, const struct tm_event *ev, uint64_t hash,
                              size_t sig_len)
{
    struct slot *s;

    for (s = d->folds.buckets[hash & d->folds.mask]; s != NULL; s = s->hnext) {
        if (s->hash == hash && fold_same((struct fold *)s, ev, sig_len))
            return (struct fold *)s;
    }
    return NULL;
}

static void fold_emit(struct detect *d, struct fold *f)
{
    struct tm_event *ev;
    char dur[32];

    ev = out_begin(d, f->category, f->severity, f->folded, f->kind, f->host);
    ev->confidence = f->confidence;
    tm_strlcpy(ev->attack.technique, f->technique, sizeof(ev->attack.technique));
    tm_strlcpy(ev->attack.tactic, f->tactic, sizeof(ev->attack.tactic));
    ev->src = f->src;
    ev->dst = f->dst;
    format_summary(ev, "%lld more in %s: %s", (long long)f->folded,
                   duration(d->cfg.fold_window_ms, dur, sizeof(dur)), f->summary);
    emit(d, DETECT_FOLD_SUMMARY);
}

static void fold_free(struct detect *d, struct fold *f)
{
    table_remove(&d->folds, &f->slot);
    free(f);
}

/*
 * Ends f's window: with folded events, emits their summary and opens the next window
 * (the flood goes on); without, forgets the key. Returns f, or NULL when freed.
 */
static struct fold *fold_window_end(struct detect *d, struct fold *f)
{
    if (f->folded == 0) {
        fold_free(d, f);
        return NULL;
    }
    fold_emit(d, f);
    f->folded = 0;
    f->until_ms += d->cfg.fold_window_ms;
    if (f->until_ms <= d->now)
        f->until_ms = d->now + d->cfg.fold_window_ms;
    return f;
}

/* Remembers ev as the first of its key. On no memory the key is simply not folded. */
static void fold_start(struct detect *d, const struct tm_event *ev, uint64_t hash, size_t sig_len)
{
    struct fold *f;

    if (d->folds.len >= d->folds.max) {
        struct fold *old = (struct fold *)d->folds.tail;
        if (old->folded > 0)
            fold_emit(d, old);
        fold_free(d, old);
        d->stats.evicted_folds++;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return;
    f->until_ms = d->now + d->cfg.fold_window_ms;
    f->sig_len = sig_len;
    tm_strlcpy(f->category, ev->category, sizeof(f->category));
    f->severity = ev->severity;
    f->confidence = ev->confidence;
    tm_strlcpy(f->technique, ev->attack.technique, sizeof(f->technique));
    tm_strlcpy(f->tactic, ev->attack.tactic, sizeof(f->tactic));
    f->src = ev->src;
    f->src.port = -1; /* source ports differ from one connection to the next */
    f->dst = ev->dst;
    tm_strlcpy(f->kind, ev->source.kind, sizeof(f->kind));
    tm_strlcpy(f->host, ev->source.host, sizeof(f->host));
    tm_strlcpy(f->summary, ev->summary, sizeof(f->summary));
    table_insert(&d->folds, &f->slot, hash);
}

/* True when ev (already in d->in, ATT&CK filled) was folded rather than passing. */
static bool fold_absorb(struct detect *d, const struct tm_event *ev)
{
    size_t sig_len = signature_len(ev->summary);
    uint64_t hash = fold_hash(ev, sig_len);
    struct fold *f = fold_find(d, ev, hash, sig_len);

    if (f != NULL && d->now >= f->until_ms)
        f = fold_window_end(d, f);
    if (f == NULL) {
        fold_start(d, ev, hash, sig_len);
        return false;
    }
    f->folded = add_sat(f->folded, event_count(ev));
    table_touch(&d->folds, &f->slot);
    return true;
}

static void pass(struct detect *d, const struct tm_event *ev)
{
    bool always = ev->severity >= 9 || strcmp(ev->source.kind, "manual") == 0;

    if (!always && ev->severity < d->cfg.pass_min_severity) {
        d->stats.below_min++;
        return;
    }
    memcpy(&d->in, ev, sizeof(d->in));
    fill_attack(&d->in);
    if (!always && d->cfg.fold_window_ms > 0 && fold_absorb(d, &d->in)) {
        d->stats.suppressed++;
        return;
    }
    d->stats.passed++;
    d->emit_cb(d->arg, &d->in);
}

/* ---- threshold per source ----------------------------------------------------------- */

static bool threshold_matches(const struct detect_config *c, const struct tm_event *ev)
{
    size_t plen = strlen(c->threshold_match_prefix);

    if (ev->src.ip[0] == '\0')
        return false;
    if (c->threshold_match_category[0] != '\0' &&
        strcmp(c->threshold_match_category, ev->category) != 0)
        return false;
    if (c->threshold_match_kind[0] != '\0' && strcmp(c->threshold_match_kind, ev->source.kind) != 0)
        return false;
    return strncmp(ev->summary, c->threshold_match_prefix, plen) == 0;
}

static struct source *source_find(struct detect *d, const char *ip, uint64_t hash)
{
    struct slot *s;

    for (s = d->sources.buckets[hash & d->sources.mask]; s != NULL; s = s->hnext) {
        if (s->hash == hash && strcmp(((struct source *)s)->ip, ip) == 0)
            return (struct source *)s;
    }
    return NULL;
}

static void source_more(struct detect *d, struct source *s)
{
    struct tm_event *ev;
    char dur[32];

    ev = out_begin(d, d->cfg.threshold_category, d->cfg.threshold_severity, s->further, s->kind,
                   s->host);
    tm_strlcpy(ev->src.ip, s->ip, sizeof(ev->src.ip));
    format_summary(ev, "%lld more %s from %s in %s (still going)", (long long)s->further,
                   d->cfg.threshold_label, s->ip,
                   duration(d->cfg.threshold_suppress_ms, dur, sizeof(dur)));
    emit(d, DETECT_THRESHOLD_MORE);
    s->further = 0;
}

/* Ends s's suppression period: a follow-up and a new period if it went on, else quiet. */
static void source_period_end(struct detect *d, struct source *s)
{
    if (s->further == 0) {
        s->firing = false;
        return;
    }
    source_more(d, s);
    s->until_ms += d->cfg.threshold_suppress_ms;
    if (s->until_ms <= d->now)
        s->until_ms = d->now + d->cfg.threshold_suppress_ms;
}

static void source_free(struct detect *d, struct source *s)
{
    table_remove(&d->sources, &s->slot);
    free(s);
}

static struct source *source_new(struct detect *d, const char *ip, uint64_t hash)
{
    struct source *s;

    if (d->sources.len >= d->sources.max) {
        struct source *old = (struct source *)d->sources.tail;
        if (old->firing && old->further > 0)
            source_more(d, old);
        source_free(d, old);
        d->stats.evicted_sources++;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    tm_strlcpy(s->ip, ip, sizeof(s->ip));
    s->newest = (d->now - d->origin) / d->bucket_ms;
    table_insert(&d->sources, &s->slot, hash);
    return s;
}

/* Moves the window so that its newest bucket is number b, emptying what falls out. */
static void window_advance(struct source *s, int64_t b)
{
    int64_t steps = b - s->newest;

    if (steps <= 0)
        return;
    if (steps >= WINDOW_BUCKETS) {
        memset(s->buckets, 0, sizeof(s->buckets));
        s->total = 0;
    } else {
        for (int64_t i = 1; i <= steps; i++) {
            uint32_t *c = &s->buckets[(s->newest + i) % WINDOW_BUCKETS];
            s->total -= *c;
            *c = 0;
        }
    }
    s->newest = b;
}

static void threshold_fire(struct detect *d, struct source *s, const struct tm_event *trigger)
{
    struct tm_event *ev;
    char dur[32];

    ev = out_begin(d, d->cfg.threshold_category, d->cfg.threshold_severity, s->total,
                   trigger->source.kind, trigger->source.host);
    tm_strlcpy(ev->src.ip, s->ip, sizeof(ev->src.ip));
    ev->dst = trigger->dst;
    format_summary(ev, "%lld %s from %s in %s", (long long)s->total, d->cfg.threshold_label, s->ip,
                   duration(d->cfg.threshold_window_ms, dur, sizeof(dur)));
    emit(d, DETECT_THRESHOLD);
    s->firing = true;
    s->until_ms = d->now + d->cfg.threshold_suppress_ms;
    s->further = 0;
    memset(s->buckets, 0, sizeof(s->buckets));
    s->total = 0;
}

static void threshold_add(struct detect *d, const struct tm_event *ev)
{
    uint64_t hash = fnv1a(FNV_OFFSET, ev->src.ip, strlen(ev->src.ip));
    struct source *s = source_find(d, ev->src.ip, hash);
    int64_t n = event_count(ev);
    int64_t b = (d->now - d->origin) / d->bucket_ms;
    uint32_t *c;

    if (s == NULL)
        s = source_new(d, ev->src.ip, hash);
    if (s == NULL)
        return; /* out of memory: this attempt is not tracked */
    table_touch(&d->sources, &s->slot);
    s->last_ms = d->now;
    tm_strlcpy(s->kind, ev->source.kind, sizeof(s->kind));
    tm_strlcpy(s->host, ev->source.host, sizeof(s->host));
    if (s->firing && d->now >= s->until_ms)
        source_period_end(d, s);
    if (s->firing) {
        s->further = add_sat(s->further, n);
        return;
    }
    window_advance(s, b);
    c = &s->buckets[b % WINDOW_BUCKETS];
    if (n > (int64_t)(UINT32_MAX - *c))
        n = (int64_t)(UINT32_MAX - *c);
    *c += (uint32_t)n;
    s->total += n;
    if (s->total >= d->cfg.threshold_count)
        threshold_fire(d, s, ev);
}

/* ---- rate spike --------------------------------------------------------------------- */

static bool spike_matches(const struct detect_config *c, const struct tm_event *ev)
{
    return c->spike_match_category[0] == '\0' || strcmp(c->spike_match_category, ev->category) == 0;
}

static void spike_more(struct detect *d)
{
    struct tm_event *ev;
    char dur[32], iv[32];

    ev =
        out_begin(d, d->cfg.spike_category, d->cfg.spike_severity, d->spike_more, d->kind, d->host);
    format_summary(ev,
                   "rate spike goes on: %lld events in %lld intervals of %s within %s "
                   "(baseline %.1f)",
                   (long long)d->spike_more, (long long)d->spike_more_intervals,
                   duration(d->cfg.spike_interval_ms, iv, sizeof(iv)),
                   duration(d->cfg.spike_suppress_ms, dur, sizeof(dur)), d->baseline);
    emit(d, DETECT_SPIKE_MORE);
    d->spike_more = 0;
    d->spike_more_intervals = 0;
}

/* Ends the suppression period when time t has reached its end. */
static void spike_period_check(struct detect *d, int64_t t)
{
    if (!d->spiking || t < d->spike_until)
        return;
    if (d->spike_more == 0) {
        d->spiking = false;
        return;
    }
    spike_more(d);
    d->spike_until += d->cfg.spike_suppress_ms;
    if (d->spike_until <= t)
        d->spike_until = t + d->cfg.spike_suppress_ms;
}

static void spike_fire(struct detect *d, int64_t count, int64_t end)
{
    struct tm_event *ev;
    char iv[32];

    ev = out_begin(d, d->cfg.spike_category, d->cfg.spike_severity, count, d->kind, d->host);
    format_summary(ev, "rate spike: %lld events in %s, baseline %.1f", (long long)count,
                   duration(d->cfg.spike_interval_ms, iv, sizeof(iv)), d->baseline);
    emit(d, DETECT_SPIKE);
    d->spiking = true;
    d->spike_until = end + d->cfg.spike_suppress_ms;
    d->spike_more = 0;
    d->spike_more_intervals = 0;
}

/* One interval, ending at end, closed with count events. */
static void spike_close(struct detect *d, int64_t count, int64_t end)
{
    const struct detect_config *c = &d->cfg;
    bool spike;
    double alpha;

    /* An interval belongs to the suppression period it starts in. */
    spike_period_check(d, end - c->spike_interval_ms);
    if (d->intervals < c->spike_warmup) {
        d->intervals++;
        d->baseline += ((double)count - d->baseline) / (double)d->intervals;
        return;
    }
    spike = count >= c->spike_min_count &&
            (double)count * 100.0 >= d->baseline * (double)c->spike_factor_pct;
    if (spike && d->spiking) {
        d->spike_more = add_sat(d->spike_more, count);
        d->spike_more_intervals++;
    } else if (spike) {
        spike_fire(d, count, end);
    }
    /* Learn only after the test, and slowly or not at all from a spike (no poisoning). */
    alpha = (double)(spike ? c->spike_alpha_spiking_pct : c->spike_alpha_pct) / 100.0;
    d->baseline += alpha * ((double)count - d->baseline);
    spike_period_check(d, end);
}

static void spike_advance(struct detect *d)
{
    int64_t iv = d->cfg.spike_interval_ms;
    int64_t n = (d->now - d->iv_start) / iv;
    int64_t empty = n - 1;

    if (n == 0) {
        spike_period_check(d, d->now);
        return;
    }
    spike_close(d, d->iv_count, d->iv_start + iv);
    d->iv_count = 0;
    if (empty > SPIKE_MAX_EMPTY)
        empty = SPIKE_MAX_EMPTY;
    for (int64_t i = 0; i < empty; i++)
        spike_close(d, 0, d->iv_start + (i + 2) * iv);
    d->iv_start += n * iv;
    spike_period_check(d, d->now);
}

/* ---- entry points ------------------------------------------------------------------- */

static void set_now(struct detect *d, int64_t now_ms)
{
    if (now_ms > d->now)
        d->now = now_ms;
}

int detect_feed(struct detect *d, const struct tm_event *ev, int64_t now_ms)
{
    if (ev->severity < 1 || ev->severity > 10)
        return -1;
    set_now(d, now_ms);
    d->stats.fed++;
    tm_strlcpy(d->kind, ev->source.kind, sizeof(d->kind));
    tm_strlcpy(d->host, ev->source.host, sizeof(d->host));
    if (d->cfg.spike_enabled)
        spike_advance(d);
    pass(d, ev);
    if (d->cfg.threshold_enabled && threshold_matches(&d->cfg, ev))
        threshold_add(d, ev);
    if (d->cfg.spike_enabled && spike_matches(&d->cfg, ev))
        d->iv_count = add_sat(d->iv_count, event_count(ev));
    return 0;
}

void detect_tick(struct detect *d, int64_t now_ms)
{
    struct slot *s, *next;

    set_now(d, now_ms);
    if (d->cfg.spike_enabled)
        spike_advance(d);
    for (s = d->sources.head; s != NULL; s = next) {
        struct source *src = (struct source *)s;
        next = s->next;
        if (src->firing && d->now >= src->until_ms)
            source_period_end(d, src);
        if (!src->firing && d->now - src->last_ms >= d->cfg.threshold_window_ms)
            source_free(d, src);
    }
    for (s = d->folds.head; s != NULL; s = next) {
        struct fold *f = (struct fold *)s;
        next = s->next;
        if (d->now >= f->until_ms)
            fold_window_end(d, f);
    }
}

void detect_flush(struct detect *d, int64_t now_ms)
{
    struct slot *s;

    set_now(d, now_ms);
    for (s = d->sources.head; s != NULL; s = s->next) {
        struct source *src = (struct source *)s;
        if (src->firing && src->further > 0)
            source_more(d, src);
    }
    for (s = d->folds.head; s != NULL; s = s->next) {
        struct fold *f = (struct fold *)s;
        if (f->folded > 0) {
            fold_emit(d, f);
            f->folded = 0;
        }
    }
    if (d->spiking && d->spike_more > 0)
        spike_more(d);
}

void detect_get_stats(const struct detect *d, struct detect_stats *out)
{
    *out = d->stats;
    out->sources = d->sources.len;
    out->folds = d->folds.len;
    out->baseline = d->baseline;
}
