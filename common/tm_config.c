/*
 * tm_config.c - loads INI text into a program's own config struct, driven by the table of
 * struct tm_config_option the program declares once.
 *
 * Flow: tm_config_defaults() writes every option's default, then inih walks the file line
 * by line. Lines reach inih through our own reader (read_line_cb) rather than fgets, so
 * that we know the current line number in the key handler, can refuse a line longer than
 * inih's buffer (inih would silently split it into two lines), a NUL byte, or a section
 * name longer than inih keeps (it silently cuts them), and can quote the offending line
 * in a syntax error. Each key goes to key_cb, which looks the option up, refuses unknown
 * keys and sections (or hands sections the table does not know to the dynamic callback),
 * refuses a key seen before in the same section, and parses the value into the target.
 *
 * Invariants: parsing stops at the first error; the first error's reason is kept in the
 * load context and formatted once, as "FILE:LINE: [section] key = 'value': reason". A
 * field is written only with a value that passed its type and bounds check, so a failed
 * tm_config_set() leaves the target as it was. Quoted keys, values and lines are clipped
 * and control bytes replaced, so a message always fits TM_ERR_LEN with its reason.
 *
 * inih's options are process-wide globals in Debian's build; they are set before every
 * parse, which makes loading safe to repeat but not to run from two threads at once.
 */
#include "tm/tm_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* inih's line buffer: a line and the NUL must fit (the newline need not). */
#define LINE_BUF 4096
#define MAX_LINE_LEN (LINE_BUF - 1)
/* inih copies section names into a 50-byte array, cutting longer ones without a word. */
#define MAX_SECTION_LEN 49
/* How many bytes of a key, value or line an error message quotes. */
#define QUOTE_LEN 48
#define QUOTE_BUF (QUOTE_LEN + 4)
/* Room for the "known: a, b, ..." hints of unknown keys and sections. */
#define HINT_LEN 112

#define KIB ((uint64_t)1024)

/* One (section, key) pair already set by the file, to refuse a second setting. */
struct seen_key {
    char *name; /* section, NUL, key, NUL; NULL for a free slot */
    int line;
};

/* Open-addressing hash set of seen_key; cap is a power of two, at most half full. */
struct seen_set {
    struct seen_key *slots;
    size_t cap, n;
};

struct load_ctx {
    const struct tm_config_spec *spec;
    void *target;
    FILE *file;       /* the source: a file... */
    const char *text; /* ...or what is left of a string */
    int read_errno;   /* errno of a failed read from file */
    int line;         /* lines handed to inih so far, i.e. the current line number */
    char quoted[QUOTE_BUF];
    bool failed; /* msg holds the first error, without file and line */
    char msg[TM_ERR_LEN];
    struct seen_set seen;
};

static const char *option_section(const struct tm_config_option *opt)
{
    return opt->section != NULL ? opt->section : "";
}

/*
 * Copies at most QUOTE_LEN of the len bytes at s into buf (QUOTE_BUF bytes), marking a cut
 * with "..." and replacing control bytes, so that messages stay short and safe to print.
 */
static const char *clip_n(const char *s, size_t len, char *buf)
{
    size_t n = 0;

    for (; n < len && n < QUOTE_LEN; n++)
        buf[n] = iscntrl((unsigned char)s[n]) ? '?' : s[n];
    if (n < len) {
        memcpy(buf + n, "...", 4);
        return buf;
    }
    buf[n] = '\0';
    return buf;
}

static const char *clip(const char *s, char *buf)
{
    return clip_n(s, strlen(s), buf);
}

/* Writes "[section] key = 'value': reason" into msg (TM_ERR_LEN bytes, may be NULL). */
static void describe(char *msg, const char *section, const char *key, const char *value,
                     const char *reason)
{
    char s[QUOTE_BUF], k[QUOTE_BUF], v[QUOTE_BUF];

    if (section[0] != '\0')
        tm_err(msg, "[%s] %s = '%s': %s", clip(section, s), clip(key, k), clip(value, v), reason);
    else
        tm_err(msg, "%s = '%s': %s", clip(key, k), clip(value, v), reason);
}

