/*
 * cmd_ca.c - `tmctl ca init` makes the enrollment CA that signs agents' (and collectors')
 * certificates; `tmctl ca server-cert` issues a collector's TLS certificate from it, so
 * agents that pin ca.crt can check the collector. docs/enrollment.md.
 *
 * The CA is a directory: ca.crt (0644) and ca.key (0600). Init never overwrites: both
 * files are created with link(2) from a temporary file, which fails when the name exists,
 * and a CA directory that has either file already is refused before anything is made.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tm/tm_config.h"
#include "tm/tm_file.h"
#include "tm/tm_pki.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define CA_MAX_NAMES 16

static void usage(FILE *f)
{
    fprintf(f, "usage: tmctl ca init [--dir DIR] [--days N] [--cn NAME]\n"
               "       tmctl ca server-cert --dns NAME [--dns NAME ...] [--ip ADDR ...]\n"
               "                            [--out DIR] [--days N] [--dir DIR]\n"
               "\n"
               "init: a new enrollment CA in DIR ([ca] dir): ca.crt, ca.key (mode 0600),\n"
               "EC P-256, valid --days (3650). Refuses a DIR that has a CA already.\n"
               "server-cert: a collector's TLS certificate for the names given, signed by\n"
               "the CA: OUT/server.crt, OUT/server.key (0600). OUT defaults to '.'.\n");
}

static int path_in(char *out, size_t len, const char *dir, const char *name)
{
    if (snprintf(out, len, "%s/%s", dir, name) >= (int)len) {
        ctl_error("path '%s/%s' is too long", dir, name);
        return -1;
    }
    return 0;
}

int ctl_ca_load(const char *dir, X509 **cert, EVP_PKEY **key, char *err)
{
    char cpath[600], kpath[600];

    *cert = NULL;
    *key = NULL;
    snprintf(cpath, sizeof(cpath), "%s/ca.crt", dir);
    snprintf(kpath, sizeof(kpath), "%s/ca.key", dir);
    *cert = tm_pki_cert_load(cpath, err);
    if (*cert == NULL)
        return -1;
    *key = tm_pki_key_load(kpath, err);
    if (*key == NULL || X509_check_private_key(*cert, *key) != 1) {
        if (*key != NULL)
            tm_err(err, "'%s' is not the key of '%s'", kpath, cpath);
        X509_free(*cert);
        EVP_PKEY_free(*key);
        *cert = NULL;
        *key = NULL;
        return -1;
    }
    return 0;
}

/* Writes PEM text to a new file (never replacing one). Returns 0 or -1 (reported). */
static int write_new(const char *path, const char *pem, size_t len, mode_t mode)
{
    char err[TM_ERR_LEN];

    if (tm_file_write_atomic(path, pem, len, mode, TM_FILE_NO_REPLACE, err) != 0) {
        ctl_error("%s", err);
        return -1;
    }
    return 0;
}

/*
 * Writes key (0600) and cert (0644) as PEM to new files kpath and cpath; the key file goes
 * again if the certificate cannot be written. Returns 0 or -1 (reported).
 */
static int write_pair(EVP_PKEY *key, X509 *cert, const char *kpath, const char *cpath)
{
    size_t klen = 0, clen = 0;
    char *kpem = tm_pki_key_pem(key, &klen), *cpem = tm_pki_cert_pem(cert, &clen);
    int rc = -1;

    if (kpem == NULL || cpem == NULL)
        ctl_error("out of memory");
    else if (write_new(kpath, kpem, klen, 0600) == 0) {
        if (write_new(cpath, cpem, clen, 0644) == 0)
            rc = 0;
        else
            unlink(kpath);
    }
    if (kpem != NULL) {
        OPENSSL_cleanse(kpem, klen);
        free(kpem);
    }
    free(cpem);
    return rc;
}

