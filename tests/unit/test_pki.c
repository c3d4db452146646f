/*
 * test_pki.c - the enrollment CA: a CA certificate with CA:TRUE and keyCertSign; a
 * request made with one key and signed into a client certificate that carries the
 * issuer's chosen name (not the request's), verifies against the CA as a TLS client and
 * not as a server; a server certificate with DNS and IP names; a request whose signature
 * was tampered with, a weak key and garbage are refused; PEM round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_pki.h"
#include "tm/tm_time.h"

struct ca {
    EVP_PKEY *key;
    X509 *cert;
};

static void make_ca(struct ca *ca, int days)
{
    char err[TM_ERR_LEN];

    ca->key = tm_pki_key_new(err);
    assert_non_null(ca->key);
    ca->cert = tm_pki_ca_new(ca->key, "tm test CA", days, err);
    if (ca->cert == NULL)
        fail_msg("%s", err);
}

static void free_ca(struct ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

static void test_pki_ca_extensions(void **state)
{
    struct ca ca;
    char cn[64], err[TM_ERR_LEN], fp[TM_PKI_FINGERPRINT_LEN];
    int64_t na;
    (void)state;

    make_ca(&ca, 3650);
    assert_int_equal(X509_check_ca(ca.cert), 1);
    assert_true(X509_get_key_usage(ca.cert) & KU_KEY_CERT_SIGN);
    assert_true(X509_get_key_usage(ca.cert) & KU_CRL_SIGN);
    assert_int_equal(tm_pki_cert_cn(ca.cert, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "tm test CA");
    assert_int_equal(tm_pki_not_after(ca.cert, &na), 0);
    assert_true(na > tm_time_now_ms() + 3649LL * 86400000);
    assert_true(na < tm_time_now_ms() + 3651LL * 86400000);
    /* self-signed: verifies against itself */
    assert_int_equal(X509_verify(ca.cert, ca.key), 1);
    tm_pki_fingerprint(ca.cert, fp);
    assert_int_equal(strlen(fp), 95);
    assert_int_equal(fp[2], ':');
    assert_null(tm_pki_ca_new(ca.key, "x", 0, err));
    free_ca(&ca);
}

static void test_pki_issue_client_from_csr(void **state)
{
    struct ca ca;
    EVP_PKEY *agent_key;
    X509_REQ *req, *parsed;
    X509 *cert, *back;
    char err[TM_ERR_LEN], cn[128], *pem, *cpem;
    size_t len, clen;
    (void)state;

    make_ca(&ca, 30);
    agent_key = tm_pki_key_new(err);
    assert_non_null(agent_key);
    req = tm_pki_csr_new(agent_key, "whatever-the-agent-says", err);
    assert_non_null(req);
    pem = tm_pki_csr_pem(req, &len);
    assert_non_null(pem);
    assert_non_null(strstr(pem, "BEGIN CERTIFICATE REQUEST"));
    parsed = tm_pki_csr_parse(pem, len, err);
    if (parsed == NULL)
        fail_msg("%s", err);
    cert = tm_pki_issue(ca.cert, ca.key, X509_REQ_get0_pubkey(parsed), TM_PKI_CLIENT,
                        "ua-water-kyiv-0a1b2c3d.agents.tm", NULL, 0, NULL, 0, 365, err);
    if (cert == NULL)
        fail_msg("%s", err);
    /* the name is the issuer's, the key the agent's */
    assert_int_equal(tm_pki_cert_cn(cert, cn, sizeof(cn)), 0);
    assert_string_equal(cn, "ua-water-kyiv-0a1b2c3d.agents.tm");
    assert_int_equal(X509_check_host(cert, "ua-water-kyiv-0a1b2c3d.agents.tm", 0, 0, NULL), 1);
    assert_int_equal(X509_check_private_key(cert, agent_key), 1);
    assert_int_equal(X509_check_ca(cert), 0);
    /* validity capped at the CA's end */
    assert_true(ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(ca.cert)) <= 0);
    assert_int_equal(tm_pki_verify(ca.cert, cert, TM_PKI_CLIENT, err), 0);
    assert_int_equal(tm_pki_verify(ca.cert, cert, TM_PKI_SERVER, err), -1);
    /* PEM round trip */
    cpem = tm_pki_cert_pem(cert, &clen);
    assert_non_null(cpem);
    back = tm_pki_cert_parse(cpem, clen, err);
    assert_non_null(back);
    assert_int_equal(X509_cmp(back, cert), 0);
    /* a different CA does not vouch for it */
    {
        struct ca other;
        make_ca(&other, 30);
        assert_int_equal(tm_pki_verify(other.cert, cert, TM_PKI_CLIENT, err), -1);
        free_ca(&other);
    }
    X509_free(back);
    free(cpem);
    X509_free(cert);
    X509_REQ_free(parsed);
    X509_REQ_free(req);
    free(pem);
    EVP_PKEY_free(agent_key);
    free_ca(&ca);
}

