/*
 * test_agent.c - tm-agent end to end with real processes: tm-agent -> tm-collector ->
 * tm-devkafka, read back with kcat. Identity and seq stamping, sshd brute force detected
 * from a real log, manual reports through the priority lane, heartbeats routed to
 * tm.heartbeats, syslog inputs, TLS with a client certificate (and a wrong CA refused),
 * and no loss while a 100,000-line file is shipped and the collector is SIGKILLed five
 * times and the agent twice.
 *
 * tm-devkafka keeps only about 5 MB per partition, and all of an agent's events share one
 * key (its sector), so the no-loss test reads Kafka with a kcat consumer that runs for the
 * whole test instead of reading back at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tm/tm_common.h"
#include "procs.h"

static struct tm_harness_kafka kafka;
static char tmpdir[256];

static const char collector_conf[] = "[identity]\n"
                                     "default_operator = ua-water-odesa\n"
                                     "default_sector = drinking-water\n"
                                     "default_region = UA-51\n"
                                     "[kafka]\n"
                                     "linger = 2ms\n";

/* A running tm-agent. */
struct agent_proc {
    pid_t pid;
    int out_fd;
    char conf[300];
    char admin[64], syslog_udp[64], syslog_tcp[64];
};

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tm-agent-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return tm_harness_kafka_start(&kafka, 1, 6);
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    tm_harness_kafka_stop(&kafka);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    tm_sh(cmd, 10000);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/*
 * Writes NAME.ini in tmpdir: [agent] with its own state dir, [shipper] to collectors
 * (fast reconnects), then extra (inputs, TLS).
 */
static void agent_conf(char *path, size_t len, const char *name, const char *collectors,
                       const char *extra)
{
    assert_int_equal(tm_agent_conf_write(tmpdir, name, collectors, extra, path, len), 0);
}

/* Starts tm-agent -c conf --admin 127.0.0.1:0 [extra] and reads its "listening" lines. */
static void agent_start(struct agent_proc *p, const char *conf, const char *const extra[])
{
    char bin[512], line[256];
    char *argv[16];
    int n = 0;

    memset(p, 0, sizeof(*p));
    tm_strlcpy(p->conf, conf, sizeof(p->conf));
    snprintf(bin, sizeof(bin), "%s/tm-agent", tm_harness_build_dir());
    argv[n++] = bin;
    argv[n++] = "-c";
    argv[n++] = p->conf;
    argv[n++] = "--admin";
    argv[n++] = "127.0.0.1:0";
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    p->pid = tm_harness_spawn(argv, &p->out_fd);
    assert_true(p->pid > 0);
    /* admin first, then one line per syslog input; wait for the admin line. */
    while (tm_harness_read_line(p->out_fd, line, sizeof(line), 10000) > 0) {
        if (strncmp(line, "listening admin ", 16) == 0) {
            tm_strlcpy(p->admin, line + 16, sizeof(p->admin));
        } else if (strncmp(line, "listening syslog-udp ", 21) == 0) {
            tm_strlcpy(p->syslog_udp, line + 21, sizeof(p->syslog_udp));
        } else if (strncmp(line, "listening syslog-tcp ", 21) == 0) {
            tm_strlcpy(p->syslog_tcp, line + 21, sizeof(p->syslog_tcp));
        }
        if (p->admin[0] != '\0' && (strstr(conf, "syslog") == NULL || p->syslog_tcp[0] != '\0'))
            break;
    }
    assert_true(p->admin[0] != '\0');
}

static void agent_stop(struct agent_proc *p)
{
    assert_int_equal(tm_harness_stop(p->pid, 10000), 0);
    close(p->out_fd);
}

