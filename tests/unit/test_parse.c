/*
 * test_parse.c - the log parsers over real logs (tests/data, see SOURCES.md) and over
 * hand-made edge cases. Counts over the corpus files were taken independently with grep
 * (the commands are in the comments) and are hard-coded here. Every line is handed to the
 * parser in an exact-size heap copy without a NUL, so the sanitizer build catches any
 * read past its end; every TM_PARSE_EVENT is validated again here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_event.h"
#include "tm/tm_parse.h"
#include "tm/tm_time.h"

/* Reference "now" of every test: 2026-01-01T00:00:00Z. */
static const struct tm_parse_ctx ctx = {.now_ms = 1767225600000LL};

static struct tm_event ev; /* large; one shared instance */
static char err[TM_ERR_LEN];

static int64_t ms(const char *rfc3339)
{
    int64_t v = -1;

    if (tm_time_parse(rfc3339, strlen(rfc3339), &v) != 0)
        fail_msg("bad time in test: '%s'", rfc3339);
    return v;
}

/* Runs a parser on len bytes copied to an exact-size buffer; checks the contract. */
static enum tm_parse_result run_n(const char *parser, const char *line, size_t len)
{
    const struct tm_parser *p = tm_parser_find(parser);
    char *copy = malloc(len > 0 ? len : 1);
    char why[TM_ERR_LEN];
    enum tm_parse_result r;

    assert_non_null(p);
    assert_non_null(copy);
    memcpy(copy, line, len);
    err[0] = '\0';
    r = p->parse(&ctx, copy, len, &ev, err);
    free(copy);
    if (r == TM_PARSE_EVENT && tm_event_validate(&ev, TM_EVENT_SUBMITTED, why) != TM_EVENT_OK)
        fail_msg("%s: event from '%.*s' does not validate: %s", parser, (int)len, line, why);
    if (r == TM_PARSE_ERROR && err[0] == '\0')
        fail_msg("%s: error without a message for '%.*s'", parser, (int)len, line);
    return r;
}

static enum tm_parse_result run(const char *parser, const char *line)
{
    return run_n(parser, line, strlen(line));
}

static void expect_error(const char *parser, const char *line, const char *needle)
{
    enum tm_parse_result r = run(parser, line);

    if (r != TM_PARSE_ERROR || strstr(err, needle) == NULL)
        fail_msg("%s '%s': got %d '%s', want an error containing '%s'", parser, line, r, err,
                 needle);
}

static void expect_event(const char *parser, const char *line)
{
    if (run(parser, line) != TM_PARSE_EVENT)
        fail_msg("%s '%s': no event (%s)", parser, line, err);
}

/* ---- corpus files ------------------------------------------------------------------ */

static char *read_file(const char *rel, size_t *len)
{
    const char *root = getenv("TM_ROOT");
    char path[1024];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/%s", root != NULL ? root : ".", rel);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open '%s' (set TM_ROOT to the source tree)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

struct tally {
    int lines, events, skips, errors;
    int bruteforce, scan, other, malware;
    int severity[11];
    int64_t count_sum;
    int with_src_ip;
    int anomalies;
};

static void tally_event(struct tally *t)
{
    t->events++;
    t->bruteforce += strcmp(ev.category, "bruteforce") == 0;
    t->scan += strcmp(ev.category, "scan") == 0;
    t->other += strcmp(ev.category, "other") == 0;
    t->malware += strcmp(ev.category, "malware") == 0;
    t->severity[ev.severity]++;
    t->count_sum += ev.count;
    t->with_src_ip += ev.src.ip[0] != '\0';
    t->anomalies += strncmp(ev.summary, "[anomaly]", 9) == 0;
}

static void tally_file(const char *parser, const char *rel, struct tally *t)
{
    size_t len, start = 0;
    char *buf = read_file(rel, &len);

    memset(t, 0, sizeof(*t));
    while (start < len) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;

        t->lines++;
        switch (run_n(parser, buf + start, end - start)) {
        case TM_PARSE_EVENT:
            tally_event(t);
            break;
        case TM_PARSE_SKIP:
            t->skips++;
            break;
        default:
            t->errors++;
            break;
        }
        start = end + 1;
    }
    free(buf);
}

/* Parses the first line of the file that contains needle. */
static enum tm_parse_result run_line_with(const char *parser, const char *rel, const char *needle)
{
    size_t len, start = 0;
    char *buf = read_file(rel, &len);
    enum tm_parse_result r = TM_PARSE_ERROR;
    int found = 0;

    while (start < len && !found) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;

        if (memmem(buf + start, end - start, needle, strlen(needle)) != NULL) {
            r = run_n(parser, buf + start, end - start);
            found = 1;
        }
        start = end + 1;
    }
    free(buf);
    if (!found)
        fail_msg("no line with '%s' in %s", needle, rel);
    return r;
}

/* The n-th line (1-based) of a file, NUL-terminated, in a static buffer. */
static const char *nth_line(const char *rel, int n)
{
    static char line[16384];
    size_t len, start = 0;
    char *buf = read_file(rel, &len);

    for (int i = 1; start < len; i++) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len;
        if (i == n) {
            assert_true(end - start < sizeof(line));
            memcpy(line, buf + start, end - start);
            line[end - start] = '\0';
            free(buf);
            return line;
        }
        start = end + 1;
    }
    free(buf);
    fail_msg("%s has no line %d", rel, n);
    return NULL;
}

/* ---- table ------------------------------------------------------------------------- */

static void test_parse_table(void **state)
{
    static const char *const names[] = {"eve", "auth", "cef", "syslog", "json"};
    (void)state;

    assert_int_equal(tm_parsers_count, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_non_null(tm_parser_find(names[i]));
        assert_string_equal(tm_parser_find(names[i])->name, names[i]);
        assert_non_null(tm_parser_find(names[i])->parse);
    }
    assert_null(tm_parser_find("EVE"));
    assert_null(tm_parser_find("nope"));
    assert_null(tm_parser_find(NULL));
}

/* ---- eve --------------------------------------------------------------------------- */

#define EVE_FILE "tests/data/suricata/eve-formbook-dridex.json"

static void test_parse_eve_corpus_counts(void **state)
{
    struct tally t;
    (void)state;

    tally_file("eve", EVE_FILE, &t);
    assert_int_equal(t.lines, 330);
    /* grep -c '"event_type":"alert"' -> 121; grep -c '"event_type":"anomaly"' -> 25 */
    assert_int_equal(t.events, 121 + 25);
    assert_int_equal(t.anomalies, 25);
    assert_int_equal(t.skips, 330 - 146);
    assert_int_equal(t.errors, 0);
    /* Alert classtypes (grep '"event_type":"alert"' | grep -o '"category":"[^"]*"'):
     * 29 "Malware Command and Control Activity Detected" -> malware; 74 Unknown Traffic,
     * 15 Generic Protocol Command Decode, 2 Potential Corporate Privacy Violation,
     * 1 Misc activity -> other (none of those has an ET class that refines it). */
    assert_int_equal(t.malware, 29);
    assert_int_equal(t.other, 74 + 15 + 2 + 1 + 25);
    /* grep -o '"severity":[0-9]': 31 x 1 -> 8, 90 x 3 -> 4; anomalies are 3. */
    assert_int_equal(t.severity[8], 31);
    assert_int_equal(t.severity[4], 90);
    assert_int_equal(t.severity[3], 25);
    assert_int_equal(t.with_src_ip, 146);
}

