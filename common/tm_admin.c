/*
 * tm_admin.c - the admin HTTP endpoint of every daemon: GET /healthz, GET /metrics and
 * whatever exact-path routes the program adds, served by libevent's evhttp on the
 * program's own event_base.
 *
 * The listening socket comes from tm_net_listen() and is handed to evhttp, which then
 * owns it; binding ourselves is what lets "--admin 127.0.0.1:0" work and lets
 * tm_admin_address() report the port the kernel picked. Requests are small and local, so
 * evhttp's limits are tight: 8 KiB of headers, 64 KiB of body, 10 s to send a request.
 * Every answer is text/plain; GET and HEAD are served, other methods on our paths get
 * 405 with an Allow header, and unknown paths 404.
 */
#include "tm/tm_admin.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm/tm_net.h"

#define MAX_HEADERS_SIZE 8192
#define MAX_BODY_SIZE 65536
#define TIMEOUT_SECS 10
#define REASON_LEN 256

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define PROMETHEUS_TEXT "text/plain; version=0.0.4; charset=utf-8"

struct tm_admin {
    struct evhttp *http;
    struct tm_metrics *metrics; /* borrowed */
    tm_admin_health_cb health_cb;
    void *health_arg;
    char addr[TM_ADDR_LEN];
};

/* Sends a short text answer; body may be NULL for none. */
static void reply_text(struct evhttp_request *req, int code, const char *status, const char *body)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

    evhttp_add_header(headers, "Content-Type", TEXT_PLAIN);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    if (body != NULL)
        evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, code, status, NULL);
}

/* Refuses anything but GET and HEAD with 405. Returns true when the request may go on. */
static bool allow_get(struct evhttp_request *req)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
    return false;
}

static void healthz_cb(struct evhttp_request *req, void *arg)
{
    struct tm_admin *a = arg;
    char reason[REASON_LEN] = "";
    char body[REASON_LEN + 16];

    if (!allow_get(req))
        return;
    if (a->health_cb == NULL || a->health_cb(a->health_arg, reason, sizeof(reason)) == 0) {
        reply_text(req, 200, "OK", "ok\n");
        return;
    }
    reason[sizeof(reason) - 1] = '\0';
    /* One line, whatever the callback wrote. */
    for (char *c = reason; *c != '\0'; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    snprintf(body, sizeof(body), "unhealthy: %s\n", reason[0] != '\0' ? reason : "unknown");
    reply_text(req, 503, "Service Unavailable", body);
}

static void free_rendered_cb(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
    struct tm_admin *a = arg;
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    size_t len = 0;
    char *text;

    if (!allow_get(req))
        return;
    text = tm_metrics_render(a->metrics, &len);
    if (text == NULL) {
        reply_text(req, 500, "Internal Server Error", "cannot render the metrics\n");
        return;
    }
    if (evbuffer_add_reference(out, text, len, free_rendered_cb, NULL) != 0) {
        free(text);
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", PROMETHEUS_TEXT);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void not_found_cb(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply_text(req, 404, "Not Found", "not found\n");
}

struct tm_admin *tm_admin_create(struct event_base *base, const char *addr,
                                 struct tm_metrics *metrics, char *err)
{
    struct tm_admin *a = NULL, *result = NULL;
    int fd = -1;

    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        tm_err(err, "admin '%.80s': out of memory", addr != NULL ? addr : "");
        goto out;
    }
    a->metrics = metrics;
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        tm_err(err, "admin '%.80s': cannot create the HTTP server", addr != NULL ? addr : "");
        goto out;
    }
    evhttp_set_max_headers_size(a->http, MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(a->http, MAX_BODY_SIZE);
    evhttp_set_timeout(a->http, TIMEOUT_SECS);
    /* Let every common method reach the callbacks, which answer 405 instead of 501. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(a->http, TEXT_PLAIN);
    if (evhttp_set_cb(a->http, "/healthz", healthz_cb, a) != 0 ||
        evhttp_set_cb(a->http, "/metrics", metrics_cb, a) != 0) {
        tm_err(err, "admin '%.80s': cannot add the built-in routes", addr != NULL ? addr : "");
        goto out;
    }
    evhttp_set_gencb(a->http, not_found_cb, a);
    fd = tm_net_listen(addr, SOCK_STREAM, false, err);
    if (fd < 0)
        goto out;
    if (tm_net_local_addr(fd, a->addr, sizeof(a->addr)) != 0) {
        tm_err(err, "admin '%.80s': cannot read the bound address", addr);
        goto out;
    }
    if (evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
        tm_err(err, "admin '%.80s': cannot accept connections", addr);
        goto out;
    }
    fd = -1; /* evhttp owns it now */
    result = a;
    a = NULL;
out:
    if (fd >= 0)
        close(fd);
    tm_admin_destroy(a);
    return result;
}

void tm_admin_set_health(struct tm_admin *a, tm_admin_health_cb cb, void *arg)
{
    a->health_cb = cb;
    a->health_arg = arg;
}

int tm_admin_route(struct tm_admin *a, const char *path,
                   void (*cb)(struct evhttp_request *req, void *arg), void *arg)
{
    if (path == NULL || path[0] != '/' || cb == NULL)
        return -1;
    return evhttp_set_cb(a->http, path, cb, arg) == 0 ? 0 : -1;
}

const char *tm_admin_address(const struct tm_admin *a)
{
    return a->addr;
}

struct evhttp *tm_admin_http(struct tm_admin *a)
{
    return a->http;
}

void tm_admin_destroy(struct tm_admin *a)
{
    if (a == NULL)
        return;
    if (a->http != NULL)
        evhttp_free(a->http);
    free(a);
}
