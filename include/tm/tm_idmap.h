/*
 * tm_idmap.h - the collector's identity map (docs/collector.md) as enrollment edits it:
 * which operator a certificate name belongs to, adding an enrolled agent's name to its
 * operator's section (creating the section with sector and region), and the [revoked]
 * deny list. Works on a tm_inifile model, so every other line of the map survives an
 * edit; the caller loads, edits and saves it under the map's lock file
 * (tm_idmap_lock_path) so that tmctl and tm-collector never lose each other's changes.
 *
 *   [operator.ID]   sector, region, certs (KEY.N continuations allowed), tokens_sha256,
 *                   networks
 *   [revoked]       certs, tokens_sha256
 */
#ifndef TM_IDMAP_H
#define TM_IDMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "tm/tm_common.h"
#include "tm/tm_inifile.h"

/* Operator ids: 1-40 of A-Z a-z 0-9 . _ - (inih keeps section names under 50 bytes). */
#define TM_IDMAP_OPERATOR_MAX 40
/* Certificate names: DNS names, 1-253 bytes. */
#define TM_IDMAP_NAME_MAX 253
/* How long tmctl and the collector wait for each other's lock on the map. */
#define TM_IDMAP_LOCK_WAIT_MS 5000

bool tm_idmap_operator_valid(const char *id);

/* A lowercase DNS name: labels of a-z 0-9 - (1-63 bytes, no '-' at either end), dots between. */
bool tm_idmap_name_valid(const char *name);

/* "MAP.lock": the lock file of the map at map. Returns 0, or -1 when it does not fit. */
int tm_idmap_lock_path(const char *map, char *out, size_t outlen);

/* "DIR/enroll-tokens" beside the map: the default token file. Returns 0 or -1. */
int tm_idmap_tokens_path(const char *map, char *out, size_t outlen);

/*
 * The operator whose section lists certificate name in certs: returns 1 and copies its id
 * into op (TM_IDMAP_OPERATOR_MAX + 1 bytes), or 0 when no section does.
 */
int tm_idmap_cert_owner(const struct tm_inifile *f, const char *name, char *op);

/* True when name is in [revoked] certs. */
bool tm_idmap_cert_revoked(const struct tm_inifile *f, const char *name);

/*
 * The sector and region of [operator.ID] (region "" when the section has none). Returns 1
 * when the section exists, 0 when not (sector and region then hold "").
 */
int tm_idmap_operator(const struct tm_inifile *f, const char *op, char sector[32], char region[8]);

/*
 * Checks that name can be enrolled for op: ids valid; sector and region known (libtm's
 * tables; region may be "" only for an operator already in the map); when the operator's
 * section exists, its sector and region match (an empty argument takes the map's); the
 * name is not revoked and not listed by another operator. *renewal says whether op
 * already lists it. Fills sector and region with what the enrollment will use. Returns
 * 0, or -1 with the reason in err.
 */
int tm_idmap_check(const struct tm_inifile *f, const char *op, char sector[32], char region[8],
                   const char *name, bool *renewal, char *err);

/*
 * Adds name to [operator.OP] certs, creating the section with sector and region (after
 * the file's last line) when missing. No checks: call tm_idmap_check first. Returns 0 or -1.
 */
int tm_idmap_add_cert(struct tm_inifile *f, const char *op, const char *sector, const char *region,
                      const char *name, char *err);

/*
 * Adds a certificate name, or a token's SHA-256 hex digest, to [revoked] (creating the
 * section when missing). *added (may be NULL) is false when it was there already.
 * Returns 0 or -1.
 */
int tm_idmap_revoke_cert(struct tm_inifile *f, const char *name, bool *added, char *err);
int tm_idmap_revoke_token(struct tm_inifile *f, const char *digest, bool *added, char *err);

/*
 * Calls cb for each certificate name / token digest of [operator.OP]. Returns 0, or cb's
 * non-zero value.
 */
int tm_idmap_operator_certs(const struct tm_inifile *f, const char *op,
                            int (*cb)(void *arg, const char *name), void *arg);
int tm_idmap_operator_tokens(const struct tm_inifile *f, const char *op,
                             int (*cb)(void *arg, const char *digest), void *arg);

#endif
