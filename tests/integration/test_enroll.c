/*
 * test_enroll.c - agent enrollment end to end (docs/enrollment.md) with the real tmctl,
 * tm-agent, tm-collector and tm-devkafka on loopback ports picked at run time; what the
 * agents ship is read back from Kafka with kcat.
 *
 * One CA for the whole group (`tmctl ca init`), the collector's certificate from it
 * (`tmctl ca server-cert`), an empty identity map, and a collector whose Lumberjack
 * listener requires client certificates of that CA and whose enrollment listener signs
 * with it. tmctl tells the collector to reload through a pid file (the collector writes
 * none: the test does). Its stderr goes to a log file, so the test can wait for a reload
 * ("SIGHUP: identity map reloaded") and check that no token was ever logged.
 *   - certificate now: `tmctl enroll --cert-out` -> the agent ships with those files and
 *     its events carry the operator, sector and region of the map, not of their bodies;
 *   - token: `tmctl enroll --token` -> `tm-agent enroll` writes its key (0600),
 *     certificate and CA; the agent ships as its operator; the same token again is
 *     refused, also after a collector restart; an expired, an unknown, a malformed and a
 *     revoked token (by its name, or by its operator before that operator is in the map)
 *     are refused and leave no file;
 *   - revoke: `tmctl revoke NAME` + SIGHUP: the next connection with that certificate is
 *     refused (its events stay in the agent's spool, none reach Kafka) while an agent of
 *     another operator, connected before and reconnecting after, keeps shipping;
 *   - the enrollment listener answers malformed requests (wrong method, path, missing
 *     token, bad or oversized request body, a weak key, plain HTTP, bytes that are not
 *     TLS) with a clear status or a closed connection, keeps the token usable when the
 *     request was at fault, and goes on serving.
 *
 * Volume: a few dozen events, far below tm-devkafka's ~5 MB per partition.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "procs.h"
#include "tm/tm_common.h"
#include "tm/tm_file.h"

static struct tm_harness_kafka kafka;
static char dir[256]; /* scratch directory of the whole group */
static char ca_dir[300], map[300], pid_file[300], log_path[300], conf[300];

/* The collector: its pid and the addresses it announced. */
static struct {
    pid_t pid;
    int out_fd;
    char lumberjack[64], enroll[64], admin[64];
} coll;

/* ---- helpers ------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The whole file at path (malloc'd; "" when it does not exist). */
static char *read_text(const char *path)
{
    char err[TM_ERR_LEN], *text = NULL;

    if (tm_file_read(path, 16u << 20, true, &text, NULL, err) != 0)
        return strdup("");
    return text;
}

/*
 * Runs a shell command to completion, stdout and stderr together into *out (malloc'd,
 * may be NULL to discard). Returns its exit status.
 */
static int sh_out(char **out, const char *fmt, ...) TM_PRINTF(2, 3);

static int sh_out(char **out, const char *fmt, ...)
{
    char cmd[8192], full[8300], *text = NULL;
    char *argv[] = {"sh", "-c", full, NULL};
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "exec 2>&1; %s", cmd);
    rc = tm_harness_run(argv, &text, NULL, 60000);
    if (out != NULL)
        *out = text != NULL ? text : strdup("");
    else
        free(text);
    return rc;
}

/* The value of the "KEY: value" line of text, copied into buf ("" when there is none). */
static const char *field(const char *text, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);

    buf[0] = '\0';
    for (const char *l = text; l != NULL && *l != '\0';) {
        const char *nl = strchr(l, '\n');
        size_t n = nl != NULL ? (size_t)(nl - l) : strlen(l);
        if (n > klen + 2 && strncmp(l, key, klen) == 0 && l[klen] == ':' && l[klen + 1] == ' ') {
            snprintf(buf, len, "%.*s", (int)(n - klen - 2), l + klen + 2);
            break;
        }
        l = nl != NULL ? nl + 1 : NULL;
    }
    return buf;
}

/* tmctl with the group's map and pid file (revoke); output as sh_out. */
static int tmctl(char **out, const char *global, const char *args)
{
    return sh_out(out, "exec '%s/tmctl' %s %s --map '%s' --pid-file '%s'", tm_harness_build_dir(),
                  global, args, map, pid_file);
}

