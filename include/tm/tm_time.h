/*
 * tm_time.h - event time. Times are int64 milliseconds since the Unix epoch (UTC)
 * everywhere inside the system; on the wire they are RFC 3339 strings in UTC with exactly
 * three fractional digits: "2026-11-23T07:22:05.123Z".
 */
#ifndef TM_TIME_H
#define TM_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL. */
#define TM_TIME_LEN 25

/* Milliseconds since the epoch, from the real-time clock. */
int64_t tm_time_now_ms(void);

/* Milliseconds from a monotonic clock, for timeouts and intervals. */
int64_t tm_time_mono_ms(void);

/*
 * Formats ms (years 0000..9999) as RFC 3339 UTC with milliseconds into out, which holds
 * at least TM_TIME_LEN bytes. Returns 0, or -1 when ms is out of range.
 */
int tm_time_format(int64_t ms, char *out, size_t outlen);

/*
 * Parses an RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)", 'T'
 * or 't' or ' ' between date and time, 'z' for 'Z'. The fraction may have 1 to 9 digits;
 * digits past milliseconds are truncated. A leap second (:60) is read as :59.999.
 * Fields are range-checked (no February 30th). Returns 0 with UTC milliseconds in *out,
 * or -1 for anything else, including trailing bytes.
 */
int tm_time_parse(const char *s, size_t len, int64_t *out);

/* Days since 1970-01-01 of a proleptic Gregorian date; month 1..12. */
int64_t tm_time_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
