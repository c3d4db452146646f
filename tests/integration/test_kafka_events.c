/*
 * test_kafka_events.c - canonical events through Kafka the way tm-collector writes them
 * and tm-aggregator reads them (DESIGN.md, "Kafka"): 2,000 events encoded with
 * tm_event_encode, produced to tm.events.v1 on tm-devkafka by an idempotent librdkafka
 * producer with lz4 compression, key = sector and headers operator/agent/schema, then read
 * back with kcat and decoded with tm_event_decode. Every event must come back exactly
 * once, equal to what was sent, under its sector's key and with its headers, and one
 * sector's events must share one partition.
 *
 * Volume: about 1.5 MB of JSON before compression, spread over 6 partitions, far below
 * the mock cluster's limit of about 5 MB of stored batches per partition (older batches
 * are dropped silently there, which would show up here as missing ids).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "harness.h"
#include "tm/tm_event.h"
#include "tm/tm_id.h"
#include "tm/tm_time.h"

#define EVENT_COUNT 2000
#define PARTITIONS 6
#define MOCK_PARTITION_LIMIT (5u << 20)

static const char *const sectors[] = {
    "local-government", "public-administration",
    "energy",           "drinking-water",
    "ict-services",     "transport",
    "health",           "banking",
    "education",        "media",
    "defence-industry",
};
static const char *const operators[] = {"op-kyiv-city", "op-lviv-water", "op-ua-grid.01"};
static const char *const regions[] = {"UA-30", "UA-32", "UA-46", "UA-63"};
static const char *const categories[] = {"phishing", "malware", "bruteforce", "ddos", "scan"};

struct fixture {
    struct tm_harness_kafka kafka;
    struct tm_event *sent;   /* EVENT_COUNT events */
    struct tm_event **by_id; /* sent, sorted by id */
    bool *seen;
};

struct delivery {
    int ok;
    int failed;
    char first_error[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    *state = f;
    f->kafka.pid = -1;
    f->sent = calloc(EVENT_COUNT, sizeof(*f->sent));
    f->by_id = calloc(EVENT_COUNT, sizeof(*f->by_id));
    f->seen = calloc(EVENT_COUNT, sizeof(*f->seen));
    if (f->sent == NULL || f->by_id == NULL || f->seen == NULL)
        return -1;
    return tm_harness_kafka_start(&f->kafka, 3, PARTITIONS);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f == NULL)
        return 0;
    if (f->kafka.pid > 0)
        tm_harness_kafka_stop(&f->kafka);
    free(f->sent);
    free(f->by_id);
    free(f->seen);
    free(f);
    return 0;
}

/* A varied, valid stamped event: optional fields present on some events, absent on others. */
static void make_event(struct tm_event *e, int i, int64_t base_ms)
{
    tm_event_init(e);
    tm_id_new(e->id);
    e->ts = base_ms - (int64_t)(EVENT_COUNT - i) * 1000;
    e->received = e->ts + 250 + i % 7;
    snprintf(e->operator_id, sizeof(e->operator_id), "%s", operators[i % 3]);
    snprintf(e->sector, sizeof(e->sector), "%s", sectors[i % (int)TM_ARRAY_LEN(sectors)]);
    snprintf(e->region, sizeof(e->region), "%s", regions[i % 4]);
    if (i % 5 != 0) { /* every fifth came from a syslog sender without an agent id */
        snprintf(e->agent, sizeof(e->agent), "agent-%04d", i % 13);
        e->seq = 100000 + i;
    }
    snprintf(e->source.kind, sizeof(e->source.kind), "%s", i % 2 ? "suricata" : "auth");
    snprintf(e->source.host, sizeof(e->source.host), "ids-%02d.rada.example.ua", i % 17);
    snprintf(e->category, sizeof(e->category), "%s", categories[i % 5]);
    e->severity = 1 + i % 10;
    e->confidence = i % 3 == 0 ? -1 : i % 101;
    if (i % 4 != 0) {
        snprintf(e->attack.technique, sizeof(e->attack.technique), "%s",
                 i % 2 ? "T1110.001" : "T1566");
        snprintf(e->attack.tactic, sizeof(e->attack.tactic), "%s",
                 i % 2 ? "credential-access" : "initial-access");
    }
    snprintf(e->src.ip, sizeof(e->src.ip), i % 9 ? "198.51.100.%d" : "2001:db8::%x", i % 250);
    e->src.port = 1024 + i;
    snprintf(e->dst.ip, sizeof(e->dst.ip), "10.20.%d.%d", i % 4, i % 200);
    e->dst.port = i % 6 ? 22 : -1;
    if (i % 8 == 0)
        snprintf(e->dst.asset, sizeof(e->dst.asset), "scada-hmi-%d", i % 3);
    e->count = 1 + i % 57;
    snprintf(e->summary, sizeof(e->summary),
             "Підбір паролів SSH: %" PRId64 " невдалих спроб на вузлі %d", e->count, i % 17);
    if (i % 10 == 0)
        snprintf(e->raw, sizeof(e->raw),
                 "Nov 23 07:22:05 gw sshd[%d]: Failed password for \"root\"\tfrom "
                 "198.51.100.%d port %d ssh2 \\ end",
                 4000 + i, i % 250, 1024 + i);
}

