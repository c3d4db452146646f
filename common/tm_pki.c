/*
 * tm_pki.c - keys, CA, requests and certificates with libcrypto (tm_pki.h). Extensions
 * are added through X509V3_EXT_conf_nid with the same text openssl.cnf would use, so
 * what a certificate carries reads the same here as in `openssl x509 -text`. OpenSSL's
 * error queue is drained into err on every failure and cleared, so one failed request
 * does not leave stale errors for the next (the collector signs many).
 */
#include "tm/tm_pki.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tm/tm_file.h"

/* Seconds a certificate is valid before "now", for clocks a little behind. */
#define BACKDATE_S 300

static void *pki_fail(char *err, const char *what)
{
    char buf[200];
    unsigned long e = ERR_get_error();

    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        tm_err(err, "%s: %s", what, buf);
    } else {
        tm_err(err, "%s", what);
    }
    ERR_clear_error();
    return NULL;
}

EVP_PKEY *tm_pki_key_new(char *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");

    if (key == NULL)
        return pki_fail(err, "cannot make an EC P-256 key");
    return key;
}

static int set_serial(X509 *x)
{
    unsigned char b[20];
    BIGNUM *bn;
    int rc = -1;

    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[0] &= 0x7f; /* positive */
    b[0] |= 0x01; /* and never zero, nor shorter than 19 bytes */
    bn = BN_bin2bn(b, sizeof(b), NULL);
    if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
        rc = 0;
    BN_free(bn);
    return rc;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

static int set_cn(X509_NAME *name, const char *cn)
{
    return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                      0) == 1
               ? 0
               : -1;
}

/* A certificate with version 3, a random serial, subject CN=cn, validity and key pub. */
static X509 *cert_base(EVP_PKEY *pub, const char *cn, int days)
{
    X509 *x = X509_new();

    if (x == NULL || X509_set_version(x, 2) != 1 || set_serial(x) != 0 ||
        set_cn(X509_get_subject_name(x), cn) != 0 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL ||
        X509_set_pubkey(x, pub) != 1) {
        X509_free(x);
        return NULL;
    }
    return x;
}

X509 *tm_pki_ca_new(EVP_PKEY *key, const char *cn, int days, char *err)
{
    X509 *x;

    if (days < 1 || days > 36500) {
        tm_err(err, "CA validity of %d days: expected 1 to 36500", days);
        return NULL;
    }
    x = cert_base(key, cn, days);
    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") != 0 ||
        X509_sign(x, key, EVP_sha256()) == 0) {
        X509_free(x);
        return pki_fail(err, "cannot make the CA certificate");
    }
    return x;
}

X509_REQ *tm_pki_csr_new(EVP_PKEY *key, const char *cn, char *err)
{
    X509_REQ *req = X509_REQ_new();

    if (req == NULL || X509_REQ_set_version(req, 0) != 1 ||
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                   (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) == 0) {
        X509_REQ_free(req);
        return pki_fail(err, "cannot make the certificate request");
    }
    return req;
}

/* Is key one we sign for? 0, or -1 with the reason. */
static int key_acceptable(EVP_PKEY *key, char *err)
{
    int id = EVP_PKEY_get_base_id(key), bits = EVP_PKEY_get_bits(key);

    if (id == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0 &&
             strcmp(group, "secp384r1") != 0 && strcmp(group, "P-384") != 0))
            return tm_err(err, "EC key on curve '%s': expected P-256 or P-384", group);
        return 0;
    }
    if (id == EVP_PKEY_RSA) {
        if (bits < 2048 || bits > 8192)
            return tm_err(err, "RSA key of %d bits: expected 2048 to 8192", bits);
        return 0;
    }
    return tm_err(err, "key type %d: expected EC P-256/P-384 or RSA", id);
}

X509_REQ *tm_pki_csr_parse(const char *pem, size_t len, char *err)
{
    BIO *bio;
    X509_REQ *req;
    EVP_PKEY *pub;

    if (len == 0 || len > TM_PKI_PEM_MAX) {
        tm_err(err, "certificate request of %zu bytes: expected 1 to %d", len, TM_PKI_PEM_MAX);
        return NULL;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (req == NULL)
        return pki_fail(err, "not a PEM certificate request");
    pub = X509_REQ_get0_pubkey(req);
    if (pub == NULL) {
        X509_REQ_free(req);
        return pki_fail(err, "the certificate request has no usable key");
    }
    if (key_acceptable(pub, err) != 0) {
        X509_REQ_free(req);
        ERR_clear_error();
        return NULL;
    }
    if (X509_REQ_verify(req, pub) != 1) {
        X509_REQ_free(req);
        return pki_fail(err, "the certificate request's signature does not verify");
    }
    return req;
}

/* Writes "DNS:a,DNS:b,IP:1.2.3.4" into buf. -1 when a name is unfit or it does not fit. */
static int san_text(char *buf, size_t len, const char *cn, const char *const *dns, size_t ndns,
                    const char *const *ips, size_t nips)
{
    size_t pos = 0;

    if (ndns == 0) {
        dns = &cn;
        ndns = 1;
    }
    for (size_t i = 0; i < ndns + nips; i++) {
        bool is_dns = i < ndns;
        const char *v = is_dns ? dns[i] : ips[i - ndns];
        unsigned char bin[16];
        int n;

        if (is_dns && (v[0] == '\0' || strlen(v) > 253 || strpbrk(v, ",:\\ \t\r\n") != NULL))
            return -1;
        if (!is_dns && inet_pton(AF_INET, v, bin) != 1 && inet_pton(AF_INET6, v, bin) != 1)
            return -1;
        n = snprintf(buf + pos, len - pos, "%s%s:%s", pos > 0 ? "," : "", is_dns ? "DNS" : "IP", v);
        if (n < 0 || (size_t)n >= len - pos)
            return -1;
        pos += (size_t)n;
    }
    return 0;
}

X509 *tm_pki_issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *pub, enum tm_pki_kind kind, const char *cn,
                   const char *const *dns, size_t ndns, const char *const *ips, size_t nips,
                   int days, char *err)
{
    char san[4096], ku[64];
    X509 *x = NULL;
    int rc;

    if (days < 1 || days > 3650) {
        tm_err(err, "certificate validity of %d days: expected 1 to 3650", days);
        return NULL;
    }
    if (key_acceptable(pub, err) != 0)
        return NULL;
    if (X509_check_private_key(ca, ca_key) != 1)
        return pki_fail(err, "the CA key does not match the CA certificate");
    if (san_text(san, sizeof(san), cn, dns, ndns, ips, nips) != 0) {
        tm_err(err, "bad certificate names (DNS names and IP addresses)");
        return NULL;
    }
    snprintf(ku, sizeof(ku), "critical,digitalSignature%s",
             EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA ? ",keyEncipherment" : "");
    x = cert_base(pub, cn, days);
    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1)
        goto fail;
    /* Never valid past the CA: a client would refuse the chain anyway. */
    if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0 &&
        X509_set1_notAfter(x, X509_get0_notAfter(ca)) != 1)
        goto fail;
    rc = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
    rc |= add_ext(x, ca, NID_key_usage, ku);
    rc |= add_ext(x, ca, NID_ext_key_usage, kind == TM_PKI_SERVER ? "serverAuth" : "clientAuth");
    rc |= add_ext(x, ca, NID_subject_alt_name, san);
    rc |= add_ext(x, ca, NID_subject_key_identifier, "hash");
    rc |= add_ext(x, ca, NID_authority_key_identifier, "keyid:always");
    if (rc != 0 || X509_sign(x, ca_key, EVP_sha256()) == 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return pki_fail(err, "cannot issue the certificate");
}

