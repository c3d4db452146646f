/*
 * procs.h - integration helpers for the project's daemons and for reading Kafka back
 * with kcat (procs.c). Built on harness.h: every process is started through
 * tm_harness_spawn, so it is stopped by pid on every exit path.
 */
#ifndef TM_PROCS_H
#define TM_PROCS_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

/* A running tm-collector and the addresses it printed ("listening NAME ADDR"). */
struct tm_collector_proc {
    pid_t pid;
    int out_fd;
    char conf[256];
    char lumberjack[64], syslog_tcp[64], syslog_udp[64], http[64], admin[64];
};

/*
 * Writes conf_text to a temporary INI file and starts $TM_BUILD/tm-collector with it,
 * --kafka bootstrap, every listener on 127.0.0.1:0 and --admin 127.0.0.1:0, then reads
 * the listening lines. Returns 0, or -1 when it did not start within 10 s.
 */
int tm_collector_start(struct tm_collector_proc *p, const char *bootstrap, const char *conf_text);

/* Starts it again with the same config and the same listener ports. Returns 0 or -1. */
int tm_collector_restart(struct tm_collector_proc *p, const char *bootstrap);

/* SIGTERM, wait; returns the exit status (tm_harness_stop). Removes the config file. */
int tm_collector_stop(struct tm_collector_proc *p);

/* One Kafka message as kcat -J shows it. */
struct tm_kmsg {
    char *key;
    char *payload;
    json_t *headers; /* object name -> value (last one wins) */
    int partition;
    long long offset;
};

struct tm_kmsgs {
    struct tm_kmsg *v;
    size_t n;
};

/*
 * Reads every message of topic from the beginning to the current end with
 * `kcat -C -J -e`. Returns 0 or -1. Free with tm_kmsgs_free.
 */
int tm_kcat_consume(const char *bootstrap, const char *topic, struct tm_kmsgs *out);
void tm_kmsgs_free(struct tm_kmsgs *m);

/* Value of a header, or NULL. */
const char *tm_kmsg_header(const struct tm_kmsg *m, const char *name);

/* Reads a file of lines into a sorted array of strings. Returns the count, or -1. */
long tm_read_sorted_lines(const char *path, char ***lines);
void tm_free_lines(char **lines, long n);

/*
 * Makes a test PKI in dir with openssl: ca.crt/key, server.crt/key (CN collector.test,
 * SAN DNS:collector.test and IP:127.0.0.1), agent.crt/key (CN agent.vodokanal.test,
 * signed by ca) and, from a second CA evil.crt/key, rogue.crt/key. Returns 0 or -1.
 */
int tm_make_test_pki(const char *dir);

/* One message for tm_kafka_produce. */
struct tm_kafka_msg {
    int partition;
    const char *key;
    size_t keylen;
    const char *value;
    size_t len;
};

/*
 * Produces msgs to topic in order with an idempotent librdkafka producer and waits up to
 * 30 s until every one is delivered. Returns 0, or -1 with a message on stderr.
 */
int tm_kafka_produce(const char *bootstrap, const char *topic, const struct tm_kafka_msg *msgs,
                     size_t n);

/*
 * Issues NAME.crt and NAME.key in dir (subject CN=NAME), signed by the CA that
 * tm_make_test_pki made there: one more client certificate. Returns 0 or -1.
 */
int tm_make_test_cert(const char *dir, const char *name);

/*
 * Writes DIR/NAME.ini for a tm-agent with id NAME: [agent] with its own state directory
 * DIR/NAME.state, host test-host and quick flushes; [shipper] to collectors with fast
 * reconnects (backoff 50-500 ms) and a heartbeat every second; then extra as it is (more
 * [shipper] keys such as TLS, inputs). The file's path goes into path (len bytes).
 * Returns 0 or -1.
 */
int tm_agent_conf_write(const char *dir, const char *name, const char *collectors,
                        const char *extra, char *path, size_t len);

/* Runs a shell command (sh -c) to completion within timeout_ms. Returns its status. */
int tm_sh(const char *cmd, int timeout_ms);

/*
 * Starts a daemon that announces its addresses on stdout as "listening NAME ADDR" lines
 * (every tm-* program does) and reads those lines for up to 10 s until each of the
 * n names has been announced; addrs[i] gets the address of names[i]. When out_fd is not
 * NULL the reading end of the daemon's stdout is stored there (the caller closes it once
 * the daemon is gone), otherwise it is closed. Returns the pid, or -1 (the daemon is then
 * stopped).
 */
pid_t tm_daemon_start(char *const argv[], const char *const names[], char (*addrs)[64], size_t n,
                      int *out_fd);

/*
 * Sum of a metric's samples over all its label sets on the /metrics page of an admin
 * address (HOST:PORT). Returns -1 when the metric is absent or the page unreachable.
 */
double tm_admin_metric(const char *admin, const char *name);

#endif
