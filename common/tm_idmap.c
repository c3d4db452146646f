/*
 * tm_idmap.c - identity map edits for enrollment and revocation (tm_idmap.h), on top of
 * the line-preserving tm_inifile. The rules that keep the map meaningful live here, in
 * one place for tmctl and tm-collector: a certificate name belongs to one operator, a
 * revoked name is never given out again, an operator keeps the sector and region it was
 * first enrolled with.
 */
#include "tm/tm_idmap.h"

#include <stdio.h>
#include <string.h>

#include "tm/tm_file.h"
#include "tm/tm_tables.h"

bool tm_idmap_operator_valid(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > TM_IDMAP_OPERATOR_MAX)
        return false;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

bool tm_idmap_name_valid(const char *name)
{
    size_t n = strlen(name), label = 0;

    if (n == 0 || n > TM_IDMAP_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

int tm_idmap_lock_path(const char *map, char *out, size_t outlen)
{
    return snprintf(out, outlen, "%s.lock", map) < (int)outlen ? 0 : -1;
}

int tm_idmap_tokens_path(const char *map, char *out, size_t outlen)
{
    char dir[4096];

    if (tm_file_dirname(map, dir, sizeof(dir)) != 0)
        return -1;
    return snprintf(out, outlen, "%s/enroll-tokens", dir) < (int)outlen ? 0 : -1;
}

static int section_of(const char *op, char *out, size_t outlen)
{
    return snprintf(out, outlen, "operator.%s", op) < (int)outlen ? 0 : -1;
}

struct owner_ctx {
    const struct tm_inifile *f;
    const char *name;
    char *op;
};

static int owner_cb(void *arg, const char *section)
{
    struct owner_ctx *o = arg;

    if (!tm_inifile_list_has(o->f, section, "certs", o->name))
        return 0;
    tm_strlcpy(o->op, section + 9, TM_IDMAP_OPERATOR_MAX + 1);
    return 1;
}

int tm_idmap_cert_owner(const struct tm_inifile *f, const char *name, char *op)
{
    struct owner_ctx o = {f, name, op};

    op[0] = '\0';
    return tm_inifile_sections(f, "operator.", owner_cb, &o) == 1 ? 1 : 0;
}

bool tm_idmap_cert_revoked(const struct tm_inifile *f, const char *name)
{
    return tm_inifile_list_has(f, "revoked", "certs", name);
}

int tm_idmap_operator(const struct tm_inifile *f, const char *op, char sector[32], char region[8])
{
    char section[64];

    sector[0] = region[0] = '\0';
    if (section_of(op, section, sizeof(section)) != 0 || !tm_inifile_has_section(f, section))
        return 0;
    tm_inifile_get(f, section, "sector", sector, 32);
    tm_inifile_get(f, section, "region", region, 8);
    return 1;
}

int tm_idmap_check(const struct tm_inifile *f, const char *op, char sector[32], char region[8],
                   const char *name, bool *renewal, char *err)
{
    char msector[32], mregion[8], owner[TM_IDMAP_OPERATOR_MAX + 1];

    *renewal = false;
    if (!tm_idmap_operator_valid(op))
        return tm_err(err, "operator id '%.64s': 1-%d of A-Z a-z 0-9 . _ -", op,
                      TM_IDMAP_OPERATOR_MAX);
    if (!tm_idmap_name_valid(name))
        return tm_err(err, "certificate name '%.64s' is not a lowercase DNS name", name);
    if (tm_idmap_operator(f, op, msector, mregion)) {
        if (sector[0] != '\0' && strcmp(sector, msector) != 0)
            return tm_err(err,
                          "operator '%s' is in the identity map with sector '%s', not '%s' "
                          "(leave --sector out, or edit the map)",
                          op, msector, sector);
        if (region[0] != '\0' && strcmp(region, mregion) != 0)
            return tm_err(err,
                          "operator '%s' is in the identity map with region '%s', not '%s' "
                          "(leave --region out, or edit the map)",
                          op, mregion[0] != '\0' ? mregion : "(none)", region);
        tm_strlcpy(sector, msector, 32);
        tm_strlcpy(region, mregion, 8);
    } else if (sector[0] == '\0' || region[0] == '\0') {
        return tm_err(err, "operator '%s' is new: give its sector and region", op);
    }
    if (tm_sector_find(sector) == NULL)
        return tm_err(err, "unknown sector '%s' (docs/schema.md lists them)", sector);
    if (region[0] != '\0' && tm_region_find(region) == NULL)
        return tm_err(err, "unknown region '%s' (ISO 3166-2:UA, e.g. UA-30)", region);
    if (tm_idmap_cert_revoked(f, name))
        return tm_err(err, "certificate name '%s' is revoked; enroll under a new name", name);
    if (tm_idmap_cert_owner(f, name, owner)) {
        if (strcmp(owner, op) != 0)
            return tm_err(err, "certificate name '%s' belongs to operator '%s'", name, owner);
        *renewal = true;
    }
    return 0;
}

int tm_idmap_add_cert(struct tm_inifile *f, const char *op, const char *sector, const char *region,
                      const char *name, char *err)
{
    char section[64];

    if (section_of(op, section, sizeof(section)) != 0)
        return tm_err(err, "operator id '%.64s' is too long", op);
    if (!tm_inifile_has_section(f, section)) {
        if (tm_inifile_set(f, section, "sector", sector, err) != 0)
            return -1;
        if (region[0] != '\0' && tm_inifile_set(f, section, "region", region, err) != 0)
            return -1;
    }
    return tm_inifile_list_add(f, section, "certs", name, err);
}

int tm_idmap_revoke_cert(struct tm_inifile *f, const char *name, bool *added, char *err)
{
    bool there = tm_idmap_cert_revoked(f, name);

    if (added != NULL)
        *added = !there;
    return there ? 0 : tm_inifile_list_add(f, "revoked", "certs", name, err);
}

int tm_idmap_revoke_token(struct tm_inifile *f, const char *digest, bool *added, char *err)
{
    bool there = tm_inifile_list_has(f, "revoked", "tokens_sha256", digest);

    if (strlen(digest) != 64 || strspn(digest, "0123456789abcdef") != 64)
        return tm_err(err, "'%.16s...' is not a lowercase hex SHA-256 digest", digest);
    if (added != NULL)
        *added = !there;
    return there ? 0 : tm_inifile_list_add(f, "revoked", "tokens_sha256", digest, err);
}

int tm_idmap_operator_certs(const struct tm_inifile *f, const char *op,
                            int (*cb)(void *arg, const char *name), void *arg)
{
    char section[64];

    if (section_of(op, section, sizeof(section)) != 0)
        return 0;
    return tm_inifile_list_each(f, section, "certs", cb, arg);
}

int tm_idmap_operator_tokens(const struct tm_inifile *f, const char *op,
                             int (*cb)(void *arg, const char *digest), void *arg)
{
    char section[64];

    if (section_of(op, section, sizeof(section)) != 0)
        return 0;
    return tm_inifile_list_each(f, section, "tokens_sha256", cb, arg);
}
