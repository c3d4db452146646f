/*
 * main.c - tm-dashboard: options, config, wiring and signals. Everything else lives in
 * the modules listed in dashboard.h. Prints "listening http HOST:PORT" and "listening
 * admin HOST:PORT" on stdout once both are bound (port 0 picks a free port), as the
 * other daemons do, so scripts and tests can find them.
 *
 * Signals: SIGTERM and SIGINT close every connection and exit 0; SIGHUP reloads the
 * tokens ([auth] tokens and tokens_file of the config file): on error the old ones stay.
 */
#include <event2/event.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "tm/tm_admin.h"
#include "tm/tm_log.h"

struct app {
    struct dash d;
    const char *config_path;
    struct tm_admin *admin;
    struct event *sigterm_ev, *sigint_ev, *sighup_ev;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tm-dashboard [-c FILE] [--redis HOST:PORT] [--http ADDR] [--admin ADDR]\n"
               "                    [--web DIR] [--log-level LEVEL]\n"
               "\n"
               "Serves the analysts' dashboard: the web page, a JSON API and a live feed\n"
               "(Server-Sent Events), read from the Redis keys the aggregator writes.\n"
               "ADDR is HOST:PORT; port 0 picks a free port (printed on stdout). Command-line\n"
               "values win over the config file. See docs/dashboard.md.\n"
               "Signals: SIGTERM exits, SIGHUP reloads the tokens.\n");
}

