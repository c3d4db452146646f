/*
 * tm_pki.h - the little certificate authority of enrollment, on OpenSSL's libcrypto:
 * P-256 keys, a self-signed CA, certificate requests, and certificates issued from them
 * for agents (clientAuth) and collectors (serverAuth). Used by tmctl (ca init, enroll,
 * ca server-cert), tm-collector (signing a request it got with an enrollment token) and
 * tm-agent (key and request, made on the agent's host; the key never leaves it).
 *
 * What a certificate says is decided here, not by the request: the issuer takes only the
 * public key from a request (after checking its self-signature and that the key is
 * P-256, P-384 or RSA of 2048 bits or more); subject, names, validity and extensions come
 * from the caller. Serial numbers are 159 random bits, so there is no serial file to keep.
 * Validity starts 5 minutes in the past (clocks drift) and lasts the given days.
 *
 * Objects are OpenSSL's: free with EVP_PKEY_free, X509_free, X509_REQ_free. PEM text is
 * returned malloc'd and NUL-terminated; a private key's PEM should be wiped
 * (OPENSSL_cleanse) before it is freed.
 */
#ifndef TM_PKI_H
#define TM_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"

/* Largest PEM object read (a request, a certificate, a key). */
#define TM_PKI_PEM_MAX (64 * 1024)
/* "AB:CD:..." SHA-256 fingerprint: 32 bytes, 95 characters, NUL. */
#define TM_PKI_FINGERPRINT_LEN 96

enum tm_pki_kind {
    TM_PKI_CLIENT, /* an agent: extendedKeyUsage clientAuth */
    TM_PKI_SERVER, /* a collector: extendedKeyUsage serverAuth */
};

/* A new EC P-256 key pair. NULL with err. */
EVP_PKEY *tm_pki_key_new(char *err);

/*
 * A self-signed CA certificate for key: subject CN=cn, basicConstraints critical CA:TRUE
 * with pathlen 0, keyUsage critical keyCertSign and cRLSign, subject and authority key
 * identifiers, valid for days. NULL with err.
 */
X509 *tm_pki_ca_new(EVP_PKEY *key, const char *cn, int days, char *err);

/* A certificate request for key with subject CN=cn, signed with it (SHA-256). NULL with err. */
X509_REQ *tm_pki_csr_new(EVP_PKEY *key, const char *cn, char *err);

/*
 * Reads a PEM certificate request from pem[0..len) and checks it: its signature verifies
 * with its own key, and the key is acceptable (see above). NULL with the reason in err.
 */
X509_REQ *tm_pki_csr_parse(const char *pem, size_t len, char *err);

/*
 * Issues a certificate for the public key pub, signed by ca/ca_key: subject CN=cn; SAN
 * with the DNS names dns[0..ndns) and IP addresses ips[0..nips) (cn is the only DNS name
 * when ndns is 0); basicConstraints critical CA:FALSE; keyUsage critical
 * digitalSignature (and keyEncipherment for RSA keys); extendedKeyUsage by kind; key
 * identifiers. Valid for days, but never past the CA's own end. NULL with err.
 */
X509 *tm_pki_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *pub, enum tm_pki_kind kind, const char *cn,
                   const char *const *dns, size_t ndns, const char *const *ips, size_t nips,
                   int days, char *err);

/*
 * Verifies that cert chains to ca (the only trust anchor) and is fit for kind (client or
 * server TLS). Returns 0, or -1 with OpenSSL's reason in err.
 */
int tm_pki_verify(X509 *ca, X509 *cert, enum tm_pki_kind kind, char *err);

/* PEM text of a certificate, a private key (PKCS#8, unencrypted), a request. NULL on failure. */
char *tm_pki_cert_pem(X509 *cert, size_t *len);
char *tm_pki_key_pem(EVP_PKEY *key, size_t *len);
char *tm_pki_csr_pem(X509_REQ *req, size_t *len);

/* The first certificate of PEM text / of a PEM file. NULL with err. */
X509 *tm_pki_cert_parse(const char *pem, size_t len, char *err);
X509 *tm_pki_cert_load(const char *path, char *err);

/* A PEM private key file. NULL with err. */
EVP_PKEY *tm_pki_key_load(const char *path, char *err);

/* Subject CN of cert into out. Returns 0, or -1 when it has none or it does not fit. */
int tm_pki_cert_cn(X509 *cert, char *out, size_t outlen);

/* "AB:CD:..." SHA-256 fingerprint of cert's DER into out (TM_PKI_FINGERPRINT_LEN bytes). */
void tm_pki_fingerprint(X509 *cert, char *out);

/* notAfter of cert as Unix milliseconds. Returns 0 or -1. */
int tm_pki_not_after(X509 *cert, int64_t *ms);

#endif
