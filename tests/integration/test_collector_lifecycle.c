/*
 * test_collector_lifecycle.c - tm-collector across signals and restarts, with real
 * processes: SIGHUP reloads the identity map for new connections (and keeps the old map
 * when the new one is broken); SIGKILL and SIGTERM in the middle of a stream lose nothing
 * that was acknowledged (tm-loadgen resends unacknowledged windows to the restarted
 * collector, and every acknowledged id is then in Kafka); /metrics counts what happened;
 * Filebeat-shaped Suricata events are normalised through the EVE parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_event.h"

static struct tm_harness_kafka kafka;
static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tm-life-test-XXXXXX");
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

/* Runs tm-loadgen with extra arguments to completion. */
static int loadgen(const char *target, const char *events, const char *const extra[])
{
    char bin[512];
    char *argv[24];
    int n = 0;

    snprintf(bin, sizeof(bin), "%s/tm-loadgen", tm_harness_build_dir());
    argv[n++] = bin;
    argv[n++] = "--target";
    argv[n++] = (char *)target;
    argv[n++] = "--events";
    argv[n++] = (char *)events;
    argv[n++] = "--window";
    argv[n++] = "100";
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return tm_harness_run(argv, NULL, NULL, 120000);
}

/* Counts events in tm.events.v1 by operator, and checks each decodes. */
static long count_operator(const char *op)
{
    struct tm_kmsgs msgs;
    long n = 0;

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        const char *h = tm_kmsg_header(&msgs.v[i], "operator");
        if (h != NULL && strcmp(h, op) == 0)
            n++;
    }
    tm_kmsgs_free(&msgs);
    return n;
}

/* The value of the sample line starting with line_prefix (never a # HELP line). */
static long metric(const char *text, const char *line_prefix)
{
    size_t n = strlen(line_prefix);

    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, line_prefix, n) == 0)
            return strtol(p + n, NULL, 10);
    return -1;
}

static void test_collector_sighup_reloads_identity_map(void **state)
{
    char map[300], conf[600];
    struct tm_collector_proc c;
    (void)state;

    snprintf(map, sizeof(map), "%s/map.ini", tmpdir);
    write_file(map, "[operator.ua-oblrada-lviv]\nsector = local-government\nregion = UA-46\n"
                    "networks = 127.0.0.0/8\n");
    snprintf(conf, sizeof(conf), "[identity]\nmap = %s\n", map);
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, conf), 0);
    assert_int_equal(loadgen(c.lumberjack, "100", NULL), 0);
    assert_int_equal(count_operator("ua-oblrada-lviv"), 100);

    /* The same addresses now belong to another operator. */
    write_file(map, "[operator.ua-registry-kyiv]\nsector = state-registries\nregion = UA-30\n"
                    "networks = 127.0.0.1/32\n");
    assert_int_equal(kill(c.pid, SIGHUP), 0);
    usleep(500000);
    assert_int_equal(loadgen(c.lumberjack, "100", NULL), 0);
    assert_int_equal(count_operator("ua-registry-kyiv"), 100);

    /* A broken map is refused and the old one stays in force. */
    write_file(map, "[operator.broken]\nsector = nuclear-plants\n");
    assert_int_equal(kill(c.pid, SIGHUP), 0);
    usleep(500000);
    assert_int_equal(loadgen(c.lumberjack, "100", NULL), 0);
    assert_int_equal(count_operator("ua-registry-kyiv"), 200);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every id tm-loadgen recorded as acknowledged is in Kafka. */
static void assert_acked_in_kafka(const char *ids_file, long expect)
{
    struct tm_kmsgs msgs;
    char **ids, **got = NULL;
    long n = tm_read_sorted_lines(ids_file, &ids), ngot = 0, j = 0;

    assert_int_equal(n, expect);
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        struct tm_event e;
        char err[TM_ERR_LEN];
        if (tm_event_decode(&e, msgs.v[i].payload, strlen(msgs.v[i].payload), TM_EVENT_STAMPED,
                            err) != TM_EVENT_OK)
            fail_msg("undecodable event in kafka: %s", err);
        got = realloc(got, (size_t)(ngot + 1) * sizeof(char *));
        got[ngot++] = strdup(e.id);
    }
    tm_kmsgs_free(&msgs);
    if (ngot > 1)
        qsort(got, (size_t)ngot, sizeof(char *), cmp_str);
    for (long i = 0; i < n; i++) { /* both sorted: one merge pass */
        while (j < ngot && strcmp(got[j], ids[i]) < 0)
            j++;
        if (j >= ngot || strcmp(got[j], ids[i]) != 0)
            fail_msg("acknowledged event '%s' is not in kafka", ids[i]);
    }
    tm_free_lines(ids, n);
    tm_free_lines(got, ngot);
}

