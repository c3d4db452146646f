/*
 * ingest.c - one payload in, at most one Kafka message out. Every listener ends here.
 *
 * A payload is either a canonical v1 event (validated as it is), a Beats event (its
 * `message` is run through the libtm parser its module names: Suricata EVE, sshd, CEF,
 * syslog), or a syslog line. The result is stamped with the connection's identity
 * (operator, sector, region: never taken from the body), a receive time and an id when
 * it has none, and produced to tm.events.v1 keyed by sector. What fails goes to
 * tm.events.rejected with the original bytes and the reason in headers; what parses but
 * is not a security event (an EVE flow record, an sshd banner) is counted as skipped.
 *
 * Agent heartbeats (a Lumberjack data frame whose object has "type":"tm.heartbeat",
 * docs/protocols.md) are not events: they are stamped the same way and produced to
 * tm.heartbeats keyed by agent id, and acknowledged like events.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "tm/tm_log.h"
#include "tm/tm_parse.h"
#include "tm/tm_time.h"

/* Bytes kept of a rejected payload (the topic's messages stay small). */
#define REJECTED_MAX (256 * 1024)

static const char *dotted_string(json_t *root, const char *a, const char *b)
{
    json_t *o = json_object_get(root, a);
    json_t *v = b == NULL ? o : json_object_get(o, b);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool contains(const char *s, const char *needle)
{
    return s != NULL && strstr(s, needle) != NULL;
}

/*
 * Picks the parser for a Beats event from what Filebeat says about it (event.module,
 * fileset.module, event.dataset, input.type, log.file.path), then from the message's
 * shape when none says.
 */
static const struct tm_parser *beats_parser(json_t *root, const char *msg)
{
    const char *module = dotted_string(root, "event", "module");
    const char *dataset = dotted_string(root, "event", "dataset");
    json_t *file_path =
        json_object_get(json_object_get(json_object_get(root, "log"), "file"), "path");
    const char *path = json_is_string(file_path) ? json_string_value(file_path) : NULL;

    if (module == NULL)
        module = dotted_string(root, "fileset", "module");
    if (contains(module, "suricata") || contains(dataset, "suricata") || contains(path, "eve.json"))
        return tm_parser_find("eve");
    if (contains(dataset, "system.auth") || contains(path, "auth.log") || contains(path, "/secure"))
        return tm_parser_find("auth");
    if (contains(module, "cef") || contains(dataset, "cef"))
        return tm_parser_find("cef");
    if (contains(dotted_string(root, "input", "type"), "syslog"))
        return tm_parser_find("syslog");
    /* No hint: judge by the message itself. */
    if (msg[0] == '{')
        return tm_parser_find(strstr(msg, "\"event_type\"") != NULL ? "eve" : "json");
    if (strstr(msg, "CEF:") != NULL)
        return tm_parser_find("cef");
    if (strstr(msg, "sshd[") != NULL)
        return tm_parser_find("auth");
    return tm_parser_find("syslog");
}

static enum tm_parse_result parse_beats(const char *data, size_t len, int64_t now,
                                        struct tm_event *e, char *err)
{
    struct tm_parse_ctx ctx = {.now_ms = now};
    const struct tm_parser *p;
    json_error_t je;
    json_t *root;
    json_t *msg;
    const char *host;
    enum tm_parse_result r = TM_PARSE_ERROR;

    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        tm_err(err, "invalid JSON at byte %d: %s", je.position, je.text);
        return TM_PARSE_ERROR;
    }
    msg = json_object_get(root, "message");
    if (!json_is_string(msg)) {
        tm_err(err, "beats event without a 'message' string");
        goto out;
    }
    p = beats_parser(root, json_string_value(msg));
    r = p->parse(&ctx, json_string_value(msg), json_string_length(msg), e, err);
    if (r == TM_PARSE_EVENT && e->source.host[0] == '\0' &&
        (host = dotted_string(root, "host", "name")) != NULL &&
        strlen(host) < sizeof(e->source.host) && e->source.kind[0] != '\0')
        tm_strlcpy(e->source.host, host, sizeof(e->source.host));
out:
    json_decref(root);
    return r;
}

