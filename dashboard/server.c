/*
 * server.c - tm-dashboard's HTTP side: one evhttp on the daemon's loop, plain or TLS
 * (bufferevent_openssl through evhttp_set_bevcb, TLS 1.2 at least).
 *
 * A request goes: security headers (every answer has them) -> route -> method (405) ->
 * for /api/: the token (401) -> api.c or stream.c, which check parameters, Redis and
 * the in-flight bound. /login and /logout take POST; everything else is the web root.
 * Every answer is counted by endpoint and status, with its duration.
 *
 * Access: "Authorization: Bearer TOKEN", or the tm_session cookie that POST /login sets
 * (auth.c signs it). Tokens are never logged; a failed login is logged with the peer
 * address only.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <strings.h>
#include <unistd.h>

#include "dashboard.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

#define MAX_HEADERS_SIZE (16 * 1024)
#define MAX_BODY_SIZE (16 * 1024)
#define TIMEOUT_SECS 30
#define TOKEN_MAX 1100
#define COOKIE_NAME "tm_session"
#define SESSION_LEN 200
#define JSON_TYPE "application/json; charset=utf-8"

static const char *const endpoint_names[EP_COUNT] = {"overview",   "sector", "feed",   "agents",
                                                     "priorities", "stream", "static", "login",
                                                     "logout",     "other"};

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                          "base-uri 'none'; form-action 'self'";

/* ---- answers ----------------------------------------------------------------------- */

void dash_security_headers(struct dash *d, struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Security-Policy", csp);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    if (d->tls != NULL)
        evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
}

void dash_count(struct dash *d, enum dash_endpoint ep, int code, int64_t start_ms)
{
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,   0.25,   0.5,   1,    5};
    char c[16];

    snprintf(c, sizeof(c), "%d", code);
    tm_counter_inc(tm_metrics_counter(d->metrics, "tm_dashboard_requests_total",
                                      "HTTP requests answered, by endpoint and status code.",
                                      "endpoint", endpoint_names[ep], "code", c, NULL));
    if (ep != EP_STREAM)
        tm_histogram_observe(tm_metrics_histogram(d->metrics, "tm_dashboard_request_seconds",
                                                  "Time from request to answer, by endpoint.",
                                                  bounds, TM_ARRAY_LEN(bounds), "endpoint",
                                                  endpoint_names[ep], NULL),
                             (double)(tm_time_mono_ms() - start_ms) / 1000.0);
}

static void reply_buf(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, int code,
                      const char *ctype, struct evbuffer *buf, int64_t start_ms)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    if (ctype != NULL)
        evhttp_add_header(h, "Content-Type", ctype);
    if (evhttp_find_header(h, "Cache-Control") == NULL)
        evhttp_add_header(h, "Cache-Control", "no-store");
    dash_count(d, ep, code, start_ms);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD && buf != NULL) {
        /* libevent 2.1 would send the body: announce its length, send none */
        char n[24];
        snprintf(n, sizeof(n), "%zu", evbuffer_get_length(buf));
        evhttp_add_header(h, "Content-Length", n);
        evhttp_send_reply(req, code, NULL, NULL);
        return;
    }
    evhttp_send_reply(req, code, NULL, buf);
}

void dash_reply(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, int code,
                const char *ctype, const char *body, size_t len, int64_t start_ms)
{
    struct evbuffer *buf = evbuffer_new();

    if (buf != NULL && len > 0)
        evbuffer_add(buf, body, len);
    reply_buf(d, req, ep, code, ctype, buf, start_ms);
    if (buf != NULL)
        evbuffer_free(buf);
}

void dash_reply_file(struct dash *d, struct evhttp_request *req, const char *ctype,
                     struct evbuffer *buf, int64_t start_ms)
{
    reply_buf(d, req, EP_STATIC, 200, ctype, buf, start_ms);
}