/* strerror, lowercased to match our messages ("no such file or directory"). */
static const char *errno_text(int e, char *buf, size_t len)
{
    const char *s = strerror_r(e, buf, len);

    if (s != buf)
        tm_strlcpy(buf, s, len);
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

/*
 * Appends item to a ", "-separated list in buf (HINT_LEN bytes). When it does not fit,
 * ends the list with "..." and returns -1 so the caller stops adding.
 */
static int hint_add(char *buf, size_t *used, const char *item)
{
    size_t sep = *used > 0 ? 2 : 0;
    size_t n = strlen(item);

    /* Keep room for ", ..." after whatever fits. */
    if (*used + sep + n + 5 >= HINT_LEN) {
        tm_strlcpy(buf + *used, *used > 0 ? ", ..." : "...", HINT_LEN - *used);
        return -1;
    }
    memcpy(buf + *used, ", ", sep);
    memcpy(buf + *used + sep, item, n + 1);
    *used += sep + n;
    return 0;
}

/* ---- typed parsers ------------------------------------------------------------------- */

int tm_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    if (s == NULL)
        return -1;
    for (size_t i = 0; i < TM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Reads the leading decimal digits of s into *v; -1 without digits or on overflow of max. */
static int parse_digits(const char **s, uint64_t max, uint64_t *v)
{
    const char *p = *s;

    *v = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (*v > (max - d) / 10)
            return -1;
        *v = *v * 10 + d;
    }
    *s = p;
    return 0;
}

int tm_config_parse_size(const char *s, uint64_t *out)
{
    /* Matched without regard to case: 64k, 64K, 64kb, 64KiB are all 65536 bytes. */
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", KIB},
        {"kb", KIB},
        {"kib", KIB},
        {"m", KIB * KIB},
        {"mb", KIB * KIB},
        {"mib", KIB * KIB},
        {"g", KIB * KIB * KIB},
        {"gb", KIB * KIB * KIB},
        {"gib", KIB * KIB * KIB},
        {"t", KIB * KIB * KIB * KIB},
        {"tb", KIB * KIB * KIB * KIB},
        {"tib", KIB * KIB * KIB * KIB},
    };
    uint64_t v;

    if (s == NULL || parse_digits(&s, UINT64_MAX, &v) != 0)
        return -1;
    for (size_t i = 0; i < TM_ARRAY_LEN(units); i++) {
        if (strcasecmp(s, units[i].suffix) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mult)
            return -1;
        *out = v * units[i].mult;
        return 0;
    }
    return -1;
}

int tm_config_parse_duration(const char *s, int64_t *out_ms)
{
    /* Case matters here: "m" is minutes and "M" would suggest months. */
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {
        {"ms", 1}, {"", 1000}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    uint64_t v;

    if (s == NULL || parse_digits(&s, INT64_MAX, &v) != 0)
        return -1;
    for (size_t i = 0; i < TM_ARRAY_LEN(units); i++) {
        if (strcmp(s, units[i].suffix) != 0)
            continue;
        if ((int64_t)v > INT64_MAX / units[i].mult)
            return -1;
        *out_ms = (int64_t)v * units[i].mult;
        return 0;
    }
    return -1;
}

/* A whole decimal int64: tm_parse_int64 without the leading blanks strtoll would allow. */
static int parse_int(const char *s, int64_t *out)
{
    if (isspace((unsigned char)s[0]))
        return -1;
    return tm_parse_int64(s, INT64_MIN, INT64_MAX, out);
}

/* Writes v as the largest unit that divides it: 16MiB, 1536KiB, 100 (bytes). */
static const char *format_size(uint64_t v, char *buf, size_t len)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    uint64_t mult = KIB * KIB * KIB * KIB;

    for (size_t i = 0; i < TM_ARRAY_LEN(names); i++, mult /= KIB)
        if (v != 0 && v % mult == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", v / mult, names[i]);
            return buf;
        }
    snprintf(buf, len, "%" PRIu64, v);
    return buf;
}

/* Writes ms as the largest unit that divides it: 7d, 90s, 250ms. */
static const char *format_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *name;
        int64_t mult;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

    for (size_t i = 0; i < TM_ARRAY_LEN(units); i++)
        if (ms != 0 && ms % units[i].mult == 0) {
            snprintf(buf, len, "%" PRId64 "%s", ms / units[i].mult, units[i].name);
            return buf;
        }
    snprintf(buf, len, "%" PRId64 "ms", ms);
    return buf;
}