static void test_parse_eve_alert_fields(void **state)
{
    (void)state;

    /* The first alert of the file (pcap_cnt 4685). */
    assert_int_equal(run_line_with("eve", EVE_FILE, "\"pcap_cnt\":4685,\"event_type\":\"alert\""),
                     TM_PARSE_EVENT);
    assert_int_equal(ev.ts, ms("2022-02-23T18:24:44.045Z")); /* 19:24:44.045266+0100 */
    assert_string_equal(ev.src.ip, "172.16.0.149");
    assert_int_equal(ev.src.port, 49748);
    assert_string_equal(ev.dst.ip, "135.148.121.246");
    assert_int_equal(ev.dst.port, 8080);
    assert_string_equal(ev.summary, "[1:2028765:2] ET JA3 Hash - [Abuse.ch] Possible Dridex");
    assert_int_equal(ev.severity, 4); /* Suricata 3 */
    assert_string_equal(ev.category, "other");
    assert_int_equal(ev.confidence, 30); /* metadata confidence Low */
    assert_string_equal(ev.source.kind, "suricata");
    assert_string_equal(ev.source.host, "");
    assert_int_equal(ev.count, 1);
    assert_int_equal(strncmp(ev.raw, "{\"timestamp\":\"2022-02-23T19:24:44.045266+0100\"", 46), 0);

    /* FormBook check-in: Suricata severity 1, C2 classtype. */
    assert_int_equal(run_line_with("eve", EVE_FILE, "\"pcap_cnt\":11000,\"event_type\":\"alert\""),
                     TM_PARSE_EVENT);
    assert_int_equal(ev.ts, ms("2022-02-23T18:30:38.662Z"));
    assert_string_equal(ev.src.ip, "172.16.0.131");
    assert_int_equal(ev.src.port, 49201);
    assert_string_equal(ev.dst.ip, "23.227.38.74");
    assert_int_equal(ev.dst.port, 80);
    assert_string_equal(ev.summary, "[1:2031412:10] ET MALWARE FormBook CnC Checkin (GET)");
    assert_int_equal(ev.severity, 8);
    assert_string_equal(ev.category, "malware");

    /* The CTU-13 alert: severity 2, "Potentially Bad Traffic". */
    assert_int_equal(run_line_with("eve", "tests/data/suricata/eve-tenzir-ctu13.json",
                                   "\"event_type\":\"alert\""),
                     TM_PARSE_EVENT);
    assert_int_equal(ev.ts, ms("2011-08-12T12:52:57.716Z"));
    assert_string_equal(ev.src.ip, "147.32.84.165");
    assert_int_equal(ev.src.port, 1181);
    assert_string_equal(ev.dst.ip, "78.40.125.4");
    assert_int_equal(ev.dst.port, 6667);
    assert_int_equal(ev.severity, 6);
    assert_string_equal(ev.category, "other");
    assert_string_equal(ev.summary, "[1:2017318:4] ET CURRENT_EVENTS SUSPICIOUS IRC - PRIVMSG "
                                    "*.(exe|tar|tgz|zip)  download command");
}

static void test_parse_eve_anomaly(void **state)
{
    struct tally t;
    (void)state;

    assert_int_equal(
        run_line_with("eve", EVE_FILE, "\"pcap_cnt\":17019,\"event_type\":\"anomaly\""),
        TM_PARSE_EVENT);
    assert_int_equal(ev.ts, ms("2022-02-23T18:37:54.876Z"));
    assert_string_equal(ev.category, "other");
    assert_int_equal(ev.severity, 3);
    assert_string_equal(ev.summary,
                        "[anomaly] applayer: APPLAYER_DETECT_PROTOCOL_ONLY_ONE_DIRECTION (smb)");
    assert_string_equal(ev.src.ip, "172.16.0.149");
    assert_int_equal(ev.dst.port, 139);

    /* The CTU-13 file: 1 alert; dns, fileinfo, flow, http, netflow are skipped. */
    tally_file("eve", "tests/data/suricata/eve-tenzir-ctu13.json", &t);
    assert_int_equal(t.events, 1);
    assert_int_equal(t.skips, 5);
    assert_int_equal(t.errors, 0);

    /* A decoder anomaly without addresses. */
    expect_event("eve", "{\"timestamp\":\"2024-01-01T00:00:00.000000+0000\","
                        "\"event_type\":\"anomaly\",\"anomaly\":{\"type\":\"decode\","
                        "\"event\":\"DECODER_IPV4_TRUNC_PKT\"}}");
    assert_string_equal(ev.summary, "[anomaly] decode: DECODER_IPV4_TRUNC_PKT");
    assert_string_equal(ev.src.ip, "");
    assert_int_equal(ev.src.port, -1);
}

static const char *eve_alert(const char *category, const char *signature, int severity,
                             const char *extra)
{
    static char line[2048];

    snprintf(line, sizeof(line),
             "{\"timestamp\":\"2019-03-15T21:35:36.418743+0100\",\"event_type\":\"alert\","
             "\"src_ip\":\"203.0.113.9\",\"src_port\":51234,\"dest_ip\":\"2001:db8::1\","
             "\"dest_port\":443,\"host\":\"sensor-1\",\"alert\":{\"gid\":1,"
             "\"signature_id\":2024792,\"rev\":4,\"signature\":\"%s\",\"category\":\"%s\","
             "\"severity\":%d%s}}",
             signature, category, severity, extra);
    return line;
}

static void test_parse_eve_category_and_severity(void **state)
{
    static const struct {
        const char *category, *signature, *want;
    } cases[] = {
        {"A Network Trojan was detected", "ET X", "malware"},
        {"trojan-activity", "ET X", "malware"},
        {"Attempted Administrator Privilege Gain", "ET X", "exploit"},
        {"Attempted User Privilege Gain", "ET X", "exploit"},
        {"Web Application Attack", "ET X", "exploit"},
        {"web-application-attack", "ET X", "exploit"},
        {"Potentially Bad Traffic", "ET X", "other"},
        {"Misc activity", "ET X", "other"},
        {"Detection of a Network Scan", "ET X", "scan"},
        {"attempted-recon", "ET X", "scan"},
        {"Attempted Denial of Service", "ET X", "ddos"},
        {"Detection of a Denial of Service Attack", "ET X", "ddos"},
        {"policy-violation", "ET X", "other"},
        {"Successful Credential Theft Detected", "ET X", "phishing"},
        {"Possible Social Engineering Attempted", "ET X", "phishing"},
        {"Successful Administrator Privilege Gain", "ET X", "intrusion"},
        {"Malware Command and Control Activity Detected", "ET X", "malware"},
        /* Unknown or "other" classtypes: the ET signature class decides. */
        {"Misc activity", "ET SCAN Nmap Scripting Engine User-Agent Detected", "scan"},
        {"Unknown Traffic", "ET MALWARE Possible Dridex", "malware"},
        {"Something new", "ET DOS Possible NTP DDoS", "ddos"},
        {"Something new", "ETPRO PHISHING Fake Bank Login", "phishing"},
        {"Something new", "ET POLICY curl User-Agent", "other"},
        {"Attempted Denial of Service", "ET SCAN still ddos", "ddos"},
    };
    static const int suricata_sev[] = {1, 2, 3, 4, 5}, want_sev[] = {8, 6, 4, 3, 3};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_event("eve", eve_alert(cases[i].category, cases[i].signature, 2, ""));
        if (strcmp(ev.category, cases[i].want) != 0)
            fail_msg("'%s' / '%s': category %s, want %s", cases[i].category, cases[i].signature,
                     ev.category, cases[i].want);
    }
    for (size_t i = 0; i < 5; i++) {
        expect_event("eve", eve_alert("Misc activity", "ET X", suricata_sev[i], ""));
        assert_int_equal(ev.severity, want_sev[i]);
    }
    expect_event("eve", eve_alert("Misc activity", "ET INFO x", 2, ""));
    assert_int_equal(ev.ts, ms("2019-03-15T20:35:36.418Z"));
    assert_string_equal(ev.summary, "[1:2024792:4] ET INFO x");
    assert_string_equal(ev.source.host, "sensor-1");
    assert_string_equal(ev.dst.ip, "2001:db8::1");
    assert_int_equal(ev.dst.port, 443);
    assert_string_equal(ev.attack.technique, "");
    assert_int_equal(ev.confidence, -1);
}

