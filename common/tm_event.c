/*
 * tm_event.c - the canonical event v1: JSON decoding and encoding (yajl), validation.
 *
 * Decoding goes in three steps. Cheap checks on the raw bytes come first (total size,
 * nesting depth), so hostile input is refused before any parsing. yajl's streaming
 * parser then calls back for each key and value, and each value is stored straight into
 * the struct through the field table below after a type, range and length check; no
 * tree is built, which makes this several times faster than building one (this is the
 * collector's hot path). Duplicate keys and anything after the object are refused.
 * tm_event_validate() then applies the value rules (vocabularies, formats, required
 * fields) that C-built events must pass too. Encoding is a small fixed-schema writer.
 *
 * Every rejection names the field and gives a reason class, so the collector can put a
 * useful message on tm.events.rejected and count rejections by class.
 */
#include "tm/tm_event.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <yajl/yajl_parse.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"

#define SEVERITY_MIN 1
#define SEVERITY_MAX 10
#define CONFIDENCE_MAX 100
#define PORT_MAX 65535
#define COUNT_MAX 1000000000000LL
/* 9999-12-31T23:59:59.999Z */
#define TIME_MAX_MS 253402300799999LL

static const char *const reason_names[] = {
    [TM_EVENT_OK] = "ok",
    [TM_EVENT_SYNTAX] = "syntax",
    [TM_EVENT_DUPLICATE_KEY] = "duplicate-key",
    [TM_EVENT_NOT_OBJECT] = "not-object",
    [TM_EVENT_TOO_LARGE] = "too-large",
    [TM_EVENT_TOO_DEEP] = "too-deep",
    [TM_EVENT_BAD_UTF8] = "bad-utf8",
    [TM_EVENT_MISSING] = "missing",
    [TM_EVENT_WRONG_TYPE] = "wrong-type",
    [TM_EVENT_BAD_VALUE] = "bad-value",
    [TM_EVENT_TOO_LONG] = "too-long",
    [TM_EVENT_UNKNOWN_FIELD] = "unknown-field",
};

const char *tm_event_reason_name(enum tm_event_reason r)
{
    if ((unsigned)r >= TM_ARRAY_LEN(reason_names))
        return "unknown";
    return reason_names[r];
}

/* Writes the message and returns the reason, so callers can `return fail(...)`. */
static enum tm_event_reason fail(char *err, enum tm_event_reason r, const char *fmt, ...)
    TM_PRINTF(3, 4);
