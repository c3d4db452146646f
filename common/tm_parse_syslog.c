/*
 * tm_parse_syslog.c - syslog lines: tm_syslog_split() for RFC 5424 and RFC 3164 headers,
 * the BSD time stamp and "host tag[pid]:" reading that the auth parser shares, and the
 * "syslog" table entry.
 *
 * Splitting never copies the message: msg (and sd) point into the caller's line, and the
 * header fields are bounded copies. RFC 5424 is read strictly (a malformed header is an
 * error, because a sender that speaks 5424 can be expected to speak it right); RFC 3164 is
 * read the way relays read it, since real senders drop the host, pad the day with a zero,
 * add milliseconds or a year: only a missing "<PRI>" is an error, and a line whose time
 * stamp cannot be read becomes all message (RFC 3164 section 4.3.3).
 *
 * The syslog parser then routes the message by content: a CEF payload goes to the CEF
 * parser (and falls back to a plain event if it is not valid CEF), an sshd message to the
 * sshd logic of the auth parser, and anything else becomes a category "other" event with
 * the syslog severity mapped to 1..10 (docs/parsers.md).
 */
#include "tm/tm_parse.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"
#include "tm_parse_internal.h"

#define MS_PER_DAY 86400000LL
#define TAG_MAX 48
#define PROCID_MAX 128
#define MSGID_MAX 32
#define SD_NAME_MAX 32

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Month 0..11 of a three-letter English name (any case), or -1. */
static int month_index(const char *s, size_t len)
{
    if (len < 3)
        return -1;
    for (int m = 0; m < 12; m++)
        if (lower(s[0]) == lower(months[m][0]) && lower(s[1]) == months[m][1] &&
            lower(s[2]) == months[m][2])
            return m;
    return -1;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 1 && leap ? 29 : dim[m];
}

/* Exactly two digits at s[*i]. */
static bool two_digits(const char *s, size_t len, size_t *i, int *out)
{
    if (*i + 2 > len || !is_digit(s[*i]) || !is_digit(s[*i + 1]))
        return false;
    *out = (s[*i] - '0') * 10 + (s[*i + 1] - '0');
    *i += 2;
    return true;
}

static int64_t compose(int64_t y, int mon, int day, int64_t secs, int frac)
{
    return tm_time_days_from_civil(y, (unsigned)mon + 1, (unsigned)day) * MS_PER_DAY + secs * 1000 +
           frac;
}

size_t tm_parse_bsd_time(const struct tm_parse_ctx *ctx, const char *s, size_t len, int64_t *out)
{
    size_t i = 3;
    int mon = month_index(s, len), day, year = -1, h, mi, sec, frac = 0;
    int64_t secs, ms = -1, now;
    struct tm now_tm;
    time_t now_s;

    if (mon < 0 || i >= len || s[i] != ' ')
        return 0;
    i++;
    if (i < len && s[i] == ' ') /* "Feb  5" */
        i++;
    if (i >= len || !is_digit(s[i]))
        return 0;
    day = s[i++] - '0';
    if (i < len && is_digit(s[i]))
        day = day * 10 + (s[i++] - '0');
    if (i >= len || s[i] != ' ')
        return 0;
    i++;
    /* Cisco: "Mmm dd yyyy hh:mm:ss". */
    if (i + 5 <= len && is_digit(s[i]) && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
        is_digit(s[i + 3]) && s[i + 4] == ' ') {
        year =
            (s[i] - '0') * 1000 + (s[i + 1] - '0') * 100 + (s[i + 2] - '0') * 10 + (s[i + 3] - '0');
        i += 5;
    }
    if (!two_digits(s, len, &i, &h) || i >= len || s[i++] != ':' || !two_digits(s, len, &i, &mi) ||
        i >= len || s[i++] != ':' || !two_digits(s, len, &i, &sec))
        return 0;
    if (i < len && s[i] == '.') {
        int n = 0;
        i++;
        for (; i < len && is_digit(s[i]); i++, n++)
            if (n < 3)
                frac = frac * 10 + (s[i] - '0');
        if (n == 0 || n > 9)
            return 0;
        for (; n < 3; n++)
            frac *= 10;
    }
    if ((i < len && s[i] != ' ') || day < 1 || h > 23 || mi > 59 || sec > 60)
        return 0;
    if (sec == 60) {
        sec = 59;
        frac = 999;
    }
    secs = (int64_t)h * 3600 + mi * 60 + sec;
    if (year >= 0) {
        if (day > days_in_month(year, mon))
            return 0;
        ms = compose(year, mon, day, secs, frac);
    } else {
        now = tm_parse_now(ctx);
        now_s = (time_t)(now / 1000);
        if (gmtime_r(&now_s, &now_tm) == NULL)
            return 0;
        /* This year, else the one before (further back only for a 29th of February). */
        for (int64_t y = now_tm.tm_year + 1900; y >= now_tm.tm_year + 1900 - 8; y--) {
            if (day > days_in_month(y, mon))
                continue;
            ms = compose(y, mon, day, secs, frac);
            if (ms <= now + MS_PER_DAY)
                break;
            ms = -1;
        }
    }
    if (ms < 0)
        return 0;
    *out = ms;
    return i;
}

