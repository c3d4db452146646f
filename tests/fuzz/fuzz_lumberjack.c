/*
 * fuzz_lumberjack.c - libFuzzer target for the Lumberjack v2 decoder, with small limits.
 * Each input is decoded twice on fresh decoders: once handed over whole, and once split
 * at an offset taken from the input's first bytes, the way a socket might deliver it,
 * with the unconsumed tail carried over. Both runs must see the same callbacks and end
 * the same way (same consumed length, *need or error message); *need must always ask for
 * more than was left; a failure must carry a message. A data frame whose payload starts
 * with "STOP" makes the callback return -1, so that path is fuzzed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_lumberjack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A running digest of the callbacks: FNV-1a over their kind, numbers and payloads. */
struct run {
    uint64_t hash;
    unsigned calls;
};

static void mix(struct run *r, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        r->hash ^= b[i];
        r->hash *= 0x100000001b3ULL;
    }
}

static int window_cb(void *arg, uint32_t size)
{
    struct run *r = arg;

    mix(r, "W", 1);
    mix(r, &size, sizeof(size));
    r->calls++;
    if (size == 0)
        abort(); /* the decoder rejects empty windows */
    return 0;
}

static int data_cb(void *arg, uint32_t seq, const char *payload, size_t len)
{
    struct run *r = arg;

    mix(r, "J", 1);
    mix(r, &seq, sizeof(seq));
    mix(r, &len, sizeof(len));
    mix(r, payload, len);
    r->calls++;
    return len >= 4 && memcmp(payload, "STOP", 4) == 0 ? -1 : 0;
}

/*
 * Feeds data[0..size) in pieces ending at cut (size when whole), carrying the unconsumed
 * tail over like a connection would. Returns the total consumed or -1; fills *need, err.
 */
static long run_decoder(const uint8_t *data, size_t size, size_t cut, struct run *r, size_t *need,
                        char *err)
{
    struct tm_lj_limits l = {.max_frame = 4096, .max_decompressed = 64 * 1024, .max_window = 64};
    struct tm_lj_callbacks cb = {.window_cb = window_cb, .data_cb = data_cb, .arg = r};
    struct tm_lj_decoder *d = tm_lj_decoder_create(&l);
    size_t start = 0;
    size_t ends[2] = {cut, size};
    long total = -1;

    if (d == NULL)
        abort();
    for (int i = 0; i < 2; i++) {
        size_t avail = ends[i] - start;
        long got = tm_lj_decoder_feed(d, data + start, avail, need, &cb, err);

        if (got < 0) {
            if (err[0] == '\0')
                abort();
            goto out;
        }
        if ((size_t)got > avail || *need <= avail - (size_t)got || *need < 2)
            abort();
        start += (size_t)got;
    }
    total = (long)start;
out:
    tm_lj_decoder_destroy(d);
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole = {0xcbf29ce484222325ULL, 0}, split = {0xcbf29ce484222325ULL, 0};
    char err1[TM_ERR_LEN] = "", err2[TM_ERR_LEN] = "";
    size_t need1 = 0, need2 = 0, cut;
    long got1, got2;
    uint32_t seq;

    cut = size > 1 ? ((size_t)data[size - 1] << 8 | data[size / 2]) % (size + 1) : size;
    got1 = run_decoder(data, size, size, &whole, &need1, err1);
    got2 = run_decoder(data, size, cut, &split, &need2, err2);
    if (got1 != got2 || whole.hash != split.hash || whole.calls != split.calls)
        abort();
    if (got1 < 0 ? strcmp(err1, err2) != 0 : need1 != need2)
        abort();

    /* Whatever the bytes, reading them as an ack must answer sensibly. */
    switch (tm_lj_read_ack(data, size, &seq)) {
    case TM_LJ_HEADER_ACK_LEN:
        if (size < TM_LJ_HEADER_ACK_LEN || data[0] != '2' || data[1] != 'A')
            abort();
        break;
    case TM_AGAIN:
        if (size >= TM_LJ_HEADER_ACK_LEN)
            abort();
        break;
    case -1:
        break;
    default:
        abort();
    }
    return 0;
}
