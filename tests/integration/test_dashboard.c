/*
 * test_dashboard.c - tm-dashboard against the real pipeline on loopback: tm-devkafka,
 * redis-server, tm-aggregator (which fills Redis) and tm-collector (HTTP ingest for the
 * live-feed check), all started on ports picked at run time.
 *
 * The group setup produces nine days of stamped events, ending a minute ago, for five
 * sectors and four regions straight into tm.events.v1 (in time order per partition, so
 * none is late), plus agent heartbeats, and waits until the aggregator has stored every
 * partition's end offset. The test computes every expected number on its own from the
 * same list (window labels, sums, serious counts, rolling sums from each sector's newest
 * event, distinct sources) and the API must return exactly those. What the aggregator
 * derives by formula (trend, risk score) is compared with what Redis holds.
 *
 * Then: parameter errors (400 naming the parameter), 401/404/405, tokens by bearer and by
 * the login cookie, the security headers, the static web root (a throwaway one in a temp
 * dir), Server-Sent Events (an event posted to the collector reaches the stream as
 * update + feed within 2 s; the max_streams cap), Redis stopped (503, /healthz 503) and
 * back (200), SIGHUP reloading the tokens, TLS, and a clean SIGTERM exit.
 *
 * Volume: ~1,200 events, far below tm-devkafka's ~5 MB per partition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"

#define PARTITIONS 3
#define GROUP "tm-dash-test"
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define SPREAD_EVENTS 900
#define RECENT_EVENTS 250
#define TOKEN "dashboard-test-token-0123456789"
#define TOKEN2 "second-token-abcdefghijklmnop"
#define INGEST_TOKEN "collector-ingest-token-42"
#define MAX_STREAMS 3

static const char *const sectors[] = {"energy", "drinking-water", "local-government", "health",
                                      "banking"};
#define NSECTORS (sizeof(sectors) / sizeof(sectors[0]))
static const char *const regions[] = {"UA-30", "UA-32", "UA-46", "UA-51"};
static const char *const categories[] = {"phishing", "malware", "bruteforce", "ddos", "scan"};
static const char *const band_names[] = {"low", "medium", "high", "critical"};
static const char *const bands[] = {"low",    "low",  "low",  "medium",   "medium",
                                    "medium", "high", "high", "critical", "critical"};

struct fixture {
    struct tm_harness_redis redis;
    struct tm_harness_kafka kafka;
    struct tm_collector_proc col;
    bool col_up;
    redisContext *c;
    pid_t agg, dash;
    char dir[256];
    char agg_conf[300], dash_conf[300], tokens_file[300], web[300];
    char http[64], admin[64];
    int64_t now;
    struct tm_event *ev;
    size_t nev;
    json_t *truth; /* "s:{sector}:{h|d|m}:{label}" / "n:..." / "r:{region}:d:{label}" -> fields */
    json_t *top;   /* "{sector}" -> {src: events} for today */
    json_t *srcs;  /* "{sector}" / "n" -> {src: true} for today */
    json_t *ops;   /* "{sector}" -> {operator: true} for today */
    json_t *feed;  /* array of event ids with severity >= 7 */
    int64_t anchor[NSECTORS];
};

static struct fixture *F;

/* ---- a small HTTP client ----------------------------------------------------------- */

struct resp {
    int status;
    char *head; /* status line and headers */
    char *body;
    size_t body_len;
};

static void resp_free(struct resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int connect_to(const char *addr)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa;
    int fd;

    if (colon == NULL)
        return -1;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends one HTTP/1.0 request and reads the whole answer (10 s at most). Returns 0 or -1. */
static int http_req(const char *addr, const char *method, const char *path, const char *headers,
                    const char *body, struct resp *r)
{
    char req[8192];
    size_t blen = body != NULL ? strlen(body) : 0, len = 0, cap = 65536;
    char *buf = malloc(cap);
    int fd = connect_to(addr), n;
    int64_t deadline = tm_time_mono_ms() + 10000;
    char *sep;

    memset(r, 0, sizeof(*r));
    if (fd < 0 || buf == NULL)
        goto fail;
    n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: %s\r\n%sContent-Length: %zu\r\n\r\n",
                 method, path, addr, headers != NULL ? headers : "", blen);
    if (send_all(fd, req, (size_t)n) != 0 || (blen > 0 && send_all(fd, body, blen) != 0))
        goto fail;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t got;
        int64_t left = deadline - tm_time_mono_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            goto fail;
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        got = recv(fd, buf + len, cap - len - 1, 0);
        if (got < 0)
            goto fail;
        if (got == 0)
            break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fd);
    sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    r->head = strndup(buf, (size_t)(sep - buf) + 2);
    r->body_len = len - (size_t)(sep + 4 - buf);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return -1;
}

/* The value of header name (a static copy), or NULL. */
static const char *header(const struct resp *r, const char *name)
{
    static char v[1024];
    const char *p = r->head;
    size_t n = strlen(name);

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *s = p + n + 1;
            size_t l;
            s += strspn(s, " ");
            l = strcspn(s, "\r\n");
            snprintf(v, sizeof(v), "%.*s", (int)l, s);
            return v;
        }
    }
    return NULL;
}

#define AUTH "Authorization: Bearer " TOKEN "\r\n"

/* GET path with the token; the answer must have status want; returns its JSON body. */
static json_t *get_json(const char *path, int want)
{
    struct resp r;
    json_t *j;
    json_error_t e;

    assert_int_equal(http_req(F->http, "GET", path, AUTH, NULL, &r), 0);
    if (r.status != want)
        fail_msg("GET %s: status %d, expected %d: %s", path, r.status, want, r.body);
    assert_non_null(header(&r, "Content-Type"));
    assert_string_equal(header(&r, "Content-Type"), "application/json; charset=utf-8");
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    j = json_loads(r.body, 0, &e);
    if (j == NULL)
        fail_msg("GET %s: not JSON: %s", path, r.body);
    resp_free(&r);
    return j;
}

/* GET path with the token; status must be want and the error must mention needle. */
static void expect_error(const char *method, const char *path, const char *headers, int want,
                         const char *needle)
{
    struct resp r;
    json_t *j;

    assert_int_equal(http_req(F->http, method, path, headers, NULL, &r), 0);
    if (r.status != want)
        fail_msg("%s %s: status %d, expected %d: %s", method, path, r.status, want, r.body);
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_string(json_object_get(j, "error")));
    if (needle != NULL && strstr(json_string_value(json_object_get(j, "error")), needle) == NULL)
        fail_msg("%s %s: error '%s' does not mention '%s'", method, path,
                 json_string_value(json_object_get(j, "error")), needle);
    json_decref(j);
    resp_free(&r);
}