int tm_pki_verify(X509 *ca, X509 *cert, enum tm_pki_kind kind, char *err)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = -1;

    if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
        X509_STORE_CTX_init(ctx, store, cert, NULL) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, kind == TM_PKI_SERVER ? X509_PURPOSE_SSL_SERVER
                                                              : X509_PURPOSE_SSL_CLIENT) != 1) {
        pki_fail(err, "cannot set up verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        tm_err(err, "certificate does not verify: %s",
               X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        ERR_clear_error();
        goto out;
    }
    rc = 0;
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

/* The contents of a memory BIO as a malloc'd string. */
static char *bio_text(BIO *bio, size_t *len)
{
    char *data = NULL, *out;
    long n = BIO_get_mem_data(bio, &data);

    if (n < 0 || (out = malloc((size_t)n + 1)) == NULL)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return out;
}

char *tm_pki_cert_pem(X509 *cert, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;

    if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
        out = bio_text(bio, len);
    BIO_free(bio);
    return out;
}

char *tm_pki_key_pem(EVP_PKEY *key, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_secmem());
    char *out = NULL;

    if (bio == NULL)
        bio = BIO_new(BIO_s_mem());
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
        out = bio_text(bio, len);
    BIO_free(bio); /* a secure-memory BIO wipes what it held */
    return out;
}

char *tm_pki_csr_pem(X509_REQ *req, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;

    if (bio != NULL && PEM_write_bio_X509_REQ(bio, req) == 1)
        out = bio_text(bio, len);
    BIO_free(bio);
    return out;
}

X509 *tm_pki_cert_parse(const char *pem, size_t len, char *err)
{
    BIO *bio;
    X509 *x;

    if (len == 0 || len > TM_PKI_PEM_MAX) {
        tm_err(err, "certificate of %zu bytes: expected 1 to %d", len, TM_PKI_PEM_MAX);
        return NULL;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (x == NULL)
        return pki_fail(err, "not a PEM certificate");
    return x;
}

X509 *tm_pki_cert_load(const char *path, char *err)
{
    char *text = NULL, reason[TM_ERR_LEN];
    size_t len = 0;
    X509 *x;

    if (tm_file_read(path, TM_PKI_PEM_MAX, false, &text, &len, err) != 0)
        return NULL;
    x = tm_pki_cert_parse(text, len, reason);
    free(text);
    if (x == NULL)
        tm_err(err, "'%s': %s", path, reason);
    return x;
}

EVP_PKEY *tm_pki_key_load(const char *path, char *err)
{
    char *text = NULL;
    size_t len = 0;
    BIO *bio;
    EVP_PKEY *key = NULL;

    if (tm_file_read(path, TM_PKI_PEM_MAX, false, &text, &len, err) != 0)
        return NULL;
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio != NULL)
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(text, len);
    free(text);
    if (key == NULL) {
        char what[300];
        snprintf(what, sizeof(what), "'%.200s' is not a PEM private key", path);
        return pki_fail(err, what);
    }
    return key;
}

int tm_pki_cert_cn(X509 *cert, char *out, size_t outlen)
{
    int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)outlen);

    if (n <= 0 || (size_t)n >= outlen || (size_t)n != strlen(out)) {
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

void tm_pki_fingerprint(X509 *cert, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    out[0] = '\0';
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1)
        return;
    for (unsigned int i = 0, pos = 0; i < n && i < 32; i++)
        pos += (unsigned)snprintf(out + pos, TM_PKI_FINGERPRINT_LEN - pos, "%s%02X",
                                  i > 0 ? ":" : "", md[i]);
}

int tm_pki_not_after(X509 *cert, int64_t *ms)
{
    struct tm t;

    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t) != 1)
        return -1;
    *ms = (int64_t)timegm(&t) * 1000;
    return 0;
}
