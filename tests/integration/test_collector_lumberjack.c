/*
 * test_collector_lumberjack.c - tm-collector's Lumberjack v2 listener end to end: the real
 * collector between tm-loadgen and tm-devkafka, with what landed in Kafka read back by
 * kcat. Plain TCP, TLS with client certificates (and a certificate from the wrong CA),
 * identity stamping against spoofed bodies, rejected events, and a Kafka outage during
 * which nothing may be acknowledged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_event.h"

static struct tm_harness_kafka kafka;
static char tmpdir[256];

static const char base_conf[] = "[identity]\n"
                                "default_operator = test-op\n"
                                "default_sector = energy\n"
                                "default_region = UA-32\n"
                                "[kafka]\n"
                                "linger = 2ms\n";

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tm-lj-test-XXXXXX");
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

/* Runs tm-loadgen to completion; returns its exit status. ids may be NULL. */
static int loadgen(const char *target, const char *events, const char *conns, const char *ids,
                   const char *const extra[])
{
    char bin[512];
    char *argv[32];
    int n = 0;

    snprintf(bin, sizeof(bin), "%s/tm-loadgen", tm_harness_build_dir());
    argv[n++] = bin;
    argv[n++] = "--target";
    argv[n++] = (char *)target;
    argv[n++] = "--events";
    argv[n++] = (char *)events;
    argv[n++] = "--connections";
    argv[n++] = (char *)conns;
    argv[n++] = "--window";
    argv[n++] = "250";
    if (ids != NULL) {
        argv[n++] = "--ids";
        argv[n++] = (char *)ids;
    }
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return tm_harness_run(argv, NULL, NULL, 180000);
}

/* Ids of the events in tm.events.v1 whose id starts with prefix ("lg-"), sorted. */
static long kafka_ids(const char *operator_id, char ***ids, const char *want_sector)
{
    struct tm_kmsgs msgs;
    long n = 0;

    *ids = NULL;
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        struct tm_event e;
        char err[TM_ERR_LEN];
        const struct tm_kmsg *m = &msgs.v[i];

        assert_non_null(m->payload);
        if (tm_event_decode(&e, m->payload, strlen(m->payload), TM_EVENT_STAMPED, err) !=
            TM_EVENT_OK)
            fail_msg("payload in kafka does not decode: %s: %.200s", err, m->payload);
        if (strcmp(e.operator_id, operator_id) != 0)
            continue;
        /* Key, headers and stamped identity agree. */
        assert_string_equal(m->key, e.sector);
        assert_string_equal(e.sector, want_sector);
        assert_string_equal(tm_kmsg_header(m, "operator"), operator_id);
        assert_string_equal(tm_kmsg_header(m, "schema"), "1");
        assert_true(e.received >= e.ts - 60000);
        *ids = realloc(*ids, (size_t)(n + 1) * sizeof(char *));
        (*ids)[n++] = strdup(e.id);
    }
    tm_kmsgs_free(&msgs);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every acknowledged id is in Kafka exactly as often as expected (once, when no retries). */
static void assert_ids_landed(const char *ids_file, const char *operator_id, const char *sector,
                              long expect)
{
    char **sent, **got;
    long nsent = tm_read_sorted_lines(ids_file, &sent);
    long ngot = kafka_ids(operator_id, &got, sector);
    long j = 0;

    assert_int_equal(nsent, expect);
    if (ngot > 1)
        qsort(got, (size_t)ngot, sizeof(char *), cmp_str);
    /* Each sent id appears at least once; nothing else from this run appears. */
    for (long i = 0; i < nsent; i++) {
        while (j < ngot && strcmp(got[j], sent[i]) < 0)
            j++;
        if (j >= ngot || strcmp(got[j], sent[i]) != 0)
            fail_msg("acknowledged event '%s' is not in kafka", sent[i]);
    }
    tm_free_lines(sent, nsent);
    tm_free_lines(got, ngot);
}

