/*
 * test_event.c - the canonical event codec: round trips over every field, and one test
 * per rejection class with the field and reason it must name.
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

#include "tm/tm_event.h"

/* A stamped event that uses every field of schema v1. */
static const char full_json[] =
    "{\"schema\":1,\"id\":\"01JD6Q7Z8X9Y0ABCDEFGHJKMNP\",\"ts\":\"2026-11-23T07:22:05.123Z\","
    "\"received\":\"2026-11-23T07:22:05.456Z\",\"operator\":\"ua-energy-001\","
    "\"sector\":\"energy\",\"region\":\"UA-32\",\"agent\":\"agent-7\",\"seq\":42,"
    "\"source\":{\"kind\":\"auth\",\"host\":\"gw1.example.ua\"},\"category\":\"bruteforce\","
    "\"severity\":7,\"confidence\":80,"
    "\"attack\":{\"technique\":\"T1110.001\",\"tactic\":\"credential-access\"},"
    "\"src\":{\"ip\":\"203.0.113.9\",\"port\":51234},"
    "\"dst\":{\"ip\":\"2001:db8::1\",\"port\":22,\"asset\":\"scada-hmi-2\"},"
    "\"count\":57,\"summary\":\"57 failed logins for root \xd0\xb7 203.0.113.9\","
    "\"raw\":\"Failed password for root from 203.0.113.9 port 51234 ssh2\"}";

static void fill_full(struct tm_event *e)
{
    char err[TM_ERR_LEN];
    assert_int_equal(tm_event_decode(e, full_json, strlen(full_json), TM_EVENT_STAMPED, err),
                     TM_EVENT_OK);
}

/* Decodes full_json after setting (or, with value NULL, deleting) one member. */
static enum tm_event_reason decode_modified(const char *path, json_t *value,
                                            enum tm_event_mode mode, char *err)
{
    json_error_t je;
    json_t *root = json_loads(full_json, 0, &je);
    json_t *obj = root;
    char key[64];
    const char *dot = strchr(path, '.');
    struct tm_event e;
    enum tm_event_reason r;
    char *text;

    assert_non_null(root);
    if (dot != NULL) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
        obj = json_object_get(root, key);
        assert_non_null(obj);
        path = dot + 1;
    }
    if (value == NULL)
        json_object_del(obj, path);
    else
        json_object_set_new(obj, path, value);
    text = json_dumps(root, JSON_COMPACT);
    r = tm_event_decode(&e, text, strlen(text), mode, err);
    free(text);
    json_decref(root);
    return r;
}

static void expect_reject(const char *text, enum tm_event_reason want, const char *needle)
{
    struct tm_event e;
    char err[TM_ERR_LEN] = "";
    enum tm_event_reason r = tm_event_decode(&e, text, strlen(text), TM_EVENT_STAMPED, err);

    if (r != want || strstr(err, needle) == NULL)
        fail_msg("input %.80s: got %s '%s', want %s containing '%s'", text, tm_event_reason_name(r),
                 err, tm_event_reason_name(want), needle);
}

static void expect_modified(const char *path, json_t *value, enum tm_event_reason want,
                            const char *needle)
{
    char err[TM_ERR_LEN] = "";
    enum tm_event_reason r = decode_modified(path, value, TM_EVENT_STAMPED, err);

    if (r != want || strstr(err, needle) == NULL)
        fail_msg("%s: got %s '%s', want %s containing '%s'", path, tm_event_reason_name(r), err,
                 tm_event_reason_name(want), needle);
}

