/*
 * main.c - tm-collector: options, config, and wiring. Everything else lives in the
 * modules listed in collector.h. Prints one "listening NAME HOST:PORT" line per listener
 * on stdout once they are bound (port 0 picks a free port), so scripts and tests can
 * find them.
 */
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acceptor.h"
#include "collector.h"
#include "enroll.h"
#include "rate.h"
#include "http_in.h"
#include "syslog_in.h"
#include "tls.h"
#include "tm/tm_admin.h"
#include "tm/tm_log.h"

struct app {
    struct collector c;
    struct tm_admin *admin;
    struct acceptor *lumberjack, *syslog_tcp;
    struct http_in *http;
    struct enroll *enroll;
    struct event *sigterm_ev, *sigint_ev, *sighup_ev;
    int udp_fd;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tm-collector [-c FILE] [--kafka BOOTSTRAP] [--lumberjack ADDR]\n"
               "                    [--syslog-tcp ADDR] [--syslog-udp ADDR] [--http ADDR]\n"
               "                    [--enroll ADDR] [--admin ADDR] [--workers N]\n"
               "                    [--log-level LEVEL]\n"
               "\n"
               "Receives attack events from agents, Beats, syslog senders and HTTP clients,\n"
               "validates them, stamps the sender's identity and writes them to Kafka.\n"
               "A sender's events are acknowledged only once Kafka has them.\n"
               "ADDR is HOST:PORT; port 0 picks a free port (printed on stdout). Command-line\n"
               "addresses win over the config file. See docs/collector.md.\n"
               "Signals: SIGTERM drains and exits, SIGHUP reloads the identity map.\n"
               "--enroll (or [enroll] listen) serves agent enrollment, docs/enrollment.md.\n");
}

static int reload_identities(struct collector *c, char *err)
{
    struct identity_map *m = NULL, *old;

    if (c->cfg.identity_map[0] != '\0') {
        m = identity_map_load(c->cfg.identity_map, err);
        if (m == NULL)
            return -1;
    }
    pthread_mutex_lock(&c->identity_lock);
    old = c->identities;
    c->identities = m;
    pthread_mutex_unlock(&c->identity_lock);
    identity_map_free(old);
    return 0;
}

static int health_cb(void *arg, char *reason, size_t len)
{
    struct collector *c = arg;

    for (int i = 0; i < c->nworkers; i++)
        if (!kafka_sink_healthy(c->workers[i]->sink)) {
            snprintf(reason, len, "kafka brokers down");
            return -1;
        }
    if (c->draining) {
        snprintf(reason, len, "draining");
        return -1;
    }
    return 0;
}

static void sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    (void)what;

    if (a->c.draining)
        return;
    tm_log_info("signal %d: draining (up to %lld ms for Kafka)", (int)sig,
                (long long)a->c.cfg.drain_timeout_ms);
    a->c.draining = 1;
    acceptor_disable(a->lumberjack);
    acceptor_disable(a->syslog_tcp);
    for (int i = 0; i < a->c.nworkers; i++)
        worker_stop(a->c.workers[i]);
    event_base_loopexit(a->c.base, NULL);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    char err[TM_ERR_LEN];
    (void)sig;
    (void)what;

    if (reload_identities(&a->c, err) != 0)
        tm_log_error("SIGHUP: keeping the old identity map: %s", err);
    else
        tm_log_info("SIGHUP: identity map reloaded");
}

static void announce(const char *name, const char *addr)
{
    printf("listening %s %s\n", name, addr);
    fflush(stdout);
}

