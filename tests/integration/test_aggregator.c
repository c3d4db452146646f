/*
 * test_aggregator.c - tm-aggregator against a real redis-server and tm-devkafka on
 * loopback. A scripted stream of events (duplicates, out-of-order events within the
 * allowed lateness, late events, one event 40 days late) is produced to tm.events.v1 with
 * explicit partitions; the test computes the ground truth on its own (its own window
 * labels, watermark and dedup) and every window hash the aggregator wrote must equal it
 * exactly, with no hash the truth does not have. Then:
 *   - a clean restart on the same input changes nothing;
 *   - Redis stopped for a while and started again (empty): consumption pauses, resumes,
 *     and the values are exact;
 *   - SIGKILL at random moments while 200,000 events are consumed, restarting each time,
 *     gives exactly the same values as the truth (exactly-once);
 *   - two members of one group, one SIGKILLed mid-stream: the other takes over, values exact;
 *   - heartbeats land in the agent hash and the last-seen sorted set; seq gaps are counted;
 *   - SIGTERM while the group is still assigning partitions exits cleanly;
 *   - tm_aggregator_consumer_lag_messages: 0 when caught up, exactly the messages not yet
 *     applied while Redis is down, 0 again after the catch-up; one series per partition
 *     owned, removed from a member that gave the partition up.
 *
 * Volume: the mock cluster keeps only the last ~5 MB of batches per partition and drops
 * older ones silently. Every test stays far below that, except the SIGKILL one (212,000
 * lz4-compressed messages over 3 partitions), which produces in chunks that each wait for
 * the aggregator to catch up, and checks the broker's low watermarks never pass the
 * group's stored offsets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"

#define PARTITIONS 3
#define LATENESS_MS (10 * 60 * 1000LL)
#define HOUR_RETAIN_MS (35 * 86400000LL)
#define DAY_RETAIN_MS (400 * 86400000LL)
#define GROUP "tm-agg-test"

static const char *const sectors[] = {"local-government", "public-administration", "energy",
                                      "drinking-water",   "ict-services",          "health",
                                      "banking"};
static const char *const regions[] = {"UA-30", "UA-32", "UA-46"};
static const char *const categories[] = {"phishing", "malware", "bruteforce", "ddos", "scan"};
static const char *const bands[] = {"low",    "low",  "low",  "medium",   "medium",
                                    "medium", "high", "high", "critical", "critical"};

/* What the truth needs of an event (a struct tm_event is ~10 KB; 200,000 of them, 2 GB). */
struct ev {
    char id[TM_EVENT_ID_MAX + 1];
    char operator_id[TM_EVENT_NAME_MAX + 1];
    char agent[TM_EVENT_ID_MAX + 1];
    char sector[32], category[32];
    struct {
        char technique[16], tactic[40];
    } attack;
    int severity;
    int64_t ts, count, seq;
};

struct msg {
    int partition;
    char *json;
    size_t len;
    struct ev e;
};

struct fixture {
    struct tm_harness_redis redis;
    struct tm_harness_kafka kafka;
    redisContext *c;
    pid_t agg;
    char conf[256];
    char admin[256]; /* the aggregator started last: its /healthz and /metrics */
    struct msg *msgs;
    size_t nmsgs;
    long per_part[PARTITIONS];
    json_t *truth; /* key -> {field: value} for every window hash */
    long feed, lost;
    json_t *feed_ids; /* id -> true for every event the feed may hold (severity >= 7) */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct timeval tv = {5, 0};

    if (f == NULL)
        return -1;
    *state = f;
    f->agg = -1;
    if (tm_harness_redis_start(&f->redis) != 0 ||
        tm_harness_kafka_start(&f->kafka, 1, PARTITIONS) != 0)
        return -1;
    f->c = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    if (f->c == NULL || f->c->err)
        return -1;
    redisSetTimeout(f->c, tv);
    snprintf(f->conf, sizeof(f->conf), "/tmp/tm-aggregator-test-XXXXXX");
    {
        int fd = mkstemp(f->conf);
        FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (fp == NULL)
            return -1;
        fprintf(fp, "[aggregator]\nflush_interval = 100ms\nflush_events = 400\n"
                    "[kafka]\nsession_timeout = 3s\n");
        fclose(fp);
    }
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f == NULL)
        return 0;
    if (f->agg > 0)
        tm_harness_stop(f->agg, 10000);
    if (f->c != NULL)
        redisFree(f->c);
    tm_harness_kafka_stop(&f->kafka);
    tm_harness_redis_stop(&f->redis);
    for (size_t i = 0; i < f->nmsgs; i++)
        free(f->msgs[i].json);
    free(f->msgs);
    json_decref(f->truth);
    json_decref(f->feed_ids);
    unlink(f->conf);
    free(f);
    return 0;
}