static void test_collector_lumberjack_plain(void **state)
{
    struct tm_collector_proc c;
    char ids[300];
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, base_conf), 0);
    snprintf(ids, sizeof(ids), "%s/plain.ids", tmpdir);
    assert_int_equal(loadgen(c.lumberjack, "5000", "3", ids, NULL), 0);
    assert_ids_landed(ids, "test-op", "energy", 5000);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_collector_lumberjack_spoofed_operator(void **state)
{
    static const char conf[] = "[identity]\n"
                               "default_operator = honest-op\n"
                               "default_sector = drinking-water\n"
                               "default_region = UA-30\n";
    static const char *const spoof[] = {"--operator", "ua-energy-001", NULL};
    struct tm_collector_proc c;
    char ids[300];
    char **got;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, conf), 0);
    snprintf(ids, sizeof(ids), "%s/spoof.ids", tmpdir);
    assert_int_equal(loadgen(c.lumberjack, "300", "1", ids, spoof), 0);
    /* The bodies said ua-energy-001; Kafka says the connection's operator. */
    assert_ids_landed(ids, "honest-op", "drinking-water", 300);
    assert_int_equal(kafka_ids("ua-energy-001", &got, "energy"), 0);
    free(got);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_collector_lumberjack_tls_client_cert(void **state)
{
    char conf[2048], map[300], ids[300], cert[300], key[300], ca[300], rcert[300], rkey[300];
    struct tm_collector_proc c;
    FILE *f;
    (void)state;

    assert_int_equal(tm_make_test_pki(tmpdir), 0);
    snprintf(map, sizeof(map), "%s/identities.ini", tmpdir);
    f = fopen(map, "w");
    assert_non_null(f);
    fprintf(f, "[operator.ua-water-kyiv]\nsector = drinking-water\nregion = UA-30\n"
               "certs = agent.vodokanal.test\n");
    fclose(f);
    snprintf(conf, sizeof(conf),
             "[lumberjack]\ntls = true\n"
             "[tls]\ncert = %s/server.crt\nkey = %s/server.key\nca = %s/ca.crt\n"
             "require_client_cert = true\n"
             "[identity]\nmap = %s\n",
             tmpdir, tmpdir, tmpdir, map);
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, conf), 0);

    snprintf(ids, sizeof(ids), "%s/tls.ids", tmpdir);
    snprintf(cert, sizeof(cert), "%s/agent.crt", tmpdir);
    snprintf(key, sizeof(key), "%s/agent.key", tmpdir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", tmpdir);
    {
        const char *const tls[] = {"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, NULL};
        assert_int_equal(loadgen(c.lumberjack, "1000", "2", ids, tls), 0);
    }
    assert_ids_landed(ids, "ua-water-kyiv", "drinking-water", 1000);

    /* A certificate from a CA the collector does not trust gets nothing acknowledged. */
    snprintf(rcert, sizeof(rcert), "%s/rogue.crt", tmpdir);
    snprintf(rkey, sizeof(rkey), "%s/rogue.key", tmpdir);
    {
        const char *const tls[] = {"--tls-cert", rcert,       "--tls-key", rkey, "--tls-ca",
                                   ca,           "--timeout", "3",         NULL};
        snprintf(ids, sizeof(ids), "%s/rogue.ids", tmpdir);
        assert_int_not_equal(loadgen(c.lumberjack, "10", "1", ids, tls), 0);
        char **lines;
        long n = tm_read_sorted_lines(ids, &lines);
        assert_int_equal(n, 0);
        tm_free_lines(lines, n);
    }
    /* No certificate at all: refused too. */
    {
        const char *const tls[] = {"--tls-ca", ca, "--timeout", "3", NULL};
        assert_int_not_equal(loadgen(c.lumberjack, "10", "1", NULL, tls), 0);
    }
    /* Plain TCP to the TLS listener: refused. */
    {
        const char *const plain[] = {"--timeout", "3", NULL};
        assert_int_not_equal(loadgen(c.lumberjack, "10", "1", NULL, plain), 0);
    }
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_collector_lumberjack_rejected_events(void **state)
{
    struct tm_collector_proc c;
    char input[300];
    struct tm_kmsgs msgs;
    int bad = 0;
    FILE *f;
    (void)state;

    snprintf(input, sizeof(input), "%s/mixed.ndjson", tmpdir);
    f = fopen(input, "w");
    assert_non_null(f);
    fprintf(f, "{\"id\":\"rej-good-1\",\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"ddos\","
               "\"severity\":8}\n");
    fprintf(f, "{\"id\":\"rej-bad-1\",\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"ddos\","
               "\"severity\":11}\n");
    fprintf(f, "not json at all\n");
    fclose(f);
    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, base_conf), 0);
    {
        const char *const extra[] = {"--input", input, NULL};
        /* 3 lines cycled over 30 events: 10 good, 20 bad, all acknowledged. */
        assert_int_equal(loadgen(c.lumberjack, "30", "1", NULL, extra), 0);
    }
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.rejected", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        const char *reason = tm_kmsg_header(&msgs.v[i], "reason");
        const char *error = tm_kmsg_header(&msgs.v[i], "error");
        assert_non_null(reason);
        assert_non_null(error);
        if (strstr(msgs.v[i].payload, "rej-bad-1") != NULL) {
            assert_string_equal(reason, "bad-value");
            assert_non_null(strstr(error, "severity"));
            bad++;
        } else if (strcmp(msgs.v[i].payload, "not json at all") == 0) {
            assert_string_equal(reason, "syntax");
            bad++;
        }
    }
    assert_int_equal(bad, 20);
    tm_kmsgs_free(&msgs);
    assert_int_equal(tm_collector_stop(&c), 0);
}

