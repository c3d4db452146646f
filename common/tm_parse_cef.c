/*
 * tm_parse_cef.c - ArcSight Common Event Format:
 *
 *   [syslog header] CEF:Version|Device Vendor|Device Product|Device Version|
 *                   Signature ID|Name|Severity|Extension
 *
 * The seven header fields end at unescaped '|' (in them "\|" is a pipe and "\\" a
 * backslash). The extension is "key=value" pairs separated by spaces, where a value runs
 * until the space before the next "key=" (so values may hold spaces, and '|' needs no
 * escaping), and "\=", "\\", "\n" and "\r" are escapes; words before the first key are
 * ignored, as Logstash's codec does. Only the keys that map to the event are kept:
 * src/sourceAddress, dst/destinationAddress, spt/sourcePort, dpt/destinationPort,
 * c6a2/c6a3 (IPv6 source/destination), rt/deviceReceiptTime and dvchost/deviceHostName.
 *
 * Mappings (docs/parsers.md):
 *   severity  0..10 -> 1..10 (0 -> 1); Unknown -> 5, Low -> 3, Medium -> 5, High -> 8,
 *             Very-High -> 10 (any case); anything else -> 5, so an odd vendor severity
 *             costs precision, not the event.
 *   category  first keyword found in Name and Signature ID, in the order of the keywords
 *             table below (ransomware before malware, so "ransomware trojan" is
 *             ransomware); "other" when none matches.
 *   ts        rt: milliseconds since the epoch (seconds when below 10^11), RFC 3339, or
 *             "MMM dd [yyyy] HH:mm:ss[.SSS] [UTC|GMT|Z|+hh:mm]"; else the syslog
 *             header's time; else ctx->now_ms.
 *   host      dvchost, else the syslog header's host.
 */
#include "tm/tm_parse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm/tm_time.h"
#include "tm_parse_internal.h"

#define CEF_HEADER_FIELDS 7
#define TS_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */

enum { F_VERSION, F_VENDOR, F_PRODUCT, F_DEVVERSION, F_SIGID, F_NAME, F_SEVERITY };

struct span {
    const char *p;
    size_t n;
};

/* Keyword -> category, first match wins; "whole" keywords must be a whole word. */
static const struct {
    const char *kw;
    bool whole;
    const char *category;
} keywords[] = {
    {"ransom", false, "ransomware"},
    {"wiper", false, "wiper"},
    {"ddos", false, "ddos"},
    {"dos", true, "ddos"},
    {"denial of service", false, "ddos"},
    {"flood", false, "ddos"},
    {"phish", false, "phishing"},
    {"malware", false, "malware"},
    {"trojan", false, "malware"},
    {"virus", false, "malware"},
    {"worm", true, "malware"},
    {"backdoor", false, "malware"},
    {"botnet", false, "malware"},
    {"spyware", false, "malware"},
    {"rootkit", false, "malware"},
    {"cobalt strike", false, "malware"},
    {"command and control", false, "malware"},
    {"c2", true, "malware"},
    {"brute", false, "bruteforce"},
    {"login fail", false, "bruteforce"},
    {"logon fail", false, "bruteforce"},
    {"failed login", false, "bruteforce"},
    {"failed logon", false, "bruteforce"},
    {"authentication fail", false, "bruteforce"},
    {"password spray", false, "bruteforce"},
    {"scan", false, "scan"},
    {"recon", false, "scan"},
    {"probe", false, "scan"},
    {"sweep", false, "scan"},
    {"exploit", false, "exploit"},
    {"sql injection", false, "exploit"},
    {"sqli", true, "exploit"},
    {"xss", true, "exploit"},
    {"cross-site scripting", false, "exploit"},
    {"remote code execution", false, "exploit"},
    {"rce", true, "exploit"},
    {"overflow", false, "exploit"},
    {"cve-", false, "exploit"},
    {"deface", false, "defacement"},
    {"leak", false, "data-leak"},
    {"exfil", false, "data-leak"},
    {"data loss", false, "data-leak"},
    {"dlp", true, "data-leak"},
};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* kw in the lowercase text, starting a word (and ending one when whole). */
static bool has_keyword(const char *text, const char *kw, bool whole)
{
    size_t n = strlen(kw);

    for (const char *p = text; (p = strstr(p, kw)) != NULL; p++)
        if ((p == text || !is_alpha(p[-1])) && (!whole || !is_alnum(p[n])))
            return true;
    return false;
}

