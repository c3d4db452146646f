/*
 * tls.c - tm-agent's TLS client on mbedTLS: see tls.h.
 *
 * mbedTLS calls bio_send and bio_recv for its records. Over evbuffers, bio_send appends
 * to the output evbuffer (which the socket bufferevent then writes) and bio_recv takes
 * from the input evbuffer, saying WANT_READ when it is empty; the caller runs the
 * handshake or reads again when the bufferevent has read more. Over a blocking socket
 * they are send(2) and recv(2), whose SO_SNDTIMEO/SO_RCVTIMEO end in a timeout error.
 *
 * Name checks: DNS names go to mbedtls_ssl_set_hostname (SAN or CN, and SNI). mbedTLS
 * 2.28 does not match IP SANs, so an IP literal is checked in the verify callback, on the
 * leaf certificate, against the raw iPAddress entries of its subjectAltName.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tm/tm_common.h"

/* The iPAddress choice of GeneralName: context-specific, primitive, tag 7 (RFC 5280). */
#define SAN_IP_TAG (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)

/* Forward secrecy and AEAD only, as the collectors' OpenSSL defaults offer them. */
static const int ciphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

struct tls_client {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct evbuffer *in, *out;
    int fd;
    bool eof; /* the input evbuffer will get no more */
    unsigned char ip[sizeof(struct in6_addr)];
    size_t iplen; /* 0: no IP to check */
};

/* mbedTLS's reason for code ret, as "what: reason". */
static int mbed_err(char *err, const char *what, const char *path, int ret)
{
    char buf[160];

    mbedtls_strerror(ret, buf, sizeof(buf));
    return tm_err(err, "%s '%s': %s", what, path, buf);
}

struct tls_client *tls_client_new(const char *ca_file, const char *cert_file, const char *key_file,
                                  char *err)
{
    static const unsigned char pers[] = "tm-agent tls";
    struct tls_client *c = calloc(1, sizeof(*c));
    int r;

    if (c == NULL) {
        tm_err(err, "cannot create a TLS client: out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    r = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, pers, sizeof(pers));
    if (r != 0) {
        mbed_err(err, "cannot seed the random generator", "entropy", r);
        goto fail;
    }
    if ((r = mbedtls_x509_crt_parse_file(&c->ca, ca_file)) != 0) {
        mbed_err(err, "cannot load CA", ca_file, r);
        goto fail;
    }
    r = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT);
    if (r != 0) {
        mbed_err(err, "cannot set up TLS", "defaults", r);
        goto fail;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3); /* TLS 1.2 */
    mbedtls_ssl_conf_ciphersuites(&c->conf, ciphersuites);
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    if (cert_file != NULL && cert_file[0] != '\0') {
        if ((r = mbedtls_x509_crt_parse_file(&c->cert, cert_file)) != 0) {
            mbed_err(err, "cannot load certificate", cert_file, r);
            goto fail;
        }
        if ((r = mbedtls_pk_parse_keyfile(&c->key, key_file, NULL)) != 0) {
            mbed_err(err, "cannot load private key", key_file, r);
            goto fail;
        }
        if (mbedtls_pk_check_pair(&c->cert.pk, &c->key) != 0) {
            tm_err(err, "private key '%s' does not match certificate '%s'", key_file, cert_file);
            goto fail;
        }
        if ((r = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key)) != 0) {
            mbed_err(err, "cannot use certificate", cert_file, r);
            goto fail;
        }
    }
    return c;
fail:
    tls_client_free(c);
    return NULL;
}

void tls_client_free(struct tls_client *c)
{
    if (c == NULL)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_pk_free(&c->key);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    free(c);
}

int tls_client_random(void *client, unsigned char *out, size_t len)
{
    struct tls_client *c = client;
    return mbedtls_ctr_drbg_random(&c->drbg, out, len);
}

/* ---- transports -------------------------------------------------------------------- */

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    struct tls_conn *t = arg;
    ssize_t n;

    if (t->out != NULL)
        return evbuffer_add(t->out, buf, len) == 0 ? (int)len : MBEDTLS_ERR_SSL_ALLOC_FAILED;
    do
        n = send(t->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? MBEDTLS_ERR_SSL_TIMEOUT
                                                   : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    struct tls_conn *t = arg;
    ssize_t n;

    if (t->in != NULL) {
        n = evbuffer_remove(t->in, buf, len);
        if (n > 0)
            return (int)n;
        return t->eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
    }
    do
        n = recv(t->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? MBEDTLS_ERR_SSL_TIMEOUT
                                                   : MBEDTLS_ERR_NET_RECV_FAILED;
}

void tls_conn_use_evbuffers(struct tls_conn *t, struct evbuffer *in, struct evbuffer *out)
{
    t->in = in;
    t->out = out;
    t->fd = -1;
}

void tls_conn_input_ended(struct tls_conn *t)
{
    t->eof = true;
}

void tls_conn_use_fd(struct tls_conn *t, int fd)
{
    t->in = t->out = NULL;
    t->fd = fd;
}

/* ---- connections ------------------------------------------------------------------- */

static bool has_ip_san(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next)
        if (s->buf.tag == SAN_IP_TAG && s->buf.len == iplen && memcmp(s->buf.p, ip, iplen) == 0)
            return true;
    return false;
}

