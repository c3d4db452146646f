/*
 * procs.c - starting the project's daemons for integration tests and reading Kafka back
 * with kcat, a client nobody here wrote (see procs.h).
 */
#include "procs.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int read_listening(struct tm_collector_proc *p)
{
    char line[256];

    p->lumberjack[0] = p->syslog_tcp[0] = p->syslog_udp[0] = p->http[0] = p->admin[0] = '\0';
    /* admin is announced last */
    while (p->admin[0] == '\0') {
        char name[32], addr[64];
        if (tm_harness_read_line(p->out_fd, line, sizeof(line), 10000) < 0)
            return -1;
        if (sscanf(line, "listening %31s %63s", name, addr) != 2)
            continue;
        if (strcmp(name, "lumberjack") == 0)
            snprintf(p->lumberjack, sizeof(p->lumberjack), "%s", addr);
        else if (strcmp(name, "syslog-tcp") == 0)
            snprintf(p->syslog_tcp, sizeof(p->syslog_tcp), "%s", addr);
        else if (strcmp(name, "syslog-udp") == 0)
            snprintf(p->syslog_udp, sizeof(p->syslog_udp), "%s", addr);
        else if (strcmp(name, "http") == 0)
            snprintf(p->http, sizeof(p->http), "%s", addr);
        else if (strcmp(name, "admin") == 0)
            snprintf(p->admin, sizeof(p->admin), "%s", addr);
    }
    return 0;
}

static int spawn(struct tm_collector_proc *p, const char *bootstrap, const char *lj, const char *st,
                 const char *su, const char *http, const char *admin)
{
    char bin[512];
    char *argv[] = {bin,
                    "-c",
                    p->conf,
                    "--kafka",
                    (char *)bootstrap,
                    "--lumberjack",
                    (char *)lj,
                    "--syslog-tcp",
                    (char *)st,
                    "--syslog-udp",
                    (char *)su,
                    "--http",
                    (char *)http,
                    "--admin",
                    (char *)admin,
                    NULL};

    snprintf(bin, sizeof(bin), "%s/tm-collector", tm_harness_build_dir());
    p->pid = tm_harness_spawn(argv, &p->out_fd);
    if (p->pid < 0)
        return -1;
    if (read_listening(p) != 0) {
        tm_harness_stop(p->pid, 5000);
        close(p->out_fd);
        return -1;
    }
    return 0;
}

int tm_collector_start(struct tm_collector_proc *p, const char *bootstrap, const char *conf_text)
{
    FILE *f;
    int fd;

    memset(p, 0, sizeof(*p));
    snprintf(p->conf, sizeof(p->conf), "/tmp/tm-collector-test-XXXXXX");
    fd = mkstemp(p->conf);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
        return -1;
    fputs(conf_text, f);
    fclose(f);
    return spawn(p, bootstrap, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0",
                 "127.0.0.1:0");
}

int tm_collector_restart(struct tm_collector_proc *p, const char *bootstrap)
{
    char lj[64], st[64], su[64], http[64], admin[64];

    snprintf(lj, sizeof(lj), "%s", p->lumberjack);
    snprintf(st, sizeof(st), "%s", p->syslog_tcp);
    snprintf(su, sizeof(su), "%s", p->syslog_udp);
    snprintf(http, sizeof(http), "%s", p->http);
    snprintf(admin, sizeof(admin), "%s", p->admin);
    if (p->out_fd > 0)
        close(p->out_fd);
    /* The old sockets may linger a moment in the kernel: retry the bind briefly. */
    for (int i = 0; i < 20; i++) {
        if (spawn(p, bootstrap, lj, st, su, http, admin) == 0)
            return 0;
        usleep(250000);
    }
    return -1;
}

int tm_collector_stop(struct tm_collector_proc *p)
{
    int rc = tm_harness_stop(p->pid, 20000);

    if (p->out_fd > 0)
        close(p->out_fd);
    unlink(p->conf);
    return rc;
}

int tm_kcat_consume(const char *bootstrap, const char *topic, struct tm_kmsgs *out)
{
    char *argv[] = {"kcat", "-C", "-b", (char *)bootstrap, "-t", (char *)topic, "-J",
                    "-e",   "-q", "-o", "beginning",       NULL};
    char *text = NULL, *line, *save = NULL;
    size_t len = 0;
    int rc;

    out->v = NULL;
    out->n = 0;
    rc = tm_harness_run(argv, &text, &len, 60000);
    if (rc != 0) {
        free(text);
        return -1;
    }
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        json_t *h;
        struct tm_kmsg *m;
        size_t i;

        if (j == NULL)
            continue; /* kcat prints a status line now and then */
        out->v = realloc(out->v, (out->n + 1) * sizeof(*out->v));
        m = &out->v[out->n++];
        memset(m, 0, sizeof(*m));
        if (json_is_string(json_object_get(j, "key")))
            m->key = strdup(json_string_value(json_object_get(j, "key")));
        if (json_is_string(json_object_get(j, "payload")))
            m->payload = strdup(json_string_value(json_object_get(j, "payload")));
        m->partition = (int)json_integer_value(json_object_get(j, "partition"));
        m->offset = json_integer_value(json_object_get(j, "offset"));
        m->headers = json_object();
        h = json_object_get(j, "headers");
        for (i = 0; json_is_array(h) && i + 1 < json_array_size(h); i += 2)
            json_object_set(m->headers, json_string_value(json_array_get(h, i)),
                            json_array_get(h, i + 1));
        json_decref(j);
    }
    free(text);
    return 0;
}

