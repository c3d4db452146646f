/*
 * enroll.c - token enrollment: `POST /v1/enroll` on its own TLS listener ([enroll] listen),
 * served by evhttp on the collector's main event loop (the one SIGHUP is handled on, so a
 * reload and an enrollment never run at the same time). docs/enrollment.md.
 *
 * The agent sends `Authorization: Bearer TOKEN` and its certificate request (PEM,
 * Content-Type application/pkcs10); its key never leaves its host. Under the identity
 * map's lock file (shared with tmctl), in this order:
 *   1. the token file is read and the token checked: its SHA-256 digest compared with every
 *      entry in constant time, then pending and not expired (else 401: unknown, expired,
 *      used);
 *   2. the request is checked (its signature, an acceptable key; else 400; the token stays
 *      unused so the agent can try again);
 *   3. a certificate is issued for the name and operator the token was made for; the
 *      request's subject and extensions are ignored;
 *   4. the name is added to [operator.ID] certs (the section is created with the token's
 *      sector and region when missing; an existing section's values win) and the map
 *      written atomically; a name revoked or taken since the token was made burns the
 *      token and answers 403;
 *   5. the token is burned ("used:TIME") and the token file written atomically (fsync,
 *      rename, fsync of the directory) before anything is answered, so a restart never
 *      revives it;
 *   6. the map is reloaded through the same function as SIGHUP, and the certificate and
 *      CA certificate are answered as JSON.
 * The map is written before the token is burned: a crash between the two leaves a name in
 * the map whose certificate nobody received and a token that still works once, never a
 * burned token without its enrollment recorded. Tokens, keys and requests are never
 * logged; a token is named by the first 12 hex digits of its digest.
 *
 * Limits: headers 8 KiB, body 64 KiB (a request is about 500 bytes), 10 s idle timeout.
 */
#include "enroll.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "collector.h"
#include "tls.h"
#include "tm/tm_file.h"
#include "tm/tm_idmap.h"
#include "tm/tm_inifile.h"
#include "tm/tm_log.h"
#include "tm/tm_pki.h"
#include "tm/tm_time.h"
#include "tm/tm_tokens.h"

#define ENROLL_MAX_HEADERS (8 * 1024)
#define ENROLL_MAX_BODY (64 * 1024)
#define ENROLL_IDLE_S 10

struct enroll {
    struct collector *c;
    enroll_reload_cb reload;
    struct evhttp *http;
    SSL_CTX *ctx;
    X509 *ca;
    EVP_PKEY *ca_key;
    char *ca_pem;
    char addr[TM_ADDR_LEN];
    char map[512], tokens[512], lock[600];
    int days;
};

static void count(struct enroll *e, const char *result)
{
    tm_counter_inc(tm_metrics_counter(e->c->metrics, "tm_collector_enroll_total",
                                      "Enrollment requests, by result (ok, unknown, expired, "
                                      "used, refused, bad_request, error).",
                                      "result", result, NULL));
}

static void answer_json(struct evhttp_request *req, int code, json_t *o)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (buf != NULL && text != NULL)
        evbuffer_add(buf, text, strlen(text));
    evhttp_send_reply(req, code, NULL, buf);
    if (buf != NULL)
        evbuffer_free(buf);
    free(text);
}

static void answer_error(struct evhttp_request *req, int code, const char *fmt, ...)
    TM_PRINTF(3, 4);

static void answer_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[TM_ERR_LEN];
    json_t *o;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o = json_pack("{s:s}", "error", msg);
    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tm-collector enrollment\"");
    answer_json(req, code, o);
    json_decref(o);
}

