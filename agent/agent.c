/*
 * agent.c - tm-agent's pipeline and its clock work (agent.h has the data flow).
 *
 * Invariant: an input's read position is persisted (checkpoint) only after every event
 * made from the lines before it is in the spool file, and fsynced when the fsync policy
 * promises power-loss safety. With fsync = always the checkpoint follows each flush; with
 * fsync = interval it follows each spool_sync (which flushes first); with never, each
 * flush (page cache only).
 *
 * With fsync = interval each flush also writes a fast registry (no fsync), stamped with
 * the last seq of each spool lane. At start-up a file input takes it instead of the
 * durable registry when it is newer and the spool still reaches its stamps: after a
 * SIGKILL that is always so, and no line is read twice (a line read twice would get a new
 * seq, a gap in the seqs downstream although nothing was lost). After a power loss that
 * took unsynced spool records, the stamps are past the spool, and the durable registry
 * is used: the lines since the last sync are read again, their events lost from the spool
 * are made again, and the few that had reached the disk come twice (same ids, new seqs).
 *
 * Priority lane: manual reports and events of severity 9-10 go to the spool's priority
 * lane, which the shipper drains first and the spool cap never drops; the detectors never
 * fold them. They are flushed at once instead of waiting for the flush timer.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "tm/tm_admin.h"
#include "tm/tm_id.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

enum { ERR_PARSE, ERR_INVALID, ERR_SPOOL, ERR_KINDS };

struct agent {
    const struct agent_config *cfg;
    struct event_base *base;
    struct spool *spool;
    struct ship *ship;
    struct tm_metrics *metrics;
    struct tm_admin *admin;
    struct input inputs[AGENT_MAX_INPUTS];
    int ninputs;
    int lock_fd;
    bool once, drained_inputs, spool_broken, flush_armed;
    int64_t started_ms;
    char host[TM_EVENT_HOST_MAX + 1];
    char last_error[TM_ERR_LEN];
    struct event *flush_ev, *sync_ev, *tick_ev, *sigterm_ev, *sigint_ev, *sighup_ev;
    struct tm_counter *spooled[SPOOL_LANES], *reports, *dropped;
    struct tm_gauge *depth_events, *depth_bytes, *lost, *connected, *acked;
    struct tm_counter *windows, *reconnects, *connect_errors, *ack_timeouts, *heartbeats;
    struct ship_stats ship_last;
    int exit_code;
    /* The line agent_line() is working on, when it has an origin: ids derive from it. */
    const struct line_origin *line_origin;
    const char *line;
    size_t line_len;
    unsigned line_events; /* events of that line so far */
};

struct event_base *agent_base(struct agent *a)
{
    return a->base;
}

void agent_state_path(const struct agent *a, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", a->cfg->state_dir, name);
}

static void remember_error(struct agent *a, const char *msg)
{
    tm_strlcpy(a->last_error, msg, sizeof(a->last_error));
}

/* ---- spooling ---------------------------------------------------------------------- */

/*
 * The id of the k-th event of the current line: a ULID with the event's time whose 80
 * bits are the start of SHA-256(agent id, device, inode, offset, k, line). Different lines
 * collide only with the chance of 80 random bits.
 */
static void derive_id(struct agent *a, const struct tm_event *ev, char *out)
{
    const struct line_origin *o = a->line_origin;
    uint64_t head[4] = {o->dev, o->ino, o->off, a->line_events++};
    unsigned char md[32];
    mbedtls_sha256_context ctx;
    int r;

    mbedtls_sha256_init(&ctx);
    r = mbedtls_sha256_starts_ret(&ctx, 0);
    if (r == 0)
        r = mbedtls_sha256_update_ret(&ctx, (const unsigned char *)a->cfg->id,
                                      strlen(a->cfg->id) + 1);
    if (r == 0)
        r = mbedtls_sha256_update_ret(&ctx, (const unsigned char *)head, sizeof(head));
    if (r == 0)
        r = mbedtls_sha256_update_ret(&ctx, (const unsigned char *)a->line, a->line_len);
    if (r == 0)
        r = mbedtls_sha256_finish_ret(&ctx, md);
    mbedtls_sha256_free(&ctx);
    if (r != 0)
        tm_id_new(out); /* no digest: a random id is still unique, only not stable */
    else
        tm_id_from(ev->ts > 0 ? ev->ts : tm_time_now_ms(), md, out);
}

