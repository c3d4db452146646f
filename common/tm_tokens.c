/*
 * tm_tokens.c - the enrollment token file (tm_tokens.h): parse, format, generate, check,
 * burn. Checking hashes the presented token once and compares the digest with every
 * entry in constant time, so neither timing nor the file's order says how close a guess
 * came. The file is read whole and written whole (tm_file_write_atomic); it holds a few
 * hundred lines at most.
 */
#include "tm/tm_tokens.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tm/tm_file.h"
#include "tm/tm_idmap.h"
#include "tm/tm_time.h"

static const char header[] =
    "# tm enrollment tokens (docs/enrollment.md): written by tmctl enroll, burned by\n"
    "# tm-collector. Only SHA-256 digests of the tokens are kept here.\n"
    "# DIGEST EXPIRES OPERATOR SECTOR REGION NAME STATE\n";

void tm_tokens_digest(const char *s, char digest[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    memset(md, 0, sizeof(md));
    EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(digest + i * 2, 3, "%02x", md[i]);
}

int tm_tokens_generate(char *token, char digest[65], char *err)
{
    unsigned char rnd[32];
    size_t got = 0;
    int pos;

    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return tm_err(err, "cannot get random bytes: %s", strerror(errno));
        got += (size_t)n;
    }
    pos = snprintf(token, TM_TOKEN_LEN, "%s", TM_TOKEN_PREFIX);
    for (size_t i = 0; i < sizeof(rnd); i++)
        pos += snprintf(token + pos, TM_TOKEN_LEN - (size_t)pos, "%02x", rnd[i]);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    tm_tokens_digest(token, digest);
    return 0;
}

void tm_tokens_free(struct tm_tokens *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

int tm_tokens_add(struct tm_tokens *t, const struct tm_token *tok, char *err)
{
    struct tm_token *v;

    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].digest, tok->digest) == 0)
            return tm_err(err, "token %.12s... is already recorded", tok->digest);
    v = realloc(t->v, (t->n + 1) * sizeof(*v));
    if (v == NULL)
        return tm_err(err, "out of memory");
    t->v = v;
    t->v[t->n++] = *tok;
    return 0;
}

/* Copies field into dst (size bytes); -1 when it does not fit. */
static int field(const char *f, char *dst, size_t size)
{
    return tm_strlcpy(dst, f, size);
}

static int parse_line(char *line, struct tm_token *tok, char *reason)
{
    char *f[8], *save = NULL;
    int n = 0;

    for (char *p = strtok_r(line, " \t\r", &save); p != NULL; p = strtok_r(NULL, " \t\r", &save))
        if (n < 8)
            f[n++] = p;
        else
            return tm_err(reason, "more than 7 fields");
    if (n != 7)
        return tm_err(reason,
                      "expected 7 fields (DIGEST EXPIRES OPERATOR SECTOR REGION NAME "
                      "STATE), found %d",
                      n);
    memset(tok, 0, sizeof(*tok));
    if (strlen(f[0]) != 64 || strspn(f[0], "0123456789abcdef") != 64)
        return tm_err(reason, "'%.16s' is not a lowercase hex SHA-256 digest", f[0]);
    memcpy(tok->digest, f[0], 65);
    if (tm_time_parse(f[1], strlen(f[1]), &tok->expires_ms) != 0)
        return tm_err(reason, "expiry '%.40s' is not an RFC 3339 time", f[1]);
    if (!tm_idmap_operator_valid(f[2]) || field(f[2], tok->operator_id, sizeof(tok->operator_id)))
        return tm_err(reason, "bad operator id '%.40s'", f[2]);
    if (field(f[3], tok->sector, sizeof(tok->sector)) != 0)
        return tm_err(reason, "bad sector '%.40s'", f[3]);
    if (strcmp(f[4], "-") != 0 && field(f[4], tok->region, sizeof(tok->region)) != 0)
        return tm_err(reason, "bad region '%.40s'", f[4]);
    if (!tm_idmap_name_valid(f[5]) || field(f[5], tok->name, sizeof(tok->name)) != 0)
        return tm_err(reason, "bad certificate name '%.64s'", f[5]);
    if (strcmp(f[6], "pending") == 0) {
        tok->state = TM_TOKEN_PENDING;
    } else if (strncmp(f[6], "used:", 5) == 0 &&
               tm_time_parse(f[6] + 5, strlen(f[6] + 5), &tok->state_ms) == 0) {
        tok->state = TM_TOKEN_USED;
    } else if (strncmp(f[6], "revoked:", 8) == 0 &&
               tm_time_parse(f[6] + 8, strlen(f[6] + 8), &tok->state_ms) == 0) {
        tok->state = TM_TOKEN_REVOKED;
    } else {
        return tm_err(reason, "state '%.40s': expected pending, used:TIME or revoked:TIME", f[6]);
    }
    return 0;
}