/* The token of "Authorization: Bearer TOKEN" into out, or -1. */
static int bearer(const char *auth, char *out, size_t len)
{
    size_t n;

    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return -1;
    auth += 7;
    while (*auth == ' ')
        auth++;
    n = strcspn(auth, " \t");
    if (n == 0 || n >= len || auth[n] != '\0')
        return -1;
    memcpy(out, auth, n);
    out[n] = '\0';
    return 0;
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

/* Steps 1-6 of the file comment, with the lock held by the caller. */
static void redeem(struct enroll *e, struct evhttp_request *req, const char *token,
                   const char *peer)
{
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    struct tm_tokens t = {NULL, 0};
    struct tm_inifile *map = NULL;
    struct tm_token *tok;
    X509_REQ *csr = NULL;
    X509 *cert = NULL;
    char err[TM_ERR_LEN], digest[65], sector[32], region[8], when[TM_TIME_LEN];
    char *pem = NULL;
    const char *csr_text;
    json_t *o = NULL;
    bool renewal = false;
    int64_t now = tm_time_now_ms(), not_after = 0;
    long idx = -1;
    enum tm_token_check chk;

    tm_tokens_digest(token, digest);
    digest[12] = '\0';
    if (tm_tokens_load(e->tokens, &t, err) != 0) {
        tm_log_error("enroll %s: %s", peer, err);
        count(e, "error");
        answer_error(req, 500, "the collector cannot read its token file");
        goto out;
    }
    chk = tm_tokens_check(&t, token, now, &idx);
    if (chk != TM_TOKEN_OK) {
        tm_log_warn("enroll %s: token %s... refused: %s", peer, digest, tm_token_check_name(chk));
        count(e, tm_token_check_name(chk));
        answer_error(req, 401, "%s",
                     chk == TM_TOKEN_EXPIRED ? "this enrollment token has expired"
                     : chk == TM_TOKEN_BURNED
                         ? "this enrollment token was already used (or revoked)"
                         : "unknown enrollment token");
        goto out;
    }
    tok = &t.v[idx];
    csr_text = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    csr = csr_text != NULL ? tm_pki_csr_parse(csr_text, len, err) : NULL;
    if (csr == NULL) {
        tm_log_warn("enroll %s: token %s...: bad certificate request: %s", peer, digest, err);
        count(e, "bad_request");
        answer_error(req, 400, "bad certificate request: %s", err);
        goto out;
    }
    if (tm_inifile_load(e->map, &map, err) != 0) {
        tm_log_error("enroll %s: %s", peer, err);
        count(e, "error");
        answer_error(req, 500, "the collector cannot read its identity map");
        goto out;
    }
    /* An operator already in the map keeps its sector and region. */
    if (tm_idmap_operator(map, tok->operator_id, sector, region) == 0) {
        tm_strlcpy(sector, tok->sector, sizeof(sector));
        tm_strlcpy(region, tok->region, sizeof(region));
    } else {
        sector[0] = region[0] = '\0';
    }
    if (tm_idmap_check(map, tok->operator_id, sector, region, tok->name, &renewal, err) != 0) {
        tm_log_warn("enroll %s: token %s... for '%s' refused: %s", peer, digest, tok->name, err);
        tm_tokens_burn(&t, (size_t)idx, TM_TOKEN_REVOKED, now);
        if (tm_tokens_save(e->tokens, &t, now, err) != 0)
            tm_log_error("enroll %s: %s", peer, err);
        count(e, "refused");
        answer_error(req, 403, "this enrollment can no longer complete: %s", err);
        goto out;
    }
    cert = tm_pki_issue(e->ca, e->ca_key, X509_REQ_get0_pubkey(csr), TM_PKI_CLIENT, tok->name, NULL,
                        0, NULL, 0, e->days, err);
    pem = cert != NULL ? tm_pki_cert_pem(cert, NULL) : NULL;
    if (pem == NULL) {
        tm_log_error("enroll %s: cannot issue '%s': %s", peer, tok->name, err);
        count(e, "error");
        answer_error(req, 500, "the collector cannot issue the certificate");
        goto out;
    }
    if (tm_idmap_add_cert(map, tok->operator_id, sector, region, tok->name, err) != 0 ||
        tm_inifile_save(map, e->map, 0640, err) != 0) {
        tm_log_error("enroll %s: %s", peer, err);
        count(e, "error");
        answer_error(req, 500, "the collector cannot write its identity map");
        goto out;
    }
    tm_tokens_burn(&t, (size_t)idx, TM_TOKEN_USED, now);
    if (tm_tokens_save(e->tokens, &t, now, err) != 0) {
        tm_log_error("enroll %s: %s", peer, err);
        count(e, "error");
        answer_error(req, 500, "the collector cannot write its token file");
        goto out;
    }
    if (e->reload(e->c, err) != 0)
        tm_log_error("enroll %s: '%s' added, but the identity map did not reload: %s", peer,
                     tok->name, err);
    tm_pki_not_after(cert, &not_after);
    tm_time_format(not_after, when, sizeof(when));
    o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "name", tok->name, "operator", tok->operator_id,
                  "sector", sector, "region", region, "not_after", when, "cert", pem, "ca",
                  e->ca_pem);
    tm_log_info("enroll %s: token %s... redeemed: certificate '%s' for operator '%s'%s", peer,
                digest, tok->name, tok->operator_id, renewal ? " (renewal)" : "");
    count(e, "ok");
    if (o == NULL)
        answer_error(req, 500, "out of memory");
    else
        answer_json(req, 200, o);
out:
    json_decref(o);
    free(pem);
    X509_free(cert);
    X509_REQ_free(csr);
    tm_inifile_free(map);
    tm_tokens_free(&t);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct enroll *e = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    char token[256], peer[TM_ADDR_LEN], err[TM_ERR_LEN];
    int lock;

    peer_of(req, peer, sizeof(peer));
    if (path == NULL || strcmp(path, "/v1/enroll") != 0) {
        count(e, "bad_request");
        answer_error(req, 404, "no such path; enrollment is POST /v1/enroll");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        count(e, "bad_request");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        answer_error(req, 405, "'/v1/enroll' takes POST only");
        return;
    }
    if (bearer(evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"), token,
               sizeof(token)) != 0) {
        count(e, "unknown");
        answer_error(req, 401, "an 'Authorization: Bearer TOKEN' header is required");
        return;
    }
    lock = tm_file_lock(e->lock, TM_IDMAP_LOCK_WAIT_MS, err);
    if (lock < 0 && errno == EWOULDBLOCK) {
        tm_log_error("enroll %s: %s", peer, err);
        count(e, "error");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
        answer_error(req, 503, "the identity map is busy; try again");
    } else if (lock < 0) {
        /* not the agent's fault, nor passing: the collector's files need fixing */
        tm_log_error("enroll %s: %s", peer, err);
        count(e, "error");
        answer_error(req, 500, "the collector cannot lock its identity map (see its log)");
    } else {
        redeem(e, req, token, peer);
        tm_file_unlock(lock);
    }
    OPENSSL_cleanse(token, sizeof(token));
}