/* A printable excerpt of s for error messages. */
static const char *excerpt(char *buf, size_t size, const char *s, size_t len)
{
    tm_parse_copy_text(buf, size, s, len);
    return buf;
}

static bool is_tag_char(char c)
{
    return (unsigned char)c > ' ' && c != 0x7f && c != '[' && c != ']' && c != ':';
}

/*
 * A TAG at s: "name:", "name[pid]:" or "name[pid]", followed by a space or the end.
 * Fills app and procid and returns the bytes used (without the space), or 0.
 */
static size_t parse_tag(const char *s, size_t len, struct tm_syslog_msg *m)
{
    size_t i = 0, pid = 0, pid_len = 0;

    while (i < len && is_tag_char(s[i]))
        i++;
    if (i == 0 || i > TAG_MAX || i >= len)
        return 0;
    if (s[i] == '[') {
        pid = ++i;
        while (i < len && s[i] != ']' && (unsigned char)s[i] > ' ' && i - pid <= PROCID_MAX)
            i++;
        if (i >= len || s[i] != ']' || i == pid || i - pid > PROCID_MAX)
            return 0;
        pid_len = i - pid;
        i++;
        if (i < len && s[i] == ':')
            i++;
    } else if (s[i] == ':') {
        i++;
    } else {
        return 0;
    }
    if (i < len && s[i] != ' ')
        return 0;
    tm_parse_copy_text(m->app, sizeof(m->app), s, pid > 0 ? pid - 1 : i - 1);
    tm_parse_copy_text(m->procid, sizeof(m->procid), s + pid, pid_len);
    return i;
}

static void msg_init(struct tm_syslog_msg *m, const char *end)
{
    memset(m, 0, sizeof(*m));
    m->ts = -1;
    m->msg = end;
    m->rfc = 3164;
}

int tm_parse_bsd_header(const struct tm_parse_ctx *ctx, const char *s, size_t len,
                        struct tm_syslog_msg *m, char *err)
{
    char buf[32];
    size_t i = 0, w, n;
    int64_t ts;

    msg_init(m, s + len);
    if (len >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-') {
        while (i < len && s[i] != ' ')
            i++;
        if (tm_time_parse(s, i, &ts) != 0 || ts < 0)
            return tm_err(err, "time stamp '%s' is not RFC 3339", excerpt(buf, sizeof(buf), s, i));
    } else if ((n = tm_parse_bsd_time(ctx, s, len, &ts)) > 0) {
        i = n;
    } else {
        return tm_err(err, "expected a time stamp like 'Mmm dd hh:mm:ss', got '%s'",
                      excerpt(buf, sizeof(buf), s, len < 20 ? len : 20));
    }
    m->ts = ts;
    while (i < len && s[i] == ' ')
        i++;
    /* HOSTNAME, unless the first word is already the TAG or a CEF payload. */
    for (w = i; w < len && s[w] != ' ';)
        w++;
    if (tm_parse_find_cef(s + i, len - i < 5 ? len - i : 5) != NULL) {
        m->msg = s + i;
        m->msg_len = len - i;
        return 0;
    }
    if ((n = parse_tag(s + i, len - i, m)) == 0) {
        tm_parse_copy_text(m->host, sizeof(m->host), s + i, w - i);
        i = w;
        while (i < len && s[i] == ' ')
            i++;
        n = parse_tag(s + i, len - i, m);
    }
    i += n;
    if (n > 0 && i < len && s[i] == ' ')
        i++;
    m->msg = s + i;
    m->msg_len = len - i;
    return 0;
}

