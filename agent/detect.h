/*
 * detect.h - the agent's detectors: what sits between an input's parser and the spool.
 * One detector per input (its own configuration, its own baseline). Every parsed event
 * is fed in; what comes out through the emit callback is what the agent spools:
 *
 *   pass-through  events of severity >= pass_min_severity leave unchanged, except that a
 *                 missing ATT&CK technique is filled from the category (bruteforce T1110,
 *                 ddos T1498, scan T1595, exploit T1190, phishing T1566, ransomware T1486,
 *                 wiper T1485, defacement T1491); lower ones are only counted
 *   folding       identical pass-through events (same category, technique, signature, src
 *                 ip, dst ip and dst port) within fold_window: the first passes, the rest
 *                 are counted and leave as one summary event (count = how many) when the
 *                 window ends; while they keep coming, one summary per window
 *   threshold     per source address, a sliding window count of matching events (e.g.
 *                 20 failed sshd logins in 60 s) -> one event (count = attempts); then
 *                 suppression: one follow-up per suppression period carrying the further
 *                 attempts, for as long as the source keeps going
 *   rate spike    events per interval against the input's own EWMA baseline -> one event
 *                 (count = events in the interval), then one follow-up per suppression
 *                 period while the spike lasts
 *
 * Severity 9-10 and manual reports (source.kind "manual") always pass: never folded,
 * never held back by pass_min_severity.
 *
 * Every function takes the time as now_ms (ms since the epoch; the agent passes
 * tm_time_now_ms()), and nothing inside reads a clock, so tests script time. Windows run
 * on now_ms, not on the events' own ts (auth.log stamps have no year and a replayed file
 * is old); a now_ms lower than one seen before is taken as the one seen before. Events
 * born here (threshold, spike, fold summaries) carry ts = now_ms.
 *
 * Memory is bounded by the configuration: at most threshold_max_sources sources (under
 * 1 KiB each) and fold_max_keys fold keys (about 2 KiB each), the least recently seen
 * evicted first; an evicted entry first emits what it holds, so no count is lost.
 *
 * Not thread-safe: one owner, the agent's event loop.
 */
#ifndef TM_AGENT_DETECT_H
#define TM_AGENT_DETECT_H

#include <stdbool.h>
#include <stdint.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"

/*
 * One input's detector settings. Numbers are int64_t, durations int64_t milliseconds and
 * strings char arrays, so a tm_config table (TM_CONF_INT, TM_CONF_DURATION,
 * TM_CONF_STRING, TM_CONF_BOOL) can fill it directly. detect_config_defaults() sets the
 * defaults given in brackets.
 */
struct detect_config {
    /* Pass-through and folding. */
    int64_t pass_min_severity; /* [4] 1..10: lower events are only counted (and may still
                                  feed the threshold and the rate) */
    int64_t fold_window_ms;    /* [60 s] 0 = no folding */
    int64_t fold_max_keys;     /* [1024] distinct fold keys held at once */

    /*
     * Threshold per source. An event matches when each non-empty match field matches;
     * it counts event.count attempts for its src.ip (events without src.ip are not
     * tracked). sshd writes up to three lines per failed password ("Invalid user", the
     * PAM line, "Failed password"), each a bruteforce event: with threshold_match_prefix
     * "failed " only the "Failed <method>" lines count, one per attempt.
     */
    bool threshold_enabled;            /* [true] */
    char threshold_match_category[32]; /* [bruteforce] "" = any */
    char threshold_match_kind[16];     /* [""] source.kind, e.g. "auth"; "" = any */
    char threshold_match_prefix[64];   /* [""] summary starts with this; "" = any */
    int64_t threshold_count;           /* [20] attempts within the window that fire */
    int64_t threshold_window_ms;       /* [60 s] kept as 60 buckets of window/60 each,
                                          so attempts count for between 59/60 of the
                                          window and the whole window */
    int64_t threshold_suppress_ms;     /* [300 s] suppression period after firing */
    int64_t threshold_severity;        /* [6] 1..10 of the events emitted */
    char threshold_category[32];       /* [bruteforce] category of the events emitted */
    char threshold_label[64];          /* [failed ssh logins] summary wording: "20 failed
                                          ssh logins from 203.0.113.9 in 60 s" */
    int64_t threshold_max_sources;     /* [10000] sources tracked at once */