static void test_event_decode_full(void **state)
{
    struct tm_event e;
    (void)state;

    fill_full(&e);
    assert_string_equal(e.id, "01JD6Q7Z8X9Y0ABCDEFGHJKMNP");
    assert_int_equal(e.ts, 1795418525123LL);
    assert_int_equal(e.received - e.ts, 333);
    assert_string_equal(e.operator_id, "ua-energy-001");
    assert_string_equal(e.sector, "energy");
    assert_string_equal(e.region, "UA-32");
    assert_string_equal(e.agent, "agent-7");
    assert_int_equal(e.seq, 42);
    assert_string_equal(e.source.kind, "auth");
    assert_string_equal(e.source.host, "gw1.example.ua");
    assert_string_equal(e.category, "bruteforce");
    assert_int_equal(e.severity, 7);
    assert_int_equal(e.confidence, 80);
    assert_string_equal(e.attack.technique, "T1110.001");
    assert_string_equal(e.attack.tactic, "credential-access");
    assert_string_equal(e.src.ip, "203.0.113.9");
    assert_int_equal(e.src.port, 51234);
    assert_string_equal(e.src.asset, "");
    assert_string_equal(e.dst.ip, "2001:db8::1");
    assert_int_equal(e.dst.port, 22);
    assert_string_equal(e.dst.asset, "scada-hmi-2");
    assert_int_equal(e.count, 57);
    assert_non_null(strstr(e.summary, "\xd0\xb7"));
    assert_non_null(strstr(e.raw, "port 51234"));
}

static void test_event_roundtrip_full(void **state)
{
    struct tm_event e, back;
    char err[TM_ERR_LEN];
    size_t len;
    char *text;
    (void)state;

    fill_full(&e);
    text = tm_event_encode(&e, &len);
    assert_non_null(text);
    /* Encoding keeps schema order, so the canonical text comes back byte for byte. */
    assert_string_equal(text, full_json);
    assert_int_equal(tm_event_decode(&back, text, len, TM_EVENT_STAMPED, err), TM_EVENT_OK);
    assert_true(tm_event_equal(&e, &back));
    free(text);
}

static void test_event_roundtrip_minimal_and_edges(void **state)
{
    struct tm_event e, back;
    char err[TM_ERR_LEN];
    char buf[TM_EVENT_JSON_MAX];
    int n;
    (void)state;

    tm_event_init(&e);
    tm_id_new(e.id);
    e.ts = 0;                       /* the epoch itself */
    e.received = 253402300799999LL; /* 9999-12-31T23:59:59.999Z */
    snprintf(e.operator_id, sizeof(e.operator_id), "op");
    snprintf(e.sector, sizeof(e.sector), "other");
    snprintf(e.category, sizeof(e.category), "other");
    e.severity = 1;
    e.confidence = 0;
    e.seq = 0;
    e.src.port = 0;
    e.count = 1000000000000LL;
    /* Control characters, quotes, backslashes and 4-byte UTF-8 survive escaping. */
    snprintf(e.summary, sizeof(e.summary), "tab\there \"q\" back\\slash \xf0\x9f\x94\xa5 \x01");
    memset(e.raw, 'r', TM_EVENT_RAW_MAX);
    e.raw[TM_EVENT_RAW_MAX] = '\0';
    assert_int_equal(tm_event_validate(&e, TM_EVENT_STAMPED, err), TM_EVENT_OK);

    n = tm_event_encode_buf(&e, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(tm_event_decode(&back, buf, (size_t)n, TM_EVENT_STAMPED, err), TM_EVENT_OK);
    assert_true(tm_event_equal(&e, &back));
    assert_int_equal(back.src.port, 0);
    assert_string_equal(back.src.ip, "");
    /* A buffer one byte short of the text is refused, not overrun. */
    assert_int_equal(tm_event_encode_buf(&e, buf, (size_t)n - 1), -1);
}

/* The writer's output is JSON another parser reads back byte for byte. */
static void test_event_encode_escapes_for_other_parsers(void **state)
{
    struct tm_event e;
    char summary[64];
    json_error_t je;
    json_t *root;
    char *text;
    size_t len;
    int n = 0;
    (void)state;

    fill_full(&e);
    for (int c = 1; c < 0x20; c++)
        summary[n++] = (char)c;
    summary[n++] = '"';
    summary[n++] = '\\';
    summary[n++] = 0x7f;
    summary[n++] = (char)0xc3; /* U+00E9 */
    summary[n++] = (char)0xa9;
    summary[n] = '\0';
    memcpy(e.summary, summary, (size_t)n + 1);
    text = tm_event_encode(&e, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "\\u001f"));
    assert_non_null(strstr(text, "\\n"));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "summary")), summary);
    assert_int_equal(json_integer_value(json_object_get(root, "severity")), e.severity);
    assert_int_equal(json_integer_value(json_object_get(root, "count")), e.count);
    json_decref(root);
    free(text);
}