/* Sum of a metric's samples (every label set) on the agent's /metrics; -1 if absent. */
static double metric(const struct agent_proc *p, const char *name)
{
    char *body = NULL;
    int status = 0;
    double sum = -1;
    size_t nlen = strlen(name);

    if (tm_harness_http(p->admin, "GET", "/metrics", &status, &body, 5000) != 0 || status != 200) {
        free(body);
        return -1;
    }
    for (char *l = body; l != NULL && *l != '\0';) {
        char *nl = strchr(l, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(l, name, nlen) == 0 && (l[nlen] == ' ' || l[nlen] == '{')) {
            char *sp = strrchr(l, ' ');
            if (sp != NULL)
                sum = (sum < 0 ? 0 : sum) + strtod(sp + 1, NULL);
        }
        l = nl != NULL ? nl + 1 : NULL;
    }
    free(body);
    return sum;
}

/* Runs tm-agent --once with input on stdin (shell redirect); returns its exit status. */
static int agent_once(const char *conf, const char *input)
{
    char cmd[2400];

    snprintf(cmd, sizeof(cmd), "exec '%s/tm-agent' -c '%s' --once < '%s' 2>'%s.log'",
             tm_harness_build_dir(), conf, input, conf);
    return tm_sh(cmd, 60000);
}

/* The messages of topic whose payload contains needle. */
static size_t count_with(const char *topic, const char *needle, json_t **last)
{
    struct tm_kmsgs msgs;
    size_t n = 0;
    json_error_t je;

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, topic, &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        if (strstr(msgs.v[i].payload, needle) == NULL)
            continue;
        n++;
        if (last != NULL) {
            json_decref(*last);
            *last = json_loads(msgs.v[i].payload, 0, &je);
        }
    }
    tm_kmsgs_free(&msgs);
    return n;
}

/* Canonical events, one per line, ids PREFIX-N, the body claiming another operator. */
static void write_events(const char *path, const char *prefix, long from, long n, const char *mode)
{
    FILE *f = fopen(path, mode);

    assert_non_null(f);
    for (long i = from; i < from + n; i++)
        fprintf(f,
                "{\"schema\":1,\"id\":\"%s-%07ld\",\"ts\":\"2026-11-23T08:%02ld:%02ld.000Z\","
                "\"operator\":\"someone-else\",\"category\":\"scan\",\"severity\":%ld,"
                "\"src\":{\"ip\":\"198.51.100.%ld\"},\"summary\":\"port scan %ld\"}\n",
                prefix, i, (i / 60) % 60, i % 60, 4 + i % 5, i % 250, i);
    fclose(f);
}

/* Detectors out of the way: every event passes as it is. */
static const char passthrough[] = "pass_min_severity = 1\nfold_window = 0\nthreshold = false\n"
                                  "spike = false\n";