/* ---- the scripted input and its ground truth --------------------------------------- */

static void add_msg(struct fixture *f, const struct tm_event *e, int partition)
{
    struct msg *m = &f->msgs[f->nmsgs++];

    m->partition = partition;
    m->json = tm_event_encode(e, &m->len);
    assert_non_null(m->json);
    snprintf(m->e.id, sizeof(m->e.id), "%s", e->id);
    snprintf(m->e.operator_id, sizeof(m->e.operator_id), "%s", e->operator_id);
    snprintf(m->e.agent, sizeof(m->e.agent), "%s", e->agent);
    snprintf(m->e.sector, sizeof(m->e.sector), "%s", e->sector);
    snprintf(m->e.category, sizeof(m->e.category), "%s", e->category);
    snprintf(m->e.attack.technique, sizeof(m->e.attack.technique), "%s", e->attack.technique);
    snprintf(m->e.attack.tactic, sizeof(m->e.attack.tactic), "%s", e->attack.tactic);
    m->e.severity = e->severity;
    m->e.ts = e->ts;
    m->e.count = e->count;
    m->e.seq = e->seq;
    f->per_part[partition]++;
}

/* Sends the message at i again (a retry by an agent or collector: the same bytes). */
static void add_again(struct fixture *f, size_t i)
{
    struct msg *m = &f->msgs[f->nmsgs++];

    *m = f->msgs[i];
    m->json = malloc(m->len);
    assert_non_null(m->json);
    memcpy(m->json, f->msgs[i].json, m->len);
    f->per_part[m->partition]++;
}

/*
 * n events over the sectors, 0.7 s apart; every 23rd is 20 min old (late), every 11th
 * 4 min old (out of order, within the lateness), one is 40 days old; every 17th is sent
 * again a little later (a duplicate); agents skip a seq now and then.
 */
static void make_input(struct fixture *f, int n)
{
    int64_t base;
    int64_t seq = 1000;
    size_t *where = calloc((size_t)n, sizeof(*where)); /* event i -> its first message */

    assert_int_equal(tm_time_parse("2026-11-20T06:00:00.000Z", 24, &base), 0);
    f->msgs = calloc((size_t)n + (size_t)n / 16 + 8, sizeof(*f->msgs)); /* + retries */
    assert_non_null(f->msgs);
    assert_non_null(where);
    for (int i = 0; i < n; i++) {
        struct tm_event e;
        int s = i % (int)TM_ARRAY_LEN(sectors);
        int64_t now = base + (int64_t)i * 700;

        tm_event_init(&e);
        snprintf(e.id, sizeof(e.id), "EV%06d", i);
        e.ts = now;
        if (i % 23 == 5)
            e.ts = now - 20 * 60 * 1000;
        else if (i % 11 == 3)
            e.ts = now - 4 * 60 * 1000;
        if (i == n / 2)
            e.ts = now - 40LL * 86400000;
        e.received = now + 300;
        snprintf(e.operator_id, sizeof(e.operator_id), "op-%d", i % 4);
        snprintf(e.sector, sizeof(e.sector), "%s", sectors[s]);
        snprintf(e.region, sizeof(e.region), "%s", regions[i % 3]);
        if (i % 3 == 0) {
            snprintf(e.agent, sizeof(e.agent), "agent-%d", i % 2);
            seq += i % 97 == 0 ? 2 : 1; /* a gap now and then */
            e.seq = seq;
        }
        snprintf(e.category, sizeof(e.category), "%s", categories[i % 5]);
        e.severity = 1 + (i * 7) % 10;
        if (i % 4 != 0) {
            snprintf(e.attack.technique, sizeof(e.attack.technique), "%s",
                     i % 2 ? "T1110" : "T1566");
            snprintf(e.attack.tactic, sizeof(e.attack.tactic), "%s",
                     i % 2 ? "credential-access" : "initial-access");
        }
        snprintf(e.src.ip, sizeof(e.src.ip), "198.51.100.%d", i % 9);
        e.count = 1 + i % 13;
        snprintf(e.summary, sizeof(e.summary), "event %d", i);
        where[i] = f->nmsgs;
        add_msg(f, &e, s % PARTITIONS);
        if (i % 17 == 0 && i > 0) {
            /* a retry of an earlier event of the same sector (same partition) */
            int j = i - (int)TM_ARRAY_LEN(sectors) * 2;
            if (j >= 0)
                add_again(f, where[j]);
        }
    }
    free(where);
}