static void test_event_roundtrip_many(void **state)
{
    static const char *const sectors[] = {"local-government", "state-registries",
                                          "defence-industry", "drinking-water"};
    static const char *const cats[] = {"phishing", "malware", "ddos", "wiper"};
    (void)state;

    for (int i = 0; i < 200; i++) {
        struct tm_event e, back;
        char err[TM_ERR_LEN];
        size_t len;
        char *text;

        tm_event_init(&e);
        tm_id_new(e.id);
        e.ts = 1700000000000LL + i * 7919;
        e.received = e.ts + i;
        snprintf(e.operator_id, sizeof(e.operator_id), "op-%d", i % 13);
        snprintf(e.sector, sizeof(e.sector), "%s", sectors[i % 4]);
        snprintf(e.category, sizeof(e.category), "%s", cats[i % 3]);
        snprintf(e.region, sizeof(e.region), "UA-%02d", i % 2 ? 46 : 30);
        e.severity = 1 + i % 10;
        if (i % 2)
            e.seq = i;
        if (i % 3 == 0)
            snprintf(e.dst.ip, sizeof(e.dst.ip), "10.0.%d.%d", i % 256, (i * 7) % 256);
        if (i % 5 == 0)
            snprintf(e.attack.tactic, sizeof(e.attack.tactic), "impact");
        e.count = 1 + i;
        text = tm_event_encode(&e, &len);
        assert_non_null(text);
        assert_int_equal(tm_event_decode(&back, text, len, TM_EVENT_STAMPED, err), TM_EVENT_OK);
        assert_true(tm_event_equal(&e, &back));
        free(text);
    }
}

static void test_event_time_normalised(void **state)
{
    struct tm_event e;
    char err[TM_ERR_LEN];
    char *text;
    (void)state;

    /* An offset and nanoseconds are accepted and stored as UTC milliseconds. */
    assert_int_equal(decode_modified("ts", json_string("2026-11-23T09:22:05.123999+02:00"),
                                     TM_EVENT_STAMPED, err),
                     TM_EVENT_OK);
    fill_full(&e);
    e.ts = 1795418525123LL;
    text = tm_event_encode(&e, NULL);
    assert_non_null(strstr(text, "\"ts\":\"2026-11-23T07:22:05.123Z\""));
    free(text);
}

static void test_event_reject_not_object(void **state)
{
    (void)state;
    expect_reject("[1,2]", TM_EVENT_NOT_OBJECT, "an array");
    expect_reject("42", TM_EVENT_NOT_OBJECT, "an integer");
    expect_reject("\"event\"", TM_EVENT_NOT_OBJECT, "a string");
    expect_reject("null", TM_EVENT_NOT_OBJECT, "null");
}

static void test_event_reject_syntax(void **state)
{
    (void)state;
    expect_reject("", TM_EVENT_SYNTAX, "invalid JSON");
    expect_reject("{\"schema\":1,", TM_EVENT_SYNTAX, "invalid JSON");
    expect_reject("{'schema':1}", TM_EVENT_SYNTAX, "invalid JSON");
}

static void test_event_reject_trailing_garbage(void **state)
{
    char text[sizeof(full_json) + 8];
    (void)state;

    snprintf(text, sizeof(text), "%s}", full_json);
    expect_reject(text, TM_EVENT_SYNTAX, "trailing data");
    snprintf(text, sizeof(text), "%s {}", full_json);
    expect_reject(text, TM_EVENT_SYNTAX, "trailing data");
}

static void test_event_reject_missing_required(void **state)
{
    static const char *const required[] = {"schema",   "id",     "ts",       "received",
                                           "operator", "sector", "category", "severity"};
    (void)state;

    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "field '%s': required", required[i]);
        expect_modified(required[i], NULL, TM_EVENT_MISSING, needle);
        /* null counts as absent */
        expect_modified(required[i], json_null(), TM_EVENT_MISSING, needle);
    }
}