static void test_agent_stdin_identity_and_seq(void **state)
{
    struct tm_collector_proc c;
    char conf[300], input[300], extra[512];
    struct tm_kmsgs msgs;
    bool seen[301] = {false};
    size_t n = 0;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    snprintf(input, sizeof(input), "%s/stdin.ndjson", tmpdir);
    write_events(input, "st", 0, 300, "w");
    snprintf(extra, sizeof(extra), "[input.in]\ntype = stdin\nformat = json\n%s", passthrough);
    agent_conf(conf, sizeof(conf), "stdin-agent", c.lumberjack, extra);
    assert_int_equal(agent_once(conf, input), 0);

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        json_error_t je;
        json_t *e = json_loads(msgs.v[i].payload, 0, &je);
        const char *agent = json_string_value(json_object_get(e, "agent"));
        json_int_t seq;
        if (agent == NULL || strcmp(agent, "stdin-agent") != 0) {
            json_decref(e);
            continue;
        }
        /* Identity from the connection, never from the body; seq 1..300, each once. */
        assert_string_equal(json_string_value(json_object_get(e, "operator")), "ua-water-odesa");
        assert_string_equal(json_string_value(json_object_get(e, "sector")), "drinking-water");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(e, "source"), "host")), "test-host");
        seq = json_integer_value(json_object_get(e, "seq"));
        assert_true(seq >= 1 && seq <= 300);
        assert_false(seen[seq]);
        seen[seq] = true;
        n++;
        json_decref(e);
    }
    tm_kmsgs_free(&msgs);
    assert_int_equal(n, 300);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_agent_detects_ssh_bruteforce(void **state)
{
    struct tm_collector_proc c;
    char conf[300], input[600], extra[512];
    json_t *last = NULL;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    /* Real sshd log (loghub OpenSSH_2k, tests/data/SOURCES.md). */
    snprintf(input, sizeof(input), "%s/tests/data/syslog/loghub-OpenSSH_2k.log", tm_harness_root());
    snprintf(extra, sizeof(extra), "[input.auth]\ntype = stdin\nformat = auth\n");
    agent_conf(conf, sizeof(conf), "ssh-agent", c.lumberjack, extra);
    assert_int_equal(agent_once(conf, input), 0);

    /* 183.62.140.253 tries far more than 20 passwords: one alert of exactly 20 first. */
    assert_true(count_with("tm.events.v1",
                           "\"summary\":\"20 failed ssh logins from 183.62.140.253 in 60 s\"",
                           &last) == 1);
    assert_non_null(last);
    assert_string_equal(json_string_value(json_object_get(last, "category")), "bruteforce");
    assert_int_equal(json_integer_value(json_object_get(last, "count")), 20);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last, "attack"), "technique")), "T1110");
    assert_string_equal(json_string_value(json_object_get(json_object_get(last, "src"), "ip")),
                        "183.62.140.253");
    json_decref(last);
    /* Single failed logins below the severity floor are not shipped one by one. */
    assert_int_equal(count_with("tm.events.v1", "\"summary\":\"failed password for", NULL), 0);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void wait_for(const char *topic, const char *needle, size_t want, int timeout_ms)
{
    for (int waited = 0; count_with(topic, needle, NULL) < want; waited += 200) {
        if (waited >= timeout_ms)
            fail_msg("'%s' did not reach %s within %d ms", needle, topic, timeout_ms);
        usleep(200000);
    }
}