/* tmctl enroll ...: the certificate name it printed into name. Asserts success. */
static void tmctl_enroll(const char *global, const char *args, char *name, size_t nlen, char *token,
                         size_t tlen)
{
    char *out = NULL, buf[256];
    int rc = sh_out(&out, "exec '%s/tmctl' %s enroll %s --map '%s' --dir '%s' --pid-file '%s'",
                    tm_harness_build_dir(), global, args, map, ca_dir, pid_file);

    if (rc != 0)
        fprintf(stderr, "tmctl enroll %s:\n%s\n", args, out);
    assert_int_equal(rc, 0);
    tm_strlcpy(name, field(out, "name", buf, sizeof(buf)), nlen);
    assert_true(name[0] != '\0');
    if (token != NULL) {
        tm_strlcpy(token, field(out, "token", buf, sizeof(buf)), tlen);
        assert_true(strncmp(token, "tme_", 4) == 0);
    }
    free(out);
}

/* tm-agent enroll --token TOKEN --collector ENROLL --ca CA --out OUT; output as sh_out. */
static int agent_enroll(char **out, const char *token, const char *outdir)
{
    return sh_out(out,
                  "mkdir -p '%s' && exec '%s/tm-agent' enroll --token '%s' --collector %s "
                  "--ca '%s/ca.crt' --out '%s' --timeout 10s",
                  outdir, tm_harness_build_dir(), token, coll.enroll, ca_dir, outdir);
}

