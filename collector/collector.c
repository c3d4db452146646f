/*
 * collector.c - what the workers share: the identity map (swapped whole on SIGHUP under
 * a mutex; connections copy their identity when they start, so a reload never disturbs
 * them) and the connection accounting; and the acceptor, which runs on the main thread,
 * enforces max_connections and max_connections_per_ip, and hands each accepted socket
 * to the next worker in turn.
 */
#include <event2/listener.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acceptor.h"
#include "collector.h"
#include "tls.h"
#include "tm/tm_log.h"

/* Open connections of one source address (IPv4 or IPv6 bytes). */
struct conn_count {
    struct conn_count *next;
    int family;
    uint8_t addr[16];
    long n;
};

int collector_identify(struct collector *c, const char *cert_name, const struct sockaddr *peer,
                       struct identity *out)
{
    int rc = -1;

    pthread_mutex_lock(&c->identity_lock);
    if (cert_name != NULL)
        rc = identity_by_cert_name(c->identities, cert_name, out);
    else if (peer != NULL)
        rc = identity_by_addr(c->identities, peer, out);
    pthread_mutex_unlock(&c->identity_lock);
    if (rc != 0 && cert_name == NULL && c->have_default_identity) {
        *out = c->default_identity;
        rc = 0;
    }
    return rc;
}

int collector_identify_conn(struct collector *c, SSL *ssl, const struct sockaddr *peer,
                            const char *listener, const char *peer_text, struct identity *out)
{
    char names[TLS_MAX_NAMES][TLS_NAME_LEN];
    int n = ssl != NULL ? tls_peer_names(ssl, names, TLS_MAX_NAMES) : 0;
    int rc = -1;
    struct identity ignored;

    for (int i = 0; i < n; i++)
        if (collector_identify(c, names[i], NULL, &ignored) == IDENTITY_REVOKED) {
            tm_log_warn("%s %s: certificate '%s' is revoked: closing", listener, peer_text,
                        names[i]);
            return IDENTITY_REVOKED;
        }
    for (int i = 0; i < n && rc != 0; i++)
        rc = collector_identify(c, names[i], NULL, out);
    if (n == 0)
        rc = collector_identify(c, NULL, peer, out);
    if (rc != 0)
        tm_log_warn("%s %s: unknown sender%s%s%s: closing", listener, peer_text,
                    n > 0 ? " (certificate '" : "", n > 0 ? names[0] : "", n > 0 ? "')" : "");
    else
        tm_log_debug("%s %s: operator '%s'", listener, peer_text, out->operator_id);
    return rc;
}

/*
 * The TLS listeners' verify callback, on the client's own certificate once it chains to
 * the CA: a name in the map's [revoked] list fails the handshake, and OpenSSL sends the
 * "certificate revoked" alert, so the agent is told why rather than cut off after it.
 */
static int verify_not_revoked(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct collector *c = ssl != NULL ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(x);
    char names[TLS_MAX_NAMES][TLS_NAME_LEN];
    struct identity ignored;
    int n;

    if (!ok || c == NULL || cert == NULL || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    n = tls_cert_names(cert, names, TLS_MAX_NAMES);
    for (int i = 0; i < n; i++)
        if (collector_identify(c, names[i], NULL, &ignored) == IDENTITY_REVOKED) {
            tm_log_warn("tls: certificate '%s' is revoked: refused in the handshake", names[i]);
            X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REVOKED);
            return 0;
        }
    return 1;
}

void collector_tls_refuse_revoked(struct collector *c, SSL_CTX *ctx)
{
    int mode = SSL_CTX_get_verify_mode(ctx);

    if (mode == SSL_VERIFY_NONE)
        return;
    SSL_CTX_set_app_data(ctx, c);
    SSL_CTX_set_verify(ctx, mode, verify_not_revoked);
}

int collector_identify_token(struct collector *c, const char *token, struct identity *out)
{
    int rc;

    pthread_mutex_lock(&c->identity_lock);
    rc = identity_by_token(c->identities, token, out);
    pthread_mutex_unlock(&c->identity_lock);
    return rc;
}

static size_t addr_bytes(const struct sockaddr *sa, uint8_t *out)
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

static struct conn_count **find_count(struct collector *c, const struct sockaddr *sa)
{
    uint8_t a[16];
    size_t n = addr_bytes(sa, a);
    struct conn_count **p;