static void test_agent_report_and_heartbeat(void **state)
{
    struct tm_collector_proc c;
    struct agent_proc a;
    char conf[300], cmd[1500];
    char *out = NULL;
    char id[64];
    json_t *last = NULL;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    agent_conf(conf, sizeof(conf), "report-agent", c.lumberjack, "");
    agent_start(&a, conf, NULL);

    /* A person files an incident; it goes through the inbox and the priority lane. */
    {
        char bin[512];
        char *argv[] = {bin,          "report",
                        "-c",         conf,
                        "--category", "ransomware",
                        "--severity", "9",
                        "--summary",  "files encrypted on the SCADA historian",
                        "--src",      "203.0.113.66",
                        NULL};
        size_t len = 0;
        snprintf(bin, sizeof(bin), "%s/tm-agent", tm_harness_build_dir());
        assert_int_equal(tm_harness_run(argv, &out, &len, 10000), 0);
        assert_true(len > 10 && len < sizeof(id));
        tm_strlcpy(id, out, sizeof(id));
        id[strcspn(id, "\n")] = '\0';
        free(out);
    }
    snprintf(cmd, sizeof(cmd), "\"id\":\"%s\"", id);
    wait_for("tm.events.v1", cmd, 1, 10000);
    assert_int_equal(count_with("tm.events.v1", cmd, &last), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(last, "source"), "kind")),
                        "manual");
    assert_string_equal(json_string_value(json_object_get(last, "agent")), "report-agent");
    assert_string_equal(json_string_value(json_object_get(last, "operator")), "ua-water-odesa");
    json_decref(last);
    last = NULL;
    assert_true(metric(&a, "tm_agent_spooled_total") >= 1);
    assert_true(metric(&a, "tm_agent_reports_total") == 1);

    /* A bad report is refused by the command with the field named, and nothing is filed. */
    {
        char bin[512];
        char *argv[] = {bin,          "report", "-c",        conf, "--category", "sabotage",
                        "--severity", "5",      "--summary", "x",  NULL};
        snprintf(bin, sizeof(bin), "%s/tm-agent", tm_harness_build_dir());
        assert_int_equal(tm_harness_run(argv, NULL, NULL, 10000), 1);
    }

    /* Heartbeats every second, stamped by the collector with the connection's identity. */
    wait_for("tm.heartbeats", "\"agent\":\"report-agent\"", 2, 10000);
    assert_true(count_with("tm.heartbeats", "\"agent\":\"report-agent\"", &last) >= 2);
    assert_string_equal(json_string_value(json_object_get(last, "operator")), "ua-water-odesa");
    assert_true(json_integer_value(json_object_get(last, "next_seq")) >= 2);
    assert_int_equal(json_integer_value(json_object_get(last, "lost_events")), 0);
    json_decref(last);
    agent_stop(&a);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_agent_syslog_inputs(void **state)
{
    struct tm_collector_proc c;
    struct agent_proc a;
    char conf[300], cmd[1024];
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    agent_conf(conf, sizeof(conf), "syslog-agent", c.lumberjack,
               "[input.udp]\ntype = syslog-udp\nformat = syslog\nlisten = 127.0.0.1:0\n"
               "pass_min_severity = 1\n"
               "[input.tcp]\ntype = syslog-tcp\nformat = syslog\nlisten = 127.0.0.1:0\n"
               "pass_min_severity = 1\n");
    agent_start(&a, conf, NULL);
    assert_true(a.syslog_udp[0] != '\0' && a.syslog_tcp[0] != '\0');
    snprintf(cmd, sizeof(cmd),
             "logger --udp -n 127.0.0.1 -P %s --rfc5424 -t fw 'CEF:0|Fortinet|FortiGate|7.0|1|"
             "udp-probe deny|8|src=192.0.2.10 dst=10.0.0.5 dpt=502' && "
             "logger --tcp --octet-count -n 127.0.0.1 -P %s --rfc3164 -t sshd "
             "'Failed password for root from 192.0.2.77 port 4242 ssh2'",
             strrchr(a.syslog_udp, ':') + 1, strrchr(a.syslog_tcp, ':') + 1);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    wait_for("tm.events.v1", "udp-probe deny", 1, 10000);
    wait_for("tm.events.v1", "192.0.2.77", 1, 10000);
    assert_true(metric(&a, "tm_agent_lines_total") >= 2);
    for (int waited = 0; metric(&a, "tm_agent_detector_passed_total") < 2 && waited < 3000;
         waited += 100)
        usleep(100000); /* published on the agent's next tick */
    assert_true(metric(&a, "tm_agent_detector_passed_total") >= 2);
    agent_stop(&a);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_agent_tls_client_certificate(void **state)
{
    struct tm_collector_proc c;
    struct agent_proc a;
    char conf[300], map[300], input[300], cconf[2048], extra[2048];
    (void)state;

    assert_int_equal(tm_make_test_pki(tmpdir), 0);
    snprintf(map, sizeof(map), "%s/identities.ini", tmpdir);
    write_file(map, "[operator.ua-water-kyiv]\nsector = drinking-water\nregion = UA-30\n"
                    "certs = agent.vodokanal.test\n");
    snprintf(cconf, sizeof(cconf),
             "[lumberjack]\ntls = true\n"
             "[tls]\ncert = %s/server.crt\nkey = %s/server.key\nca = %s/ca.crt\n"
             "require_client_cert = true\n[identity]\nmap = %s\n[kafka]\nlinger = 2ms\n",
             tmpdir, tmpdir, tmpdir, map);
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, cconf), 0);
    snprintf(input, sizeof(input), "%s/tls.ndjson", tmpdir);
    write_events(input, "tls", 0, 50, "w");

    /* The right certificate and the collector's CA pinned: shipped, operator from the cert. */
    snprintf(extra, sizeof(extra),
             "tls_ca = %s/ca.crt\ntls_cert = %s/agent.crt\ntls_key = %s/agent.key\n"
             "[input.in]\ntype = stdin\nformat = json\n%s",
             tmpdir, tmpdir, tmpdir, passthrough);
    agent_conf(conf, sizeof(conf), "tls-agent", c.lumberjack, extra);
    assert_int_equal(agent_once(conf, input), 0);
    assert_int_equal(count_with("tm.events.v1", "\"agent\":\"tls-agent\"", NULL), 50);
    assert_int_equal(count_with("tm.events.v1", "\"operator\":\"ua-water-kyiv\"", NULL), 50);

    /* A certificate from another CA: the collector refuses it, nothing is acknowledged. */
    snprintf(extra, sizeof(extra),
             "tls_ca = %s/ca.crt\ntls_cert = %s/rogue.crt\ntls_key = %s/rogue.key\n"
             "[input.in]\ntype = file\nformat = json\npaths = %s\n%s",
             tmpdir, tmpdir, tmpdir, input, passthrough);
    agent_conf(conf, sizeof(conf), "rogue-agent", c.lumberjack, extra);
    agent_start(&a, conf, NULL);
    sleep(2);
    assert_true(metric(&a, "tm_agent_spool_events") == 50);
    assert_true(metric(&a, "tm_agent_acked_events") == 0);
    agent_stop(&a);

    /* The agent pins a CA that did not sign the collector: it refuses the collector. */
    snprintf(extra, sizeof(extra),
             "tls_ca = %s/evil.crt\ntls_cert = %s/agent.crt\ntls_key = %s/agent.key\n"
             "[input.in]\ntype = file\nformat = json\npaths = %s\n%s",
             tmpdir, tmpdir, tmpdir, input, passthrough);
    agent_conf(conf, sizeof(conf), "pinned-agent", c.lumberjack, extra);
    agent_start(&a, conf, NULL);
    sleep(2);
    assert_true(metric(&a, "tm_agent_spool_events") == 50);
    assert_true(metric(&a, "tm_agent_acked_events") == 0);
    agent_stop(&a);
    assert_int_equal(count_with("tm.events.v1", "\"agent\":\"rogue-agent\"", NULL), 0);
    assert_int_equal(count_with("tm.events.v1", "\"agent\":\"pinned-agent\"", NULL), 0);
    assert_int_equal(tm_collector_stop(&c), 0);
}