static int parse_args(struct app *a, int argc, char **argv, char *err)
{
    static const struct option longopts[] = {
        {"kafka", required_argument, NULL, 'k'},      {"lumberjack", required_argument, NULL, 'l'},
        {"syslog-tcp", required_argument, NULL, 't'}, {"syslog-udp", required_argument, NULL, 'u'},
        {"http", required_argument, NULL, 'H'},       {"enroll", required_argument, NULL, 'e'},
        {"admin", required_argument, NULL, 'a'},      {"workers", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'L'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},          {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int opt, idx;

    /* First pass: the config file, so command-line values can win over it. */
    while ((opt = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1) {
        if (opt == 'c')
            config = optarg;
        else if (opt == 'h') {
            usage(stdout);
            exit(0);
        } else if (opt == 'V') {
            printf("tm-collector %s\n", TM_VERSION);
            exit(0);
        } else if (opt == '?') {
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        return tm_err(err, "unexpected argument '%s'", argv[optind]);
    if (collector_config_load(&a->c.cfg, config, err) != 0)
        return -1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1)
        if (opt != 'c' && collector_config_override(&a->c.cfg, longopts[idx].name, optarg, err))
            return -1;
    return 0;
}

static int setup(struct app *a, char *err)
{
    struct collector *c = &a->c;
    const struct collector_config *cfg = &c->cfg;
    enum tm_log_level level;

    if (tm_log_level_parse(cfg->log_level, &level) != 0)
        return tm_err(err, "log_level '%s': expected error, warn, info or debug", cfg->log_level);
    tm_log_init("tm-collector", level, cfg->log_syslog);
    if (cfg->low_water >= cfg->high_water)
        return tm_err(err, "[kafka] low_water (%lld) must be below high_water (%lld)",
                      (long long)cfg->low_water, (long long)cfg->high_water);
    tm_lj_limits_default(&c->lj_limits);
    c->lj_limits.max_frame = (uint32_t)cfg->max_frame;
    c->lj_limits.max_decompressed = (uint32_t)cfg->max_decompressed;
    c->lj_limits.max_window = (uint32_t)cfg->max_window;

    pthread_mutex_init(&c->identity_lock, NULL);
    pthread_mutex_init(&c->conn_lock, NULL);
    if (reload_identities(c, err) != 0)
        return -1;
    if (cfg->default_operator[0] != '\0') {
        struct identity *d = &c->default_identity;
        tm_strlcpy(d->operator_id, cfg->default_operator, sizeof(d->operator_id));
        tm_strlcpy(d->sector, cfg->default_sector, sizeof(d->sector));
        tm_strlcpy(d->region, cfg->default_region, sizeof(d->region));
        c->have_default_identity = true;
    }
    if (cfg->tls_cert[0] != '\0') {
        c->tls = tls_server_ctx_create(cfg->tls_cert, cfg->tls_key, cfg->tls_ca,
                                       cfg->tls_require_client_cert, err);
        if (c->tls == NULL)
            return -1;
        collector_tls_refuse_revoked(c, c->tls);
    } else if (cfg->lumberjack_tls || cfg->syslog_tls) {
        return tm_err(err, "[lumberjack] or [syslog] tls = true needs [tls] cert and key");
    }

    c->metrics = tm_metrics_create();
    c->base = event_base_new();
    if (c->metrics == NULL || c->base == NULL)
        return tm_err(err, "out of memory");
    c->conn_refused = tm_metrics_counter(c->metrics, "tm_collector_connections_refused_total",
                                         "Connections refused by the connection limits.", NULL);
    c->lj_throttled = tm_metrics_counter(c->metrics, "tm_collector_throttled_total",
                                         "Times a sender over its rate had its connection paused.",
                                         "listener", "lumberjack", NULL);
    c->syslog_throttled = tm_metrics_counter(
        c->metrics, "tm_collector_throttled_total",
        "Times a sender over its rate had its connection paused.", "listener", "syslog", NULL);
    c->http_rate = rate_create(cfg->rate_per_sender, cfg->rate_burst);
    c->lj_rate = rate_create(cfg->lj_rate_per_sender, cfg->lj_rate_burst);
    c->syslog_rate = rate_create(cfg->syslog_rate_per_sender, cfg->syslog_rate_burst);
    for (int i = 0; i < cfg->workers; i++) {
        c->workers[i] = worker_create(c, i, err);
        if (c->workers[i] == NULL)
            return -1;
        c->nworkers++;
    }
    if (cfg->lumberjack[0] != '\0') {
        a->lumberjack = acceptor_create(c, cfg->lumberjack, LISTENER_LUMBERJACK, err);
        if (a->lumberjack == NULL)
            return -1;
        announce("lumberjack", acceptor_address(a->lumberjack));
    }
    if (cfg->syslog_tcp[0] != '\0') {
        a->syslog_tcp = acceptor_create(c, cfg->syslog_tcp, LISTENER_SYSLOG_TCP, err);
        if (a->syslog_tcp == NULL)
            return -1;
        announce("syslog-tcp", acceptor_address(a->syslog_tcp));
    }
    if (cfg->syslog_udp[0] != '\0') {
        char bound[TM_ADDR_LEN];
        a->udp_fd = tm_net_listen(cfg->syslog_udp, SOCK_DGRAM, false, err);
        if (a->udp_fd < 0 || syslog_udp_start(c->workers[0], a->udp_fd, err) != 0)
            return -1;
        tm_net_local_addr(a->udp_fd, bound, sizeof(bound));
        announce("syslog-udp", bound);
    }
    if (cfg->http[0] != '\0') {
        a->http = http_in_create(c->workers[0], cfg->http, err);
        if (a->http == NULL)
            return -1;
        announce("http", http_in_address(a->http));
    }
    if (cfg->enroll[0] != '\0') {
        a->enroll = enroll_create(c, reload_identities, err);
        if (a->enroll == NULL)
            return -1;
        announce("enroll", enroll_address(a->enroll));
    }
    a->admin = tm_admin_create(c->base, cfg->admin, c->metrics, err);
    if (a->admin == NULL)
        return -1;
    tm_admin_set_health(a->admin, health_cb, c);
    announce("admin", tm_admin_address(a->admin));

    a->sigterm_ev = evsignal_new(c->base, SIGTERM, sigterm_cb, a);
    a->sigint_ev = evsignal_new(c->base, SIGINT, sigterm_cb, a);
    a->sighup_ev = evsignal_new(c->base, SIGHUP, sighup_cb, a);
    if (a->sigterm_ev == NULL || a->sigint_ev == NULL || a->sighup_ev == NULL ||
        evsignal_add(a->sigterm_ev, NULL) != 0 || evsignal_add(a->sigint_ev, NULL) != 0 ||
        evsignal_add(a->sighup_ev, NULL) != 0)
        return tm_err(err, "cannot install signal handlers");
    for (int i = 0; i < c->nworkers; i++)
        if (worker_start(c->workers[i], err) != 0)
            return -1;
    return 0;
}

static void teardown(struct app *a)
{
    struct collector *c = &a->c;

    /* Listeners on worker loops go while the loops still exist, after the threads left. */
    for (int i = 0; i < c->nworkers; i++)
        worker_join(c->workers[i]);
    http_in_destroy(a->http);
    if (a->udp_fd >= 0 && c->nworkers > 0)
        syslog_udp_stop(c->workers[0]);
    for (int i = 0; i < c->nworkers; i++) {
        worker_join_and_free(c->workers[i]);
        c->workers[i] = NULL;
    }
    acceptor_destroy(a->lumberjack);
    acceptor_destroy(a->syslog_tcp);
    enroll_destroy(a->enroll);
    tm_admin_destroy(a->admin);
    if (a->sigterm_ev != NULL)
        event_free(a->sigterm_ev);
    if (a->sigint_ev != NULL)
        event_free(a->sigint_ev);
    if (a->sighup_ev != NULL)
        event_free(a->sighup_ev);
    if (c->base != NULL)
        event_base_free(c->base);
    if (a->udp_fd >= 0)
        close(a->udp_fd);
    identity_map_free(c->identities);
    collector_conn_counts_free(c);
    rate_free(c->http_rate);
    rate_free(c->lj_rate);
    rate_free(c->syslog_rate);
    if (c->tls != NULL)
        SSL_CTX_free(c->tls);
    tm_metrics_destroy(c->metrics);
    collector_config_free(&c->cfg);
}

int main(int argc, char **argv)
{
    static struct app a;
    char err[TM_ERR_LEN] = "";
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    a.udp_fd = -1;
    if (parse_args(&a, argc, argv, err) != 0 || setup(&a, err) != 0) {
        fprintf(stderr, "tm-collector: %s\n", err);
        goto out;
    }
    tm_log_info("collector started: %d worker(s), kafka %s", a.c.nworkers, a.c.cfg.kafka);
    event_base_dispatch(a.c.base);
    rc = 0;
out:
    teardown(&a);
    if (rc == 0)
        tm_log_info("collector stopped");
    return rc;
}
