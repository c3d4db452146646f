/*
 * test_lumberjack.c - the Lumberjack v2 codec: encode/decode round trips (plain and
 * compressed windows of 1000 events), streaming (byte at a time and exactly *need bytes
 * at a time give the same callbacks as one call), a Filebeat-shaped window, one test per
 * error class with the words its message must hold, a zip bomb whose memory cost is
 * measured, and acks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include "tm/tm_lumberjack.h"

/* ---- helpers ---------------------------------------------------------------------- */

/*
 * How much the peak RSS may grow while a 16 MiB cap stops a 64 MiB zip bomb. Under
 * AddressSanitizer every realloc copies and freed blocks stay resident in quarantine, so
 * the buffer's doublings (0.5 + 1 + ... + 16 MiB) all count; without it they do not.
 */
#if defined(__SANITIZE_ADDRESS__)
#define BOMB_RSS_LIMIT_KIB (72 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BOMB_RSS_LIMIT_KIB (72 * 1024)
#endif
#endif
#ifndef BOMB_RSS_LIMIT_KIB
#define BOMB_RSS_LIMIT_KIB (40 * 1024)
#endif

/* What the callbacks saw, as text ("W1000\n", "J7:12:{...}\n"), to compare whole runs. */
struct rec {
    struct evbuffer *log;
    int windows;
    uint32_t last_window;
    int frames;
    uint32_t last_seq;
    uint32_t stop_at_seq; /* data_cb returns -1 at this seq (0: never) */
    int stop_window;      /* window_cb returns -1 when set */
    char *say;            /* when set, a refusing data_cb writes its reason here */
};

static int rec_window_cb(void *arg, uint32_t size)
{
    struct rec *r = arg;

    r->windows++;
    r->last_window = size;
    evbuffer_add_printf(r->log, "W%u\n", (unsigned)size);
    return r->stop_window ? -1 : 0;
}

static int rec_data_cb(void *arg, uint32_t seq, const char *payload, size_t len)
{
    struct rec *r = arg;

    r->frames++;
    r->last_seq = seq;
    evbuffer_add_printf(r->log, "J%u:%zu:", (unsigned)seq, len);
    evbuffer_add(r->log, payload, len);
    evbuffer_add(r->log, "\n", 1);
    if (r->stop_at_seq == 0 || seq != r->stop_at_seq)
        return 0;
    if (r->say != NULL)
        tm_err(r->say, "cannot queue event %u: 'kafka queue full'", (unsigned)seq);
    return -1;
}

static void rec_init(struct rec *r, struct tm_lj_callbacks *cb)
{
    memset(r, 0, sizeof(*r));
    r->log = evbuffer_new();
    assert_non_null(r->log);
    cb->window_cb = rec_window_cb;
    cb->data_cb = rec_data_cb;
    cb->arg = r;
}

static void rec_free(struct rec *r)
{
    evbuffer_free(r->log);
}

static int rec_equal(struct rec *a, struct rec *b)
{
    size_t n = evbuffer_get_length(a->log);

    return n == evbuffer_get_length(b->log) &&
           memcmp(evbuffer_pullup(a->log, -1), evbuffer_pullup(b->log, -1), n) == 0;
}

/* Copies an evbuffer into one malloc'd block (exact size, so ASan sees overreads). */
static uint8_t *take(struct evbuffer *b, size_t *len)
{
    uint8_t *p;

    *len = evbuffer_get_length(b);
    p = malloc(*len > 0 ? *len : 1);
    assert_non_null(p);
    assert_int_equal(evbuffer_remove(b, p, *len), (int)*len);
    return p;
}