/* How many times the collector has logged a reload of its map. */
static int reloads(void)
{
    char *log = read_text(log_path);
    int n = 0;

    for (const char *p = log; (p = strstr(p, "SIGHUP: identity map reloaded")) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* Waits until the collector has logged more than before reloads. */
static void wait_reload(int before)
{
    for (int waited = 0; reloads() <= before && waited < 10000; waited += 50)
        usleep(50000);
    assert_true(reloads() > before);
}

/* Starts the collector on the addresses given (127.0.0.1:0 the first time). */
static int collector_spawn(const char *lj, const char *en, const char *admin)
{
    static const char *const names[] = {"lumberjack", "enroll", "admin"};
    char cmd[4096], addrs[3][64], pid_text[32];
    char *argv[] = {"sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd),
             "exec '%s/tm-collector' -c '%s' --kafka '%s' --lumberjack %s --enroll %s "
             "--admin %s 2>>'%s'",
             tm_harness_build_dir(), conf, kafka.bootstrap, lj, en, admin, log_path);
    coll.pid = tm_daemon_start(argv, names, addrs, 3, &coll.out_fd);
    if (coll.pid < 0)
        return -1;
    tm_strlcpy(coll.lumberjack, addrs[0], sizeof(coll.lumberjack));
    tm_strlcpy(coll.enroll, addrs[1], sizeof(coll.enroll));
    tm_strlcpy(coll.admin, addrs[2], sizeof(coll.admin));
    snprintf(pid_text, sizeof(pid_text), "%d\n", (int)coll.pid);
    write_file(pid_file, pid_text);
    return 0;
}

static void collector_stop(void)
{
    assert_int_equal(tm_harness_stop(coll.pid, 20000), 0);
    close(coll.out_fd);
    coll.pid = -1;
}

/* Stops the collector and starts it again on the same ports (retrying the bind). */
static void collector_restart(void)
{
    char lj[64], en[64], admin[64];

    tm_strlcpy(lj, coll.lumberjack, sizeof(lj));
    tm_strlcpy(en, coll.enroll, sizeof(en));
    tm_strlcpy(admin, coll.admin, sizeof(admin));
    collector_stop();
    for (int i = 0; i < 20; i++) {
        if (collector_spawn(lj, en, admin) == 0)
            return;
        usleep(250000);
    }
    fail_msg("the collector did not start again on %s, %s, %s", lj, en, admin);
}

/* Canonical events ids PREFIX-N, their bodies claiming another operator and sector. */
static void write_events(const char *path, const char *prefix, int from, int n, const char *mode)
{
    FILE *f = fopen(path, mode);

    assert_non_null(f);
    for (int i = from; i < from + n; i++)
        fprintf(f,
                "{\"schema\":1,\"id\":\"%s-%05d\",\"ts\":\"2026-11-23T08:%02d:%02d.000Z\","
                "\"operator\":\"someone-else\",\"sector\":\"banking\",\"region\":\"UA-71\","
                "\"category\":\"scan\",\"severity\":5,\"src\":{\"ip\":\"198.51.100.%d\"},"
                "\"summary\":\"port scan %d\"}\n",
                prefix, i, (i / 60) % 60, i % 60, 1 + i % 250, i);
    assert_int_equal(fclose(f), 0);
}

/*
 * Writes DIR/ID.ini (tm_agent_conf_write): agent ID shipping to the collector with the
 * files in certdir, one input ([input.in] keys in input) whose events pass as they are.
 */
static void agent_conf(char *path, size_t len, const char *id, const char *certdir,
                       const char *input)
{
    char extra[2048];

    snprintf(extra, sizeof(extra),
             "tls_ca = %s/ca.crt\ntls_cert = %s/agent.crt\ntls_key = %s/agent.key\n"
             "[input.in]\n%s\npass_min_severity = 1\nfold_window = 0\nthreshold = false\n"
             "spike = false\n",
             certdir, certdir, certdir, input);
    assert_int_equal(tm_agent_conf_write(dir, id, coll.lumberjack, extra, path, len), 0);
}

/* tm-agent --once: ships n events PREFIX-N as agent id with the files in certdir. */
static void ship_once(const char *id, const char *certdir, const char *prefix, int n)
{
    char conf_path[300], input[300];
    char *out = NULL;
    int rc;

    snprintf(input, sizeof(input), "%s/%s.ndjson", dir, prefix);
    write_events(input, prefix, 0, n, "w");
    agent_conf(conf_path, sizeof(conf_path), id, certdir, "type = stdin\nformat = json");
    rc = sh_out(&out, "exec '%s/tm-agent' -c '%s' --once < '%s'", tm_harness_build_dir(), conf_path,
                input);
    if (rc != 0 || getenv("TM_DEBUG") != NULL)
        fprintf(stderr, "tm-agent --once (%s):\n%s\n", id, out);
    free(out);
    assert_int_equal(rc, 0);
}

/* A running tm-agent. */
struct agent_proc {
    pid_t pid;
    int out_fd;
    char conf[300], admin[64];
};

/* Starts agent id with the files in certdir, tailing input from its beginning. */
static void agent_start(struct agent_proc *a, const char *id, const char *certdir,
                        const char *input)
{
    static const char *const names[] = {"admin"};
    char in[512], bin[400], addrs[1][64];
    char *argv[] = {bin, "-c", a->conf, "--admin", "127.0.0.1:0", NULL};

    snprintf(in, sizeof(in), "type = file\nformat = json\npaths = %s\nstart = beginning", input);
    agent_conf(a->conf, sizeof(a->conf), id, certdir, in);
    snprintf(bin, sizeof(bin), "%s/tm-agent", tm_harness_build_dir());
    a->pid = tm_daemon_start(argv, names, addrs, 1, &a->out_fd);
    assert_true(a->pid > 0);
    tm_strlcpy(a->admin, addrs[0], sizeof(a->admin));
}

static void agent_stop(struct agent_proc *a)
{
    assert_int_equal(tm_harness_stop(a->pid, 10000), 0);
    close(a->out_fd);
}

/*
 * Events in tm.events.v1 whose agent is id: how many, and whether every one carries
 * operator, sector and region (payload and the operator header).
 */
static size_t events_of(const char *id, const char *op, const char *sector, const char *region,
                        bool *all_match)
{
    struct tm_kmsgs msgs;
    size_t n = 0;

    *all_match = true;
    assert_int_equal(tm_kcat_consume(kafka.bootstrap, "tm.events.v1", &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        json_error_t je;
        json_t *e = json_loads(msgs.v[i].payload, 0, &je);
        const char *agent = json_string_value(json_object_get(e, "agent"));
        const char *hdr = tm_kmsg_header(&msgs.v[i], "operator");

        if (agent != NULL && strcmp(agent, id) == 0) {
            n++;
            if (strcmp(json_string_value(json_object_get(e, "operator")), op) != 0 ||
                strcmp(json_string_value(json_object_get(e, "sector")), sector) != 0 ||
                strcmp(json_string_value(json_object_get(e, "region")), region) != 0 ||
                hdr == NULL || strcmp(hdr, op) != 0) {
                fprintf(stderr, "unexpected identity: %s\n", msgs.v[i].payload);
                *all_match = false;
            }
        }
        json_decref(e);
    }
    tm_kmsgs_free(&msgs);
    return n;
}

static void expect_events(const char *id, size_t want, const char *op, const char *sector,
                          const char *region)
{
    bool ok = false;

    assert_int_equal(events_of(id, op, sector, region, &ok), want);
    assert_true(ok);
}

/* Waits up to timeout_ms until id has want events in Kafka. */
static void wait_events(const char *id, size_t want, const char *op, const char *sector,
                        const char *region, int timeout_ms)
{
    bool ok = false;

    for (int waited = 0; events_of(id, op, sector, region, &ok) < want && waited < timeout_ms;
         waited += 200)
        usleep(200000);
    expect_events(id, want, op, sector, region);
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* The agent's files in d: key 0600, certificate and CA there. */
static void expect_agent_files(const char *d)
{
    char p[400];

    snprintf(p, sizeof(p), "%s/agent.key", d);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s/agent.crt", d);
    assert_true(exists(p));
    snprintf(p, sizeof(p), "%s/ca.crt", d);
    assert_true(exists(p));
}

static bool contains(const char *text, const char *needle)
{
    return text != NULL && strstr(text, needle) != NULL;
}

/* Sum of tm_collector_enroll_total{result="RESULT"} on the admin page. */
static double enroll_metric(const char *result)
{
    char *body = NULL, needle[128];
    int status = 0;
    double v = 0;
    const char *p;

    if (tm_harness_http(coll.admin, "GET", "/metrics", &status, &body, 5000) != 0 ||
        status != 200) {
        free(body);
        return -1;
    }
    snprintf(needle, sizeof(needle), "tm_collector_enroll_total{result=\"%s\"} ", result);
    p = strstr(body, needle);
    if (p != NULL)
        v = strtod(p + strlen(needle), NULL);
    free(body);
    return v;
}

/* ---- set-up ---------------------------------------------------------------------------- */

static int setup(void **state)
{
    char cmd[2048], text[2048];
    (void)state;

    snprintf(dir, sizeof(dir), "/tmp/tm-enroll-test-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(ca_dir, sizeof(ca_dir), "%s/ca", dir);
    snprintf(map, sizeof(map), "%s/identities.ini", dir);
    snprintf(pid_file, sizeof(pid_file), "%s/collector.pid", dir);
    snprintf(log_path, sizeof(log_path), "%s/collector.log", dir);
    snprintf(conf, sizeof(conf), "%s/collector.ini", dir);
    if (tm_harness_kafka_start(&kafka, 1, 3) != 0)
        return -1;
    /* The CA and the collector's certificate, as the national team makes them. */
    snprintf(cmd, sizeof(cmd),
             "set -e; '%1$s/tmctl' ca init --dir '%2$s' >/dev/null 2>&1; "
             "'%1$s/tmctl' ca server-cert --dir '%2$s' --dns collector.test --ip 127.0.0.1 "
             "--out '%3$s' >/dev/null",
             tm_harness_build_dir(), ca_dir, dir);
    if (tm_sh(cmd, 60000) != 0)
        return -1;
    write_file(map, "; the identity map: enrollment fills it\n");
    snprintf(text, sizeof(text),
             "[collector]\nlog_level = info\n"
             "[lumberjack]\ntls = true\n"
             "[tls]\ncert = %1$s/server.crt\nkey = %1$s/server.key\nca = %2$s/ca.crt\n"
             "require_client_cert = true\n"
             "[identity]\nmap = %3$s\n"
             "[enroll]\nca_cert = %2$s/ca.crt\nca_key = %2$s/ca.key\ncert_days = 30\n"
             "[kafka]\nlinger = 2ms\n",
             dir, ca_dir, map);
    write_file(conf, text);
    return collector_spawn("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0");
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;

    if (coll.pid > 0) {
        tm_harness_stop(coll.pid, 20000);
        close(coll.out_fd);
    }
    tm_harness_kafka_stop(&kafka);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    tm_sh(cmd, 10000);
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------- */

/* tmctl ca init never replaces a CA; the one of the group is there with a 0600 key. */
static void test_enroll_ca_init_keeps_an_existing_ca(void **state)
{
    char *out = NULL, p[400];
    (void)state;

    snprintf(p, sizeof(p), "%s/ca.key", ca_dir);
    assert_int_equal(mode_of(p), 0600);
    assert_int_equal(
        sh_out(&out, "exec '%s/tmctl' ca init --dir '%s'", tm_harness_build_dir(), ca_dir), 1);
    assert_true(contains(out, "already holds a CA"));
    free(out);
}

/* The certificate path: tmctl issues the files now, the agent ships with them. */
static void test_enroll_certificate_now(void **state)
{
    char name[256], out_dir[300], args[1024], *m;
    int before = reloads();
    (void)state;

    snprintf(out_dir, sizeof(out_dir), "%s/direct", dir);
    snprintf(args, sizeof(args),
             "--operator ua-water-kyiv --sector drinking-water --region UA-30 --cert-out '%s'",
             out_dir);
    tmctl_enroll("", args, name, sizeof(name), NULL, 0);
    expect_agent_files(out_dir);
    m = read_text(map);
    assert_true(contains(m, "[operator.ua-water-kyiv]"));
    assert_true(contains(m, name));
    assert_true(contains(m, "sector = drinking-water"));
    free(m);
    wait_reload(before); /* tmctl sent SIGHUP through the pid file */

    ship_once("kyiv-gw1", out_dir, "direct", 20);
    expect_events("kyiv-gw1", 20, "ua-water-kyiv", "drinking-water", "UA-30");
}

/*
 * The token path: tm-agent enroll makes its key, the collector signs its request and
 * burns the token; the agent ships as its operator. The token works once, also across a
 * collector restart, and appears in no log.
 */
static void test_enroll_token_once(void **state)
{
    char name[256], token[128], out_dir[300], again[300], key[400], *out = NULL, *text;
    (void)state;

    tmctl_enroll("", "--operator ua-energy-lviv --sector energy --region UA-46 --token", name,
                 sizeof(name), token, sizeof(token));
    text = read_text(map);
    assert_false(contains(text, name)); /* the collector adds it when the token is redeemed */
    free(text);

    snprintf(out_dir, sizeof(out_dir), "%s/token", dir);
    if (agent_enroll(&out, token, out_dir) != 0)
        fail_msg("tm-agent enroll: %s", out);
    assert_true(contains(out, name));
    assert_false(contains(out, token));
    free(out);
    expect_agent_files(out_dir);
    text = read_text(map);
    assert_true(contains(text, "[operator.ua-energy-lviv]"));
    assert_true(contains(text, name));
    free(text);
    assert_true(enroll_metric("ok") >= 1);

    ship_once("lviv-gw1", out_dir, "token", 15);
    expect_events("lviv-gw1", 15, "ua-energy-lviv", "energy", "UA-46");

    /* Burned: the same token again is refused and writes nothing. */
    snprintf(again, sizeof(again), "%s/token-again", dir);
    assert_int_equal(agent_enroll(&out, token, again), 1);
    assert_true(contains(out, "HTTP 401"));
    assert_true(contains(out, "already used"));
    free(out);
    snprintf(key, sizeof(key), "%s/agent.key", again);
    assert_false(exists(key));

    /* ... and stays burned after a restart; the map it wrote stays too. */
    collector_restart();
    snprintf(again, sizeof(again), "%s/token-again", dir);
    assert_int_equal(agent_enroll(&out, token, again), 1);
    assert_true(contains(out, "already used"));
    free(out);
    ship_once("lviv-gw1", out_dir, "token-after-restart", 5);
    expect_events("lviv-gw1", 20, "ua-energy-lviv", "energy", "UA-46");

    /* Tokens are never logged, by the collector or by the agent. */
    text = read_text(log_path);
    assert_false(contains(text, token));
    assert_false(contains(text, token + 4));
    assert_true(contains(text, "redeemed"));
    free(text);
}

/* Expired, unknown, malformed and revoked tokens are refused; nothing is written. */
static void test_enroll_token_refused(void **state)
{
    char name[256], token[128], out_dir[300], key[400], *out = NULL, *tokens;
    char tokens_path[300], ago[64];
    time_t t = time(NULL) - 3600;
    struct tm tmv;
    (void)state;

    snprintf(out_dir, sizeof(out_dir), "%s/refused", dir);
    snprintf(key, sizeof(key), "%s/agent.key", out_dir);

    /* Made an hour ago, valid for a minute. */
    gmtime_r(&t, &tmv);
    strftime(ago, sizeof(ago), "--now %Y-%m-%dT%H:%M:%SZ", &tmv);
    tmctl_enroll(ago, "--operator ua-water-kyiv --token-ttl 1m", name, sizeof(name), token,
                 sizeof(token));
    assert_int_equal(agent_enroll(&out, token, out_dir), 1);
    assert_true(contains(out, "HTTP 401"));
    assert_true(contains(out, "expired"));
    free(out);
    assert_false(exists(key));
    assert_true(enroll_metric("expired") >= 1);

    /* Never issued: well formed, and not. */
    assert_int_equal(
        agent_enroll(&out, "tme_0000000000000000000000000000000000000000000000000000000000000000",
                     out_dir),
        1);
    assert_true(contains(out, "unknown enrollment token"));
    free(out);
    assert_int_equal(agent_enroll(&out, "not-a-token", out_dir), 1);
    assert_true(contains(out, "unknown enrollment token"));
    free(out);
    assert_false(exists(key));

    /* Revoked before it was used: tmctl revoke of the pending name. */
    tmctl_enroll("", "--operator ua-water-kyiv --token", name, sizeof(name), token, sizeof(token));
    {
        char args[400];
        snprintf(args, sizeof(args), "revoke %s", name);
        assert_int_equal(tmctl(&out, "", args), 0);
        assert_true(contains(out, "revoked pending enrollment tokens: 1"));
        free(out);
    }
    snprintf(tokens_path, sizeof(tokens_path), "%s/enroll-tokens", dir);
    tokens = read_text(tokens_path);
    assert_true(contains(tokens, "revoked:"));
    free(tokens);
    assert_int_equal(agent_enroll(&out, token, out_dir), 1);
    assert_true(contains(out, "already used (or revoked)"));
    free(out);
    assert_false(exists(key));

    /* An operator the map has no section for yet: revoking it revokes its pending tokens. */
    tmctl_enroll("", "--operator ua-new-op --sector health --region UA-12 --token", name,
                 sizeof(name), token, sizeof(token));
    assert_int_equal(tmctl(&out, "", "revoke ua-new-op"), 0);
    assert_true(contains(out, "revoked pending enrollment tokens: 1"));
    free(out);
    assert_int_equal(agent_enroll(&out, token, out_dir), 1);
    assert_true(contains(out, "already used (or revoked)"));
    free(out);
    assert_false(exists(key));
}

/*
 * Revocation: after tmctl revoke and the reload, a new connection with the revoked
 * certificate is refused in its TLS handshake, while another operator's agent keeps
 * shipping.
 */
static void test_enroll_revoke(void **state)
{
    char victim[256], other[256], token[128], vdir[300], odir[300], input[300], vinput[300];
    char args[400], needle[400], *out = NULL, *text;
    struct agent_proc o, v;
    int before;
    (void)state;

    /* The victim by certificate now, the other one by token. */
    snprintf(vdir, sizeof(vdir), "%s/victim", dir);
    snprintf(args, sizeof(args),
             "--operator ua-gas-kharkiv --sector energy --region UA-63 --cert-out '%s'", vdir);
    before = reloads();
    tmctl_enroll("", args, victim, sizeof(victim), NULL, 0);
    wait_reload(before);
    tmctl_enroll("", "--operator ua-rail --sector transport --region UA-32 --token", other,
                 sizeof(other), token, sizeof(token));
    snprintf(odir, sizeof(odir), "%s/other", dir);
    if (agent_enroll(&out, token, odir) != 0)
        fail_msg("tm-agent enroll: %s", out);
    free(out);
    ship_once("kharkiv-gw1", vdir, "victim-before", 10);
    expect_events("kharkiv-gw1", 10, "ua-gas-kharkiv", "energy", "UA-63");

    /* The other agent runs all along, tailing a file. */
    snprintf(input, sizeof(input), "%s/other.ndjson", dir);
    write_events(input, "other", 0, 10, "w");
    agent_start(&o, "rail-gw1", odir, input);
    wait_events("rail-gw1", 10, "ua-rail", "transport", "UA-32", 15000);

    /* Revoke the victim; tmctl makes the collector reload. */
    before = reloads();
    snprintf(args, sizeof(args), "revoke %s", victim);
    assert_int_equal(tmctl(&out, "", args), 0);
    assert_true(contains(out, "revoked cert: "));
    free(out);
    wait_reload(before);
    text = read_text(map);
    assert_true(contains(text, "[revoked]"));
    free(text);

    /* The victim's next connection is refused: its events stay in its spool. */
    snprintf(vinput, sizeof(vinput), "%s/victim-after.ndjson", dir);
    write_events(vinput, "victim-after", 0, 10, "w");
    agent_start(&v, "kharkiv-gw1", vdir, vinput);

    /* Meanwhile the other agent ships more on its open connection. */
    write_events(input, "other", 10, 10, "a");
    wait_events("rail-gw1", 20, "ua-rail", "transport", "UA-32", 15000);
    for (int waited = 0; tm_admin_metric(v.admin, "tm_agent_spool_events") < 10 && waited < 5000;
         waited += 100)
        usleep(100000);
    sleep(2); /* several connection attempts, at backoff_max 500 ms */
    assert_true(tm_admin_metric(v.admin, "tm_agent_spool_events") == 10);
    assert_true(tm_admin_metric(v.admin, "tm_agent_acked_events") == 0);
    agent_stop(&v);
    expect_events("kharkiv-gw1", 10, "ua-gas-kharkiv", "energy", "UA-63");
    text = read_text(log_path);
    /* Refused in the TLS handshake (the agent gets the "certificate revoked" alert). */
    snprintf(needle, sizeof(needle), "certificate '%s' is revoked: refused in the handshake",
             victim);
    assert_true(contains(text, needle));
    free(text);

    /* The other operator's agent connects anew after the reload, and ships. */
    agent_stop(&o);
    ship_once("rail-gw2", odir, "other-after", 5);
    expect_events("rail-gw2", 5, "ua-rail", "transport", "UA-32");

    /* A revoked name is never enrolled again. */
    snprintf(args, sizeof(args), "--operator ua-gas-kharkiv --name %s --token", victim);
    assert_int_equal(sh_out(&out, "exec '%s/tmctl' enroll %s --map '%s' --dir '%s'",
                            tm_harness_build_dir(), args, map, ca_dir),
                     1);
    assert_true(contains(out, "is revoked"));
    free(out);
}

/*
 * The enrollment listener answers what is wrong with a request, keeps a token usable
 * when only the request was bad, and keeps serving.
 */
static void test_enroll_listener_rejects_malformed(void **state)
{
    char name[256], token[128], out_dir[300], *out = NULL;
    char curl[1024], big[300];
    int fd;
    (void)state;

    tmctl_enroll("", "--operator ua-water-kyiv --token", name, sizeof(name), token, sizeof(token));
    snprintf(curl, sizeof(curl),
             "curl -s --max-time 10 --cacert '%s/ca.crt' -o /dev/stderr -w ' %%{http_code}' "
             "https://%s",
             ca_dir, coll.enroll);

    assert_int_equal(sh_out(&out, "%s/v1/enroll", curl), 0);
    assert_true(contains(out, "takes POST only"));
    assert_true(contains(out, " 405"));
    free(out);
    assert_int_equal(sh_out(&out, "%s/v2/enroll -X POST", curl), 0);
    assert_true(contains(out, " 404"));
    free(out);
    assert_int_equal(sh_out(&out, "%s/v1/enroll -X POST --data-binary x", curl), 0);
    assert_true(contains(out, "Authorization: Bearer TOKEN"));
    assert_true(contains(out, " 401"));
    free(out);
    assert_int_equal(
        sh_out(&out, "%s/v1/enroll -H 'Authorization: Basic dTpw' --data-binary x", curl), 0);
    assert_true(contains(out, " 401"));
    free(out);

    /* A good token with a bad request: 400, and the token is still good. */
    assert_int_equal(sh_out(&out,
                            "%s/v1/enroll -H 'Authorization: Bearer %s' -H 'Content-Type: "
                            "application/pkcs10' --data-binary 'not a request'",
                            curl, token),
                     0);
    assert_true(contains(out, "bad certificate request"));
    assert_true(contains(out, " 400"));
    free(out);
    assert_int_equal(
        sh_out(&out, "%s/v1/enroll -H 'Authorization: Bearer %s' -X POST", curl, token), 0);
    assert_true(contains(out, " 400"));
    free(out);
    /* A request for a weak key (RSA 1024) is refused. */
    assert_int_equal(sh_out(&out,
                            "openssl req -new -newkey rsa:1024 -nodes -subj /CN=weak "
                            "-keyout /dev/null 2>/dev/null | %s/v1/enroll -H "
                            "'Authorization: Bearer %s' --data-binary @-",
                            curl, token),
                     0);
    assert_true(contains(out, " 400"));
    free(out);
    /*
     * Larger than the 64 KiB limit. With Expect: 100-continue the listener answers 413
     * before the body is sent; without it curl may still be sending when the listener
     * closes, and fail on the reset instead of reading the answer.
     */
    snprintf(big, sizeof(big), "%s/big.bin", dir);
    assert_int_equal(sh_out(NULL, "head -c 200000 /dev/zero > '%s'", big), 0);
    assert_int_equal(sh_out(&out,
                            "%s/v1/enroll -H 'Authorization: Bearer %s' -H 'Expect: 100-continue' "
                            "--data-binary @'%s'",
                            curl, token, big),
                     0);
    assert_true(contains(out, " 413"));
    free(out);

    /* Plain HTTP on the TLS port, and bytes that are no protocol at all: closed. */
    {
        int status = 0;
        char *body = NULL;
        assert_int_equal(tm_harness_http(coll.enroll, "POST", "/v1/enroll", &status, &body, 3000),
                         -1);
        free(body);
    }
    fd = tm_harness_tcp_connect(coll.enroll, NULL);
    assert_true(fd >= 0);
    {
        char junk[4096], buf[256];
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (char)(i * 7 + 3);
        (void)!write(fd, junk, sizeof(junk));
        /* the collector closes it: read returns 0 or an error, well before 10 s */
        assert_true(read(fd, buf, sizeof(buf)) <= 0 || read(fd, buf, sizeof(buf)) <= 0);
    }
    close(fd);
    assert_true(enroll_metric("bad_request") >= 4);

    /* Still serving, and the token that met only bad requests still works. */
    assert_int_equal(kill(coll.pid, 0), 0);
    snprintf(out_dir, sizeof(out_dir), "%s/after-malformed", dir);
    if (agent_enroll(&out, token, out_dir) != 0)
        fail_msg("tm-agent enroll: %s", out);
    assert_true(contains(out, name));
    free(out);
    expect_agent_files(out_dir);
    {
        int status = 0;
        char *body = NULL;
        assert_int_equal(tm_harness_http(coll.admin, "GET", "/healthz", &status, &body, 5000), 0);
        assert_int_equal(status, 200);
        free(body);
    }
}

/* Last: the collector stops cleanly (exit 0: no sanitizer report, no leak at exit). */
static void test_enroll_collector_exits_cleanly(void **state)
{
    char *log;
    (void)state;

    collector_stop();
    log = read_text(log_path);
    assert_false(contains(log, "Sanitizer"));
    assert_false(contains(log, "runtime error"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enroll_ca_init_keeps_an_existing_ca),
        cmocka_unit_test(test_enroll_certificate_now),
        cmocka_unit_test(test_enroll_token_once),
        cmocka_unit_test(test_enroll_token_refused),
        cmocka_unit_test(test_enroll_revoke),
        cmocka_unit_test(test_enroll_listener_rejects_malformed),
        cmocka_unit_test(test_enroll_collector_exits_cleanly),
    };
    return cmocka_run_group_tests_name("enroll", tests, setup, teardown);
}
