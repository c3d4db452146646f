/*
 * tm_event.h - the canonical event, schema v1 (docs/schema.md): the struct every program
 * passes around, its JSON codec (yajl, streaming) and its validation.
 *
 * The struct holds everything inline (no pointers), so an event can live on the stack,
 * be copied with memcpy and be reused without freeing. Absent optional fields are empty
 * strings, or -1 for seq, confidence and ports; count defaults to 1.
 *
 * Decoding checks shape and every value and, on failure, says which field and why:
 *     field 'severity': must be an integer from 1 to 10, got 11
 * together with a reason class (enum tm_event_reason) for metrics and for the reason
 * header of tm.events.rejected.
 */
#ifndef TM_EVENT_H
#define TM_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"
#include "tm/tm_id.h"
#include "tm/tm_time.h"

#define TM_EVENT_SCHEMA 1

#define TM_EVENT_ID_MAX 64     /* bytes of id and agent */
#define TM_EVENT_NAME_MAX 64   /* operator */
#define TM_EVENT_HOST_MAX 255  /* source.host */
#define TM_EVENT_ASSET_MAX 128 /* src/dst asset */
#define TM_EVENT_SUMMARY_MAX 1024
#define TM_EVENT_RAW_MAX 8192
/* Longest JSON text accepted for one event (escaping can double raw and summary). */
#define TM_EVENT_JSON_MAX 65536
/* Deepest nesting of objects/arrays accepted before parsing (the schema needs 2). */
#define TM_EVENT_DEPTH_MAX 4

struct tm_endpoint {
    char ip[46]; /* IPv4 or IPv6 text, as given after validation; "" = absent */
    int port;    /* 0..65535, -1 = absent */
    char asset[TM_EVENT_ASSET_MAX + 1];
};

struct tm_event {
    char id[TM_EVENT_ID_MAX + 1];
    int64_t ts;       /* event time, ms since epoch; -1 = absent */
    int64_t received; /* collector receive time, ms; -1 = absent */
    char operator_id[TM_EVENT_NAME_MAX + 1];
    char sector[32];
    char region[8];
    char agent[TM_EVENT_ID_MAX + 1];
    int64_t seq; /* -1 = absent */
    struct {
        char kind[16]; /* "" = no source object */
        char host[TM_EVENT_HOST_MAX + 1];
    } source;
    char category[32];
    int severity;   /* 1..10 */
    int confidence; /* 0..100, -1 = absent */
    struct {
        char technique[16];
        char tactic[40];
    } attack;
    struct tm_endpoint src, dst;
    int64_t count; /* >= 1 */
    char summary[TM_EVENT_SUMMARY_MAX + 1];
    char raw[TM_EVENT_RAW_MAX + 1];
};

/* Why an event was rejected; tm_event_reason_name() gives the stable header value. */
enum tm_event_reason {
    TM_EVENT_OK = 0,
    TM_EVENT_SYNTAX,        /* not JSON, or trailing bytes after the object */
    TM_EVENT_DUPLICATE_KEY, /* a key given twice in one object */
    TM_EVENT_NOT_OBJECT,    /* JSON, but not an object */
    TM_EVENT_TOO_LARGE,     /* the text is over TM_EVENT_JSON_MAX */
    TM_EVENT_TOO_DEEP,      /* nesting over TM_EVENT_DEPTH_MAX */
    TM_EVENT_BAD_UTF8,      /* invalid UTF-8, or a NUL inside a string */
    TM_EVENT_MISSING,       /* a required field is absent or null */
    TM_EVENT_WRONG_TYPE,    /* a field has the wrong JSON type */
    TM_EVENT_BAD_VALUE,     /* out of range, unknown vocabulary id, malformed */
    TM_EVENT_TOO_LONG,      /* a string over its field's limit */
    TM_EVENT_UNKNOWN_FIELD  /* a field schema v1 does not define */
};

/* Which fields decoding requires. */
enum tm_event_mode {
    /*
     * As stored in Kafka: schema, id, ts, received, operator, sector and category and
     * severity are required.
     */
    TM_EVENT_STAMPED = 0,
    /*
     * As a sender submits it, before the collector stamps identity and receive time:
     * only ts, category and severity are required; id, received, operator, sector and
     * region may be absent (the collector fills them).
     */
    TM_EVENT_SUBMITTED = 1,
};

/* Stable lowercase name of a reason ("ok", "syntax", "missing", ...). */
const char *tm_event_reason_name(enum tm_event_reason r);

/* Sets every field to "absent": empty strings, -1 for times, seq, confidence and ports,
 * count 1, severity 0 (invalid until set). */
void tm_event_init(struct tm_event *e);

/*
 * Decodes one event from len bytes of JSON text (need not be NUL-terminated) into *e.
 * Returns TM_EVENT_OK, or the reason with a message naming the field in err (TM_ERR_LEN).
 * *e is left in an unspecified state on failure.
 */
enum tm_event_reason tm_event_decode(struct tm_event *e, const char *json, size_t len,
                                     enum tm_event_mode mode, char *err);

/*
 * Checks an event built in C (by a parser or a detector) against the same rules
 * decoding applies. Returns TM_EVENT_OK or the reason, with a message in err.
 */
enum tm_event_reason tm_event_validate(const struct tm_event *e, enum tm_event_mode mode,
                                       char *err);

/*
 * The part of TM_EVENT_STAMPED validation that SUBMITTED leaves out: the fields a
 * collector stamps (id, received, operator, sector, region), with the same rules and
 * messages as tm_event_validate. For an event that passed tm_event_decode or
 * tm_event_validate in SUBMITTED mode and then had only those fields set, OK here means
 * exactly what tm_event_validate(e, TM_EVENT_STAMPED) would say, for a fraction of the
 * cost (the collector's hot path). Returns TM_EVENT_OK or the reason, with err.
 */
enum tm_event_reason tm_event_validate_stamp(const struct tm_event *e, char *err);

/*
 * Encodes e as compact JSON with keys in schema order, absent fields omitted. Returns a
 * NUL-terminated string the caller frees with free() (its length in *len when len is not
 * NULL), or NULL on allocation failure.
 */
char *tm_event_encode(const struct tm_event *e, size_t *len);

/*
 * Encodes into buf of buflen bytes. Returns the length written (without a NUL, which is
 * added when it fits), or -1 when buf is too small or memory runs out.
 */
int tm_event_encode_buf(const struct tm_event *e, char *buf, size_t buflen);

/* True when the two events have the same value in every field. */
bool tm_event_equal(const struct tm_event *a, const struct tm_event *b);

#endif
