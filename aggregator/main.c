/*
 * main.c - tm-aggregator: options, config, and wiring. The consume/flush loop runs on the
 * main thread; between polls it runs the admin endpoint's event loop without blocking,
 * so /healthz and /metrics answer within one poll interval. Prints "listening admin
 * HOST:PORT" on stdout once the admin server is bound (port 0 picks a free port).
 *
 * Signals: SIGTERM and SIGINT flush what is pending, leave the group and exit 0; SIGHUP
 * is logged (the aggregator has no maps to reload).
 */
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_admin.h"
#include "tm/tm_log.h"

#define POLL_MS 50

static volatile sig_atomic_t stop_signal, hup_signal;

struct app {
    struct agg_config cfg;
    struct tm_metrics *metrics;
    struct agg_metrics m;
    struct event_base *base;
    struct tm_admin *admin;
    struct agg_redis *redis;
    struct agg_consumer *consumer;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tm-aggregator [-c FILE] [--kafka BOOTSTRAP] [--redis HOST:PORT]\n"
               "                     [--group NAME] [--admin ADDR] [--log-level LEVEL]\n"
               "\n"
               "Consumes tm.events.v1 and tm.heartbeats as a member of a Kafka consumer group\n"
               "and keeps exactly-once, event-time statistics per sector in Redis: each flush\n"
               "writes its results and the partitions' next offsets in one MULTI/EXEC.\n"
               "Command-line values win over the config file. See docs/aggregator.md.\n"
               "Signals: SIGTERM flushes and exits.\n");
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        hup_signal = 1;
    else
        stop_signal = sig;
}

static int health_cb(void *arg, char *reason, size_t len)
{
    struct app *a = arg;

    if (a->consumer != NULL && !agg_consumer_healthy(a->consumer)) {
        snprintf(reason, len, "redis unreachable: consumption paused");
        return -1;
    }
    return 0;
}