void dash_reply_json(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, json_t *o,
                     int64_t start_ms)
{
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;

    json_decref(o);
    if (text == NULL) {
        dash_reply_error(d, req, ep, 500, start_ms, "out of memory");
        return;
    }
    dash_reply(d, req, ep, 200, JSON_TYPE, text, strlen(text), start_ms);
    free(text);
}

void dash_reply_error(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep, int code,
                      int64_t start_ms, const char *fmt, ...)
{
    char msg[TM_ERR_LEN];
    json_t *o;
    char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o = json_pack("{s:s}", "error", msg);
    if (o != NULL)
        text = json_dumps(o, JSON_COMPACT);
    if (text != NULL)
        dash_reply(d, req, ep, code, JSON_TYPE, text, strlen(text), start_ms);
    else
        dash_reply(d, req, ep, code, JSON_TYPE, "{\"error\":\"out of memory\"}", 25, start_ms);
    free(text);
    json_decref(o);
}

static void method_not_allowed(struct dash *d, struct evhttp_request *req, enum dash_endpoint ep,
                               const char *allow, int64_t start_ms)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    dash_reply_error(d, req, ep, 405, start_ms, "method not allowed: use %s", allow);
}

static void peer_of(struct evhttp_request *req, char *out, size_t len)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *host = NULL;
    ev_uint16_t port = 0;

    snprintf(out, len, "?");
    if (evcon != NULL) {
        evhttp_connection_get_peer(evcon, &host, &port);
        if (host != NULL)
            snprintf(out, len, "%s:%u", host, (unsigned)port);
    }
}

/* ---- access ------------------------------------------------------------------------ */

/* Copies the token of "Bearer TOKEN" into out; NULL when the header is something else. */
static const char *bearer(const char *h, char *out, size_t len)
{
    size_t n;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    h += strspn(h, " ");
    n = strcspn(h, " \t");
    if (n == 0 || n >= len || h[n + strspn(h + n, " \t")] != '\0')
        return NULL;
    memcpy(out, h, n);
    out[n] = '\0';
    return out;
}

/* Copies the value of the tm_session cookie into out, or returns NULL. */
static const char *session_cookie(const char *h, char *out, size_t len)
{
    while (h != NULL && *h != '\0') {
        size_t n;
        h += strspn(h, " \t;");
        n = strcspn(h, ";");
        if (n > sizeof(COOKIE_NAME) && strncmp(h, COOKIE_NAME "=", sizeof(COOKIE_NAME)) == 0) {
            size_t vlen = n - sizeof(COOKIE_NAME);
            while (vlen > 0 && (h[sizeof(COOKIE_NAME) + vlen - 1] == ' '))
                vlen--;
            if (vlen >= len)
                return NULL;
            memcpy(out, h + sizeof(COOKIE_NAME), vlen);
            out[vlen] = '\0';
            return out;
        }
        h += n;
    }
    return NULL;
}

/* Returns true when the request carries a valid token or session cookie. */
static bool authorised(struct dash *d, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    char buf[TOKEN_MAX + 1];
    const char *v;
    bool ok = false;

    if (!d->cfg.auth)
        return true;
    if ((v = bearer(evhttp_find_header(in, "Authorization"), buf, sizeof(buf))) != NULL)
        ok = dash_auth_token(d->auth, v) != NULL;
    else if ((v = session_cookie(evhttp_find_header(in, "Cookie"), buf, sizeof(buf))) != NULL)
        ok = dash_auth_check_session(d->auth, v, tm_time_now_ms() / 1000) != NULL;
    explicit_bzero(buf, sizeof(buf));
    return ok;
}

static bool wants_html(struct evhttp_request *req)
{
    const char *accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");

    return accept != NULL && strstr(accept, "text/html") != NULL;
}

static void set_cookie(struct dash *d, struct evhttp_request *req, const char *value,
                       int64_t max_age_s)
{
    char c[SESSION_LEN + 160];

    snprintf(c, sizeof(c), COOKIE_NAME "=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
             value, (long long)max_age_s, d->tls != NULL ? "; Secure" : "");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", c);
}