/* Identity, id and seq, then the spool. The event is final after this. */
static int spool_event(struct agent *a, struct tm_event *ev, char *err)
{
    char json[TM_EVENT_JSON_MAX];
    enum spool_lane lane;
    int n;

    tm_strlcpy(ev->agent, a->cfg->id, sizeof(ev->agent));
    if (ev->id[0] == '\0' && a->line_origin != NULL)
        derive_id(a, ev, ev->id);
    else if (ev->id[0] == '\0')
        tm_id_new(ev->id);
    if (ev->source.host[0] == '\0' && ev->source.kind[0] != '\0')
        tm_strlcpy(ev->source.host, a->host, sizeof(ev->source.host));
    ev->seq = (int64_t)spool_next_seq(a->spool);
    if (tm_event_validate(ev, TM_EVENT_SUBMITTED, err) != TM_EVENT_OK)
        return -1;
    n = tm_event_encode_buf(ev, json, sizeof(json));
    if (n < 0) {
        tm_err(err, "cannot encode event");
        return -1;
    }
    lane =
        ev->severity >= 9 || strcmp(ev->source.kind, "manual") == 0 ? SPOOL_PRIORITY : SPOOL_BULK;
    if (spool_append(a->spool, lane, json, (size_t)n, err) != 0) {
        a->spool_broken = true;
        return -2;
    }
    tm_counter_inc(a->spooled[lane]);
    if (lane == SPOOL_PRIORITY && !a->flush_armed) {
        a->flush_armed = true;
        event_active(a->flush_ev, EV_TIMEOUT, 0);
    }
    return 0;
}

static void log_once(struct input *in, int kind, const char *what, const char *line, size_t len)
{
    if (in->error_logged[kind])
        return;
    in->error_logged[kind] = true;
    tm_log_warn("input '%s': %s (logged once per kind; sample: '%.*s')", in->cfg->name, what,
                (int)(len > 200 ? 200 : len), line);
}

/* Detector output (pass-through, folds, thresholds, spikes) for one input. */
static void emit_cb(void *arg, struct tm_event *ev)
{
    struct input *in = arg;
    struct agent *a = in->agent;
    char err[TM_ERR_LEN];
    int rc;

    /* Canonical JSON lines may not say where they came from: the input's format does. */
    if (ev->source.kind[0] == '\0')
        tm_strlcpy(ev->source.kind, in->parser->name, sizeof(ev->source.kind));
    rc = spool_event(a, ev, err);

    if (rc == 0) {
        agent_dirty(a);
        return;
    }
    tm_counter_inc(a->dropped);
    remember_error(a, err);
    log_once(in, rc == -2 ? ERR_SPOOL : ERR_INVALID,
             rc == -2 ? "cannot spool: read positions are no longer saved" : err, ev->summary,
             strlen(ev->summary));
    if (rc == -2)
        tm_log_error("input '%s': %s", in->cfg->name, err);
}

static int flush_spool(struct agent *a);
static void checkpoint_inputs(struct agent *a, bool fast);

/* Half the batch size at which spool_append writes a record on its own (spool.h). */
#define EARLY_FLUSH_BYTES (128u * 1024)

void agent_line(struct input *in, const char *line, size_t len, const struct line_origin *origin)
{
    struct agent *a = in->agent;
    struct tm_parse_ctx ctx = {.now_ms = tm_time_now_ms()};
    struct tm_event ev;
    char err[TM_ERR_LEN];

    tm_counter_inc(in->lines);
    switch (in->parser->parse(&ctx, line, len, &ev, err)) {
    case TM_PARSE_EVENT:
        tm_counter_inc(in->events);
        /* What the detectors emit while they take this line comes from it. */
        a->line_origin = origin;
        a->line = line;
        a->line_len = len;
        a->line_events = 0;
        detect_feed(in->detect, &ev, ctx.now_ms);
        a->line_origin = NULL;
        break;
    case TM_PARSE_SKIP:
        tm_counter_inc(in->skipped);
        break;
    case TM_PARSE_ERROR:
        tm_counter_inc(in->parse_errors);
        log_once(in, ERR_PARSE, err, line, len);
        break;
    }
    /* A big pending batch is flushed here, at a line boundary and with a checkpoint,
     * before the spool would write it by itself with no checkpoint to match. */
    if (spool_pending_bytes(a->spool) >= EARLY_FLUSH_BYTES && flush_spool(a) == 0)
        checkpoint_inputs(a, a->cfg->fsync == SPOOL_FSYNC_INTERVAL);
}

