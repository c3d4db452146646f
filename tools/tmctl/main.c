/*
 * main.c - tmctl, the planners' tool: global options, config, then one command.
 *
 *   tmctl [-c FILE] [--redis HOST:PORT] [--now TIME] COMMAND ...
 *
 * Exit status: 0 done, 1 failed (the message says why), 2 bad usage. Results go to
 * stdout, messages to stderr; the Redis password is never printed.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_common.h"
#include "tm/tm_config.h"
#include "tm/tm_log.h"
#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define DAY_MS 86400000LL

void ctl_error(const char *fmt, ...)
{
    va_list ap;

    fputs("tmctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int ctl_format_parse(const char *s, bool allow_stix, enum ctl_format *out)
{
    if (strcmp(s, "table") == 0)
        *out = CTL_FMT_TABLE;
    else if (strcmp(s, "csv") == 0)
        *out = CTL_FMT_CSV;
    else if (strcmp(s, "json") == 0)
        *out = CTL_FMT_JSON;
    else if (allow_stix && strcmp(s, "stix") == 0)
        *out = CTL_FMT_STIX;
    else
        return -1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tmctl [-c FILE] [--redis HOST:PORT] [--now TIME] COMMAND ...\n"
               "\n"
               "  needs import FILE.csv             add or update needs (all rows or none)\n"
               "  needs add --id ID --sector S --category C --cost EUR [--operator OP]\n"
               "            [--region UA-NN] [--description TEXT] [--opened YYYY-MM-DD]\n"
               "  needs list [--status open|closed|all] [--sector S] [--format table|csv|json]\n"
               "  needs close ID [--date YYYY-MM-DD]\n"
               "  offers import [--replace] FILE.csv add or update donor offers\n"
               "  offers list [--format table|csv|json]\n"
               "  priorities [--sector S] [--explain] [--format table|csv|json]\n"
               "                                    score open needs, store tm:priorities\n"
               "  match [--format table|csv|json] [--algorithm optimal|first-come]\n"
               "                                    assign offers to needs, most priority covered\n"
               "  export [--since 7d|YYYY-MM-DD] [--format csv|json|stix]\n"
               "         [--table incidents|sectors|sources] [--top N]\n"
               "\n"
               "agent enrollment (docs/enrollment.md; [ca] and [collector] in the config):\n"
               "  ca init [--dir DIR] [--days N]    the enrollment CA: ca.crt, ca.key\n"
               "  ca server-cert --dns NAME [--ip ADDR] [--out DIR]\n"
               "                                    a collector's TLS certificate\n"
               "  enroll --operator ID [--sector S] [--region UA-NN] [--name NAME]\n"
               "         [--cert-out DIR | --token | --token-ttl 24h]\n"
               "                                    an agent's certificate now, or a one-time\n"
               "                                    token for tm-agent enroll\n"
               "  revoke NAME_OR_OPERATOR [--tokens] deny certificate names (and tokens)\n"
               "\n"
               "-c FILE: INI config (docs/planners.md); --redis wins over its [redis] address.\n"
               "--now: RFC 3339 time taken as now (reproducible reports); default the clock.\n"
               "The Redis password comes from the config, its password_file or\n"
               "TMCTL_REDIS_PASSWORD, and is never printed.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"now", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static struct ctl c;
    const char *config = NULL, *redis = NULL, *now = NULL;
    char err[TM_ERR_LEN];
    enum tm_log_level level;
    int opt, rc = 2;

    c.out = stdout;
    while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'r':
            redis = optarg;
            break;
        case 'n':
            now = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("tmctl %s\n", TM_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (tm_need_categories_count != CTL_NEED_CATS) {
        ctl_error("internal: %zu need categories, built for %d", tm_need_categories_count,
                  CTL_NEED_CATS);
        return 1;
    }
    if (ctl_config_load(&c.cfg, config, err) != 0) {
        ctl_error("%s", err);
        return 2;
    }
    if (tm_log_level_parse(c.cfg.log_level, &level) != 0)
        level = TM_LOG_WARN;
    tm_log_init("tmctl", level, false);
    if (redis != NULL) {
        struct tm_config_option opt_redis[] = {
            {"redis", "address", TM_CONF_ADDR, NULL, offsetof(struct ctl_config, redis),
             sizeof(c.cfg.redis), 0, 0, NULL, NULL},
            {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
        };
        struct tm_config_spec spec = {opt_redis, NULL, NULL};
        if (tm_config_set(&spec, &c.cfg, "redis", "address", redis, err) != 0) {
            ctl_error("--redis: %s", err);
            return 2;
        }
    }
    if (now != NULL) {
        if (tm_time_parse(now, strlen(now), &c.now_ms) != 0) {
            ctl_error("--now: '%s' is not an RFC 3339 time (2026-11-23T12:00:00Z)", now);
            return 2;
        }
    } else {
        c.now_ms = tm_time_now_ms();
    }
    c.today = c.now_ms / DAY_MS;

    argc -= optind;
    argv += optind;
    if (strcmp(argv[0], "needs") == 0)
        rc = ctl_cmd_needs(&c, argc - 1, argv + 1);
    else if (strcmp(argv[0], "offers") == 0)
        rc = ctl_cmd_offers(&c, argc - 1, argv + 1);
    else if (strcmp(argv[0], "priorities") == 0)
        rc = ctl_cmd_priorities(&c, argc, argv);
    else if (strcmp(argv[0], "match") == 0)
        rc = ctl_cmd_match(&c, argc, argv);
    else if (strcmp(argv[0], "export") == 0)
        rc = ctl_cmd_export(&c, argc, argv);
    else if (strcmp(argv[0], "ca") == 0)
        rc = ctl_cmd_ca(&c, argc - 1, argv + 1);
    else if (strcmp(argv[0], "enroll") == 0)
        rc = ctl_cmd_enroll(&c, argc, argv);
    else if (strcmp(argv[0], "revoke") == 0)
        rc = ctl_cmd_revoke(&c, argc, argv);
    else {
        ctl_error("unknown command '%s'", argv[0]);
        usage(stderr);
    }
    ctl_redis_close(&c);
    explicit_bzero(c.cfg.redis_password, sizeof(c.cfg.redis_password));
    if (fflush(stdout) != 0 && rc == 0)
        rc = 1;
    return rc;
}
