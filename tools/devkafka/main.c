/*
 * tm-devkafka - a Kafka cluster for development and tests, in one process. It starts
 * librdkafka's mock cluster (cluster.c) with the project's topics, prints the bootstrap
 * servers as the first line on stdout (and "admin HOST:PORT" as the second when --admin
 * was given), optionally writes them to --bootstrap-file, serves the admin routes
 * (control.c) and runs until SIGTERM or SIGINT, then tears the cluster down and exits 0.
 *
 * The data lives in memory only. The mock cluster keeps only about the last 5 MB of
 * stored batches per partition and silently drops older ones (200,000 uncompressed
 * 350-byte messages into one partition leave about 14,000), so tests and benchmarks must
 * stay under it: compress, spread over partitions, or consume while producing. Production
 * points at a real Kafka cluster; nothing here is meant for it.
 *
 * Exit status: 0 after a signal, 1 when the cluster or the admin server cannot start,
 * 2 for a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "devkafka.h"
#include "tm/tm_admin.h"
#include "tm/tm_common.h"
#include "tm/tm_log.h"
#include "tm/tm_metrics.h"

static const char usage_text[] =
    "usage: tm-devkafka [--brokers N] [--partitions P] [--bootstrap-file F] [--admin ADDR]\n"
    "                   [--log-level LEVEL]\n"
    "\n"
    "Runs librdkafka's mock Kafka cluster on loopback ports with the topics tm.events.v1,\n"
    "tm.events.rejected and tm.heartbeats, for development and tests only. Production\n"
    "points at a real Kafka cluster.\n"
    "\n"
    "  --brokers N          brokers, 1..5 (default 1); replication factor is min(3, N)\n"
    "  --partitions P       partitions of each topic, 1..1024 (default 6)\n"
    "  --bootstrap-file F   also write the bootstrap servers and a newline to F\n"
    "                       (atomically; removed again on exit)\n"
    "  --admin ADDR         serve GET /healthz, GET /metrics, POST /brokers/down?id=N and\n"
    "                       POST /brokers/up?id=N (N = broker id, -1 or all) on HOST:PORT\n"
    "  --log-level LEVEL    error, warn, info (default) or debug, on stderr\n"
    "  -h, --help           this text\n"
    "\n"
    "Prints the bootstrap servers as its first line on stdout, then 'admin HOST:PORT' when\n"
    "--admin is given, and serves until SIGTERM or SIGINT.\n"
    "\n"
    "WARNING: the data lives in memory only and is lost on exit. The mock cluster keeps\n"
    "only about the last 5 MB of stored batches per partition and silently drops older\n"
    "ones (200,000 uncompressed 350-byte messages into one partition leave about 14,000).\n"
    "Keep tests and benchmarks under that: compress, spread over partitions, or consume\n"
    "while producing.\n";

struct options {
    int brokers;
    int partitions;
    const char *bootstrap_file;
    const char *admin;
    enum tm_log_level log_level;
};

/* Returns 0, 1 after --help, or -1 after printing a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_BROKERS = 1000, OPT_PARTITIONS, OPT_BOOTSTRAP_FILE, OPT_ADMIN, OPT_LOG_LEVEL };
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, OPT_BROKERS},
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE},
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t n;
    int c;

    o->brokers = 1;
    o->partitions = TM_DEVKAFKA_DEFAULT_PARTITIONS;
    o->bootstrap_file = NULL;
    o->admin = NULL;
    o->log_level = TM_LOG_INFO;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_BROKERS:
            if (tm_parse_int64(optarg, 1, TM_DEVKAFKA_MAX_BROKERS, &n) < 0) {
                fprintf(stderr, "tm-devkafka: --brokers '%s' is not a number from 1 to %d\n",
                        optarg, TM_DEVKAFKA_MAX_BROKERS);
                return -1;
            }
            o->brokers = (int)n;
            break;
        case OPT_PARTITIONS:
            if (tm_parse_int64(optarg, 1, TM_DEVKAFKA_MAX_PARTITIONS, &n) < 0) {
                fprintf(stderr, "tm-devkafka: --partitions '%s' is not a number from 1 to %d\n",
                        optarg, TM_DEVKAFKA_MAX_PARTITIONS);
                return -1;
            }
            o->partitions = (int)n;
            break;
        case OPT_BOOTSTRAP_FILE:
            o->bootstrap_file = optarg;
            break;
        case OPT_ADMIN:
            o->admin = optarg;
            break;
        case OPT_LOG_LEVEL:
            if (tm_log_level_parse(optarg, &o->log_level) < 0) {
                fprintf(stderr, "tm-devkafka: --log-level '%s' is not error, warn, info or debug\n",
                        optarg);
                return -1;
            }
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 1;
        default:
            fputs(usage_text, stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tm-devkafka: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/*
 * Writes text to path through a temporary file in the same directory and rename(2), so a
 * reader polling for path sees either nothing or the whole line.
 */