/* ---- RFC 5424 ---------------------------------------------------------------------- */

/*
 * One header field at s[*i] up to the next space (which must follow). "-" is NILVALUE and
 * gives "". Returns 0, or -1 with err naming the field.
 */
static int field_5424(const char *s, size_t len, size_t *i, const char *name, size_t max, char *out,
                      size_t outsize, char *err)
{
    size_t start = *i;

    while (*i < len && s[*i] != ' ')
        (*i)++;
    if (*i == start)
        return tm_err(err, "syslog: rfc 5424 %s is empty (use '-')", name);
    if (*i - start > max)
        return tm_err(err, "syslog: rfc 5424 %s is longer than %zu bytes", name, max);
    if (*i >= len)
        return tm_err(err, "syslog: rfc 5424 line ends after %s", name);
    if (!(*i - start == 1 && s[start] == '-'))
        tm_parse_copy_text(out, outsize, s + start, *i - start);
    (*i)++;
    return 0;
}

/* SD-NAME: 1 to 32 printable US-ASCII bytes except '=', ' ', ']' and '"'. */
static size_t sd_name(const char *s, size_t len, size_t i)
{
    size_t start = i;

    while (i < len && s[i] > ' ' && s[i] < 0x7f && s[i] != '=' && s[i] != ']' && s[i] != '"')
        i++;
    return i - start <= SD_NAME_MAX ? i - start : 0;
}

static int structured_data(const char *s, size_t len, size_t *i, struct tm_syslog_msg *m, char *err)
{
    size_t start = *i, n;

    if (*i < len && s[*i] == '-') {
        (*i)++;
        return 0;
    }
    if (*i >= len || s[*i] != '[')
        return tm_err(err, "syslog: rfc 5424 structured data must be '-' or start with '['");
    while (*i < len && s[*i] == '[') {
        (*i)++;
        if ((n = sd_name(s, len, *i)) == 0)
            return tm_err(err, "syslog: rfc 5424 structured data: bad SD-ID at byte %zu", *i);
        *i += n;
        for (;;) {
            if (*i >= len)
                return tm_err(err, "syslog: rfc 5424 structured data: element not closed");
            if (s[*i] == ']') {
                (*i)++;
                break;
            }
            if (s[*i] != ' ')
                return tm_err(err,
                              "syslog: rfc 5424 structured data: expected ' ' or ']' at "
                              "byte %zu",
                              *i);
            (*i)++;
            if ((n = sd_name(s, len, *i)) == 0)
                return tm_err(err, "syslog: rfc 5424 structured data: bad PARAM-NAME at byte %zu",
                              *i);
            *i += n;
            if (*i + 1 >= len || s[*i] != '=' || s[*i + 1] != '"')
                return tm_err(err, "syslog: rfc 5424 structured data: expected '=\"' at byte %zu",
                              *i);
            *i += 2;
            while (*i < len && s[*i] != '"')
                *i += s[*i] == '\\' && *i + 1 < len ? 2 : 1;
            if (*i >= len)
                return tm_err(err, "syslog: rfc 5424 structured data: PARAM-VALUE not closed");
            (*i)++;
        }
    }
    m->sd = s + start;
    m->sd_len = *i - start;
    return 0;
}

static int split_5424(const char *s, size_t len, size_t i, struct tm_syslog_msg *m, char *err)
{
    char tsbuf[64] = "";
    size_t start;

    m->rfc = 5424;
    if (!(s[i] == '1' && s[i + 1] == ' '))
        return tm_err(err, "syslog: unsupported syslog protocol version (only 1 is defined)");
    i += 2;
    if (field_5424(s, len, &i, "TIMESTAMP", sizeof(tsbuf) - 1, tsbuf, sizeof(tsbuf), err) != 0)
        return -1;
    if (tsbuf[0] != '\0' && (tm_time_parse(tsbuf, strlen(tsbuf), &m->ts) != 0 || m->ts < 0))
        return tm_err(err, "syslog: rfc 5424 TIMESTAMP '%s' is not RFC 3339", tsbuf);
    if (field_5424(s, len, &i, "HOSTNAME", TM_EVENT_HOST_MAX, m->host, sizeof(m->host), err) != 0 ||
        field_5424(s, len, &i, "APP-NAME", TAG_MAX, m->app, sizeof(m->app), err) != 0 ||
        field_5424(s, len, &i, "PROCID", PROCID_MAX, m->procid, sizeof(m->procid), err) != 0 ||
        field_5424(s, len, &i, "MSGID", MSGID_MAX, m->msgid, sizeof(m->msgid), err) != 0)
        return -1;
    if (structured_data(s, len, &i, m, err) != 0)
        return -1;
    if (i < len && s[i] != ' ')
        return tm_err(err, "syslog: rfc 5424 expected a space after structured data");
    start = i < len ? i + 1 : len;
    /* A MSG in UTF-8 may start with a byte order mark; it is not part of the text. */
    if (len - start >= 3 && memcmp(s + start, "\xEF\xBB\xBF", 3) == 0)
        start += 3;
    m->msg = s + start;
    m->msg_len = len - start;
    return 0;
}