static void check_security_headers(const struct resp *r)
{
    const char *csp = header(r, "Content-Security-Policy");

    assert_non_null(csp);
    assert_non_null(strstr(csp, "default-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_non_null(strstr(csp, "script-src 'self'"));
    assert_string_equal(header(r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(header(r, "Referrer-Policy"), "no-referrer");
}

/* ---- the input and its truth ------------------------------------------------------- */

static void label(int64_t ts, char res, char *out, size_t len)
{
    time_t secs = (time_t)(ts / 1000);
    struct tm tm;

    assert_non_null(gmtime_r(&secs, &tm));
    strftime(out, len, res == 'm' ? "%Y%m%d%H%M" : res == 'h' ? "%Y%m%d%H" : "%Y%m%d", &tm);
}

static void bump(json_t *o, const char *key, const char *field, long long v)
{
    json_t *h = json_object_get(o, key);
    json_t *cur;

    if (h == NULL) {
        h = json_object();
        json_object_set_new(o, key, h);
    }
    cur = json_object_get(h, field);
    json_object_set_new(h, field, json_integer((cur != NULL ? json_integer_value(cur) : 0) + v));
}

static long long truth(const char *key, const char *field)
{
    json_t *v = json_object_get(json_object_get(F->truth, key), field);
    return v != NULL ? json_integer_value(v) : 0;
}

static void count_window(const char *key, const struct tm_event *e)
{
    char f[64];

    bump(F->truth, key, "events", 1);
    bump(F->truth, key, "count", e->count);
    bump(F->truth, key, "serious", e->severity >= 7);
    snprintf(f, sizeof(f), "cat:%s", e->category);
    bump(F->truth, key, f, 1);
    snprintf(f, sizeof(f), "sev:%s", bands[e->severity - 1]);
    bump(F->truth, key, f, 1);
    if (e->attack.technique[0] != '\0') {
        snprintf(f, sizeof(f), "tech:%s", e->attack.technique);
        bump(F->truth, key, f, 1);
        snprintf(f, sizeof(f), "tac:%s", e->attack.tactic);
        bump(F->truth, key, f, 1);
    }
}

static int sector_index(const char *s)
{
    for (size_t i = 0; i < NSECTORS; i++)
        if (strcmp(sectors[i], s) == 0)
            return (int)i;
    return -1;
}

/* Nine days of events up to a minute ago, then a denser last two hours. */
static void make_input(void)
{
    int64_t start = F->now - 9 * DAY_MS, seq = 100;
    size_t n = SPREAD_EVENTS + RECENT_EVENTS;
    char today[16], key[128], l[16];

    F->ev = calloc(n, sizeof(*F->ev));
    assert_non_null(F->ev);
    label(F->now, 'd', today, sizeof(today));
    for (size_t i = 0; i < n; i++) {
        struct tm_event *e = &F->ev[F->nev++];
        int64_t ts = i < SPREAD_EVENTS
                         ? start + (int64_t)i * (9 * DAY_MS - 2 * HOUR_MS) / SPREAD_EVENTS
                         : F->now - 2 * HOUR_MS +
                               (int64_t)(i - SPREAD_EVENTS) * (2 * HOUR_MS - 60000) / RECENT_EVENTS;
        const char *sector = sectors[(i * 7 + i / 5) % NSECTORS];

        tm_event_init(e);
        snprintf(e->id, sizeof(e->id), "DASH%06zu", i);
        e->ts = ts;
        e->received = ts + 200;
        snprintf(e->operator_id, sizeof(e->operator_id), "op-%zu", i % 3);
        snprintf(e->sector, sizeof(e->sector), "%s", sector);
        snprintf(e->region, sizeof(e->region), "%s", regions[(i / 3) % 4]);
        if (i % 4 == 1) {
            snprintf(e->agent, sizeof(e->agent), "agent-live");
            snprintf(e->operator_id, sizeof(e->operator_id), "op-agents");
            seq += i % 50 == 1 ? 2 : 1;
            e->seq = seq;
        }
        snprintf(e->category, sizeof(e->category), "%s", categories[(i / 2) % 5]);
        e->severity = 1 + (int)((i * 7) % 10);
        if (i % 4 != 0) {
            snprintf(e->attack.technique, sizeof(e->attack.technique), "%s",
                     i % 2 ? "T1110" : "T1566");
            snprintf(e->attack.tactic, sizeof(e->attack.tactic), "%s",
                     i % 2 ? "credential-access" : "initial-access");
        }
        snprintf(e->src.ip, sizeof(e->src.ip), "198.51.100.%zu", (i * i) % 23);
        e->count = 1 + (int64_t)(i % 5);
        snprintf(e->summary, sizeof(e->summary), "dashboard test event %zu", i);
    }
    /* the truth */
    F->truth = json_object();
    F->top = json_object();
    F->srcs = json_object();
    F->ops = json_object();
    F->feed = json_array();
    for (size_t i = 0; i < F->nev; i++) {
        const struct tm_event *e = &F->ev[i];
        int s = sector_index(e->sector);
        const char res[] = {'m', 'h', 'd'};

        for (size_t r = 0; r < sizeof(res); r++) {
            label(e->ts, res[r], l, sizeof(l));
            snprintf(key, sizeof(key), "s:%s:%c:%s", e->sector, res[r], l);
            count_window(key, e);
            snprintf(key, sizeof(key), "n:%c:%s", res[r], l);
            count_window(key, e);
        }
        label(e->ts, 'd', l, sizeof(l));
        snprintf(key, sizeof(key), "r:%s:d:%s", e->region, l);
        count_window(key, e);
        if (strcmp(l, today) == 0) {
            bump(F->top, e->sector, e->src.ip, 1);
            bump(F->srcs, e->sector, e->src.ip, 1);
            bump(F->srcs, "n", e->src.ip, 1);
            bump(F->ops, e->sector, e->operator_id, 1);
        }
        if (e->severity >= 7)
            json_array_append_new(F->feed, json_string(e->id));
        if (e->ts > F->anchor[s])
            F->anchor[s] = e->ts;
    }
}

static void produce_events(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;

    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", F->kafka.bootstrap, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "compression.type", "lz4", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    for (size_t i = 0; i < F->nev; i++) {
        const struct tm_event *e = &F->ev[i];
        size_t len;
        char *json = tm_event_encode(e, &len);
        rd_kafka_resp_err_t err;

        assert_non_null(json);
        do {
            err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("tm.events.v1"),
                                    RD_KAFKA_V_PARTITION(sector_index(e->sector) % PARTITIONS),
                                    RD_KAFKA_V_KEY(e->sector, strlen(e->sector)),
                                    RD_KAFKA_V_VALUE(json, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
        free(json);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

static void produce_heartbeat(const char *agent, int64_t received_ms, const char *version)
{
    char cmd[2048], ts[TM_TIME_LEN];

    assert_int_equal(tm_time_format(received_ms, ts, sizeof(ts)), 0);
    snprintf(cmd, sizeof(cmd),
             "printf '%%s\\n' '%s|{\"type\":\"tm.heartbeat\",\"schema\":1,\"agent\":\"%s\","
             "\"version\":\"%s\",\"ts\":\"%s\",\"uptime_s\":120,\"spool_events\":4,"
             "\"spool_bytes\":1200,\"lost_events\":1,\"next_seq\":77,\"last_error\":\"\","
             "\"operator\":\"op-agents\",\"sector\":\"drinking-water\",\"region\":\"UA-51\","
             "\"received\":\"%s\"}' | kcat -P -b %s -t tm.heartbeats -K'|'",
             agent, agent, version, ts, ts, F->kafka.bootstrap);
    assert_int_equal(tm_sh(cmd, 30000), 0);
}

static long long redis_int(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v = -1;

    va_start(ap, fmt);
    r = redisvCommand(F->c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

static void wait_aggregated(void)
{
    long long want[PARTITIONS] = {0};

    for (size_t i = 0; i < F->nev; i++)
        want[sector_index(F->ev[i].sector) % PARTITIONS]++;
    for (int t = 0; t < 600; t++) {
        bool done = true;
        for (int p = 0; p < PARTITIONS && done; p++)
            done = redis_int("HGET tm:offset:%s:tm.events.v1:%d next", GROUP, p) == want[p];
        if (done && redis_int("EXISTS tm:agent:op-agents:agent-quiet") == 1 &&
            redis_int("ZCARD tm:agents:lastseen") == 3)
            return;
        usleep(100000);
    }
    fail_msg("the aggregator did not take in the input within 60 s");
}

/* ---- processes --------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static pid_t start_dashboard(const char *conf, char *http, char *admin)
{
    char bin[512], redis[64], line[64];
    char *argv[] = {bin,           "-c",      (char *)conf,  "--redis", redis,  "--http",
                    "127.0.0.1:0", "--admin", "127.0.0.1:0", "--web",   F->web, NULL};
    int fd = -1;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/tm-dashboard", tm_harness_build_dir());
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", F->redis.port);
    pid = tm_harness_spawn(argv, &fd);
    assert_true(pid > 0);
    assert_true(tm_harness_read_line(fd, line, sizeof(line), 10000) > 0);
    assert_true(strncmp(line, "listening http ", 15) == 0);
    tm_strlcpy(http, line + 15, 64);
    assert_true(tm_harness_read_line(fd, line, sizeof(line), 10000) > 0);
    assert_true(strncmp(line, "listening admin ", 16) == 0);
    tm_strlcpy(admin, line + 16, 64);
    close(fd);
    return pid;
}

static void wait_api_status(int want, int timeout_ms)
{
    int64_t deadline = tm_time_mono_ms() + timeout_ms;
    int last = -1;

    while (tm_time_mono_ms() < deadline) {
        struct resp r;
        if (http_req(F->http, "GET", "/api/overview", AUTH, NULL, &r) == 0) {
            last = r.status;
            resp_free(&r);
            if (last == want)
                return;
        }
        usleep(100000);
    }
    fail_msg("/api/overview: status %d, expected %d within %d ms", last, want, timeout_ms);
}

static void sha256_hex(const char *s, char *out)
{
    unsigned char d[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)s, strlen(s), d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int group_setup(void **state)
{
    char path[1024], text[2048], hash[65], dash_admin[64];
    struct timeval tv = {5, 0};
    int64_t to_midnight;

    F = calloc(1, sizeof(*F));
    if (F == NULL)
        return -1;
    *state = F;
    F->agg = F->dash = -1;
    /* Expected "today" figures assume the UTC day does not change during the run. */
    to_midnight = DAY_MS - tm_time_now_ms() % DAY_MS;
    if (to_midnight < 5 * 60000)
        sleep((unsigned)(to_midnight / 1000 + 5));
    F->now = tm_time_now_ms();
    snprintf(F->dir, sizeof(F->dir), "/tmp/tm-dash-test-XXXXXX");
    if (mkdtemp(F->dir) == NULL)
        return -1;
    if (tm_harness_redis_start(&F->redis) != 0 ||
        tm_harness_kafka_start(&F->kafka, 1, PARTITIONS) != 0)
        return -1;
    F->c = redisConnectWithTimeout("127.0.0.1", F->redis.port, tv);
    if (F->c == NULL || F->c->err)
        return -1;
    redisSetTimeout(F->c, tv);

    /* a throwaway web root: the real page is not this test's business */
    snprintf(F->web, sizeof(F->web), "%s/web", F->dir);
    snprintf(path, sizeof(path), "mkdir -p '%s/sub' '%s/.git' && ln -s /etc/passwd '%s/passwd.js'",
             F->web, F->web, F->web);
    if (tm_sh(path, 5000) != 0)
        return -1;
    {
        static const char *const files[][2] = {
            {"index.html", "<!DOCTYPE html><title>t</title>index\n"},
            {"app.js", "console.log('app');\n"},
            {"style.css", "body{}\n"},
            {"logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n"},
            {"img.png", "\x89PNG\r\n"},
            {"favicon.ico", "ico"},
            {"sub/deep.js", "deep();\n"},
            {"notes.txt", "not served\n"},
            {".git/config.js", "hidden\n"},
        };
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            snprintf(path, sizeof(path), "%s/%s", F->web, files[i][0]);
            write_file(path, files[i][1]);
        }
    }

    /* the collector, for the live feed: one operator with an HTTP token */
    sha256_hex(INGEST_TOKEN, hash);
    snprintf(path, sizeof(path), "%s/identities.ini", F->dir);
    snprintf(text, sizeof(text),
             "[operator.op-sse]\nsector = energy\nregion = UA-30\ntokens_sha256 = %s\n", hash);
    write_file(path, text);
    snprintf(text, sizeof(text), "[identity]\nmap = %s\n[kafka]\nlinger = 2ms\n", path);
    if (tm_collector_start(&F->col, F->kafka.bootstrap, text) != 0)
        return -1;
    F->col_up = true;

    /* the aggregator */
    snprintf(F->agg_conf, sizeof(F->agg_conf), "%s/agg.ini", F->dir);
    write_file(F->agg_conf, "[aggregator]\nflush_interval = 100ms\nflush_events = 500\n"
                            "[kafka]\nsession_timeout = 3s\n");
    {
        char bin[512], redis[64], line[256];
        char *argv[] = {bin,   "-c",      F->agg_conf, "--kafka", F->kafka.bootstrap, "--redis",
                        redis, "--group", GROUP,       "--admin", "127.0.0.1:0",      NULL};
        int fd = -1;
        snprintf(bin, sizeof(bin), "%s/tm-aggregator", tm_harness_build_dir());
        snprintf(redis, sizeof(redis), "127.0.0.1:%d", F->redis.port);
        F->agg = tm_harness_spawn(argv, &fd);
        if (F->agg < 0 || tm_harness_read_line(fd, line, sizeof(line), 10000) <= 0)
            return -1;
        close(fd);
    }

    /* the dashboard: token from the file, cache off so each answer reads Redis */
    snprintf(F->tokens_file, sizeof(F->tokens_file), "%s/tokens", F->dir);
    write_file(F->tokens_file, "# analysts\nanalyst:" TOKEN "\n");
    chmod(F->tokens_file, 0600);
    snprintf(F->dash_conf, sizeof(F->dash_conf), "%s/dash.ini", F->dir);
    snprintf(text, sizeof(text),
             "[dashboard]\ncache_ttl = 0\nmax_streams = %d\nmax_inflight = 4\nsilent_after = 10m\n"
             "[redis]\ntimeout = 2s\nbackoff_max = 500ms\n[auth]\ntokens_file = %s\n",
             MAX_STREAMS, F->tokens_file);
    write_file(F->dash_conf, text);
    F->dash = start_dashboard(F->dash_conf, F->http, dash_admin);
    snprintf(F->admin, sizeof(F->admin), "%s", dash_admin);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[400];

    (void)state;
    if (F == NULL)
        return 0;
    if (F->dash > 0)
        tm_harness_stop(F->dash, 10000);
    if (F->agg > 0)
        tm_harness_stop(F->agg, 10000);
    if (F->col_up)
        tm_collector_stop(&F->col);
    if (F->c != NULL)
        redisFree(F->c);
    tm_harness_kafka_stop(&F->kafka);
    tm_harness_redis_stop(&F->redis);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F->dir);
    tm_sh(cmd, 10000);
    json_decref(F->truth);
    json_decref(F->top);
    json_decref(F->srcs);
    json_decref(F->ops);
    json_decref(F->feed);
    free(F->ev);
    free(F);
    F = NULL;
    return 0;
}

/* ---- tests ------------------------------------------------------------------------- */

/* Fills Redis through the aggregator; the first test so the others can read. */
static void test_dashboard_fill(void **state)
{
    (void)state;
    make_input();
    produce_events();
    produce_heartbeat("agent-quiet", F->now - 3600000, "0.0.9");
    produce_heartbeat("agent-live", F->now - 5000, "0.1.0");
    produce_heartbeat("agent-other", F->now - 20000, "0.1.0");
    wait_aggregated();
}

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", k);
    return (long long)json_integer_value(v);
}

/* Sum of a truth field over the hour or day windows of [from, to] (labels by step). */
static long long roll_sum(const char *prefix, int64_t anchor, char res, int n, const char *field)
{
    long long sum = 0;
    char key[256], l[16];

    for (int i = 0; i < n; i++) {
        label(anchor - (int64_t)i * (res == 'h' ? HOUR_MS : DAY_MS), res, l, sizeof(l));
        snprintf(key, sizeof(key), "%s:%c:%s", prefix, res, l);
        sum += truth(key, field);
    }
    return sum;
}

static void check_trend(json_t *t, const char *key)
{
    redisReply *r = redisCommand(F->c, "HMGET %s baseline sd z anomaly", key);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    if (r->element[0]->type == REDIS_REPLY_NIL) {
        assert_true(json_is_null(t));
    } else {
        assert_true(json_is_object(t));
        assert_true(fabs(json_number_value(json_object_get(t, "baseline")) -
                         strtod(r->element[0]->str, NULL)) < 1e-6);
        assert_true(fabs(json_number_value(json_object_get(t, "sd")) -
                         strtod(r->element[1]->str, NULL)) < 1e-6);
        assert_true(fabs(json_number_value(json_object_get(t, "z")) -
                         strtod(r->element[2]->str, NULL)) < 1e-6);
        assert_int_equal(json_is_true(json_object_get(t, "anomaly")),
                         strcmp(r->element[3]->str, "1") == 0);
    }
    freeReplyObject(r);
}

static void check_overview(const char *range)
{
    char path[64], day[16], key[128];
    json_t *o, *labels, *n, *list;
    char res = strcmp(range, "24h") == 0 ? 'h' : 'd';
    size_t want_labels = res == 'h' ? 24 : strcmp(range, "7d") == 0 ? 7 : 30;
    redisReply *risk;
    size_t ranked = 0;

    snprintf(path, sizeof(path), "/api/overview?range=%s", range);
    o = get_json(path, 200);
    labels = json_object_get(o, "labels");
    assert_int_equal(json_array_size(labels), want_labels);
    assert_string_equal(json_string_value(json_object_get(o, "range")), range);
    snprintf(day, sizeof(day), "%s", json_string_value(json_object_get(o, "day")));
    label(F->now, 'd', key, sizeof(key));
    assert_string_equal(day, key);
    if (res == 'd')
        assert_string_equal(json_string_value(json_array_get(labels, want_labels - 1)), day);
    n = json_object_get(o, "national");
    snprintf(key, sizeof(key), "n:d:%s", day);
    assert_int_equal(jint(n, "today"), truth(key, "events"));
    assert_true(jint(n, "today") > 0);
    assert_int_equal(jint(n, "serious_today"), truth(key, "serious"));
    assert_int_equal(jint(n, "sources_today"), json_object_size(json_object_get(F->srcs, "n")));
    for (size_t i = 0; i < want_labels; i++) {
        snprintf(key, sizeof(key), "n:%c:%s", res, json_string_value(json_array_get(labels, i)));
        assert_int_equal(json_integer_value(json_array_get(json_object_get(n, "series"), i)),
                         truth(key, "events"));
    }
    check_trend(json_object_get(n, "trend"), "tm:n:trend");

    /* sectors: every one of the vocabulary, ranked ones first in tm:risk order */
    list = json_object_get(o, "sectors");
    assert_int_equal(json_array_size(list), 24);
    risk = redisCommand(F->c, "ZREVRANGE tm:risk 0 -1 WITHSCORES");
    assert_non_null(risk);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *s = json_array_get(list, i);
        const char *id = json_string_value(json_object_get(s, "sector"));
        int si = sector_index(id);
        long long rank = jint(s, "rank");
        char prefix[64];

        if (i < risk->elements / 2) {
            assert_string_equal(id, risk->element[2 * i]->str);
            assert_int_equal(rank, (long long)i + 1);
            assert_true(fabs(json_number_value(json_object_get(s, "risk")) -
                             strtod(risk->element[2 * i + 1]->str, NULL)) < 1e-6);
            ranked++;
        } else {
            assert_int_equal(rank, 0);
        }
        snprintf(key, sizeof(key), "s:%s:d:%s", id, day);
        assert_int_equal(jint(s, "today"), truth(key, "events"));
        assert_int_equal(jint(s, "serious_today"), truth(key, "serious"));
        for (size_t j = 0; j < want_labels; j++) {
            snprintf(key, sizeof(key), "s:%s:%c:%s", id, res,
                     json_string_value(json_array_get(labels, j)));
            assert_int_equal(json_integer_value(json_array_get(json_object_get(s, "series"), j)),
                             truth(key, "events"));
        }
        snprintf(prefix, sizeof(prefix), "s:%s", id);
        if (si >= 0) {
            assert_int_equal(jint(s, "events_24h"),
                             roll_sum(prefix, F->anchor[si], 'h', 24, "events"));
            assert_int_equal(jint(s, "serious_24h"),
                             roll_sum(prefix, F->anchor[si], 'h', 24, "serious"));
            assert_int_equal(jint(s, "events_7d"),
                             roll_sum(prefix, F->anchor[si], 'd', 7, "events"));
            assert_int_equal(jint(s, "events_30d"),
                             roll_sum(prefix, F->anchor[si], 'd', 30, "events"));
            assert_true(jint(s, "events_30d") > 0);
        } else {
            assert_int_equal(jint(s, "events_30d"), 0);
            assert_true(json_is_null(json_object_get(s, "trend")));
        }
        snprintf(key, sizeof(key), "tm:s:%s:trend", id);
        check_trend(json_object_get(s, "trend"), key);
    }
    assert_int_equal(ranked, NSECTORS);
    /* unranked sectors follow by name */
    for (size_t i = ranked + 1; i < json_array_size(list); i++)
        assert_true(
            strcmp(json_string_value(json_object_get(json_array_get(list, i - 1), "sector")),
                   json_string_value(json_object_get(json_array_get(list, i), "sector"))) < 0);
    freeReplyObject(risk);

    /* regions with events today, most first */
    list = json_object_get(o, "regions");
    {
        size_t want = 0;
        long long prev = LLONG_MAX;
        for (size_t i = 0; i < 4; i++) {
            snprintf(key, sizeof(key), "r:%s:d:%s", regions[i], day);
            want += truth(key, "events") > 0;
        }
        assert_int_equal(json_array_size(list), want);
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *r = json_array_get(list, i);
            snprintf(key, sizeof(key), "r:%s:d:%s", json_string_value(json_object_get(r, "region")),
                     day);
            assert_int_equal(jint(r, "today"), truth(key, "events"));
            assert_true(jint(r, "today") <= prev);
            prev = jint(r, "today");
        }
    }
    json_decref(o);
}

static void test_dashboard_overview(void **state)
{
    (void)state;
    check_overview("24h");
    check_overview("7d");
    check_overview("30d");
}

static void check_sector(const char *id, const char *range)
{
    char path[96], key[128], day[16];
    json_t *o, *labels, *series, *cats, *sev, *techs, *tacs, *top, *roll, *mins;
    json_t *want_cats = json_object(), *want_techs = json_object(), *want_tacs = json_object();
    char res = strcmp(range, "24h") == 0 ? 'h' : 'd';
    long long bandsum[4] = {0};
    int si = sector_index(id);
    const char *k;
    json_t *v;

    snprintf(path, sizeof(path), "/api/sector/%s?range=%s", id, range);
    o = get_json(path, 200);
    assert_string_equal(json_string_value(json_object_get(o, "sector")), id);
    snprintf(day, sizeof(day), "%s", json_string_value(json_object_get(o, "day")));
    labels = json_object_get(o, "labels");
    series = json_object_get(o, "series");
    for (size_t i = 0; i < json_array_size(labels); i++) {
        json_t *h;
        snprintf(key, sizeof(key), "s:%s:%c:%s", id, res,
                 json_string_value(json_array_get(labels, i)));
        assert_int_equal(json_integer_value(json_array_get(json_object_get(series, "events"), i)),
                         truth(key, "events"));
        assert_int_equal(json_integer_value(json_array_get(json_object_get(series, "count"), i)),
                         truth(key, "count"));
        assert_int_equal(json_integer_value(json_array_get(json_object_get(series, "serious"), i)),
                         truth(key, "serious"));
        h = json_object_get(F->truth, key);
        json_object_foreach(h, k, v)
        {
            long long n = json_integer_value(v);
            if (strncmp(k, "cat:", 4) == 0)
                bump(want_cats, "x", k + 4, n);
            else if (strncmp(k, "tech:", 5) == 0)
                bump(want_techs, "x", k + 5, n);
            else if (strncmp(k, "tac:", 4) == 0)
                bump(want_tacs, "x", k + 4, n);
            else if (strncmp(k, "sev:", 4) == 0)
                for (int b = 0; b < 4; b++)
                    if (strcmp(k + 4, band_names[b]) == 0)
                        bandsum[b] += n;
        }
    }
    cats = json_object_get(o, "categories");
    sev = json_object_get(o, "severity");
    techs = json_object_get(o, "techniques");
    tacs = json_object_get(o, "tactics");
    assert_true(json_equal(cats, json_object_get(want_cats, "x")) ||
                (json_object_size(cats) == 0 && json_object_get(want_cats, "x") == NULL));
    assert_true(json_equal(techs, json_object_get(want_techs, "x")) ||
                (json_object_size(techs) == 0 && json_object_get(want_techs, "x") == NULL));
    assert_true(json_equal(tacs, json_object_get(want_tacs, "x")) ||
                (json_object_size(tacs) == 0 && json_object_get(want_tacs, "x") == NULL));
    assert_int_equal(jint(sev, "low"), bandsum[0]);
    assert_int_equal(jint(sev, "medium"), bandsum[1]);
    assert_int_equal(jint(sev, "high"), bandsum[2]);
    assert_int_equal(jint(sev, "critical"), bandsum[3]);

    /* the last 60 minutes */
    mins = json_object_get(o, "minutes");
    assert_int_equal(json_array_size(json_object_get(mins, "labels")), 60);
    for (size_t i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "s:%s:m:%s", id,
                 json_string_value(json_array_get(json_object_get(mins, "labels"), i)));
        assert_int_equal(json_integer_value(json_array_get(json_object_get(mins, "events"), i)),
                         truth(key, "events"));
    }

    /* top sources of today: the ten highest counts, each exact */
    top = json_object_get(o, "top_sources");
    {
        json_t *t = json_object_get(F->top, id);
        size_t want = json_object_size(t) < 10 ? json_object_size(t) : 10;
        long long prev = LLONG_MAX;
        assert_int_equal(json_array_size(top), want);
        for (size_t i = 0; i < json_array_size(top); i++) {
            json_t *e = json_array_get(top, i);
            json_t *cnt = json_object_get(t, json_string_value(json_object_get(e, "src")));
            assert_non_null(cnt);
            assert_int_equal(jint(e, "events"), json_integer_value(cnt));
            assert_true(jint(e, "events") <= prev);
            prev = jint(e, "events");
        }
        /* nothing left out beats the last one listed */
        json_object_foreach(t, k, v)
        {
            bool listed = false;
            for (size_t i = 0; i < json_array_size(top); i++)
                listed |=
                    strcmp(k, json_string_value(json_object_get(json_array_get(top, i), "src"))) ==
                    0;
            if (!listed)
                assert_true(json_integer_value(v) <= prev);
        }
    }
    assert_int_equal(jint(o, "sources_today"), json_object_size(json_object_get(F->srcs, id)));
    assert_int_equal(jint(o, "operators_today"), json_object_size(json_object_get(F->ops, id)));
    roll = json_object_get(o, "roll");
    snprintf(key, sizeof(key), "s:%s", id);
    assert_int_equal(jint(roll, "events_24h"), roll_sum(key, F->anchor[si], 'h', 24, "events"));
    assert_int_equal(jint(roll, "serious_7d"), roll_sum(key, F->anchor[si], 'd', 7, "serious"));
    assert_int_equal(jint(roll, "events_30d"), roll_sum(key, F->anchor[si], 'd', 30, "events"));
    snprintf(key, sizeof(key), "tm:s:%s:trend", id);
    check_trend(json_object_get(o, "trend"), key);
    assert_true(jint(o, "rank") >= 1 && jint(o, "rank") <= (long long)NSECTORS);
    json_decref(want_cats);
    json_decref(want_techs);
    json_decref(want_tacs);
    json_decref(o);
}

static void test_dashboard_sector(void **state)
{
    (void)state;
    check_sector("energy", "24h");
    check_sector("energy", "7d");
    check_sector("health", "30d");
    check_sector("banking", "24h");
    expect_error("GET", "/api/sector/atlantis", AUTH, 404, "atlantis");
    expect_error("GET", "/api/sector/energy?range=1y", AUTH, 400, "range");
    {
        json_t *o = get_json("/api/sector/space", 200); /* a quiet sector: zeros, no trend */
        assert_int_equal(jint(o, "rank"), 0);
        assert_true(json_is_null(json_object_get(o, "trend")));
        assert_int_equal(json_object_size(json_object_get(o, "categories")), 0);
        json_decref(o);
    }
}

/* The ids of a feed answer, checked newest first by stream id. */
static json_t *feed_ids(const char *path)
{
    json_t *o = get_json(path, 200), *items = json_object_get(o, "items"), *ids = json_array();
    char prev[64] = "";

    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        const char *sid = json_string_value(json_object_get(it, "stream_id"));
        unsigned long long a, b, c, d;
        assert_non_null(sid);
        if (prev[0] != '\0') {
            assert_int_equal(sscanf(prev, "%llu-%llu", &a, &b), 2);
            assert_int_equal(sscanf(sid, "%llu-%llu", &c, &d), 2);
            assert_true(a > c || (a == c && b > d));
        }
        snprintf(prev, sizeof(prev), "%s", sid);
        json_array_append(ids, json_object_get(it, "id"));
    }
    json_decref(o);
    return ids;
}

static bool feed_wanted(const struct tm_event *e, const char *sector, const char *region,
                        const char *cat, int minsev)
{
    return e->severity >= 7 && e->severity >= minsev &&
           (sector == NULL || !strcmp(e->sector, sector)) &&
           (region == NULL || !strcmp(e->region, region)) &&
           (cat == NULL || !strcmp(e->category, cat));
}

static void check_feed(const char *query, const char *sector, const char *region, const char *cat,
                       int minsev)
{
    char path[256];
    json_t *ids, *want = json_object();

    snprintf(path, sizeof(path), "/api/feed?limit=500%s", query);
    ids = feed_ids(path);
    for (size_t i = 0; i < F->nev; i++)
        if (feed_wanted(&F->ev[i], sector, region, cat, minsev))
            json_object_set_new(want, F->ev[i].id, json_true());
    if (json_array_size(ids) != json_object_size(want))
        fail_msg("GET %s: %zu items, expected %zu", path, json_array_size(ids),
                 json_object_size(want));
    for (size_t i = 0; i < json_array_size(ids); i++)
        assert_non_null(json_object_get(want, json_string_value(json_array_get(ids, i))));
    json_decref(ids);
    json_decref(want);
}

static void test_dashboard_feed(void **state)
{
    json_t *all, *five, *o, *it;

    (void)state;
    assert_true(json_array_size(F->feed) < 500);
    check_feed("", NULL, NULL, NULL, 1);
    check_feed("&sector=energy", "energy", NULL, NULL, 1);
    check_feed("&region=UA-46", NULL, "UA-46", NULL, 1);
    check_feed("&category=ddos&min_severity=9", NULL, NULL, "ddos", 9);
    check_feed("&sector=health&region=UA-30&category=phishing&min_severity=8", "health", "UA-30",
               "phishing", 8);
    /* limit: the newest N of the unfiltered list; default 50 */
    all = feed_ids("/api/feed?limit=500");
    five = feed_ids("/api/feed?limit=5");
    assert_int_equal(json_array_size(five), 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(json_equal(json_array_get(five, i), json_array_get(all, i)));
    json_decref(five);
    five = feed_ids("/api/feed");
    assert_int_equal(json_array_size(five), 50);
    json_decref(five);
    json_decref(all);
    /* an item carries every field of the entry */
    o = get_json("/api/feed?limit=1", 200);
    it = json_array_get(json_object_get(o, "items"), 0);
    for (size_t i = 0; i < F->nev; i++)
        if (strcmp(F->ev[i].id, json_string_value(json_object_get(it, "id"))) == 0) {
            char ts[TM_TIME_LEN];
            tm_time_format(F->ev[i].ts, ts, sizeof(ts));
            assert_string_equal(json_string_value(json_object_get(it, "ts")), ts);
            assert_string_equal(json_string_value(json_object_get(it, "sector")), F->ev[i].sector);
            assert_string_equal(json_string_value(json_object_get(it, "operator")),
                                F->ev[i].operator_id);
            assert_string_equal(json_string_value(json_object_get(it, "region")), F->ev[i].region);
            assert_string_equal(json_string_value(json_object_get(it, "category")),
                                F->ev[i].category);
            assert_int_equal(jint(it, "severity"), F->ev[i].severity);
            assert_string_equal(json_string_value(json_object_get(it, "technique")),
                                F->ev[i].attack.technique);
            assert_string_equal(json_string_value(json_object_get(it, "src")), F->ev[i].src.ip);
            assert_string_equal(json_string_value(json_object_get(it, "summary")),
                                F->ev[i].summary);
        }
    json_decref(o);
    /* parameters are checked against their vocabularies */
    expect_error("GET", "/api/feed?sector=atlantis", AUTH, 400, "sector");
    expect_error("GET", "/api/feed?region=UA-99", AUTH, 400, "region");
    expect_error("GET", "/api/feed?category=rumour", AUTH, 400, "category");
    expect_error("GET", "/api/feed?min_severity=0", AUTH, 400, "min_severity");
    expect_error("GET", "/api/feed?min_severity=11", AUTH, 400, "min_severity");
    expect_error("GET", "/api/feed?min_severity=abc", AUTH, 400, "min_severity");
    expect_error("GET", "/api/feed?limit=0", AUTH, 400, "limit");
    expect_error("GET", "/api/feed?limit=501", AUTH, 400, "limit");
    expect_error("GET", "/api/feed?sectr=energy", AUTH, 400, "sectr");
    expect_error("GET", "/api/feed?limit=5&limit=6", AUTH, 400, "limit");
    expect_error("GET", "/api/overview?range=90d", AUTH, 400, "range");
}

static void test_dashboard_agents(void **state)
{
    json_t *o, *list, *a;

    (void)state;
    o = get_json("/api/agents", 200);
    assert_int_equal(jint(o, "silent_after_ms"), 600000);
    list = json_object_get(o, "agents");
    assert_int_equal(json_array_size(list), 3);
    /* silent first, then the most recently seen */
    a = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(a, "agent")), "agent-quiet");
    assert_true(json_is_true(json_object_get(a, "silent")));
    assert_int_equal(jint(a, "last_seen"), F->now - 3600000);
    assert_true(jint(a, "age_s") >= 3600 && jint(a, "age_s") < 3900);
    assert_string_equal(json_string_value(json_object_get(a, "version")), "0.0.9");
    a = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(a, "agent")), "agent-live");
    assert_true(json_is_false(json_object_get(a, "silent")));
    assert_string_equal(json_string_value(json_object_get(a, "operator")), "op-agents");
    assert_string_equal(json_string_value(json_object_get(a, "sector")), "drinking-water");
    assert_string_equal(json_string_value(json_object_get(a, "region")), "UA-51");
    assert_int_equal(jint(a, "uptime_s"), 120);
    assert_int_equal(jint(a, "spool_events"), 4);
    assert_int_equal(jint(a, "spool_bytes"), 1200);
    assert_int_equal(jint(a, "agent_lost"), 1);
    assert_int_equal(jint(a, "seq_lost"), redis_int("HGET tm:agent:op-agents:agent-live seq_lost"));
    assert_true(jint(a, "seq_lost") > 0);
    a = json_array_get(list, 2);
    assert_string_equal(json_string_value(json_object_get(a, "agent")), "agent-other");
    json_decref(o);
}