static void test_parse_eve_attack_metadata(void **state)
{
    (void)state;

    expect_event("eve", eve_alert("A Network Trojan was detected", "ET MALWARE x", 1,
                                  ",\"metadata\":{\"mitre_technique_id\":[\"T1071\"],"
                                  "\"mitre_tactic_name\":[\"Command_And_Control\"],"
                                  "\"confidence\":[\"High\"]}"));
    assert_string_equal(ev.attack.technique, "T1071");
    assert_string_equal(ev.attack.tactic, "command-and-control");
    assert_int_equal(ev.confidence, 90);

    expect_event("eve", eve_alert("Misc activity", "ET X", 3,
                                  ",\"metadata\":{\"mitre_technique_id\":[\"T1071.001\"],"
                                  "\"mitre_tactic_name\":[\"Initial Access\"]}"));
    assert_string_equal(ev.attack.technique, "T1071.001");
    assert_string_equal(ev.attack.tactic, "initial-access");

    /* Unknown tactic and malformed technique are left out, not fatal. */
    expect_event("eve", eve_alert("Misc activity", "ET X", 3,
                                  ",\"metadata\":{\"mitre_technique_id\":[\"X1071\"],"
                                  "\"mitre_tactic_name\":[\"Making_Coffee\"],"
                                  "\"confidence\":[\"Medium\"]}"));
    assert_string_equal(ev.attack.technique, "");
    assert_string_equal(ev.attack.tactic, "");
    assert_int_equal(ev.confidence, 60);

    expect_event("eve", eve_alert("Misc activity", "ET X", 3,
                                  ",\"metadata\":{\"mitre_technique_id\":\"T1071\"}"));
    assert_string_equal(ev.attack.technique, "");
}

static void test_parse_eve_timestamps(void **state)
{
    (void)state;

    expect_event("eve", "{\"timestamp\":\"2024-05-01T10:00:00.5Z\",\"event_type\":\"anomaly\"}");
    assert_int_equal(ev.ts, ms("2024-05-01T10:00:00.500Z"));
    expect_event("eve",
                 "{\"timestamp\":\"2024-05-01T10:00:00.123456-05:30\",\"event_type\":\"anomaly\"}");
    assert_int_equal(ev.ts, ms("2024-05-01T15:30:00.123Z"));
    expect_event("eve",
                 "{\"timestamp\":\"2024-05-01T10:00:00.123456-0530\",\"event_type\":\"anomaly\"}");
    assert_int_equal(ev.ts, ms("2024-05-01T15:30:00.123Z"));
    expect_error("eve", "{\"timestamp\":\"yesterday\",\"event_type\":\"alert\",\"alert\":{}}",
                 "timestamp");
    expect_error("eve", "{\"timestamp\":\"1969-12-31T23:59:59+0000\",\"event_type\":\"anomaly\"}",
                 "timestamp");
    expect_error("eve", "{\"event_type\":\"alert\",\"alert\":{}}", "timestamp");
}

static void test_parse_eve_skip_and_errors(void **state)
{
    (void)state;

    assert_int_equal(run("eve", nth_line(EVE_FILE, 1)), TM_PARSE_SKIP); /* dhcp */
    assert_int_equal(run("eve", "{\"timestamp\":\"x\",\"event_type\":\"flow\"}"), TM_PARSE_SKIP);
    assert_int_equal(run("eve", "{\"event_type\":\"stats\",\"stats\":{}}"), TM_PARSE_SKIP);
    expect_error("eve", "", "eve:");
    expect_error("eve", "Dec 10 06:55:46 LabSZ sshd[24200]: hello", "not a json record");
    expect_error("eve", "{\"event_type\":\"alert\"", "not a json record");
    expect_error("eve", "{\"event_type\":\"alert\"} trailing", "not a json record");
    expect_error("eve", "[1,2,3]", "expected a json object");
    expect_error("eve", "\"alert\"", "eve:");
    expect_error("eve", "{\"timestamp\":\"2024-01-01T00:00:00Z\"}", "event_type");
    expect_error("eve", "{\"event_type\":7}", "event_type");
    expect_error("eve", "{\"timestamp\":\"2024-01-01T00:00:00Z\",\"event_type\":\"alert\"}",
                 "'alert'");
    /* Values of the wrong type are left out, not trusted. */
    expect_event("eve", "{\"timestamp\":\"2024-01-01T00:00:00Z\",\"event_type\":\"alert\","
                        "\"src_ip\":\"999.1.1.1\",\"src_port\":70000,\"dest_ip\":7,"
                        "\"dest_port\":\"80\",\"alert\":{\"severity\":\"high\"}}");
    assert_string_equal(ev.src.ip, "");
    assert_int_equal(ev.src.port, -1);
    assert_string_equal(ev.dst.ip, "");
    assert_int_equal(ev.dst.port, -1);
    assert_int_equal(ev.severity, 4);
    assert_string_equal(ev.summary, "[1:0:0] (no signature)");
}

static void test_parse_eve_long_line(void **state)
{
    size_t n = 20000;
    char *line = malloc(n + 512);
    size_t len;
    (void)state;

    assert_non_null(line);
    len = (size_t)snprintf(line, 512,
                           "{\"timestamp\":\"2024-01-01T00:00:00Z\",\"event_type\":\"alert\","
                           "\"alert\":{\"signature\":\"ET X\"},\"payload_printable\":\"");
    /* Two-byte characters, so the 8 KiB cut has to find a character boundary. */
    for (size_t i = 0; i < n / 2; i++) {
        line[len++] = '\xd0';
        line[len++] = '\xb7';
    }
    line[len++] = '"';
    line[len++] = '}';
    assert_int_equal(run_n("eve", line, len), TM_PARSE_EVENT);
    assert_true(strlen(ev.raw) <= TM_EVENT_RAW_MAX);
    assert_true(strlen(ev.raw) >= TM_EVENT_RAW_MAX - 1);
    free(line);
}

/* ---- auth -------------------------------------------------------------------------- */

#define OPENSSH_FILE "tests/data/syslog/loghub-OpenSSH_2k.log"

static void test_parse_auth_openssh_counts(void **state)
{
    struct tally t;
    (void)state;

    tally_file("auth", OPENSSH_FILE, &t);
    assert_int_equal(t.lines, 2000);
    assert_int_equal(t.errors, 0);
    /*
     * Bruteforce lines, counted with grep on the file:
     *   grep -c 'sshd\[[0-9]*\]: Failed password for '                      518
     *   grep -c 'sshd\[[0-9]*\]: Failed none for '                            4
     *   grep -c 'sshd\[[0-9]*\]: Invalid user '                             113
     *   grep -c 'sshd\[[0-9]*\]: pam_unix(sshd:auth): authentication failure;' 494
     *   grep -c 'message repeated [0-9]* times: \[ Failed password'           2  (5 each)
     *   grep -c 'Too many authentication failures'                            3
     * (grep -c 'Failed publickey', 'maximum authentication attempts' and
     * 'Connection closed by authenticating user' are all 0 here.)
     */
    assert_int_equal(t.bruteforce, 518 + 4 + 113 + 494 + 2 + 3);
    /* grep -c 'Did not receive identification string' -> 10 */
    assert_int_equal(t.scan, 10);
    /* grep -c 'Accepted ' -> 1 */
    assert_int_equal(t.other, 1);
    assert_int_equal(t.events, 1134 + 10 + 1);
    assert_int_equal(t.skips, 2000 - 1145);
    /* Each "message repeated 5 times" event stands for 5 attempts. */
    assert_int_equal(t.count_sum, 1145 + 2 * 4);
    assert_int_equal(t.severity[3], 1134);
    assert_int_equal(t.severity[2], 10);
    assert_int_equal(t.severity[1], 1);
}

