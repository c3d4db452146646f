/*
 * tm_event.c - the canonical event v1: JSON decoding (jansson), validation and encoding.
 *
 * Decoding goes in three steps. Cheap checks on the raw bytes come first (total size,
 * nesting depth), so hostile input is refused before jansson builds anything. jansson
 * then parses with duplicate keys rejected and nothing allowed after the object. Finally
 * each key of the object is looked up in the field table below, which stores it into the
 * struct after a type and length check; tm_event_validate() then applies the value rules
 * (vocabularies, ranges, formats, required fields) that C-built events must pass too.
 *
 * Every rejection names the field and gives a reason class, so the collector can put a
 * useful message on tm.events.rejected and count rejections by class.
 */
#include "tm/tm_event.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
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

void tm_event_init(struct tm_event *e)
{
    memset(e, 0, sizeof(*e));
    e->ts = -1;
    e->received = -1;
    e->seq = -1;
    e->confidence = -1;
    e->src.port = -1;
    e->dst.port = -1;
    e->count = 1;
}

/* ---- value rules ------------------------------------------------------------------ */

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    while (*s != 0) {
        unsigned c = *s;
        int n;
        unsigned cp, min;

        if (c < 0x80) {
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

static bool ip_valid(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
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
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
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

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

static enum tm_event_reason get_string(const char *name, const json_t *v, char *out, size_t size,
                                       char *err)
{
    size_t n;

    if (!json_is_string(v))
        return fail(err, TM_EVENT_WRONG_TYPE, "field '%s': must be a string, got %s", name,
                    json_type_name(v));
    n = json_string_length(v);
    if (n >= size)
        return fail(err, TM_EVENT_TOO_LONG, "field '%s': %zu bytes, the limit is %zu", name, n,
                    size - 1);
    memcpy(out, json_string_value(v), n + 1);
    return TM_EVENT_OK;
}

static enum tm_event_reason get_int(const char *name, const json_t *v, int64_t min, int64_t max,
                                    int64_t *out, char *err)
{
    json_int_t i;

    if (!json_is_integer(v))
        return fail(err, TM_EVENT_WRONG_TYPE, "field '%s': must be an integer, got %s", name,
                    json_type_name(v));
    i = json_integer_value(v);
    if (i < min || i > max)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field '%s': must be an integer from %" PRId64 " to %" PRId64
                    ", got %" JSON_INTEGER_FORMAT,
                    name, min, max, i);
    *out = i;
    return TM_EVENT_OK;
}

static enum tm_event_reason get_time(const char *name, const json_t *v, int64_t *out, char *err)
{
    enum tm_event_reason r;
    char buf[64];

    if ((r = get_string(name, v, buf, sizeof(buf), err)) != TM_EVENT_OK)
        return r == TM_EVENT_TOO_LONG
                   ? fail(err, TM_EVENT_BAD_VALUE, "field '%s': not an RFC 3339 time", name)
                   : r;
    if (tm_time_parse(buf, strlen(buf), out) != 0 || *out < 0 ||
        tm_time_format(*out, buf, sizeof(buf)) != 0)
        return fail(err, TM_EVENT_BAD_VALUE,
                    "field '%s': not an RFC 3339 time from 1970 to 9999: '%.40s'", name,
                    json_string_value(v));
    return TM_EVENT_OK;
}

/*
 * Decodes the members of a nested object (source, attack, src, dst): each member is
 * handled by the sub-field decoder; unknown members are rejected.
 */
typedef enum tm_event_reason (*member_fn)(struct tm_event *e, const char *parent, const char *key,
                                          const json_t *v, char *err);

static enum tm_event_reason get_object(struct tm_event *e, const char *name, const json_t *v,
                                       member_fn fn, char *err)
{
    const char *key;
    json_t *member;
    enum tm_event_reason r;

    if (!json_is_object(v))
        return fail(err, TM_EVENT_WRONG_TYPE, "field '%s': must be an object, got %s", name,
                    json_type_name(v));
    json_object_foreach((json_t *)v, key, member)
    {
        if (json_is_null(member))
            continue;
        if ((r = fn(e, name, key, member, err)) != TM_EVENT_OK)
            return r;
    }
    return TM_EVENT_OK;
}

static enum tm_event_reason unknown_member(const char *parent, const char *key, char *err)
{
    return fail(err, TM_EVENT_UNKNOWN_FIELD, "field '%s.%.40s': not defined by schema v1", parent,
                key);
}

static enum tm_event_reason source_member(struct tm_event *e, const char *parent, const char *key,
                                          const json_t *v, char *err)
{
    if (strcmp(key, "kind") == 0)
        return get_string("source.kind", v, e->source.kind, sizeof(e->source.kind), err);
    if (strcmp(key, "host") == 0)
        return get_string("source.host", v, e->source.host, sizeof(e->source.host), err);
    return unknown_member(parent, key, err);
}

static enum tm_event_reason attack_member(struct tm_event *e, const char *parent, const char *key,
                                          const json_t *v, char *err)
{
    if (strcmp(key, "technique") == 0)
        return get_string("attack.technique", v, e->attack.technique, sizeof(e->attack.technique),
                          err);
    if (strcmp(key, "tactic") == 0)
        return get_string("attack.tactic", v, e->attack.tactic, sizeof(e->attack.tactic), err);
    return unknown_member(parent, key, err);
}

static enum tm_event_reason endpoint_member(struct tm_event *e, const char *parent, const char *key,
                                            const json_t *v, char *err)
{
    struct tm_endpoint *ep = parent[0] == 's' ? &e->src : &e->dst;
    char name[16];
    int64_t port;
    enum tm_event_reason r;

    snprintf(name, sizeof(name), "%s.%s", parent, key);
    if (strcmp(key, "ip") == 0)
        return get_string(name, v, ep->ip, sizeof(ep->ip), err) == TM_EVENT_OK
                   ? TM_EVENT_OK
                   : fail(err, json_is_string(v) ? TM_EVENT_BAD_VALUE : TM_EVENT_WRONG_TYPE,
                          "field '%s': must be an IPv4 or IPv6 address", name);
    if (strcmp(key, "port") == 0) {
        if ((r = get_int(name, v, 0, PORT_MAX, &port, err)) != TM_EVENT_OK)
            return r;
        ep->port = (int)port;
        return TM_EVENT_OK;
    }
    if (strcmp(key, "asset") == 0)
        return get_string(name, v, ep->asset, sizeof(ep->asset), err);
    return unknown_member(parent, key, err);
}

/* Top-level fields: how each is stored. `schema` is handled by the caller. */
static enum tm_event_reason top_member(struct tm_event *e, const char *key, const json_t *v,
                                       char *err)
{
    int64_t i;
    enum tm_event_reason r;

    switch (key[0]) {
    case 'a':
        if (strcmp(key, "agent") == 0)
            return get_string("agent", v, e->agent, sizeof(e->agent), err);
        if (strcmp(key, "attack") == 0)
            return get_object(e, "attack", v, attack_member, err);
        break;
    case 'c':
        if (strcmp(key, "category") == 0)
            return get_string("category", v, e->category, sizeof(e->category), err);
        if (strcmp(key, "confidence") == 0) {
            if ((r = get_int("confidence", v, 0, CONFIDENCE_MAX, &i, err)) == TM_EVENT_OK)
                e->confidence = (int)i;
            return r;
        }
        if (strcmp(key, "count") == 0)
            return get_int("count", v, 1, COUNT_MAX, &e->count, err);
        break;
    case 'd':
        if (strcmp(key, "dst") == 0)
            return get_object(e, "dst", v, endpoint_member, err);
        break;
    case 'i':
        if (strcmp(key, "id") == 0)
            return get_string("id", v, e->id, sizeof(e->id), err);
        break;
    case 'o':
        if (strcmp(key, "operator") == 0)
            return get_string("operator", v, e->operator_id, sizeof(e->operator_id), err);
        break;
    case 'r':
        if (strcmp(key, "received") == 0)
            return get_time("received", v, &e->received, err);
        if (strcmp(key, "region") == 0)
            return get_string("region", v, e->region, sizeof(e->region), err) == TM_EVENT_OK
                       ? TM_EVENT_OK
                       : fail(err, json_is_string(v) ? TM_EVENT_BAD_VALUE : TM_EVENT_WRONG_TYPE,
                              "field 'region': must be an ISO 3166-2:UA code such as UA-32");
        if (strcmp(key, "raw") == 0)
            return get_string("raw", v, e->raw, sizeof(e->raw), err);
        break;
    case 's':
        if (strcmp(key, "sector") == 0)
            return get_string("sector", v, e->sector, sizeof(e->sector), err) == TM_EVENT_OK
                       ? TM_EVENT_OK
                       : fail(err, json_is_string(v) ? TM_EVENT_BAD_VALUE : TM_EVENT_WRONG_TYPE,
                              "field 'sector': must be one of the sector ids of schema v1");
        if (strcmp(key, "seq") == 0)
            return get_int("seq", v, 0, INT64_MAX, &e->seq, err);
        if (strcmp(key, "source") == 0)
            return get_object(e, "source", v, source_member, err);
        if (strcmp(key, "severity") == 0) {
            if ((r = get_int("severity", v, SEVERITY_MIN, SEVERITY_MAX, &i, err)) == TM_EVENT_OK)
                e->severity = (int)i;
            return r;
        }
        if (strcmp(key, "src") == 0)
            return get_object(e, "src", v, endpoint_member, err);
        if (strcmp(key, "summary") == 0)
            return get_string("summary", v, e->summary, sizeof(e->summary), err);
        break;
    case 't':
        if (strcmp(key, "ts") == 0)
            return get_time("ts", v, &e->ts, err);
        break;
    }
    return fail(err, TM_EVENT_UNKNOWN_FIELD, "field '%.40s': not defined by schema v1", key);
}

static enum tm_event_reason jansson_reason(const json_error_t *je, char *err)
{
    switch (json_error_code(je)) {
    case json_error_invalid_utf8:
        return fail(err, TM_EVENT_BAD_UTF8, "not valid UTF-8 at byte %d", je->position);
    case json_error_null_character:
        return fail(err, TM_EVENT_BAD_UTF8, "NUL character in a string at byte %d", je->position);
    case json_error_duplicate_key:
        return fail(err, TM_EVENT_DUPLICATE_KEY, "duplicate key at byte %d: %s", je->position,
                    je->text);
    case json_error_end_of_input_expected:
        return fail(err, TM_EVENT_SYNTAX, "trailing data after the event at byte %d", je->position);
    default:
        return fail(err, TM_EVENT_SYNTAX, "invalid JSON at byte %d: %s", je->position, je->text);
    }
}

enum tm_event_reason tm_event_decode(struct tm_event *e, const char *json, size_t len,
                                     enum tm_event_mode mode, char *err)
{
    json_error_t je;
    json_t *root = NULL;
    json_t *v;
    const char *key;
    bool have_schema = false;
    int64_t schema;
    enum tm_event_reason r;

    tm_event_init(e);
    if (len > TM_EVENT_JSON_MAX)
        return fail(err, TM_EVENT_TOO_LARGE, "event of %zu bytes, the limit is %d", len,
                    TM_EVENT_JSON_MAX);
    if (nesting_depth(json, len) > TM_EVENT_DEPTH_MAX)
        return fail(err, TM_EVENT_TOO_DEEP, "nested deeper than %d levels", TM_EVENT_DEPTH_MAX);

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (root == NULL)
        return jansson_reason(&je, err);
    if (!json_is_object(root)) {
        r = fail(err, TM_EVENT_NOT_OBJECT, "an event must be a JSON object, got %s",
                 json_type_name(root));
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (json_is_null(v))
            continue; /* null = absent; required fields are caught below */
        if (strcmp(key, "schema") == 0) {
            if ((r = get_int("schema", v, INT64_MIN, INT64_MAX, &schema, err)) != TM_EVENT_OK)
                goto out;
            if (schema != TM_EVENT_SCHEMA) {
                r = fail(err, TM_EVENT_BAD_VALUE,
                         "field 'schema': unsupported version %" PRId64 ", expected 1", schema);
                goto out;
            }
            have_schema = true;
            continue;
        }
        if ((r = top_member(e, key, v, err)) != TM_EVENT_OK)
            goto out;
    }
    if (mode == TM_EVENT_STAMPED && !have_schema) {
        r = fail(err, TM_EVENT_MISSING, "field 'schema': required");
        goto out;
    }
    r = tm_event_validate(e, mode, err);
out:
    json_decref(root);
    return r;
}

/* ---- encoding --------------------------------------------------------------------- */

static int set_str(json_t *obj, const char *key, const char *v)
{
    if (v[0] == '\0')
        return 0;
    return json_object_set_new_nocheck(obj, key, json_stringn(v, strlen(v)));
}

static int set_int(json_t *obj, const char *key, int64_t v)
{
    return json_object_set_new_nocheck(obj, key, json_integer(v));
}

static int set_time(json_t *obj, const char *key, int64_t ms)
{
    char buf[TM_TIME_LEN];

    if (ms < 0 || tm_time_format(ms, buf, sizeof(buf)) != 0)
        return ms < 0 ? 0 : -1;
    return set_str(obj, key, buf);
}

static json_t *endpoint_json(const struct tm_endpoint *ep)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    if (set_str(o, "ip", ep->ip) != 0 || (ep->port >= 0 && set_int(o, "port", ep->port) != 0) ||
        set_str(o, "asset", ep->asset) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool endpoint_present(const struct tm_endpoint *ep)
{
    return ep->ip[0] != '\0' || ep->port >= 0 || ep->asset[0] != '\0';
}

static int set_object(json_t *obj, const char *key, json_t *child)
{
    if (child == NULL)
        return -1;
    return json_object_set_new_nocheck(obj, key, child);
}

/* Builds the JSON object in schema order (dumped with JSON_PRESERVE_ORDER). */
static json_t *event_json(const struct tm_event *e)
{
    json_t *o = json_object();
    json_t *child;
    int rc = 0;

    if (o == NULL)
        return NULL;
    rc |= set_int(o, "schema", TM_EVENT_SCHEMA);
    rc |= set_str(o, "id", e->id);
    rc |= set_time(o, "ts", e->ts);
    rc |= set_time(o, "received", e->received);
    rc |= set_str(o, "operator", e->operator_id);
    rc |= set_str(o, "sector", e->sector);
    rc |= set_str(o, "region", e->region);
    rc |= set_str(o, "agent", e->agent);
    if (e->seq >= 0)
        rc |= set_int(o, "seq", e->seq);
    if (e->source.kind[0] != '\0') {
        child = json_object();
        if (child != NULL && (set_str(child, "kind", e->source.kind) != 0 ||
                              set_str(child, "host", e->source.host) != 0)) {
            json_decref(child);
            child = NULL;
        }
        rc |= set_object(o, "source", child);
    }
    rc |= set_str(o, "category", e->category);
    rc |= set_int(o, "severity", e->severity);
    if (e->confidence >= 0)
        rc |= set_int(o, "confidence", e->confidence);
    if (e->attack.technique[0] != '\0' || e->attack.tactic[0] != '\0') {
        child = json_object();
        if (child != NULL && (set_str(child, "technique", e->attack.technique) != 0 ||
                              set_str(child, "tactic", e->attack.tactic) != 0)) {
            json_decref(child);
            child = NULL;
        }
        rc |= set_object(o, "attack", child);
    }
    if (endpoint_present(&e->src))
        rc |= set_object(o, "src", endpoint_json(&e->src));
    if (endpoint_present(&e->dst))
        rc |= set_object(o, "dst", endpoint_json(&e->dst));
    rc |= set_int(o, "count", e->count);
    rc |= set_str(o, "summary", e->summary);
    rc |= set_str(o, "raw", e->raw);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

char *tm_event_encode(const struct tm_event *e, size_t *len)
{
    json_t *o = event_json(e);
    char *s;

    if (o == NULL)
        return NULL;
    s = json_dumps(o, DUMP_FLAGS);
    json_decref(o);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
}

int tm_event_encode_buf(const struct tm_event *e, char *buf, size_t buflen)
{
    json_t *o = event_json(e);
    size_t n;

    if (o == NULL)
        return -1;
    n = json_dumpb(o, buf, buflen, DUMP_FLAGS);
    json_decref(o);
    if (n == 0 || n > buflen || n > INT32_MAX)
        return -1;
    if (n < buflen)
        buf[n] = '\0';
    return (int)n;
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