/* evhttp asks for each accepted connection's bufferevent: a TLS server one. */
static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
    struct enroll *e = arg;
    SSL *ssl = SSL_new(e->ctx);

    if (ssl == NULL)
        return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

struct enroll *enroll_create(struct collector *c, enroll_reload_cb reload, char *err)
{
    const struct collector_config *cfg = &c->cfg;
    struct enroll *e = calloc(1, sizeof(*e));
    int fd = -1;

    if (e == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    e->c = c;
    e->reload = reload;
    e->days = (int)cfg->enroll_cert_days;
    if (cfg->enroll_ca_key[0] == '\0' || cfg->enroll_ca_cert[0] == '\0') {
        tm_err(err, "[enroll] listen needs [enroll] ca_cert and ca_key (docs/enrollment.md)");
        goto fail;
    }
    if (cfg->tls_cert[0] == '\0' || cfg->identity_map[0] == '\0') {
        tm_err(err, "[enroll] listen needs [tls] cert and key and [identity] map");
        goto fail;
    }
    if (tm_strlcpy(e->map, cfg->identity_map, sizeof(e->map)) != 0 ||
        tm_idmap_lock_path(e->map, e->lock, sizeof(e->lock)) != 0 ||
        (cfg->enroll_tokens[0] != '\0'
             ? tm_strlcpy(e->tokens, cfg->enroll_tokens, sizeof(e->tokens))
             : tm_idmap_tokens_path(e->map, e->tokens, sizeof(e->tokens))) != 0) {
        tm_err(err, "[identity] map path is too long");
        goto fail;
    }
    e->ca = tm_pki_cert_load(cfg->enroll_ca_cert, err);
    if (e->ca == NULL)
        goto fail;
    e->ca_key = tm_pki_key_load(cfg->enroll_ca_key, err);
    if (e->ca_key == NULL)
        goto fail;
    if (X509_check_private_key(e->ca, e->ca_key) != 1) {
        tm_err(err, "[enroll] ca_key '%s' is not the key of ca_cert '%s'", cfg->enroll_ca_key,
               cfg->enroll_ca_cert);
        goto fail;
    }
    e->ca_pem = tm_pki_cert_pem(e->ca, NULL);
    e->ctx = tls_server_ctx_create(cfg->tls_cert, cfg->tls_key, "", false, err);
    if (e->ca_pem == NULL || e->ctx == NULL)
        goto fail;
    e->http = evhttp_new(c->base);
    if (e->http == NULL) {
        tm_err(err, "cannot create the enrollment server");
        goto fail;
    }
    evhttp_set_max_headers_size(e->http, ENROLL_MAX_HEADERS);
    evhttp_set_max_body_size(e->http, ENROLL_MAX_BODY);
    evhttp_set_timeout(e->http, ENROLL_IDLE_S);
    evhttp_set_allowed_methods(e->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_bevcb(e->http, bev_cb, e);
    evhttp_set_gencb(e->http, request_cb, e);
    fd = tm_net_listen(cfg->enroll, SOCK_STREAM, false, err);
    if (fd < 0)
        goto fail;
    if (tm_net_local_addr(fd, e->addr, sizeof(e->addr)) != 0)
        tm_strlcpy(e->addr, cfg->enroll, sizeof(e->addr));
    if (evhttp_accept_socket_with_handle(e->http, fd) == NULL) {
        tm_err(err, "cannot serve enrollment on '%s'", cfg->enroll);
        close(fd);
        goto fail;
    }
    tm_log_info("enrollment on %s: tokens in '%s', certificates for %d days", e->addr, e->tokens,
                e->days);
    return e;
fail:
    enroll_destroy(e);
    return NULL;
}

const char *enroll_address(const struct enroll *e)
{
    return e->addr;
}

void enroll_destroy(struct enroll *e)
{
    if (e == NULL)
        return;
    if (e->http != NULL)
        evhttp_free(e->http);
    if (e->ctx != NULL)
        SSL_CTX_free(e->ctx);
    EVP_PKEY_free(e->ca_key); /* OpenSSL clears private key material when it frees it */
    X509_free(e->ca);
    free(e->ca_pem);
    free(e);
}