static void test_parse_auth_fields(void **state)
{
    (void)state;

    assert_int_equal(
        run_line_with("auth", OPENSSH_FILE,
                      "Failed password for invalid user webmaster from 173.234.31.186 port 38926"),
        TM_PARSE_EVENT);
    assert_int_equal(ev.ts, ms("2025-12-10T06:55:48Z"));
    assert_string_equal(ev.category, "bruteforce");
    assert_int_equal(ev.severity, 3);
    assert_string_equal(ev.attack.technique, "T1110");
    assert_string_equal(ev.attack.tactic, "credential-access");
    assert_string_equal(ev.src.ip, "173.234.31.186");
    assert_int_equal(ev.src.port, 38926);
    assert_string_equal(ev.source.kind, "auth");
    assert_string_equal(ev.source.host, "LabSZ");
    assert_string_equal(ev.summary,
                        "failed password for invalid user webmaster from 173.234.31.186 port "
                        "38926 ssh2");
    assert_string_equal(ev.raw, "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid "
                                "user webmaster from 173.234.31.186 port 38926 ssh2");

    assert_int_equal(run_line_with("auth", OPENSSH_FILE, "message repeated 5 times: [ Failed"),
                     TM_PARSE_EVENT);
    assert_int_equal(ev.count, 5);
    assert_string_equal(ev.src.ip, "5.36.59.76");
    assert_int_equal(ev.src.port, 42393);
    assert_string_equal(ev.summary,
                        "failed password for root from 5.36.59.76 port 42393 ssh2 (repeated 5 "
                        "times)");

    assert_int_equal(run_line_with("auth", OPENSSH_FILE, "Invalid user test9 from 52.80.34.196"),
                     TM_PARSE_EVENT);
    assert_string_equal(ev.category, "bruteforce");
    assert_string_equal(ev.src.ip, "52.80.34.196");
    assert_int_equal(ev.src.port, -1);

    /* PAM names the client by rhost, an address or a host name (then left out). */
    assert_int_equal(run_line_with("auth", OPENSSH_FILE, "rhost=173.234.31.186 "), TM_PARSE_EVENT);
    assert_string_equal(ev.category, "bruteforce");
    assert_string_equal(ev.src.ip, "173.234.31.186");
    assert_int_equal(run_line_with("auth", OPENSSH_FILE, "rhost=ec2-52-80-34-196"), TM_PARSE_EVENT);
    assert_string_equal(ev.src.ip, "");

    assert_int_equal(run_line_with("auth", OPENSSH_FILE, "Accepted password for fztu"),
                     TM_PARSE_EVENT);
    assert_string_equal(ev.category, "other");
    assert_int_equal(ev.severity, 1);
    assert_string_equal(ev.summary,
                        "accepted password for fztu from 119.137.62.142 port 49116 ssh2");
    assert_string_equal(ev.src.ip, "119.137.62.142");
    assert_string_equal(ev.attack.technique, "");

    assert_int_equal(run_line_with("auth", OPENSSH_FILE,
                                   "Did not receive identification string from 123.235.32.19"),
                     TM_PARSE_EVENT);
    assert_string_equal(ev.category, "scan");
    assert_int_equal(ev.severity, 2);
    assert_string_equal(ev.attack.technique, "T1595");
    assert_string_equal(ev.attack.tactic, "reconnaissance");
    assert_string_equal(ev.src.ip, "123.235.32.19");

    /* Newer OpenSSH messages. */
    expect_event("auth", "Mar  1 10:00:00 gw sshd[5]: Connection closed by authenticating user "
                         "root 2001:db8::7 port 4022 [preauth]");
    assert_string_equal(ev.category, "bruteforce");
    assert_string_equal(ev.src.ip, "2001:db8::7");
    assert_int_equal(ev.src.port, 4022);
    expect_event("auth", "Mar  1 10:00:00 gw sshd[5]: error: maximum authentication attempts "
                         "exceeded for root from 198.51.100.4 port 50000 ssh2 [preauth]");
    assert_string_equal(ev.category, "bruteforce");
    assert_string_equal(ev.src.ip, "198.51.100.4");
    assert_int_equal(ev.src.port, 50000);
    expect_event("auth", "2024-05-01T10:00:00.123456+03:00 gw sshd-session[9]: Invalid user a "
                         "from 198.51.100.4 port 50000");
    assert_int_equal(ev.ts, ms("2024-05-01T07:00:00.123Z"));
    assert_int_equal(ev.src.port, 50000);
    /* A user name cannot fake the address: sshd writes the real one last. */
    expect_event("auth", "Mar  1 10:00:00 gw sshd[5]: Invalid user x from 6.6.6.6 port 1 from "
                         "198.51.100.4 port 2");
    assert_string_equal(ev.src.ip, "198.51.100.4");
    assert_int_equal(ev.src.port, 2);
}