/* POST /login: form field token; 303 to / with the session cookie, or 401. */
static void login(struct dash *d, struct evhttp_request *req, int64_t start_ms)
{
    static const char fail_html[] =
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tm-dashboard</title></head>"
        "<body><p>Wrong token.</p><p><a href=\"/\">Back</a></p></body></html>\n";
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    struct evkeyvalq form;
    char text[MAX_BODY_SIZE + 1], session[SESSION_LEN], peer[TM_ADDR_LEN];
    const char *name = NULL;
    int64_t now_s = tm_time_now_ms() / 1000;

    TAILQ_INIT(&form);
    if (len > MAX_BODY_SIZE) {
        dash_reply_error(d, req, EP_LOGIN, 413, start_ms, "form too large");
        return;
    }
    evbuffer_copyout(body, text, len);
    text[len] = '\0';
    if (evhttp_parse_query_str(text, &form) == 0)
        name = dash_auth_token(d->auth, evhttp_find_header(&form, "token"));
    explicit_bzero(text, sizeof(text));
    evhttp_clear_headers(&form);
    if (!d->cfg.auth) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/");
        dash_reply(d, req, EP_LOGIN, 303, "text/plain; charset=utf-8", NULL, 0, start_ms);
        return;
    }
    peer_of(req, peer, sizeof(peer));
    if (name == NULL || dash_auth_session(d->auth, name, now_s + d->cfg.session_lifetime_ms / 1000,
                                          session, sizeof(session)) != 0) {
        tm_counter_inc(d->c_login_fail);
        tm_log_info("http %s: login refused: wrong token", peer);
        if (wants_html(req))
            dash_reply(d, req, EP_LOGIN, 401, "text/html; charset=utf-8", fail_html,
                       sizeof(fail_html) - 1, start_ms);
        else
            dash_reply_error(d, req, EP_LOGIN, 401, start_ms, "wrong token");
        return;
    }
    tm_log_info("http %s: login as '%s'", peer, name);
    set_cookie(d, req, session, d->cfg.session_lifetime_ms / 1000);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/");
    dash_reply(d, req, EP_LOGIN, 303, "text/plain; charset=utf-8", NULL, 0, start_ms);
}

/* POST /logout: clears the cookie and goes back to /. */
static void logout(struct dash *d, struct evhttp_request *req, int64_t start_ms)
{
    set_cookie(d, req, "", 0);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/");
    dash_reply(d, req, EP_LOGOUT, 303, "text/plain; charset=utf-8", NULL, 0, start_ms);
}

/* ---- routing ----------------------------------------------------------------------- */

static void api_route(struct dash *d, struct evhttp_request *req, const char *name, bool get,
                      int64_t start_ms)
{
    enum dash_endpoint ep = EP_OTHER;
    const char *sector = NULL;

    if (strcmp(name, "overview") == 0) {
        ep = EP_OVERVIEW;
    } else if (strncmp(name, "sector/", 7) == 0 && name[7] != '\0' &&
               strchr(name + 7, '/') == NULL) {
        ep = EP_SECTOR;
        sector = name + 7;
    } else if (strcmp(name, "feed") == 0) {
        ep = EP_FEED;
    } else if (strcmp(name, "agents") == 0) {
        ep = EP_AGENTS;
    } else if (strcmp(name, "priorities") == 0) {
        ep = EP_PRIORITIES;
    } else if (strcmp(name, "stream") == 0) {
        ep = EP_STREAM;
    } else {
        dash_reply_error(d, req, EP_OTHER, 404, start_ms, "no such endpoint");
        return;
    }
    if (!get) {
        method_not_allowed(d, req, ep, "GET, HEAD", start_ms);
        return;
    }
    if (!authorised(d, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tm-dashboard\"");
        dash_reply_error(d, req, ep, 401, start_ms,
                         "a valid 'Authorization: Bearer TOKEN' or a login session is required");
        return;
    }
    if (ep == EP_STREAM)
        dash_stream_open(d->stream, req, start_ms);
    else
        dash_api_handle(d->api, req, ep, sector, start_ms);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct dash *d = arg;
    int64_t start_ms = tm_time_mono_ms();
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;

    dash_security_headers(d, req);
    if (path == NULL || path[0] != '/') {
        dash_reply_error(d, req, EP_OTHER, 400, start_ms, "cannot parse the request target");
    } else if (strncmp(path, "/api/", 5) == 0) {
        api_route(d, req, path + 5, get, start_ms);
    } else if (strcmp(path, "/login") == 0 || strcmp(path, "/logout") == 0) {
        enum dash_endpoint ep = strcmp(path, "/login") == 0 ? EP_LOGIN : EP_LOGOUT;
        if (cmd != EVHTTP_REQ_POST)
            method_not_allowed(d, req, ep, "POST", start_ms);
        else if (ep == EP_LOGIN)
            login(d, req, start_ms);
        else
            logout(d, req, start_ms);
    } else if (!get) {
        method_not_allowed(d, req, EP_STATIC, "GET, HEAD", start_ms);
    } else {
        dash_static_serve(d, req, path, start_ms);
    }
}