static void test_event_submitted_mode_needs_less(void **state)
{
    static const char *const stamped_only[] = {"schema",   "id",     "received",
                                               "operator", "sector", "region"};
    char err[TM_ERR_LEN];
    (void)state;

    for (size_t i = 0; i < sizeof(stamped_only) / sizeof(stamped_only[0]); i++)
        assert_int_equal(decode_modified(stamped_only[i], NULL, TM_EVENT_SUBMITTED, err),
                         TM_EVENT_OK);
    /* ts, category and severity stay required. */
    assert_int_equal(decode_modified("ts", NULL, TM_EVENT_SUBMITTED, err), TM_EVENT_MISSING);
    assert_int_equal(decode_modified("severity", NULL, TM_EVENT_SUBMITTED, err), TM_EVENT_MISSING);
    assert_int_equal(decode_modified("category", NULL, TM_EVENT_SUBMITTED, err), TM_EVENT_MISSING);
}

/*
 * The collector decodes in SUBMITTED mode, stamps, and checks only the stamp: that must
 * say exactly what a full STAMPED validation says, for good and bad stamps alike.
 */
static void test_event_validate_stamp_agrees_with_full(void **state)
{
    static const struct {
        const char *id, *operator_id, *sector, *region;
        int64_t received;
    } stamps[] = {
        {"01JD6Q7Z8X9Y0ABCDEFGHJKMNP", "ua-energy-001", "energy", "UA-32", 1795418525456},
        {"bench-1", "op", "local-government", "", 0},
        {"", "op", "energy", "UA-32", 1795418525456},
        {"id", "", "energy", "UA-32", 1795418525456},
        {"id", "op", "", "UA-32", 1795418525456},
        {"id", "op", "energy", "UA-32", -1},
        {"id with space", "op", "energy", "UA-32", 1},
        {"id", "op/x", "energy", "UA-32", 1},
        {"id", "op", "steel", "UA-32", 1},
        {"id", "op", "energy", "UA-99", 1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) {
        struct tm_event e;
        char err_full[TM_ERR_LEN] = "", err_stamp[TM_ERR_LEN] = "";
        enum tm_event_reason full, stamp;

        fill_full(&e);
        snprintf(e.id, sizeof(e.id), "%s", stamps[i].id);
        snprintf(e.operator_id, sizeof(e.operator_id), "%s", stamps[i].operator_id);
        snprintf(e.sector, sizeof(e.sector), "%s", stamps[i].sector);
        snprintf(e.region, sizeof(e.region), "%s", stamps[i].region);
        e.received = stamps[i].received;
        full = tm_event_validate(&e, TM_EVENT_STAMPED, err_full);
        stamp = tm_event_validate_stamp(&e, err_stamp);
        assert_int_equal(stamp, full);
        assert_string_equal(err_stamp, err_full);
        if (i < 2)
            assert_int_equal(full, TM_EVENT_OK);
        else
            assert_int_not_equal(full, TM_EVENT_OK);
    }
}

static void test_event_reject_wrong_type(void **state)
{
    (void)state;
    expect_modified("severity", json_string("7"), TM_EVENT_WRONG_TYPE,
                    "field 'severity': must be an integer, got a string");
    expect_modified("severity", json_real(7.0), TM_EVENT_WRONG_TYPE, "a real number");
    expect_modified("id", json_integer(5), TM_EVENT_WRONG_TYPE, "field 'id': must be a string");
    expect_modified("source", json_string("auth"), TM_EVENT_WRONG_TYPE,
                    "field 'source': must be an object");
    expect_modified("src.port", json_string("22"), TM_EVENT_WRONG_TYPE, "field 'src.port'");
    expect_modified("ts", json_integer(1700000000), TM_EVENT_WRONG_TYPE, "field 'ts'");
    expect_modified("count", json_true(), TM_EVENT_WRONG_TYPE, "a boolean");
    expect_modified("schema", json_string("1"), TM_EVENT_WRONG_TYPE, "field 'schema'");
}

static void test_event_reject_unknown_sector(void **state)
{
    (void)state;
    expect_modified("sector", json_string("nuclear"), TM_EVENT_BAD_VALUE,
                    "field 'sector': unknown sector 'nuclear'");
    expect_modified("sector", json_string("Energy"), TM_EVENT_BAD_VALUE, "unknown sector");
    expect_modified("region", json_string("UA-99"), TM_EVENT_BAD_VALUE,
                    "field 'region': unknown ISO 3166-2:UA code 'UA-99'");
    expect_modified("category", json_string("spam"), TM_EVENT_BAD_VALUE,
                    "field 'category': unknown category 'spam'");
    expect_modified("source.kind", json_string("netflow"), TM_EVENT_BAD_VALUE,
                    "field 'source.kind'");
    expect_modified("attack.tactic", json_string("hacking"), TM_EVENT_BAD_VALUE,
                    "field 'attack.tactic'");
}

static void test_event_reject_severity_out_of_range(void **state)
{
    (void)state;
    expect_modified("severity", json_integer(0), TM_EVENT_BAD_VALUE,
                    "field 'severity': must be an integer from 1 to 10, got 0");
    expect_modified("severity", json_integer(11), TM_EVENT_BAD_VALUE, "got 11");
    expect_modified("severity", json_integer(-3), TM_EVENT_BAD_VALUE, "got -3");
    expect_modified("confidence", json_integer(101), TM_EVENT_BAD_VALUE, "field 'confidence'");
    expect_modified("count", json_integer(0), TM_EVENT_BAD_VALUE, "field 'count'");
    expect_modified("seq", json_integer(-1), TM_EVENT_BAD_VALUE, "field 'seq'");
    expect_modified("dst.port", json_integer(65536), TM_EVENT_BAD_VALUE, "field 'dst.port'");
    expect_modified("schema", json_integer(2), TM_EVENT_BAD_VALUE, "unsupported version 2");
}

static void test_event_reject_bad_timestamp(void **state)
{
    static const char *const bad[] = {
        "2026-11-23",                      /* date only */
        "2026-11-23T07:22:05",             /* no zone */
        "2026-11-23T07:22:05.Z",           /* empty fraction */
        "2026-02-30T00:00:00Z",            /* no such day */
        "2026-13-01T00:00:00Z",            /* no such month */
        "2026-11-23T24:00:00Z",            /* hour 24 */
        "2026-11-23T07:22:05+0200",        /* offset without colon */
        "1969-12-31T23:59:59.999Z",        /* before the epoch */
        "23/11/2026 07:22:05",             /* not RFC 3339 */
        "2026-11-23T07:22:05.1234567890Z", /* 10 fraction digits */
        "2026-11-23T07:22:05Z ",           /* trailing space */
    };
    char needle[64];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_modified("ts", json_string(bad[i]), TM_EVENT_BAD_VALUE,
                        "field 'ts': not an RFC 3339 time");
        snprintf(needle, sizeof(needle), "field 'received'");
        expect_modified("received", json_string(bad[i]), TM_EVENT_BAD_VALUE, needle);
    }
}