static int by_id_cmp(const void *a, const void *b)
{
    return strcmp((*(struct tm_event *const *)a)->id, (*(struct tm_event *const *)b)->id);
}

static int find_sent(const struct fixture *f, const char *id)
{
    struct tm_event key, *kp = &key, **hit;

    snprintf(key.id, sizeof(key.id), "%s", id);
    hit = bsearch(&kp, f->by_id, EVENT_COUNT, sizeof(*f->by_id), by_id_cmp);
    return hit == NULL ? -1 : (int)(*hit - f->sent);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct delivery *d = opaque;

    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        d->ok++;
    } else {
        if (d->failed++ == 0)
            snprintf(d->first_error, sizeof(d->first_error), "%s", rd_kafka_err2str(m->err));
    }
}

static rd_kafka_t *make_producer(const char *bootstrap, struct delivery *d)
{
    static const char *const settings[][2] = {
        {"enable.idempotence", "true"},
        {"compression.type", "lz4"},
        {"linger.ms", "20"},
        {"client.id", "test_kafka_events"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    assert_non_null(conf);
    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    for (size_t i = 0; i < TM_ARRAY_LEN(settings); i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
            fail_msg("librdkafka '%s': %s", settings[i][0], errstr);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, d);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        fail_msg("cannot create producer: %s", errstr);
    return rk;
}

static void produce_all(struct fixture *f)
{
    struct delivery d = {0};
    rd_kafka_t *rk = make_producer(f->kafka.bootstrap, &d);
    size_t total = 0;

    for (int i = 0; i < EVENT_COUNT; i++) {
        const struct tm_event *e = &f->sent[i];
        size_t len = 0;
        char *json = tm_event_encode(e, &len);
        rd_kafka_resp_err_t err;

        assert_non_null(json);
        total += len;
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(3);

        assert_non_null(hdrs);
        rd_kafka_header_add(hdrs, "operator", -1, e->operator_id, -1);
        if (e->agent[0] != '\0')
            rd_kafka_header_add(hdrs, "agent", -1, e->agent, -1);
        rd_kafka_header_add(hdrs, "schema", -1, "1", -1);
        do {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC("tm.events.v1"), RD_KAFKA_V_KEY(e->sector, strlen(e->sector)),
                RD_KAFKA_V_VALUE(json, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_headers_destroy(hdrs); /* the message owns them only once it is queued */
        free(json);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            fail_msg("produce event %d: %s", i, rd_kafka_err2str(err));
        rd_kafka_poll(rk, 0);
    }
    /* Even uncompressed, everything fits in one partition's share of the mock's memory. */
    assert_true(total < MOCK_PARTITION_LIMIT);
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_outq_len(rk), 0);
    if (d.failed != 0)
        fail_msg("%d deliveries failed, the first with: %s", d.failed, d.first_error);
    assert_int_equal(d.ok, EVENT_COUNT);
    rd_kafka_destroy(rk);
}

/* Value of header name in kcat's ["name","value",...] array, or NULL when absent. */
static const char *header(json_t *headers, const char *name, int *count)
{
    const char *value = NULL;

    *count = 0;
    for (size_t i = 0; i + 1 < json_array_size(headers); i += 2) {
        if (strcmp(json_string_value(json_array_get(headers, i)), name) == 0) {
            value = json_string_value(json_array_get(headers, i + 1));
            (*count)++;
        }
    }
    return value;
}

/* Checks one consumed message (kcat -J line) against what was sent. Returns its partition. */
static int check_message(struct fixture *f, json_t *msg, struct tm_event *got)
{
    const char *key = json_string_value(json_object_get(msg, "key"));
    const char *payload = json_string_value(json_object_get(msg, "payload"));
    json_t *headers = json_object_get(msg, "headers");
    const char *op, *agent, *schema;
    char err[TM_ERR_LEN] = "";
    enum tm_event_reason r;
    const struct tm_event *want;
    int n, idx;

    assert_non_null(payload);
    r = tm_event_decode(got, payload, strlen(payload), TM_EVENT_STAMPED, err);
    if (r != TM_EVENT_OK)
        fail_msg("consumed payload does not decode (%s: %s): %.200s", tm_event_reason_name(r), err,
                 payload);
    idx = find_sent(f, got->id);
    if (idx < 0)
        fail_msg("consumed an event that was never sent: '%s'", got->id);
    if (f->seen[idx])
        fail_msg("event '%s' consumed twice", got->id);
    f->seen[idx] = true;
    want = &f->sent[idx];
    if (!tm_event_equal(got, want))
        fail_msg("event '%s' differs after the round trip: %.300s", got->id, payload);

    assert_non_null(key);
    assert_string_equal(key, want->sector);
    op = header(headers, "operator", &n);
    assert_int_equal(n, 1);
    assert_string_equal(op, want->operator_id);
    schema = header(headers, "schema", &n);
    assert_int_equal(n, 1);
    assert_string_equal(schema, "1");
    agent = header(headers, "agent", &n);
    if (want->agent[0] != '\0') {
        assert_int_equal(n, 1);
        assert_string_equal(agent, want->agent);
    } else {
        assert_int_equal(n, 0); /* no agent, no header */
    }
    return (int)json_integer_value(json_object_get(msg, "partition"));
}

static void test_kafka_events_roundtrip(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {"kcat", "-C",           "-b", f->kafka.bootstrap,
                    "-t",   "tm.events.v1", "-o", "beginning",
                    "-e",   "-J",           "-q", NULL};
    int sector_partition[TM_ARRAY_LEN(sectors)];
    unsigned partitions_used = 0;
    int64_t base_ms = tm_time_now_ms();
    struct tm_event *got = malloc(sizeof(*got));
    char *out = NULL, *line, *save = NULL;
    size_t outlen = 0;
    int consumed = 0;

    assert_non_null(got);
    for (size_t s = 0; s < TM_ARRAY_LEN(sectors); s++)
        sector_partition[s] = -1;
    for (int i = 0; i < EVENT_COUNT; i++) {
        char err[TM_ERR_LEN] = "";
        make_event(&f->sent[i], i, base_ms);
        if (tm_event_validate(&f->sent[i], TM_EVENT_STAMPED, err) != TM_EVENT_OK)
            fail_msg("test event %d is invalid: %s", i, err);
        f->by_id[i] = &f->sent[i];
    }
    qsort(f->by_id, EVENT_COUNT, sizeof(*f->by_id), by_id_cmp);
    for (int i = 1; i < EVENT_COUNT; i++)
        assert_true(strcmp(f->by_id[i - 1]->id, f->by_id[i]->id) < 0); /* ids are unique */

    produce_all(f);

    assert_int_equal(tm_harness_run(argv, &out, &outlen, 60000), 0);
    for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *msg = json_loads(line, 0, &jerr);
        int p, s;

        if (msg == NULL)
            fail_msg("kcat printed a line that is not JSON (%s): %.200s", jerr.text, line);
        assert_string_equal(json_string_value(json_object_get(msg, "topic")), "tm.events.v1");
        p = check_message(f, msg, got);
        assert_true(p >= 0 && p < PARTITIONS);
        partitions_used |= 1u << p;
        /* Key = sector, so one sector's events stay in one partition, in order. */
        for (s = 0; s < (int)TM_ARRAY_LEN(sectors) && strcmp(sectors[s], got->sector) != 0; s++)
            ;
        assert_true(s < (int)TM_ARRAY_LEN(sectors));
        if (sector_partition[s] < 0)
            sector_partition[s] = p;
        assert_int_equal(sector_partition[s], p);
        consumed++;
        json_decref(msg);
    }
    assert_int_equal(consumed, EVENT_COUNT);
    for (int i = 0; i < EVENT_COUNT; i++)
        if (!f->seen[i])
            fail_msg("event '%s' (number %d) never came back", f->sent[i].id, i);
    /* Eleven sectors over six partitions: the keys do spread. */
    assert_true(__builtin_popcount(partitions_used) >= 3);
    free(out);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kafka_events_roundtrip, setup, teardown),
    };

    return cmocka_run_group_tests_name("kafka_events", tests, NULL, NULL);
}