/* Event i: a ~350-byte JSON object. */
static size_t event_json(char *buf, size_t buflen, uint32_t i)
{
    int n = snprintf(buf, buflen,
                     "{\"@timestamp\":\"2026-02-11T07:%02u:%02u.%03uZ\",\"message\":\"Failed "
                     "password for root from 203.0.113.%u port %u ssh2\",\"event\":{\"module\":"
                     "\"system\",\"dataset\":\"system.auth\"},\"host\":{\"name\":\"scada-hmi-%u\"},"
                     "\"tm\":{\"operator\":\"ua-energy-001\",\"sector\":\"energy\",\"region\":"
                     "\"UA-32\",\"seq\":%u},\"pad\":\"%.*s\"}",
                     (unsigned)(i / 60 % 60), (unsigned)(i % 60), (unsigned)(i % 1000),
                     (unsigned)(i % 250 + 1), (unsigned)(40000 + i), (unsigned)(i % 7), (unsigned)i,
                     (int)(i % 40), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_true(n > 0 && (size_t)n < buflen);
    return (size_t)n;
}

/* Appends n J frames, seq first..first+n-1, with event_json payloads. */
static void add_events(struct evbuffer *b, uint32_t first, uint32_t n)
{
    char buf[512];

    for (uint32_t i = 0; i < n; i++) {
        size_t len = event_json(buf, sizeof(buf), first + i);
        assert_int_equal(tm_lj_write_json(b, first + i, buf, len), 0);
    }
}

/* Appends a C frame holding the frames in inner (which it drains). */
static void add_compressed(struct evbuffer *out, struct evbuffer *inner, int level)
{
    size_t len;
    uint8_t *p = take(inner, &len);

    assert_int_equal(tm_lj_write_compressed(out, p, len, level), 0);
    free(p);
}

/* Appends a C frame header and this raw payload (not necessarily valid zlib). */
static void add_raw_compressed(struct evbuffer *out, const uint8_t *payload, size_t len)
{
    uint8_t h[6] = {
        '2', 'C', (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    evbuffer_add(out, h, sizeof(h));
    evbuffer_add(out, payload, len);
}

/* Decodes data in one call; returns what feed returned. */
static long decode_all(const struct tm_lj_limits *l, const uint8_t *data, size_t len, struct rec *r,
                       size_t *need, char *err)
{
    struct tm_lj_callbacks cb;
    struct tm_lj_decoder *d = tm_lj_decoder_create(l);
    struct rec *keep = r;
    long got;

    assert_non_null(d);
    cb.window_cb = rec_window_cb;
    cb.data_cb = rec_data_cb;
    cb.arg = keep;
    got = tm_lj_decoder_feed(d, data, len, need, &cb, err);
    tm_lj_decoder_destroy(d);
    return got;
}

/* Expects data to fail with a message holding needle, after exactly frames data frames. */
static void expect_error(const struct tm_lj_limits *l, const uint8_t *data, size_t len,
                         const char *needle, int frames)
{
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t need = 99;
    long got;

    rec_init(&r, &cb);
    got = decode_all(l, data, len, &r, &need, err);
    if (got != -1 || strstr(err, needle) == NULL)
        fail_msg("got %ld '%s', want -1 with '%s'", got, err, needle);
    assert_int_equal(r.frames, frames);
    rec_free(&r);
}

static void expect_error_buf(const struct tm_lj_limits *l, struct evbuffer *b, const char *needle,
                             int frames)
{
    size_t len;
    uint8_t *p = take(b, &len);

    expect_error(l, p, len, needle, frames);
    free(p);
}

/* A window of n events, plain or compressed, as one block. */
static uint8_t *make_window(uint32_t n, int compressed, size_t *len)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    uint8_t *p;

    assert_int_equal(tm_lj_write_window(b, n), 0);
    if (compressed) {
        add_events(inner, 1, n);
        add_compressed(b, inner, 6);
    } else {
        add_events(b, 1, n);
    }
    p = take(b, len);
    evbuffer_free(b);
    evbuffer_free(inner);
    return p;
}

/* Checks the record of a window of n event_json events. */
static void check_window(struct rec *r, uint32_t n)
{
    struct evbuffer *want = evbuffer_new();
    char buf[512];

    assert_int_equal(r->windows, 1);
    assert_int_equal(r->last_window, n);
    assert_int_equal(r->frames, (int)n);
    assert_int_equal(r->last_seq, n);
    evbuffer_add_printf(want, "W%u\n", (unsigned)n);
    for (uint32_t i = 1; i <= n; i++) {
        size_t len = event_json(buf, sizeof(buf), i);
        evbuffer_add_printf(want, "J%u:%zu:", (unsigned)i, len);
        evbuffer_add(want, buf, len);
        evbuffer_add(want, "\n", 1);
    }
    assert_int_equal(evbuffer_get_length(want), evbuffer_get_length(r->log));
    assert_memory_equal(evbuffer_pullup(want, -1), evbuffer_pullup(r->log, -1),
                        evbuffer_get_length(want));
    evbuffer_free(want);
}

static long maxrss_kib(void)
{
    struct rusage ru;

    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

/*
 * A zlib stream of `inflated` zero bytes, made by deflating one 64 KiB block again and
 * again so that building it costs no more memory than the result.
 */
static uint8_t *make_zeros_stream(size_t inflated, size_t *zlen)
{
    static const uint8_t zeros[64 * 1024];
    z_stream zs;
    size_t cap = inflated / 512 + 4096;
    uint8_t *out = malloc(cap);

    assert_non_null(out);
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit(&zs, 9), Z_OK);
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    for (size_t done = 0; done < inflated; done += sizeof(zeros)) {
        zs.next_in = (Bytef *)(uintptr_t)zeros;
        zs.avail_in = (uInt)(inflated - done < sizeof(zeros) ? inflated - done : sizeof(zeros));
        assert_int_equal(deflate(&zs, Z_NO_FLUSH), Z_OK);
        assert_int_equal(zs.avail_in, 0);
        assert_true(zs.avail_out > 0);
    }
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *zlen = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* ---- round trips ------------------------------------------------------------------- */

static void round_trip(int compressed)
{
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t len, need = 0;
    uint8_t *p = make_window(1000, compressed, &len);

    if (compressed)
        assert_true(len < 1000 * 350 / 4); /* the compression really happened */
    else
        assert_true(len > 1000 * 300);
    rec_init(&r, &cb);
    assert_int_equal(decode_all(NULL, p, len, &r, &need, err), (long)len);
    assert_string_equal(err, "");
    assert_int_equal(need, 2);
    check_window(&r, 1000);
    rec_free(&r);
    free(p);
}

static void test_lumberjack_round_trip_plain(void **state)
{
    (void)state;
    round_trip(0);
}

static void test_lumberjack_round_trip_compressed(void **state)
{
    (void)state;
    round_trip(1);
}

/* The exact bytes of each frame, big-endian. */
static void test_lumberjack_encoders_write_network_order(void **state)
{
    struct evbuffer *b = evbuffer_new();
    static const uint8_t want[] = {'2', 'W', 0x00, 0x00, 0x27, 0x10,                       /* */
                                   '2', 'J', 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 2, '{', '}', /* */
                                   '2', 'A', 0xff, 0xff, 0xff, 0xfe};
    size_t len;
    uint8_t *p;
    (void)state;

    assert_int_equal(tm_lj_write_window(b, 10000), 0);
    assert_int_equal(tm_lj_write_json(b, 0x01020304, "{}", 2), 0);
    assert_int_equal(tm_lj_write_ack(b, 0xfffffffe), 0);
    p = take(b, &len);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(p, want, sizeof(want));
    free(p);

    /* A bad level leaves the buffer as it was. */
    assert_int_equal(tm_lj_write_compressed(b, want, sizeof(want), 10), -1);
    assert_int_equal(tm_lj_write_compressed(b, want, sizeof(want), -2), -1);
    assert_int_equal(evbuffer_get_length(b), 0);
    /* A C frame's header states its payload length, and the payload is zlib. */
    assert_int_equal(tm_lj_write_compressed(b, want, sizeof(want), -1), 0);
    p = take(b, &len);
    assert_int_equal(p[0], '2');
    assert_int_equal(p[1], 'C');
    assert_int_equal(((size_t)p[2] << 24 | (size_t)p[3] << 16 | (size_t)p[4] << 8 | p[5]), len - 6);
    {
        uint8_t back[64];
        uLongf blen = sizeof(back);
        assert_int_equal(uncompress(back, &blen, p + 6, (uLong)(len - 6)), Z_OK);
        assert_int_equal(blen, sizeof(want));
        assert_memory_equal(back, want, sizeof(want));
    }
    free(p);
    evbuffer_free(b);
}

/* ---- streaming --------------------------------------------------------------------- */

/* Two windows, plain then compressed, and a compressed frame holding its own window. */
static uint8_t *make_mixed_stream(size_t *len)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    uint8_t *p;

    assert_int_equal(tm_lj_write_window(b, 40), 0);
    add_events(b, 1, 40);
    assert_int_equal(tm_lj_write_window(b, 40), 0);
    add_events(inner, 1, 40);
    add_compressed(b, inner, 1);
    assert_int_equal(tm_lj_write_window(inner, 3), 0);
    add_events(inner, 1, 3);
    add_compressed(b, inner, 9);
    /* An empty payload is a valid frame too. */
    assert_int_equal(tm_lj_write_json(b, 4, "", 0), 0);
    p = take(b, len);
    evbuffer_free(b);
    evbuffer_free(inner);
    return p;
}

/*
 * Feeds the mixed stream one more byte at a time, as a socket might deliver it: the
 * callbacks must match a single call's, no call with fewer than *need bytes may make
 * progress or change *need, and *need always asks for more than was given.
 */
static void test_lumberjack_byte_at_a_time(void **state)
{
    struct tm_lj_callbacks cb1, cb2;
    struct rec one, many;
    struct tm_lj_decoder *d = tm_lj_decoder_create(NULL);
    char err[TM_ERR_LEN] = "";
    size_t len, need = 0, start = 0, have = 0, prev_need = 2;
    uint8_t *p = make_mixed_stream(&len);
    int calls_with_progress = 0;
    (void)state;

    rec_init(&one, &cb1);
    rec_init(&many, &cb2);
    assert_int_equal(decode_all(NULL, p, len, &one, &need, err), (long)len);
    assert_int_equal(one.windows, 3);
    assert_int_equal(one.frames, 84);

    /* Nothing given: the header is needed. */
    assert_int_equal(tm_lj_decoder_feed(d, p, 0, &need, &cb2, err), 0);
    assert_int_equal(need, 2);
    while (start + have < len) {
        long got;

        have++;
        got = tm_lj_decoder_feed(d, p + start, have, &need, &cb2, err);
        if (got < 0)
            fail_msg("feed failed at byte %zu: %s", start + have, err);
        if (have < prev_need) {
            assert_int_equal(got, 0);
            assert_int_equal(need, prev_need);
        }
        if (got > 0)
            calls_with_progress++;
        start += (size_t)got;
        have -= (size_t)got;
        assert_true(need > have);
        prev_need = need;
    }
    assert_int_equal(start, len);
    assert_int_equal(have, 0);
    assert_int_equal(need, 2);
    /* One call completes each top-level frame: 2 windows, 41 J frames, 2 C frames. */
    assert_int_equal(calls_with_progress, 45);
    assert_true(rec_equal(&one, &many));
    tm_lj_decoder_destroy(d);
    rec_free(&one);
    rec_free(&many);
    free(p);
}

/*
 * Giving exactly *need bytes each time: *need walks 2, then the header length, then the
 * frame length, and the call that has the whole frame consumes exactly that.
 */
static void test_lumberjack_need_is_exact(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    struct tm_lj_callbacks cb;
    struct rec r;
    struct tm_lj_decoder *d = tm_lj_decoder_create(NULL);
    char err[TM_ERR_LEN] = "";
    size_t len, need = 0, start = 0, have, clen, steps = 0;
    size_t seen[16];
    uint8_t *p;
    (void)state;

    assert_int_equal(tm_lj_write_window(b, 2), 0);
    assert_int_equal(tm_lj_write_json(b, 1, "{\"a\":1}", 7), 0);
    assert_int_equal(tm_lj_write_json(inner, 2, "{\"b\":22}", 8), 0);
    add_compressed(b, inner, 6);
    p = take(b, &len);
    clen = len - 6 - 17 - 6;

    rec_init(&r, &cb);
    have = 2;
    while (start < len) {
        long got = tm_lj_decoder_feed(d, p + start, have, &need, &cb, err);

        assert_true(got >= 0);
        assert_true(steps < TM_ARRAY_LEN(seen));
        if (got > 0) {
            assert_int_equal((size_t)got, have); /* whole frame, nothing more */
            seen[steps++] = 0;                   /* 0 marks "consumed" */
            start += have;
            have = len - start < 2 ? len - start : 2;
        } else {
            assert_true(need > have);
            seen[steps++] = need;
            have = need;
        }
    }
    {
        const size_t want[] = {6, 0, 10, 17, 0, 6, 6 + clen, 0};
        assert_int_equal(steps, TM_ARRAY_LEN(want));
        assert_memory_equal(seen, want, sizeof(want));
    }
    assert_int_equal(r.windows, 1);
    assert_int_equal(r.frames, 2);
    assert_int_equal(r.last_seq, 2);
    tm_lj_decoder_destroy(d);
    rec_free(&r);
    free(p);
    evbuffer_free(b);
    evbuffer_free(inner);
}

/* A compressed frame may hold the window frame as well as the data frames. */
static void test_lumberjack_compressed_holds_window_and_data(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t len, need = 0;
    uint8_t *p;
    (void)state;

    assert_int_equal(tm_lj_write_window(inner, 25), 0);
    add_events(inner, 1, 25);
    add_compressed(b, inner, 6);
    p = take(b, &len);
    assert_int_equal(p[1], 'C');
    rec_init(&r, &cb);
    assert_int_equal(decode_all(NULL, p, len, &r, &need, err), (long)len);
    check_window(&r, 25);
    rec_free(&r);
    free(p);
    evbuffer_free(b);
    evbuffer_free(inner);
}

/*
 * One decoder over many compressed frames of different sizes, including one whose
 * inflated size (about 3.5 MiB) makes the decoder drop its buffer afterwards.
 */
static void test_lumberjack_decoder_reused_across_frames(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    struct tm_lj_callbacks cb;
    struct tm_lj_decoder *d = tm_lj_decoder_create(NULL);
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t len, need = 0;
    const uint32_t sizes[] = {10, 10000, 3, 500, 1};
    uint32_t total = 0;
    uint8_t *p;
    (void)state;

    for (size_t i = 0; i < TM_ARRAY_LEN(sizes); i++) {
        assert_int_equal(tm_lj_write_window(b, sizes[i]), 0);
        add_events(inner, 1, sizes[i]);
        add_compressed(b, inner, 1);
        total += sizes[i];
    }
    p = take(b, &len);
    rec_init(&r, &cb);
    assert_int_equal(tm_lj_decoder_feed(d, p, len, &need, &cb, err), (long)len);
    assert_int_equal(r.windows, (int)TM_ARRAY_LEN(sizes));
    assert_int_equal(r.frames, (int)total);
    assert_int_equal(r.last_seq, 1);
    /* And again on the same decoder. */
    assert_int_equal(tm_lj_decoder_feed(d, p, len, &need, &cb, err), (long)len);
    assert_int_equal(r.frames, (int)(2 * total));
    tm_lj_decoder_destroy(d);
    rec_free(&r);
    free(p);
    evbuffer_free(b);
    evbuffer_free(inner);
}

/*
 * What Filebeat sends: a window frame, then one compressed frame with all the events of
 * the batch as JSON frames (seq 1..n). The window arrives first, on its own.
 */
static void test_lumberjack_filebeat_window(void **state)
{
    static const char *const events[] = {
        "{\"@timestamp\":\"2026-02-11T07:22:05.123Z\",\"@metadata\":{\"beat\":\"filebeat\","
        "\"type\":\"_doc\",\"version\":\"8.17.0\"},\"message\":\"{\\\"event_type\\\":\\\"alert\\\","
        "\\\"src_ip\\\":\\\"203.0.113.9\\\",\\\"dest_port\\\":502,\\\"alert\\\":{\\\"signature\\\":"
        "\\\"ET SCAN Modbus scan\\\"}}\",\"event\":{\"module\":\"suricata\",\"dataset\":"
        "\"suricata.eve\"},\"input\":{\"type\":\"filestream\"},\"host\":{\"name\":\"ids-kyiv-1\"},"
        "\"agent\":{\"type\":\"filebeat\",\"version\":\"8.17.0\"}}",
        "{\"@timestamp\":\"2026-02-11T07:22:06.001Z\",\"@metadata\":{\"beat\":\"filebeat\","
        "\"type\":\"_doc\",\"version\":\"8.17.0\"},\"message\":\"{\\\"event_type\\\":\\\"flow\\\"}"
        "\","
        "\"event\":{\"module\":\"suricata\",\"dataset\":\"suricata.eve\"},"
        "\"host\":{\"name\":\"ids-kyiv-1\"}}",
        "{\"@timestamp\":\"2026-02-11T07:22:07.450Z\",\"@metadata\":{\"beat\":\"filebeat\","
        "\"type\":\"_doc\",\"version\":\"8.17.0\"},\"message\":\"{\\\"event_type\\\":\\\"alert\\\","
        "\\\"alert\\\":{\\\"signature\\\":\\\"\xd0\x90\xd1\x82\xd0\xb0\xd0\xba\xd0\xb0 "
        "DDoS\\\"}}\","
        "\"event\":{\"module\":\"suricata\",\"dataset\":\"suricata.eve\"},"
        "\"host\":{\"name\":\"ids-lviv-2\"}}",
    };
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    struct tm_lj_callbacks cb;
    struct tm_lj_decoder *d = tm_lj_decoder_create(NULL);
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t len, need = 0;
    const char *log;
    uint8_t *p;
    (void)state;

    assert_int_equal(tm_lj_write_window(b, TM_ARRAY_LEN(events)), 0);
    for (uint32_t i = 0; i < TM_ARRAY_LEN(events); i++)
        assert_int_equal(tm_lj_write_json(inner, i + 1, events[i], strlen(events[i])), 0);
    add_compressed(b, inner, 3);
    p = take(b, &len);
    assert_memory_equal(p,
                        "2W\0\0\0\x03"
                        "2C",
                        8);

    rec_init(&r, &cb);
    /* The window frame and half the compressed frame. */
    assert_int_equal(tm_lj_decoder_feed(d, p, len / 2, &need, &cb, err), 6);
    assert_int_equal(need, len - 6);
    assert_int_equal(r.windows, 1);
    assert_int_equal(r.last_window, 3);
    assert_int_equal(r.frames, 0);
    assert_int_equal(tm_lj_decoder_feed(d, p + 6, len - 6, &need, &cb, err), (long)(len - 6));
    assert_int_equal(r.frames, 3);
    assert_int_equal(r.last_seq, 3);

    /* Every payload is the JSON object that was sent. */
    log = (const char *)evbuffer_pullup(r.log, -1);
    for (uint32_t i = 0; i < TM_ARRAY_LEN(events); i++) {
        char head[32];
        const char *at;
        json_error_t je;
        json_t *root;
        size_t plen = strlen(events[i]);

        snprintf(head, sizeof(head), "J%u:%zu:", (unsigned)(i + 1), plen);
        at = strstr(log, head);
        assert_non_null(at);
        at += strlen(head);
        assert_memory_equal(at, events[i], plen);
        root = json_loadb(at, plen, 0, &je);
        assert_non_null(root);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(root, "event"), "module")),
            "suricata");
        assert_non_null(json_string_value(json_object_get(root, "@timestamp")));
        json_decref(root);
    }
    tm_lj_decoder_destroy(d);
    rec_free(&r);
    free(p);
    evbuffer_free(b);
    evbuffer_free(inner);
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_lumberjack_rejects_version(void **state)
{
    static const uint8_t v1[] = {'1', 'W', 0, 0, 0, 1};
    static const uint8_t vx[] = {'X', 'J', 0, 0, 0, 1, 0, 0, 0, 0};
    static const uint8_t v0[] = {0x00};
    (void)state;

    expect_error(NULL, v1, sizeof(v1), "unsupported version byte '1' (0x31)", 0);
    expect_error(NULL, vx, sizeof(vx), "unsupported version byte 'X' (0x58)", 0);
    expect_error(NULL, v0, sizeof(v0), "unsupported version byte 0x00", 0);
    /* Known from the first byte: no waiting for the rest of the header. */
    expect_error(NULL, v1, 1, "unsupported version byte '1'", 0);
}

