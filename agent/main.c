/*
 * main.c - tm-agent: options and wiring. `tm-agent [options]` runs the agent (agent.c);
 * `tm-agent report ...` files a manual incident into the running agent's inbox
 * (report.c); `tm-agent enroll ...` trades a one-time token for the agent's certificate
 * (enroll.c). docs/agent.md is the manual.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tm-agent [-c FILE] [--collector ADDR[,ADDR...]] [--id ID] [--state-dir DIR]\n"
            "                [--admin ADDR] [--once] [--check-config] [--log-level LEVEL]\n"
            "       tm-agent report [-c FILE] [--state-dir DIR] --category C --severity N\n"
            "                --summary TEXT [--src IP] [--dst IP] [--asset NAME]\n"
            "                [--technique T] [--tactic T] [--ts RFC3339]\n"
            "       tm-agent enroll --token TOKEN --collector HOST:PORT [--ca FILE]\n"
            "                [--out DIR] [--user USER] (see tm-agent enroll --help)\n"
            "\n"
            "Reads an operator's security logs (files, syslog, stdin), detects attacks,\n"
            "spools every event to disk and ships it to a tm-collector over Lumberjack v2\n"
            "(TLS with a client certificate), keeping it until the collector acknowledges it.\n"
            "'report' files a manual incident: it goes through the same spool, ahead of\n"
            "bulk events. --once exits when every input is finished (stdin at its end) and\n"
            "the spool is empty. --check-config only loads and checks the config.\n"
            "Command-line values win over the config file.\n"
            "See docs/agent.md. Signals: SIGTERM/SIGINT save positions and exit.\n");
}

static int set_or_die(struct agent_config *cfg, const char *section, const char *key,
                      const char *value)
{
    char err[TM_ERR_LEN];

    if (agent_config_set(cfg, section, key, value, err) != 0) {
        fprintf(stderr, "tm-agent: %s\n", err);
        return -1;
    }
    return 0;
}

/* Loads -c FILE (first pass over argv) so later options can override it. */
static int load_config(struct agent_config *cfg, int argc, char **argv)
{
    char err[TM_ERR_LEN];
    const char *path = NULL;

    for (int i = 1; i < argc - 1; i++)
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
            path = argv[i + 1];
    if (agent_config_load(cfg, path, err) != 0) {
        fprintf(stderr, "tm-agent: %s\n", err);
        return -1;
    }
    return 0;
}