static void test_event_reject_oversize(void **state)
{
    char big[TM_EVENT_RAW_MAX + 2];
    (void)state;

    memset(big, 's', TM_EVENT_SUMMARY_MAX + 1);
    big[TM_EVENT_SUMMARY_MAX + 1] = '\0';
    expect_modified("summary", json_string(big), TM_EVENT_TOO_LONG,
                    "field 'summary': 1025 bytes, the limit is 1024");
    memset(big, 'r', TM_EVENT_RAW_MAX + 1);
    big[TM_EVENT_RAW_MAX + 1] = '\0';
    expect_modified("raw", json_string(big), TM_EVENT_TOO_LONG,
                    "field 'raw': 8193 bytes, the limit is 8192");
    expect_modified("operator",
                    json_string("a-very-long-operator-name-that-goes-on-and-on-and-on-"
                                "past-sixty-four-bytes"),
                    TM_EVENT_TOO_LONG, "field 'operator'");
}

static void test_event_reject_too_large_text(void **state)
{
    size_t n = TM_EVENT_JSON_MAX + 16;
    char *text = malloc(n + 1);
    (void)state;

    memset(text, ' ', n);
    text[0] = '{';
    text[n - 1] = '}';
    text[n] = '\0';
    expect_reject(text, TM_EVENT_TOO_LARGE, "the limit is 65536");
    free(text);
}