/*
 * A heartbeat: checked for the fields the aggregator needs, stamped with the connection's
 * identity and receive time (whatever the body says about them is replaced) and produced
 * to tm.heartbeats. Returns ACCEPTED, REJECTED (msg says why) or FAILED.
 */
static enum ingest_result ingest_heartbeat(struct worker *w, const struct identity *id, json_t *hb,
                                           struct listener_metrics *lm, struct kafka_ticket *t,
                                           char *msg, char *err)
{
    const char *agent = dotted_string(hb, "agent", NULL);
    char received[TM_TIME_LEN];
    char *json = NULL;
    size_t n = 0;
    enum ingest_result r = INGEST_FAILED;

    if (agent == NULL || agent[0] == '\0' || strlen(agent) > TM_EVENT_ID_MAX) {
        tm_err(msg, "heartbeat without a valid 'agent' string");
        return INGEST_REJECTED;
    }
    if (!json_is_integer(json_object_get(hb, "next_seq"))) {
        tm_err(msg, "heartbeat without an integer 'next_seq'");
        return INGEST_REJECTED;
    }
    tm_time_format(worker_now_ms(w), received, sizeof(received));
    if (json_object_set_new(hb, "operator", json_string(id->operator_id)) != 0 ||
        json_object_set_new(hb, "sector", json_string(id->sector)) != 0 ||
        json_object_set_new(hb, "region", json_string(id->region)) != 0 ||
        json_object_set_new(hb, "received", json_string(received)) != 0 ||
        (json = json_dumps(hb, JSON_COMPACT)) == NULL) {
        tm_err(err, "cannot encode heartbeat");
        goto out;
    }
    n = strlen(json);
    {
        struct kafka_header h[1] = {{"operator", id->operator_id, strlen(id->operator_id)}};
        if (kafka_sink_produce(w->sink, KAFKA_TOPIC_HEARTBEATS, agent, strlen(agent), json, n, h, 1,
                               worker_now_ms(w), t, err) != 0)
            goto out;
    }
    tm_counter_inc(tm_metrics_counter(lm->registry, "tm_collector_heartbeats_total",
                                      "Agent heartbeats produced to tm.heartbeats.", "listener",
                                      lm->name, NULL));
    r = INGEST_ACCEPTED;
out:
    free(json);
    return r;
}

/*
 * Decodes a payload that mentions "tm.heartbeat". SKIPPED means it is not one (its
 * "type" says otherwise, say an event whose summary quotes the word): ingest it as usual.
 */
static enum ingest_result try_heartbeat(struct worker *w, const struct identity *id,
                                        const char *data, size_t len, struct listener_metrics *lm,
                                        struct kafka_ticket *t, char *msg, char *err)
{
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    enum ingest_result r;

    if (root == NULL)
        return INGEST_SKIPPED; /* the event decoder names the JSON error */
    if (!json_is_object(root) || !json_is_string(json_object_get(root, "type")) ||
        strcmp(dotted_string(root, "type", NULL), "tm.heartbeat") != 0) {
        json_decref(root);
        return INGEST_SKIPPED;
    }
    r = ingest_heartbeat(w, id, root, lm, t, msg, err);
    json_decref(root);
    return r;
}

static void count_rejected(struct listener_metrics *lm, const char *reason)
{
    tm_counter_inc(tm_metrics_counter(lm->registry, "tm_collector_events_rejected_total",
                                      "Payloads that failed validation, by listener and reason.",
                                      "listener", lm->name, "reason", reason, NULL));
}

static enum ingest_result reject(struct worker *w, const struct identity *id, const char *data,
                                 size_t len, const char *reason_class, const char *message,
                                 struct listener_metrics *lm, struct kafka_ticket *t, char *err)
{
    struct kafka_header h[4] = {
        {"reason", reason_class, strlen(reason_class)},
        {"error", message, strlen(message)},
        {"operator", id->operator_id, strlen(id->operator_id)},
        {"listener", lm->name, strlen(lm->name)},
    };

    count_rejected(lm, reason_class);
    if (kafka_sink_produce(w->sink, KAFKA_TOPIC_REJECTED, id->operator_id, strlen(id->operator_id),
                           data, len > REJECTED_MAX ? REJECTED_MAX : len, h, TM_ARRAY_LEN(h),
                           worker_now_ms(w), t, err) != 0)
        return INGEST_FAILED;
    return INGEST_REJECTED;
}