/* ---- flush, sync, checkpoint ------------------------------------------------------- */

void agent_spool_mark(const struct agent *a, uint64_t mark[AGENT_MARK_WORDS])
{
    mark[0] = spool_lane_last(a->spool, SPOOL_PRIORITY);
    mark[1] = spool_lane_last(a->spool, SPOOL_BULK);
}

int agent_spool_sync(struct agent *a, char *err)
{
    return spool_sync(a->spool, err);
}

/* fast: the fast registries (after a flush), not the durable ones (after a sync). */
static void checkpoint_inputs(struct agent *a, bool fast)
{
    char err[TM_ERR_LEN];
    uint64_t mark[AGENT_MARK_WORDS];

    if (a->spool_broken)
        return; /* never move a read position past events that are not on disk */
    agent_spool_mark(a, mark);
    for (int i = 0; i < a->ninputs; i++) {
        struct input *in = &a->inputs[i];
        if (in->ops->checkpoint != NULL && in->ops->checkpoint(in, mark, fast, err) != 0) {
            tm_log_error("input '%s': %s", in->cfg->name, err);
            remember_error(a, err);
        }
    }
}

static int flush_spool(struct agent *a)
{
    char err[TM_ERR_LEN];

    if (spool_flush(a->spool, err) != 0) {
        tm_log_error("spool: %s", err);
        remember_error(a, err);
        a->spool_broken = true;
        return -1;
    }
    return 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct agent *a = arg;
    (void)fd;
    (void)what;

    a->flush_armed = false;
    if (flush_spool(a) != 0)
        return;
    checkpoint_inputs(a, a->cfg->fsync == SPOOL_FSYNC_INTERVAL);
    ship_kick(a->ship);
}

void agent_dirty(struct agent *a)
{
    struct timeval tv = {a->cfg->flush_interval_ms / 1000,
                         (a->cfg->flush_interval_ms % 1000) * 1000};

    if (a->flush_armed)
        return;
    a->flush_armed = true;
    evtimer_add(a->flush_ev, &tv);
}

static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
    struct agent *a = arg;
    char err[TM_ERR_LEN];
    (void)fd;
    (void)what;

    /* The positions saved below cover every line read so far: their events must all be
     * in the file before the fsync, pending ones included. */
    if (flush_spool(a) != 0)
        return;
    if (spool_sync(a->spool, err) != 0) {
        tm_log_error("spool: %s", err);
        remember_error(a, err);
        return;
    }
    checkpoint_inputs(a, false);
}

/* ---- reports, ticks, signals ------------------------------------------------------- */

static int take_report_cb(void *arg, struct tm_event *ev, char *err)
{
    struct agent *a = arg;

    /* The report file is deleted after this: the spool must have it on disk first. */
    if (spool_event(a, ev, err) != 0 || spool_flush(a->spool, err) != 0 ||
        spool_sync(a->spool, err) != 0)
        return -1;
    tm_counter_inc(a->reports);
    tm_log_info("manual report %s spooled (seq %lld)", ev->id, (long long)ev->seq);
    ship_kick(a->ship);
    return 0;
}

/* Adds what a cumulative count grew by since it was last published. */
static void publish(struct tm_counter *c, uint64_t now, uint64_t *last)
{
    if (now > *last)
        tm_counter_add(c, now - *last);
    *last = now;
}