static void crash_mid_stream(bool sigkill)
{
    static const char conf[] = "[identity]\ndefault_operator = crash-op\n"
                               "default_sector = energy\n";
    struct tm_collector_proc c;
    char ids[300], bin[512], target[64];
    pid_t lg;

    snprintf(ids, sizeof(ids), "%s/crash-%d.ids", tmpdir, sigkill);
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, conf), 0);
    snprintf(bin, sizeof(bin), "%s/tm-loadgen", tm_harness_build_dir());
    snprintf(target, sizeof(target), "%s", c.lumberjack);
    {
        /* One connection, small windows: a stream of a few seconds to kill in the middle. */
        char *argv[] = {bin,        "--target",  target,          "--events", "30000",
                        "--window", "50",        "--connections", "1",        "--ids",
                        ids,        "--timeout", "120",           NULL};
        lg = tm_harness_spawn(argv, NULL);
    }
    assert_true(lg > 0);
    /* Wait until part of the stream is acknowledged, then kill the collector. */
    for (int i = 0; i < 100; i++) {
        char **lines;
        long n = tm_read_sorted_lines(ids, &lines);
        tm_free_lines(lines, n > 0 ? n : 0);
        if (n >= 2000)
            break;
        usleep(50000);
    }
    if (sigkill)
        assert_int_equal(tm_harness_kill9(c.pid), 0);
    else
        assert_int_equal(tm_harness_stop(c.pid, 20000), 0); /* drains and exits 0 */
    close(c.out_fd);
    c.out_fd = -1;
    {
        /* The kill came mid-stream: some, not all, windows were acknowledged. */
        char **lines;
        long n = tm_read_sorted_lines(ids, &lines);
        tm_free_lines(lines, n > 0 ? n : 0);
        if (n <= 0 || n >= 30000)
            fail_msg("%ld of 30000 acknowledged at the kill: not mid-stream", n);
    }
    usleep(500000);
    /* tm-loadgen keeps retrying; the restarted collector gets the unacknowledged windows. */
    assert_int_equal(tm_collector_restart(&c, kafka.bootstrap), 0);
    assert_int_equal(tm_harness_wait(lg, 120000), 0);
    assert_acked_in_kafka(ids, 30000);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_collector_sigkill_mid_stream_loses_nothing(void **state)
{
    (void)state;
    crash_mid_stream(true);
}

static void test_collector_sigterm_mid_stream_loses_nothing(void **state)
{
    (void)state;
    crash_mid_stream(false);
}