/* UTC label of the window of ts: 'm' minute, 'h' hour, 'd' day. */
static void label(int64_t ts, char res, char *out, size_t len)
{
    time_t secs = (time_t)(ts / 1000);
    struct tm tm;
    size_t n;

    assert_non_null(gmtime_r(&secs, &tm));
    if (res == 'm')
        n = strftime(out, len, "%Y%m%d%H%M", &tm);
    else if (res == 'h')
        n = strftime(out, len, "%Y%m%d%H", &tm);
    else
        n = strftime(out, len, "%Y%m%d", &tm);
    assert_true(n > 0);
}

static void bump(json_t *truth, const char *key, const char *field, long long v)
{
    json_t *h = json_object_get(truth, key);
    json_t *cur;

    if (h == NULL) {
        h = json_object();
        json_object_set_new(truth, key, h);
    }
    cur = json_object_get(h, field);
    json_object_set_new(h, field, json_integer((cur != NULL ? json_integer_value(cur) : 0) + v));
}

static void count_into(json_t *truth, const char *key, const struct ev *e, bool national)
{
    char field[64];

    bump(truth, key, "events", 1);
    bump(truth, key, "count", e->count);
    snprintf(field, sizeof(field), "cat:%s", e->category);
    bump(truth, key, field, 1);
    snprintf(field, sizeof(field), "sev:%s", bands[e->severity - 1]);
    bump(truth, key, field, 1);
    if (e->attack.technique[0] != '\0') {
        snprintf(field, sizeof(field), "tech:%s", e->attack.technique);
        bump(truth, key, field, 1);
        snprintf(field, sizeof(field), "tac:%s", e->attack.tactic);
        bump(truth, key, field, 1);
    }
    if (national) {
        snprintf(field, sizeof(field), "sec:%s", e->sector);
        bump(truth, key, field, 1);
    }
}

/* The truth, computed without the aggregator's code: per partition in order. */
static void compute_truth(struct fixture *f)
{
    int64_t max_ts[PARTITIONS];
    json_t *seen = json_object();
    int64_t seq_min = INT64_MAX, seq_max = -1, seq_n = 0;

    f->truth = json_object();
    f->feed = 0;
    f->feed_ids = json_object();
    for (int p = 0; p < PARTITIONS; p++)
        max_ts[p] = INT64_MIN;
    for (size_t i = 0; i < f->nmsgs; i++) {
        const struct ev *e = &f->msgs[i].e;
        int p = f->msgs[i].partition;
        int64_t wm = max_ts[p] == INT64_MIN ? INT64_MIN : max_ts[p] - LATENESS_MS;
        bool late = wm != INT64_MIN && e->ts < wm;
        int64_t hour_end = (e->ts / 3600000 + 1) * 3600000;
        int64_t day_end = (e->ts / 86400000 + 1) * 86400000;
        char key[128], l[32];

        if (e->ts > max_ts[p])
            max_ts[p] = e->ts;
        if (json_object_get(seen, e->id) != NULL)
            continue;
        json_object_set_new(seen, e->id, json_true());
        if (!late) {
            label(e->ts, 'm', l, sizeof(l));
            snprintf(key, sizeof(key), "tm:s:%s:1m:%s", e->sector, l);
            count_into(f->truth, key, e, false);
            snprintf(key, sizeof(key), "tm:n:1m:%s", l);
            count_into(f->truth, key, e, true);
        }
        if (!late || hour_end + HOUR_RETAIN_MS > wm) {
            label(e->ts, 'h', l, sizeof(l));
            snprintf(key, sizeof(key), "tm:s:%s:1h:%s", e->sector, l);
            count_into(f->truth, key, e, false);
            snprintf(key, sizeof(key), "tm:n:1h:%s", l);
            count_into(f->truth, key, e, true);
        }
        if (!late || day_end + DAY_RETAIN_MS > wm) {
            label(e->ts, 'd', l, sizeof(l));
            snprintf(key, sizeof(key), "tm:s:%s:1d:%s", e->sector, l);
            count_into(f->truth, key, e, false);
            snprintf(key, sizeof(key), "tm:n:1d:%s", l);
            count_into(f->truth, key, e, true);
        }
        if (e->severity >= 7) {
            f->feed++;
            json_object_set_new(f->feed_ids, e->id, json_true());
        }
        if (strcmp(e->agent, "agent-0") == 0 && strcmp(e->operator_id, "op-0") == 0) {
            seq_min = e->seq < seq_min ? e->seq : seq_min;
            seq_max = e->seq > seq_max ? e->seq : seq_max;
            seq_n++;
        }
    }
    f->lost = seq_n > 0 ? (long)(seq_max - seq_min + 1 - seq_n) : -1;
    json_decref(seen);
}