static void update_gauges(struct agent *a)
{
    struct spool_stats ss;
    struct ship_stats sh;

    spool_get_stats(a->spool, &ss);
    ship_get_stats(a->ship, &sh);
    publish(a->windows, sh.windows_sent, &a->ship_last.windows_sent);
    publish(a->reconnects, sh.reconnects, &a->ship_last.reconnects);
    publish(a->connect_errors, sh.connect_errors, &a->ship_last.connect_errors);
    publish(a->ack_timeouts, sh.ack_timeouts, &a->ship_last.ack_timeouts);
    publish(a->heartbeats, sh.heartbeats_acked, &a->ship_last.heartbeats_acked);
    for (int i = 0; i < a->ninputs; i++) {
        struct input *in = &a->inputs[i];
        struct detect_stats ds;
        detect_get_stats(in->detect, &ds);
        publish(in->det_passed, ds.passed, &in->det_last.passed);
        publish(in->det_below_min, ds.below_min, &in->det_last.below_min);
        publish(in->det_folded, ds.suppressed, &in->det_last.suppressed);
        for (int k = 0; k < DETECT_KINDS; k++)
            publish(in->det_emitted[k], ds.emitted[k], &in->det_last.emitted[k]);
        tm_gauge_set(in->det_baseline, ds.baseline);
    }
    tm_gauge_set(a->depth_events, (double)(ss.depth_events[0] + ss.depth_events[1]));
    tm_gauge_set(a->depth_bytes, (double)(ss.depth_bytes[0] + ss.depth_bytes[1]));
    tm_gauge_set(a->lost, (double)ss.lost_events);
    tm_gauge_set(a->connected, sh.connected ? 1 : 0);
    tm_gauge_set(a->acked, (double)sh.events_acked);
}

static bool inputs_finished(const struct agent *a)
{
    for (int i = 0; i < a->ninputs; i++)
        if (a->inputs[i].ops->finished == NULL || !a->inputs[i].ops->finished(&a->inputs[i]))
            return false;
    return true;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct agent *a = arg;
    int64_t now = tm_time_now_ms();
    char err[TM_ERR_LEN];
    (void)fd;
    (void)what;

    for (int i = 0; i < a->ninputs; i++)
        detect_tick(a->inputs[i].detect, now);
    if (report_take_all(a->cfg->state_dir, take_report_cb, a, err) < 0) {
        tm_log_error("reports: %s", err);
        remember_error(a, err);
    }
    update_gauges(a);
    if (a->once && inputs_finished(a)) {
        struct spool_stats ss;
        if (!a->drained_inputs) {
            a->drained_inputs = true;
            for (int i = 0; i < a->ninputs; i++)
                detect_flush(a->inputs[i].detect, now);
            flush_cb(-1, 0, a);
        }
        spool_get_stats(a->spool, &ss);
        if (ss.pending_events == 0 && ss.depth_events[0] == 0 && ss.depth_events[1] == 0) {
            tm_log_info("--once: every input finished and the spool is empty");
            event_base_loopexit(a->base, NULL);
        }
    }
}

static void sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
    struct agent *a = arg;
    (void)what;

    tm_log_info("signal %d: stopping", (int)sig);
    event_base_loopexit(a->base, NULL);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    tm_log_info("SIGHUP: nothing to reload (restart to apply a new config)");
}

static void heartbeat_cb(void *arg, struct ship_heartbeat *hb)
{
    struct agent *a = arg;

    hb->uptime_s = (uint64_t)((tm_time_now_ms() - a->started_ms) / 1000);
    if (a->last_error[0] != '\0' && hb->last_error[0] == '\0')
        tm_strlcpy(hb->last_error, a->last_error, sizeof(hb->last_error));
}

static int health_cb(void *arg, char *reason, size_t len)
{
    struct agent *a = arg;

    if (a->spool_broken) {
        snprintf(reason, len, "spool: %s", a->last_error);
        return -1;
    }
    return 0;
}

/* ---- construction ------------------------------------------------------------------ */

