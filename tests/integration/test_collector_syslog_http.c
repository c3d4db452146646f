/*
 * test_collector_syslog_http.c - tm-collector's syslog and HTTP listeners with real
 * clients: util-linux `logger` (RFC 5424 and RFC 3164, TCP with octet counting and UDP),
 * raw CEF lines, and `curl` posting gzip'd NDJSON with bearer tokens; and syslog senders
 * over their operator's rate, over TCP (slowed down, nothing lost) and UDP (dropped and
 * counted). What landed in Kafka is read back with kcat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_event.h"

#define TOKEN "s3cret-token-kyiv"
#define REVOKED_TOKEN "lost-laptop-token"

static struct tm_harness_kafka kafka;
static struct tm_collector_proc col;
static char tmpdir[256];
static char marker[32];

static int setup(void **state)
{
    char cmd[1024], conf[2048], map[300];
    char *argv[] = {"sh", "-c", cmd, NULL};
    char *hash = NULL, *revoked = NULL;
    (void)state;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tm-sh-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(marker, sizeof(marker), "m%ld", (long)getpid());
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum | cut -d' ' -f1", TOKEN);
    if (tm_harness_run(argv, &hash, NULL, 10000) != 0)
        return -1;
    hash[strcspn(hash, "\n")] = '\0';
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum | cut -d' ' -f1", REVOKED_TOKEN);
    if (tm_harness_run(argv, &revoked, NULL, 10000) != 0)
        return -1;
    revoked[strcspn(revoked, "\n")] = '\0';
    snprintf(map, sizeof(map), "%s/identities.ini", tmpdir);
    /* The revoked token is also listed under the operator: the deny list wins. */
    snprintf(cmd, sizeof(cmd),
             "printf '[operator.ua-water-kyiv]\\nsector = drinking-water\\nregion = UA-30\\n"
             "tokens_sha256 = %s, %s\\n[revoked]\\ntokens_sha256 = %s\\n' > '%s'",
             hash, revoked, revoked, map);
    free(hash);
    free(revoked);
    if (tm_sh(cmd, 10000) != 0)
        return -1;
    snprintf(conf, sizeof(conf),
             "[identity]\nmap = %s\ndefault_operator = test-op\ndefault_sector = energy\n"
             "default_region = UA-32\n[http]\nmax_body = 64KiB\n[kafka]\nlinger = 2ms\n",
             map);
    if (tm_harness_kafka_start(&kafka, 1, 6) != 0)
        return -1;
    return tm_collector_start(&col, kafka.bootstrap, conf);
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    tm_collector_stop(&col);
    tm_harness_kafka_stop(&kafka);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    tm_sh(cmd, 10000);
    return 0;
}

/* Waits until tm.events.v1 holds n events whose summary or raw contains needle. */
static int wait_events(const char *needle, int n, struct tm_event *out, int max)
{
    for (int tries = 0; tries < 50; tries++) {
        struct tm_kmsgs msgs;
        int found = 0;

        assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
        for (size_t i = 0; i < msgs.n; i++) {
            struct tm_event e;
            char err[TM_ERR_LEN];
            if (strstr(msgs.v[i].payload, needle) == NULL)
                continue;
            assert_int_equal(tm_event_decode(&e, msgs.v[i].payload, strlen(msgs.v[i].payload),
                                             TM_EVENT_STAMPED, err),
                             TM_EVENT_OK);
            if (found < max)
                out[found] = e;
            found++;
        }
        tm_kmsgs_free(&msgs);
        if (found >= n)
            return found;
        usleep(200000);
    }
    return 0;
}

static void logger(const char *mode, const char *addr, const char *msg)
{
    char cmd[1024];
    const char *colon = strrchr(addr, ':');

    snprintf(cmd, sizeof(cmd), "logger %s -n 127.0.0.1 -P %s -t sshd '%s'", mode, colon + 1, msg);
    assert_int_equal(tm_sh(cmd, 10000), 0);
}