/*
 * Checks HOST:PORT or [IPV6]:PORT without resolving anything: a non-empty host of
 * hostname characters (or a bracketed IPv6 address, zone allowed) and a port 0..65535.
 * An empty value is fine: it is what a NULL default leaves, and programs read it as "off".
 */
static int check_addr(const char *s, char *reason)
{
    const char *port;
    char host[64];
    struct in6_addr a6;
    int64_t p;
    size_t hlen;

    if (s[0] == '\0')
        return 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        char *zone;

        if (close == NULL || close[1] != ':')
            return tm_err(reason, "not an address (use HOST:PORT or [IPV6]:PORT)");
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return tm_err(reason, "not an IPv6 address");
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        zone = strchr(host, '%');
        if (zone != NULL) {
            if (zone[1] == '\0')
                return tm_err(reason, "empty IPv6 zone");
            for (const char *z = zone + 1; *z != '\0'; z++)
                if (!isalnum((unsigned char)*z) && *z != '-' && *z != '_' && *z != '.')
                    return tm_err(reason, "bad IPv6 zone");
            *zone = '\0';
        }
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return tm_err(reason, "not an IPv6 address");
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');

        if (colon == NULL)
            return tm_err(reason, "missing port (use HOST:PORT)");
        hlen = (size_t)(colon - s);
        if (hlen == 0)
            return tm_err(reason, "empty host (use 0.0.0.0:PORT for all addresses)");
        if (memchr(s, ':', hlen) != NULL)
            return tm_err(reason, "IPv6 addresses need brackets ([::1]:PORT)");
        if (hlen > 253)
            return tm_err(reason, "host too long");
        for (size_t i = 0; i < hlen; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
                return tm_err(reason, "bad character in host");
        port = colon + 1;
    }
    if (port[0] == '\0')
        return tm_err(reason, "missing port (use HOST:PORT)");
    for (const char *c = port; *c != '\0'; c++)
        if (!isdigit((unsigned char)*c))
            return tm_err(reason, "port is not a number");
    if (strlen(port) > 5 || tm_parse_int64(port, 0, 65535, &p) != 0)
        return tm_err(reason, "port out of range (0-65535)");
    return 0;
}

/* ---- one option ---------------------------------------------------------------------- */

/* Zero/empty value of the option's field: what a NULL default means. */
static void clear_field(const struct tm_config_option *opt, void *target)
{
    char *field = (char *)target + opt->offset;

    switch (opt->type) {
    case TM_CONF_STRING:
    case TM_CONF_ADDR:
        memset(field, 0, opt->size);
        break;
    case TM_CONF_INT:
    case TM_CONF_DURATION:
        memset(field, 0, sizeof(int64_t));
        break;
    case TM_CONF_SIZE:
        memset(field, 0, sizeof(uint64_t));
        break;
    case TM_CONF_BOOL:
        memset(field, 0, sizeof(bool));
        break;
    case TM_CONF_ENUM:
        memset(field, 0, sizeof(int));
        break;
    }
}

/*
 * Bounds of INT, SIZE and DURATION: [min, max], or when both are 0 every int64 for INT and
 * every non-negative value for the others. Returns -1 for a table with min > max.
 */
static int bounds(const struct tm_config_option *opt, int64_t *lo, int64_t *hi)
{
    if (opt->min == 0 && opt->max == 0) {
        *lo = opt->type == TM_CONF_INT ? INT64_MIN : 0;
        *hi = INT64_MAX;
        return 0;
    }
    *lo = opt->type == TM_CONF_INT || opt->min > 0 ? opt->min : 0;
    *hi = opt->max;
    return *lo <= *hi ? 0 : -1;
}

static int enum_reason(const struct tm_config_option *opt, char *reason)
{
    char list[HINT_LEN] = "";
    char q[QUOTE_BUF + 2];
    size_t used = 0;

    for (size_t i = 0; opt->choices[i] != NULL; i++) {
        char c[QUOTE_BUF];
        snprintf(q, sizeof(q), "'%s'", clip(opt->choices[i], c));
        if (hint_add(list, &used, q) != 0)
            break;
    }
    return tm_err(reason, "not one of %s", list);
}

