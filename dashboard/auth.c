/*
 * auth.c - who may read the API: named read-only tokens from [auth] tokens and
 * tokens_file, kept only as SHA-256 digests, and the signed session cookie the login
 * form hands out.
 *
 * A presented token is hashed and its digest compared with every configured digest by
 * CRYPTO_memcmp, all of them each time, so neither the content nor the position of a
 * match shows in the timing. The session cookie carries no secret: it is
 * "name:expires:mac" with mac = HMAC-SHA256(key = SHA-256(token), "tm_session:v1:" name
 * ":" expires), so it outlives a restart, dies with its token (changed or removed and
 * SIGHUP) and cannot be made without the token. Nothing here logs a token or a digest.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dashboard.h"
#include "tm/tm_log.h"

#define NAME_MAX_LEN 64
#define TOKEN_MAX_LEN 1024
#define TOKEN_WEAK_LEN 16
#define MAX_TOKENS 1024
#define DIGEST_LEN SHA256_DIGEST_LENGTH

struct token {
    char name[NAME_MAX_LEN + 1];
    unsigned char digest[DIGEST_LEN];
};

struct dash_auth {
    struct token *v;
    size_t n;
};

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

static bool token_ok(const char *s, size_t n)
{
    if (n == 0 || n > TOKEN_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ',' ||
            s[i] == ';')
            return false;
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Adds one "name:token" entry (n bytes at s). where names it in errors. */
static int add_entry(struct dash_auth *a, const char *s, size_t n, const char *where, char *err)
{
    const char *colon;
    size_t nlen, tlen;
    struct token *t;

    trim(&s, &n);
    if (n == 0)
        return 0;
    colon = memchr(s, ':', n);
    if (colon == NULL)
        return tm_err(err, "%s: expected name:token", where);
    nlen = (size_t)(colon - s);
    tlen = n - nlen - 1;
    if (!name_ok(s, nlen))
        return tm_err(err, "%s: token name '%.*s' must be 1-%d of A-Z a-z 0-9 . _ -", where,
                      (int)(nlen < 80 ? nlen : 80), s, NAME_MAX_LEN);
    if (!token_ok(colon + 1, tlen))
        return tm_err(err,
                      "%s: the token of '%.*s' must be 1-%d printable characters without "
                      "spaces, ',' or ';'",
                      where, (int)nlen, s, TOKEN_MAX_LEN);
    for (size_t i = 0; i < a->n; i++)
        if (strlen(a->v[i].name) == nlen && memcmp(a->v[i].name, s, nlen) == 0)
            return tm_err(err, "%s: token name '%.*s' given twice", where, (int)nlen, s);
    if (a->n == MAX_TOKENS)
        return tm_err(err, "%s: more than %d tokens", where, MAX_TOKENS);
    if (tlen < TOKEN_WEAK_LEN)
        tm_log_warn("%s: the token of '%.*s' is shorter than %d characters; use a long random "
                    "one (openssl rand -hex 32)",
                    where, (int)nlen, s, TOKEN_WEAK_LEN);
    t = &a->v[a->n++];
    memcpy(t->name, s, nlen);
    t->name[nlen] = '\0';
    SHA256((const unsigned char *)colon + 1, tlen, t->digest);
    return 0;
}

static int load_file(struct dash_auth *a, const char *path, char *err)
{
    FILE *fp = fopen(path, "r");
    char line[TOKEN_MAX_LEN + NAME_MAX_LEN + 16], where[DASH_PATH_MAX + 32];
    struct stat st;
    int lineno = 0, rc = -1;

    if (fp == NULL)
        return tm_err(err, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) == 0 && (st.st_mode & 0077) != 0)
        tm_log_warn("'%s' is readable by group or others; chmod 600 it", path);
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t n = strcspn(line, "\r\n");
        const char *p = line;

        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if (line[n] == '\0' && !feof(fp)) {
            tm_err(err, "%s: line longer than %zu bytes", where, sizeof(line) - 2);
            goto out;
        }
        trim(&p, &n);
        if (n == 0 || p[0] == '#' || p[0] == ';')
            continue;
        if (add_entry(a, p, n, where, err) != 0)
            goto out;
    }
    rc = 0;
out:
    explicit_bzero(line, sizeof(line));
    fclose(fp);
    return rc;
}