/*
 * Lines read again (here: the registry is lost) give the same event ids, so downstream
 * dedup drops the copies; two identical lines at different offsets stay two events.
 */
static void test_agent_reread_lines_keep_their_ids(void **state)
{
    enum { N = 40 };
    struct tm_collector_proc c;
    struct agent_proc a;
    char conf[300], input[300], extra[1024], cmd[700];
    struct tm_kmsgs msgs;
    char *ids[2 * N + 2];
    size_t n = 0, distinct = 0;
    FILE *f;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    snprintf(input, sizeof(input), "%s/reread.ndjson", tmpdir);
    f = fopen(input, "w");
    assert_non_null(f);
    for (int i = 0; i < N; i++) {
        int k = i < N - 1 ? i : N - 2; /* the last line repeats the one before */
        fprintf(f,
                "{\"ts\":\"2026-11-23T09:00:%02d.000Z\",\"category\":\"scan\",\"severity\":4,"
                "\"summary\":\"reread %d\"}\n",
                k % 30, k);
    }
    fclose(f);
    snprintf(extra, sizeof(extra), "[input.rr]\ntype = file\nformat = json\npaths = %s\n%s", input,
             passthrough);
    agent_conf(conf, sizeof(conf), "reread-agent", c.lumberjack, extra);
    for (int run = 0; run < 2; run++) {
        agent_start(&a, conf, NULL);
        wait_for("tm.events.v1", "\"agent\":\"reread-agent\"", (size_t)N * (size_t)(run + 1),
                 20000);
        agent_stop(&a);
        /* The read positions are lost: the next run reads the file from the start. */
        snprintf(cmd, sizeof(cmd), "rm -f '%s'/reread-agent.state/registry.*", tmpdir);
        assert_int_equal(tm_sh(cmd, 10000), 0);
    }
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        json_error_t je;
        json_t *e;
        if (strstr(msgs.v[i].payload, "\"agent\":\"reread-agent\"") == NULL)
            continue;
        e = json_loads(msgs.v[i].payload, 0, &je);
        assert_non_null(e);
        assert_true(n < 2 * N + 2);
        ids[n] = strdup(json_string_value(json_object_get(e, "id")));
        for (size_t k = 0; k < n; k++)
            if (strcmp(ids[k], ids[n]) == 0) {
                distinct--;
                break;
            }
        distinct++;
        n++;
        json_decref(e);
    }
    tm_kmsgs_free(&msgs);
    assert_int_equal(n, 2 * N);
    assert_int_equal(distinct, N);
    for (size_t k = 0; k < n; k++)
        free(ids[k]);
    assert_int_equal(tm_collector_stop(&c), 0);
}