/*
 * Parses value as opt's type and stores it into target; returns 0, or -1 with the reason
 * in reason (TM_ERR_LEN bytes) and the target untouched.
 */
static int set_value(const struct tm_config_option *opt, void *target, const char *value,
                     char *reason)
{
    char *field = (char *)target + opt->offset;
    char a[32], b[32];
    int64_t lo = 0, hi = 0, i64;
    uint64_t u64;
    size_t len = strlen(value);
    bool flag;

    if ((opt->type == TM_CONF_INT || opt->type == TM_CONF_SIZE || opt->type == TM_CONF_DURATION) &&
        bounds(opt, &lo, &hi) != 0)
        return tm_err(reason, "option has min > max");
    switch (opt->type) {
    case TM_CONF_STRING:
    case TM_CONF_ADDR:
        if (opt->type == TM_CONF_ADDR && check_addr(value, reason) != 0)
            return -1;
        if (opt->size == 0)
            return tm_err(reason, "option has no size");
        if (len >= opt->size)
            return tm_err(reason, "too long (max %zu bytes)", opt->size - 1);
        memcpy(field, value, len + 1);
        return 0;
    case TM_CONF_INT:
        if (parse_int(value, &i64) != 0)
            return tm_err(reason, "not an integer");
        if (i64 < lo || i64 > hi)
            return tm_err(reason, "out of range [%" PRId64 ", %" PRId64 "]", lo, hi);
        memcpy(field, &i64, sizeof(i64));
        return 0;
    case TM_CONF_BOOL:
        if (tm_config_parse_bool(value, &flag) != 0)
            return tm_err(reason, "not a boolean (use true/false, yes/no, on/off, 1/0)");
        memcpy(field, &flag, sizeof(flag));
        return 0;
    case TM_CONF_SIZE:
        if (tm_config_parse_size(value, &u64) != 0)
            return tm_err(reason, "not a size (use 16MiB, 512k, ...)");
        /* Both 0 means any size at all, beyond what an int64 bound can say. */
        if (!(opt->min == 0 && opt->max == 0) && (u64 < (uint64_t)lo || u64 > (uint64_t)hi))
            return tm_err(reason, "out of range [%s, %s]", format_size((uint64_t)lo, a, sizeof(a)),
                          format_size((uint64_t)hi, b, sizeof(b)));
        memcpy(field, &u64, sizeof(u64));
        return 0;
    case TM_CONF_DURATION:
        if (tm_config_parse_duration(value, &i64) != 0)
            return tm_err(reason, "not a duration (use 250ms, 10s, 5m, 24h, 7d)");
        if (i64 < lo || i64 > hi)
            return tm_err(reason, "out of range [%s, %s]", format_duration(lo, a, sizeof(a)),
                          format_duration(hi, b, sizeof(b)));
        memcpy(field, &i64, sizeof(i64));
        return 0;
    case TM_CONF_ENUM:
        if (opt->choices == NULL)
            return tm_err(reason, "option has no choices");
        for (int i = 0; opt->choices[i] != NULL; i++)
            if (strcmp(value, opt->choices[i]) == 0) {
                memcpy(field, &i, sizeof(i));
                return 0;
            }
        return enum_reason(opt, reason);
    }
    return tm_err(reason, "option has an unknown type");
}