static void test_lumberjack_rejects_frame_type(void **state)
{
    /* D: a v2 'data' frame (key/value pairs) that Beats never send and we do not take. */
    static const uint8_t d[] = {'2', 'D', 0, 0, 0, 1, 0, 0, 0, 0};
    static const uint8_t a[] = {'2', 'A', 0, 0, 0, 1};
    static const uint8_t z[] = {'2', 'Z'};
    static const uint8_t nul[] = {'2', 0x00};
    struct evbuffer *b = evbuffer_new();
    (void)state;

    expect_error(NULL, d, sizeof(d), "unsupported frame type 'D'", 0);
    expect_error(NULL, a, sizeof(a), "unsupported frame type 'A'", 0);
    expect_error(NULL, z, sizeof(z), "unsupported frame type 'Z' (0x5a)", 0);
    expect_error(NULL, nul, sizeof(nul), "unsupported frame type 0x00", 0);
    /* After good frames: those are delivered, then the error. */
    assert_int_equal(tm_lj_write_window(b, 2), 0);
    add_events(b, 1, 1);
    evbuffer_add(b, d, sizeof(d));
    expect_error_buf(NULL, b, "unsupported frame type 'D'", 1);
    evbuffer_free(b);
}

static void test_lumberjack_rejects_window_size(void **state)
{
    static const uint8_t zero[] = {'2', 'W', 0, 0, 0, 0};
    static const uint8_t huge[] = {'2', 'W', 0xff, 0xff, 0xff, 0xff};
    static const uint8_t over[] = {'2', 'W', 0, 0, 0x27, 0x11}; /* 10001 */
    static const uint8_t at[] = {'2', 'W', 0, 0, 0x27, 0x10};   /* 10000 */
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t need;
    (void)state;

    expect_error(NULL, zero, sizeof(zero), "window of 0 events", 0);
    expect_error(NULL, huge, sizeof(huge), "window of 4294967295 events over the limit of 10000",
                 0);
    expect_error(NULL, over, sizeof(over), "window of 10001 events over the limit of 10000", 0);
    rec_init(&r, &cb);
    assert_int_equal(decode_all(NULL, at, sizeof(at), &r, &need, err), 6);
    assert_int_equal(r.last_window, 10000);
    rec_free(&r);
}