/* Distinct ids with the prefix, and distinct seqs of the agent, in kcat's output file. */
static void count_distinct(const char *path, const char *prefix, const char *agent, long *ids,
                           long *seqs, long *max_seq, long nmax)
{
    char *seen_id = calloc((size_t)nmax, 1);
    char *seen_seq = calloc((size_t)nmax * 4, 1);
    char line[2048], pat[64], apat[128];
    FILE *f = fopen(path, "r");

    *ids = *seqs = *max_seq = 0;
    assert_non_null(seen_id);
    assert_non_null(seen_seq);
    snprintf(pat, sizeof(pat), "\"id\":\"%s-", prefix);
    snprintf(apat, sizeof(apat), "\"agent\":\"%s\"", agent);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, pat);
        char *s = strstr(line, "\"seq\":");
        long i, q;
        if (p == NULL || strstr(line, apat) == NULL || s == NULL)
            continue;
        i = strtol(p + strlen(pat), NULL, 10);
        q = strtol(s + 6, NULL, 10);
        if (i >= 0 && i < nmax && !seen_id[i]) {
            seen_id[i] = 1;
            (*ids)++;
        }
        if (q >= 1 && q < nmax * 4 && !seen_seq[q]) {
            seen_seq[q] = 1;
            (*seqs)++;
        }
        if (q > *max_seq)
            *max_seq = q;
    }
    if (f != NULL)
        fclose(f);
    free(seen_id);
    free(seen_seq);
}