static int take_lock(struct agent *a, char *err)
{
    char path[AGENT_PATH_LEN + 16];

    if (mkdir(a->cfg->state_dir, 0750) != 0 && errno != EEXIST) {
        tm_err(err, "cannot create '%s': %s", a->cfg->state_dir, strerror(errno));
        return -1;
    }
    agent_state_path(a, "lock", path, sizeof(path));
    a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (a->lock_fd < 0) {
        tm_err(err, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        tm_err(err, "'%s' is in use by another tm-agent", a->cfg->state_dir);
        return -1;
    }
    return 0;
}

static const struct input_ops *ops_for(int type)
{
    switch (type) {
    case INPUT_FILE:
        return &input_file_ops;
    case INPUT_SYSLOG_UDP:
        return &input_syslog_udp_ops;
    case INPUT_SYSLOG_TCP:
        return &input_syslog_tcp_ops;
    default:
        return &input_stdin_ops;
    }
}

static struct tm_counter *input_counter(struct agent *a, const struct input_config *ic,
                                        const char *metric, const char *help)
{
    return tm_metrics_counter(a->metrics, metric, help, "input", ic->name, NULL);
}

static int create_input(struct agent *a, const struct input_config *ic, char *err)
{
    struct input *in = &a->inputs[a->ninputs];
    char e2[TM_ERR_LEN];

    in->ops = ops_for(ic->type);
    in->cfg = ic;
    in->agent = a;
    in->parser = tm_parser_find(ic->format);
    in->detect = detect_create(&ic->detect, emit_cb, in, tm_time_now_ms(), e2);
    if (in->detect == NULL) {
        tm_err(err, "[input.%s] %s", ic->name, e2);
        return -1;
    }
    in->lines = input_counter(a, ic, "tm_agent_lines_total", "Lines read, by input.");
    in->events =
        input_counter(a, ic, "tm_agent_parsed_events_total", "Lines that parsed into an event.");
    in->skipped = input_counter(a, ic, "tm_agent_skipped_lines_total",
                                "Well-formed lines that are not security events.");
    in->parse_errors =
        input_counter(a, ic, "tm_agent_parse_errors_total", "Lines that did not parse.");
    in->truncated =
        input_counter(a, ic, "tm_agent_truncated_lines_total", "Lines cut at max_line.");
    in->det_passed = input_counter(a, ic, "tm_agent_detector_passed_total",
                                   "Events passed through by the detectors.");
    in->det_below_min = input_counter(a, ic, "tm_agent_detector_below_min_total",
                                      "Events under pass_min_severity: counted, not shipped.");
    in->det_folded =
        input_counter(a, ic, "tm_agent_detector_folded_total", "Events folded into summaries.");
    for (int k = 0; k < DETECT_KINDS; k++)
        in->det_emitted[k] = tm_metrics_counter(
            a->metrics, "tm_agent_detector_emitted_total", "Events born in the detectors, by kind.",
            "input", ic->name, "kind", detect_kind_name((enum detect_kind)k), NULL);
    in->det_baseline = tm_metrics_gauge(a->metrics, "tm_agent_detector_baseline",
                                        "The rate spike detector's baseline (events per interval).",
                                        "input", ic->name, NULL);
    a->ninputs++;
    if (in->ops->start(in, e2) != 0) {
        tm_err(err, "[input.%s] %s", ic->name, e2);
        return -1;
    }
    return 0;
}

static int create_shipper(struct agent *a, char *err)
{
    const struct agent_config *c = a->cfg;
    char list[sizeof(c->collectors)];
    const char *addrs[SHIP_MAX_COLLECTORS];
    size_t n = 0;
    struct ship_config sc;
    char *save = NULL;

    tm_strlcpy(list, c->collectors, sizeof(list));
    for (char *t = strtok_r(list, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        if (n == SHIP_MAX_COLLECTORS) {
            tm_err(err, "[shipper] collectors: more than %d", SHIP_MAX_COLLECTORS);
            return -1;
        }
        addrs[n++] = t;
    }
    ship_config_default(&sc);
    sc.agent_id = c->id;
    sc.version = AGENT_VERSION;
    sc.collectors = addrs;
    sc.ncollectors = n;
    sc.tls_ca = c->tls_ca[0] != '\0' ? c->tls_ca : NULL;
    sc.tls_cert = c->tls_cert[0] != '\0' ? c->tls_cert : NULL;
    sc.tls_key = c->tls_key[0] != '\0' ? c->tls_key : NULL;
    sc.tls_verify_name = c->tls_verify_name;
    sc.tls_server_name = c->tls_server_name;
    sc.max_window_events = (uint32_t)c->window;
    sc.max_window_bytes = (uint32_t)c->window_bytes;
    sc.compression_level = (int)c->compression;
    sc.connect_timeout_ms = (uint32_t)c->connect_timeout_ms;
    sc.ack_timeout_ms = (uint32_t)c->ack_timeout_ms;
    sc.backoff_base_ms = (uint32_t)c->backoff_base_ms;
    sc.backoff_max_ms = (uint32_t)c->backoff_max_ms;
    sc.heartbeat_interval_ms = (uint32_t)c->heartbeat_ms;
    sc.heartbeat_cb = heartbeat_cb;
    sc.cb_arg = a;
    a->ship = ship_create(a->base, a->spool, &sc, err);
    return a->ship == NULL ? -1 : 0;
}

static struct event *add_timer(struct agent *a, int64_t ms, event_callback_fn cb)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *ev = event_new(a->base, -1, EV_PERSIST, cb, a);

    if (ev != NULL)
        event_add(ev, &tv);
    return ev;
}

struct agent *agent_create(const struct agent_config *cfg, bool once, char *err)
{
    struct agent *a = calloc(1, sizeof(*a));
    struct spool_config sp = {0};
    char path[AGENT_PATH_LEN + 16];
    char e2[TM_ERR_LEN];

    if (a == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->once = once;
    a->lock_fd = -1;
    a->started_ms = tm_time_now_ms();
    if (cfg->host[0] != '\0')
        tm_strlcpy(a->host, cfg->host, sizeof(a->host));
    else if (gethostname(a->host, sizeof(a->host) - 1) != 0)
        tm_strlcpy(a->host, "unknown", sizeof(a->host));
    a->base = event_base_new();
    a->metrics = tm_metrics_create();
    if (a->base == NULL || a->metrics == NULL) {
        tm_err(err, "out of memory");
        goto fail;
    }
    if (take_lock(a, err) != 0)
        goto fail;
    agent_state_path(a, "spool", path, sizeof(path));
    sp.dir = path;
    sp.max_bytes = cfg->spool_max;
    sp.segment_bytes = cfg->spool_segment;
    sp.fsync = (enum spool_fsync)cfg->fsync;
    sp.compression_level = 1;
    a->spool = spool_open(&sp, e2);
    if (a->spool == NULL) {
        tm_err(err, "spool: %s", e2);
        goto fail;
    }
    {
        struct spool_stats ss;
        spool_get_stats(a->spool, &ss);
        if (ss.torn_bytes > 0)
            tm_log_warn("spool: cut a torn tail of %llu bytes left by a crash",
                        (unsigned long long)ss.torn_bytes);
        tm_log_info("spool: %llu events waiting, next seq %llu, %llu lost so far",
                    (unsigned long long)(ss.depth_events[0] + ss.depth_events[1]),
                    (unsigned long long)ss.next_seq, (unsigned long long)ss.lost_events);
    }
    a->spooled[SPOOL_PRIORITY] =
        tm_metrics_counter(a->metrics, "tm_agent_spooled_total",
                           "Events written to the spool, by lane.", "lane", "priority", NULL);
    a->spooled[SPOOL_BULK] =
        tm_metrics_counter(a->metrics, "tm_agent_spooled_total",
                           "Events written to the spool, by lane.", "lane", "bulk", NULL);
    a->reports = tm_metrics_counter(a->metrics, "tm_agent_reports_total",
                                    "Manual reports taken from the inbox.", NULL);
    a->dropped =
        tm_metrics_counter(a->metrics, "tm_agent_dropped_events_total",
                           "Events that could not be spooled (invalid or I/O error).", NULL);
    a->depth_events = tm_metrics_gauge(a->metrics, "tm_agent_spool_events",
                                       "Events in the spool not yet acknowledged.", NULL);
    a->depth_bytes =
        tm_metrics_gauge(a->metrics, "tm_agent_spool_bytes", "Bytes of spool segments.", NULL);
    a->lost = tm_metrics_gauge(a->metrics, "tm_agent_lost_events",
                               "Events dropped by the spool cap, ever.", NULL);
    a->connected = tm_metrics_gauge(a->metrics, "tm_agent_connected",
                                    "1 while connected to a collector.", NULL);
    a->acked = tm_metrics_gauge(a->metrics, "tm_agent_acked_events",
                                "Events acknowledged by collectors since start.", NULL);
    a->windows = tm_metrics_counter(a->metrics, "tm_agent_windows_sent_total",
                                    "Lumberjack windows sent (resends included).", NULL);
    a->reconnects = tm_metrics_counter(a->metrics, "tm_agent_reconnects_total",
                                       "Reconnections after a failure.", NULL);
    a->connect_errors = tm_metrics_counter(a->metrics, "tm_agent_connect_errors_total",
                                           "Failures to connect (TCP or TLS).", NULL);
    a->ack_timeouts = tm_metrics_counter(a->metrics, "tm_agent_ack_timeouts_total",
                                         "Windows a collector did not acknowledge in time.", NULL);
    a->heartbeats = tm_metrics_counter(a->metrics, "tm_agent_heartbeats_total",
                                       "Heartbeats acknowledged by a collector.", NULL);
    if (create_shipper(a, err) != 0)
        goto fail;
    a->flush_ev = evtimer_new(a->base, flush_cb, a);
    /* With --once the tick also notices the end: check often so runs end promptly. */
    a->tick_ev = add_timer(a, once ? 100 : 1000, tick_cb);
    if (cfg->fsync == SPOOL_FSYNC_INTERVAL)
        a->sync_ev = add_timer(a, cfg->fsync_interval_ms, sync_cb);
    a->sigterm_ev = evsignal_new(a->base, SIGTERM, sigterm_cb, a);
    a->sigint_ev = evsignal_new(a->base, SIGINT, sigterm_cb, a);
    a->sighup_ev = evsignal_new(a->base, SIGHUP, sighup_cb, a);
    if (a->flush_ev == NULL || a->tick_ev == NULL || a->sigterm_ev == NULL ||
        a->sigint_ev == NULL || a->sighup_ev == NULL ||
        (cfg->fsync == SPOOL_FSYNC_INTERVAL && a->sync_ev == NULL)) {
        tm_err(err, "out of memory");
        goto fail;
    }
    event_add(a->sigterm_ev, NULL);
    event_add(a->sigint_ev, NULL);
    event_add(a->sighup_ev, NULL);
    if (cfg->admin[0] != '\0') {
        a->admin = tm_admin_create(a->base, cfg->admin, a->metrics, err);
        if (a->admin == NULL)
            goto fail;
        tm_admin_set_health(a->admin, health_cb, a);
        printf("listening admin %s\n", tm_admin_address(a->admin));
        fflush(stdout);
    }
    for (int i = 0; i < cfg->ninputs; i++)
        if (create_input(a, &cfg->inputs[i], err) != 0)
            goto fail;
    return a;
fail:
    agent_destroy(a);
    return NULL;
}

int agent_run(struct agent *a)
{
    tm_log_info("tm-agent %s: agent '%s', %d input(s), collectors %s", AGENT_VERSION, a->cfg->id,
                a->ninputs, a->cfg->collectors);
    event_base_dispatch(a->base);
    return a->exit_code;
}

void agent_destroy(struct agent *a)
{
    int64_t now = tm_time_now_ms();

    if (a == NULL)
        return;
    /* Inputs stay open until their positions are saved; the loop no longer runs. */
    for (int i = 0; i < a->ninputs; i++)
        if (a->spool != NULL && a->inputs[i].detect != NULL)
            detect_flush(a->inputs[i].detect, now); /* folded counts go to the spool */
    if (a->spool != NULL && flush_spool(a) == 0) {
        char err[TM_ERR_LEN];
        if (a->cfg->fsync != SPOOL_FSYNC_NEVER && spool_sync(a->spool, err) != 0)
            tm_log_error("spool: %s", err);
        else
            checkpoint_inputs(a, false);
    }
    for (int i = 0; i < a->ninputs; i++) {
        struct input *in = &a->inputs[i];
        if (in->ops->stop != NULL)
            in->ops->stop(in);
        detect_destroy(in->detect);
    }
    ship_destroy(a->ship);
    spool_close(a->spool);
    tm_admin_destroy(a->admin);
    if (a->flush_ev != NULL)
        event_free(a->flush_ev);
    if (a->sync_ev != NULL)
        event_free(a->sync_ev);
    if (a->tick_ev != NULL)
        event_free(a->tick_ev);
    if (a->sigterm_ev != NULL)
        event_free(a->sigterm_ev);
    if (a->sigint_ev != NULL)
        event_free(a->sigint_ev);
    if (a->sighup_ev != NULL)
        event_free(a->sighup_ev);
    tm_metrics_destroy(a->metrics);
    if (a->base != NULL)
        event_base_free(a->base);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    free(a);
}
