/*
 * tm_parse_internal.h - helpers the log parsers (common/tm_parse*.c) share and nobody
 * else should call: bounded UTF-8-safe copies, address and port scanning, BSD syslog
 * time stamps with year inference, the "Mmm dd hh:mm:ss host tag[pid]: msg" header,
 * and the sshd and CEF payload parsers that the syslog parser hands messages to.
 *
 * Every function here reads at most the len bytes it is given: log lines are not
 * NUL-terminated.
 */
#ifndef TM_PARSE_INTERNAL_H
#define TM_PARSE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm/tm_event.h"
#include "tm/tm_parse.h"

/* The table entries of tm_parsers, one per format file (tm_parse_<name>.c). */
enum tm_parse_result tm_parse_eve_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                     struct tm_event *out, char *err);
enum tm_parse_result tm_parse_auth_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                      struct tm_event *out, char *err);
enum tm_parse_result tm_parse_cef_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                     struct tm_event *out, char *err);
enum tm_parse_result tm_parse_syslog_cb(const struct tm_parse_ctx *ctx, const char *line,
                                        size_t len, struct tm_event *out, char *err);

/*
 * Copies len bytes of src into dst (dstsize bytes, always NUL-terminated when dstsize > 0)
 * as valid UTF-8: each byte that is not part of a well-formed UTF-8 sequence, and each NUL,
 * becomes '?'. When the text does not fit it is cut before the first character that would
 * not fit, so a multi-byte character is never split. Returns the bytes written.
 */
size_t tm_parse_copy_text(char *dst, size_t dstsize, const char *src, size_t len);

/* Sets e->raw to the line (made valid UTF-8, cut at TM_EVENT_RAW_MAX bytes). */
void tm_parse_set_raw(struct tm_event *e, const char *line, size_t len);

/* Sets e->summary to the text (made valid UTF-8, cut at TM_EVENT_SUMMARY_MAX bytes). */
void tm_parse_set_summary(struct tm_event *e, const char *text, size_t len);

/*
 * Copies the len bytes of s into ip (46 bytes) when they are an IPv4 or IPv6 address in
 * text form. Returns 0, or -1 (ip untouched) for anything else.
 */
int tm_parse_ip(const char *s, size_t len, char *ip);

/* The port 0..65535 written as 1 to 5 decimal digits in the len bytes of s, or -1. */
int tm_parse_port(const char *s, size_t len);

/* The current time for this parse: ctx->now_ms, or the clock when ctx is NULL. */
int64_t tm_parse_now(const struct tm_parse_ctx *ctx);

/*
 * Parses a BSD syslog time stamp at the start of s: "Mmm dd hh:mm:ss" (day space- or
 * zero-padded, or one digit), optionally with ".fraction" after the seconds, or Cisco's
 * "Mmm dd yyyy hh:mm:ss". Without a year, the year is that of tm_parse_now(ctx), or the
 * year before when that would put the stamp more than a day in the future (a December
 * line read in January). Stamps carry no zone and are taken as UTC. Returns the bytes
 * used (the stamp ends at a space or at len) with ms in *out, or 0 when s does not start
 * with such a stamp.
 */
size_t tm_parse_bsd_time(const struct tm_parse_ctx *ctx, const char *s, size_t len, int64_t *out);

/*
 * Splits "TIMESTAMP HOST TAG[PID]: MSG", the part of an RFC 3164 line after the PRI and
 * the whole of an auth.log line, into m (facility and severity untouched, rfc = 3164).
 * TIMESTAMP is a BSD stamp (tm_parse_bsd_time) or an RFC 3339 one (rsyslog's
 * high-precision format). Real senders vary, so: a missing HOST is recognised when the
 * first word already looks like "tag:" or "tag[pid]:", and a line without a TAG keeps
 * app and procid empty and the rest as message. Returns 0, or -1 with the reason in err
 * when s does not start with a time stamp.
 */
int tm_parse_bsd_header(const struct tm_parse_ctx *ctx, const char *s, size_t len,
                        struct tm_syslog_msg *m, char *err);

/*
 * Where a CEF payload ("CEF:" + digit, at the start of s or after a space) starts within
 * the first len bytes of s, or NULL.
 */
const char *tm_parse_find_cef(const char *s, size_t len);

/* True for the program names sshd logs under: "sshd", "sshd(pam_unix)", "sshd-session". */
bool tm_parse_is_sshd(const char *app);

/*
 * The sshd logic shared by the auth and syslog parsers: turns the message of an sshd
 * (or sshd(pam_unix)) syslog line into an event, taking time and host from m. line/len
 * is the whole line, kept as raw. Returns TM_PARSE_EVENT or TM_PARSE_SKIP (sshd noise);
 * docs/parsers.md has the table.
 */
enum tm_parse_result tm_parse_sshd(const struct tm_parse_ctx *ctx, const struct tm_syslog_msg *m,
                                   const char *line, size_t len, struct tm_event *out, char *err);

/*
 * Parses a CEF payload: cef/cef_len starts at "CEF:". host and ts (-1 = none) come from
 * a syslog header in front of it, if any; line/len is the whole line, kept as raw.
 * Returns TM_PARSE_EVENT, or TM_PARSE_ERROR with the reason in err.
 */
enum tm_parse_result tm_parse_cef_payload(const struct tm_parse_ctx *ctx, const char *cef,
                                          size_t cef_len, const char *host, int64_t ts,
                                          const char *line, size_t len, struct tm_event *out,
                                          char *err);

/*
 * Last step of every parser: checks out against tm_event_validate(TM_EVENT_SUBMITTED).
 * Returns TM_PARSE_EVENT, or TM_PARSE_ERROR with the validator's message (a parser bug).
 */
enum tm_parse_result tm_parse_finish(struct tm_event *out, char *err);

/* Length of s without trailing CR and LF bytes. */
size_t tm_parse_trim_eol(const char *s, size_t len);

#endif