static void test_agent_no_loss_under_sigkill(void **state)
{
    enum { LINES = 100000, STEPS = 10 };
    struct tm_collector_proc c;
    struct agent_proc a;
    char conf[300], input[300], extra[1024], sink[300], cmd[1024];
    long ids = 0, seqs = 0, max_seq = 0;
    pid_t consumer;
    int kills_c = 0, kills_a = 0;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    /* One kcat consumer for the whole test, so the broker's 5 MB cap cannot hide events. */
    snprintf(sink, sizeof(sink), "%s/kafka.out", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "exec kcat -C -q -u -b '%s' -t tm.events.v1 -o beginning -f '%%s\\n' > '%s'",
             kafka.bootstrap, sink);
    {
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        consumer = tm_harness_spawn(argv, NULL);
        assert_true(consumer > 0);
    }
    snprintf(input, sizeof(input), "%s/big.ndjson", tmpdir);
    write_events(input, "nl", 0, LINES / STEPS, "w");
    snprintf(extra, sizeof(extra), "[input.big]\ntype = file\nformat = json\npaths = %s\n%s", input,
             passthrough);
    agent_conf(conf, sizeof(conf), "kill-agent", c.lumberjack, extra);
    agent_start(&a, conf, NULL);

    for (int step = 1; step < STEPS; step++) {
        usleep(150000);
        if (step % 2 == 1 && step < 9) {
            /* The collector dies mid-stream and comes back on the same port. */
            assert_int_equal(tm_harness_kill9(c.pid), 0);
            kills_c++;
            usleep(100000);
            assert_int_equal(tm_collector_restart(&c, kafka.bootstrap), 0);
        }
        if (step == 4 || step == 8) {
            /* The agent dies: spool and registry must carry it over. */
            assert_int_equal(tm_harness_kill9(a.pid), 0);
            close(a.out_fd);
            kills_a++;
            write_events(input, "nl", (long)step * (LINES / STEPS), LINES / STEPS, "a");
            agent_start(&a, conf, NULL);
        } else {
            write_events(input, "nl", (long)step * (LINES / STEPS), LINES / STEPS, "a");
        }
    }
    usleep(150000);
    assert_int_equal(tm_harness_kill9(c.pid), 0);
    kills_c++;
    assert_int_equal(tm_collector_restart(&c, kafka.bootstrap), 0);
    assert_int_equal(kills_c, 5);
    assert_int_equal(kills_a, 2);

    /* Everything arrives in the end: every id at least once, and no seq missing. */
    for (int waited = 0; waited < 120000; waited += 500) {
        count_distinct(sink, "nl", "kill-agent", &ids, &seqs, &max_seq, LINES);
        if (ids == LINES && seqs == max_seq && metric(&a, "tm_agent_spool_events") == 0)
            break;
        usleep(500000);
    }
    print_message("no-loss: %ld distinct ids of %d, %ld distinct seqs, highest seq %ld\n", ids,
                  LINES, seqs, max_seq);
    assert_int_equal(ids, LINES);
    assert_int_equal(seqs, max_seq); /* no gap: nothing the agent spooled was lost */
    assert_int_equal(metric(&a, "tm_agent_lost_events"), 0);
    agent_stop(&a);
    assert_int_equal(tm_collector_stop(&c), 0);
    tm_harness_stop(consumer, 5000);
}

/*
 * The read positions a start takes after a SIGKILL and after a power loss. The agent
 * saves its positions durably only after a spool fsync (fsync_interval = 1h here: never
 * while it runs), and after every spool flush, without fsync, in its fast registry,
 * stamped with how far the spool was written. Nothing is acked in the first run (its
 * collector address is closed), so the spool holds every event when the agent dies.
 *  - SIGKILL: the next start resumes at the fast registry and reads no line twice (a
 *    line read twice would be spooled again under a new seq).
 *  - power loss, emulated by emptying the spool's bulk segments as if their unsynced
 *    pages never reached the disk: the fast registry's stamp is past what the spool kept,
 *    so the start falls back to the durable positions (none: the file's start) and makes
 *    the lost events again: nothing is lost.
 * Either way each id is in Kafka exactly once, with seqs 1..N and no gap.
 */