static void test_event_reject_invalid_utf8(void **state)
{
    char text[sizeof(full_json) + 8];
    char *p;
    (void)state;

    snprintf(text, sizeof(text), "%s", full_json);
    p = strstr(text, "\xd0\xb7");
    p[0] = (char)0xff; /* never valid in UTF-8 */
    expect_reject(text, TM_EVENT_BAD_UTF8, "not valid UTF-8");
    p[0] = (char)0xc0; /* overlong form of '7' (0xc0 0xb7) */
    expect_reject(text, TM_EVENT_BAD_UTF8, "not valid UTF-8");
    expect_reject("{\"schema\":1,\"summary\":\"a\\u0000b\"}", TM_EVENT_BAD_UTF8, "NUL");
}

static void test_event_validate_invalid_utf8(void **state)
{
    struct tm_event e;
    char err[TM_ERR_LEN];
    (void)state;

    /* A parser may copy raw bytes from a log line; validation must catch them. */
    fill_full(&e);
    snprintf(e.raw, sizeof(e.raw), "bad \xed\xa0\x80 surrogate");
    assert_int_equal(tm_event_validate(&e, TM_EVENT_STAMPED, err), TM_EVENT_BAD_UTF8);
    assert_non_null(strstr(err, "field 'raw'"));
    assert_null(tm_event_encode(&e, NULL));
}

static void test_event_reject_deep_nesting(void **state)
{
    char text[4096];
    size_t n = 0;
    (void)state;

    n += (size_t)snprintf(text, sizeof(text), "{\"schema\":1,\"source\":");
    for (int i = 0; i < 1000; i++)
        text[n++] = '[';
    text[n] = '\0';
    expect_reject(text, TM_EVENT_TOO_DEEP, "nested deeper than 4");
    /* Brackets inside strings do not count. */
    expect_modified("summary", json_string("[[[[[[[[{{{{{{{{"), TM_EVENT_OK, "");
    expect_modified("source", json_pack("{s:{s:{s:{s:{}}}}}", "a", "b", "c", "d"),
                    TM_EVENT_TOO_DEEP, "nested deeper");
}

static void test_event_reject_duplicate_keys(void **state)
{
    (void)state;
    /* Decided: duplicates are rejected, never resolved first- or last-wins. */
    expect_reject("{\"schema\":1,\"severity\":3,\"severity\":9}", TM_EVENT_DUPLICATE_KEY,
                  "duplicate key");
    expect_reject("{\"schema\":1,\"src\":{\"ip\":\"10.0.0.1\",\"ip\":\"10.0.0.2\"}}",
                  TM_EVENT_DUPLICATE_KEY, "duplicate key");
}

static void test_event_reject_unknown_field(void **state)
{
    (void)state;
    expect_modified("severty", json_integer(3), TM_EVENT_UNKNOWN_FIELD,
                    "field 'severty': not defined by schema v1");
    expect_modified("src.mac", json_string("00:11:22:33:44:55"), TM_EVENT_UNKNOWN_FIELD,
                    "field 'src.mac'");
}

