/*
 * tm_tokens.h - one-time enrollment tokens (docs/enrollment.md). `tmctl enroll
 * --token-ttl` makes a token, prints it once and records only its SHA-256 digest with an
 * expiry and the identity it is for; tm-collector redeems it once (`tm-agent enroll`) and
 * burns it in the same file, so a restart does not revive it.
 *
 * The file (default "enroll-tokens" beside the identity map) is text, one token a line,
 * fields separated by blanks, '#' comments:
 *
 *   DIGEST EXPIRES OPERATOR SECTOR REGION NAME STATE
 *   5e8848...42d8 2026-11-24T12:00:00.000Z ua-water-kyiv drinking-water UA-30
 *       ua-water-kyiv-3f9a1c2e.agents.tm pending
 *
 * (one line in the file). REGION is "-" when none; STATE is "pending", "used:TIME" or
 * "revoked:TIME". The digest is of the whole token text; tokens carry 256 random bits,
 * so an unsalted digest is safe to keep and to show. The file is edited under the identity
 * map's lock (tm_idmap_lock_path) and written atomically.
 */
#ifndef TM_TOKENS_H
#define TM_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"

/* "tme_" and 64 hex digits, NUL. */
#define TM_TOKEN_LEN 69
#define TM_TOKEN_PREFIX "tme_"
/* Largest token file read. */
#define TM_TOKENS_MAX (4u << 20)
/* Tokens that expired longer ago than this are dropped when the file is written. */
#define TM_TOKENS_KEEP_MS (7LL * 86400000)

enum tm_token_state { TM_TOKEN_PENDING, TM_TOKEN_USED, TM_TOKEN_REVOKED };

struct tm_token {
    char digest[65];
    int64_t expires_ms;
    char operator_id[41];
    char sector[32];
    char region[8]; /* "" when none */
    char name[254];
    enum tm_token_state state;
    int64_t state_ms; /* when it was used or revoked */
};

struct tm_tokens {
    struct tm_token *v;
    size_t n;
};

/* What tm_tokens_check found. */
enum tm_token_check {
    TM_TOKEN_OK = 0,
    TM_TOKEN_UNKNOWN,
    TM_TOKEN_EXPIRED,
    TM_TOKEN_BURNED, /* used or revoked */
};

/*
 * Parses the file's text into t (empty first). Returns 0, or -1 with "line N: reason" in
 * err (t then holds the lines before it; free with tm_tokens_free).
 */
int tm_tokens_parse(const char *text, struct tm_tokens *t, char *err);

/* The file's text for t: a header comment, then one line per token (malloc'd, NUL-terminated). */
char *tm_tokens_format(const struct tm_tokens *t, size_t *len);

/* Reads the file at path (missing: no tokens). Returns 0, or -1 with "PATH: ..." in err. */
int tm_tokens_load(const char *path, struct tm_tokens *t, char *err);

/*
 * Drops tokens that expired more than TM_TOKENS_KEEP_MS before now_ms, then writes the
 * file atomically (tm_file_write_atomic; a new file is mode 0640). Returns 0 or -1.
 */
int tm_tokens_save(const char *path, struct tm_tokens *t, int64_t now_ms, char *err);

void tm_tokens_free(struct tm_tokens *t);

/* Appends a copy of tok. Returns 0, or -1 when out of memory or the digest is there already. */
int tm_tokens_add(struct tm_tokens *t, const struct tm_token *tok, char *err);

/*
 * Makes a new token from 32 bytes of the kernel's randomness: its text into token
 * (TM_TOKEN_LEN bytes) and its digest into digest. Returns 0, or -1 with err.
 */
int tm_tokens_generate(char *token, char digest[65], char *err);

/* The lowercase hex SHA-256 of the text s. */
void tm_tokens_digest(const char *s, char digest[65]);

/*
 * Looks a presented token up: its digest is compared with every entry's in constant time
 * (no early exit), then the entry's state and expiry are checked against now_ms. *idx gets
 * the entry's index when there is one (also for EXPIRED and BURNED), else -1.
 */
enum tm_token_check tm_tokens_check(const struct tm_tokens *t, const char *token, int64_t now_ms,
                                    long *idx);

/* Marks entry idx used (or revoked) at now_ms. */
void tm_tokens_burn(struct tm_tokens *t, size_t idx, enum tm_token_state state, int64_t now_ms);

/* Short words for messages: "ok", "unknown", "expired", "used". */
const char *tm_token_check_name(enum tm_token_check c);

#endif