static void produce(struct fixture *f, size_t from, size_t to)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", f->kafka.bootstrap, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "compression.type", "lz4", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    for (size_t i = from; i < to; i++) {
        const struct msg *m = &f->msgs[i];
        rd_kafka_resp_err_t err;
        do {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC("tm.events.v1"), RD_KAFKA_V_PARTITION(m->partition),
                RD_KAFKA_V_KEY(m->e.sector, strlen(m->e.sector)), RD_KAFKA_V_VALUE(m->json, m->len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

static void produce_heartbeat(struct fixture *f, const char *received, long next_seq)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "printf '%%s\\n' 'hb-1|{\"type\":\"tm.heartbeat\",\"schema\":1,\"agent\":\"hb-1\","
             "\"version\":\"0.1.0\",\"ts\":\"%s\",\"uptime_s\":60,\"spool_events\":3,"
             "\"spool_bytes\":900,\"lost_events\":2,\"next_seq\":%ld,\"last_error\":\"\","
             "\"operator\":\"op-9\",\"sector\":\"energy\",\"region\":\"UA-32\","
             "\"received\":\"%s\"}' | kcat -P -b %s -t tm.heartbeats -p 1 -K'|'",
             received, next_seq, received, f->kafka.bootstrap);
    assert_int_equal(tm_sh(cmd, 30000), 0);
}

/* ---- running the aggregator and reading Redis -------------------------------------- */

static void start_aggregator(struct fixture *f)
{
    char bin[512], redis[64], line[256];
    char *argv[] = {bin,   "-c",      f->conf, "--kafka", f->kafka.bootstrap, "--redis",
                    redis, "--group", GROUP,   "--admin", "127.0.0.1:0",      NULL};
    int fd = -1;

    snprintf(bin, sizeof(bin), "%s/tm-aggregator", tm_harness_build_dir());
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", f->redis.port);
    f->agg = tm_harness_spawn(argv, &fd);
    assert_true(f->agg > 0);
    assert_true(tm_harness_read_line(fd, line, sizeof(line), 10000) > 0);
    assert_true(strncmp(line, "listening admin ", 16) == 0);
    snprintf(f->admin, sizeof(f->admin), "%s", line + 16);
    close(fd);
}

/* The status of the last aggregator's GET /healthz, or -1 when it did not answer. */
static int healthz(struct fixture *f)
{
    int status = -1;

    if (tm_harness_http(f->admin, "GET", "/healthz", &status, NULL, 5000) != 0)
        return -1;
    return status;
}

/* Waits up to timeout_s for the last aggregator's /healthz to answer want. */
static void wait_healthz(struct fixture *f, int want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10 && healthz(f) != want; i++)
        usleep(100000);
    assert_int_equal(healthz(f), want);
}

#define LAG "tm_aggregator_consumer_lag_messages"

/* The lag an aggregator reports, summed over its partitions; -1 when it has no series. */
static long long lag(const char *admin)
{
    return (long long)tm_admin_metric(admin, LAG);
}

/* How many lag series (partitions owned, lag known) an aggregator reports; -1 on error. */
static int lag_series(const char *admin)
{
    char *body = NULL, *save = NULL;
    int status = 0, n = 0;

    if (tm_harness_http(admin, "GET", "/metrics", &status, &body, 5000) != 0 || status != 200) {
        free(body);
        return -1;
    }
    for (char *l = strtok_r(body, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save))
        n += strncmp(l, LAG "{", strlen(LAG) + 1) == 0;
    free(body);
    return n;
}