static void test_event_reject_bad_formats(void **state)
{
    (void)state;
    expect_modified("src.ip", json_string("203.0.113.300"), TM_EVENT_BAD_VALUE,
                    "field 'src.ip': not an IPv4 or IPv6 address");
    /* What inet_pton refuses stays refused; what it takes stays taken. */
    static const char *const bad_ips[] = {"203.0.113.256", "203.0.113",    "203.0.113.9.1",
                                          "203.0.113.09",  "0203.0.113.9", "203..113.9",
                                          "203.0.113.9 ",  ".203.0.113",   "203.0.113.1000",
                                          "::g",           "1.2.3.-4",     "+1.2.3.4"};
    for (size_t i = 0; i < sizeof(bad_ips) / sizeof(bad_ips[0]); i++)
        expect_modified("src.ip", json_string(bad_ips[i]), TM_EVENT_BAD_VALUE, "field 'src.ip'");
    static const char *const good_ips[] = {"0.0.0.0", "255.255.255.255", "10.0.0.1",      "1.2.3.4",
                                           "::1",     "2001:db8::1",     "::ffff:1.2.3.4"};
    for (size_t i = 0; i < sizeof(good_ips) / sizeof(good_ips[0]); i++)
        expect_modified("dst.ip", json_string(good_ips[i]), TM_EVENT_OK, "");
    expect_modified("attack.technique", json_string("T111"), TM_EVENT_BAD_VALUE,
                    "field 'attack.technique'");
    expect_modified("attack.technique", json_string("T1110.1"), TM_EVENT_BAD_VALUE,
                    "field 'attack.technique'");
    expect_modified("id", json_string("id with spaces"), TM_EVENT_BAD_VALUE, "field 'id'");
    expect_modified("agent", json_string("a/b"), TM_EVENT_BAD_VALUE, "field 'agent'");
    expect_modified("source.kind", NULL, TM_EVENT_MISSING, "field 'source.kind'");
}

static void test_event_reason_names_stable(void **state)
{
    (void)state;
    /* These strings are the reason header on tm.events.rejected: never rename them. */
    assert_string_equal(tm_event_reason_name(TM_EVENT_OK), "ok");
    assert_string_equal(tm_event_reason_name(TM_EVENT_SYNTAX), "syntax");
    assert_string_equal(tm_event_reason_name(TM_EVENT_DUPLICATE_KEY), "duplicate-key");
    assert_string_equal(tm_event_reason_name(TM_EVENT_NOT_OBJECT), "not-object");
    assert_string_equal(tm_event_reason_name(TM_EVENT_TOO_LARGE), "too-large");
    assert_string_equal(tm_event_reason_name(TM_EVENT_TOO_DEEP), "too-deep");
    assert_string_equal(tm_event_reason_name(TM_EVENT_BAD_UTF8), "bad-utf8");
    assert_string_equal(tm_event_reason_name(TM_EVENT_MISSING), "missing");
    assert_string_equal(tm_event_reason_name(TM_EVENT_WRONG_TYPE), "wrong-type");
    assert_string_equal(tm_event_reason_name(TM_EVENT_BAD_VALUE), "bad-value");
    assert_string_equal(tm_event_reason_name(TM_EVENT_TOO_LONG), "too-long");
    assert_string_equal(tm_event_reason_name(TM_EVENT_UNKNOWN_FIELD), "unknown-field");
    assert_string_equal(tm_event_reason_name((enum tm_event_reason)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_decode_full),
        cmocka_unit_test(test_event_roundtrip_full),
        cmocka_unit_test(test_event_roundtrip_minimal_and_edges),
        cmocka_unit_test(test_event_roundtrip_many),
        cmocka_unit_test(test_event_encode_escapes_for_other_parsers),
        cmocka_unit_test(test_event_time_normalised),
        cmocka_unit_test(test_event_reject_not_object),
        cmocka_unit_test(test_event_reject_syntax),
        cmocka_unit_test(test_event_reject_trailing_garbage),
        cmocka_unit_test(test_event_reject_missing_required),
        cmocka_unit_test(test_event_submitted_mode_needs_less),
        cmocka_unit_test(test_event_validate_stamp_agrees_with_full),
        cmocka_unit_test(test_event_reject_wrong_type),
        cmocka_unit_test(test_event_reject_unknown_sector),
        cmocka_unit_test(test_event_reject_severity_out_of_range),
        cmocka_unit_test(test_event_reject_bad_timestamp),
        cmocka_unit_test(test_event_reject_oversize),
        cmocka_unit_test(test_event_reject_too_large_text),
        cmocka_unit_test(test_event_reject_invalid_utf8),
        cmocka_unit_test(test_event_validate_invalid_utf8),
        cmocka_unit_test(test_event_reject_deep_nesting),
        cmocka_unit_test(test_event_reject_duplicate_keys),
        cmocka_unit_test(test_event_reject_unknown_field),
        cmocka_unit_test(test_event_reject_bad_formats),
        cmocka_unit_test(test_event_reason_names_stable),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