static const char *category_of(const char *name, const char *sigid)
{
    char text[TM_EVENT_SUMMARY_MAX + 256];

    snprintf(text, sizeof(text), "%s %s", name, sigid);
    for (char *c = text; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    for (size_t i = 0; i < TM_ARRAY_LEN(keywords); i++)
        if (has_keyword(text, keywords[i].kw, keywords[i].whole))
            return keywords[i].category;
    return "other";
}

static int severity_of(const char *s)
{
    static const struct {
        const char *word;
        int severity;
    } words[] = {{"unknown", 5}, {"low", 3},        {"medium", 5},
                 {"high", 8},    {"very-high", 10}, {"very high", 10}};
    int64_t v;

    if (tm_parse_int64(s, 0, 10, &v) == 0)
        return v == 0 ? 1 : (int)v;
    for (size_t i = 0; i < TM_ARRAY_LEN(words); i++)
        if (strcasecmp(s, words[i].word) == 0)
            return words[i].severity;
    return 5;
}

/*
 * Unescapes s into dst (dstsize bytes, NUL-terminated, cut when full). In the header only
 * "\|" and "\\" are escapes; the extension adds "\=", "\n" and "\r". Any other backslash
 * is kept as written. The result may still hold invalid UTF-8 (tm_parse_copy_text next).
 */
static size_t unescape(char *dst, size_t dstsize, const char *s, size_t len, bool ext)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 1 < dstsize; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len) {
            char e = s[i + 1];
            if (e == '|' || e == '\\' || (ext && e == '=')) {
                c = e, i++;
            } else if (ext && (e == 'n' || e == 'r')) {
                c = e == 'n' ? '\n' : '\r', i++;
            }
        }
        dst[o++] = c;
    }
    if (dstsize > 0)
        dst[o] = '\0';
    return o;
}

static bool version_valid(struct span v)
{
    if (v.n == 0 || v.n > 3)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] < '0' || v.p[i] > '9')
            return false;
    return true;
}

/* Unescaped, valid UTF-8, trimmed copy of a header field. */
static void header_field(char *dst, size_t dstsize, struct span f)
{
    char tmp[TM_EVENT_SUMMARY_MAX + 1];
    size_t n = unescape(tmp, sizeof(tmp), f.p, f.n, false), a = 0;

    while (a < n && tmp[a] == ' ')
        a++;
    while (n > a && tmp[n - 1] == ' ')
        n--;
    tm_parse_copy_text(dst, dstsize, tmp + a, n - a);
}

static bool is_key_char(char c)
{
    return is_alnum(c) || c == '_' || c == '.' || c == ',' || c == '[' || c == ']' || c == '-';
}

/* Length of a key at s[i] that is followed by '=', or 0. */
static size_t key_at(const char *s, size_t len, size_t i)
{
    size_t j = i;

    while (j < len && is_key_char(s[j]))
        j++;
    return j > i && j < len && s[j] == '=' ? j - i : 0;
}

struct cef_ext {
    struct span src, dst, spt, dpt, src6, dst6, rt, dvchost;
};

static void keep_key(struct cef_ext *x, struct span key, struct span val)
{
    static const struct {
        const char *name;
        size_t offset;
    } keys[] = {
        {"src", offsetof(struct cef_ext, src)},
        {"sourceAddress", offsetof(struct cef_ext, src)},
        {"dst", offsetof(struct cef_ext, dst)},
        {"destinationAddress", offsetof(struct cef_ext, dst)},
        {"spt", offsetof(struct cef_ext, spt)},
        {"sourcePort", offsetof(struct cef_ext, spt)},
        {"dpt", offsetof(struct cef_ext, dpt)},
        {"destinationPort", offsetof(struct cef_ext, dpt)},
        {"c6a2", offsetof(struct cef_ext, src6)},
        {"c6a3", offsetof(struct cef_ext, dst6)},
        {"rt", offsetof(struct cef_ext, rt)},
        {"deviceReceiptTime", offsetof(struct cef_ext, rt)},
        {"dvchost", offsetof(struct cef_ext, dvchost)},
        {"deviceHostName", offsetof(struct cef_ext, dvchost)},
    };

    for (size_t i = 0; i < TM_ARRAY_LEN(keys); i++)
        if (strlen(keys[i].name) == key.n && memcmp(keys[i].name, key.p, key.n) == 0)
            *(struct span *)((char *)x + keys[i].offset) = val;
}