static int parse_args(struct app *a, int argc, char **argv, char *err)
{
    static const struct option longopts[] = {
        {"kafka", required_argument, NULL, 'k'},     {"redis", required_argument, NULL, 'r'},
        {"group", required_argument, NULL, 'g'},     {"admin", required_argument, NULL, 'a'},
        {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int opt, idx;

    while ((opt = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1) {
        if (opt == 'c') {
            config = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            exit(0);
        } else if (opt == 'V') {
            printf("tm-aggregator %s\n", TM_VERSION);
            exit(0);
        } else if (opt == '?') {
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        return tm_err(err, "unexpected argument '%s'", argv[optind]);
    if (agg_config_load(&a->cfg, config, err) != 0)
        return -1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1)
        if (opt != 'c' && agg_config_override(&a->cfg, longopts[idx].name, optarg, err) != 0)
            return -1;
    return 0;
}

static int make_metrics(struct app *a)
{
    static const double bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
    struct tm_metrics *r = a->metrics;
    struct agg_metrics *m = &a->m;

    m->registry = r; /* the per-partition lag series come and go with the assignment */
    m->consumed =
        tm_metrics_counter(r, "tm_aggregator_messages_total",
                           "Kafka messages taken in (replays after a crash included).", NULL);
    m->applied = tm_metrics_counter(r, "tm_aggregator_events_applied_total",
                                    "Events counted in Redis (not duplicates).", NULL);
    m->duplicates =
        tm_metrics_counter(r, "tm_aggregator_events_duplicate_total",
                           "Events skipped because their id was already counted.", NULL);
    m->late = tm_metrics_counter(r, "tm_aggregator_events_late_total",
                                 "Events older than their partition's watermark (counted in "
                                 "hour and day windows only).",
                                 NULL);
    m->invalid = tm_metrics_counter(r, "tm_aggregator_messages_invalid_total",
                                    "Messages that did not decode (skipped).", NULL);
    m->heartbeats = tm_metrics_counter(r, "tm_aggregator_heartbeats_total",
                                       "Agent heartbeats written to Redis.", NULL);
    m->flushes =
        tm_metrics_counter(r, "tm_aggregator_flushes_total", "Flushes applied (MULTI/EXEC).", NULL);
    m->flush_errors = tm_metrics_counter(r, "tm_aggregator_flush_errors_total",
                                         "Flushes that failed (Redis unreachable).", NULL);
    m->conflicts = tm_metrics_counter(r, "tm_aggregator_flush_conflicts_total",
                                      "Flushes refused by the offset fence.", NULL);
    m->redis_commands =
        tm_metrics_counter(r, "tm_aggregator_redis_commands_total", "Redis commands sent.", NULL);
    m->partitions = tm_metrics_gauge(r, "tm_aggregator_partitions",
                                     "Partitions assigned to this member.", NULL);
    m->pending = tm_metrics_gauge(r, "tm_aggregator_pending_messages",
                                  "Messages taken in and not yet flushed.", NULL);
    m->redis_up = tm_metrics_gauge(r, "tm_aggregator_redis_up", "1 while Redis answers.", NULL);
    m->flush_seconds = tm_metrics_histogram(r, "tm_aggregator_flush_seconds", "Time of one flush.",
                                            bounds, TM_ARRAY_LEN(bounds), NULL);
    return m->consumed != NULL && m->flush_seconds != NULL && m->redis_up != NULL ? 0 : -1;
}

static int setup(struct app *a, char *err)
{
    const struct agg_config *cfg = &a->cfg;
    enum tm_log_level level;
    struct sigaction sa;

    if (tm_log_level_parse(cfg->log_level, &level) != 0)
        return tm_err(err, "log_level '%s': expected error, warn, info or debug", cfg->log_level);
    tm_log_init("tm-aggregator", level, cfg->log_syslog);
    a->metrics = tm_metrics_create();
    a->base = event_base_new();
    a->redis = agg_redis_create(cfg);
    if (a->metrics == NULL || a->base == NULL || a->redis == NULL || make_metrics(a) != 0)
        return tm_err(err, "out of memory");
    a->admin = tm_admin_create(a->base, cfg->admin, a->metrics, err);
    if (a->admin == NULL)
        return -1;
    tm_admin_set_health(a->admin, health_cb, a);
    printf("listening admin %s\n", tm_admin_address(a->admin));
    fflush(stdout);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (agg_redis_connect(a->redis, err) != 0)
        tm_log_warn("%s: will retry when partitions are assigned", err);
    a->consumer = agg_consumer_create(cfg, a->redis, &a->m, err);
    return a->consumer != NULL ? 0 : -1;
}

static void teardown(struct app *a)
{
    agg_consumer_destroy(a->consumer);
    agg_redis_destroy(a->redis);
    tm_admin_destroy(a->admin);
    if (a->base != NULL)
        event_base_free(a->base);
    tm_metrics_destroy(a->metrics);
    agg_config_free(&a->cfg);
}

int main(int argc, char **argv)
{
    static struct app a;
    char err[TM_ERR_LEN] = "";
    int rc = 1;

    if (parse_args(&a, argc, argv, err) != 0 || setup(&a, err) != 0) {
        fprintf(stderr, "tm-aggregator: %s\n", err);
        goto out;
    }
    tm_log_info("aggregator started: kafka %s, group '%s', redis %s", a.cfg.kafka, a.cfg.group,
                a.cfg.redis);
    while (!stop_signal) {
        if (hup_signal) {
            hup_signal = 0;
            tm_log_info("SIGHUP: nothing to reload");
        }
        if (agg_consumer_run_once(a.consumer, POLL_MS) != 0)
            goto out;
        event_base_loop(a.base, EVLOOP_NONBLOCK);
    }
    tm_log_info("signal %d: flushing and leaving the group", (int)stop_signal);
    rc = 0;
out:
    teardown(&a);
    if (rc == 0)
        tm_log_info("aggregator stopped");
    return rc;
}