/* ---- listener ---------------------------------------------------------------------- */

static struct bufferevent *tls_bev_cb(struct event_base *base, void *arg)
{
    struct dash *d = arg;
    SSL *ssl = SSL_new(d->tls);
    struct bufferevent *bev;

    if (ssl == NULL)
        return NULL;
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static int tls_setup(struct dash *d, char *err)
{
    const struct dash_config *cfg = &d->cfg;
    char why[160] = "";

    if (cfg->tls_key[0] == '\0')
        return tm_err(err, "[tls] cert is set but key is not");
    d->tls = SSL_CTX_new(TLS_server_method());
    if (d->tls == NULL)
        return tm_err(err, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(d->tls, TLS1_2_VERSION);
    SSL_CTX_set_options(d->tls, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(d->tls, cfg->tls_cert) == 1 &&
        SSL_CTX_use_PrivateKey_file(d->tls, cfg->tls_key, SSL_FILETYPE_PEM) == 1 &&
        SSL_CTX_check_private_key(d->tls) == 1)
        return 0;
    ERR_error_string_n(ERR_get_error(), why, sizeof(why));
    ERR_clear_error();
    return tm_err(err, "[tls] cert '%s', key '%s': %s", cfg->tls_cert, cfg->tls_key, why);
}

int dash_server_start(struct dash *d, char *err)
{
    int fd = -1;

    if (d->cfg.tls_cert[0] != '\0' && tls_setup(d, err) != 0)
        return -1;
    d->c_login_fail = tm_metrics_counter(d->metrics, "tm_dashboard_login_failures_total",
                                         "POST /login with a wrong token.", NULL);
    d->http = evhttp_new(d->base);
    if (d->http == NULL)
        return tm_err(err, "http '%s': cannot create the server", d->cfg.http);
    evhttp_set_max_headers_size(d->http, MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(d->http, MAX_BODY_SIZE);
    evhttp_set_timeout(d->http, TIMEOUT_SECS);
    evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(d->http, request_cb, d);
    if (d->tls != NULL)
        evhttp_set_bevcb(d->http, tls_bev_cb, d);
    fd = tm_net_listen(d->cfg.http, SOCK_STREAM, false, err);
    if (fd < 0)
        return -1;
    if (tm_net_local_addr(fd, d->http_addr, sizeof(d->http_addr)) != 0)
        tm_strlcpy(d->http_addr, d->cfg.http, sizeof(d->http_addr));
    if (evhttp_accept_socket_with_handle(d->http, fd) == NULL) {
        close(fd);
        return tm_err(err, "http '%s': cannot accept connections", d->cfg.http);
    }
    return 0;
}

void dash_server_stop(struct dash *d)
{
    if (d->http != NULL)
        evhttp_free(d->http);
    d->http = NULL;
    if (d->tls != NULL)
        SSL_CTX_free(d->tls);
    d->tls = NULL;
}