static int parse_args(struct app *a, int argc, char **argv, char *err)
{
    static const struct option longopts[] = {
        {"redis", required_argument, NULL, 'r'},     {"http", required_argument, NULL, 'H'},
        {"admin", required_argument, NULL, 'a'},     {"web", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
    };
    int opt, idx;

    while ((opt = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1) {
        if (opt == 'c') {
            a->config_path = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            exit(0);
        } else if (opt == 'V') {
            printf("tm-dashboard %s\n", TM_VERSION);
            exit(0);
        } else if (opt == '?') {
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        return tm_err(err, "unexpected argument '%s'", argv[optind]);
    if (dash_config_load(&a->d.cfg, a->config_path, err) != 0)
        return -1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1)
        if (opt != 'c' && dash_config_override(&a->d.cfg, longopts[idx].name, optarg, err) != 0)
            return -1;
    return 0;
}

static bool loopback(const char *addr)
{
    struct sockaddr_storage ss;

    if (tm_net_parse_addr(addr, &ss, NULL, NULL) != 0)
        return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    return ss.ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
}

static int health_cb(void *arg, char *reason, size_t len)
{
    struct dash *d = arg;

    if (dash_redis_up(d->redis))
        return 0;
    snprintf(reason, len, "redis unreachable: %s", dash_redis_reason(d->redis));
    return -1;
}

static void redis_up_cb(void *arg)
{
    struct dash *d = arg;

    dash_api_invalidate(d->api);
    dash_stream_redis_up(d->stream);
}

static void message_cb(void *arg, const char *payload, size_t len)
{
    struct dash *d = arg;

    dash_api_invalidate(d->api);
    dash_stream_update(d->stream, payload, len);
}

static void sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    (void)what;

    tm_log_info("signal %d: stopping", (int)sig);
    event_base_loopexit(a->d.base, NULL);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    struct dash_config *cfg = calloc(1, sizeof(*cfg));
    struct dash_auth *auth = NULL;
    char err[TM_ERR_LEN] = "out of memory";
    (void)sig;
    (void)what;

    if (cfg != NULL && dash_config_load(cfg, a->config_path, err) == 0) {
        cfg->auth = a->d.cfg.auth;
        auth = dash_auth_load(cfg, err);
    }
    if (auth == NULL) {
        tm_log_error("SIGHUP: keeping the old tokens: %s", err);
    } else {
        dash_auth_free(a->d.auth);
        a->d.auth = auth;
        tm_log_info("SIGHUP: %zu token(s) loaded", dash_auth_count(auth));
    }
    if (cfg != NULL)
        explicit_bzero(cfg, sizeof(*cfg));
    free(cfg);
}

static void announce(const char *name, const char *addr)
{
    printf("listening %s %s\n", name, addr);
    fflush(stdout);
}

static int setup(struct app *a, char *err)
{
    struct dash *d = &a->d;
    struct dash_config *cfg = &d->cfg;
    struct dash_redis_events ev = {redis_up_cb, NULL, redis_up_cb, message_cb, d};
    enum tm_log_level level;

    if (tm_log_level_parse(cfg->log_level, &level) != 0)
        return tm_err(err, "log_level '%s': expected error, warn, info or debug", cfg->log_level);
    tm_log_init("tm-dashboard", level, cfg->log_syslog);
    if (cfg->http[0] == '\0')
        return tm_err(err, "[dashboard] http is empty: nothing to serve");
    if (!cfg->auth && !loopback(cfg->http))
        return tm_err(err,
                      "auth = off is for loopback development only; http '%s' is not a "
                      "loopback address",
                      cfg->http);
    if (dash_config_read_password(cfg, err) != 0)
        return -1;
    d->auth = dash_auth_load(cfg, err);
    if (d->auth == NULL)
        return -1;
    if (!cfg->auth)
        tm_log_warn("auth = off: anyone who reaches %s reads the API (loopback development "
                    "only)",
                    cfg->http);
    dash_static_root(cfg, d->web_root, sizeof(d->web_root));

    d->metrics = tm_metrics_create();
    d->base = event_base_new();
    if (d->metrics == NULL || d->base == NULL)
        return tm_err(err, "out of memory");
    d->api = dash_api_create(d);
    d->stream = dash_stream_create(d);
    if (d->api == NULL || d->stream == NULL)
        return tm_err(err, "out of memory");
    if (dash_server_start(d, err) != 0)
        return -1;
    announce("http", d->http_addr);
    a->admin = tm_admin_create(d->base, cfg->admin, d->metrics, err);
    if (a->admin == NULL)
        return -1;
    tm_admin_set_health(a->admin, health_cb, d);
    announce("admin", tm_admin_address(a->admin));
    d->redis = dash_redis_create(d->base, cfg, d->metrics, &ev, err);
    if (d->redis == NULL)
        return -1;

    a->sigterm_ev = evsignal_new(d->base, SIGTERM, sigterm_cb, a);
    a->sigint_ev = evsignal_new(d->base, SIGINT, sigterm_cb, a);
    a->sighup_ev = evsignal_new(d->base, SIGHUP, sighup_cb, a);
    if (a->sigterm_ev == NULL || a->sigint_ev == NULL || a->sighup_ev == NULL ||
        evsignal_add(a->sigterm_ev, NULL) != 0 || evsignal_add(a->sigint_ev, NULL) != 0 ||
        evsignal_add(a->sighup_ev, NULL) != 0)
        return tm_err(err, "cannot install signal handlers");
    return 0;
}

static void teardown(struct app *a)
{
    struct dash *d = &a->d;

    dash_server_stop(d); /* closes every client: pending requests detach */
    dash_stream_destroy(d->stream);
    dash_api_destroy(d->api);
    dash_redis_destroy(d->redis); /* fails and frees the queries still owed replies */
    tm_admin_destroy(a->admin);
    if (a->sigterm_ev != NULL)
        event_free(a->sigterm_ev);
    if (a->sigint_ev != NULL)
        event_free(a->sigint_ev);
    if (a->sighup_ev != NULL)
        event_free(a->sighup_ev);
    if (d->base != NULL)
        event_base_free(d->base);
    tm_metrics_destroy(d->metrics);
    dash_auth_free(d->auth);
    explicit_bzero(&d->cfg, sizeof(d->cfg));
}

int main(int argc, char **argv)
{
    static struct app a;
    char err[TM_ERR_LEN] = "";
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    if (parse_args(&a, argc, argv, err) != 0 || setup(&a, err) != 0) {
        fprintf(stderr, "tm-dashboard: %s\n", err);
        goto out;
    }
    tm_log_info("dashboard started: http %s%s, redis %s, web root '%s', %zu token(s)",
                a.d.http_addr, a.d.tls != NULL ? " (tls)" : "", a.d.cfg.redis, a.d.web_root,
                dash_auth_count(a.d.auth));
    event_base_dispatch(a.d.base);
    rc = 0;
out:
    teardown(&a);
    if (rc == 0)
        tm_log_info("dashboard stopped");
    return rc;
}