/* Parses --days. Returns 0 or -1 (reported). */
static int parse_days(const char *s, int64_t max, int *out)
{
    int64_t v;

    if (tm_parse_int64(s, 1, max, &v) != 0) {
        ctl_error("--days '%s': expected a whole number of days, 1 to %lld", s, (long long)max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int ca_init(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"days", required_argument, NULL, 'n'},
        {"cn", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = c->cfg.ca_dir, *cn = "tm-telemetry enrollment CA";
    char cpath[600], kpath[600], err[TM_ERR_LEN], fp[TM_PKI_FINGERPRINT_LEN], when[TM_TIME_LEN];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    int days = 3650, opt, rc = 1;
    int64_t not_after = 0;
    struct stat st;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 'n' && parse_days(optarg, 36500, &days) == 0)
            continue;
        else if (opt == 'C')
            cn = optarg;
        else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc || dir[0] == '\0') {
        usage(stderr);
        return 2;
    }
    if (path_in(cpath, sizeof(cpath), dir, "ca.crt") != 0 ||
        path_in(kpath, sizeof(kpath), dir, "ca.key") != 0)
        return 1;
    if (stat(cpath, &st) == 0 || stat(kpath, &st) == 0) {
        ctl_error("'%s' already holds a CA (ca.crt or ca.key); refusing to replace it", dir);
        return 1;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        ctl_error("cannot create '%s': %s", dir, strerror(errno));
        return 1;
    }
    key = tm_pki_key_new(err);
    cert = key != NULL ? tm_pki_ca_new(key, cn, days, err) : NULL;
    if (cert == NULL) {
        ctl_error("%s", err);
        goto out;
    }
    if (write_pair(key, cert, kpath, cpath) != 0)
        goto out;
    tm_pki_fingerprint(cert, fp);
    tm_pki_not_after(cert, &not_after);
    tm_time_format(not_after, when, sizeof(when));
    fprintf(c->out, "ca: %s\nkey: %s\nsubject: CN=%s\nsha256: %s\nnot_after: %s\n", cpath, kpath,
            cn, fp, when);
    fprintf(stderr,
            "tmctl: keep %s secret (mode 0600). Give ca.crt to agents and collectors; see "
            "docs/enrollment.md for who needs the key.\n",
            kpath);
    rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

static int server_cert(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},
        {"dns", required_argument, NULL, 'D'},
        {"ip", required_argument, NULL, 'I'},
        {"days", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = c->cfg.ca_dir, *out = ".";
    const char *dns[CA_MAX_NAMES], *ips[CA_MAX_NAMES];
    size_t ndns = 0, nips = 0;
    char cpath[600], kpath[600], err[TM_ERR_LEN], when[TM_TIME_LEN];
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    int days = (int)c->cfg.cert_days, opt, rc = 1;
    int64_t not_after = 0;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 'o')
            out = optarg;
        else if (opt == 'D' && ndns < CA_MAX_NAMES)
            dns[ndns++] = optarg;
        else if (opt == 'I' && nips < CA_MAX_NAMES)
            ips[nips++] = optarg;
        else if (opt == 'n' && parse_days(optarg, 3650, &days) == 0)
            continue;
        else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc || ndns == 0) {
        usage(stderr);
        return 2;
    }
    if (path_in(cpath, sizeof(cpath), out, "server.crt") != 0 ||
        path_in(kpath, sizeof(kpath), out, "server.key") != 0)
        return 1;
    if (ctl_ca_load(dir, &ca, &ca_key, err) != 0) {
        ctl_error("%s", err);
        return 1;
    }
    key = tm_pki_key_new(err);
    cert = key != NULL ? tm_pki_issue(ca, ca_key, key, TM_PKI_SERVER, dns[0], dns, ndns, ips, nips,
                                      days, err)
                       : NULL;
    if (cert == NULL) {
        ctl_error("%s", err);
        goto out;
    }
    if (write_pair(key, cert, kpath, cpath) != 0)
        goto out;
    tm_pki_not_after(cert, &not_after);
    tm_time_format(not_after, when, sizeof(when));
    fprintf(c->out, "cert: %s\nkey: %s\nsubject: CN=%s\nnot_after: %s\n", cpath, kpath, dns[0],
            when);
    rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

int ctl_cmd_ca(struct ctl *c, int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[0], "init") == 0)
        return ca_init(c, argc, argv);
    if (strcmp(argv[0], "server-cert") == 0)
        return server_cert(c, argc, argv);
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    ctl_error("unknown ca command '%s'", argv[0]);
    usage(stderr);
    return 2;
}