void tm_kmsgs_free(struct tm_kmsgs *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].payload);
        json_decref(m->v[i].headers);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

const char *tm_kmsg_header(const struct tm_kmsg *m, const char *name)
{
    json_t *v = json_object_get(m->headers, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

long tm_read_sorted_lines(const char *path, char ***lines)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0;

    *lines = NULL;
    if (f == NULL)
        return -1;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        *lines = realloc(*lines, (size_t)(n + 1) * sizeof(char *));
        (*lines)[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (n > 1)
        qsort(*lines, (size_t)n, sizeof(char *), cmp_str);
    return n;
}

void tm_free_lines(char **lines, long n)
{
    for (long i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

int tm_sh(const char *cmd, int timeout_ms)
{
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    return tm_harness_run(argv, NULL, NULL, timeout_ms);
}

pid_t tm_daemon_start(char *const argv[], const char *const names[], char (*addrs)[64], size_t n,
                      int *out_fd)
{
    size_t seen = 0;
    char line[256];
    int fd = -1;
    pid_t pid;

    for (size_t i = 0; i < n; i++)
        addrs[i][0] = '\0';
    pid = tm_harness_spawn(argv, &fd);
    if (pid < 0)
        return -1;
    while (seen < n) {
        char name[32], addr[64];
        if (tm_harness_read_line(fd, line, sizeof(line), 10000) < 0) {
            fprintf(stderr, "procs: '%s' announced %zu of %zu addresses\n", argv[0], seen, n);
            tm_harness_stop(pid, 5000);
            close(fd);
            return -1;
        }
        if (sscanf(line, "listening %31s %63s", name, addr) != 2)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (addrs[i][0] == '\0' && strcmp(names[i], name) == 0) {
                snprintf(addrs[i], 64, "%s", addr);
                seen++;
            }
        }
    }
    if (out_fd != NULL)
        *out_fd = fd;
    else
        close(fd);
    return pid;
}

double tm_admin_metric(const char *admin, const char *name)
{
    char *body = NULL, *save = NULL;
    size_t nlen = strlen(name);
    double sum = -1;
    int status = 0;

    if (tm_harness_http(admin, "GET", "/metrics", &status, &body, 5000) != 0 || status != 200) {
        free(body);
        return -1;
    }
    for (char *l = strtok_r(body, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        char *sp;
        if (strncmp(l, name, nlen) != 0 || (l[nlen] != ' ' && l[nlen] != '{'))
            continue;
        sp = strrchr(l, ' ');
        if (sp != NULL)
            sum = (sum < 0 ? 0 : sum) + strtod(sp + 1, NULL);
    }
    free(body);
    return sum;
}

/* A test CA, a server certificate, a client certificate; and a second, foreign CA. */
int tm_make_test_pki(const char *dir)
{
    char cmd[4096];

    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; "
             "for ca in ca evil; do "
             "  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "    -subj \"/CN=$ca test CA\" -keyout $ca.key -out $ca.crt 2>/dev/null; done; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "  -subj /CN=collector.test -keyout server.key -out server.csr 2>/dev/null; "
             "printf 'subjectAltName=DNS:collector.test,IP:127.0.0.1\\n' > server.ext; "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "  -days 2 -extfile server.ext -out server.crt 2>/dev/null; "
             "for who in agent:ca rogue:evil; do n=${who%%:*}; ca=${who#*:}; "
             "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "    -subj /CN=$n.vodokanal.test -keyout $n.key -out $n.csr 2>/dev/null; "
             "  openssl x509 -req -in $n.csr -CA $ca.crt -CAkey $ca.key -CAcreateserial "
             "    -days 2 -out $n.crt 2>/dev/null; done",
             dir);
    return tm_sh(cmd, 60000) == 0 ? 0 : -1;
}

int tm_kafka_produce(const char *bootstrap, const char *topic, const struct tm_kafka_msg *msgs,
                     size_t n)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk = NULL;
    int rc = -1;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        fprintf(stderr, "produce: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "produce: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct tm_kafka_msg *m = &msgs[i];
        rd_kafka_resp_err_t err;
        do {
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(m->partition),
                                    RD_KAFKA_V_KEY(m->key, m->keylen),
                                    RD_KAFKA_V_VALUE((void *)m->value, m->len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "produce: %s\n", rd_kafka_err2str(err));
            goto out;
        }
    }
    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "produce: not every message was delivered within 30 s\n");
        goto out;
    }
    rc = 0;
out:
    rd_kafka_destroy(rk);
    return rc;
}

int tm_make_test_cert(const char *dir, const char *name)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "  -subj '/CN=%s' -keyout '%s.key' -out '%s.csr' 2>/dev/null; "
             "openssl x509 -req -in '%s.csr' -CA ca.crt -CAkey ca.key -CAcreateserial "
             "  -days 2 -out '%s.crt' 2>/dev/null",
             dir, name, name, name, name, name);
    return tm_sh(cmd, 60000) == 0 ? 0 : -1;
}

int tm_agent_conf_write(const char *dir, const char *name, const char *collectors,
                        const char *extra, char *path, size_t len)
{
    FILE *f;
    int rc;

    if (snprintf(path, len, "%s/%s.ini", dir, name) >= (int)len)
        return -1;
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "[agent]\nid = %s\nstate_dir = %s/%s.state\nhost = test-host\n"
            "flush_interval = 20ms\nfsync_interval = 100ms\n"
            "[shipper]\ncollectors = %s\nbackoff_base = 50ms\nbackoff_max = 500ms\n"
            "ack_timeout = 5s\nheartbeat = 1s\n%s",
            name, dir, name, collectors, extra);
    rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