static int cmd_report(struct agent_config *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 'd'},
        {"category", required_argument, NULL, 'C'},
        {"severity", required_argument, NULL, 'S'},
        {"summary", required_argument, NULL, 'm'},
        {"src", required_argument, NULL, 's'},
        {"dst", required_argument, NULL, 't'},
        {"asset", required_argument, NULL, 'a'},
        {"technique", required_argument, NULL, 'T'},
        {"tactic", required_argument, NULL, 'K'},
        {"ts", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct tm_event ev;
    char err[TM_ERR_LEN], id[TM_EVENT_ID_MAX + 1];
    char *end;
    int opt;

    tm_event_init(&ev);
    ev.count = 1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        char *dst = NULL;
        size_t size = 0;
        switch (opt) {
        case 'c':
            break;
        case 'd':
            if (set_or_die(cfg, "agent", "state_dir", optarg) != 0)
                return 2;
            break;
        case 'C':
            dst = ev.category, size = sizeof(ev.category);
            break;
        case 'S':
            ev.severity = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg) {
                fprintf(stderr, "tm-agent report: --severity '%s': not a number 1..10\n", optarg);
                return 2;
            }
            break;
        case 'm':
            dst = ev.summary, size = sizeof(ev.summary);
            break;
        case 's':
            dst = ev.src.ip, size = sizeof(ev.src.ip);
            break;
        case 't':
            dst = ev.dst.ip, size = sizeof(ev.dst.ip);
            break;
        case 'a':
            dst = ev.dst.asset, size = sizeof(ev.dst.asset);
            break;
        case 'T':
            dst = ev.attack.technique, size = sizeof(ev.attack.technique);
            break;
        case 'K':
            dst = ev.attack.tactic, size = sizeof(ev.attack.tactic);
            break;
        case 'z':
            if (tm_time_parse(optarg, strlen(optarg), &ev.ts) != 0) {
                fprintf(stderr, "tm-agent report: --ts '%s': not an RFC 3339 time\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (dst != NULL && tm_strlcpy(dst, optarg, size) != 0) {
            fprintf(stderr, "tm-agent report: '%s' is longer than %zu bytes\n", optarg, size - 1);
            return 2;
        }
    }
    if (ev.category[0] == '\0' || ev.severity < 0 || ev.summary[0] == '\0') {
        fprintf(stderr, "tm-agent report: --category, --severity and --summary are required\n");
        return 2;
    }
    if (report_write(cfg->state_dir, &ev, id, err) != 0) {
        fprintf(stderr, "tm-agent report: %s\n", err);
        return 1;
    }
    printf("%s\n", id);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"collector", required_argument, NULL, 'k'},
        {"id", required_argument, NULL, 'i'},
        {"state-dir", required_argument, NULL, 'd'},
        {"admin", required_argument, NULL, 'a'},
        {"once", no_argument, NULL, 'o'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"check-config", no_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    struct agent_config *cfg = calloc(1, sizeof(*cfg));
    enum tm_log_level level;
    struct agent *a;
    char err[TM_ERR_LEN] = "";
    bool once = false, check_only = false;
    int opt, rc;

    if (argc > 1 && strcmp(argv[1], "enroll") == 0) {
        free(cfg);
        return enroll_main(argc - 1, argv + 1);
    }
    if (cfg == NULL || load_config(cfg, argc, argv) != 0) {
        free(cfg);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "report") == 0) {
        rc = cmd_report(cfg, argc - 1, argv + 1);
        free(cfg);
        return rc;
    }
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        const char *sec = NULL, *key = NULL;
        switch (opt) {
        case 'c':
            break;
        case 'k':
            sec = "shipper", key = "collectors";
            break;
        case 'i':
            sec = "agent", key = "id";
            break;
        case 'd':
            sec = "agent", key = "state_dir";
            break;
        case 'a':
            sec = "agent", key = "admin";
            break;
        case 'L':
            sec = "agent", key = "log_level";
            break;
        case 'o':
            once = true;
            break;
        case 'C':
            check_only = true;
            break;
        case 'h':
            usage(stdout);
            free(cfg);
            return 0;
        case 'V':
            printf("tm-agent %s\n", AGENT_VERSION);
            free(cfg);
            return 0;
        default:
            usage(stderr);
            free(cfg);
            return 2;
        }
        if (key != NULL && set_or_die(cfg, sec, key, optarg) != 0) {
            free(cfg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tm-agent: unexpected argument '%s'\n", argv[optind]);
        free(cfg);
        return 2;
    }
    if (tm_log_level_parse(cfg->log_level, &level) != 0 || agent_config_check(cfg, err) != 0) {
        fprintf(stderr, "tm-agent: %s\n",
                err[0] != '\0' ? err : "[agent] log_level: error, warn, info or debug");
        free(cfg);
        return 2;
    }
    if (check_only) {
        printf("config ok: agent '%s', %d input(s), collectors %s\n", cfg->id, cfg->ninputs,
               cfg->collectors);
        free(cfg);
        return 0;
    }
    tm_log_init("tm-agent", level, cfg->log_syslog);
    signal(SIGPIPE, SIG_IGN);
    /* Fixed malloc thresholds: glibc would raise them after the first big buffer (zlib's
     * deflate state, spool batches, evbuffer pullups) is freed, and keep every later one in
     * the heap; fixed, they are mapped and handed back when freed. One arena: one thread. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    mallopt(M_ARENA_MAX, 1);
    a = agent_create(cfg, once, err);
    if (a == NULL) {
        tm_log_error("%s", err);
        free(cfg);
        return 1;
    }
    rc = agent_run(a);
    agent_destroy(a);
    tm_log_info("stopped");
    free(cfg);
    return rc;
}