/* Walks "k1=v1 k2=v with spaces k3=v3", keeping the keys of struct cef_ext. */
static void parse_extension(const char *s, size_t len, struct cef_ext *x)
{
    size_t i = 0;

    while (i < len) {
        size_t k, j, vend = len;
        struct span key, val;

        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= len)
            break;
        if ((k = key_at(s, len, i)) == 0) { /* not "key=": skip the word */
            while (i < len && s[i] != ' ' && s[i] != '\t')
                i++;
            continue;
        }
        key.p = s + i;
        key.n = k;
        i += k + 1;
        for (j = i; j < len; j++) {
            if (s[j] == '\\' && j + 1 < len) {
                j++;
            } else if (s[j] == ' ' || s[j] == '\t') {
                size_t w = j;
                while (w < len && (s[w] == ' ' || s[w] == '\t'))
                    w++;
                if (w < len && key_at(s, len, w) > 0) {
                    vend = j;
                    break;
                }
                j = w - 1;
            }
        }
        while (vend > i && (s[vend - 1] == ' ' || s[vend - 1] == '\t'))
            vend--;
        val.p = s + i;
        val.n = vend - i;
        keep_key(x, key, val);
        i = j;
    }
}

/* An extension value, unescaped, into a small buffer; -1 when absent or too long. */
static int ext_value(struct span v, char *buf, size_t size)
{
    if (v.p == NULL || v.n == 0 || v.n >= size)
        return -1;
    unescape(buf, size, v.p, v.n, true);
    return 0;
}