static enum tm_event_reason fail(char *err, enum tm_event_reason r, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        va_start(ap, fmt);
        vsnprintf(err, TM_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return r;
}

/*
 * Only the first byte of each string is cleared, not the whole 10 KB struct: this runs
 * once per event on the collector's hot path, and every reader stops at the NUL.
 */
void tm_event_init(struct tm_event *e)
{
    e->id[0] = e->operator_id[0] = e->sector[0] = e->region[0] = e->agent[0] = '\0';
    e->source.kind[0] = e->source.host[0] = e->category[0] = '\0';
    e->attack.technique[0] = e->attack.tactic[0] = '\0';
    e->src.ip[0] = e->src.asset[0] = e->dst.ip[0] = e->dst.asset[0] = '\0';
    e->summary[0] = e->raw[0] = '\0';
    e->severity = 0;
    e->ts = -1;
    e->received = -1;
    e->seq = -1;
    e->confidence = -1;
    e->src.port = -1;
    e->dst.port = -1;
    e->count = 1;
}

/* ---- value rules ------------------------------------------------------------------ */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. ASCII,
 * the common case, is skipped 8 bytes at a time up to the terminating NUL.
 */
static bool utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + strlen(str);

    while (*s != 0) {
        unsigned c = *s;
        int n;
        unsigned cp, min;

        if (c < 0x80) {
            uint64_t v;

            s++;
            while (end - s >= 8) {
                memcpy(&v, s, 8);
                if ((v & HIGHS) != 0)
                    break;
                s += 8;
            }
            while (*s != 0 && *s < 0x80)
                s++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

/* Ids, agent and operator names: letters, digits and . _ : - only. */
static bool token_valid(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/*
 * A dotted quad as inet_pton(AF_INET) takes it: four decimal octets of 0..255 without
 * leading zeros. Only a shortcut for the common case: false sends the text on to
 * inet_pton, which stays the judge.
 */
static bool ipv4_plain(const char *s)
{
    for (int octet = 0; octet < 4; octet++) {
        unsigned v = 0;
        int digits = 0;

        if (octet > 0 && *s++ != '.')
            return false;
        while (*s >= '0' && *s <= '9' && digits < 3) {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || v > 255 || (digits > 1 && s[-digits] == '0'))
            return false;
    }
    return *s == '\0';
}

static bool ip_valid(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return ipv4_plain(s) || inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static enum tm_event_reason check_token(const char *name, const char *v, char *err)
{
    if (!token_valid(v))
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field '%s': only letters, digits and '._:-' are allowed, got '%.64s'", name,
                    v);
    return TM_EVENT_OK;
}

static enum tm_event_reason check_text(const char *name, const char *v, char *err)
{
    if (!utf8_valid(v))
        return fail(err, TM_EVENT_BAD_UTF8, "field '%s': not valid UTF-8", name);
    return TM_EVENT_OK;
}

static enum tm_event_reason check_endpoint(const char *name, const struct tm_endpoint *ep,
                                           char *err)
{
    if (ep->ip[0] != '\0' && !ip_valid(ep->ip))
        return fail(err, TM_EVENT_BAD_VALUE, "field '%s.ip': not an IPv4 or IPv6 address: '%s'",
                    name, ep->ip);
    if (ep->port < -1 || ep->port > PORT_MAX)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field '%s.port': must be an integer from 0 to 65535, got %d", name, ep->port);
    if (ep->asset[0] != '\0' && !utf8_valid(ep->asset))
        return fail(err, TM_EVENT_BAD_UTF8, "field '%s.asset': not valid UTF-8", name);
    return TM_EVENT_OK;
}

/*
 * The stamped fields only, in the order and with the messages of tm_event_validate: the
 * collector decodes in SUBMITTED mode (every body field checked), stamps, and then needs
 * only this, not a second pass over the text fields and addresses.
 */
enum tm_event_reason tm_event_validate_stamp(const struct tm_event *e, char *err)
{
    enum tm_event_reason r;

    if (e->id[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'id': required");
    if (e->ts < 0)
        return fail(err, TM_EVENT_MISSING, "field 'ts': required");
    if (e->received < 0)
        return fail(err, TM_EVENT_MISSING, "field 'received': required");
    if (e->operator_id[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'operator': required");
    if (e->sector[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'sector': required");
    if ((r = check_token("id", e->id, err)) != TM_EVENT_OK)
        return r;
    if ((r = check_token("operator", e->operator_id, err)) != TM_EVENT_OK)
        return r;
    if (tm_sector_find(e->sector) == NULL)
        return fail(err, TM_EVENT_BAD_VALUE, "field 'sector': unknown sector '%.32s'", e->sector);
    if (e->region[0] != '\0' && tm_region_find(e->region) == NULL)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field 'region': unknown ISO 3166-2:UA code '%.8s' (expected e.g. UA-32)",
                    e->region);
    return TM_EVENT_OK;
}

enum tm_event_reason tm_event_validate(const struct tm_event *e, enum tm_event_mode mode, char *err)
{
    bool stamped = mode == TM_EVENT_STAMPED;
    enum tm_event_reason r;

    /* Required fields, in schema order. */
    if (stamped && e->id[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'id': required");
    if (e->ts < 0)
        return fail(err, TM_EVENT_MISSING, "field 'ts': required");
    if (stamped && e->received < 0)
        return fail(err, TM_EVENT_MISSING, "field 'received': required");
    if (stamped && e->operator_id[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'operator': required");
    if (stamped && e->sector[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'sector': required");
    if (e->category[0] == '\0')
        return fail(err, TM_EVENT_MISSING, "field 'category': required");
    if (e->severity == 0)
        return fail(err, TM_EVENT_MISSING, "field 'severity': required");

    /* Values. */
    if (e->id[0] != '\0' && (r = check_token("id", e->id, err)) != TM_EVENT_OK)
        return r;
    if (e->operator_id[0] != '\0' &&
        (r = check_token("operator", e->operator_id, err)) != TM_EVENT_OK)
        return r;
    if (e->sector[0] != '\0' && tm_sector_find(e->sector) == NULL)
        return fail(err, TM_EVENT_BAD_VALUE, "field 'sector': unknown sector '%.32s'", e->sector);
    if (e->region[0] != '\0' && tm_region_find(e->region) == NULL)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field 'region': unknown ISO 3166-2:UA code '%.8s' (expected e.g. UA-32)",
                    e->region);
    if (e->agent[0] != '\0' && (r = check_token("agent", e->agent, err)) != TM_EVENT_OK)
        return r;
    if (e->seq < -1)
        return fail(err, TM_EVENT_BAD_VALUE, "field 'seq': must be 0 or more, got %" PRId64,
                    e->seq);
    if (e->source.kind[0] == '\0' && e->source.host[0] != '\0')
        return fail(err, TM_EVENT_MISSING, "field 'source.kind': required with source.host");
    if (e->source.kind[0] != '\0' && tm_source_kind_index(e->source.kind) < 0)
        return fail(err, TM_EVENT_BAD_VALUE, "field 'source.kind': unknown kind '%.16s'",
                    e->source.kind);
    if ((r = check_text("source.host", e->source.host, err)) != TM_EVENT_OK)
        return r;
    if (tm_category_find(e->category) == NULL)
        return fail(err, TM_EVENT_BAD_VALUE, "field 'category': unknown category '%.32s'",
                    e->category);
    if (e->severity < SEVERITY_MIN || e->severity > SEVERITY_MAX)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field 'severity': must be an integer from 1 to 10, got %d", e->severity);
    if (e->confidence < -1 || e->confidence > CONFIDENCE_MAX)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field 'confidence': must be an integer from 0 to 100, got %d", e->confidence);
    if (e->attack.technique[0] != '\0' && !tm_attack_technique_valid(e->attack.technique))
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field 'attack.technique': not an ATT&CK technique id (T1234 or "
                    "T1234.001): '%.16s'",
                    e->attack.technique);
    if (e->attack.tactic[0] != '\0' && tm_tactic_index(e->attack.tactic) < 0)
        return fail(err, TM_EVENT_BAD_VALUE, "field 'attack.tactic': unknown tactic '%.40s'",
                    e->attack.tactic);
    if ((r = check_endpoint("src", &e->src, err)) != TM_EVENT_OK)
        return r;
    if ((r = check_endpoint("dst", &e->dst, err)) != TM_EVENT_OK)
        return r;
    if (e->count < 1 || e->count > COUNT_MAX)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field 'count': must be an integer from 1 to 10^12, got %" PRId64, e->count);
    if ((r = check_text("summary", e->summary, err)) != TM_EVENT_OK)
        return r;
    if ((r = check_text("raw", e->raw, err)) != TM_EVENT_OK)
        return r;
    return TM_EVENT_OK;
}

/* ---- decoding --------------------------------------------------------------------- */

/*
 * Nesting depth of the text, counted outside strings. Stops counting past the limit, so
 * a megabyte of '[' costs one pass and no allocation.
 */
static int nesting_depth(const char *s, size_t len)
{
    int depth = 0, max = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            /* Jump to the closing quote: one not preceded by an odd run of backslashes. */
            for (;;) {
                const char *q = memchr(s + i + 1, '"', len - i - 1);
                size_t bs = 0;
                if (q == NULL)
                    return max; /* unterminated: the parser will say so */
                i = (size_t)(q - s);
                while (s[i - 1 - bs] == '\\')
                    bs++;
                if (bs % 2 == 0)
                    break;
            }
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
            if (max > TM_EVENT_DEPTH_MAX)
                break;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

/*
 * The schema as a table: where each field goes and what JSON type it takes. Objects
 * (source, attack, src, dst) name the table of their members.
 */
enum ftype { F_STR, F_INT, F_TIME, F_OBJ, F_SCHEMA };

struct field {
    const char *name; /* as the message names it ("src.port") */
    const char *key;  /* as it appears in JSON */
    size_t keylen;
    enum ftype type;
    size_t off;  /* in struct tm_event */
    size_t size; /* F_STR: buffer size; F_INT: sizeof the integer */
    int64_t min, max;
    const struct field *members; /* F_OBJ */
};

#define EV(f) offsetof(struct tm_event, f)
#define STRF(name, key, f)                                                                         \
    {                                                                                              \
        name, key, sizeof(key) - 1, F_STR, EV(f), sizeof(((struct tm_event *)0)->f), 0, 0, NULL    \
    }
#define INTF(name, key, f, lo, hi)                                                                 \
    {                                                                                              \
        name, key, sizeof(key) - 1, F_INT, EV(f), sizeof(((struct tm_event *)0)->f), lo, hi, NULL  \
    }
#define TIMEF(key, f)                                                                              \
    {                                                                                              \
        key, key, sizeof(key) - 1, F_TIME, EV(f), 0, 0, 0, NULL                                    \
    }
#define OBJF(key, members)                                                                         \
    {                                                                                              \
        key, key, sizeof(key) - 1, F_OBJ, 0, 0, 0, 0, members                                      \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, NULL, 0, F_STR, 0, 0, 0, 0, NULL                                                     \
    }

/* clang-format off */
static const struct field source_members[] = {
    STRF("source.kind", "kind", source.kind),
    STRF("source.host", "host", source.host),
    END,
};
static const struct field attack_members[] = {
    STRF("attack.technique", "technique", attack.technique),
    STRF("attack.tactic", "tactic", attack.tactic),
    END,
};
static const struct field src_members[] = {
    STRF("src.ip", "ip", src.ip),
    INTF("src.port", "port", src.port, 0, PORT_MAX),
    STRF("src.asset", "asset", src.asset),
    END,
};
static const struct field dst_members[] = {
    STRF("dst.ip", "ip", dst.ip),
    INTF("dst.port", "port", dst.port, 0, PORT_MAX),
    STRF("dst.asset", "asset", dst.asset),
    END,
};
static const struct field top_fields[] = {
    {"schema", "schema", 6, F_SCHEMA, 0, 0, INT64_MIN, INT64_MAX, NULL},
    STRF("id", "id", id),
    TIMEF("ts", ts),
    TIMEF("received", received),
    STRF("operator", "operator", operator_id),
    STRF("sector", "sector", sector),
    STRF("region", "region", region),
    STRF("agent", "agent", agent),
    INTF("seq", "seq", seq, 0, INT64_MAX),
    OBJF("source", source_members),
    STRF("category", "category", category),
    INTF("severity", "severity", severity, SEVERITY_MIN, SEVERITY_MAX),
    INTF("confidence", "confidence", confidence, 0, CONFIDENCE_MAX),
    OBJF("attack", attack_members),
    OBJF("src", src_members),
    OBJF("dst", dst_members),
    INTF("count", "count", count, 1, COUNT_MAX),
    STRF("summary", "summary", summary),
    STRF("raw", "raw", raw),
    END,
};
/* clang-format on */

/* Decoder state carried through yajl's callbacks. */
struct dec {
    struct tm_event *e;
    char *err;
    enum tm_event_reason r;
    int depth;                   /* 1 = inside the event object */
    const struct field *table;   /* fields of the object we are in */
    const struct field *f;       /* the field whose value comes next; NULL = none yet */
    uint32_t seen_top, seen_sub; /* keys seen so far (duplicates) */
    int next_top, next_sub;      /* where on_key starts looking: after the last match */
    bool have_schema;
    bool started;
};

static const char *type_name_of(enum ftype t)
{
    switch (t) {
    case F_INT:
    case F_SCHEMA:
        return "an integer";
    case F_OBJ:
        return "an object";
    default:
        return "a string";
    }
}

/* A value of the wrong JSON type for the current field (or a non-object event). */
static int wrong_type(struct dec *d, const char *got)
{
    if (!d->started) {
        d->r = fail(d->err, TM_EVENT_NOT_OBJECT, "an event must be a JSON object, got %s", got);
        return 0;
    }
    d->r = fail(d->err, TM_EVENT_WRONG_TYPE, "field '%s': must be %s, got %s", d->f->name,
                type_name_of(d->f->type), got);
    return 0;
}

static int on_null(void *ctx)
{
    struct dec *d = ctx;

    if (!d->started)
        return wrong_type(d, "null");
    d->f = NULL; /* null = absent */
    return 1;
}

static int on_bool(void *ctx, int v)
{
    (void)v;
    return wrong_type(ctx, "a boolean");
}

static int on_double(void *ctx, double v)
{
    (void)v;
    return wrong_type(ctx, "a real number");
}

static int on_integer(void *ctx, long long v)
{
    struct dec *d = ctx;
    const struct field *f = d->f;

    if (!d->started || (f->type != F_INT && f->type != F_SCHEMA))
        return wrong_type(d, "an integer");
    if (f->type == F_SCHEMA) {
        if (v != TM_EVENT_SCHEMA) {
            d->r = fail(d->err, TM_EVENT_BAD_VALUE,
                        "field 'schema': unsupported version %lld, expected 1", v);
            return 0;
        }
        d->have_schema = true;
    } else if (v < f->min || v > f->max) {
        d->r = fail(d->err, TM_EVENT_BAD_VALUE,
                    "field '%s': must be an integer from %" PRId64 " to %" PRId64 ", got %lld",
                    f->name, f->min, f->max, v);
        return 0;
    } else if (f->size == sizeof(int)) {
        *(int *)(void *)((char *)d->e + f->off) = (int)v;
    } else {
        *(int64_t *)(void *)((char *)d->e + f->off) = v;
    }
    d->f = NULL;
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct dec *d = ctx;
    const struct field *f = d->f;

    if (!d->started || (f->type != F_STR && f->type != F_TIME))
        return wrong_type(d, "a string");
    if (memchr(s, '\0', len) != NULL) {
        d->r = fail(d->err, TM_EVENT_BAD_UTF8, "field '%s': NUL character in a string", f->name);
        return 0;
    }
    if (f->type == F_TIME) {
        int64_t *out = (int64_t *)(void *)((char *)d->e + f->off);
        if (len >= 64 || tm_time_parse((const char *)s, len, out) != 0 || *out < 0 ||
            *out > TIME_MAX_MS) {
            d->r = fail(d->err, TM_EVENT_BAD_VALUE,
                        "field '%s': not an RFC 3339 time from 1970 to 9999: '%.*s'", f->name,
                        (int)(len < 40 ? len : 40), (const char *)s);
            return 0;
        }
    } else {
        if (len >= f->size) {
            d->r = fail(d->err, TM_EVENT_TOO_LONG, "field '%s': %zu bytes, the limit is %zu",
                        f->name, len, f->size - 1);
            return 0;
        }
        memcpy((char *)d->e + f->off, s, len);
        ((char *)d->e + f->off)[len] = '\0';
    }
    d->f = NULL;
    return 1;
}

static int on_start_map(void *ctx)
{
    struct dec *d = ctx;

    if (!d->started) {
        d->started = true;
        d->depth = 1;
        d->table = top_fields;
        return 1;
    }
    if (d->f->type != F_OBJ)
        return wrong_type(d, "an object");
    d->depth++;
    d->table = d->f->members;
    d->seen_sub = 0;
    d->next_sub = 0;
    d->f = NULL;
    return 1;
}

static int on_end_map(void *ctx)
{
    struct dec *d = ctx;

    d->depth--;
    d->table = top_fields;
    d->f = NULL;
    return 1;
}

static int on_start_array(void *ctx)
{
    return wrong_type(ctx, "an array");
}

static bool key_is(const struct field *f, const unsigned char *key, size_t len)
{
    /* Length and first byte settle almost every mismatch. */
    if (f->keylen != len || f->key[0] != (char)key[0])
        return false;
    for (size_t i = 1; i < len; i++)
        if (f->key[i] != (char)key[i])
            return false;
    return true;
}

/*
 * Senders mostly write keys in schema order, so the search starts after the field
 * matched last and wraps around: usually the first or second entry is the one.
 */
static int on_key(void *ctx, const unsigned char *key, size_t len)
{
    struct dec *d = ctx;
    bool top = d->depth == 1;
    uint32_t *seen = top ? &d->seen_top : &d->seen_sub;
    int *next = top ? &d->next_top : &d->next_sub;

    for (int pass = 0; pass < 2; pass++) {
        int from = pass == 0 ? *next : 0;
        for (int i = from; d->table[i].key != NULL && (pass == 0 || i < *next); i++) {
            const struct field *f = &d->table[i];
            if (!key_is(f, key, len))
                continue;
            if (*seen & (1u << i)) {
                d->r = fail(d->err, TM_EVENT_DUPLICATE_KEY, "duplicate key '%s'", f->name);
                return 0;
            }
            *seen |= 1u << i;
            *next = i + 1;
            d->f = f;
            return 1;
        }
    }
    if (d->depth == 1)
        d->r = fail(d->err, TM_EVENT_UNKNOWN_FIELD, "field '%.*s': not defined by schema v1",
                    (int)(len < 40 ? len : 40), (const char *)key);
    else
        d->r = fail(d->err, TM_EVENT_UNKNOWN_FIELD, "field '%.*s.%.*s': not defined by schema v1",
                    (int)(strchr(d->table[0].name, '.') - d->table[0].name), d->table[0].name,
                    (int)(len < 40 ? len : 40), (const char *)key);
    return 0;
}

static const yajl_callbacks dec_callbacks = {
    on_null,      on_bool, on_integer, on_double,      NULL, on_string,
    on_start_map, on_key,  on_end_map, on_start_array, NULL,
};

/* Names yajl's own errors (syntax, UTF-8, trailing bytes) by our reason classes. */
static enum tm_event_reason parser_error(yajl_handle h, const char *json, size_t len, char *err)
{
    unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)json, len);
    size_t at = yajl_get_bytes_consumed(h);
    enum tm_event_reason r;

    if (strstr((const char *)msg, "UTF8") != NULL)
        r = fail(err, TM_EVENT_BAD_UTF8, "not valid UTF-8 near byte %zu", at);
    else if (strstr((const char *)msg, "trailing garbage") != NULL)
        r = fail(err, TM_EVENT_SYNTAX, "trailing data after the event at byte %zu", at);
    else
        r = fail(err, TM_EVENT_SYNTAX, "invalid JSON near byte %zu: %s", at, (const char *)msg);
    yajl_free_error(h, msg);
    return r;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/*
 * yajl allocates a handle, a lexer and two small buffers per parse. On the collector's hot
 * path that is several malloc/free pairs per event, so the parser gets this thread's
 * arena instead: a bump allocator reset before each decode. Each block carries its size
 * so realloc can copy; a block that does not fit (a huge escaped string) comes from
 * malloc and is freed normally.
 */
#define ARENA_BYTES 16384
#define ARENA_ALIGN 16

struct arena {
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char mem[ARENA_BYTES];
};

static _Thread_local struct arena parse_arena;

static bool in_arena(const struct arena *a, const void *p)
{
    return (const unsigned char *)p >= a->mem && (const unsigned char *)p < a->mem + ARENA_BYTES;
}

static void *arena_malloc_cb(void *ctx, size_t sz)
{
    struct arena *a = ctx;
    size_t need = (sz + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN + ARENA_ALIGN;
    unsigned char *p;

    if (sz > ARENA_BYTES || need > ARENA_BYTES - a->used)
        return malloc(sz);
    p = a->mem + a->used;
    memcpy(p, &sz, sizeof(sz)); /* the block's size, in its own aligned header */
    a->used += need;
    return p + ARENA_ALIGN;
}

static void arena_free_cb(void *ctx, void *p)
{
    if (!in_arena(ctx, p))
        free(p);
}

static void *arena_realloc_cb(void *ctx, void *p, size_t sz)
{
    size_t old;
    void *q;

    if (p == NULL)
        return arena_malloc_cb(ctx, sz);
    if (!in_arena(ctx, p))
        return realloc(p, sz);
    memcpy(&old, (unsigned char *)p - ARENA_ALIGN, sizeof(old));
    q = arena_malloc_cb(ctx, sz);
    if (q != NULL)
        memcpy(q, p, old < sz ? old : sz);
    return q;
}

enum tm_event_reason tm_event_decode(struct tm_event *e, const char *json, size_t len,
                                     enum tm_event_mode mode, char *err)
{
    struct dec d = {.e = e, .err = err, .r = TM_EVENT_OK};
    yajl_alloc_funcs arena_funcs = {arena_malloc_cb, arena_realloc_cb, arena_free_cb, &parse_arena};
    yajl_handle h = NULL;
    yajl_status st;
    enum tm_event_reason r;

    tm_event_init(e);
    if (len > TM_EVENT_JSON_MAX)
        return fail(err, TM_EVENT_TOO_LARGE, "event of %zu bytes, the limit is %d", len,
                    TM_EVENT_JSON_MAX);
    /*
     * Nesting is not scanned for up front: the callbacks refuse every array and every
     * object but the event and its four member objects, so yajl never goes deeper than 3
     * levels, and an event that decodes is never too deep. A failure is named TOO_DEEP
     * afterwards when the text is nested too deep, as if that had been checked first.
     */
    if (blank(json, len))
        return fail(err, TM_EVENT_SYNTAX, "invalid JSON: empty input");

    parse_arena.used = 0;
    h = yajl_alloc(&dec_callbacks, &arena_funcs, &d);
    if (h == NULL)
        return fail(err, TM_EVENT_SYNTAX, "out of memory");
    st = yajl_parse(h, (const unsigned char *)json, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st == yajl_status_client_canceled) {
        r = d.r;
        goto out;
    }
    if (st != yajl_status_ok) {
        r = parser_error(h, json, len, err);
        goto out;
    }
    if (mode == TM_EVENT_STAMPED && !d.have_schema) {
        r = fail(err, TM_EVENT_MISSING, "field 'schema': required");
        goto out;
    }
    r = tm_event_validate(e, mode, err);
out:
    yajl_free(h);
    if (r != TM_EVENT_OK && nesting_depth(json, len) > TM_EVENT_DEPTH_MAX)
        r = fail(err, TM_EVENT_TOO_DEEP, "nested deeper than %d levels", TM_EVENT_DEPTH_MAX);
    return r;
}

/* ---- encoding --------------------------------------------------------------------- */

/*
 * The schema is fixed, so events are written by a small JSON writer rather than a
 * generic generator: on the collector's hot path yajl's generator cost about as much as
 * parsing (bench_codec: 1.4 us per event against 0.4 us for this writer). Output is
 * compact JSON in schema order. Every string is checked as strict UTF-8 first and escaped
 * per RFC 8259 (quote, backslash and control characters; everything else is copied), so
 * no event with invalid text is ever written out.
 *
 * The writer counts what it would write even past the end of the buffer, so one pass
 * with no buffer gives the exact size.
 */
struct jw {
    char *buf;
    size_t cap; /* bytes of buf; writing stops there, counting does not */
    size_t len; /* bytes the output needs so far */
    bool ok;    /* false after an invalid string or time */
    bool first; /* the next member is the first of its object */
};

static void jw_put(struct jw *w, const char *s, size_t n)
{
    if (w->len + n <= w->cap)
        memcpy(w->buf + w->len, s, n);
    w->len += n;
}

/*
 * Bytes a JSON string must escape (control characters, quote, backslash) are 1; bytes of
 * non-ASCII text are 2 (copied as they are, but the string then gets a UTF-8 check);
 * everything else is 0.
 */
static const unsigned char byte_class[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x80 ... 0xff] = 2,
};

/*
 * Whether any of the 8 bytes in v is a control character, a quote, a backslash or
 * non-ASCII: the classic "has a byte less than n" and "has a zero byte" tricks, so the
 * common case (a summary with nothing to escape) is checked a word at a time.
 */
static bool word_special(uint64_t v)
{
    uint64_t ctl = (v - ONES * 0x20) & ~v;
    uint64_t quote = (v ^ (ONES * '"')) - ONES;
    uint64_t bslash = (v ^ (ONES * '\\')) - ONES;

    return ((ctl | (quote & ~(v ^ (ONES * '"'))) | (bslash & ~(v ^ (ONES * '\\'))) | v) & HIGHS) !=
           0;
}

/* Appends the escape sequence of a byte of class 1. */
static void jw_escape(struct jw *w, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 0, '0', '0', 0, 0};
    size_t n = 2;

    switch (c) {
    case '"':
        esc[1] = '"';
        break;
    case '\\':
        esc[1] = '\\';
        break;
    case '\n':
        esc[1] = 'n';
        break;
    case '\r':
        esc[1] = 'r';
        break;
    case '\t':
        esc[1] = 't';
        break;
    case '\b':
        esc[1] = 'b';
        break;
    case '\f':
        esc[1] = 'f';
        break;
    default:
        esc[1] = 'u';
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 0xF];
        n = 6;
    }
    jw_put(w, esc, n);
}

/*
 * Writes s[0..len) as a JSON string. Plain runs are copied whole; the scan for what
 * breaks a run goes a word at a time and looks at single bytes only inside a word that
 * has something special in it.
 */
static void jw_string(struct jw *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0, end;
    bool high = false; /* non-ASCII text seen: check it is UTF-8 */
    uint64_t v;

    jw_put(w, "\"", 1);
    while (i < len) {
        if (i + 8 <= len) {
            memcpy(&v, p + i, 8);
            if (!word_special(v)) {
                i += 8;
                continue;
            }
            end = i + 8;
        } else {
            end = len;
        }
        for (; i < end; i++) {
            unsigned char c = byte_class[p[i]];
            if (c == 0)
                continue;
            if (c == 2) {
                high = true;
                continue;
            }
            jw_put(w, s + run, i - run);
            run = i + 1;
            jw_escape(w, p[i]);
        }
    }
    jw_put(w, s + run, len - run);
    jw_put(w, "\"", 1);
    if (high && !utf8_valid(s))
        w->ok = false;
}

/*
 * Keys are string literals written out whole: KEY("id") is the text ,"id": with its
 * length, so a member's key is one copy (without the comma when it comes first) and
 * nothing is measured or assembled per event.
 */
#define KEY(k) ",\"" k "\":", sizeof(",\"" k "\":") - 1

/* Writes the key text made by KEY, with the comma the previous member needs. */
static void jw_key(struct jw *w, const char *key, size_t keylen)
{
    if (w->first)
        jw_put(w, key + 1, keylen - 1);
    else
        jw_put(w, key, keylen);
    w->first = false;
}

static void jw_open(struct jw *w, const char *key, size_t keylen)
{
    if (key != NULL)
        jw_key(w, key, keylen);
    jw_put(w, "{", 1);
    w->first = true;
}

static void jw_close(struct jw *w)
{
    jw_put(w, "}", 1);
    w->first = false;
}

/* A string member; absent (empty) strings are left out. */
static void jw_str(struct jw *w, const char *key, size_t keylen, const char *v)
{
    if (v[0] == '\0')
        return;
    jw_key(w, key, keylen);
    jw_string(w, v, strlen(v));
}

static void jw_int(struct jw *w, const char *key, size_t keylen, int64_t v)
{
    char digits[24];
    char *p = digits + sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    jw_key(w, key, keylen);
    jw_put(w, p, (size_t)(digits + sizeof(digits) - p));
}

static void jw_time(struct jw *w, const char *key, size_t keylen, int64_t ms)
{
    char buf[TM_TIME_LEN + 1];

    if (ms < 0)
        return;
    if (tm_time_format(ms, buf + 1, sizeof(buf) - 1) != 0) {
        w->ok = false;
        return;
    }
    jw_key(w, key, keylen);
    buf[0] = '"';
    buf[TM_TIME_LEN] = '"'; /* over the NUL: "2026-11-23T07:22:05.123Z" in one copy */
    jw_put(w, buf, TM_TIME_LEN + 1);
}

static bool endpoint_present(const struct tm_endpoint *ep)
{
    return ep->ip[0] != '\0' || ep->port >= 0 || ep->asset[0] != '\0';
}

static void jw_endpoint(struct jw *w, const char *key, size_t keylen, const struct tm_endpoint *ep)
{
    if (!endpoint_present(ep))
        return;
    jw_open(w, key, keylen);
    jw_str(w, KEY("ip"), ep->ip);
    if (ep->port >= 0)
        jw_int(w, KEY("port"), ep->port);
    jw_str(w, KEY("asset"), ep->asset);
    jw_close(w);
}

/* Writes the event; w->ok turns false if a string is not valid UTF-8 or a time is out of
 * range. */
static void jw_event(struct jw *w, const struct tm_event *e)
{
    jw_open(w, NULL, 0);
    jw_int(w, KEY("schema"), TM_EVENT_SCHEMA);
    jw_str(w, KEY("id"), e->id);
    jw_time(w, KEY("ts"), e->ts);
    jw_time(w, KEY("received"), e->received);
    jw_str(w, KEY("operator"), e->operator_id);
    jw_str(w, KEY("sector"), e->sector);
    jw_str(w, KEY("region"), e->region);
    jw_str(w, KEY("agent"), e->agent);
    if (e->seq >= 0)
        jw_int(w, KEY("seq"), e->seq);
    if (e->source.kind[0] != '\0') {
        jw_open(w, KEY("source"));
        jw_str(w, KEY("kind"), e->source.kind);
        jw_str(w, KEY("host"), e->source.host);
        jw_close(w);
    }
    jw_str(w, KEY("category"), e->category);
    jw_int(w, KEY("severity"), e->severity);
    if (e->confidence >= 0)
        jw_int(w, KEY("confidence"), e->confidence);
    if (e->attack.technique[0] != '\0' || e->attack.tactic[0] != '\0') {
        jw_open(w, KEY("attack"));
        jw_str(w, KEY("technique"), e->attack.technique);
        jw_str(w, KEY("tactic"), e->attack.tactic);
        jw_close(w);
    }
    jw_endpoint(w, KEY("src"), &e->src);
    jw_endpoint(w, KEY("dst"), &e->dst);
    jw_int(w, KEY("count"), e->count);
    jw_str(w, KEY("summary"), e->summary);
    jw_str(w, KEY("raw"), e->raw);
    jw_close(w);
}

char *tm_event_encode(const struct tm_event *e, size_t *len)
{
    struct jw w = {.ok = true};
    char *s;

    jw_event(&w, e); /* counting pass */
    if (!w.ok)
        return NULL;
    s = malloc(w.len + 1);
    if (s == NULL)
        return NULL;
    w = (struct jw){.buf = s, .cap = w.len, .ok = true};
    jw_event(&w, e);
    s[w.len] = '\0';
    if (len != NULL)
        *len = w.len;
    return s;
}

int tm_event_encode_buf(const struct tm_event *e, char *buf, size_t buflen)
{
    struct jw w = {.buf = buf, .cap = buflen, .ok = true};

    jw_event(&w, e);
    if (!w.ok || w.len > buflen || w.len > INT32_MAX)
        return -1;
    if (w.len < buflen)
        buf[w.len] = '\0';
    return (int)w.len;
}

static bool endpoint_equal(const struct tm_endpoint *a, const struct tm_endpoint *b)
{
    return strcmp(a->ip, b->ip) == 0 && a->port == b->port && strcmp(a->asset, b->asset) == 0;
}

bool tm_event_equal(const struct tm_event *a, const struct tm_event *b)
{
    return strcmp(a->id, b->id) == 0 && a->ts == b->ts && a->received == b->received &&
           strcmp(a->operator_id, b->operator_id) == 0 && strcmp(a->sector, b->sector) == 0 &&
           strcmp(a->region, b->region) == 0 && strcmp(a->agent, b->agent) == 0 &&
           a->seq == b->seq && strcmp(a->source.kind, b->source.kind) == 0 &&
           strcmp(a->source.host, b->source.host) == 0 && strcmp(a->category, b->category) == 0 &&
           a->severity == b->severity && a->confidence == b->confidence &&
           strcmp(a->attack.technique, b->attack.technique) == 0 &&
           strcmp(a->attack.tactic, b->attack.tactic) == 0 && endpoint_equal(&a->src, &b->src) &&
           endpoint_equal(&a->dst, &b->dst) && a->count == b->count &&
           strcmp(a->summary, b->summary) == 0 && strcmp(a->raw, b->raw) == 0;
}