enum ingest_result ingest_payload(struct worker *w, const struct identity *id,
                                  enum ingest_format fmt, const char *data, size_t len,
                                  struct listener_metrics *lm, struct kafka_ticket *t, char *reason)
{
    struct tm_event e;
    char msg[TM_ERR_LEN] = "";
    char err[TM_ERR_LEN];
    char json[TM_EVENT_JSON_MAX];
    const char *reason_class = "parse";
    enum tm_parse_result pr;
    enum tm_event_reason er;
    bool body_checked = false; /* tm_event_decode passed: only the stamp needs checking */
    int64_t now;
    int n;

    tm_counter_inc(lm->events_in);
    tm_counter_add(lm->bytes, len);
    now = worker_now_ms(w);
    if (fmt == INGEST_SYSLOG) {
        struct tm_parse_ctx ctx = {.now_ms = now};
        pr = tm_parser_find("syslog")->parse(&ctx, data, len, &e, msg);
    } else {
        /*
         * Canonical events are the bulk: decode first. Beats events and heartbeats fail
         * at their first unknown key, which is cheap, and only then are looked at again.
         */
        er = tm_event_decode(&e, data, len, TM_EVENT_SUBMITTED, msg);
        pr = er == TM_EVENT_OK ? TM_PARSE_EVENT : TM_PARSE_ERROR;
        body_checked = er == TM_EVENT_OK;
        reason_class = tm_event_reason_name(er);
        if (er == TM_EVENT_UNKNOWN_FIELD && memmem(data, len, "\"tm.heartbeat\"", 14) != NULL) {
            enum ingest_result hr = try_heartbeat(w, id, data, len, lm, t, msg, err);
            if (hr == INGEST_FAILED) {
                tm_err(reason, "%s", err);
                return INGEST_FAILED;
            }
            if (hr == INGEST_ACCEPTED)
                return INGEST_ACCEPTED;
            if (hr == INGEST_REJECTED) {
                reason_class = "heartbeat";
                goto rejected;
            }
        }
        if (er == TM_EVENT_UNKNOWN_FIELD && memmem(data, len, "\"@timestamp\"", 12) != NULL) {
            pr = parse_beats(data, len, now, &e, msg);
            reason_class = "parse";
        }
    }
    if (pr == TM_PARSE_SKIP) {
        tm_counter_inc(lm->skipped);
        return INGEST_SKIPPED;
    }
    if (pr == TM_PARSE_ERROR)
        goto rejected;

    /* Stamp: identity from the connection, never from the body. */
    tm_strlcpy(e.operator_id, id->operator_id, sizeof(e.operator_id));
    tm_strlcpy(e.sector, id->sector, sizeof(e.sector));
    tm_strlcpy(e.region, id->region, sizeof(e.region));
    e.received = now;
    if (e.id[0] == '\0')
        tm_id_new(e.id);
    er = body_checked ? tm_event_validate_stamp(&e, msg)
                      : tm_event_validate(&e, TM_EVENT_STAMPED, msg);
    if (er != TM_EVENT_OK) {
        reason_class = tm_event_reason_name(er);
        goto rejected;
    }
    n = tm_event_encode_buf(&e, json, sizeof(json));
    if (n < 0) {
        tm_err(reason, "cannot encode event");
        return INGEST_FAILED;
    }
    {
        struct kafka_header h[3] = {
            {"operator", e.operator_id, strlen(e.operator_id)},
            {"schema", "1", 1},
            {"agent", e.agent, strlen(e.agent)},
        };
        if (kafka_sink_produce(w->sink, KAFKA_TOPIC_EVENTS, e.sector, strlen(e.sector), json,
                               (size_t)n, h, e.agent[0] != '\0' ? 3 : 2, now, t, err) != 0) {
            tm_err(reason, "%s", err);
            return INGEST_FAILED;
        }
    }
    tm_counter_inc(lm->accepted);
    return INGEST_ACCEPTED;

rejected:
    if (reason != NULL)
        tm_strlcpy(reason, msg, TM_ERR_LEN);
    if (reject(w, id, data, len, reason_class, msg, lm, t, err) == INGEST_FAILED) {
        tm_err(reason, "%s", err);
        return INGEST_FAILED;
    }
    return INGEST_REJECTED;
}