static void test_collector_syslog_rfc5424_tcp_octet_counting(void **state)
{
    static struct tm_event e[2];
    char msg[256];
    (void)state;

    snprintf(msg, sizeof(msg), "Failed password for root from 203.0.113.77 port 4242 ssh2 %s-a",
             marker);
    logger("--tcp --octet-count --rfc5424", col.syslog_tcp, msg);
    assert_int_equal(wait_events("203.0.113.77", 1, e, 2), 1);
    /* An sshd line through syslog: parsed as brute force, stamped with the default identity. */
    assert_string_equal(e[0].category, "bruteforce");
    assert_string_equal(e[0].attack.technique, "T1110");
    assert_string_equal(e[0].src.ip, "203.0.113.77");
    assert_string_equal(e[0].operator_id, "test-op");
    assert_string_equal(e[0].sector, "energy");
    assert_string_equal(e[0].region, "UA-32");
}

static void test_collector_syslog_rfc3164_tcp_and_udp(void **state)
{
    static struct tm_event e[4];
    char msg[256];
    (void)state;

    snprintf(msg, sizeof(msg), "Invalid user admin from 198.51.100.31 port 5555 %s-b", marker);
    logger("--tcp --rfc3164", col.syslog_tcp, msg);
    snprintf(msg, sizeof(msg), "Invalid user oracle from 198.51.100.32 port 5556 %s-c", marker);
    logger("-d --rfc3164", col.syslog_udp, msg);
    snprintf(msg, sizeof(msg), "Invalid user test from 198.51.100.33 port 5557 %s-d", marker);
    logger("-d --rfc5424", col.syslog_udp, msg);
    assert_int_equal(wait_events("198.51.100.31", 1, e, 4), 1);
    assert_string_equal(e[0].category, "bruteforce");
    assert_int_equal(wait_events("198.51.100.32", 1, e, 4), 1);
    assert_string_equal(e[0].src.ip, "198.51.100.32");
    assert_int_equal(wait_events("198.51.100.33", 1, e, 4), 1);
}

static void test_collector_syslog_cef(void **state)
{
    static struct tm_event e[2];
    char cmd[1024];
    const char *colon = strrchr(col.syslog_tcp, ':');
    (void)state;

    /* A CEF line framed by LF over TCP, as ArcSight-style appliances send it. */
    snprintf(cmd, sizeof(cmd),
             "printf '<134>Nov 23 07:22:05 fw01 CEF:0|Vendor|NGFW|1.0|4711|DDoS attack "
             "detected %s|9|src=192.0.2.99 dst=10.1.2.3 dpt=443\\n' | "
             "timeout 5 bash -c 'cat > /dev/tcp/127.0.0.1/%s'",
             marker, colon + 1);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    assert_int_equal(wait_events("192.0.2.99", 1, e, 2), 1);
    assert_string_equal(e[0].source.kind, "cef");
    assert_string_equal(e[0].category, "ddos");
    assert_true(e[0].severity >= 8);
    assert_string_equal(e[0].dst.ip, "10.1.2.3");
    assert_int_equal(e[0].dst.port, 443);
}

/* POSTs a file with curl; returns the status code and the body in *body. */
static int curl_post(const char *file, const char *token, bool gzip, char **body)
{
    char url[128], auth[128];
    char *argv[16];
    char *out = NULL;
    int n = 0, code = -1;

    snprintf(url, sizeof(url), "http://%s/v1/events", col.http);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    argv[n++] = "curl";
    argv[n++] = "-s";
    argv[n++] = "-w";
    argv[n++] = "\n%{http_code}";
    argv[n++] = "-H";
    argv[n++] = "Content-Type: application/x-ndjson";
    if (token != NULL) {
        argv[n++] = "-H";
        argv[n++] = auth;
    }
    if (gzip) {
        argv[n++] = "-H";
        argv[n++] = "Content-Encoding: gzip";
    }
    argv[n++] = "--data-binary";
    argv[n++] = (char *)file;
    argv[n++] = url;
    argv[n] = NULL;
    assert_int_equal(tm_harness_run(argv, &out, NULL, 60000), 0);
    {
        char *nl = strrchr(out, '\n');
        code = (int)strtol(nl + 1, NULL, 10);
        *nl = '\0';
    }
    *body = out;
    return code;
}