static void test_pki_server_cert_names(void **state)
{
    static const char *const dns[] = {"collector.test", "collector2.test"};
    static const char *const ips[] = {"127.0.0.1", "::1"};
    struct ca ca;
    EVP_PKEY *key;
    X509 *cert;
    char err[TM_ERR_LEN];
    (void)state;

    make_ca(&ca, 30);
    key = tm_pki_key_new(err);
    cert = tm_pki_issue(ca.cert, ca.key, key, TM_PKI_SERVER, "collector.test", dns, 2, ips, 2, 30,
                        err);
    if (cert == NULL)
        fail_msg("%s", err);
    assert_int_equal(tm_pki_verify(ca.cert, cert, TM_PKI_SERVER, err), 0);
    assert_int_equal(X509_check_host(cert, "collector2.test", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.2", 0), 0);
    X509_free(cert);
    /* names that would smuggle other SAN entries are refused */
    {
        static const char *const evil[] = {"a.test,IP:10.0.0.1"};
        static const char *const badip[] = {"300.1.1.1"};
        assert_null(
            tm_pki_issue(ca.cert, ca.key, key, TM_PKI_SERVER, "x", evil, 1, NULL, 0, 30, err));
        assert_null(
            tm_pki_issue(ca.cert, ca.key, key, TM_PKI_SERVER, "x", NULL, 0, badip, 1, 30, err));
    }
    /* a CA key that is not the CA certificate's */
    assert_null(
        tm_pki_issue(ca.cert, key, key, TM_PKI_CLIENT, "x.test", NULL, 0, NULL, 0, 30, err));
    EVP_PKEY_free(key);
    free_ca(&ca);
}

static void test_pki_refuses_bad_requests(void **state)
{
    EVP_PKEY *key, *weak;
    X509_REQ *req;
    char err[TM_ERR_LEN], *pem, *p;
    size_t len;
    (void)state;

    assert_null(tm_pki_csr_parse("garbage", 7, err));
    assert_null(tm_pki_csr_parse("", 0, err));
    /* a tampered subject: the signature no longer verifies */
    key = tm_pki_key_new(err);
    req = tm_pki_csr_new(key, "aaaaaaaaaaaaaaaa", err);
    pem = tm_pki_csr_pem(req, &len);
    X509_REQ_free(req);
    {
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        X509_REQ *r = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
        unsigned char *der = NULL, *q;
        int dlen = i2d_X509_REQ(r, &der);
        BIO *out = BIO_new(BIO_s_mem());
        const unsigned char *cq;
        X509_REQ *t;
        char *data;
        long n;

        /* flip one byte of the CN inside the signed part */
        q = memmem(der, (size_t)dlen, "aaaaaaaa", 8);
        assert_non_null(q);
        q[0] = 'b';
        cq = der;
        t = d2i_X509_REQ(NULL, &cq, dlen);
        assert_non_null(t);
        PEM_write_bio_X509_REQ(out, t);
        n = BIO_get_mem_data(out, &data);
        assert_null(tm_pki_csr_parse(data, (size_t)n, err));
        assert_non_null(strstr(err, "signature"));
        X509_REQ_free(t);
        BIO_free(out);
        OPENSSL_free(der);
        X509_REQ_free(r);
        BIO_free(bio);
    }
    free(pem);
    /* an RSA key of 1024 bits is too weak */
    weak = EVP_RSA_gen(1024);
    assert_non_null(weak);
    req = tm_pki_csr_new(weak, "weak", err);
    assert_non_null(req);
    pem = tm_pki_csr_pem(req, &len);
    assert_null(tm_pki_csr_parse(pem, len, err));
    assert_non_null(strstr(err, "1024"));
    p = pem;
    free(p);
    X509_REQ_free(req);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pki_ca_extensions),
        cmocka_unit_test(test_pki_issue_client_from_csr),
        cmocka_unit_test(test_pki_server_cert_names),
        cmocka_unit_test(test_pki_refuses_bad_requests),
    };
    return cmocka_run_group_tests_name("pki", tests, NULL, NULL);
}