static void test_parse_auth_skips(void **state)
{
    static const char *const lines[] = {
        "Dec 10 07:07:45 LabSZ sshd[24206]: Received disconnect from 52.80.34.196: 11: Bye Bye "
        "[preauth]",
        "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster "
        "[preauth]",
        "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
        "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for "
        "ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
        "Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session opened for user "
        "fztu by (uid=0)",
        "Dec 10 07:13:56 LabSZ sshd[24227]: PAM 5 more authentication failures; logname= uid=0 "
        "euid=0 tty=ssh ruser= rhost=5.36.59.76  user=root",
        "Dec 10 07:13:56 LabSZ sshd[1]: Failed publickey for root from 1.2.3.4 port 5 ssh2",
        "Dec 10 07:13:56 LabSZ sshd[1]: error: Failed to allocate internal-sftp for user x",
        "Dec 10 07:13:56 LabSZ sshd[1]: message repeated 3 times: [ Received disconnect ]",
        "Dec 10 07:13:56 LabSZ CRON[1]: pam_unix(cron:session): session opened for user root",
        "Dec 10 07:13:56 LabSZ su: authentication failure; logname= uid=0",
        "Jun 19 04:09:11 combo syslogd 1.4.1: restart.",
        "Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2",
        "Dec 10 07:13:56 LabSZ",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        if (run("auth", lines[i]) != TM_PARSE_SKIP)
            fail_msg("not skipped: '%s' (%s)", lines[i], err);
}

static void test_parse_auth_wazuh_and_linux(void **state)
{
    struct tally t;
    (void)state;

    /* grep -c 'sshd\[[0-9]*\]: Invalid user [^ ]* from' -> 345 of 345 lines */
    tally_file("auth", "tests/data/syslog/wazuh-ruleset-sshd.log", &t);
    assert_int_equal(t.lines, 345);
    assert_int_equal(t.events, 345);
    assert_int_equal(t.bruteforce, 345);
    assert_int_equal(t.with_src_ip, 345);
    assert_string_equal(nth_line("tests/data/syslog/wazuh-ruleset-sshd.log", 1),
                        "Jul  7 10:51:24 eva sshd[19537]: Invalid user admin from 83.15.231.75");
    expect_event("auth", nth_line("tests/data/syslog/wazuh-ruleset-sshd.log", 1));
    assert_int_equal(ev.ts, ms("2025-07-07T10:51:24Z"));
    assert_string_equal(ev.source.host, "eva");
    assert_string_equal(ev.src.ip, "83.15.231.75");
    assert_string_equal(ev.summary, "invalid user admin from 83.15.231.75");

    /* An old Red Hat syslog, where sshd's PAM lines are the only trace:
     * grep -c 'sshd(pam_unix)\[[0-9]*\]: authentication failure;' -> 489 */
    tally_file("auth", "tests/data/syslog/loghub-Linux_2k.log", &t);
    assert_int_equal(t.lines, 2000);
    assert_int_equal(t.errors, 0);
    assert_int_equal(t.events, 489);
    assert_int_equal(t.bruteforce, 489);
}

static void test_parse_auth_year(void **state)
{
    (void)state;

    /* now = 2026-01-01T00:00:00Z */
    expect_event("auth", "Dec 31 23:59:59 h sshd[1]: Invalid user a from 192.0.2.1");
    assert_int_equal(ev.ts, ms("2025-12-31T23:59:59Z"));
    expect_event("auth", "Jan  1 12:00:00 h sshd[1]: Invalid user a from 192.0.2.1");
    assert_int_equal(ev.ts, ms("2026-01-01T12:00:00Z")); /* less than a day ahead */
    expect_event("auth", "Jan  3 00:00:00 h sshd[1]: Invalid user a from 192.0.2.1");
    assert_int_equal(ev.ts, ms("2025-01-03T00:00:00Z"));
    expect_event("auth", "Feb 29 10:00:00 h sshd[1]: Invalid user a from 192.0.2.1");
    assert_int_equal(ev.ts, ms("2024-02-29T10:00:00Z"));
    expect_event("auth", "Jun 05 10:00:00.250 h sshd[1]: Invalid user a from 192.0.2.1");
    assert_int_equal(ev.ts, ms("2025-06-05T10:00:00.250Z"));
    expect_event("auth", "Jun 5 10:00:00 h sshd[1]: Invalid user a from 192.0.2.1");
    assert_int_equal(ev.ts, ms("2025-06-05T10:00:00Z"));
}

static void test_parse_auth_errors(void **state)
{
    (void)state;

    expect_error("auth", "", "auth: expected a time stamp");
    expect_error("auth", "hello world", "auth: expected a time stamp");
    expect_error("auth", "Dec 10", "auth:");
    expect_error("auth", "Dec 10 06:55", "auth:");
    expect_error("auth", "Dec 32 06:55:46 LabSZ sshd[1]: Invalid user a from 1.2.3.4", "auth:");
    expect_error("auth", "Dec 10 24:00:00 LabSZ sshd[1]: Invalid user a from 1.2.3.4", "auth:");
    expect_error("auth", "Xyz 10 06:55:46 LabSZ sshd[1]: Invalid user a from 1.2.3.4", "auth:");
    expect_error("auth", "Dec 10 06:55:46", "auth: expected 'host program[pid]: message'");
    expect_error("auth", "2024-13-01T00:00:00Z h sshd[1]: x", "not RFC 3339");
    expect_error("auth", "{\"event_type\":\"alert\"}", "auth:");
}

/* ---- syslog ------------------------------------------------------------------------ */

static struct tm_syslog_msg split_ok(const char *line)
{
    struct tm_syslog_msg m;
    char why[TM_ERR_LEN] = "";

    if (tm_syslog_split(&ctx, line, strlen(line), &m, why) != 0)
        fail_msg("'%s' did not split: %s", line, why);
    return m;
}

static void assert_msg(const struct tm_syslog_msg *m, const char *want)
{
    if (m->msg_len != strlen(want) || memcmp(m->msg, want, m->msg_len) != 0)
        fail_msg("msg '%.*s', want '%s'", (int)m->msg_len, m->msg, want);
}

#define RFC5424_FILE "tests/data/syslog/rfc5424-examples.log"
#define RFC3164_FILE "tests/data/syslog/rfc3164-examples.log"

static void test_parse_syslog_rfc5424_examples(void **state)
{
    struct tm_syslog_msg m;
    const char *sd1 = "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" "
                      "eventID=\"1011\"]";
    struct tally t;
    (void)state;

    m = split_ok(nth_line(RFC5424_FILE, 1));
    assert_int_equal(m.rfc, 5424);
    assert_int_equal(m.facility, 4);
    assert_int_equal(m.severity, 2);
    assert_int_equal(m.ts, ms("2003-10-11T22:14:15.003Z"));
    assert_string_equal(m.host, "mymachine.example.com");
    assert_string_equal(m.app, "su");
    assert_string_equal(m.procid, "");
    assert_string_equal(m.msgid, "ID47");
    assert_null(m.sd);
    assert_msg(&m, "'su root' failed for lonvick on /dev/pts/8"); /* BOM stripped */

    m = split_ok(nth_line(RFC5424_FILE, 2));
    assert_int_equal(m.facility, 20);
    assert_int_equal(m.severity, 5);
    assert_int_equal(m.ts, ms("2003-08-24T12:14:15.000Z")); /* 05:14:15.000003-07:00 */
    assert_string_equal(m.host, "192.0.2.1");
    assert_string_equal(m.app, "myproc");
    assert_string_equal(m.procid, "8710");
    assert_string_equal(m.msgid, "");
    assert_msg(&m, "%% It's time to make the do-nuts.");

    m = split_ok(nth_line(RFC5424_FILE, 3));
    assert_int_equal(m.ts, ms("2003-10-11T22:14:15.003Z"));
    assert_string_equal(m.host, "mymachine.example.com");
    assert_string_equal(m.app, "evntslog");
    assert_string_equal(m.procid, "");
    assert_string_equal(m.msgid, "ID47");
    assert_int_equal(m.sd_len, strlen(sd1));
    assert_memory_equal(m.sd, sd1, m.sd_len);
    assert_msg(&m, "An application event log entry...");

    m = split_ok(nth_line(RFC5424_FILE, 4));
    assert_string_equal(m.app, "evntslog");
    assert_int_equal(m.sd_len, strlen(sd1) + strlen("[examplePriority@32473 class=\"high\"]"));
    assert_msg(&m, "");

    /* As events: "other", syslog severity mapped, summary the message (or the SD). */
    tally_file("syslog", RFC5424_FILE, &t);
    assert_int_equal(t.events, 4);
    expect_event("syslog", nth_line(RFC5424_FILE, 1));
    assert_string_equal(ev.category, "other");
    assert_int_equal(ev.severity, 7); /* crit */
    assert_string_equal(ev.summary, "'su root' failed for lonvick on /dev/pts/8");
    assert_string_equal(ev.source.kind, "syslog");
    assert_string_equal(ev.source.host, "mymachine.example.com");
    expect_event("syslog", nth_line(RFC5424_FILE, 4));
    assert_int_equal(ev.severity, 3); /* notice */
    assert_non_null(strstr(ev.summary, "[examplePriority@32473 class=\"high\"]"));
}

static void test_parse_syslog_rfc3164_examples(void **state)
{
    struct tm_syslog_msg m;
    (void)state;

    m = split_ok(nth_line(RFC3164_FILE, 1));
    assert_int_equal(m.rfc, 3164);
    assert_int_equal(m.facility, 4);
    assert_int_equal(m.severity, 2);
    assert_int_equal(m.ts, ms("2025-10-11T22:14:15Z")); /* year from ctx: 2026 is ahead */
    assert_string_equal(m.host, "mymachine");
    assert_string_equal(m.app, "su");
    assert_string_equal(m.procid, "");
    assert_string_equal(m.msgid, "");
    assert_msg(&m, "'su root' failed for lonvick on /dev/pts/8");

    /* No TAG: all of it is message. */
    m = split_ok(nth_line(RFC3164_FILE, 2));
    assert_int_equal(m.facility, 1);
    assert_int_equal(m.severity, 5);
    assert_int_equal(m.ts, ms("2025-02-05T17:32:18Z"));
    assert_string_equal(m.host, "10.0.0.99");
    assert_string_equal(m.app, "");
    assert_msg(&m, "Use the BFG!");

    /* "CST 1987" is not part of a 3164 TIMESTAMP: CST is read as the HOSTNAME. */
    m = split_ok(nth_line(RFC3164_FILE, 3));
    assert_int_equal(m.facility, 20);
    assert_int_equal(m.severity, 5);
    assert_int_equal(m.ts, ms("2025-08-24T05:34:00Z"));
    assert_string_equal(m.host, "CST");
    assert_string_equal(m.app, "");
    assert_msg(&m, "1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  "
                   "Ingredients: Mix=OK, Jennifer=OK, Grill=Broken");

    /* No valid TIMESTAMP: all of it is MSG (RFC 3164 section 4.3.3); ts from ctx. */
    m = split_ok(nth_line(RFC3164_FILE, 4));
    assert_int_equal(m.facility, 0);
    assert_int_equal(m.severity, 0);
    assert_int_equal(m.ts, -1);
    assert_string_equal(m.host, "");
    assert_msg(&m, "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: "
                   "That's All Folks!");
    expect_event("syslog", nth_line(RFC3164_FILE, 4));
    assert_int_equal(ev.ts, ctx.now_ms);
    assert_int_equal(ev.severity, 9); /* emergency */

    /* What real senders do. */
    m = split_ok("<34>Oct 11 22:14:15 su: no host here");
    assert_string_equal(m.host, "");
    assert_string_equal(m.app, "su");
    assert_msg(&m, "no host here");
    m = split_ok("<13>Oct  1 22:14:15 host postfix/smtpd[123]: connect");
    assert_string_equal(m.host, "host");
    assert_string_equal(m.app, "postfix/smtpd");
    assert_string_equal(m.procid, "123");
    assert_msg(&m, "connect");
    m = split_ok("<13>2024-05-01T10:00:00.123456+03:00 gw app[7]: iso");
    assert_int_equal(m.ts, ms("2024-05-01T07:00:00.123Z"));
    assert_string_equal(m.host, "gw");
    assert_string_equal(m.app, "app");
    m = split_ok("<166>Jan 05 2024 10:00:00 asa : %ASA-6-302013: Built");
    assert_int_equal(m.ts, ms("2024-01-05T10:00:00Z"));
    assert_string_equal(m.host, "asa");
    assert_msg(&m, ": %ASA-6-302013: Built");
    m = split_ok("<13>Oct 11 22:14:15.250 fe80::1 app: v6 host");
    assert_int_equal(m.ts, ms("2025-10-11T22:14:15.250Z"));
    assert_string_equal(m.host, "fe80::1");
    assert_string_equal(m.app, "app");
    m = split_ok("<13>Oct 11 22:14:15 host");
    assert_string_equal(m.host, "host");
    assert_msg(&m, "");
    m = split_ok("<13>Oct 11 22:14:15 host app[1]:\r\n");
    assert_string_equal(m.app, "app");
    assert_msg(&m, "");
}

static void test_parse_syslog_severity_map(void **state)
{
    static const int want[8] = {9, 8, 7, 5, 4, 3, 2, 1};
    char line[64];
    (void)state;

    for (int s = 0; s < 8; s++) {
        snprintf(line, sizeof(line), "<%d>Oct 11 22:14:15 host app: hello", 8 + s);
        expect_event("syslog", line);
        assert_int_equal(ev.severity, want[s]);
        assert_string_equal(ev.category, "other");
        assert_string_equal(ev.summary, "hello");
        assert_string_equal(ev.raw, line);
    }
}

static void test_parse_syslog_structured_data(void **state)
{
    struct tm_syslog_msg m;
    const char *sd = "[a@1 k=\"x\\]y\\\"z\\\\\" e=\"\"][b@2]";
    char line[256];
    (void)state;

    snprintf(line, sizeof(line), "<13>1 - - - - - %s \xEF\xBB\xBFhello", sd);
    m = split_ok(line);
    assert_int_equal(m.ts, -1);
    assert_string_equal(m.host, "");
    assert_int_equal(m.sd_len, strlen(sd));
    assert_memory_equal(m.sd, sd, m.sd_len);
    assert_msg(&m, "hello");
    expect_event("syslog", line);
    assert_int_equal(ev.ts, ctx.now_ms);
    assert_string_equal(ev.source.host, "");
    assert_string_equal(ev.summary, "hello");

    m = split_ok("<13>1 2024-01-01T00:00:00Z h a p m - ");
    assert_msg(&m, "");
}

static void test_parse_syslog_routing(void **state)
{
    (void)state;

    /* sshd through syslog: the auth logic, kind "auth". */
    expect_event("syslog", "<38>Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid "
                           "user webmaster from 173.234.31.186 port 38926 ssh2");
    assert_string_equal(ev.category, "bruteforce");
    assert_string_equal(ev.source.kind, "auth");
    assert_string_equal(ev.source.host, "LabSZ");
    assert_int_equal(ev.src.port, 38926);
    assert_int_equal(ev.ts, ms("2025-12-10T06:55:48Z"));
    assert_int_equal(run("syslog", "<38>Dec 10 07:07:45 LabSZ sshd[24206]: Received disconnect "
                                   "from 52.80.34.196: 11: Bye Bye [preauth]"),
                     TM_PARSE_SKIP);
    expect_event("syslog", "<86>1 2024-05-01T10:00:00Z gw sshd 77 - - Invalid user x from "
                           "192.0.2.8 port 2222");
    assert_string_equal(ev.category, "bruteforce");
    assert_string_equal(ev.source.host, "gw");
    assert_int_equal(ev.ts, ms("2024-05-01T10:00:00Z"));

    /* CEF through syslog: the CEF parser, host from the header unless dvchost says. */
    expect_event("syslog", "<134>Feb 10 10:00:00 fw1 CEF:0|Vendor|FW|1.0|42|Port scan "
                           "detected|6|src=198.51.100.7 dst=10.0.0.1 dpt=22");
    assert_string_equal(ev.source.kind, "cef");
    assert_string_equal(ev.source.host, "fw1");
    assert_string_equal(ev.category, "scan");
    assert_int_equal(ev.severity, 6);
    assert_int_equal(ev.ts, ms("2025-02-10T10:00:00Z"));
    assert_int_equal(ev.dst.port, 22);
    expect_event("syslog", "<134>1 2024-05-01T10:00:00Z fw2 ids - - - CEF:0|V|IDS|1|7|DDoS "
                           "flood|9|dvchost=ids-a rt=1714557600000");
    assert_string_equal(ev.source.host, "ids-a");
    assert_string_equal(ev.category, "ddos");
    assert_int_equal(ev.ts, 1714557600000LL);
    expect_event("syslog", "<134>Feb 10 10:00:00 CEF:0|V|P|1|7|Phishing mail|3|");
    assert_string_equal(ev.source.host, "");
    assert_string_equal(ev.category, "phishing");
    expect_event("syslog", "<134>Feb 10 10:00:00 host app: CEF:0|V|P|1|7|Malware|3|");
    assert_string_equal(ev.category, "malware");
    /* Not valid CEF after all: still a good syslog message. */
    expect_event("syslog", "<134>Feb 10 10:00:00 host app: CEF:0|broken");
    assert_string_equal(ev.source.kind, "syslog");
    assert_string_equal(ev.summary, "CEF:0|broken");
}

static void test_parse_syslog_errors(void **state)
{
    (void)state;

    expect_error("syslog", "", "syslog: empty line");
    expect_error("syslog", "Oct 11 22:14:15 mymachine su: hi", "missing '<PRI>'");
    expect_error("syslog", "<>Oct 11 22:14:15 h su: hi", "malformed '<PRI>'");
    expect_error("syslog", "<1234>Oct 11 22:14:15 h su: hi", "malformed '<PRI>'");
    expect_error("syslog", "<13", "malformed '<PRI>'");
    expect_error("syslog", "<192>Oct 11 22:14:15 h su: hi", "out of range");
    expect_error("syslog", "<13>2 2003-10-11T22:14:15Z h a p m - x", "version");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15.003Z host", "ends after HOSTNAME");
    expect_error("syslog", "<13>1 yesterday h a p m - x", "TIMESTAMP 'yesterday'");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z h a p m [x", "not closed");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z h a p m [x k=v]", "expected '=\"'");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z h a p m [x k=\"v]", "not closed");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z h a p m [x k=\"v\"]y", "expected a space");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z h a p m x", "structured data");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z h a p m [ k=\"v\"]", "SD-ID");
    expect_error("syslog",
                 "<13>1 2003-10-11T22:14:15Z h "
                 "an-app-name-that-is-much-longer-than-forty-eight-bytes p m - x",
                 "APP-NAME is longer than 48");
    expect_error("syslog", "<13>1 2003-10-11T22:14:15Z  a p m - x", "HOSTNAME is empty");
}