static bool two_digits(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* A zone after a CEF date: none, UTC, GMT, Z, +hh:mm or -hhmm. 0 with minutes east, or -1. */
static int zone_offset(const char *s, int *minutes)
{
    int h, m;
    size_t n;

    while (*s == ' ')
        s++;
    if (*s == '\0' || strcmp(s, "UTC") == 0 || strcmp(s, "GMT") == 0 || strcmp(s, "Z") == 0) {
        *minutes = 0;
        return 0;
    }
    n = strlen(s);
    if ((s[0] == '+' || s[0] == '-') && (n == 5 || (n == 6 && s[3] == ':')) &&
        two_digits(s + 1, &h) && two_digits(s + n - 2, &m) && h <= 23 && m <= 59) {
        *minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
        return 0;
    }
    return -1;
}

static int parse_rt(const struct tm_parse_ctx *ctx, const char *v, int64_t *out)
{
    size_t n = strlen(v), used;
    int64_t ms;
    int zone;

    if (n > 0 && strspn(v, "0123456789") == n) {
        if (n > 15 || tm_parse_int64(v, 0, TS_MAX, &ms) != 0)
            return -1;
        *out = ms < 100000000000LL ? ms * 1000 : ms;
        return *out <= TS_MAX ? 0 : -1;
    }
    if (tm_time_parse(v, n, &ms) == 0 && ms >= 0) {
        *out = ms;
        return 0;
    }
    if ((used = tm_parse_bsd_time(ctx, v, n, &ms)) > 0 && zone_offset(v + used, &zone) == 0 &&
        ms - (int64_t)zone * 60000 >= 0) {
        *out = ms - (int64_t)zone * 60000;
        return 0;
    }
    return -1;
}

enum tm_parse_result tm_parse_cef_payload(const struct tm_parse_ctx *ctx, const char *cef,
                                          size_t cef_len, const char *host, int64_t ts,
                                          const char *line, size_t len, struct tm_event *out,
                                          char *err)
{
    struct span f[CEF_HEADER_FIELDS];
    struct cef_ext x;
    char vendor[128], product[128], sigid[128], name[TM_EVENT_SUMMARY_MAX + 1], sev[64];
    char buf[TM_EVENT_HOST_MAX + 1];
    char summary[sizeof(name) + sizeof(vendor) + sizeof(product) + sizeof(sigid) + 32];
    size_t i = 4;
    int64_t rt;

    tm_event_init(out);
    memset(&x, 0, sizeof(x));
    if (cef_len < 5 || memcmp(cef, "CEF:", 4) != 0) {
        tm_err(err, "cef: the payload does not start with 'CEF:'");
        return TM_PARSE_ERROR;
    }
    for (int k = 0; k < CEF_HEADER_FIELDS; k++) {
        f[k].p = cef + i;
        while (i < cef_len && cef[i] != '|')
            i += cef[i] == '\\' && i + 1 < cef_len ? 2 : 1;
        if (i >= cef_len) {
            tm_err(err,
                   "cef: the header has %d of the 7 '|' after 'CEF:' (version, vendor, "
                   "product, version, signature id, name, severity)",
                   k);
            return TM_PARSE_ERROR;
        }
        f[k].n = (size_t)(cef + i - f[k].p);
        i++;
    }
    if (!version_valid(f[F_VERSION])) {
        tm_err(err, "cef: the version after 'CEF:' must be a number of 1 to 3 digits");
        return TM_PARSE_ERROR;
    }
    header_field(vendor, sizeof(vendor), f[F_VENDOR]);
    header_field(product, sizeof(product), f[F_PRODUCT]);
    header_field(sigid, sizeof(sigid), f[F_SIGID]);
    header_field(name, sizeof(name), f[F_NAME]);
    header_field(sev, sizeof(sev), f[F_SEVERITY]);
    parse_extension(cef + i, cef_len - i, &x);

    out->severity = severity_of(sev);
    tm_strlcpy(out->category, category_of(name, sigid), sizeof(out->category));
    if (ext_value(x.rt, buf, sizeof(buf)) == 0 && parse_rt(ctx, buf, &rt) == 0)
        out->ts = rt;
    else
        out->ts = ts >= 0 ? ts : tm_parse_now(ctx);
    if (ext_value(x.src, buf, sizeof(buf)) == 0 || ext_value(x.src6, buf, sizeof(buf)) == 0)
        tm_parse_ip(buf, strlen(buf), out->src.ip);
    if (ext_value(x.dst, buf, sizeof(buf)) == 0 || ext_value(x.dst6, buf, sizeof(buf)) == 0)
        tm_parse_ip(buf, strlen(buf), out->dst.ip);
    if (ext_value(x.spt, buf, sizeof(buf)) == 0)
        out->src.port = tm_parse_port(buf, strlen(buf));
    if (ext_value(x.dpt, buf, sizeof(buf)) == 0)
        out->dst.port = tm_parse_port(buf, strlen(buf));
    if (ext_value(x.dvchost, buf, sizeof(buf)) == 0)
        tm_parse_copy_text(out->source.host, sizeof(out->source.host), buf, strlen(buf));
    else if (host != NULL)
        tm_strlcpy(out->source.host, host, sizeof(out->source.host));

    /* "Name (Vendor Product, signature SigID)", leaving out what is empty. */
    snprintf(summary, sizeof(summary), "%s (%s%s%s%s%s%s)", name[0] != '\0' ? name : "(no name)",
             vendor, vendor[0] != '\0' && product[0] != '\0' ? " " : "", product,
             (vendor[0] != '\0' || product[0] != '\0') && sigid[0] != '\0' ? ", " : "",
             sigid[0] != '\0' ? "signature " : "", sigid);
    if (vendor[0] == '\0' && product[0] == '\0' && sigid[0] == '\0')
        summary[strlen(summary) - 3] = '\0'; /* drop " ()" */
    tm_parse_set_summary(out, summary, strlen(summary));
    tm_strlcpy(out->source.kind, "cef", sizeof(out->source.kind));
    tm_parse_set_raw(out, line, len);
    return tm_parse_finish(out, err);
}

/*
 * The "cef" table entry: a bare CEF line, or one after a syslog header (RFC 5424/3164,
 * "Mmm dd hh:mm:ss host", or any words, whose last is taken as the host).
 */
enum tm_parse_result tm_parse_cef_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                     struct tm_event *out, char *err)
{
    struct tm_syslog_msg m;
    const char *cef, *a, *b;
    char host[TM_EVENT_HOST_MAX + 1] = "";
    int64_t ts = -1;

    tm_event_init(out);
    len = tm_parse_trim_eol(line, len);
    cef = tm_parse_find_cef(line, len);
    if (cef == NULL) {
        tm_err(err, "cef: no 'CEF:<version>|' in the line");
        return TM_PARSE_ERROR;
    }
    if (cef > line) {
        if ((line[0] == '<' && tm_syslog_split(ctx, line, len, &m, NULL) == 0) ||
            tm_parse_bsd_header(ctx, line, (size_t)(cef - line), &m, NULL) == 0) {
            tm_strlcpy(host, m.host, sizeof(host));
            ts = m.ts;
        } else {
            /* "date host CEF:...": the word before the payload, if there are two. */
            for (b = cef; b > line && b[-1] == ' ';)
                b--;
            for (a = b; a > line && a[-1] != ' ';)
                a--;
            if (a > line)
                tm_parse_copy_text(host, sizeof(host), a, (size_t)(b - a));
        }
    }
    return tm_parse_cef_payload(ctx, cef, len - (size_t)(cef - line), host, ts, line, len, out,
                                err);
}
