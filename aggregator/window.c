/*
 * window.c - event-time arithmetic, free of I/O so unit tests can pin it down: tumbling
 * window starts and their UTC labels (the {t} of tm:s:{sector}:1m:{t}), the per-partition
 * watermark, and the lateness rule (docs/aggregator.md, "Windows and lateness"):
 *
 *   watermark = greatest event time seen in the partition - allowed lateness
 *   an event is late when its time is below the watermark as it stood before the event;
 *   late events skip the 1-minute window and still count in the hour and day windows
 *   while those are retained (window end + retention > watermark).
 *
 * Everything here is a function of the event and of the partition's history only, so
 * replaying a partition from a stored offset and watermark gives the same decisions.
 */
#include <string.h>

#include "aggregator.h"
#include "tm/tm_time.h"

#define MINUTE_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

static const int64_t res_len[AGG_RES_COUNT] = {MINUTE_MS, HOUR_MS, DAY_MS};

const char *agg_res_name(enum agg_res r)
{
    static const char *const names[AGG_RES_COUNT] = {"1m", "1h", "1d"};
    return names[r];
}

int64_t agg_res_len_ms(enum agg_res r)
{
    return res_len[r];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t agg_window_start(int64_t ts, enum agg_res r)
{
    return floor_div(ts, res_len[r]) * res_len[r];
}

/* Built from tm_time_format's digits (no gmtime_r: this runs for every event). */
int agg_window_label(int64_t ts, enum agg_res r, char *out, size_t outlen)
{
    static const size_t len[AGG_RES_COUNT] = {12, 10, 8};
    char t[TM_TIME_LEN], l[AGG_LABEL_LEN];

    if (tm_time_format(ts, t, sizeof(t)) != 0 || outlen <= len[r])
        return -1;
    /* "YYYY-MM-DDTHH:MM:..." -> "YYYYMMDDHHMM", cut to the resolution */
    memcpy(l, t, 4);
    memcpy(l + 4, t + 5, 2);
    memcpy(l + 6, t + 8, 2);
    memcpy(l + 8, t + 11, 2);
    memcpy(l + 10, t + 14, 2);
    memcpy(out, l, len[r]);
    out[len[r]] = '\0';
    return 0;
}

int agg_hour_label(int64_t ts, char *out, size_t outlen)
{
    return agg_window_label(ts, AGG_1H, out, outlen);
}

int64_t agg_watermark(int64_t max_ts, int64_t lateness_ms)
{
    return max_ts == AGG_TS_NONE ? AGG_TS_NONE : max_ts - lateness_ms;
}

int64_t agg_max_ts_advance(int64_t max_ts, int64_t ts, int64_t received, int64_t max_future_ms)
{
    int64_t t = ts;

    if (received >= 0 && t > received + max_future_ms)
        t = received + max_future_ms;
    return t > max_ts ? t : max_ts;
}

unsigned agg_window_mask(int64_t ts, int64_t wm, const int64_t retain_ms[AGG_RES_COUNT])
{
    unsigned mask = 0;

    if (wm == AGG_TS_NONE || ts >= wm)
        return AGG_WIN_1M | AGG_WIN_1H | AGG_WIN_1D;
    for (int r = AGG_1H; r < AGG_RES_COUNT; r++) {
        int64_t end = agg_window_start(ts, (enum agg_res)r) + res_len[r];
        if (end + retain_ms[r] > wm)
            mask |= 1u << r;
    }
    return mask;
}
