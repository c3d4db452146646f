/*
 * tm_parse.c - the parser table and what every parser shares. Each format lives in its
 * own file (tm_parse_eve.c, tm_parse_auth.c, tm_parse_cef.c, tm_parse_syslog.c) and adds
 * one line to tm_parsers below; the "json" parser, a thin wrapper around the canonical
 * decoder, lives here.
 *
 * Data flow: a caller hands one line (not NUL-terminated) to a parser; the parser fills a
 * struct tm_event through the helpers here, which make every copied string valid UTF-8
 * and cut it at its field's limit, and ends with tm_parse_finish(), which runs the same
 * validation the collector applies. So the invariant callers rely on holds by
 * construction: TM_PARSE_EVENT means the event validates.
 */
#include "tm/tm_parse.h"

#include <arpa/inet.h>
#include <string.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"
#include "tm_parse_internal.h"

static enum tm_parse_result json_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                    struct tm_event *out, char *err);

const struct tm_parser tm_parsers[] = {
    {"eve", tm_parse_eve_cb},       {"auth", tm_parse_auth_cb}, {"cef", tm_parse_cef_cb},
    {"syslog", tm_parse_syslog_cb}, {"json", json_cb},
};
const size_t tm_parsers_count = TM_ARRAY_LEN(tm_parsers);

const struct tm_parser *tm_parser_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < tm_parsers_count; i++)
        if (strcmp(tm_parsers[i].name, name) == 0)
            return &tm_parsers[i];
    return NULL;
}

/*
 * A canonical v1 event, one JSON object per line, as senders submit it. The decoder
 * already says which field is wrong; the parser only prefixes its name.
 */
static enum tm_parse_result json_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                    struct tm_event *out, char *err)
{
    char why[TM_ERR_LEN] = "";
    (void)ctx;

    if (tm_event_decode(out, line, len, TM_EVENT_SUBMITTED, why) != TM_EVENT_OK) {
        tm_event_init(out);
        tm_err(err, "json: %s", why);
        return TM_PARSE_ERROR;
    }
    return TM_PARSE_EVENT;
}

/* ---- shared helpers (tm_parse_internal.h) ------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t k;

    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        k = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        k = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

size_t tm_parse_copy_text(char *dst, size_t dstsize, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0;

    if (dstsize == 0)
        return 0;
    while (i < len) {
        size_t k = utf8_seq(s + i, len - i);

        if (k == 0 || s[i] == '\0') {
            if (o + 1 >= dstsize)
                break;
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + k >= dstsize)
            break;
        memcpy(dst + o, s + i, k);
        o += k;
        i += k;
    }
    dst[o] = '\0';
    return o;
}

void tm_parse_set_raw(struct tm_event *e, const char *line, size_t len)
{
    tm_parse_copy_text(e->raw, sizeof(e->raw), line, len);
}

void tm_parse_set_summary(struct tm_event *e, const char *text, size_t len)
{
    tm_parse_copy_text(e->summary, sizeof(e->summary), text, len);
}

int tm_parse_ip(const char *s, size_t len, char *ip)
{
    char buf[46];
    unsigned char bin[sizeof(struct in6_addr)];

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL)
        return -1;
    if (inet_pton(AF_INET, buf, bin) != 1 && inet_pton(AF_INET6, buf, bin) != 1)
        return -1;
    memcpy(ip, buf, len + 1);
    return 0;
}

int tm_parse_port(const char *s, size_t len)
{
    int v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

int64_t tm_parse_now(const struct tm_parse_ctx *ctx)
{
    return ctx != NULL ? ctx->now_ms : tm_time_now_ms();
}

const char *tm_parse_find_cef(const char *s, size_t len)
{
    for (size_t i = 0; i + 5 <= len; i++) {
        if (s[i] == 'C' && memcmp(s + i, "CEF:", 4) == 0 && s[i + 4] >= '0' && s[i + 4] <= '9' &&
            (i == 0 || s[i - 1] == ' '))
            return s + i;
    }
    return NULL;
}

enum tm_parse_result tm_parse_finish(struct tm_event *out, char *err)
{
    char why[TM_ERR_LEN] = "";

    if (tm_event_validate(out, TM_EVENT_SUBMITTED, why) != TM_EVENT_OK) {
        tm_err(err, "event does not validate: %s", why);
        return TM_PARSE_ERROR;
    }
    return TM_PARSE_EVENT;
}

size_t tm_parse_trim_eol(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    return len;
}