/* ---- cef --------------------------------------------------------------------------- */

#define CEF_FILE "tests/data/cef/logstash-codec-cef-spec-samples.cef"

static void test_parse_cef_spec_samples(void **state)
{
    struct tally t;
    (void)state;

    /* All 27 samples are CEF with a full header (wc -l -> 27; grep -c 'CEF:0|' -> 27);
     * the odd ones (an extension without key=value, an unreadable severity) still give an
     * event, with what could be read. */
    tally_file("cef", CEF_FILE, &t);
    assert_int_equal(t.lines, 27);
    assert_int_equal(t.events, 27);
    assert_int_equal(t.errors, 0);

    expect_event("cef", nth_line(CEF_FILE, 1));
    assert_string_equal(ev.source.kind, "cef");
    assert_string_equal(ev.category, "malware");
    assert_int_equal(ev.severity, 10);
    assert_string_equal(ev.src.ip, "10.0.0.192");
    assert_int_equal(ev.src.port, 1232);
    assert_string_equal(ev.dst.ip, "12.121.122.82");
    assert_int_equal(ev.dst.port, -1);
    assert_int_equal(ev.ts, ctx.now_ms);
    assert_string_equal(ev.summary,
                        "trojan successfully stopped (security threatmanager, signature 100)");
    assert_string_equal(ev.raw, nth_line(CEF_FILE, 1));

    expect_event("cef", nth_line(CEF_FILE, 3)); /* extension is not key=value */
    assert_string_equal(ev.src.ip, "");
    expect_event("cef", nth_line(CEF_FILE, 4)); /* empty vendor and product */
    assert_string_equal(ev.summary, "trojan successfully stopped (signature 100)");

    /* Header escapes: "\\" is a backslash, "\|" a pipe. */
    expect_event("cef", nth_line(CEF_FILE, 10));
    assert_string_equal(ev.summary,
                        "tro\\jan successfully stopped (secu\\rity threat\\manager, signature "
                        "10\\0)");
    assert_int_equal(ev.severity, 5); /* severity "\10" is unreadable */
    expect_event("cef", nth_line(CEF_FILE, 11));
    assert_string_equal(ev.summary, "trojan successfully stopped (security\\| threatmanager\\, "
                                    "signature 100)");
    assert_int_equal(ev.severity, 10);
    expect_event("cef", nth_line(CEF_FILE, 12));
    assert_string_equal(ev.summary,
                        "tro|jan successfully stopped (secu|rity threatmanager|, signature 10|0)");

    /* rt as "MMM dd yyyy HH:mm:ss"; values with spaces up to the next key. */
    expect_event("cef", nth_line(CEF_FILE, 9));
    assert_int_equal(ev.ts, ms("2018-09-07T14:50:39Z"));
    assert_string_equal(ev.src.ip, "2.2.2.2");
    assert_string_equal(ev.dst.ip, "1.1.1.1");
    assert_int_equal(ev.severity, 2);
    assert_string_equal(ev.category, "other");
    assert_string_equal(ev.summary, "Success (FooBar Web Gateway, signature 200)");

    /* Full key names and dvchost. */
    expect_event("cef", nth_line(CEF_FILE, 16));
    assert_string_equal(ev.source.host, "loghost");
    assert_string_equal(ev.src.ip, "192.168.0.1");
    assert_int_equal(ev.dst.port, 53);
    assert_int_equal(ev.severity, 5);

    /* Double spaces, a value full of spaces and escaped '=' before dst. */
    expect_event("cef", nth_line(CEF_FILE, 15));
    assert_string_equal(ev.dst.ip, "12.121.122.82");
    assert_int_equal(ev.src.port, 1232);
    expect_event("cef", nth_line(CEF_FILE, 20));
    assert_string_equal(ev.src.ip, "10.0.0.192");
    assert_string_equal(ev.dst.ip, "12.121.122.82");
    expect_event("cef", nth_line(CEF_FILE, 22));
    assert_int_equal(ev.src.port, 11024);
    assert_int_equal(ev.dst.port, 9200);

    /* "Syslogdate Sysloghost CEF:...": the word before the payload is the host. */
    expect_event("cef", nth_line(CEF_FILE, 23));
    assert_string_equal(ev.source.host, "Sysloghost");
    assert_string_equal(ev.src.ip, "10.0.0.192");

    expect_event("cef", nth_line("tests/data/cef/tenzir-cynet.cef", 1));
    assert_string_equal(ev.category, "malware"); /* "Cobalt Strike" */
    assert_int_equal(ev.severity, 8);
    assert_string_equal(ev.src.ip, "172.31.5.93");
    assert_int_equal(ev.ts, ctx.now_ms); /* rt=3/30/2022 10:55:34 AM is not a CEF date */
    assert_string_equal(ev.summary, "Memory Pattern - Cobalt Strike Beacon ReflectiveLoader "
                                    "(Cynet Cynet 360, signature 0)");
}