static int verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_conn *t = arg;

    if (depth == 0 && t->iplen > 0 && !has_ip_san(crt, t->ip, t->iplen))
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

struct tls_conn *tls_conn_new(struct tls_client *c, const char *name, char *err)
{
    struct tls_conn *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        tm_err(err, "cannot create a TLS connection: out of memory");
        return NULL;
    }
    t->fd = -1;
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &c->conf) != 0) {
        tm_err(err, "cannot create a TLS connection: out of memory");
        goto fail;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    if (name != NULL) {
        if (inet_pton(AF_INET, name, t->ip) == 1)
            t->iplen = 4;
        else if (inet_pton(AF_INET6, name, t->ip) == 1)
            t->iplen = 16;
        else if (mbedtls_ssl_set_hostname(&t->ssl, name) != 0) {
            tm_err(err, "cannot expect the name '%s'", name);
            goto fail;
        }
        mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
    }
    return t;
fail:
    tls_conn_free(t);
    return NULL;
}

void tls_conn_free(struct tls_conn *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_free(&t->ssl);
    free(t);
}

/* What a fatal alert from the collector most likely means (RFC 5246, 7.2). */
static const char *alert_reason(int alert)
{
    switch (alert) {
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
        return "this agent's certificate is revoked: ask the CERT for a new one";
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
        return "this agent's certificate has expired";
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
    case MBEDTLS_SSL_ALERT_MSG_NO_CERT:
        return "it does not accept this agent's certificate: is it signed by the collectors' CA?";
    default:
        return "no TLS version or cipher in common, or it does not accept this agent's "
               "certificate";
    }
}

/* Why ret ended the connection, in words an operator can act on. */
static void describe(struct tls_conn *t, int ret, char *why, size_t whylen)
{
    char buf[512];

    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        int n = mbedtls_x509_crt_verify_info(buf, sizeof(buf), "", flags);

        if (n <= 0) /* more reasons than fit */
            n = snprintf(buf, sizeof(buf), "verify flags 0x%x", (unsigned)flags);
        /* One line per reason: "A\nB\n" becomes "A;B". */
        for (int i = 0; i < n && buf[i] != '\0'; i++)
            if (buf[i] == '\n')
                buf[i] = i + 1 < n ? ';' : '\0';
        snprintf(why, whylen, "certificate verify failed: %s", buf);
    } else if (ret == MBEDTLS_ERR_SSL_CONN_EOF) {
        /* How a collector refuses a certificate it does not trust or has revoked. */
        snprintf(why, whylen,
                 "the collector closed the TLS connection (if it persists: is this agent's "
                 "certificate enrolled, or was it revoked?)");
    } else if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        /* mbedTLS 2.28 keeps the record it failed on: [level, description]. */
        int alert = t->ssl.in_msg != NULL ? t->ssl.in_msg[1] : -1;
        snprintf(why, whylen, "the collector sent TLS alert %d (%s)", alert, alert_reason(alert));
    } else if (ret == MBEDTLS_ERR_SSL_TIMEOUT) {
        snprintf(why, whylen, "timed out");
    } else {
        mbedtls_strerror(ret, buf, sizeof(buf));
        snprintf(why, whylen, "%s", buf);
    }
}

int tls_conn_handshake(struct tls_conn *t, char *why, size_t whylen)
{
    int r = mbedtls_ssl_handshake(&t->ssl);

    if (r == 0)
        return 1;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_AGAIN;
    describe(t, r, why, whylen);
    return -1;
}

int tls_conn_send(struct tls_conn *t, const void *data, size_t len, char *why, size_t whylen)
{
    const unsigned char *p = data;

    while (len > 0) {
        int r = mbedtls_ssl_write(&t->ssl, p, len);
        if (r <= 0) {
            /* Neither transport asks to be called again: evbuffers take everything. */
            describe(t, r, why, whylen);
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int tls_conn_send_buffer(struct tls_conn *t, struct evbuffer *buf, char *why, size_t whylen)
{
    unsigned char chunk[16384]; /* one record's worth */
    int n;

    while ((n = evbuffer_remove(buf, chunk, sizeof(chunk))) > 0)
        if (tls_conn_send(t, chunk, (size_t)n, why, whylen) != 0)
            return -1;
    return 0;
}

int tls_conn_recv(struct tls_conn *t, void *buf, size_t len, char *why, size_t whylen)
{
    int r = mbedtls_ssl_read(&t->ssl, buf, len);

    if (r > 0)
        return r;
    if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF)
        return 0;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_AGAIN;
    describe(t, r, why, whylen);
    return -1;
}
