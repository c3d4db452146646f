/*
 * control.c - tm-devkafka's admin routes. Besides the /healthz and /metrics that tm_admin
 * serves for every daemon, tests inject broker failures here:
 *
 *     POST /brokers/down?id=N    N = a broker id (1..brokers), or -1 or "all"
 *     POST /brokers/up?id=N
 *
 * Each answers 200 with a JSON object naming the brokers that are up afterwards, 400 for
 * a missing or unknown id, and 405 for any method but POST. /healthz turns 503 while
 * every broker is down, and gauges on /metrics follow each change. Requests arrive on the
 * event loop's thread, the only thread that touches the cluster's up/down mirror.
 */
#include "devkafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "tm/tm_log.h"

struct tm_devkafka_control {
    struct tm_devkafka *dk;
    struct tm_gauge *brokers_up;
    struct tm_counter *downs;
    struct tm_counter *ups;
};

/* Sends body (a JSON object, consumed) with status code; falls back to a bare 500. */
static void reply_json(struct evhttp_request *req, int code, const char *reason, json_t *body)
{
    struct evbuffer *buf = evhttp_request_get_output_buffer(req);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    if (text == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(buf, text, strlen(text));
    evbuffer_add(buf, "\n", 1);
    free(text);
    evhttp_send_reply(req, code, reason, NULL);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    reply_json(req, code, reason, json_pack("{s:s}", "error", msg));
}

/* Reads ?id= as a broker id, -1 meaning all ("all" is accepted too). */
static int parse_id(struct evhttp_request *req, int brokers, int *id, char *err)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    const char *v;
    int64_t n;
    int rc = -1;

    TAILQ_INIT(&params);
    if (query == NULL || evhttp_parse_query_str(query, &params) < 0) {
        tm_err(err, "missing query 'id' (a broker id 1..%d, or -1 or all)", brokers);
        goto out;
    }
    v = evhttp_find_header(&params, "id");
    if (v == NULL) {
        tm_err(err, "missing query 'id' (a broker id 1..%d, or -1 or all)", brokers);
        goto out;
    }
    if (strcmp(v, "all") == 0) {
        *id = -1;
    } else if (tm_parse_int64(v, -1, brokers, &n) == 0 && n != 0) {
        *id = (int)n;
    } else {
        tm_err(err, "broker id '%.32s' is not 1..%d, -1 or all", v, brokers);
        goto out;
    }
    rc = 0;
out:
    evhttp_clear_headers(&params);
    return rc;
}

static void brokers_change(struct evhttp_request *req, struct tm_devkafka_control *c, bool up)
{
    struct tm_devkafka *dk = c->dk;
    char err[TM_ERR_LEN];
    json_t *ids = NULL;
    int id;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_error(req, 405, "Method Not Allowed", "use POST");
        return;
    }
    if (parse_id(req, tm_devkafka_broker_count(dk), &id, err) < 0) {
        reply_error(req, HTTP_BADREQUEST, "Bad Request", err);
        return;
    }
    if (tm_devkafka_set_broker(dk, id, up, err) < 0) {
        tm_log_error("admin: %s", err);
        reply_error(req, HTTP_INTERNAL, "Internal Server Error", err);
        goto gauges;
    }
    tm_counter_inc(up ? c->ups : c->downs);
    if (id == -1)
        tm_log_info("admin: every broker set %s", up ? "up" : "down");
    else
        tm_log_info("admin: broker %d set %s", id, up ? "up" : "down");

    ids = json_array();
    for (int b = 1; b <= tm_devkafka_broker_count(dk); b++)
        if (tm_devkafka_broker_is_up(dk, b))
            json_array_append_new(ids, json_integer(b));
    reply_json(req, HTTP_OK, "OK",
               json_pack("{s:s, s:i, s:i, s:o}", "action", up ? "up" : "down", "id", id, "brokers",
                         tm_devkafka_broker_count(dk), "up", ids));
gauges:
    tm_gauge_set(c->brokers_up, tm_devkafka_brokers_up(dk));
}

static void brokers_down_cb(struct evhttp_request *req, void *arg)
{
    brokers_change(req, arg, false);
}

static void brokers_up_cb(struct evhttp_request *req, void *arg)
{
    brokers_change(req, arg, true);
}

static int health_cb(void *arg, char *reason, size_t reasonlen)
{
    struct tm_devkafka_control *c = arg;

    if (tm_devkafka_brokers_up(c->dk) > 0)
        return 0;
    snprintf(reason, reasonlen, "all %d brokers are down", tm_devkafka_broker_count(c->dk));
    return -1;
}

struct tm_devkafka_control *tm_devkafka_control_create(struct tm_admin *admin,
                                                       struct tm_devkafka *dk,
                                                       struct tm_metrics *metrics, char *err)
{
    struct tm_devkafka_control *c = NULL;
    struct tm_gauge *brokers, *partitions;
    struct tm_devkafka_control *result = NULL;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    c->dk = dk;
    brokers = tm_metrics_gauge(metrics, "tm_devkafka_brokers",
                               "Brokers in the in-memory mock cluster.", NULL);
    partitions = tm_metrics_gauge(metrics, "tm_devkafka_partitions",
                                  "Partitions of each topic of the mock cluster.", NULL);
    c->brokers_up = tm_metrics_gauge(metrics, "tm_devkafka_brokers_up",
                                     "Brokers of the mock cluster accepting connections.", NULL);
    c->downs = tm_metrics_counter(metrics, "tm_devkafka_broker_changes_total",
                                  "Brokers taken down or up through the admin routes.", "action",
                                  "down", NULL);
    c->ups = tm_metrics_counter(metrics, "tm_devkafka_broker_changes_total",
                                "Brokers taken down or up through the admin routes.", "action",
                                "up", NULL);
    if (brokers == NULL || partitions == NULL || c->brokers_up == NULL || c->downs == NULL ||
        c->ups == NULL) {
        tm_err(err, "cannot register the 'tm_devkafka_*' metrics");
        goto out;
    }
    tm_gauge_set(brokers, tm_devkafka_broker_count(dk));
    tm_gauge_set(partitions, tm_devkafka_partition_count(dk));
    tm_gauge_set(c->brokers_up, tm_devkafka_brokers_up(dk));

    if (tm_admin_route(admin, "/brokers/down", brokers_down_cb, c) < 0 ||
        tm_admin_route(admin, "/brokers/up", brokers_up_cb, c) < 0) {
        tm_err(err, "cannot add the '/brokers/down' and '/brokers/up' admin routes");
        goto out;
    }
    tm_admin_set_health(admin, health_cb, c);
    result = c;
    c = NULL;
out:
    free(c);
    return result;
}

void tm_devkafka_control_destroy(struct tm_devkafka_control *c)
{
    free(c);
}