static void test_parse_cef_extension_escapes(void **state)
{
    (void)state;

    expect_event("cef", "CEF:1|V|P|1|sig|Login failure|Very-High|dvchost=fw\\=1\\\\a\\nb "
                        "src=10.1.1.1 spt=99999 rt=1700000000000 msg=a \\| b");
    assert_string_equal(ev.source.host, "fw=1\\a\nb");
    assert_string_equal(ev.src.ip, "10.1.1.1");
    assert_int_equal(ev.src.port, -1); /* out of range */
    assert_int_equal(ev.ts, 1700000000000LL);
    assert_int_equal(ev.severity, 10);
    assert_string_equal(ev.category, "bruteforce");

    expect_event("cef", "CEF:0|V|P|1|1|x|Low|rt=1700000000 sourceAddress=2001:db8::2 "
                        "c6a3=2001:db8::3 sourcePort=8 destinationPort=9");
    assert_int_equal(ev.ts, 1700000000000LL); /* seconds */
    assert_string_equal(ev.src.ip, "2001:db8::2");
    assert_string_equal(ev.dst.ip, "2001:db8::3");
    assert_int_equal(ev.src.port, 8);
    assert_int_equal(ev.dst.port, 9);
    assert_int_equal(ev.severity, 3);

    expect_event("cef", "CEF:0|V|P|1|1|x|medium|rt=Sep 07 2018 14:50:39.250 +02:00");
    assert_int_equal(ev.ts, ms("2018-09-07T12:50:39.250Z"));
    assert_int_equal(ev.severity, 5);
    expect_event("cef", "CEF:0|V|P|1|1|x|HIGH|rt=Sep 07 14:50:39 UTC");
    assert_int_equal(ev.ts, ms("2025-09-07T14:50:39Z"));
    assert_int_equal(ev.severity, 8);
    expect_event("cef", "CEF:0|V|P|1|1|x|0|rt=2018-09-07T14:50:39Z");
    assert_int_equal(ev.ts, ms("2018-09-07T14:50:39Z"));
    assert_int_equal(ev.severity, 1);
    expect_event("cef", "CEF:0|V|P|1|1|x|1|rt=Sep 07 2018 14:50:39 -0130");
    assert_int_equal(ev.ts, ms("2018-09-07T16:20:39Z"));
    /* Unknown zones and junk fall back to the syslog time or now. */
    expect_event("cef", "CEF:0|V|P|1|1|x|Unknown|rt=Sep 07 2018 14:50:39 EET");
    assert_int_equal(ev.ts, ctx.now_ms);
    expect_event("cef", "Oct 11 22:14:15 fw CEF:0|V|P|1|1|x|11|rt=99999999999999999999");
    assert_int_equal(ev.ts, ms("2025-10-11T22:14:15Z"));
    assert_string_equal(ev.source.host, "fw");
    assert_int_equal(ev.severity, 5);
}

static void test_parse_cef_categories(void **state)
{
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"DDoS attack in progress", "ddos"},
        {"SYN Flood", "ddos"},
        {"DoS detected", "ddos"},
        {"Windows update installed", "other"}, /* "dos" is a whole word only */
        {"Phishing URL clicked", "phishing"},
        {"Ransomware behaviour", "ransomware"},
        {"Ransomware trojan", "ransomware"},
        {"Disk wiper detected", "wiper"},
        {"Trojan.Generic", "malware"},
        {"Virus found", "malware"},
        {"Antivirus updated", "other"},
        {"Brute force login", "bruteforce"},
        {"Multiple login failures", "bruteforce"},
        {"Port scan", "scan"},
        {"Network reconnaissance", "scan"},
        {"Exploit attempt CVE-2021-44228", "exploit"},
        {"SQL Injection", "exploit"},
        {"Website defacement", "defacement"},
        {"Data exfiltration", "data-leak"},
        {"Credential leak", "data-leak"},
        {"User logged in", "other"},
    };
    char line[256];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(line, sizeof(line), "CEF:0|V|P|1|sig|%s|5|", cases[i].name);
        expect_event("cef", line);
        if (strcmp(ev.category, cases[i].want) != 0)
            fail_msg("'%s': category %s, want %s", cases[i].name, ev.category, cases[i].want);
    }
    /* The signature id counts too. */
    expect_event("cef", "CEF:0|V|P|1|scan:7|Alert|5|");
    assert_string_equal(ev.category, "scan");
}

static void test_parse_cef_errors(void **state)
{
    (void)state;

    expect_error("cef", "", "cef: no 'CEF:<version>|'");
    expect_error("cef", "hello world", "cef: no 'CEF:<version>|'");
    expect_error("cef", "CEF:x|a|b|c|d|e|f|", "cef: no 'CEF:<version>|'");
    expect_error("cef", "xCEF:0|a|b|c|d|e|f|", "cef: no 'CEF:<version>|'");
    expect_error("cef", "CEF:0|a|b", "cef: the header has 2 of the 7 '|'");
    expect_error("cef", "CEF:0|a|b|c|d|e|f", "cef: the header has 6 of the 7 '|'");
    expect_error("cef", "CEF:0|a|b|c|d|e|f\\|", "cef: the header has 6 of the 7 '|'");
    expect_error("cef", "CEF:0123|a|b|c|d|e|f|", "cef: the version");
    expect_error("cef", "CEF:0 |a|b|c|d|e|f|", "cef: the version");
}