static int write_file_atomic(const char *path, const char *text, char *err)
{
    char tmp[4096];
    size_t len = strlen(text), off = 0;
    int fd = -1;
    int rc = -1;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        tm_err(err, "path '%s' is too long", path);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        tm_err(err, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            tm_err(err, "cannot write '%s': %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        fd = -1;
        tm_err(err, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        tm_err(err, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    tm_log_info("%s received, stopping", strsignal((int)sig));
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct options o;
    struct event_base *base = NULL;
    struct event *ev_term = NULL, *ev_int = NULL;
    struct tm_devkafka *dk = NULL;
    struct tm_metrics *metrics = NULL;
    struct tm_admin *admin = NULL;
    struct tm_devkafka_control *control = NULL;
    char *line = NULL;
    bool wrote_file = false;
    char err[TM_ERR_LEN];
    int rc = 1;

    switch (parse_options(argc, argv, &o)) {
    case 1:
        return 0;
    case -1:
        return 2;
    default:
        break;
    }
    tm_log_init("tm-devkafka", o.log_level, false);
    /* A reader that went away must not kill the cluster; writes report EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);

    base = event_base_new();
    if (base == NULL) {
        tm_log_error("cannot create an event base");
        goto out;
    }
    ev_term = evsignal_new(base, SIGTERM, stop_cb, base);
    ev_int = evsignal_new(base, SIGINT, stop_cb, base);
    if (ev_term == NULL || ev_int == NULL || evsignal_add(ev_term, NULL) < 0 ||
        evsignal_add(ev_int, NULL) < 0) {
        tm_log_error("cannot watch SIGTERM and SIGINT");
        goto out;
    }

    dk = tm_devkafka_create(o.brokers, o.partitions, err);
    if (dk == NULL) {
        tm_log_error("%s", err);
        goto out;
    }
    if (o.admin != NULL) {
        metrics = tm_metrics_create();
        if (metrics == NULL) {
            tm_log_error("out of memory");
            goto out;
        }
        admin = tm_admin_create(base, o.admin, metrics, err);
        if (admin == NULL) {
            tm_log_error("admin '%s': %s", o.admin, err);
            goto out;
        }
        control = tm_devkafka_control_create(admin, dk, metrics, err);
        if (control == NULL) {
            tm_log_error("%s", err);
            goto out;
        }
    }

    if (asprintf(&line, "%s\n", tm_devkafka_bootstrap(dk)) < 0) {
        line = NULL;
        tm_log_error("out of memory");
        goto out;
    }
    if (o.bootstrap_file != NULL) {
        if (write_file_atomic(o.bootstrap_file, line, err) < 0) {
            tm_log_error("bootstrap file: %s", err);
            goto out;
        }
        wrote_file = true;
    }
    fputs(line, stdout);
    if (admin != NULL)
        printf("admin %s\n", tm_admin_address(admin));
    if (fflush(stdout) != 0 && errno != EPIPE) {
        tm_log_error("cannot write the bootstrap servers to stdout: %s", strerror(errno));
        goto out;
    }
    tm_log_info("mock cluster of %d broker(s) at %s; topics with %d partition(s), "
                "replication %d; data in memory only, about 5 MB per partition kept",
                tm_devkafka_broker_count(dk), tm_devkafka_bootstrap(dk),
                tm_devkafka_partition_count(dk), tm_devkafka_replication_factor(dk));

    if (event_base_dispatch(base) < 0) {
        tm_log_error("event loop failed");
        goto out;
    }
    rc = 0;
out:
    if (wrote_file && unlink(o.bootstrap_file) < 0 && errno != ENOENT)
        tm_log_warn("cannot remove '%s': %s", o.bootstrap_file, strerror(errno));
    free(line);
    tm_admin_destroy(admin);
    tm_devkafka_control_destroy(control);
    if (metrics != NULL)
        tm_metrics_destroy(metrics);
    tm_devkafka_destroy(dk);
    if (ev_int != NULL)
        event_free(ev_int);
    if (ev_term != NULL)
        event_free(ev_term);
    if (base != NULL)
        event_base_free(base);
    return rc;
}