static void test_collector_lumberjack_kafka_down(void **state)
{
    struct tm_collector_proc c;
    char ids[300], bin[512], target[64];
    char **lines;
    long n;
    pid_t lg;
    int status;
    (void)state;

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, base_conf), 0);
    /* Warm up: the producer knows the cluster before it goes away. */
    assert_int_equal(loadgen(c.lumberjack, "10", "1", NULL, NULL), 0);
    assert_int_equal(tm_harness_kafka_brokers(&kafka, false, -1), 0);

    snprintf(ids, sizeof(ids), "%s/down.ids", tmpdir);
    snprintf(bin, sizeof(bin), "%s/tm-loadgen", tm_harness_build_dir());
    snprintf(target, sizeof(target), "%s", c.lumberjack);
    {
        char *argv[] = {bin,        "--target",  target,          "--events", "2000",
                        "--window", "200",       "--connections", "2",        "--ids",
                        ids,        "--timeout", "120",           NULL};
        lg = tm_harness_spawn(argv, NULL);
    }
    assert_true(lg > 0);
    sleep(4);
    /* Kafka is down: nothing may have been acknowledged. */
    n = tm_read_sorted_lines(ids, &lines);
    assert_int_equal(n, 0);
    tm_free_lines(lines, n);

    assert_int_equal(tm_harness_kafka_brokers(&kafka, true, -1), 0);
    status = tm_harness_wait(lg, 120000); /* it exits by itself once everything is acked */
    assert_int_equal(status, 0);
    assert_ids_landed(ids, "test-op", "energy", 2000);
    assert_int_equal(tm_collector_stop(&c), 0);
}

/* Agent heartbeats go to tm.heartbeats keyed by agent, stamped with the connection's identity. */
static void test_collector_lumberjack_heartbeats(void **state)
{
    struct tm_collector_proc c;
    struct tm_kmsgs msgs;
    char input[300];
    const char *const extra[] = {"--input", input, NULL};
    int heartbeats = 0, quoted = 0;
    FILE *f;
    (void)state;

    snprintf(input, sizeof(input), "%s/heartbeats.ndjson", tmpdir);
    f = fopen(input, "w");
    assert_non_null(f);
    /* The body claims another operator; the connection's identity wins. */
    fputs("{\"type\":\"tm.heartbeat\",\"schema\":1,\"agent\":\"hb-agent-1\","
          "\"operator\":\"someone-else\",\"version\":\"0.1\",\"uptime_s\":5,"
          "\"next_seq\":42,\"lost_events\":0}\n",
          f);
    /* An event that merely quotes the word is still an event. */
    fputs("{\"schema\":1,\"ts\":\"2026-11-23T10:00:00.000Z\",\"category\":\"scan\","
          "\"severity\":3,\"summary\":\"\\\"tm.heartbeat\\\" in a summary\"}\n",
          f);
    /* A heartbeat without its agent is rejected with a reason. */
    fputs("{\"type\":\"tm.heartbeat\",\"next_seq\":1}\n", f);
    fclose(f);

    assert_int_equal(tm_collector_start(&c, kafka.bootstrap, base_conf), 0);
    assert_int_equal(loadgen(c.lumberjack, "3", "1", NULL, extra), 0);
    assert_int_equal(tm_collector_stop(&c), 0);

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.heartbeats", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        const struct tm_kmsg *m = &msgs.v[i];
        if (strstr(m->payload, "\"hb-agent-1\"") == NULL)
            continue;
        heartbeats++;
        assert_string_equal(m->key, "hb-agent-1");
        assert_string_equal(tm_kmsg_header(m, "operator"), "test-op");
        assert_non_null(strstr(m->payload, "\"operator\":\"test-op\""));
        assert_non_null(strstr(m->payload, "\"sector\":\"energy\""));
        assert_non_null(strstr(m->payload, "\"received\":\""));
        assert_non_null(strstr(m->payload, "\"next_seq\":42"));
        assert_null(strstr(m->payload, "someone-else"));
    }
    tm_kmsgs_free(&msgs);
    assert_int_equal(heartbeats, 1);

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++)
        quoted += strstr(msgs.v[i].payload, "in a summary") != NULL;
    tm_kmsgs_free(&msgs);
    assert_int_equal(quoted, 1);

    heartbeats = 0;
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.rejected", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        const char *reason = tm_kmsg_header(&msgs.v[i], "reason");
        if (reason != NULL && strcmp(reason, "heartbeat") == 0) {
            heartbeats++;
            assert_non_null(strstr(tm_kmsg_header(&msgs.v[i], "error"), "agent"));
        }
    }
    tm_kmsgs_free(&msgs);
    assert_int_equal(heartbeats, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collector_lumberjack_plain),
        cmocka_unit_test(test_collector_lumberjack_spoofed_operator),
        cmocka_unit_test(test_collector_lumberjack_tls_client_cert),
        cmocka_unit_test(test_collector_lumberjack_rejected_events),
        cmocka_unit_test(test_collector_lumberjack_kafka_down),
        cmocka_unit_test(test_collector_lumberjack_heartbeats),
    };
    return cmocka_run_group_tests_name("collector_lumberjack", tests, setup, teardown);
}