    for (p = &c->conn_counts; *p != NULL; p = &(*p)->next)
        if ((*p)->family == sa->sa_family && memcmp((*p)->addr, a, n) == 0)
            return p;
    return p;
}

bool collector_conn_admit(struct collector *c, const struct sockaddr *peer)
{
    struct conn_count **p;
    bool ok = false;

    pthread_mutex_lock(&c->conn_lock);
    if (c->connections >= c->cfg.max_connections)
        goto out;
    p = find_count(c, peer);
    if (*p == NULL) {
        *p = calloc(1, sizeof(**p));
        if (*p == NULL)
            goto out;
        (*p)->family = peer->sa_family;
        addr_bytes(peer, (*p)->addr);
    }
    if ((*p)->n >= c->cfg.max_connections_per_ip)
        goto out;
    (*p)->n++;
    c->connections++;
    ok = true;
out:
    pthread_mutex_unlock(&c->conn_lock);
    return ok;
}

void collector_conn_release(struct collector *c, const struct sockaddr *peer)
{
    struct conn_count **p, *gone;

    pthread_mutex_lock(&c->conn_lock);
    p = find_count(c, peer);
    if (*p != NULL) {
        c->connections--;
        if (--(*p)->n == 0) {
            gone = *p;
            *p = gone->next;
            free(gone);
        }
    }
    pthread_mutex_unlock(&c->conn_lock);
}

void collector_conn_counts_free(struct collector *c)
{
    while (c->conn_counts != NULL) {
        struct conn_count *next = c->conn_counts->next;
        free(c->conn_counts);
        c->conn_counts = next;
    }
}

/* ---- acceptor --------------------------------------------------------------------- */

struct acceptor {
    struct collector *c;
    struct evconnlistener *l;
    enum listener_kind kind;
    char addr[TM_ADDR_LEN];
};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct acceptor *a = arg;
    struct collector *c = a->c;
    struct worker *w;
    char peer[TM_ADDR_LEN];
    int one = 1;
    (void)l;

    if (c->draining || !collector_conn_admit(c, sa)) {
        tm_counter_inc(c->conn_refused);
        tm_net_format_addr(sa, peer, sizeof(peer));
        tm_log_warn("%s: refusing %s: connection limit (%lld in all, %lld per address)", a->addr,
                    peer, (long long)c->cfg.max_connections,
                    (long long)c->cfg.max_connections_per_ip);
        close(fd);
        return;
    }
    /* Acks are 6-byte frames: without TCP_NODELAY, Nagle's algorithm meets the sender's
     * delayed ACK and every window waits ~40 ms for its ack. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    w = c->workers[c->next_worker++ % (unsigned)c->nworkers];
    worker_handoff(w, fd, sa, (socklen_t)len, a->kind);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct acceptor *a = arg;
    int e = EVUTIL_SOCKET_ERROR();
    (void)l;

    /* EMFILE and friends: keep the listener; the next accept may succeed. */
    tm_log_error("%s: accept: %s", a->addr, evutil_socket_error_to_string(e));
}

struct acceptor *acceptor_create(struct collector *c, const char *addr, enum listener_kind kind,
                                 char *err)
{
    struct acceptor *a = calloc(1, sizeof(*a));
    int fd = -1;

    if (a == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    a->c = c;
    a->kind = kind;
    fd = tm_net_listen(addr, SOCK_STREAM, false, err);
    if (fd < 0)
        goto fail;
    tm_net_local_addr(fd, a->addr, sizeof(a->addr));
    a->l = evconnlistener_new(c->base, accept_cb, a, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (a->l == NULL) {
        tm_err(err, "cannot listen on '%s'", addr);
        close(fd);
        goto fail;
    }
    evconnlistener_set_error_cb(a->l, accept_error_cb);
    return a;
fail:
    free(a);
    return NULL;
}

const char *acceptor_address(const struct acceptor *a)
{
    return a->addr;
}

void acceptor_disable(struct acceptor *a)
{
    if (a != NULL)
        evconnlistener_disable(a->l);
}

void acceptor_destroy(struct acceptor *a)
{
    if (a == NULL)
        return;
    evconnlistener_free(a->l);
    free(a);
}
