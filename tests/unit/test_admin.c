/*
 * test_admin.c - the admin HTTP endpoint on 127.0.0.1:0, driven by libevent's own HTTP
 * client on the same event_base: /healthz healthy and unhealthy, /metrics with its
 * content type and a registered counter, 404 for unknown paths, 405 for other methods,
 * a custom route, and the address reported back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_admin.h"
#include "tm/tm_metrics.h"
#include "tm/tm_net.h"

/* A request that gets no answer in this time fails the test instead of hanging it. */
#define TIMEOUT_SECS 5

struct fixture {
    struct event_base *base;
    struct tm_metrics *metrics;
    struct tm_admin *admin;
    struct evhttp_connection *conn;
    int port;
};

struct response {
    struct event_base *base;
    bool done;
    int code;
    char body[8192];
    char content_type[128];
    char allow[64];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char err[TM_ERR_LEN] = "";
    const char *addr, *colon;

    if (fx == NULL)
        return -1;
    *state = fx;
    fx->base = event_base_new();
    fx->metrics = tm_metrics_create();
    if (fx->base == NULL || fx->metrics == NULL)
        return -1;
    fx->admin = tm_admin_create(fx->base, "127.0.0.1:0", fx->metrics, err);
    if (fx->admin == NULL) {
        print_error("tm_admin_create: %s\n", err);
        return -1;
    }
    addr = tm_admin_address(fx->admin);
    colon = strrchr(addr, ':');
    if (colon == NULL)
        return -1;
    fx->port = (int)strtol(colon + 1, NULL, 10);
    fx->conn = evhttp_connection_base_new(fx->base, NULL, "127.0.0.1", (ev_uint16_t)fx->port);
    return fx->conn != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    if (fx == NULL)
        return 0;
    if (fx->conn != NULL)
        evhttp_connection_free(fx->conn);
    tm_admin_destroy(fx->admin);
    tm_metrics_destroy(fx->metrics);
    if (fx->base != NULL)
        event_base_free(fx->base);
    free(fx);
    return 0;
}

static void copy_header(struct evkeyvalq *headers, const char *name, char *out, size_t outlen)
{
    const char *v = evhttp_find_header(headers, name);

    out[0] = '\0';
    if (v != NULL && strlen(v) < outlen)
        memcpy(out, v, strlen(v) + 1);
}

static void response_cb(struct evhttp_request *req, void *arg)
{
    struct response *r = arg;

    r->done = true;
    r->code = -1;
    if (req != NULL && evhttp_request_get_response_code(req) != 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);

        r->code = evhttp_request_get_response_code(req);
        if (n >= sizeof(r->body))
            n = sizeof(r->body) - 1;
        evbuffer_remove(in, r->body, n);
        r->body[n] = '\0';
        copy_header(evhttp_request_get_input_headers(req), "Content-Type", r->content_type,
                    sizeof(r->content_type));
        copy_header(evhttp_request_get_input_headers(req), "Allow", r->allow, sizeof(r->allow));
    }
    event_base_loopbreak(r->base);
}

/* Sends one request and runs the loop until its answer (or the timeout) arrives. */
static void fetch(struct fixture *fx, enum evhttp_cmd_type cmd, const char *path,
                  struct response *r)
{
    struct evhttp_request *req;
    struct timeval tv = {TIMEOUT_SECS, 0};

