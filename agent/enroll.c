/*
 * enroll.c - `tm-agent enroll`: trades a one-time enrollment token for this agent's
 * certificate (docs/enrollment.md). The key pair (EC P-256) and the certificate request
 * are made here and the private key never leaves the host: only the request goes to the
 * collector, over TLS, with the token as a bearer credential. The collector's certificate
 * must chain to the CA file given (--ca, the only trust anchor) and name the collector's
 * address (or --server-name), as the shipper checks it.
 *
 * One blocking exchange: connect (with a timeout), TLS handshake, one HTTP/1.1 POST
 * /v1/enroll with Connection: close, read the answer (at most 64 KiB) until its
 * Content-Length or EOF. On 200 the certificate is checked against the key made here,
 * then agent.key (0600), agent.crt and ca.crt (a copy of the pinned CA, what the agent
 * config's tls_ca wants) are written atomically into --out; nothing is written on any
 * failure. The token is never printed or logged; its buffers are wiped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "ship.h"
#include "tm/tm_config.h"
#include "tm/tm_file.h"
#include "tm/tm_net.h"
#include "tm/tm_pki.h"
#include "tls.h"

#define ENROLL_MAX_ANSWER (64 * 1024)
#define ENROLL_MAX_TOKEN 256

struct enroll_opts {
    char token[ENROLL_MAX_TOKEN + 1];
    const char *token_file, *collector, *ca, *out, *server_name, *user;
    int64_t timeout_ms;
    bool force;
    bool chown_files; /* --user given: uid and gid below */
    uid_t uid;
    gid_t gid;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tm-agent enroll --token TOKEN --collector HOST:PORT [--ca FILE]\n"
               "                       [--out DIR] [--server-name NAME] [--user USER]\n"
               "                       [--timeout 30s] [--force]\n"
               "\n"
               "Makes this agent's key and certificate request, sends the request with the\n"
               "one-time TOKEN from 'tmctl enroll --token-ttl' to the collector's enrollment\n"
               "listener over TLS (its certificate must chain to --ca, default OUT/ca.crt),\n"
               "and writes OUT/agent.key (0600), OUT/agent.crt and OUT/ca.crt for the\n"
               "config's [shipper] tls_key, tls_cert and tls_ca. OUT defaults to\n"
               "/etc/tm-agent. The token may also come from --token-file FILE or the\n"
               "environment variable TM_ENROLL_TOKEN (kept out of the process list).\n"
               "--user: the files' owner (the user tm-agent runs as). --force replaces\n"
               "existing files. See docs/enrollment.md.\n");
}

static int fail(const char *fmt, ...) TM_PRINTF(1, 2);

