/*
 * tls.c - OpenSSL setup for the collector's listeners. libevent's bufferevent_openssl does
 * the I/O; this file only builds the context and reads names off a verified client
 * certificate. A certificate is only trusted for its names after OpenSSL verified it
 * against the configured CA (SSL_get_verify_result == X509_V_OK).
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "tm/tm_common.h"

static int ssl_err(char *err, const char *what, const char *path)
{
    char buf[256];

    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    ERR_clear_error();
    return tm_err(err, "%s '%s': %s", what, path, buf);
}

SSL_CTX *tls_server_ctx_create(const char *cert, const char *key, const char *ca,
                               bool require_client_cert, char *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        tm_err(err, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_err(err, "cannot load certificate", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, "cannot load private key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, "private key does not match certificate", cert);
        goto fail;
    }
    if (ca[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            ssl_err(err, "cannot load CA", ca);
            goto fail;
        }
        SSL_CTX_set_verify(
            ctx, SSL_VERIFY_PEER | (require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_peer_names(SSL *ssl, char names[][TLS_NAME_LEN], int max)
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    int n = 0;

    if (peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK)
        n = tls_cert_names(peer, names, max);
    X509_free(peer);
    return n;
}

int tls_cert_names(X509 *peer, char names[][TLS_NAME_LEN], int max)
{
    GENERAL_NAMES *sans;
    int n = 0;

    sans = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans) && n < max; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const unsigned char *s;
        int len;

        if (g->type != GEN_DNS)
            continue;
        s = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        /* Refuse names with embedded NULs: they are how certificate spoofing works. */
        if (len <= 0 || len >= TLS_NAME_LEN || memchr(s, '\0', (size_t)len) != NULL)
            continue;
        memcpy(names[n], s, (size_t)len);
        names[n++][len] = '\0';
    }
    GENERAL_NAMES_free(sans);
    if (n < max) {
        X509_NAME *subj = X509_get_subject_name(peer);
        int len = X509_NAME_get_text_by_NID(subj, NID_commonName, names[n], TLS_NAME_LEN);
        if (len > 0 && (size_t)len == strlen(names[n]))
            n++;
    }
    return n;
}