/* Waits up to timeout_s for the last aggregator's total lag to be want. */
static void wait_lag(struct fixture *f, long long want, int timeout_s)
{
    long long v = lag(f->admin);

    for (int i = 0; i < timeout_s * 10 && v != want; i++) {
        usleep(100000);
        v = lag(f->admin);
    }
    if (v != want)
        fail_msg("consumer lag %lld after %d s, %lld expected", v, timeout_s, want);
}

static long long hget_int(struct fixture *f, const char *key, const char *field)
{
    redisReply *r = redisCommand(f->c, "HGET %s %s", key, field);
    long long v = -1;

    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static long long cmd_int(struct fixture *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v;

    va_start(ap, fmt);
    r = redisvCommand(f->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* True when every events partition's stored next offset is at its end. */
static bool caught_up(struct fixture *f)
{
    for (int p = 0; p < PARTITIONS; p++) {
        char key[128];
        snprintf(key, sizeof(key), "tm:offset:%s:tm.events.v1:%d", GROUP, p);
        if (hget_int(f, key, "next") != f->per_part[p])
            return false;
    }
    return true;
}

static void wait_caught_up(struct fixture *f, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        if (caught_up(f))
            return;
        usleep(100000);
    }
    fail_msg("the aggregator did not reach the end of tm.events.v1 in %d s", timeout_s);
}

/*
 * tm:feed holds every serious event once, or, past its cap (XADD MAXLEN ~ 10,000: whole
 * stream nodes of up to 100 entries are trimmed), the last 10,000 or so: each entry a
 * serious event of the truth, none twice.
 */
static void check_feed(struct fixture *f)
{
    long long len = cmd_int(f, "XLEN %s", "tm:feed");
    json_t *seen = json_object();
    redisReply *r;

    if (f->feed <= 10000)
        assert_int_equal(len, f->feed);
    else if (len < 10000 || len > 10000 + 100)
        fail_msg("tm:feed holds %lld entries, about 10,000 expected", len);
    r = redisCommand(f->c, "XRANGE %s - +", "tm:feed");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal((long long)r->elements, len);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        const char *id = NULL;
        for (size_t j = 0; j + 1 < fields->elements; j += 2)
            if (strcmp(fields->element[j]->str, "id") == 0)
                id = fields->element[j + 1]->str;
        assert_non_null(id);
        if (json_object_get(f->feed_ids, id) == NULL)
            fail_msg("tm:feed entry '%s' is not a serious event of the input", id);
        if (json_object_get(seen, id) != NULL)
            fail_msg("tm:feed holds '%s' twice", id);
        json_object_set_new(seen, id, json_true());
    }
    freeReplyObject(r);
    json_decref(seen);
}

/* Every window hash equals the truth, and there is no window hash the truth lacks. */
static void check_truth(struct fixture *f)
{
    const char *key;
    json_t *h;
    redisReply *keys;
    size_t windows = 0;

    json_object_foreach(f->truth, key, h)
    {
        redisReply *r = redisCommand(f->c, "HGETALL %s", key);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        if (r->elements != json_object_size(h) * 2)
            fail_msg("'%s': %zu fields in Redis, %zu expected", key, r->elements / 2,
                     json_object_size(h));
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            json_t *want = json_object_get(h, r->element[i]->str);
            if (want == NULL ||
                json_integer_value(want) != strtoll(r->element[i + 1]->str, NULL, 10))
                fail_msg("'%s' field '%s' = %s, expected %lld", key, r->element[i]->str,
                         r->element[i + 1]->str, want ? (long long)json_integer_value(want) : -1LL);
        }
        freeReplyObject(r);
    }
    keys = redisCommand(f->c, "KEYS %s", "tm:[sn]:*");
    assert_non_null(keys);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        if (strstr(k, ":src:") || strstr(k, ":top:") || strstr(k, ":ops:") || strstr(k, ":roll") ||
            strstr(k, ":trend"))
            continue; /* derived figures: test_aggregator_trend.c */
        windows++;
        if (json_object_get(f->truth, k) == NULL)
            fail_msg("'%s' is in Redis but not in the truth", k);
    }
    assert_int_equal(windows, json_object_size(f->truth));
    freeReplyObject(keys);
    check_feed(f);
    assert_int_equal(hget_int(f, "tm:agent:op-0:agent-0", "seq_lost"), f->lost);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_aggregator_exact_counts_and_clean_restart(void **state)
{
    struct fixture *f = *state;
    long long ttl;

    make_input(f, 3000);
    compute_truth(f);
    produce(f, 0, f->nmsgs);
    produce_heartbeat(f, "2026-11-20T06:00:00.000Z", 10);
    produce_heartbeat(f, "2026-11-20T06:00:30.000Z", 12);
    start_aggregator(f);
    wait_caught_up(f, 60);
    usleep(500000); /* heartbeats are flushed on their own timer */
    check_truth(f);

    /* Retention: every key has a TTL (window hashes, sets); offsets are kept on purpose. */
    ttl = cmd_int(f, "TTL %s", "tm:s:energy:1d:20261120");
    assert_true(ttl > 399 * 86400LL && ttl <= 400 * 86400LL);
    ttl = cmd_int(f, "TTL %s", "tm:n:1m:202611200600");
    assert_true(ttl > 47 * 3600 && ttl <= 48 * 3600);
    assert_true(cmd_int(f, "TTL %s", "tm:dedup:2026112006") > 24 * 3600);
    assert_int_equal(cmd_int(f, "TTL %s", "tm:offset:" GROUP ":tm.events.v1:0"), -1);
    /* Distinct sources per sector and day: 9 addresses in all, exact at this size. */
    assert_int_equal(cmd_int(f, "PFCOUNT %s", "tm:n:src:1d:20261120"), 9);
    assert_true(cmd_int(f, "ZCARD %s", "tm:n:top:1d:20261120") == 9);

    /* Heartbeats: the latest one wins; the sorted set has the last receive time. */
    assert_int_equal(hget_int(f, "tm:agent:op-9:hb-1", "next_seq"), 12);
    assert_int_equal(hget_int(f, "tm:agent:op-9:hb-1", "agent_lost"), 2);
    {
        int64_t t;
        redisReply *r = redisCommand(f->c, "ZSCORE %s %s", "tm:agents:lastseen", "op-9/hb-1");
        assert_int_equal(tm_time_parse("2026-11-20T06:00:30.000Z", 24, &t), 0);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(strtoll(r->str, NULL, 10), t);
        freeReplyObject(r);
    }

    /* SIGTERM: clean exit; a restart on the same input changes nothing. */
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
    start_aggregator(f);
    sleep(5);
    check_truth(f);
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
}