static void crash_and_restart(const char *name, bool power_loss)
{
    enum { FIRST = 200, SECOND = 100 };
    struct tm_collector_proc c;
    struct agent_proc a;
    char conf[300], input[300], text[2048], path[400], cmd[800], needle[96], prefix[16];
    struct tm_kmsgs msgs;
    char seen_id[FIRST + SECOND] = {0}, seen_seq[FIRST + SECOND + 1] = {0};
    size_t n = 0;

    snprintf(prefix, sizeof(prefix), "%s", power_loss ? "pl" : "sk");
    snprintf(input, sizeof(input), "%s/%s.ndjson", tmpdir, name);
    write_events(input, prefix, 0, FIRST, "w");
    snprintf(conf, sizeof(conf), "%s/%s.ini", tmpdir, name);
    snprintf(text, sizeof(text),
             "[agent]\nid = %s\nstate_dir = %s/%s.state\nhost = test-host\n"
             "flush_interval = 20ms\nfsync = interval\nfsync_interval = 1h\n"
             "[shipper]\ncollectors = 127.0.0.1:1\nbackoff_base = 50ms\nbackoff_max = 200ms\n"
             "[input.in]\ntype = file\nformat = json\npaths = %s\n%s",
             name, tmpdir, name, input, passthrough);
    write_file(conf, text);
    agent_start(&a, conf, NULL);
    for (int i = 0; i < 100 && metric(&a, "tm_agent_spool_events") < FIRST; i++)
        usleep(100000);
    assert_true(metric(&a, "tm_agent_spool_events") == FIRST);
    usleep(100000); /* the flush's fast checkpoint follows it in the same callback */
    snprintf(path, sizeof(path), "%s/%s.state/registry.in.fast", tmpdir, name);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/%s.state/registry.in", tmpdir, name);
    assert_int_equal(access(path, F_OK), -1); /* no spool fsync yet: no durable registry */
    assert_int_equal(tm_harness_kill9(a.pid), 0);
    close(a.out_fd);
    if (power_loss) {
        snprintf(cmd, sizeof(cmd), "for f in '%s/%s.state/spool/bulk/'*.seg; do : > \"$f\"; done",
                 tmpdir, name);
        assert_int_equal(tm_sh(cmd, 10000), 0);
    }

    /* Second run: a collector, and more lines. */
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, collector_conf), 0);
    snprintf(cmd, sizeof(cmd), "sed -i 's/^collectors = .*/collectors = %s/' '%s'", c.lumberjack,
             conf);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    write_events(input, prefix, FIRST, SECOND, "a");
    agent_start(&a, conf, NULL);
    snprintf(needle, sizeof(needle), "\"agent\":\"%s\"", name);
    wait_for("tm.events.v1", needle, FIRST + SECOND, 20000);
    for (int i = 0; i < 100 && metric(&a, "tm_agent_spool_events") != 0; i++)
        usleep(100000);
    agent_stop(&a);
    assert_int_equal(tm_collector_stop(&c), 0);

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        json_error_t je;
        json_t *e;
        const char *id;
        long k, seq;
        if (strstr(msgs.v[i].payload, needle) == NULL)
            continue;
        e = json_loads(msgs.v[i].payload, 0, &je);
        assert_non_null(e);
        id = json_string_value(json_object_get(e, "id"));
        seq = (long)json_integer_value(json_object_get(e, "seq"));
        assert_non_null(id);
        k = strtol(id + strlen(prefix) + 1, NULL, 10);
        assert_true(k >= 0 && k < FIRST + SECOND);
        if (seen_id[k])
            fail_msg("%s: event %s in Kafka twice (a line read twice)", name, id);
        seen_id[k] = 1;
        assert_true(seq >= 1 && seq <= FIRST + SECOND);
        assert_int_equal(seen_seq[seq], 0);
        seen_seq[seq] = 1;
        n++;
        json_decref(e);
    }
    tm_kmsgs_free(&msgs);
    print_message("%s: %zu events in Kafka, each once, seqs 1..%zu\n", name, n, n);
    assert_int_equal(n, FIRST + SECOND); /* with seq in 1..N each once: no gap either */
}

static void test_agent_sigkill_reads_no_line_twice(void **state)
{
    (void)state;
    crash_and_restart("sigkill-agent", false);
}

static void test_agent_power_loss_takes_the_synced_positions(void **state)
{
    (void)state;
    crash_and_restart("powerloss-agent", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_stdin_identity_and_seq),
        cmocka_unit_test(test_agent_detects_ssh_bruteforce),
        cmocka_unit_test(test_agent_report_and_heartbeat),
        cmocka_unit_test(test_agent_syslog_inputs),
        cmocka_unit_test(test_agent_tls_client_certificate),
        cmocka_unit_test(test_agent_reread_lines_keep_their_ids),
        cmocka_unit_test(test_agent_sigkill_reads_no_line_twice),
        cmocka_unit_test(test_agent_power_loss_takes_the_synced_positions),
        /* last: its 100,000 events make reading the whole topic back slow */
        cmocka_unit_test(test_agent_no_loss_under_sigkill),
    };
    return cmocka_run_group_tests_name("agent", tests, setup, teardown);
}