    /*
     * Rate spike. Every event matching spike_match_category adds event.count to the
     * current interval. When an interval closes after the warm-up, it is a spike when its
     * count >= spike_min_count and >= baseline x spike_factor_pct / 100. During the
     * warm-up the baseline is the plain mean of the intervals so far; afterwards an EWMA
     * with weight spike_alpha_pct for a normal interval and spike_alpha_spiking_pct for a
     * spiking one (0 = frozen, so a flood cannot raise its own bar; a few percent lets a
     * lasting new level become normal after a while).
     */
    bool spike_enabled;              /* [true] */
    char spike_match_category[32];   /* [""] "" = every event */
    int64_t spike_interval_ms;       /* [10 s] intervals start at the first call */
    int64_t spike_factor_pct;        /* [500] 500 = five times the baseline */
    int64_t spike_min_count;         /* [100] events in one interval, at least */
    int64_t spike_warmup;            /* [30] intervals before the first spike can fire */
    int64_t spike_alpha_pct;         /* [10] 1..100 */
    int64_t spike_alpha_spiking_pct; /* [0] 0..100 */
    int64_t spike_suppress_ms;       /* [300 s] >= spike_interval_ms */
    int64_t spike_severity;          /* [7] 1..10 */
    char spike_category[32];         /* [ddos] "ddos" (T1498) or "scan" (T1595), or any
                                        category */
};

/* What the detector emitted besides pass-through, one counter per kind. */
enum detect_kind {
    DETECT_FOLD_SUMMARY = 0, /* folded pass-through events, count = how many */
    DETECT_THRESHOLD,        /* a source crossed the threshold */
    DETECT_THRESHOLD_MORE,   /* follow-up: further attempts in a suppression period */
    DETECT_SPIKE,            /* a rate spike */
    DETECT_SPIKE_MORE,       /* follow-up: spiking intervals in a suppression period */
    DETECT_KINDS
};

struct detect_stats {
    uint64_t fed;                   /* events given to detect_feed */
    uint64_t passed;                /* passed through (a fold's first event included) */
    uint64_t below_min;             /* under pass_min_severity: counted only */
    uint64_t suppressed;            /* folded into a summary instead of passing */
    uint64_t emitted[DETECT_KINDS]; /* events born here, by kind */
    uint64_t evicted_sources;       /* threshold sources dropped for room */
    uint64_t evicted_folds;         /* fold keys dropped for room */
    uint64_t sources;               /* threshold sources tracked now */
    uint64_t folds;                 /* fold keys held now */
    double baseline;                /* events per spike interval (EWMA) */
};

/*
 * Receives each event the detector lets out: ev is the detector's, valid during the call
 * only; the callback may change it (the agent stamps identity, id and seq) but must not
 * call back into the detector.
 */
typedef void (*detect_emit_cb)(void *arg, struct tm_event *ev);

struct detect;

/* Fills cfg with the defaults documented on struct detect_config. */
void detect_config_defaults(struct detect_config *cfg);

/*
 * Creates a detector for one input. cfg is copied. Returns NULL with the reason in err
 * (TM_ERR_LEN bytes) for a value out of range ("threshold_count: must be at least 1, got
 * 0") or when memory runs out. The caller owns the detector (detect_destroy).
 */
struct detect *detect_create(const struct detect_config *cfg, detect_emit_cb emit_cb, void *arg,
                             int64_t now_ms, char *err);

/* Frees the detector without emitting what it still holds (call detect_flush first to
 * keep it). NULL is ignored. */
void detect_destroy(struct detect *d);

/*
 * Feeds one event seen at now_ms. The event is not kept; whatever it causes (itself
 * passing through, a threshold firing, an interval closing as a spike) is emitted before
 * this returns. Returns 0, or -1 when ev is not usable (severity outside 1..10).
 */
int detect_feed(struct detect *d, const struct tm_event *ev, int64_t now_ms);

/*
 * Advances time without an event: closes rate intervals, ends suppression periods and
 * fold windows (emitting their follow-ups and summaries) and forgets sources idle for a
 * whole window. The agent calls it from a one-second timer. Costs one walk over the
 * tracked sources and fold keys.
 */
void detect_tick(struct detect *d, int64_t now_ms);

/*
 * Emits every pending count now (fold summaries, threshold and spike follow-ups) instead
 * of at the end of its window or period, for shutdown, so that the spool gets them.
 * Windows and periods go on; the counts start again from zero.
 */
void detect_flush(struct detect *d, int64_t now_ms);

void detect_get_stats(const struct detect *d, struct detect_stats *out);

/* Stable lowercase name of a kind, for metrics labels: "fold_summary", "threshold", ... */
const char *detect_kind_name(enum detect_kind kind);

/*
 * The ATT&CK technique and tactic the detector fills in for a category, or -1 when it
 * has none (malware, intrusion, data-leak, service-outage, other: no single technique).
 */
int detect_attack_for_category(const char *category, const char **technique, const char **tactic);

#endif
