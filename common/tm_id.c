/*
 * tm_id.c - ULID event ids. Each thread keeps the last time and 80-bit random part it
 * used: a new millisecond draws fresh randomness from getrandom(2), the same millisecond
 * (or a clock that stepped back) increments the previous random part, so one thread's
 * ids strictly increase. Two threads or hosts collide only if they draw the same 80 bits
 * in the same millisecond.
 */
#include "tm/tm_id.h"

#include <string.h>
#include <sys/random.h>

#include "tm/tm_time.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static _Thread_local int64_t last_ms = -1;
static _Thread_local uint8_t last_rand[10];

static void fill_random(uint8_t *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
}

/* Adds one to the 80-bit big-endian number; on overflow it wraps (2^80 ids in one ms). */
static void increment(uint8_t *b)
{
    for (int i = 9; i >= 0; i--)
        if (++b[i] != 0)
            break;
}

static void encode(int64_t ms, const uint8_t *rnd, char *out)
{
    uint64_t t = (uint64_t)ms & 0xFFFFFFFFFFFFULL;
    uint64_t hi, lo;

    /* 10 characters of time (50 bits, the top 2 always zero). */
    for (int i = 9; i >= 0; i--) {
        out[i] = crockford[t & 31];
        t >>= 5;
    }
    /* 16 characters of randomness: 80 bits as two 40-bit halves. */
    hi = lo = 0;
    for (int i = 0; i < 5; i++)
        hi = hi << 8 | rnd[i];
    for (int i = 5; i < 10; i++)
        lo = lo << 8 | rnd[i];
    for (int i = 7; i >= 0; i--) {
        out[10 + i] = crockford[hi & 31];
        hi >>= 5;
        out[18 + i] = crockford[lo & 31];
        lo >>= 5;
    }
    out[TM_ULID_LEN] = '\0';
}

void tm_id_new_at(int64_t ms, char *out)
{
    if (ms > last_ms) {
        last_ms = ms;
        fill_random(last_rand, sizeof(last_rand));
    } else {
        increment(last_rand);
    }
    encode(last_ms, last_rand, out);
}

void tm_id_from(int64_t ms, const uint8_t bits[10], char *out)
{
    encode(ms, bits, out);
}

void tm_id_new(char *out)
{
    tm_id_new_at(tm_time_now_ms(), out);
}

int64_t tm_id_time(const char *s)
{
    int64_t ms = 0;

    if (strlen(s) != TM_ULID_LEN || s[0] > '7')
        return -1;
    for (int i = 0; i < TM_ULID_LEN; i++) {
        const char *p = strchr(crockford, s[i]);
        if (s[i] == '\0' || p == NULL)
            return -1;
        if (i < 10)
            ms = ms * 32 + (p - crockford);
    }
    return ms;
}