static int fail(const char *fmt, ...)
{
    va_list ap;

    fputs("tm-agent enroll: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

static int set_token(struct enroll_opts *o, const char *s, size_t n)
{
    if (n == 0 || n > ENROLL_MAX_TOKEN)
        return fail("the token must be 1 to %d characters", ENROLL_MAX_TOKEN);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return fail("the token holds a character it cannot have");
    memcpy(o->token, s, n);
    o->token[n] = '\0';
    return 0;
}

/* The token from --token, --token-file or TM_ENROLL_TOKEN. */
static int read_token(struct enroll_opts *o)
{
    const char *env = getenv("TM_ENROLL_TOKEN");
    char *text = NULL, err[TM_ERR_LEN];
    int rc;

    if (o->token[0] != '\0')
        return 0;
    if (o->token_file != NULL) {
        if (tm_file_read(o->token_file, 4096, false, &text, NULL, err) != 0)
            return fail("%s", err);
        rc = set_token(o, text, strcspn(text, "\r\n"));
        mbedtls_platform_zeroize(text, strlen(text));
        free(text);
        return rc;
    }
    if (env != NULL && env[0] != '\0')
        return set_token(o, env, strlen(env));
    return fail("no token: give --token, --token-file or TM_ENROLL_TOKEN");
}

/* A TCP connection to addr within timeout_ms, left blocking with I/O timeouts. */
static int connect_to(const char *addr, int64_t timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct pollfd p;
    char err[TM_ERR_LEN];
    int fd, flags, soerr = 0;
    socklen_t elen = sizeof(soerr);

    if (tm_net_parse_addr(addr, &ss, &len, err) != 0)
        return fail("--collector '%s': %s", addr, err);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fail("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
        fail("cannot connect to '%s': %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    p.fd = fd;
    p.events = POLLOUT;
    if (poll(&p, 1, (int)timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) != 0 || soerr != 0) {
        fail("cannot connect to '%s': %s", addr, soerr != 0 ? strerror(soerr) : "timed out");
        close(fd);
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/*
 * POSTs the request over TLS and reads the answer into *answer (NUL-terminated, malloc'd)
 * with its HTTP status. Returns 0 or -1 (reported).
 */
static int exchange(const struct enroll_opts *o, struct tls_client *tls, const char *csr,
                    size_t csrlen, int *status, char **answer)
{
    struct tls_conn *t = NULL;
    char head[1024], name[256], why[TM_ERR_LEN], *buf = NULL, *body;
    size_t used = 0;
    int fd = -1, rc = -1, n, hr;
    int64_t clen = -1;

    *answer = NULL;
    if (ship_expected_name(o->collector, o->server_name, name, sizeof(name)) != 0)
        return fail("--collector '%s': expected HOST:PORT", o->collector);
    t = tls_conn_new(tls, name, why);
    if (t == NULL)
        return fail("cannot set up TLS to '%s': %s", o->collector, why);
    fd = connect_to(o->collector, o->timeout_ms);
    if (fd < 0)
        goto out;
    tls_conn_use_fd(t, fd);
    while ((hr = tls_conn_handshake(t, why, sizeof(why))) == TLS_AGAIN)
        continue;
    if (hr < 0) {
        fail("TLS handshake with '%s' failed: %s", o->collector, why);
        goto out;
    }
    n = snprintf(head, sizeof(head),
                 "POST /v1/enroll HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/pkcs10\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\nUser-Agent: tm-agent/%s\r\n\r\n",
                 o->collector, o->token, csrlen, AGENT_VERSION);
    if (n < 0 || (size_t)n >= sizeof(head) ||
        tls_conn_send(t, head, (size_t)n, why, sizeof(why)) != 0 ||
        tls_conn_send(t, csr, csrlen, why, sizeof(why)) != 0) {
        mbedtls_platform_zeroize(head, sizeof(head));
        fail("cannot send the request to '%s': %s", o->collector,
             n < 0 || (size_t)n >= sizeof(head) ? "too long" : why);
        goto out;
    }
    mbedtls_platform_zeroize(head, sizeof(head));
    buf = malloc(ENROLL_MAX_ANSWER + 1);
    if (buf == NULL) {
        fail("out of memory");
        goto out;
    }
    for (;;) {
        char *end;
        n = tls_conn_recv(t, buf + used, ENROLL_MAX_ANSWER - used, why, sizeof(why));
        if (n < 0) {
            fail("cannot read the answer of '%s': %s", o->collector, why);
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        buf[used] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL && clen < 0) {
            const char *h = strcasestr(buf, "\r\nContent-Length:");
            if (h != NULL && h < end)
                clen = strtoll(h + 17, NULL, 10);
        }
        if (end != NULL && clen >= 0 && used >= (size_t)(end + 4 - buf) + (size_t)clen)
            break;
        if (used == ENROLL_MAX_ANSWER) {
            fail("the collector's answer is larger than %d bytes", ENROLL_MAX_ANSWER);
            goto out;
        }
    }
    buf[used] = '\0';
    body = strstr(buf, "\r\n\r\n");
    if (body == NULL || sscanf(buf, "HTTP/1.%*d %d", status) != 1) {
        fail("no HTTP answer from '%s' (%s)", o->collector, used == 0 ? "nothing" : "garbled");
        goto out;
    }
    *answer = strdup(body + 4);
    rc = *answer != NULL ? 0 : fail("out of memory");
out:
    free(buf);
    tls_conn_free(t);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Writes the files; removes what it wrote when one fails. */
static int write_files(const struct enroll_opts *o, const char *key, size_t klen, const char *cert,
                       size_t clen, const char *ca, size_t calen, char paths[3][600])
{
    static const char *const names[3] = {"agent.key", "agent.crt", "ca.crt"};
    const char *data[3] = {key, cert, ca};
    size_t lens[3] = {klen, clen, calen};
    mode_t modes[3] = {0600, 0644, 0644};
    bool wrote[3] = {false, false, false};
    char err[TM_ERR_LEN];

    for (int i = 0; i < 3; i++) {
        char *old = NULL;
        size_t oldlen = 0;
        int flags = o->force ? 0 : TM_FILE_NO_REPLACE;

        snprintf(paths[i], 600, "%s/%s", o->out, names[i]);
        /* ca.crt already there with the same certificate (the default --ca): keep it */
        if (i == 2 && tm_file_read(paths[i], TM_PKI_PEM_MAX, true, &old, &oldlen, err) == 0 &&
            oldlen == calen && memcmp(old, ca, calen) == 0) {
            free(old);
            continue;
        }
        free(old);
        if (tm_file_write_atomic(paths[i], data[i], lens[i], modes[i], flags, err) != 0) {
            fail("%s%s", err, errno == EEXIST ? " (--force replaces it)" : "");
            goto fail;
        }
        wrote[i] = true;
        if (o->chown_files && chown(paths[i], o->uid, o->gid) != 0) {
            fail("cannot give '%s' to user '%s': %s", paths[i], o->user, strerror(errno));
            goto fail;
        }
    }
    return 0;
fail:
    for (int k = 0; k < 3; k++)
        if (wrote[k])
            unlink(paths[k]);
    return -1;
}

/*
 * What can fail here is checked before the token is spent (the collector burns it when
 * it answers): the --out directory is writable, has no agent.key (unless --force), and
 * the --user exists. Returns 0 or -1 (reported).
 */
static int check_out(struct enroll_opts *o)
{
    char p[600];
    struct stat st;

    if (stat(o->out, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail("--out '%s' is not a directory", o->out);
    if (access(o->out, W_OK | X_OK) != 0)
        return fail("cannot write into --out '%s': %s", o->out, strerror(errno));
    snprintf(p, sizeof(p), "%s/agent.key", o->out);
    if (!o->force && stat(p, &st) == 0)
        return fail("'%s' exists already (--force replaces it)", p);
    if (o->user != NULL) {
        struct passwd pw, *pwp = NULL;
        char pwbuf[4096];

        if (getpwnam_r(o->user, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || pwp == NULL)
            return fail("--user '%s': no such user", o->user);
        o->chown_files = true;
        o->uid = pw.pw_uid;
        o->gid = pw.pw_gid;
    }
    return 0;
}

/* Wipes and frees a PEM buffer of len bytes. */
static void free_secret(char *pem, size_t len)
{
    if (pem != NULL) {
        mbedtls_platform_zeroize(pem, len);
        free(pem);
    }
}

/*
 * A new EC P-256 key pair in key, and the certificate request for it (subject CN = cn,
 * signed with SHA-256) as PEM in *csr (malloc'd). Returns 0 or -1 (reported).
 */
static int make_request(struct tls_client *tls, mbedtls_pk_context *key, const char *cn, char **csr)
{
    mbedtls_x509write_csr req;
    char subject[300];
    int r;

    *csr = NULL;
    snprintf(subject, sizeof(subject), "CN=%s", cn);
    mbedtls_x509write_csr_init(&req);
    r = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (r == 0)
        r = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key), tls_client_random,
                                tls);
    if (r == 0)
        r = mbedtls_x509write_csr_set_subject_name(&req, subject);
    if (r == 0) {
        mbedtls_x509write_csr_set_md_alg(&req, MBEDTLS_MD_SHA256);
        mbedtls_x509write_csr_set_key(&req, key);
        r = (*csr = calloc(1, TM_PKI_PEM_MAX)) == NULL ? MBEDTLS_ERR_PK_ALLOC_FAILED : 0;
    }
    if (r == 0)
        r = mbedtls_x509write_csr_pem(&req, (unsigned char *)*csr, TM_PKI_PEM_MAX,
                                      tls_client_random, tls);
    mbedtls_x509write_csr_free(&req);
    if (r != 0) {
        free(*csr);
        *csr = NULL;
        return fail("cannot make the key and its certificate request (mbedTLS error -0x%04x)",
                    (unsigned)-r);
    }
    return 0;
}

/* Does the PEM certificate hold key's public half? */
static bool cert_matches(const char *pem, mbedtls_pk_context *key)
{
    mbedtls_x509_crt crt;
    bool ok;

    mbedtls_x509_crt_init(&crt);
    ok = mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1) == 0 &&
         mbedtls_pk_check_pair(&crt.pk, key) == 0;
    mbedtls_x509_crt_free(&crt);
    return ok;
}

/* The host name as a CN: letters, digits, '.', '-' and '_' kept, others made '-'. */
static void host_cn(char *out, size_t outlen)
{
    if (gethostname(out, outlen - 1) != 0 || out[0] == '\0')
        snprintf(out, outlen, "tm-agent");
    out[outlen - 1] = '\0';
    for (char *p = out; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '-';
}

static int run(struct enroll_opts *o)
{
    char capath[600], err[TM_ERR_LEN], paths[3][600], host[256];
    char *ca_pem = NULL, *csr_pem = NULL, *key_pem = NULL, *answer = NULL;
    size_t calen = 0;
    struct tls_client *tls = NULL;
    mbedtls_pk_context key;
    json_t *j = NULL;
    json_error_t je;
    const char *cert_pem;
    int status = 0, rc = 1;

    mbedtls_pk_init(&key);
    if (o->ca == NULL) {
        snprintf(capath, sizeof(capath), "%s/ca.crt", o->out);
        o->ca = capath;
    }
    if (read_token(o) != 0)
        return 2;
    if (tm_file_read(o->ca, TM_PKI_PEM_MAX, false, &ca_pem, &calen, err) != 0 ||
        (tls = tls_client_new(o->ca, NULL, NULL, err)) == NULL) {
        fail("--ca: %s", err);
        goto out;
    }
    if (check_out(o) != 0)
        goto out;
    host_cn(host, sizeof(host));
    if (make_request(tls, &key, host, &csr_pem) != 0 ||
        exchange(o, tls, csr_pem, strlen(csr_pem), &status, &answer) != 0)
        goto out;
    j = json_loads(answer, 0, &je);
    if (status != 200) {
        const char *msg = json_string_value(json_object_get(j, "error"));
        fail("the collector refused (HTTP %d): %s", status, msg != NULL ? msg : "no reason given");
        goto out;
    }
    cert_pem = json_string_value(json_object_get(j, "cert"));
    if (cert_pem == NULL) {
        fail("the collector's answer holds no certificate");
        goto out;
    }
    if (!cert_matches(cert_pem, &key)) {
        fail("the certificate the collector sent is not for the key made here");
        goto out;
    }
    key_pem = calloc(1, TM_PKI_PEM_MAX);
    if (key_pem == NULL ||
        mbedtls_pk_write_key_pem(&key, (unsigned char *)key_pem, TM_PKI_PEM_MAX) != 0) {
        fail("cannot write the key as PEM");
        goto out;
    }
    if (write_files(o, key_pem, strlen(key_pem), cert_pem, strlen(cert_pem), ca_pem, calen,
                    paths) != 0)
        goto out;
    printf("enrolled: %s (operator %s, sector %s, region %s), valid until %s\n"
           "wrote %s, %s, %s\n"
           "in tm-agent.ini [shipper]: tls_ca = %s, tls_cert = %s, tls_key = %s\n",
           json_string_value(json_object_get(j, "name")),
           json_string_value(json_object_get(j, "operator")),
           json_string_value(json_object_get(j, "sector")),
           json_string_value(json_object_get(j, "region")),
           json_string_value(json_object_get(j, "not_after")), paths[0], paths[1], paths[2],
           paths[2], paths[1], paths[0]);
    rc = 0;
out:
    mbedtls_platform_zeroize(o->token, sizeof(o->token));
    free_secret(key_pem, TM_PKI_PEM_MAX);
    json_decref(j);
    free(answer);
    free(csr_pem);
    free(ca_pem);
    mbedtls_pk_free(&key);
    tls_client_free(tls);
    return rc;
}

int enroll_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'T'},
        {"collector", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},
        {"server-name", required_argument, NULL, 's'},
        {"user", required_argument, NULL, 'u'},
        {"timeout", required_argument, NULL, 'w'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct enroll_opts o;
    int opt;

    memset(&o, 0, sizeof(o));
    o.out = "/etc/tm-agent";
    o.timeout_ms = 30000;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            if (set_token(&o, optarg, strlen(optarg)) != 0)
                return 2;
            break;
        case 'T':
            o.token_file = optarg;
            break;
        case 'k':
            o.collector = optarg;
            break;
        case 'a':
            o.ca = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 's':
            o.server_name = optarg;
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'w':
            if (tm_config_parse_duration(optarg, &o.timeout_ms) != 0 || o.timeout_ms < 100 ||
                o.timeout_ms > 600000) {
                fail("--timeout '%s': expected 100ms to 10m", optarg);
                return 2;
            }
            break;
        case 'f':
            o.force = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || o.collector == NULL) {
        usage(stderr);
        return 2;
    }
    return run(&o);
}