/* Sum of the stored next offsets of the events partitions. */
static long long stored_total(struct fixture *f)
{
    long long sum = 0;

    for (int p = 0; p < PARTITIONS; p++) {
        char key[128];
        long long v;
        snprintf(key, sizeof(key), "tm:offset:%s:tm.events.v1:%d", GROUP, p);
        v = hget_int(f, key, "next");
        sum += v > 0 ? v : 0;
    }
    return sum;
}

/* The oldest offset the broker still holds for a tm.events.v1 partition. */
static int64_t low_watermark(struct fixture *f, rd_kafka_t *rk, int p)
{
    int64_t lo = -1, hi = -1;

    assert_int_equal(rd_kafka_query_watermark_offsets(rk, "tm.events.v1", p, &lo, &hi, 10000),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    (void)f;
    return lo;
}

/* Waits until the stored offsets of the events partitions add up to at least total. */
static void wait_stored(struct fixture *f, long long total, int timeout_s)
{
    for (int i = 0; i < timeout_s * 100 && stored_total(f) < total; i++)
        usleep(10000);
    if (stored_total(f) < total)
        fail_msg("stored offsets add up to %lld after %d s, %lld expected", stored_total(f),
                 timeout_s, total);
}

#define KILL_EVENTS 200000
#define KILL_CHUNKS 12

/*
 * The crash test: while 200,000 events (212,000 messages with the retries) are
 * consumed, the aggregator is SIGKILLed at a random moment of each of 12 chunks and
 * restarted: the final values equal the truth exactly.
 *
 * The mock cluster keeps only the last ~5 MB of batches per partition, and the input is
 * several times that: it is produced in chunks, each once the aggregator's stored offsets
 * have reached the end of the previous one, so retention only ever drops consumed data.
 * That is checked: after each chunk is produced, every partition's low watermark is at or
 * below the group's stored offset (nothing it still has to read was dropped). The moment
 * of each kill is a random point of the chunk's progress (10% to 90% of its messages
 * stored), plus up to 20 ms: mid-stream, between or inside flushes.
 */
static void test_aggregator_sigkill_exactly_once(void **state)
{
    struct fixture *f = *state;
    unsigned seed = (unsigned)time(NULL);
    FILE *fp = fopen(f->conf, "w");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;
    int kills = 0, mid = 0;
    int64_t dropped = 0, t0 = tm_time_mono_ms();

    assert_non_null(fp);
    fprintf(fp, "[aggregator]\nflush_interval = 50ms\nflush_events = 200\n"
                "[kafka]\nsession_timeout = 3s\n");
    fclose(fp);
    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", f->kafka.bootstrap, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    srand(seed);
    make_input(f, KILL_EVENTS);
    compute_truth(f);
    start_aggregator(f);
    for (int k = 0; k < KILL_CHUNKS; k++) {
        size_t from = f->nmsgs * (size_t)k / KILL_CHUNKS,
               to = f->nmsgs * (size_t)(k + 1) / KILL_CHUNKS;
        long long target = (long long)from + (long long)(to - from) * (10 + rand() % 81) / 100;
        produce(f, from, to);
        for (int p = 0; p < PARTITIONS; p++) {
            char key[128];
            long long next;
            int64_t lo = low_watermark(f, rk, p);
            snprintf(key, sizeof(key), "tm:offset:%s:tm.events.v1:%d", GROUP, p);
            next = hget_int(f, key, "next");
            if (lo > (next > 0 ? next : 0))
                fail_msg("partition %d: the broker dropped offsets up to %lld, the aggregator "
                         "is at %lld: retention took unconsumed data (make the chunks smaller)",
                         p, (long long)lo, next);
        }
        wait_stored(f, target, 60);
        usleep((useconds_t)(rand() % 20000));
        if (stored_total(f) < (long long)to)
            mid++;
        assert_int_equal(tm_harness_kill9(f->agg), 0);
        kills++;
        f->agg = -1;
        start_aggregator(f);
        wait_stored(f, (long long)to, 120);
    }
    for (int p = 0; p < PARTITIONS; p++)
        dropped += low_watermark(f, rk, p);
    rd_kafka_destroy(rk);
    print_message("aggregator: %d SIGKILLs, %d mid-stream, over %zu messages in %lld s; retention "
                  "dropped %lld consumed ones (seed %u)\n",
                  kills, mid, f->nmsgs, (long long)(tm_time_mono_ms() - t0) / 1000,
                  (long long)dropped, seed);
    assert_true(mid >= 10);
    wait_caught_up(f, 120);
    check_truth(f);
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
}

/*
 * Redis stopped under the aggregator for a while, then started again: flushes fail,
 * consumption pauses (/healthz answers 503, no offset moves), and once Redis answers again
 * (empty: the test server has no persistence) the aggregator re-reads the stored offsets
 * (none), consumes from the beginning and the values are exact again. The lag it reports
 * follows: 0 when caught up, then exactly the messages produced while Redis was down (the
 * paused partitions fetch nothing: their watermarks are asked of the broker), 0 again.
 */
static void test_aggregator_redis_restart(void **state)
{
    struct fixture *f = *state;
    struct timeval tv = {5, 0};
    size_t half;

    make_input(f, 4000);
    compute_truth(f);
    half = f->nmsgs / 2;
    produce(f, 0, half);
    start_aggregator(f);
    for (int i = 0; i < 300 && stored_total(f) < (long long)half; i++)
        usleep(100000);
    assert_int_equal(stored_total(f), (long long)half);
    assert_int_equal(healthz(f), 200);
    wait_lag(f, 0, 10);
    assert_int_equal(lag_series(f->admin), 2 * PARTITIONS); /* events and heartbeats */
    redisFree(f->c);
    f->c = NULL;
    assert_int_equal(tm_harness_stop(f->redis.pid, 10000), 0); /* down until the restart */
    f->redis.pid = -1;
    produce(f, half, f->nmsgs);
    wait_healthz(f, 503, 30); /* its next flush failed: paused */
    sleep(2);                 /* retrying with backoff meanwhile */
    assert_int_equal(healthz(f), 503);
    wait_lag(f, (long long)(f->nmsgs - half), 30);
    assert_int_equal(tm_harness_redis_restart(&f->redis), 0);
    f->c = redisConnectWithTimeout("127.0.0.1", f->redis.port, tv);
    assert_non_null(f->c);
    assert_int_equal(f->c->err, 0);
    redisSetTimeout(f->c, tv);
    wait_caught_up(f, 120);
    wait_healthz(f, 200, 30);
    wait_lag(f, 0, 10);
    check_truth(f);
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
}

/*
 * Two members of one group share the partitions; one is killed mid-stream. The other
 * takes its partitions over (after the session timeout) from the offsets in Redis, and
 * the values are still exact. Each member reports the lag of the partitions it owns: the
 * first, which had them all until the second joined, no longer reports those it gave up.
 */
static void test_aggregator_two_members_one_killed(void **state)
{
    struct fixture *f = *state;
    pid_t first;
    char first_admin[sizeof(f->admin)];
    long long before;
    int a = 0, b = 0;

    make_input(f, 8000);
    compute_truth(f);
    start_aggregator(f);
    first = f->agg;
    snprintf(first_admin, sizeof(first_admin), "%s", f->admin);
    start_aggregator(f);
    produce(f, 0, f->nmsgs / 2);
    before = stored_total(f);
    for (int i = 0; i < 300 && stored_total(f) == before; i++)
        usleep(100000);
    for (int i = 0; i < 300; i++, usleep(100000)) {
        a = lag_series(first_admin);
        b = lag_series(f->admin);
        if (a > 0 && b > 0 && a + b == 2 * PARTITIONS)
            break;
    }
    if (a <= 0 || b <= 0 || a + b != 2 * PARTITIONS)
        fail_msg("lag series: %d and %d, %d partitions in all expected", a, b, 2 * PARTITIONS);
    assert_int_equal(tm_harness_kill9(first), 0);
    produce(f, f->nmsgs / 2, f->nmsgs);
    wait_caught_up(f, 120);
    wait_lag(f, 0, 10);
    for (int i = 0; i < 300 && lag_series(f->admin) != 2 * PARTITIONS; i++)
        usleep(100000);
    assert_int_equal(lag_series(f->admin), 2 * PARTITIONS); /* it took the others over */
    check_truth(f);
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
}

/*
 * SIGTERM while the group is still assigning partitions to the stopped member must end in
 * a clean exit (0), not an abort: a second member is stopped at several moments right
 * after it joined a group whose first member keeps running, then, with the first member
 * SIGKILLed, a new member is stopped while the group still waits for the dead one's session
 * to expire (it has joined and waits for its assignment: the window in which librdkafka
 * 2.0's cooperative-sticky assignor used to assert). The values stay exact throughout.
 */
static void test_aggregator_sigterm_during_rebalance(void **state)
{
    static const useconds_t after_join_us[] = {200000, 700000, 1500000};
    struct fixture *f = *state;
    pid_t first;

    make_input(f, 2000);
    compute_truth(f);
    produce(f, 0, f->nmsgs / 2);
    start_aggregator(f);
    first = f->agg;
    for (int i = 0; i < 600 && stored_total(f) < (long long)(f->nmsgs / 2); i++)
        usleep(100000);
    assert_int_equal(stored_total(f), (long long)(f->nmsgs / 2)); /* the first holds them all */
    for (size_t i = 0; i < TM_ARRAY_LEN(after_join_us); i++) {
        start_aggregator(f);
        usleep(after_join_us[i]);
        if (tm_harness_stop(f->agg, 30000) != 0)
            fail_msg("a member stopped %u ms after joining did not exit 0",
                     (unsigned)(after_join_us[i] / 1000));
    }
    f->agg = first;
    assert_int_equal(tm_harness_kill9(f->agg), 0);
    start_aggregator(f);
    usleep(2500000); /* joined; the dead member's session (3 s) has not expired yet */
    assert_int_equal(tm_harness_stop(f->agg, 30000), 0);
    start_aggregator(f);
    produce(f, f->nmsgs / 2, f->nmsgs);
    wait_caught_up(f, 120);
    check_truth(f);
    assert_int_equal(tm_harness_stop(f->agg, 15000), 0);
    f->agg = -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aggregator_exact_counts_and_clean_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_sigkill_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_two_members_one_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregator_sigterm_during_rebalance, setup, teardown),
    };

    return cmocka_run_group_tests_name("aggregator", tests, NULL, NULL);
}