static const struct tm_config_option *find_option(const struct tm_config_spec *spec,
                                                  const char *section, const char *key)
{
    for (const struct tm_config_option *o = spec->options; o != NULL && o->key != NULL; o++)
        if (strcmp(option_section(o), section) == 0 && strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

static bool section_known(const struct tm_config_spec *spec, const char *section)
{
    for (const struct tm_config_option *o = spec->options; o != NULL && o->key != NULL; o++)
        if (strcmp(option_section(o), section) == 0)
            return true;
    return false;
}

/* "unknown key (known: a, b, ...)": the keys the table lists for section. */
static void unknown_key_reason(const struct tm_config_spec *spec, const char *section, char *reason)
{
    char list[HINT_LEN] = "";
    size_t used = 0;

    for (const struct tm_config_option *o = spec->options; o->key != NULL; o++)
        if (strcmp(option_section(o), section) == 0 && hint_add(list, &used, o->key) != 0)
            break;
    tm_err(reason, "unknown key (known: %s)", list);
}

/* "unknown section (known: a, b, ...)": each section of the table, once. */
static void unknown_section_reason(const struct tm_config_spec *spec, char *reason)
{
    const struct tm_config_option *o, *p;
    char list[HINT_LEN] = "";
    size_t used = 0;

    for (o = spec->options; o != NULL && o->key != NULL; o++) {
        if (option_section(o)[0] == '\0')
            continue;
        for (p = spec->options; p != o; p++)
            if (strcmp(option_section(p), option_section(o)) == 0)
                break;
        if (p == o && hint_add(list, &used, option_section(o)) != 0)
            break;
    }
    if (list[0] == '\0')
        tm_err(reason, "unknown section");
    else
        tm_err(reason, "unknown section (known: %s)", list);
}

/* ---- keys seen so far ---------------------------------------------------------------- */

static uint64_t seen_hash(const char *section, const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (const char *p = section; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h *= 1099511628211ULL; /* the NUL between section and key */
    for (const char *p = key; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static struct seen_key *seen_slot(struct seen_key *slots, size_t cap, const char *section,
                                  const char *key)
{
    size_t i = (size_t)seen_hash(section, key) & (cap - 1);

    for (;; i = (i + 1) & (cap - 1)) {
        struct seen_key *s = &slots[i];
        if (s->name == NULL ||
            (strcmp(s->name, section) == 0 && strcmp(s->name + strlen(s->name) + 1, key) == 0))
            return s;
    }
}

static int seen_grow(struct seen_set *set)
{
    size_t cap = set->cap != 0 ? set->cap * 2 : 64;
    struct seen_key *slots = calloc(cap, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < set->cap; i++) {
        char *name = set->slots[i].name;
        if (name != NULL)
            *seen_slot(slots, cap, name, name + strlen(name) + 1) = set->slots[i];
    }
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
    return 0;
}

/*
 * Records (section, key) as set on line. Returns 0 with *first = 0 for a new pair, 0 with
 * *first = the earlier line for a pair seen before, or -1 when out of memory.
 */
static int seen_add(struct seen_set *set, const char *section, const char *key, int line,
                    int *first)
{
    size_t slen = strlen(section), klen = strlen(key);
    struct seen_key *s;

    if ((set->n + 1) * 2 > set->cap && seen_grow(set) != 0)
        return -1;
    s = seen_slot(set->slots, set->cap, section, key);
    if (s->name != NULL) {
        *first = s->line;
        return 0;
    }
    s->name = malloc(slen + klen + 2);
    if (s->name == NULL)
        return -1;
    memcpy(s->name, section, slen + 1);
    memcpy(s->name + slen + 1, key, klen + 1);
    s->line = line;
    set->n++;
    *first = 0;
    return 0;
}

static void seen_free(struct seen_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i].name);
    free(set->slots);
    set->slots = NULL;
    set->cap = set->n = 0;
}

/* ---- inih glue ----------------------------------------------------------------------- */

/* Handler for each "key = value": 1 to go on, 0 (with ctx->msg) to stop at this line. */
static int key_cb(void *user, const char *section, const char *key, const char *value)
{
    struct load_ctx *ctx = user;
    const struct tm_config_spec *spec = ctx->spec;
    const struct tm_config_option *opt;
    char reason[TM_ERR_LEN] = "";
    int first = 0, ok = 0;

    if (key[0] == '\0') {
        tm_err(reason, "empty key");
        goto out;
    }
    opt = find_option(spec, section, key);
    if (opt == NULL && section_known(spec, section)) {
        unknown_key_reason(spec, section, reason);
        goto out;
    }
    if (opt == NULL && spec->dynamic == NULL) {
        if (section[0] == '\0')
            tm_err(reason, "unknown key (keys belong in a [section])");
        else
            unknown_section_reason(spec, reason);
        goto out;
    }
    if (seen_add(&ctx->seen, section, key, ctx->line, &first) != 0) {
        tm_err(reason, "out of memory");
        goto out;
    }
    if (first != 0) {
        tm_err(reason, "duplicate key (first set on line %d)", first);
        goto out;
    }
    if (opt != NULL) {
        if (set_value(opt, ctx->target, value, reason) != 0)
            goto out;
    } else if (spec->dynamic(spec->dynamic_arg, section, key, value, reason) != 0) {
        reason[TM_ERR_LEN - 1] = '\0';
        if (reason[0] == '\0')
            tm_err(reason, "not accepted");
        goto out;
    }
    ok = 1;
out:
    if (!ok) {
        describe(ctx->msg, section, key, value, reason);
        ctx->failed = true;
    }
    return ok;
}

static int next_char(struct load_ctx *ctx)
{
    int c;

    if (ctx->file == NULL)
        return *ctx->text != '\0' ? (unsigned char)*ctx->text++ : EOF;
    c = getc(ctx->file);
    if (c == EOF && ferror(ctx->file))
        ctx->read_errno = errno != 0 ? errno : EIO;
    return c;
}

/* After a full buffer: true when the line ends right here (end of input or a newline). */
static bool line_ends(struct load_ctx *ctx)
{
    int c;

    if (ctx->file == NULL) {
        if (*ctx->text == '\n') {
            ctx->text++;
            return true;
        }
        return *ctx->text == '\0';
    }
    c = next_char(ctx);
    if (c == EOF || c == '\n')
        return true;
    ungetc(c, ctx->file);
    return false;
}

/* Stops the parse at the current line with "'LINE': reason". */
static char *reader_fail(struct load_ctx *ctx, const char *reason)
{
    tm_err(ctx->msg, "'%s': %s", ctx->quoted, reason);
    ctx->failed = true;
    return NULL;
}

/*
 * inih's fgets: hands over one line, after refusing what inih would get wrong silently
 * (a line longer than its buffer, a NUL byte, a section name it would cut) and keeping a
 * quotable copy for syntax errors. Returns NULL at the end or to stop on an error.
 */
static char *read_line_cb(char *str, int num, void *stream)
{
    struct load_ctx *ctx = stream;
    size_t n = 0, len, max = num > 1 ? (size_t)num - 1 : 0;
    char *p, *end;
    int c = EOF;

    if (ctx->failed)
        return NULL;
    while (n < max && (c = next_char(ctx)) != EOF) {
        str[n++] = (char)c;
        if (c == '\n' || c == '\0')
            break;
    }
    if (n == 0 || ctx->read_errno != 0)
        return NULL;
    str[n] = '\0';
    ctx->line++;
    p = str;
    if (ctx->line == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (isspace((unsigned char)*p))
        p++;
    len = strlen(p);
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    clip_n(p, len, ctx->quoted);
    if (c == '\0')
        return reader_fail(ctx, "NUL byte in line");
    if (n == max && c != '\n' && !line_ends(ctx)) {
        char reason[64];
        snprintf(reason, sizeof(reason), "line too long (max %d bytes)", MAX_LINE_LEN);
        return reader_fail(ctx, reason);
    }
    if (*p == '[' && (end = strchr(p + 1, ']')) != NULL) {
        if (end == p + 1)
            return reader_fail(ctx, "empty section name");
        if (end - p - 1 > MAX_SECTION_LEN) {
            char reason[64];
            snprintf(reason, sizeof(reason), "section name too long (max %d bytes)",
                     MAX_SECTION_LEN);
            return reader_fail(ctx, reason);
        }
    }
    return str;
}

/* Sets every inih switch this module relies on; they are globals shared by the process. */
static void configure_inih(void)
{
    static char start_comments[] = ";#";
    static char inline_comments[] = ";";

    ini_stop_on_first_error = true;
    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_initial_alloc = LINE_BUF; /* the heap buffer's size when it cannot grow */
    ini_max_line = LINE_BUF;
    ini_allow_multiline = false;
    ini_allow_bom = true;
    ini_allow_no_value = false;
    ini_allow_inline_comments = true;
    ini_inline_comment_prefixes = inline_comments;
    ini_start_comment_prefixes = start_comments;
}

/* Runs inih over ctx's source and turns the outcome into 0 or -1 with err. */
static int parse(struct load_ctx *ctx, const char *name, char *err)
{
    char buf[128];
    int line;

    configure_inih();
    line = ini_parse_stream(read_line_cb, ctx, key_cb, ctx);
    if (ctx->read_errno != 0)
        return tm_err(err, "cannot read '%s': %s", name,
                      errno_text(ctx->read_errno, buf, sizeof(buf)));
    if (ctx->failed)
        return tm_err(err, "%s:%d: %s", name, ctx->line, ctx->msg);
    if (line == -2)
        return tm_err(err, "%s: out of memory", name);
    if (line != 0)
        return tm_err(err, "%s:%d: '%s': expected '[section]' or 'key = value'", name, line,
                      ctx->quoted);
    return 0;
}

/* ---- API ----------------------------------------------------------------------------- */

int tm_config_defaults(const struct tm_config_spec *spec, void *target, char *err)
{
    char reason[TM_ERR_LEN], msg[TM_ERR_LEN];

    for (const struct tm_config_option *o = spec->options; o != NULL && o->key != NULL; o++) {
        clear_field(o, target);
        if (o->def == NULL)
            continue;
        if (set_value(o, target, o->def, reason) != 0) {
            describe(msg, option_section(o), o->key, o->def, reason);
            return tm_err(err, "bad default: %s", msg);
        }
    }
    return 0;
}

int tm_config_load(const struct tm_config_spec *spec, void *target, const char *path, char *err)
{
    struct load_ctx ctx = {.spec = spec, .target = target};
    char buf[128];
    int rc = -1;

    if (tm_config_defaults(spec, target, err) != 0)
        goto out;
    if (path == NULL) {
        rc = 0;
        goto out;
    }
    ctx.file = fopen(path, "r");
    if (ctx.file == NULL) {
        tm_err(err, "cannot open '%s': %s", path, errno_text(errno, buf, sizeof(buf)));
        goto out;
    }
    rc = parse(&ctx, path, err);
out:
    if (ctx.file != NULL)
        fclose(ctx.file);
    seen_free(&ctx.seen);
    return rc;
}

int tm_config_load_string(const struct tm_config_spec *spec, void *target, const char *text,
                          const char *name, char *err)
{
    struct load_ctx ctx = {.spec = spec, .target = target, .text = text != NULL ? text : ""};
    int rc = -1;

    if (tm_config_defaults(spec, target, err) != 0)
        goto out;
    rc = parse(&ctx, name != NULL ? name : "<string>", err);
out:
    seen_free(&ctx.seen);
    return rc;
}

int tm_config_apply(const struct tm_config_spec *spec, void *target, const char *section,
                    const char *key, const char *value, char *err)
{
    const struct tm_config_option *opt = find_option(spec, section != NULL ? section : "", key);

    if (opt == NULL) {
        tm_err(err, "unknown option");
        return -1;
    }
    return set_value(opt, target, value, err);
}

int tm_config_set(const struct tm_config_spec *spec, void *target, const char *section,
                  const char *key, const char *value, char *err)
{
    char reason[TM_ERR_LEN];

    if (tm_config_apply(spec, target, section, key, value, reason) != 0) {
        describe(err, section != NULL ? section : "", key, value, reason);
        return -1;
    }
    return 0;
}

int tm_config_kv_append(char **list, int *count, int max, const char *key, const char *value,
                        char *err)
{
    size_t n = strlen(key) + strlen(value) + 2;
    char *kv;

    if (*count >= max) {
        tm_err(err, "more than %d entries", max);
        return -1;
    }
    kv = malloc(n);
    if (kv == NULL) {
        tm_err(err, "out of memory");
        return -1;
    }
    snprintf(kv, n, "%s=%s", key, value);
    list[(*count)++] = kv;
    list[*count] = NULL;
    return 0;
}

int tm_config_read_secret(const char *path, char *out, size_t outlen, char *err)
{
    char line[4096];
    FILE *fp;
    size_t n;
    int rc = -1;

    out[0] = '\0';
    fp = fopen(path, "r");
    if (fp == NULL)
        return tm_err(err, "cannot open '%s': %s", path, strerror(errno));
    if (fgets(line, sizeof(line), fp) == NULL)
        line[0] = '\0';
    fclose(fp);
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (n == 0)
        tm_err(err, "'%s': empty first line", path);
    else if (n >= outlen || n == sizeof(line) - 1)
        tm_err(err, "'%s': longer than %zu bytes", path,
               (outlen < sizeof(line) ? outlen : sizeof(line)) - 1);
    else
        rc = tm_strlcpy(out, line, outlen);
    explicit_bzero(line, sizeof(line));
    return rc;
}