static void test_collector_http_gzip_ndjson(void **state)
{
    static struct tm_event e[4];
    char path[300], cmd[600], file[310];
    char *body = NULL;
    json_t *resp, *rej;
    FILE *f;
    (void)state;

    snprintf(path, sizeof(path), "%s/batch.ndjson", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    /* Line 3 spoofs another operator: the token's operator must win. */
    fprintf(f,
            "{\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"phishing\",\"severity\":6,"
            "\"summary\":\"%s-h1\"}\n",
            marker);
    fprintf(f, "{\"ts\":\"2026-11-23T07:00:01Z\",\"category\":\"ddos\",\"severity\":11}\n");
    fprintf(f,
            "{\"ts\":\"2026-11-23T07:00:02Z\",\"category\":\"malware\",\"severity\":7,"
            "\"operator\":\"ua-energy-001\",\"summary\":\"%s-h2\"}\n",
            marker);
    fprintf(f, "\n");
    fprintf(f, "this is not json\n");
    fprintf(f,
            "{\"ts\":\"2026-11-23T07:00:03Z\",\"category\":\"scan\",\"severity\":2,"
            "\"summary\":\"%s-h3\"}\n",
            marker);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "gzip -k -f '%s'", path);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    snprintf(file, sizeof(file), "@%s.gz", path);

    assert_int_equal(curl_post(file, TOKEN, true, &body), 200);
    resp = json_loads(body, 0, NULL);
    assert_non_null(resp);
    assert_int_equal(json_integer_value(json_object_get(resp, "accepted")), 3);
    rej = json_object_get(resp, "rejected");
    assert_int_equal(json_array_size(rej), 2);
    /* Rejected lines are named by their line number in the body. */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rej, 0), "line")), 2);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(rej, 0), "reason")), "severity"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rej, 1), "line")), 5);
    json_decref(resp);
    free(body);

    assert_int_equal(wait_events(marker, 3, e, 4) >= 3, 1);
    for (int i = 0; i < 3; i++) {
        if (strstr(e[i].summary, "-h") == NULL)
            continue;
        assert_string_equal(e[i].operator_id, "ua-water-kyiv");
        assert_string_equal(e[i].sector, "drinking-water");
        assert_string_equal(e[i].region, "UA-30");
    }
}

static void test_collector_http_auth_and_limits(void **state)
{
    char path[300], file[310];
    char *body = NULL;
    FILE *f;
    (void)state;

    snprintf(path, sizeof(path), "%s/one.ndjson", tmpdir);
    f = fopen(path, "w");
    fprintf(f, "{\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"scan\",\"severity\":2}\n");
    fclose(f);
    snprintf(file, sizeof(file), "@%s", path);
    assert_int_equal(curl_post(file, "wrong-token", false, &body), 401);
    free(body);
    assert_int_equal(curl_post(file, NULL, false, &body), 401);
    free(body);
    /* A known token on the deny list: the sender is known and refused. */
    assert_int_equal(curl_post(file, REVOKED_TOKEN, false, &body), 403);
    assert_non_null(strstr(body, "revoked"));
    free(body);

    /* max_body is 64 KiB. */
    snprintf(path, sizeof(path), "%s/big.ndjson", tmpdir);
    f = fopen(path, "w");
    for (int i = 0; i < 2000; i++)
        fprintf(f, "{\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"scan\",\"severity\":2}\n");
    fclose(f);
    snprintf(file, sizeof(file), "@%s", path);
    assert_int_equal(curl_post(file, TOKEN, false, &body), 413);
    free(body);
}