    memset(r, 0, sizeof(*r));
    r->base = fx->base;
    req = evhttp_request_new(response_cb, r);
    assert_non_null(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    assert_int_equal(evhttp_make_request(fx->conn, req, cmd, path), 0);
    event_base_loopexit(fx->base, &tv);
    event_base_dispatch(fx->base);
    if (!r->done)
        fail_msg("no answer to %s within %d s", path, TIMEOUT_SECS);
}

static int unhealthy_cb(void *arg, char *reason, size_t reasonlen)
{
    int *calls = arg;

    (*calls)++;
    snprintf(reason, reasonlen, "kafka unreachable for %d s", 30);
    return -1;
}

static void test_admin_address_has_real_port(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(strncmp(tm_admin_address(fx->admin), "127.0.0.1:", 10), 0);
    assert_true(fx->port > 0 && fx->port <= 65535);
    assert_non_null(tm_admin_http(fx->admin));
}

static void test_admin_healthz(void **state)
{
    struct fixture *fx = *state;
    struct response r;
    int calls = 0;

    fetch(fx, EVHTTP_REQ_GET, "/healthz", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "ok\n");
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");

    tm_admin_set_health(fx->admin, unhealthy_cb, &calls);
    fetch(fx, EVHTTP_REQ_GET, "/healthz", &r);
    assert_int_equal(r.code, 503);
    assert_string_equal(r.body, "unhealthy: kafka unreachable for 30 s\n");
    assert_int_equal(calls, 1);

    tm_admin_set_health(fx->admin, NULL, NULL);
    fetch(fx, EVHTTP_REQ_GET, "/healthz?verbose=1", &r);
    assert_int_equal(r.code, 200);
    assert_int_equal(calls, 1);
}

static void test_admin_metrics(void **state)
{
    struct fixture *fx = *state;
    struct tm_counter *c;
    struct response r;

    c = tm_metrics_counter(fx->metrics, "tm_test_requests_total", "Requests in the test.", "path",
                           "/x", NULL);
    assert_non_null(c);
    tm_counter_add(c, 7);
    fetch(fx, EVHTTP_REQ_GET, "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "# TYPE tm_test_requests_total counter\n"));
    assert_non_null(strstr(r.body, "tm_test_requests_total{path=\"/x\"} 7\n"));

    /* Each scrape renders the current values. */
    tm_counter_inc(c);
    fetch(fx, EVHTTP_REQ_GET, "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.body, "tm_test_requests_total{path=\"/x\"} 8\n"));

    /* HEAD gets the headers and no body. */
    fetch(fx, EVHTTP_REQ_HEAD, "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "");
}

static void test_admin_unknown_path_404(void **state)
{
    struct fixture *fx = *state;
    struct response r;

    fetch(fx, EVHTTP_REQ_GET, "/nope", &r);
    assert_int_equal(r.code, 404);
    assert_string_equal(r.body, "not found\n");
    fetch(fx, EVHTTP_REQ_GET, "/metrics/extra", &r);
    assert_int_equal(r.code, 404);
}

static void test_admin_other_methods_405(void **state)
{
    struct fixture *fx = *state;
    struct response r;

    fetch(fx, EVHTTP_REQ_POST, "/metrics", &r);
    assert_int_equal(r.code, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    fetch(fx, EVHTTP_REQ_DELETE, "/healthz", &r);
    assert_int_equal(r.code, 405);
    /* The connection still works after the refusals. */
    fetch(fx, EVHTTP_REQ_GET, "/healthz", &r);
    assert_int_equal(r.code, 200);
}

static void hello_cb(struct evhttp_request *req, void *arg)
{
    int *calls = arg;

    (*calls)++;
    evbuffer_add_printf(evhttp_request_get_output_buffer(req), "hello %d\n", *calls);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void test_admin_custom_route(void **state)
{
    struct fixture *fx = *state;
    struct response r;
    int calls = 0;

    assert_int_equal(tm_admin_route(fx->admin, "/brokers/down", hello_cb, &calls), 0);
    assert_int_equal(tm_admin_route(fx->admin, "/brokers/down", hello_cb, &calls), -1);
    assert_int_equal(tm_admin_route(fx->admin, "/metrics", hello_cb, &calls), -1);
    assert_int_equal(tm_admin_route(fx->admin, "relative", hello_cb, &calls), -1);
    fetch(fx, EVHTTP_REQ_POST, "/brokers/down", &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "hello 1\n");
    assert_int_equal(calls, 1);
    /* The built-in routes are untouched. */
    fetch(fx, EVHTTP_REQ_GET, "/healthz", &r);
    assert_int_equal(r.code, 200);
    assert_int_equal(calls, 1);
}

static void test_admin_bad_address(void **state)
{
    struct fixture *fx = *state;
    char err[TM_ERR_LEN] = "";
    char want[TM_ERR_LEN];

    assert_null(tm_admin_create(fx->base, "nowhere", fx->metrics, err));
    assert_string_equal(err, "bad address 'nowhere': missing port (use HOST:PORT)");
    /* The port our admin holds is taken. */
    assert_null(tm_admin_create(fx->base, tm_admin_address(fx->admin), fx->metrics, err));
    snprintf(want, sizeof(want), "cannot bind '%s': ", tm_admin_address(fx->admin));
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    tm_admin_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admin_address_has_real_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_unknown_path_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_other_methods_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_custom_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_bad_address, setup, teardown),
    };

    return cmocka_run_group_tests_name("admin", tests, NULL, NULL);
}