int tm_syslog_split(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                    struct tm_syslog_msg *out, char *err)
{
    size_t i = 1, v;
    int pri = 0;

    len = tm_parse_trim_eol(line, len);
    msg_init(out, line + len);
    if (len == 0)
        return tm_err(err, "syslog: empty line");
    if (line[0] != '<')
        return tm_err(err, "syslog: missing '<PRI>' at the start of the line");
    while (i < len && i <= 3 && is_digit(line[i]))
        pri = pri * 10 + (line[i++] - '0');
    if (i == 1 || i >= len || line[i] != '>')
        return tm_err(err, "syslog: malformed '<PRI>' (expected '<' 1 to 3 digits '>')");
    if (pri > 191)
        return tm_err(err, "syslog: priority %d is out of range 0-191", pri);
    i++;
    /* RFC 5424 has VERSION (1 to 3 digits, not starting with 0) and a space after <PRI>. */
    for (v = i; v < len && v - i < 4 && is_digit(line[v]);)
        v++;
    if (v > i && v - i <= 3 && v < len && line[v] == ' ' && line[i] != '0') {
        if (split_5424(line, len, i, out, err) != 0)
            return -1;
    } else if (tm_parse_bsd_header(ctx, line + i, len - i, out, NULL) != 0) {
        /* No readable TIMESTAMP: all of it is MSG, as RFC 3164 section 4.3.3 says. */
        msg_init(out, line + len);
        out->msg = line + i;
        out->msg_len = len - i;
    }
    out->facility = pri / 8;
    out->severity = pri % 8;
    return 0;
}

/* ---- the syslog parser ------------------------------------------------------------- */

/* Syslog severity 0 (emergency) .. 7 (debug) to event severity 10..1. */
static const int severity_map[8] = {9, 8, 7, 5, 4, 3, 2, 1};

enum tm_parse_result tm_parse_syslog_cb(const struct tm_parse_ctx *ctx, const char *line,
                                        size_t len, struct tm_event *out, char *err)
{
    struct tm_syslog_msg m;
    const char *cef;
    enum tm_parse_result r;

    tm_event_init(out);
    len = tm_parse_trim_eol(line, len);
    if (tm_syslog_split(ctx, line, len, &m, err) != 0)
        return TM_PARSE_ERROR;
    /* CEF anywhere near the start of the message (3164 headers vary); if it is not valid
     * CEF, the line is still a good syslog message. */
    cef = tm_parse_find_cef(m.msg, m.msg_len < 256 ? m.msg_len : 256);
    if (cef != NULL) {
        r = tm_parse_cef_payload(ctx, cef, (size_t)(m.msg + m.msg_len - cef), m.host, m.ts, line,
                                 len, out, NULL);
        if (r == TM_PARSE_EVENT)
            return r;
        tm_event_init(out);
    }
    if (tm_parse_is_sshd(m.app))
        return tm_parse_sshd(ctx, &m, line, len, out, err);

    out->ts = m.ts >= 0 ? m.ts : tm_parse_now(ctx);
    tm_strlcpy(out->category, "other", sizeof(out->category));
    out->severity = severity_map[m.severity & 7];
    if (m.msg_len > 0)
        tm_parse_set_summary(out, m.msg, m.msg_len);
    else if (m.sd != NULL)
        tm_parse_set_summary(out, m.sd, m.sd_len);
    tm_strlcpy(out->source.kind, "syslog", sizeof(out->source.kind));
    tm_strlcpy(out->source.host, m.host, sizeof(out->source.host));
    tm_parse_set_raw(out, line, len);
    return tm_parse_finish(out, err);
}