static void test_collector_http_rate_limit(void **state)
{
    struct tm_collector_proc rc;
    struct tm_collector_proc saved = col;
    char conf[1024], path[300], file[310];
    char *body = NULL;
    int codes[6];
    FILE *f;
    (void)state;

    /* Its own collector: 10 events per second, burst 10. */
    snprintf(conf, sizeof(conf),
             "[identity]\nmap = %s/identities.ini\n[http]\nrate_per_sender = 10\n"
             "rate_burst = 10\n",
             tmpdir);
    assert_int_equal(tm_collector_start(&rc, kafka.bootstrap, conf), 0);
    col = rc;
    snprintf(path, sizeof(path), "%s/five.ndjson", tmpdir);
    f = fopen(path, "w");
    for (int i = 0; i < 5; i++)
        fprintf(f, "{\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"scan\",\"severity\":2}\n");
    fclose(f);
    snprintf(file, sizeof(file), "@%s", path);
    for (int i = 0; i < 6; i++) {
        codes[i] = curl_post(file, TOKEN, false, &body);
        free(body);
    }
    col = saved;
    /* 10 events fit the burst; right after, the sender is over its rate. */
    assert_int_equal(codes[0], 200);
    assert_int_equal(codes[1], 200);
    assert_int_equal(codes[5], 429);
    assert_int_equal(tm_collector_stop(&rc), 0);
}

/*
 * Sends a keep-alive GET /healthz on fd and returns the status of the answer (reading
 * until its end: the body is short and has a Content-Length), or -1. *closed tells
 * whether the server closed the connection after it.
 */
static int keepalive_get(int fd, bool *closed)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[2048];
    size_t have = 0;
    struct timeval tv = {5, 0};
    char *end, *cl;
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
        return -1;
    for (;;) {
        n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        cl = strcasestr(buf, "Content-Length:");
        if (end != NULL && cl != NULL &&
            have >= (size_t)(end + 4 - buf) + (size_t)strtol(cl + 15, NULL, 10))
            break;
    }
    /* After a "Connection: close" answer the next read sees the end of the stream. */
    tv.tv_sec = 0;
    tv.tv_usec = 300000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    *closed = recv(fd, buf, 1, MSG_PEEK) == 0;
    return (int)strtol(buf + 9, NULL, 10);
}

/* The value of the metric line that starts with prefix on the collector's admin, or -1. */
static double admin_metric(const struct tm_collector_proc *c, const char *prefix)
{
    char *body = NULL, *p;
    int status = 0;
    double v = -1;

    if (tm_harness_http(c->admin, "GET", "/metrics", &status, &body, 5000) != 0)
        return -1;
    for (p = body; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            v = strtod(p + strlen(prefix), NULL);
            break;
        }
    free(body);
    return v;
}

static void test_collector_http_connection_cap(void **state)
{
    struct tm_collector_proc cc;
    struct tm_collector_proc saved = col;
    char conf[1024];
    int fds[3], fd;
    bool closed = false;
    int code = 0;
    (void)state;

    /* Its own collector: two connections from one address. */
    snprintf(conf, sizeof(conf),
             "[collector]\nmax_connections_per_ip = 2\n[identity]\nmap = %s/identities.ini\n",
             tmpdir);
    assert_int_equal(tm_collector_start(&cc, kafka.bootstrap, conf), 0);
    col = cc;
    for (int i = 0; i < 2; i++) {
        fds[i] = tm_harness_tcp_connect(cc.http, NULL);
        assert_true(fds[i] >= 0);
        assert_int_equal(keepalive_get(fds[i], &closed), 200);
        assert_false(closed);
    }
    assert_true(admin_metric(&cc, "tm_collector_connections{listener=\"http\"} ") == 2);
    /* The third is answered 503 and closed; the first two still work. */
    fds[2] = tm_harness_tcp_connect(cc.http, NULL);
    assert_true(fds[2] >= 0);
    assert_int_equal(keepalive_get(fds[2], &closed), 503);
    assert_true(closed);
    close(fds[2]);
    assert_int_equal(keepalive_get(fds[0], &closed), 200);
    assert_int_equal(keepalive_get(fds[1], &closed), 200);
    /* One goes: a new connection gets its place. */
    close(fds[0]);
    for (int tries = 0; tries < 20 && code != 200; tries++) {
        usleep(100000);
        fd = tm_harness_tcp_connect(cc.http, NULL);
        assert_true(fd >= 0);
        code = keepalive_get(fd, &closed);
        if (code != 200)
            close(fd);
    }
    assert_int_equal(code, 200);
    close(fd);
    close(fds[1]);
    /* Every connection that went is no longer counted. */
    for (int tries = 0; tries < 20; tries++) {
        if (admin_metric(&cc, "tm_collector_connections{listener=\"http\"} ") == 0)
            break;
        usleep(100000);
    }
    assert_true(admin_metric(&cc, "tm_collector_connections{listener=\"http\"} ") == 0);
    col = saved;
    assert_int_equal(tm_collector_stop(&cc), 0);
}