static void test_dashboard_priorities(void **state)
{
    json_t *o, *items, *it;
    redisReply *r;

    (void)state;
    o = get_json("/api/priorities", 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 0);
    json_decref(o);
    r = redisCommand(F->c, "ZADD tm:priorities 12.5 N-17 3 N-2 7.25 N-9");
    freeReplyObject(r);
    r = redisCommand(F->c, "HSET tm:need:N-17 title %s sector energy kind edr", "EDR licences");
    freeReplyObject(r);
    r = redisCommand(F->c, "HSET tm:need:N-9 title %s sector health", "Backup");
    freeReplyObject(r);
    o = get_json("/api/priorities", 200);
    items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 3);
    it = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(it, "need")), "N-17");
    assert_true(fabs(json_number_value(json_object_get(it, "score")) - 12.5) < 1e-9);
    assert_string_equal(json_string_value(json_object_get(it, "title")), "EDR licences");
    assert_string_equal(json_string_value(json_object_get(it, "kind")), "edr");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "need")),
                        "N-9");
    it = json_array_get(items, 2);
    assert_string_equal(json_string_value(json_object_get(it, "need")), "N-2");
    assert_null(json_object_get(it, "title")); /* no hash: just id and score */
    json_decref(o);
}

static void test_dashboard_errors_and_headers(void **state)
{
    struct resp r;

    (void)state;
    expect_error("GET", "/api/nope", AUTH, 404, NULL);
    expect_error("GET", "/api/sector/", AUTH, 404, NULL);
    expect_error("POST", "/api/overview", AUTH, 405, NULL);
    expect_error("DELETE", "/api/feed", AUTH, 405, NULL);
    expect_error("PUT", "/index.html", NULL, 405, NULL);
    expect_error("GET", "/login", NULL, 405, NULL);
    assert_int_equal(http_req(F->http, "POST", "/api/agents", AUTH, NULL, &r), 0);
    assert_string_equal(header(&r, "Allow"), "GET, HEAD");
    check_security_headers(&r);
    resp_free(&r);
    /* HEAD: the headers of GET, no body */
    assert_int_equal(http_req(F->http, "HEAD", "/api/agents", AUTH, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    /* every answer carries the security headers */
    assert_int_equal(http_req(F->http, "GET", "/api/overview", AUTH, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    check_security_headers(&r);
    resp_free(&r);
    assert_int_equal(http_req(F->http, "GET", "/nothing.html", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    check_security_headers(&r);
    resp_free(&r);
}

static void test_dashboard_auth(void **state)
{
    struct resp r;
    char cookie[512], hdr[600];
    const char *sc;

    (void)state;
    /* no token, a wrong one, a wrong scheme */
    assert_int_equal(http_req(F->http, "GET", "/api/overview", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(header(&r, "WWW-Authenticate"), "Bearer"));
    check_security_headers(&r);
    resp_free(&r);
    expect_error("GET", "/api/feed", "Authorization: Bearer wrong-token-wrong-token\r\n", 401,
                 NULL);
    expect_error("GET", "/api/feed", "Authorization: Basic " TOKEN "\r\n", 401, NULL);
    expect_error("GET", "/api/stream", NULL, 401, NULL);
    expect_error("GET", "/api/agents", "Cookie: tm_session=analyst:99999999999:00\r\n", 401, NULL);

    /* the login form: a wrong token is 401, the right one 303 with the cookie */
    assert_int_equal(http_req(F->http, "POST", "/login",
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "Accept: text/html\r\n",
                              "token=nope", &r),
                     0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(header(&r, "Content-Type"), "text/html"));
    assert_null(header(&r, "Set-Cookie"));
    resp_free(&r);
    assert_int_equal(http_req(F->http, "POST", "/login",
                              "Content-Type: application/x-www-form-urlencoded\r\n", "token=nope",
                              &r),
                     0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "\"error\""));
    resp_free(&r);
    assert_int_equal(http_req(F->http, "POST", "/login",
                              "Content-Type: application/x-www-form-urlencoded\r\n", "token=" TOKEN,
                              &r),
                     0);
    assert_int_equal(r.status, 303);
    assert_string_equal(header(&r, "Location"), "/");
    sc = header(&r, "Set-Cookie");
    assert_non_null(sc);
    assert_non_null(strstr(sc, "HttpOnly"));
    assert_non_null(strstr(sc, "SameSite=Strict"));
    assert_non_null(strstr(sc, "Path=/"));
    assert_null(strstr(sc, "Secure")); /* plain HTTP */
    assert_null(strstr(sc, TOKEN));    /* the cookie is not the token */
    assert_true(strncmp(sc, "tm_session=", 11) == 0);
    snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(sc, ";"), sc);
    check_security_headers(&r);
    resp_free(&r);
    snprintf(hdr, sizeof(hdr), "Cookie: theme=dark; %s\r\n", cookie);
    {
        struct resp ok;
        assert_int_equal(http_req(F->http, "GET", "/api/agents", hdr, NULL, &ok), 0);
        assert_int_equal(ok.status, 200);
        resp_free(&ok);
    }
    /* a cookie with one digit of its signature changed is refused */
    cookie[strlen(cookie) - 1] = cookie[strlen(cookie) - 1] == '0' ? '1' : '0';
    snprintf(hdr, sizeof(hdr), "Cookie: %s\r\n", cookie);
    expect_error("GET", "/api/agents", hdr, 401, NULL);
    /* logout clears it */
    assert_int_equal(http_req(F->http, "POST", "/logout", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 303);
    assert_non_null(strstr(header(&r, "Set-Cookie"), "Max-Age=0"));
    resp_free(&r);
}

static void expect_static(const char *path, int status, const char *ctype, const char *body)
{
    struct resp r;

    assert_int_equal(http_req(F->http, "GET", path, NULL, NULL, &r), 0);
    if (r.status != status)
        fail_msg("GET %s: status %d, expected %d", path, r.status, status);
    check_security_headers(&r);
    if (ctype != NULL)
        assert_string_equal(header(&r, "Content-Type"), ctype);
    if (body != NULL)
        assert_string_equal(r.body, body);
    resp_free(&r);
}

static void test_dashboard_static(void **state)
{
    (void)state;
    expect_static("/", 200, "text/html; charset=utf-8", "<!DOCTYPE html><title>t</title>index\n");
    expect_static("/index.html", 200, "text/html; charset=utf-8", NULL);
    expect_static("/app.js", 200, "text/javascript; charset=utf-8", "console.log('app');\n");
    expect_static("/style.css", 200, "text/css; charset=utf-8", NULL);
    expect_static("/logo.svg", 200, "image/svg+xml", NULL);
    expect_static("/img.png", 200, "image/png", NULL);
    expect_static("/favicon.ico", 200, "image/x-icon", NULL);
    expect_static("/sub/deep.js", 200, "text/javascript; charset=utf-8", "deep();\n");
    expect_static("/sub%2fdeep.js", 200, NULL, NULL);
    expect_static("/notes.txt", 404, NULL, NULL); /* type not served */
    expect_static("/passwd.js", 404, NULL, NULL); /* a link out of the root */
    expect_static("/.git/config.js", 404, NULL, NULL);
    expect_static("/sub/../app.js", 404, NULL, NULL);
    expect_static("/..%2f..%2f..%2fetc%2fpasswd", 404, NULL, NULL);
    expect_static("/%2e%2e/web/app.js", 404, NULL, NULL);
    expect_static("/app.js%00.html", 404, NULL, NULL);
    expect_static("/sub/", 404, NULL, NULL);
    expect_static("/missing.js", 404, NULL, NULL);
}

/* Posts one event to the collector's HTTP ingest. */
static void ingest(const char *id, int severity)
{
    char body[1024], ts[TM_TIME_LEN];
    struct resp r;

    tm_time_format(tm_time_now_ms(), ts, sizeof(ts));
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"ts\":\"%s\",\"category\":\"ddos\",\"severity\":%d,"
             "\"src\":{\"ip\":\"203.0.113.99\"},\"summary\":\"live probe %s\"}\n",
             id, ts, severity, id);
    assert_int_equal(http_req(F->col.http, "POST", "/v1/events",
                              "Authorization: Bearer " INGEST_TOKEN "\r\n"
                              "Content-Type: application/x-ndjson\r\n",
                              body, &r),
                     0);
    if (r.status != 200)
        fail_msg("collector: status %d: %s", r.status, r.body);
    resp_free(&r);
}

/* Opens /api/stream; returns the socket after the 200 and its first comment. */
static int open_stream(int *status)
{
    char req[512], line[4096];
    int fd = connect_to(F->http), n;

    assert_true(fd >= 0);
    n = snprintf(req, sizeof(req), "GET /api/stream HTTP/1.0\r\nHost: x\r\n%s\r\n", AUTH);
    assert_int_equal(send_all(fd, req, (size_t)n), 0);
    assert_true(tm_harness_read_line(fd, line, sizeof(line), 5000) > 0);
    assert_int_equal(sscanf(line, "HTTP/1.%*d %d", status), 1);
    while (tm_harness_read_line(fd, line, sizeof(line), 5000) > 1) /* headers */
        if (strncasecmp(line, "Content-Type:", 13) == 0 && *status == 200)
            assert_non_null(strstr(line, "text/event-stream"));
    return fd;
}

static void test_dashboard_stream(void **state)
{
    char line[4096];
    int status, fd, extra[MAX_STREAMS];
    bool update = false, feed = false;
    int64_t t0, deadline;

    (void)state;
    fd = open_stream(&status);
    assert_int_equal(status, 200);
    usleep(200000); /* the dashboard learns the newest feed id */
    t0 = tm_time_mono_ms();
    ingest("SSE-PROBE-1", 9);
    deadline = t0 + 2000;
    while (!feed && tm_time_mono_ms() < deadline) {
        int64_t left = deadline - tm_time_mono_ms();
        if (tm_harness_read_line(fd, line, sizeof(line), (int)(left > 0 ? left : 1)) < 0)
            break;
        if (strcmp(line, "event: update") == 0) {
            update = true;
            assert_true(tm_harness_read_line(fd, line, sizeof(line), 1000) > 0);
            assert_true(strncmp(line, "data: {\"events\":", 16) == 0);
        } else if (strcmp(line, "event: feed") == 0) {
            assert_true(update); /* update first, then its feed entries */
            assert_true(tm_harness_read_line(fd, line, sizeof(line), 1000) > 0);
            assert_true(strncmp(line, "id: ", 4) == 0);
            assert_true(tm_harness_read_line(fd, line, sizeof(line), 1000) > 0);
            assert_true(strncmp(line, "data: {", 7) == 0);
            if (strstr(line, "\"SSE-PROBE-1\"") != NULL) {
                assert_non_null(strstr(line, "\"sector\":\"energy\""));
                assert_non_null(strstr(line, "\"operator\":\"op-sse\""));
                assert_non_null(strstr(line, "\"severity\":9"));
                feed = true;
            }
        }
    }
    print_message("dashboard: event to SSE feed in %lld ms\n", (long long)(tm_time_mono_ms() - t0));
    assert_true(update);
    assert_true(feed);

    /* max_streams: this one and two more fit, the next is refused */
    for (int i = 0; i < MAX_STREAMS - 1; i++) {
        extra[i] = open_stream(&status);
        assert_int_equal(status, 200);
    }
    extra[MAX_STREAMS - 1] = open_stream(&status);
    assert_int_equal(status, 503);
    for (int i = 0; i < MAX_STREAMS; i++)
        close(extra[i]);
    close(fd);
    /* the slots come back once the clients are gone */
    usleep(300000);
    fd = open_stream(&status);
    assert_int_equal(status, 200);
    close(fd);
}

static void test_dashboard_metrics(void **state)
{
    char *body = NULL;
    int status = 0;

    (void)state;
    assert_int_equal(tm_harness_http(F->admin, "GET", "/metrics", &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "tm_dashboard_requests_total{"));
    assert_non_null(strstr(body, "endpoint=\"overview\""));
    assert_non_null(strstr(body, "code=\"200\""));
    assert_non_null(strstr(body, "code=\"401\""));
    assert_non_null(strstr(body, "tm_dashboard_redis_up 1"));
    assert_non_null(strstr(body, "tm_dashboard_sse_clients"));
    assert_null(strstr(body, TOKEN));
    free(body);
    body = NULL;
    assert_int_equal(tm_harness_http(F->admin, "GET", "/healthz", &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    free(body);
}

/* Sends a request and leaves it waiting. Returns the socket. */
static int pending_request(const char *path)
{
    char req[512];
    int fd = connect_to(F->http), n;

    assert_true(fd >= 0);
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n%s\r\n", path, AUTH);
    assert_int_equal(send_all(fd, req, (size_t)n), 0);
    return fd;
}

/* The status of the answer waiting on fd (within timeout_ms), or -1. */
static int read_status(int fd, int timeout_ms)
{
    char line[256];
    int status = -1;

    if (tm_harness_read_line(fd, line, sizeof(line), timeout_ms) > 0)
        sscanf(line, "HTTP/1.%*d %d", &status);
    return status;
}

/*
 * Redis hangs (SIGSTOP): requests wait, at most max_inflight of them (the next is 503 at
 * once), clients that give up are forgotten, and past [redis] timeout the waiting ones
 * get 503; once Redis runs again the dashboard serves again.
 */
static void test_dashboard_redis_hung(void **state)
{
    int fds[4], fd;
    int64_t t0;

    (void)state;
    assert_int_equal(kill(F->redis.pid, SIGSTOP), 0);
    for (int i = 0; i < 4; i++)
        fds[i] = pending_request(i % 2 ? "/api/overview" : "/api/agents");
    usleep(300000);
    fd = pending_request("/api/feed");
    assert_int_equal(read_status(fd, 1000), 503); /* busy: not waiting for Redis */
    close(fd);
    close(fds[0]); /* two clients give up */
    close(fds[1]);
    t0 = tm_time_mono_ms();
    assert_int_equal(read_status(fds[2], 5000), 503);
    assert_int_equal(read_status(fds[3], 5000), 503);
    print_message("dashboard: hung redis answered 503 after %lld ms\n",
                  (long long)(tm_time_mono_ms() - t0));
    close(fds[2]);
    close(fds[3]);
    assert_int_equal(kill(F->redis.pid, SIGCONT), 0);
    wait_api_status(200, 10000);
}

static void test_dashboard_redis_outage(void **state)
{
    char *body = NULL;
    int status = 0, fd;
    json_t *o;

    (void)state;
    /* Redis stops: 503 with a reason, unhealthy, no new streams */
    assert_true(tm_harness_stop(F->redis.pid, 5000) >= 0);
    F->redis.pid = -1;
    redisFree(F->c);
    F->c = NULL;
    wait_api_status(503, 5000);
    expect_error("GET", "/api/feed", AUTH, 503, "redis");
    fd = open_stream(&status);
    assert_int_equal(status, 503);
    close(fd);
    assert_int_equal(tm_harness_http(F->admin, "GET", "/healthz", &status, &body, 5000), 0);
    assert_int_equal(status, 503);
    free(body);
    body = NULL;
    assert_int_equal(tm_harness_http(F->admin, "GET", "/metrics", &status, &body, 5000), 0);
    assert_non_null(strstr(body, "tm_dashboard_redis_up 0"));
    free(body);
    body = NULL;
    /* ... and is back (empty: no persistence): the dashboard serves again by itself */
    assert_int_equal(tm_harness_redis_restart(&F->redis), 0);
    wait_api_status(200, 10000);
    o = get_json("/api/agents", 200);
    json_decref(o);
    assert_int_equal(tm_harness_http(F->admin, "GET", "/healthz", &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    free(body);
}

/* Writes the tokens file and sends SIGHUP. */
static void reload_tokens(const char *text)
{
    write_file(F->tokens_file, text);
    assert_int_equal(kill(F->dash, SIGHUP), 0);
    usleep(500000);
}

static void expect_status(const char *path, const char *headers, int want)
{
    struct resp r;

    assert_int_equal(http_req(F->http, "GET", path, headers, NULL, &r), 0);
    assert_int_equal(r.status, want);
    resp_free(&r);
}

static void test_dashboard_sighup_tokens(void **state)
{
    (void)state;
    reload_tokens("analyst2:" TOKEN2 "\n");
    expect_error("GET", "/api/agents", AUTH, 401, NULL);
    expect_status("/api/agents", "Authorization: Bearer " TOKEN2 "\r\n", 200);
    /* a broken file keeps the tokens in force */
    reload_tokens("no colon here\n");
    expect_status("/api/agents", "Authorization: Bearer " TOKEN2 "\r\n", 200);
    reload_tokens("analyst:" TOKEN "\n");
}

static void test_dashboard_tls(void **state)
{
    char pki[400], conf[400], text[1200], http[64], admin[64], url[200], cacert[420];
    char *out = NULL;
    pid_t pid;
    char *curl_ok[] = {"curl", "-s", "-i", "--cacert", cacert, "-H", "Authorization: Bearer " TOKEN,
                       url,    NULL};
    char *curl_old[] = {"curl", "-s", "--cacert", cacert, "--tls-max", "1.1", url, NULL};
    char *curl_login[] = {"curl", "-s", "-i", "--cacert", cacert, "-d", "token=" TOKEN, url, NULL};

    (void)state;
    snprintf(pki, sizeof(pki), "%s/pki", F->dir);
    assert_int_equal(mkdir(pki, 0700), 0);
    assert_int_equal(tm_make_test_pki(pki), 0);
    snprintf(cacert, sizeof(cacert), "%s/ca.crt", pki);
    snprintf(conf, sizeof(conf), "%s/tls.ini", F->dir);
    snprintf(text, sizeof(text),
             "[auth]\ntokens = analyst:%s\n[tls]\ncert = %s/server.crt\nkey = %s/server.key\n",
             TOKEN, pki, pki);
    write_file(conf, text);
    pid = start_dashboard(conf, http, admin);
    snprintf(url, sizeof(url), "https://%s/api/agents", http);
    assert_int_equal(tm_harness_run(curl_ok, &out, NULL, 10000), 0);
    assert_true(strncmp(out, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(out, "Strict-Transport-Security"));
    assert_non_null(strstr(out, "\"agents\""));
    free(out);
    out = NULL;
    assert_true(tm_harness_run(curl_old, NULL, NULL, 10000) != 0); /* TLS 1.1 refused */
    snprintf(url, sizeof(url), "https://%s/login", http);
    assert_int_equal(tm_harness_run(curl_login, &out, NULL, 10000), 0);
    assert_true(strncmp(out, "HTTP/1.1 303", 12) == 0);
    assert_non_null(strstr(out, "; Secure"));
    free(out);
    assert_int_equal(tm_harness_stop(pid, 10000), 0);
}

static void test_dashboard_config_errors(void **state)
{
    char conf[400], bin[512];
    char *argv[] = {bin, "-c", conf, "--http", "0.0.0.0:0", NULL};
    char *argv2[] = {bin, "-c", conf, NULL};

    (void)state;
    snprintf(bin, sizeof(bin), "%s/tm-dashboard", tm_harness_build_dir());
    snprintf(conf, sizeof(conf), "%s/bad.ini", F->dir);
    /* auth = off is refused off loopback */
    write_file(conf, "[auth]\nauth = off\n");
    assert_int_equal(tm_harness_run(argv, NULL, NULL, 10000), 1);
    /* no token at all is refused */
    write_file(conf, "[dashboard]\nhttp = 127.0.0.1:0\nadmin = 127.0.0.1:0\n");
    assert_int_equal(tm_harness_run(argv2, NULL, NULL, 10000), 1);
}

static void test_dashboard_sigterm(void **state)
{
    (void)state;
    assert_int_equal(tm_harness_stop(F->dash, 10000), 0);
    F->dash = -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_fill),
        cmocka_unit_test(test_dashboard_overview),
        cmocka_unit_test(test_dashboard_sector),
        cmocka_unit_test(test_dashboard_feed),
        cmocka_unit_test(test_dashboard_agents),
        cmocka_unit_test(test_dashboard_priorities),
        cmocka_unit_test(test_dashboard_errors_and_headers),
        cmocka_unit_test(test_dashboard_auth),
        cmocka_unit_test(test_dashboard_static),
        cmocka_unit_test(test_dashboard_stream),
        cmocka_unit_test(test_dashboard_metrics),
        cmocka_unit_test(test_dashboard_tls),
        cmocka_unit_test(test_dashboard_config_errors),
        cmocka_unit_test(test_dashboard_redis_hung),
        cmocka_unit_test(test_dashboard_redis_outage),
        cmocka_unit_test(test_dashboard_sighup_tokens),
        cmocka_unit_test(test_dashboard_sigterm),
    };

    return cmocka_run_group_tests_name("dashboard", tests, group_setup, group_teardown);
}
