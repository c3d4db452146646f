/*
 * tm_admin.h - the admin HTTP endpoint every daemon serves on --admin ADDR:
 * GET /healthz (200 "ok", or 503 with the reason the health callback gives) and
 * GET /metrics (the registry in Prometheus text format). Programs may add routes of their
 * own (tm-devkafka adds broker controls). Runs on the caller's event_base.
 */
#ifndef TM_ADMIN_H
#define TM_ADMIN_H

#include <event2/event.h>
#include <event2/http.h>

#include "tm/tm_common.h"
#include "tm/tm_metrics.h"

struct tm_admin;

/*
 * Health callback: returns 0 when healthy, or -1 after writing a short reason into
 * reason (reasonlen bytes), which /healthz returns with status 503.
 */
typedef int (*tm_admin_health_cb)(void *arg, char *reason, size_t reasonlen);

/*
 * Binds an HTTP server to addr on base. metrics is borrowed and must outlive the admin
 * server. Returns NULL with the reason in err.
 */
struct tm_admin *tm_admin_create(struct event_base *base, const char *addr,
                                 struct tm_metrics *metrics, char *err);

/* Installs the health callback (default: always healthy). */
void tm_admin_set_health(struct tm_admin *a, tm_admin_health_cb cb, void *arg);

/*
 * Adds a handler for an exact path (the query string is not part of it); the handler
 * sees every method and answers itself. Returns 0, or -1 if the path is taken (the
 * built-in /healthz and /metrics included) or does not start with '/'.
 */
int tm_admin_route(struct tm_admin *a, const char *path,
                   void (*cb)(struct evhttp_request *req, void *arg), void *arg);

/* The address actually bound (the real port when 0 was asked for), as HOST:PORT. */
const char *tm_admin_address(const struct tm_admin *a);

/* The underlying evhttp, for programs that add prefix routes (evhttp_set_gencb). */
struct evhttp *tm_admin_http(struct tm_admin *a);

/* Stops serving and frees. NULL is allowed. */
void tm_admin_destroy(struct tm_admin *a);

#endif