static void assert_healthz_ok(void)
{
    int status = 0;

    for (int tries = 0; tries < 50 && status != 200; tries++) {
        if (tries > 0)
            usleep(100000);
        assert_int_equal(tm_harness_http(col.admin, "GET", "/healthz", &status, NULL, 5000), 0);
    }
    assert_int_equal(status, 200);
}

static void test_collector_http_client_leaves_while_kafka_is_down(void **state)
{
    static struct tm_event e[2];
    char body[256], req[1024];
    int fd, n;
    (void)state;

    n = snprintf(body, sizeof(body),
                 "{\"ts\":\"2026-11-23T07:00:00Z\",\"category\":\"scan\",\"severity\":2,"
                 "\"summary\":\"%s-left\"}\n",
                 marker);
    snprintf(req, sizeof(req),
             "POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s",
             TOKEN, n, body);
    /* With the broker down the request waits for Kafka; its client gives up and goes. */
    assert_int_equal(tm_harness_kafka_brokers(&kafka, false, -1), 0);
    fd = tm_harness_tcp_connect(col.http, NULL);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    sleep(1);
    close(fd);
    /* evhttp does not read while a request is open, so it learns of the close only when
     * it answers; until then the connection still counts. */
    assert_true(admin_metric(&col, "tm_collector_connections{listener=\"http\"} ") == 1);
    /* The broker comes back: the event still lands, and the collector serves others. */
    assert_int_equal(tm_harness_kafka_brokers(&kafka, true, -1), 0);
    assert_int_equal(wait_events("-left", 1, e, 2), 1);
    for (int tries = 0; tries < 30; tries++) {
        if (admin_metric(&col, "tm_collector_connections{listener=\"http\"} ") == 0)
            break;
        usleep(100000);
    }
    assert_true(admin_metric(&col, "tm_collector_connections{listener=\"http\"} ") == 0);
    assert_healthz_ok();
}

/*
 * Sends an sshd line naming ip over syslog TLS to addr with the client certificate
 * tmpdir/CERT.crt, then asserts that no event naming ip is in Kafka a second later.
 */
static void assert_tls_syslog_lands_nothing(const char *addr, const char *cert, const char *ip)
{
    char cmd[2048];
    struct tm_kmsgs msgs;

    snprintf(cmd, sizeof(cmd),
             "printf '<38>Nov 23 07:22:05 gw1 sshd[1]: Invalid user x from %s "
             "port 1\\n' | timeout 5 openssl s_client -quiet -connect %s -cert %s/%s.crt "
             "-key %s/%s.key -CAfile %s/ca.crt 2>/dev/null; true",
             ip, addr, tmpdir, cert, tmpdir, cert, tmpdir);
    assert_int_equal(tm_sh(cmd, 20000), 0);
    sleep(1);
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++)
        assert_null(strstr(msgs.v[i].payload, ip));
    tm_kmsgs_free(&msgs);
}

