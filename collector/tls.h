/*
 * tls.h - the collector's OpenSSL server context and the names a client certificate
 * carries (SAN DNS names first, then the subject CN), used to look up its identity.
 */
#ifndef COLLECTOR_TLS_H
#define COLLECTOR_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#define TLS_MAX_NAMES 8
#define TLS_NAME_LEN 256

/*
 * Creates a server context: TLS 1.2 at least (1.3 preferred by OpenSSL), the certificate
 * and key, and, when ca is not empty, verification of client certificates against it
 * (required when require_client_cert). Returns NULL with err.
 */
SSL_CTX *tls_server_ctx_create(const char *cert, const char *key, const char *ca,
                               bool require_client_cert, char *err);

/* Fills up to max names of the verified peer certificate. Returns how many (0: none). */
int tls_peer_names(SSL *ssl, char names[][TLS_NAME_LEN], int max);
/* The same for a certificate (that the caller has verified). */
int tls_cert_names(X509 *cert, char names[][TLS_NAME_LEN], int max);

#endif
