/*
 * tm_time.c - clocks and RFC 3339 text. Conversion between civil dates and day numbers
 * is done with integer arithmetic on the proleptic Gregorian calendar, so formatting and
 * parsing never touch the process time zone or the C library's locale.
 */
#include "tm/tm_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY 86400000LL
/* 0000-01-01 and 10000-01-01 as days since the epoch. */
#define DAYS_MIN (-719528LL)
#define DAYS_END 2932897LL

int64_t tm_time_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tm_time_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Shifts the year to start in March so that the leap day is the last day of a year. */
int64_t tm_time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/*
 * Written digit by digit: it runs three times per event on the collector's hot path,
 * where the times of neighbouring events mostly fall in a few seconds. Each thread keeps
 * the text of the last two seconds it formatted ("2026-11-23T07:22:05"; two, because an
 * event's ts and received alternate) and then writes only the milliseconds.
 */
struct second_text {
    int64_t sec; /* ms / 1000 of the text below; INT64_MIN: none yet */
    char text[19];
};
static _Thread_local struct second_text last_seconds[2] = {{INT64_MIN, ""}, {INT64_MIN, ""}};
static _Thread_local unsigned last_second_next; /* the entry to replace next */

int tm_time_format(int64_t ms, char *out, size_t outlen)
{
    int64_t days, rem, y;
    unsigned m, d;

    if (outlen < TM_TIME_LEN)
        return -1;
    for (int i = 0; ms >= 0 && i < 2; i++) {
        if (ms / 1000 != last_seconds[i].sec)
            continue;
        memcpy(out, last_seconds[i].text, sizeof(last_seconds[i].text));
        out[19] = '.';
        put_digits(out + 20, (unsigned)(ms % 1000), 3);
        out[23] = 'Z';
        out[24] = '\0';
        return 0;
    }
    days = ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
    if (days < DAYS_MIN || days >= DAYS_END)
        return -1;
    rem = ms - days * MS_PER_DAY;
    civil_from_days(days, &y, &m, &d);
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(rem / 3600000), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(rem / 60000 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(rem / 1000 % 60), 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(rem % 1000), 3);
    out[23] = 'Z';
    out[24] = '\0';
    if (ms >= 0) {
        struct second_text *c = &last_seconds[last_second_next];
        memcpy(c->text, out, sizeof(c->text));
        c->sec = ms / 1000;
        last_second_next ^= 1;
    }
    return 0;
}

/* Reads exactly n digits at s[*i]. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;

    if (*i + (size_t)n > len)
        return false;
    for (int k = 0; k < n; k++) {
        char c = s[*i + k];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *i += n;
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int tm_time_parse(const char *s, size_t len, int64_t *out)
{
    int y, mo, d, h, mi, sec, frac = 0, off = 0;
    size_t i = 0;
    int64_t ms;

    if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, '-') || !digits(s, len, &i, 2, &mo) ||
        !expect(s, len, &i, '-') || !digits(s, len, &i, 2, &d))
        return -1;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -1;
    i++;
    if (!digits(s, len, &i, 2, &h) || !expect(s, len, &i, ':') || !digits(s, len, &i, 2, &mi) ||
        !expect(s, len, &i, ':') || !digits(s, len, &i, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -1;
    if (i < len && s[i] == '.') {
        int n = 0;
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n < 3)
                frac = frac * 10 + (s[i] - '0');
            n++;
            i++;
        }
        if (n == 0 || n > 9)
            return -1;
        for (; n < 3; n++)
            frac *= 10;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1, oh, om;
        i++;
        if (!digits(s, len, &i, 2, &oh) || !expect(s, len, &i, ':') ||
            !digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    if (sec == 60) {
        sec = 59;
        frac = 999;
    }
    ms = tm_time_days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_DAY;
    ms += ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac;
    ms -= (int64_t)off * 60000;
    *out = ms;
    return 0;
}