static void test_collector_metrics_and_beats_suricata(void **state)
{
    static const char conf[] = "[identity]\ndefault_operator = beats-op\n"
                               "default_sector = digital-infrastructure\n";
    struct tm_collector_proc c;
    char input[300], eve[512], line[16384];
    char *body = NULL;
    int status = 0, alerts = 0, others = 0;
    FILE *in, *out;
    struct tm_kmsgs msgs;
    long suricata = 0;
    (void)state;

    /* Filebeat's Suricata module ships each EVE line as `message`. */
    snprintf(eve, sizeof(eve), "%s/tests/data/suricata/eve-formbook-dridex.json",
             tm_harness_root());
    snprintf(input, sizeof(input), "%s/beats.ndjson", tmpdir);
    in = fopen(eve, "r");
    assert_non_null(in);
    out = fopen(input, "w");
    while (fgets(line, sizeof(line), in) != NULL && alerts + others < 60) {
        json_t *b;
        char *text;
        bool alert = strstr(line, "\"event_type\":\"alert\"") != NULL;
        line[strcspn(line, "\n")] = '\0';
        if (alert ? alerts >= 30 : others >= 30)
            continue;
        alert ? alerts++ : others++;
        b = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}, s:{s:{s:s}}}", "@timestamp",
                      "2026-11-23T07:22:05.123Z", "message", line, "event", "module", "suricata",
                      "dataset", "suricata.eve", "host", "name", "ids01.vodokanal.test", "log",
                      "file", "path", "/var/log/suricata/eve.json");
        text = json_dumps(b, JSON_COMPACT);
        fprintf(out, "%s\n", text);
        free(text);
        json_decref(b);
    }
    fclose(in);
    fclose(out);
    assert_int_equal(alerts, 30);

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, conf), 0);
    {
        const char *const extra[] = {"--input", input, NULL};
        assert_int_equal(loadgen(c.lumberjack, "60", extra), 0);
    }
    /* The 30 alerts became events; flow, dns, ... records were skipped (and acked). */
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        struct tm_event e;
        char err[TM_ERR_LEN];
        const char *op = tm_kmsg_header(&msgs.v[i], "operator");
        if (op == NULL || strcmp(op, "beats-op") != 0)
            continue;
        assert_int_equal(tm_event_decode(&e, msgs.v[i].payload, strlen(msgs.v[i].payload),
                                         TM_EVENT_STAMPED, err),
                         TM_EVENT_OK);
        assert_string_equal(e.source.kind, "suricata");
        assert_string_equal(e.sector, "digital-infrastructure");
        assert_true(e.src.ip[0] != '\0');
        suricata++;
    }
    tm_kmsgs_free(&msgs);
    assert_int_equal(suricata, 30);

    assert_int_equal(tm_harness_http(c.admin, "GET", "/metrics", &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    assert_int_equal(metric(body, "tm_collector_events_in_total{listener=\"lumberjack\"} "), 60);
    assert_int_equal(metric(body, "tm_collector_events_accepted_total{listener=\"lumberjack\"} "),
                     30);
    assert_int_equal(metric(body, "tm_collector_events_skipped_total{listener=\"lumberjack\"} "),
                     30);
    assert_int_equal(metric(body, "tm_collector_kafka_produced_total{topic=\"events\"} "), 30);
    assert_int_equal(metric(body, "tm_collector_kafka_delivery_seconds_count "), 30);
    assert_int_equal(metric(body, "tm_collector_kafka_delivery_errors_total "), 0);
    free(body);
    assert_int_equal(tm_harness_http(c.admin, "GET", "/healthz", &status, NULL, 5000), 0);
    assert_int_equal(status, 200);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_collector_backpressure_bounds_queue(void **state)
{
    /*
     * Syslog over TCP has no acks: a sender pushes as fast as TCP lets it. With the brokers
     * down, the collector must stop reading once its Kafka queue passes high_water (the
     * sender then blocks on a full socket), not buffer the whole stream.
     */
    static const char conf[] = "[identity]\ndefault_operator = bp-op\ndefault_sector = energy\n"
                               "[kafka]\nhigh_water = 300\nlow_water = 100\n";
    enum { LINES = 20000 };
    struct tm_collector_proc c;
    char file[300], cmd[600];
    char *body = NULL;
    long depth, max_depth = 0, landed = 0;
    int status;
    pid_t sender;
    FILE *f;
    struct tm_kmsgs msgs;
    (void)state;

    snprintf(file, sizeof(file), "%s/bp.log", tmpdir);
    f = fopen(file, "w");
    assert_non_null(f);
    for (int i = 0; i < LINES; i++)
        fprintf(f, "<38>Nov 23 07:22:05 gw1 app[1]: backpressure line %d bp-marker\n", i);
    fclose(f);
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, conf), 0);
    assert_int_equal(loadgen(c.lumberjack, "10", NULL), 0); /* warm up the producer */
    assert_int_equal(tm_harness_kafka_brokers(&kafka, false, -1), 0);
    snprintf(cmd, sizeof(cmd), "cat '%s' > /dev/tcp/%s", file, c.syslog_tcp);
    *strrchr(cmd, ':') = '/';
    {
        char *argv[] = {"bash", "-c", cmd, NULL};
        sender = tm_harness_spawn(argv, NULL);
    }
    assert_true(sender > 0);
    for (int i = 0; i < 15; i++) {
        usleep(200000);
        assert_int_equal(tm_harness_http(c.admin, "GET", "/metrics", &status, &body, 5000), 0);
        depth = metric(body, "tm_collector_kafka_queue_depth ");
        free(body);
        if (depth > max_depth)
            max_depth = depth;
    }
    /* It reached the mark and stopped near it: one read buffer (64 KiB of lines) over at most. */
    if (max_depth < 300 || max_depth > 300 + 1200)
        fail_msg("kafka queue peaked at %ld messages with high_water 300", max_depth);
    assert_int_equal(tm_harness_kafka_brokers(&kafka, true, -1), 0);
    assert_int_equal(tm_harness_wait(sender, 120000), 0);
    for (int i = 0; i < 100 && landed < LINES; i++) {
        usleep(300000);
        landed = 0;
        assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
        for (size_t k = 0; k < msgs.n; k++)
            landed += strstr(msgs.v[k].payload, "bp-marker") != NULL;
        tm_kmsgs_free(&msgs);
    }
    assert_int_equal(landed, LINES);
    assert_int_equal(tm_collector_stop(&c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collector_sighup_reloads_identity_map),
        cmocka_unit_test(test_collector_sigkill_mid_stream_loses_nothing),
        cmocka_unit_test(test_collector_sigterm_mid_stream_loses_nothing),
        cmocka_unit_test(test_collector_metrics_and_beats_suricata),
        cmocka_unit_test(test_collector_backpressure_bounds_queue),
    };
    return cmocka_run_group_tests_name("collector_lifecycle", tests, setup, teardown);
}