static void test_collector_syslog_tls_client_cert(void **state)
{
    static struct tm_event e[2];
    struct tm_collector_proc tc;
    char conf[2048], map[300], cmd[2048];
    (void)state;

    assert_int_equal(tm_make_test_pki(tmpdir), 0);
    snprintf(map, sizeof(map), "%s/tls-identities.ini", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "printf '[operator.ua-water-kyiv]\\nsector = drinking-water\\nregion = UA-30\\n"
             "certs = agent.vodokanal.test\\n' > '%s'",
             map);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    snprintf(conf, sizeof(conf),
             "[syslog]\ntls = true\n[tls]\ncert = %s/server.crt\nkey = %s/server.key\n"
             "ca = %s/ca.crt\n[identity]\nmap = %s\n",
             tmpdir, tmpdir, tmpdir, map);
    assert_int_equal(tm_collector_start(&tc, kafka.bootstrap, conf), 0);
    /* RFC 5425 framing: octet counting over TLS, from a client with a certificate. */
    snprintf(cmd, sizeof(cmd),
             "m='<38>1 2026-11-23T07:22:05Z gw1 sshd 42 - - Failed password for root from "
             "192.0.2.123 port 4444 ssh2 %s-tls'; printf '%%d %%s' ${#m} \"$m\" | "
             "timeout 5 openssl s_client -quiet -connect %s -cert %s/agent.crt "
             "-key %s/agent.key -CAfile %s/ca.crt 2>/dev/null; true",
             marker, tc.syslog_tcp, tmpdir, tmpdir, tmpdir);
    assert_int_equal(tm_sh(cmd, 20000), 0);
    assert_int_equal(wait_events("192.0.2.123", 1, e, 2), 1);
    assert_string_equal(e[0].operator_id, "ua-water-kyiv");
    assert_string_equal(e[0].category, "bruteforce");
    /* A certificate from a foreign CA lands nothing. */
    assert_tls_syslog_lands_nothing(tc.syslog_tcp, "rogue", "192.0.2.124");
    /* The agent's certificate goes on the deny list; after SIGHUP it lands nothing. */
    snprintf(cmd, sizeof(cmd), "printf '[revoked]\\ncerts = agent.vodokanal.test\\n' >> '%s'", map);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    assert_int_equal(kill(tc.pid, SIGHUP), 0);
    sleep(1);
    assert_tls_syslog_lands_nothing(tc.syslog_tcp, "agent", "192.0.2.125");
    assert_int_equal(tm_collector_stop(&tc), 0);
}

/* ---- syslog senders over their rate ------------------------------------------------ */

#define RATE 500
#define BURST 500

/* Starts a collector whose map gives 127.0.0.2 to op-burst and 127.0.0.3 to op-calm,
 * each limited to RATE syslog messages per second with a burst of BURST. */