struct dash_auth *dash_auth_load(const struct dash_config *cfg, char *err)
{
    struct dash_auth *a = calloc(1, sizeof(*a));
    const char *p = cfg->tokens;

    if (a == NULL || (a->v = calloc(MAX_TOKENS, sizeof(*a->v))) == NULL) {
        tm_err(err, "out of memory");
        goto fail;
    }
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (add_entry(a, p, n, "[auth] tokens", err) != 0)
            goto fail;
        p += n;
        if (*p == ',')
            p++;
    }
    if (cfg->tokens_file[0] != '\0' && load_file(a, cfg->tokens_file, err) != 0)
        goto fail;
    if (cfg->auth && a->n == 0) {
        tm_err(err, "[auth] has no token: set tokens or tokens_file (or auth = off on a "
                    "loopback address, for development)");
        goto fail;
    }
    return a;
fail:
    dash_auth_free(a);
    return NULL;
}

void dash_auth_free(struct dash_auth *a)
{
    if (a == NULL)
        return;
    if (a->v != NULL)
        explicit_bzero(a->v, MAX_TOKENS * sizeof(*a->v));
    free(a->v);
    free(a);
}

size_t dash_auth_count(const struct dash_auth *a)
{
    return a->n;
}

const char *dash_auth_token(const struct dash_auth *a, const char *token)
{
    unsigned char d[DIGEST_LEN];
    const char *found = NULL;

    if (token == NULL)
        return NULL;
    SHA256((const unsigned char *)token, strlen(token), d);
    for (size_t i = 0; i < a->n; i++)
        if (CRYPTO_memcmp(d, a->v[i].digest, DIGEST_LEN) == 0)
            found = a->v[i].name;
    explicit_bzero(d, sizeof(d));
    return found;
}

static const struct token *by_name(const struct dash_auth *a, const char *name, size_t n)
{
    for (size_t i = 0; i < a->n; i++)
        if (strlen(a->v[i].name) == n && memcmp(a->v[i].name, name, n) == 0)
            return &a->v[i];
    return NULL;
}

static void session_mac(const struct token *t, int64_t expires_s, unsigned char *mac)
{
    char msg[NAME_MAX_LEN + 48];
    unsigned int len = DIGEST_LEN;
    int n = snprintf(msg, sizeof(msg), "tm_session:v1:%s:%" PRId64, t->name, expires_s);

    HMAC(EVP_sha256(), t->digest, DIGEST_LEN, (const unsigned char *)msg, (size_t)n, mac, &len);
}

int dash_auth_session(const struct dash_auth *a, const char *name, int64_t expires_s, char *out,
                      size_t outlen)
{
    const struct token *t = by_name(a, name, strlen(name));
    unsigned char mac[DIGEST_LEN];
    size_t n;
    int w;

    if (t == NULL)
        return -1;
    session_mac(t, expires_s, mac);
    w = snprintf(out, outlen, "%s:%" PRId64 ":", t->name, expires_s);
    if (w < 0 || (size_t)w + 2 * DIGEST_LEN >= outlen)
        return -1;
    n = (size_t)w;
    for (size_t i = 0; i < DIGEST_LEN; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%02x", mac[i]);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

const char *dash_auth_check_session(const struct dash_auth *a, const char *value, int64_t now_s)
{
    const char *c1, *c2;
    const struct token *t;
    unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
    char num[24];
    int64_t expires;

    if (value == NULL || (c1 = strchr(value, ':')) == NULL || (c2 = strchr(c1 + 1, ':')) == NULL)
        return NULL;
    if ((size_t)(c2 - c1 - 1) >= sizeof(num) || strlen(c2 + 1) != 2 * DIGEST_LEN)
        return NULL;
    memcpy(num, c1 + 1, (size_t)(c2 - c1 - 1));
    num[c2 - c1 - 1] = '\0';
    if (tm_parse_int64(num, 0, INT64_MAX, &expires) != 0 || expires <= now_s)
        return NULL;
    t = by_name(a, value, (size_t)(c1 - value));
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = hexval(c2[1 + 2 * i]), lo = hexval(c2[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return NULL;
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    session_mac(t, expires, want);
    return CRYPTO_memcmp(want, got, DIGEST_LEN) == 0 ? t->name : NULL;
}