/* ---- json -------------------------------------------------------------------------- */

static void test_parse_json(void **state)
{
    (void)state;

    expect_event("json", "{\"ts\":\"2026-11-23T07:22:05.123Z\",\"category\":\"ddos\","
                         "\"severity\":7,\"source\":{\"kind\":\"json\",\"host\":\"h\"},"
                         "\"summary\":\"flood\"}");
    assert_int_equal(ev.ts, ms("2026-11-23T07:22:05.123Z"));
    assert_string_equal(ev.category, "ddos");
    assert_int_equal(ev.severity, 7);
    assert_string_equal(ev.source.host, "h");
    expect_error("json",
                 "{\"ts\":\"2026-11-23T07:22:05.123Z\",\"category\":\"ddos\","
                 "\"severity\":11}",
                 "json: field 'severity'");
    expect_error("json", "{\"category\":\"ddos\",\"severity\":1}", "json: field 'ts'");
    expect_error("json", "not json", "json:");
    expect_error("json", "", "json:");
}

/* ---- every parser ------------------------------------------------------------------ */

static void test_parse_invalid_utf8(void **state)
{
    (void)state;

    expect_event("eve", "{\"timestamp\":\"2019-03-15T21:35:36.418743+0100\","
                        "\"event_type\":\"alert\",\"host\":\"s\xc3\"," /* cut character */
                        "\"alert\":{\"signature\":\"ET bad \xff\xfe name\",\"gid\":1,"
                        "\"signature_id\":5,\"rev\":1}}");
    assert_string_equal(ev.summary, "[1:5:1] ET bad ?? name");
    assert_string_equal(ev.source.host, "s?");
    assert_non_null(strstr(ev.raw, "ET bad ?? name"));

    expect_event("auth", "Dec 10 06:55:46 La\xff"
                         "b sshd[24200]: Invalid user \xc3\x28"
                         "adm from 173.234.31.186");
    assert_string_equal(ev.source.host, "La?b");
    assert_string_equal(ev.summary, "invalid user ?(adm from 173.234.31.186");
    assert_string_equal(ev.src.ip, "173.234.31.186");

    /* A cut 3-byte character in the host, a surrogate (ED A0 80) in the message. */
    expect_event("syslog", "<13>Oct 11 22:14:15 h\xe2\x82 app: caf\xc3\xa9 \xed\xa0\x80 x");
    assert_string_equal(ev.source.host, "h??");
    assert_string_equal(ev.summary, "caf\xc3\xa9 ??? x");
    expect_event("syslog", "<13>1 - h\xc0\xaf app - - - overlong \xc0\xaf");
    assert_string_equal(ev.source.host, "h??");
    assert_string_equal(ev.summary, "overlong ??");

    expect_event("cef", "CEF:0|V\xff|P|1|1|Port sc\x80"
                        "an|3|dvchost=\xf8x src=10.0.0.1");
    assert_string_equal(ev.summary, "Port sc?an (V? P, signature 1)");
    assert_string_equal(ev.source.host, "?x");
}

static void test_parse_embedded_nul_and_long_text(void **state)
{
    static const char nul_syslog[] = "<13>Oct 11 22:14:15 host app: a\0b";
    static const char nul_auth[] = "Dec 10 06:55:46 h sshd[1]: Invalid user a\0b from 192.0.2.1";
    static const char nul_cef[] = "CEF:0|V|P|1|1|a\0b|3|src=10.0.0.1";
    size_t n = 3000, len;
    char *line = malloc(n * 2 + 64 + 3 * 3000);
    (void)state;

    assert_int_equal(run_n("syslog", nul_syslog, sizeof(nul_syslog) - 1), TM_PARSE_EVENT);
    assert_string_equal(ev.summary, "a?b");
    assert_string_equal(ev.raw, "<13>Oct 11 22:14:15 host app: a?b");
    assert_int_equal(run_n("auth", nul_auth, sizeof(nul_auth) - 1), TM_PARSE_EVENT);
    assert_string_equal(ev.summary, "invalid user a?b from 192.0.2.1");
    assert_int_equal(run_n("cef", nul_cef, sizeof(nul_cef) - 1), TM_PARSE_EVENT);
    assert_string_equal(ev.src.ip, "10.0.0.1");
    assert_int_equal(run_n("eve", "{\"a\":1}\0", 9), TM_PARSE_ERROR);

    /* A long message: summary and raw are cut at their limits, between characters. */
    assert_non_null(line);
    len = (size_t)snprintf(line, 64, "<13>Oct 11 22:14:15 host app: x");
    for (size_t i = 0; i < n * 2; i += 2) {
        line[len++] = '\xd0';
        line[len++] = '\xb7';
    }
    for (int k = 0; k < 3; k++) {
        assert_int_equal(run_n("syslog", line, len), TM_PARSE_EVENT);
        assert_int_equal(strlen(ev.summary), TM_EVENT_SUMMARY_MAX - 1); /* "x" + 511 x 2 */
        assert_true(strlen(ev.raw) == len || strlen(ev.raw) >= TM_EVENT_RAW_MAX - 1);
        len += 3000; /* grow into the raw limit on the next rounds */
        for (size_t i = len - 3000; i < len; i++)
            line[i] = 'y';
    }
    free(line);
}

/* Every parser on every corpus line and on truncations of them: never crashes, events
 * always validate (checked in run_n). */
static void test_parse_all_parsers_all_files(void **state)
{
    static const char *const files[] = {
        EVE_FILE,
        "tests/data/suricata/eve-tenzir-ctu13.json",
        OPENSSH_FILE,
        "tests/data/syslog/loghub-Linux_2k.log",
        "tests/data/syslog/wazuh-ruleset-sshd.log",
        RFC5424_FILE,
        RFC3164_FILE,
        CEF_FILE,
        "tests/data/cef/tenzir-cynet.cef",
    };
    struct tally t;
    (void)state;

    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
        for (size_t p = 0; p < tm_parsers_count; p++)
            tally_file(tm_parsers[p].name, files[f], &t);
    for (int i = 1; i <= 27; i++) {
        const char *l = nth_line(CEF_FILE, i);
        for (size_t cut = 0; cut <= strlen(l); cut += 7)
            for (size_t p = 0; p < tm_parsers_count; p++)
                run_n(tm_parsers[p].name, l, cut);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_eve_corpus_counts),
        cmocka_unit_test(test_parse_eve_alert_fields),
        cmocka_unit_test(test_parse_eve_anomaly),
        cmocka_unit_test(test_parse_eve_category_and_severity),
        cmocka_unit_test(test_parse_eve_attack_metadata),
        cmocka_unit_test(test_parse_eve_timestamps),
        cmocka_unit_test(test_parse_eve_skip_and_errors),
        cmocka_unit_test(test_parse_eve_long_line),
        cmocka_unit_test(test_parse_auth_openssh_counts),
        cmocka_unit_test(test_parse_auth_fields),
        cmocka_unit_test(test_parse_auth_skips),
        cmocka_unit_test(test_parse_auth_wazuh_and_linux),
        cmocka_unit_test(test_parse_auth_year),
        cmocka_unit_test(test_parse_auth_errors),
        cmocka_unit_test(test_parse_syslog_rfc5424_examples),
        cmocka_unit_test(test_parse_syslog_rfc3164_examples),
        cmocka_unit_test(test_parse_syslog_severity_map),
        cmocka_unit_test(test_parse_syslog_structured_data),
        cmocka_unit_test(test_parse_syslog_routing),
        cmocka_unit_test(test_parse_syslog_errors),
        cmocka_unit_test(test_parse_cef_spec_samples),
        cmocka_unit_test(test_parse_cef_extension_escapes),
        cmocka_unit_test(test_parse_cef_categories),
        cmocka_unit_test(test_parse_cef_errors),
        cmocka_unit_test(test_parse_json),
        cmocka_unit_test(test_parse_invalid_utf8),
        cmocka_unit_test(test_parse_embedded_nul_and_long_text),
        cmocka_unit_test(test_parse_all_parsers_all_files),
    };
    return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