static void start_rate_collector(struct tm_collector_proc *rc)
{
    char map[300], cmd[1024], conf[1024];

    snprintf(map, sizeof(map), "%s/rate-identities.ini", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "printf '[operator.op-burst]\\nsector = energy\\nnetworks = 127.0.0.2/32\\n"
             "[operator.op-calm]\\nsector = drinking-water\\nnetworks = 127.0.0.3/32\\n' > '%s'",
             map);
    assert_int_equal(tm_sh(cmd, 10000), 0);
    snprintf(conf, sizeof(conf),
             "[syslog]\nrate_per_sender = %d\nrate_burst = %d\n[identity]\nmap = %s\n"
             "[kafka]\nlinger = 2ms\n",
             RATE, BURST, map);
    assert_int_equal(tm_collector_start(rc, kafka.bootstrap, conf), 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Events in tm.events.v1 whose payload contains needle, and how many of them op sent. */
static long count_events(const char *needle, const char *op)
{
    struct tm_kmsgs msgs;
    long n = 0;

    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++)
        if (strstr(msgs.v[i].payload, needle) != NULL) {
            const char *h = tm_kmsg_header(&msgs.v[i], "operator");
            assert_non_null(h);
            assert_string_equal(h, op);
            n++;
        }
    tm_kmsgs_free(&msgs);
    return n;
}

/* An sshd line (RFC 3164, LF-terminated) tagged TAG-I, so each one is a distinct event. */
static int sshd_line(char *buf, size_t len, const char *tag, int i)
{
    return snprintf(buf, len,
                    "<38>Nov 23 07:22:05 gw1 sshd[1]: Failed password for root from 203.0.113.%d "
                    "port 4242 ssh2 %s-%d\n",
                    1 + i % 250, tag, i);
}

struct tcp_sender {
    int fd;
    const char *tag;
    int n;
    int sent;
};

/* Writes n lines on a blocking socket: it blocks whenever the collector stops reading. */
static void *tcp_sender_run(void *arg)
{
    struct tcp_sender *s = arg;
    char line[256];

    for (s->sent = 0; s->sent < s->n; s->sent++) {
        int len = sshd_line(line, sizeof(line), s->tag, s->sent);
        if (send(s->fd, line, (size_t)len, MSG_NOSIGNAL) != len)
            break;
    }
    return NULL;
}

/*
 * A TCP sender of op-burst sends 2,500 messages as fast as it can, at a rate of 500/s
 * with a burst of 500: all of them land (the collector stops reading, the sender waits,
 * nothing is lost), and not before (2,500 - 500 - 64 charged at once) / 500 = 3.9 s,
 * asserted as at least 3 s. A sender of op-calm on its own connection meanwhile is not
 * slowed down: its messages all land while op-burst's are still coming in.
 */
static void test_collector_syslog_tcp_sender_over_its_rate(void **state)
{
    enum { N = 2500, CALM = 50 };
    struct tm_collector_proc rc;
    struct tcp_sender fast = {-1, NULL, N, 0}, calm = {-1, NULL, CALM, 0};
    char tag_fast[64], tag_calm[64];
    pthread_t th;
    double t0, t_calm = 0, t_all = 0;
    long landed_fast_at_calm = -1, landed = 0;
    (void)state;

    start_rate_collector(&rc);
    snprintf(tag_fast, sizeof(tag_fast), "%s-rtf", marker);
    snprintf(tag_calm, sizeof(tag_calm), "%s-rtc", marker);
    fast.tag = tag_fast;
    calm.tag = tag_calm;
    fast.fd = tm_harness_tcp_connect(rc.syslog_tcp, "127.0.0.2");
    calm.fd = tm_harness_tcp_connect(rc.syslog_tcp, "127.0.0.3");
    assert_true(fast.fd >= 0 && calm.fd >= 0);
    t0 = now_s();
    assert_int_equal(pthread_create(&th, NULL, tcp_sender_run, &fast), 0);
    usleep(500000); /* op-burst has spent its burst and is in debt */
    tcp_sender_run(&calm);
    assert_int_equal(calm.sent, CALM);
    for (int tries = 0; tries < 300 && landed < N; tries++) {
        if (t_calm == 0 && count_events(tag_calm, "op-calm") == CALM) {
            t_calm = now_s() - t0;
            landed_fast_at_calm = count_events(tag_fast, "op-burst");
        }
        landed = count_events(tag_fast, "op-burst");
        if (landed < N)
            usleep(200000);
    }
    t_all = now_s() - t0;
    pthread_join(th, NULL);
    print_message("syslog tcp rate: %d messages at %d/s (burst %d) landed after %.1f s; "
                  "op-calm's %d after %.1f s, when %ld of op-burst's had\n",
                  N, RATE, BURST, t_all, CALM, t_calm, landed_fast_at_calm);
    assert_int_equal(fast.sent, N);
    assert_int_equal(landed, N); /* slowed down, nothing lost */
    assert_true(t_all >= 3.0);
    assert_true(t_calm > 0);
    assert_true(landed_fast_at_calm < N); /* op-calm was not held up behind op-burst */
    assert_true(tm_admin_metric(rc.admin, "tm_collector_throttled_total") >= 1);
    assert_true(admin_metric(&rc, "tm_collector_throttled_total{listener=\"syslog\"} ") >= 1);
    close(fast.fd);
    close(calm.fd);
    assert_int_equal(tm_collector_stop(&rc), 0);
}

/* A UDP socket bound to src (port 0) and connected to addr (HOST:PORT), or -1. */
static int udp_connect(const char *addr, const char *src)
{
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    const char *colon = strrchr(addr, ':');
    char host[64];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    if (fd < 0 || colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    to.sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10));
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1 ||
        inet_pton(AF_INET, src, &from.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Over UDP a sender over its rate cannot be slowed down: op-burst sends 2,000 datagrams
 * in about a second (bursts of 100, paced so the kernel's socket buffer does not drop
 * any); at most BURST + RATE x elapsed of them land (plus a margin), the rest are counted
 * in tm_collector_syslog_udp_dropped_total{reason="rate"}, exactly. op-calm's datagrams,
 * sent in between, all land.
 */
static void test_collector_syslog_udp_sender_over_its_rate(void **state)
{
    enum { SENT = 2000, CALM = 50, BATCH = 100 };
    struct tm_collector_proc rc;
    char tag_fast[64], tag_calm[64], line[256];
    const char *dropped_rate = "tm_collector_syslog_udp_dropped_total{reason=\"rate\"} ";
    int fast, calm, calm_sent = 0;
    long landed = 0, landed_calm = 0;
    double t0, elapsed, dropped = 0, bound;
    (void)state;

    start_rate_collector(&rc);
    snprintf(tag_fast, sizeof(tag_fast), "%s-ruf", marker);
    snprintf(tag_calm, sizeof(tag_calm), "%s-ruc", marker);
    fast = udp_connect(rc.syslog_udp, "127.0.0.2");
    calm = udp_connect(rc.syslog_udp, "127.0.0.3");
    assert_true(fast >= 0 && calm >= 0);
    t0 = now_s();
    for (int i = 0; i < SENT; i++) {
        int len = sshd_line(line, sizeof(line), tag_fast, i);
        assert_int_equal(send(fast, line, (size_t)len, 0), len);
        if ((i + 1) % BATCH == 0) {
            for (int k = 0; k < CALM / (SENT / BATCH) + 1 && calm_sent < CALM; k++) {
                len = sshd_line(line, sizeof(line), tag_calm, calm_sent++);
                assert_int_equal(send(calm, line, (size_t)len, 0), len);
            }
            usleep(50000);
        }
    }
    elapsed = now_s() - t0;
    assert_int_equal(calm_sent, CALM);
    /* Every datagram was either produced or dropped for its rate. */
    for (int tries = 0; tries < 100; tries++) {
        dropped = admin_metric(&rc, dropped_rate);
        landed = count_events(tag_fast, "op-burst");
        landed_calm = count_events(tag_calm, "op-calm");
        if (landed + (long)dropped >= SENT && landed_calm == CALM)
            break;
        usleep(200000);
    }
    /* The bucket refills while the last datagrams still wait in the socket: a second more. */
    bound = BURST + RATE * (elapsed + 1.0) + 50;
    print_message("syslog udp rate: %d datagrams in %.2f s at %d/s (burst %d): %ld landed "
                  "(at most %.0f), %.0f dropped; op-calm %ld of %d\n",
                  SENT, elapsed, RATE, BURST, landed, bound, dropped, landed_calm, CALM);
    assert_int_equal(landed_calm, CALM);
    assert_true(landed >= BURST / 2);
    assert_true((double)landed <= bound);
    assert_true(dropped > 0);
    assert_int_equal((long)dropped, SENT - landed);
    assert_true(
        admin_metric(&rc, "tm_collector_syslog_udp_dropped_total{reason=\"backpressure\"} ") == 0);
    close(fast);
    close(calm);
    assert_int_equal(tm_collector_stop(&rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collector_syslog_rfc5424_tcp_octet_counting),
        cmocka_unit_test(test_collector_syslog_rfc3164_tcp_and_udp),
        cmocka_unit_test(test_collector_syslog_cef),
        cmocka_unit_test(test_collector_syslog_tls_client_cert),
        cmocka_unit_test(test_collector_syslog_tcp_sender_over_its_rate),
        cmocka_unit_test(test_collector_syslog_udp_sender_over_its_rate),
        cmocka_unit_test(test_collector_http_gzip_ndjson),
        cmocka_unit_test(test_collector_http_auth_and_limits),
        cmocka_unit_test(test_collector_http_rate_limit),
        cmocka_unit_test(test_collector_http_connection_cap),
        cmocka_unit_test(test_collector_http_client_leaves_while_kafka_is_down),
    };
    return cmocka_run_group_tests_name("collector_syslog_http", tests, setup, teardown);
}