int tm_tokens_parse(const char *text, struct tm_tokens *t, char *err)
{
    const char *p = text;
    int lineno = 0;

    t->v = NULL;
    t->n = 0;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char line[1024], reason[TM_ERR_LEN];
        struct tm_token tok;
        size_t i = 0;

        lineno++;
        if (n >= sizeof(line))
            return tm_err(err, "line %d: longer than %zu bytes", lineno, sizeof(line) - 1);
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl != NULL ? nl + 1 : p + n;
        while (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')
            i++;
        if (line[i] == '\0' || line[i] == '#')
            continue;
        if (parse_line(line + i, &tok, reason) != 0)
            return tm_err(err, "line %d: %s", lineno, reason);
        if (tm_tokens_add(t, &tok, reason) != 0)
            return tm_err(err, "line %d: %s", lineno, reason);
    }
    return 0;
}

char *tm_tokens_format(const struct tm_tokens *t, size_t *len)
{
    size_t cap = sizeof(header) + t->n * 640, pos;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    pos = (size_t)snprintf(out, cap, "%s", header);
    for (size_t i = 0; i < t->n; i++) {
        const struct tm_token *k = &t->v[i];
        char exp[TM_TIME_LEN], when[TM_TIME_LEN] = "";

        if (tm_time_format(k->expires_ms, exp, sizeof(exp)) != 0)
            tm_strlcpy(exp, "1970-01-01T00:00:00.000Z", sizeof(exp));
        if (k->state != TM_TOKEN_PENDING && tm_time_format(k->state_ms, when, sizeof(when)) != 0)
            tm_strlcpy(when, "1970-01-01T00:00:00.000Z", sizeof(when));
        pos += (size_t)snprintf(out + pos, cap - pos, "%s %s %s %s %s %s %s%s\n", k->digest, exp,
                                k->operator_id, k->sector, k->region[0] != '\0' ? k->region : "-",
                                k->name,
                                k->state == TM_TOKEN_PENDING ? "pending"
                                : k->state == TM_TOKEN_USED  ? "used:"
                                                             : "revoked:",
                                when);
    }
    if (len != NULL)
        *len = pos;
    return out;
}

int tm_tokens_load(const char *path, struct tm_tokens *t, char *err)
{
    char *text = NULL, reason[TM_ERR_LEN];
    int rc = tm_file_read(path, TM_TOKENS_MAX, true, &text, NULL, err);

    t->v = NULL;
    t->n = 0;
    if (rc < 0)
        return -1;
    if (rc == 1)
        return 0;
    rc = tm_tokens_parse(text, t, reason);
    free(text);
    if (rc != 0) {
        tm_tokens_free(t);
        return tm_err(err, "%s: %s", path, reason);
    }
    return 0;
}

int tm_tokens_save(const char *path, struct tm_tokens *t, int64_t now_ms, char *err)
{
    size_t keep = 0, len;
    char *text;
    int rc;

    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].expires_ms + TM_TOKENS_KEEP_MS >= now_ms)
            t->v[keep++] = t->v[i];
    t->n = keep;
    text = tm_tokens_format(t, &len);
    if (text == NULL)
        return tm_err(err, "cannot write '%s': out of memory", path);
    rc = tm_file_write_atomic(path, text, len, 0640, TM_FILE_KEEP_MODE, err);
    free(text);
    return rc;
}

enum tm_token_check tm_tokens_check(const struct tm_tokens *t, const char *token, int64_t now_ms,
                                    long *idx)
{
    char digest[65];
    long found = -1;

    *idx = -1;
    tm_tokens_digest(token, digest);
    for (size_t i = 0; i < t->n; i++) {
        /* every entry is compared, whatever matched before */
        int differ = CRYPTO_memcmp(t->v[i].digest, digest, 64);
        if (differ == 0 && found < 0)
            found = (long)i;
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    if (found < 0)
        return TM_TOKEN_UNKNOWN;
    *idx = found;
    if (t->v[found].state != TM_TOKEN_PENDING)
        return TM_TOKEN_BURNED;
    if (t->v[found].expires_ms <= now_ms)
        return TM_TOKEN_EXPIRED;
    return TM_TOKEN_OK;
}

void tm_tokens_burn(struct tm_tokens *t, size_t idx, enum tm_token_state state, int64_t now_ms)
{
    if (idx < t->n) {
        t->v[idx].state = state;
        t->v[idx].state_ms = now_ms;
    }
}

const char *tm_token_check_name(enum tm_token_check c)
{
    switch (c) {
    case TM_TOKEN_OK:
        return "ok";
    case TM_TOKEN_EXPIRED:
        return "expired";
    case TM_TOKEN_BURNED:
        return "used";
    case TM_TOKEN_UNKNOWN:
    default:
        return "unknown";
    }
}