/* A frame over the limit fails on its header, before its payload is waited for. */
static void test_lumberjack_rejects_oversize_frames(void **state)
{
    struct tm_lj_limits l;
    static const uint8_t j_big[] = {'2', 'J', 0, 0, 0, 1, 0x00, 0x10, 0x00, 0x01};
    static const uint8_t j_huge[] = {'2', 'J', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t c_big[] = {'2', 'C', 0x00, 0x10, 0x00, 0x01};
    static const uint8_t j17[10 + 17] = {'2', 'J', 0, 0, 0, 1, 0, 0, 0, 17};
    static const uint8_t j16[10 + 16] = {'2', 'J', 0, 0, 0, 1, 0, 0, 0, 16};
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t need;
    (void)state;

    expect_error(NULL, j_big, sizeof(j_big),
                 "json frame of 1048577 bytes over the limit of 1048576 bytes", 0);
    expect_error(NULL, j_huge, sizeof(j_huge),
                 "json frame of 4294967295 bytes over the limit of 1048576 bytes", 0);
    expect_error(NULL, c_big, sizeof(c_big),
                 "compressed frame of 1048577 bytes over the limit of 1048576 bytes", 0);

    tm_lj_limits_default(&l);
    l.max_frame = 16;
    expect_error(&l, j17, sizeof(j17), "json frame of 17 bytes over the limit of 16 bytes", 0);
    rec_init(&r, &cb);
    assert_int_equal(decode_all(&l, j16, sizeof(j16), &r, &need, err), (long)sizeof(j16));
    assert_int_equal(r.frames, 1);
    rec_free(&r);
}

/*
 * A zip bomb: 64 KiB of zlib that inflates to 64 MiB of zeros, against a 16 MiB cap.
 * It must fail on the cap, and the process's peak memory must not grow by anything like
 * 64 MiB. The same frame with a 128 MiB cap then shows that the measurement does see
 * such growth, so the first check is not passing by accident.
 */
static void test_lumberjack_rejects_zip_bomb(void **state)
{
    struct tm_lj_limits l;
    struct evbuffer *b = evbuffer_new();
    size_t zlen, len;
    uint8_t *z = make_zeros_stream((size_t)64 << 20, &zlen);
    uint8_t *p;
    long before, after, bounded;
    (void)state;

    assert_true(zlen < 128 * 1024);
    add_raw_compressed(b, z, zlen);
    free(z);
    p = take(b, &len);

    tm_lj_limits_default(&l);
    assert_int_equal(l.max_decompressed, 16u << 20);
    before = maxrss_kib();
    expect_error(&l, p, len, "decompressed size over the limit of 16777216 bytes", 0);
    after = maxrss_kib();
    print_message("zip bomb: peak rss grew by %ld KiB with a 16 MiB cap\n", after - before);
    assert_true(after - before < BOMB_RSS_LIMIT_KIB);
    bounded = after - before;

    l.max_decompressed = 128u << 20;
    before = maxrss_kib();
    /* It inflates in full, and the zeros then fail as frames. */
    expect_error(&l, p, len, "unsupported version byte 0x00", 0);
    after = maxrss_kib();
    print_message("zip bomb: peak rss grew by %ld KiB with a 128 MiB cap\n", after - before);
    assert_true(after - before >= 48 * 1024);
    assert_true(after - before > 2 * bounded);
    free(p);
    evbuffer_free(b);
}

/* Inflating to exactly the cap is allowed; one byte more is not. */
static void test_lumberjack_decompressed_limit_is_exact(void **state)
{
    struct tm_lj_limits l;
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t len, need, inflated;
    uint8_t *p;
    (void)state;

    assert_int_equal(tm_lj_write_window(inner, 100), 0);
    add_events(inner, 1, 100);
    inflated = evbuffer_get_length(inner);
    add_compressed(b, inner, 6);
    p = take(b, &len);

    tm_lj_limits_default(&l);
    l.max_decompressed = (uint32_t)inflated;
    rec_init(&r, &cb);
    assert_int_equal(decode_all(&l, p, len, &r, &need, err), (long)len);
    check_window(&r, 100);
    rec_free(&r);

    l.max_decompressed = (uint32_t)inflated - 1;
    expect_error(&l, p, len, "decompressed size over the limit of", 0);
    l.max_decompressed = 0;
    expect_error(&l, p, len, "decompressed size over the limit of 0 bytes", 0);
    free(p);
    evbuffer_free(b);
    evbuffer_free(inner);
}

static void test_lumberjack_rejects_nested_compressed(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new(), *innermost = evbuffer_new();
    (void)state;

    add_events(innermost, 1, 2);
    add_events(inner, 1, 1);
    add_compressed(inner, innermost, 6);
    add_compressed(b, inner, 6);
    expect_error_buf(NULL, b, "compressed frame inside compressed frame", 1);
    evbuffer_free(b);
    evbuffer_free(inner);
    evbuffer_free(innermost);
}

static void test_lumberjack_rejects_corrupt_zlib(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    static const uint8_t garbage[] = "this is not zlib at all";
    size_t len;
    uint8_t *p;
    (void)state;

    add_raw_compressed(b, garbage, sizeof(garbage));
    expect_error_buf(NULL, b, "corrupt compressed frame: 'incorrect header check'", 0);

    /* A wrong checksum: nothing of the frame is delivered. */
    add_events(inner, 1, 50);
    add_compressed(b, inner, 6);
    p = take(b, &len);
    p[len - 1] ^= 0x55;
    expect_error(NULL, p, len, "corrupt compressed frame: 'incorrect data check'", 0);

    /* Damage in the middle is caught one way or another. */
    p[len - 1] ^= 0x55;
    for (size_t i = 10; i < len - 4; i += 97) {
        struct tm_lj_callbacks cb;
        struct rec r;
        char err[TM_ERR_LEN] = "";
        size_t need;

        p[i] ^= 0xff;
        rec_init(&r, &cb);
        assert_int_equal(decode_all(NULL, p, len, &r, &need, err), -1);
        assert_true(strstr(err, "compressed frame") != NULL);
        rec_free(&r);
        p[i] ^= 0xff;
    }
    free(p);

    /* An empty payload is not a zlib stream either. */
    add_raw_compressed(b, garbage, 0);
    expect_error_buf(NULL, b, "truncated zlib stream in compressed frame of 0 bytes", 0);
    evbuffer_free(b);
    evbuffer_free(inner);
}

/* The zlib stream must fill the frame: neither cut short nor followed by other bytes. */
static void test_lumberjack_rejects_zlib_length_mismatch(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    size_t len;
    uint8_t *z, *whole;
    (void)state;

    add_events(inner, 1, 5);
    add_compressed(b, inner, 6);
    whole = take(b, &len);
    z = whole + 6;

    add_raw_compressed(b, z, len - 6 - 3);
    expect_error_buf(NULL, b, "truncated zlib stream in compressed frame", 0);
    {
        uint8_t *more = malloc(len - 6 + 2);
        assert_non_null(more);
        memcpy(more, z, len - 6);
        memcpy(more + len - 6, "2W", 2);
        add_raw_compressed(b, more, len - 6 + 2);
        free(more);
    }
    expect_error_buf(NULL, b, "2 bytes after the end of the zlib stream", 0);
    free(whole);
    evbuffer_free(b);
    evbuffer_free(inner);
}

static void test_lumberjack_rejects_truncated_inner_frame(void **state)
{
    struct evbuffer *b = evbuffer_new(), *inner = evbuffer_new();
    uint8_t *p;
    size_t len;
    (void)state;

    assert_int_equal(tm_lj_write_window(inner, 3), 0);
    add_events(inner, 1, 3);
    p = take(inner, &len);
    /* Cut in the last payload, in a header, and after the version byte. */
    assert_int_equal(tm_lj_write_compressed(b, p, len - 1, 6), 0);
    expect_error_buf(NULL, b, "truncated frame inside compressed frame", 2);
    assert_int_equal(tm_lj_write_compressed(b, p, 6 + 4, 6), 0);
    expect_error_buf(NULL, b, "truncated frame inside compressed frame: 4 of 10 bytes", 0);
    assert_int_equal(tm_lj_write_compressed(b, p, 7, 6), 0);
    expect_error_buf(NULL, b, "truncated frame inside compressed frame: 1 of 2 bytes", 0);
    /* Errors inside follow the same rules as outside. */
    assert_int_equal(tm_lj_write_compressed(b, (const uint8_t *)"2W\0\0\0\0", 6, 6), 0);
    expect_error_buf(NULL, b, "window of 0 events", 0);
    assert_int_equal(tm_lj_write_compressed(b, (const uint8_t *)"1W\0\0\0\1", 6, 6), 0);
    expect_error_buf(NULL, b, "unsupported version byte '1'", 0);
    free(p);
    evbuffer_free(b);
    evbuffer_free(inner);
}

/* A callback returning -1 stops decoding at once, plain or inside a compressed frame. */
static void test_lumberjack_callback_stops_decoding(void **state)
{
    struct tm_lj_callbacks cb;
    struct rec r;
    char err[TM_ERR_LEN] = "";
    size_t len, need;
    (void)state;

    for (int compressed = 0; compressed <= 1; compressed++) {
        uint8_t *p = make_window(20, compressed, &len);

        rec_init(&r, &cb);
        r.stop_at_seq = 3;
        assert_int_equal(decode_all(NULL, p, len, &r, &need, err), -1);
        assert_non_null(strstr(err, "data callback refused the json frame of seq 3"));
        assert_int_equal(r.frames, 3);
        assert_int_equal(r.last_seq, 3);
        rec_free(&r);

        rec_init(&r, &cb);
        r.stop_window = 1;
        assert_int_equal(decode_all(NULL, p, len, &r, &need, err), -1);
        assert_non_null(strstr(err, "window callback refused a window of 20 events"));
        assert_int_equal(r.windows, 1);
        assert_int_equal(r.frames, 0);
        rec_free(&r);

        /* A callback that shares the err buffer keeps its own reason. */
        rec_init(&r, &cb);
        r.stop_at_seq = 5;
        r.say = err;
        assert_int_equal(decode_all(NULL, p, len, &r, &need, err), -1);
        assert_string_equal(err, "cannot queue event 5: 'kafka queue full'");
        assert_int_equal(r.frames, 5);
        rec_free(&r);
        free(p);
    }
}

/* ---- acks -------------------------------------------------------------------------- */

static void test_lumberjack_ack_round_trip(void **state)
{
    struct evbuffer *b = evbuffer_new();
    uint32_t seq = 0;
    size_t len;
    uint8_t *p;
    (void)state;

    /* A keepalive (the last acked seq again) then the final ack of a window. */
    assert_int_equal(tm_lj_write_ack(b, 0), 0);
    assert_int_equal(tm_lj_write_ack(b, 1000), 0);
    assert_int_equal(tm_lj_write_ack(b, UINT32_MAX), 0);
    p = take(b, &len);
    assert_int_equal(len, 3 * TM_LJ_HEADER_ACK_LEN);
    assert_int_equal(tm_lj_read_ack(p, len, &seq), 6);
    assert_int_equal(seq, 0);
    assert_int_equal(tm_lj_read_ack(p + 6, len - 6, &seq), 6);
    assert_int_equal(seq, 1000);
    assert_int_equal(tm_lj_read_ack(p + 12, 6, &seq), 6);
    assert_int_equal(seq, UINT32_MAX);

    /* Short input that starts like an ack: need more. */
    seq = 7;
    for (size_t n = 0; n < 6; n++)
        assert_int_equal(tm_lj_read_ack(p + 6, n, &seq), TM_AGAIN);
    assert_int_equal(seq, 7);
    free(p);

    /* Anything else is not an ack, as soon as the bytes show it. */
    assert_int_equal(tm_lj_read_ack((const uint8_t *)"1A\0\0\0\1", 6, &seq), -1);
    assert_int_equal(tm_lj_read_ack((const uint8_t *)"1", 1, &seq), -1);
    assert_int_equal(tm_lj_read_ack((const uint8_t *)"2W\0\0\0\1", 6, &seq), -1);
    assert_int_equal(tm_lj_read_ack((const uint8_t *)"2J", 2, &seq), -1);
    assert_int_equal(seq, 7);
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lumberjack_round_trip_plain),
        cmocka_unit_test(test_lumberjack_round_trip_compressed),
        cmocka_unit_test(test_lumberjack_encoders_write_network_order),
        cmocka_unit_test(test_lumberjack_byte_at_a_time),
        cmocka_unit_test(test_lumberjack_need_is_exact),
        cmocka_unit_test(test_lumberjack_compressed_holds_window_and_data),
        cmocka_unit_test(test_lumberjack_decoder_reused_across_frames),
        cmocka_unit_test(test_lumberjack_filebeat_window),
        cmocka_unit_test(test_lumberjack_rejects_version),
        cmocka_unit_test(test_lumberjack_rejects_frame_type),
        cmocka_unit_test(test_lumberjack_rejects_window_size),
        cmocka_unit_test(test_lumberjack_rejects_oversize_frames),
        cmocka_unit_test(test_lumberjack_rejects_zip_bomb),
        cmocka_unit_test(test_lumberjack_decompressed_limit_is_exact),
        cmocka_unit_test(test_lumberjack_rejects_nested_compressed),
        cmocka_unit_test(test_lumberjack_rejects_corrupt_zlib),
        cmocka_unit_test(test_lumberjack_rejects_zlib_length_mismatch),
        cmocka_unit_test(test_lumberjack_rejects_truncated_inner_frame),
        cmocka_unit_test(test_lumberjack_callback_stops_decoding),
        cmocka_unit_test(test_lumberjack_ack_round_trip),
    };
    return cmocka_run_group_tests_name("lumberjack", tests, NULL, NULL);
}
