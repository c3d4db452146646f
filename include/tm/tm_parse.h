/*
 * tm_parse.h - log parsers that turn one line of a security log into a canonical event
 * (tm_event.h). One table entry per format, so adding a format is one file and one line:
 *
 *   eve     Suricata EVE JSON: alert and anomaly records (other event types are skipped)
 *   auth    sshd lines of auth.log / secure: failed password, invalid user, accepted, ...
 *   cef     ArcSight CEF, bare or after a syslog header
 *   syslog  RFC 5424 or RFC 3164 line; CEF and sshd payloads are handed to those parsers,
 *           anything else becomes an "other" event with the syslog severity mapped
 *   json    a canonical v1 event (TM_EVENT_SUBMITTED rules)
 *
 * Parsers fill what the line says (ts, category, severity, attack, src, dst, summary,
 * raw, source.kind/host); identity fields (operator, sector, region, agent, id) are left
 * to the caller. Shared by tm-collector (syslog listener, Beats normalisation) and tm-agent.
 */
#ifndef TM_PARSE_H
#define TM_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"

enum tm_parse_result {
    TM_PARSE_ERROR = -1, /* malformed for this format; err says why */
    TM_PARSE_SKIP = 0,   /* well-formed but not a security event (EVE flow, sshd banner...) */
    TM_PARSE_EVENT = 1,  /* *out holds a valid event (TM_EVENT_SUBMITTED rules) */
};

/*
 * What a parser needs besides the line. Parsers take a NULL ctx as "now, by the clock".
 * Time stamps without a zone (RFC 3164, auth.log, CEF "rt" dates) are read as UTC.
 */
struct tm_parse_ctx {
    int64_t now_ms; /* reference time: the year of RFC 3164/auth.log stamps, default ts */
};

struct tm_parser {
    const char *name; /* "eve", "auth", "cef", "syslog", "json" */
    /*
     * Parses one line (no trailing newline, though a trailing CR or LF is ignored; not
     * NUL-terminated; never read past len). out is overwritten whatever the result and
     * means something only on TM_PARSE_EVENT: then the event passed tm_event_validate(...,
     * TM_EVENT_SUBMITTED): text copied from the line is made valid UTF-8 ('?' for bad
     * bytes) and cut to the field's limit at a character boundary. On TM_PARSE_ERROR err
     * (TM_ERR_LEN bytes, may be NULL) says why, prefixed with the parser name.
     */
    enum tm_parse_result (*parse)(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                  struct tm_event *out, char *err);
};

extern const struct tm_parser tm_parsers[];
extern const size_t tm_parsers_count;

/* The parser with this name, or NULL. */
const struct tm_parser *tm_parser_find(const char *name);

/* A syslog message split into its header fields (RFC 5424 or RFC 3164). */
struct tm_syslog_msg {
    int facility; /* 0..23 */
    int severity; /* 0..7 (syslog severity, 0 = emergency) */
    int64_t ts;   /* ms; for RFC 3164 the year comes from ctx->now_ms; -1 if none */
    char host[256];
    char app[49]; /* APP-NAME or TAG */
    char procid[129];
    char msgid[33];
    const char *msg; /* points into the line: the free-form message (BOM stripped) */
    size_t msg_len;
    const char *sd; /* RFC 5424 STRUCTURED-DATA as written (escapes kept); NULL: "-", 3164 */
    size_t sd_len;
    int rfc; /* 5424 or 3164 */
};

/*
 * Splits a syslog line (RFC 5424, or RFC 3164 as real senders write it) into header and
 * message. host, app, procid and msgid are NUL-terminated copies ("" for NILVALUE or
 * absent; host made valid UTF-8); msg and sd point into line, so the line must outlive
 * out. A line must start with "<PRI>". An RFC 3164 line without a readable time stamp is
 * all message (ts -1), as RFC 3164 section 4.3.3 tells relays. Returns 0, or -1 with the
 * reason in err (TM_ERR_LEN bytes, may be NULL).
 */
int tm_syslog_split(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                    struct tm_syslog_msg *out, char *err);

#endif
