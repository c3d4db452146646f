/*
 * identity.c - the identity map: which operator (and so which sector and region) a
 * sender is. A sender is known by a TLS client certificate name (subject CN or a SAN DNS
 * name), by an HTTP bearer token, or by its source address range (syslog appliances).
 *
 * The file is INI, one section per operator (docs/collector.md):
 *     [operator.ua-water-kyiv]
 *     sector = drinking-water
 *     region = UA-30
 *     certs = agent-7.vodokanal.example, agent-8.vodokanal.example
 *     tokens_sha256 = 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
 *     networks = 10.10.0.0/16, 2001:db8:7::/48
 *     [revoked]
 *     certs = agent-9.vodokanal.example
 *     tokens_sha256 = ...
 * A list too long for one line continues in KEY.N keys (certs.2 = ...).
 * [revoked] is the deny list: a certificate name or token there is refused even when an
 * operator section lists it (HTTP answers 403, a TLS connection is closed).
 * Tokens are stored only as SHA-256 hex digests, so the map holds no secret; a presented
 * token is hashed and compared in constant time. The map is immutable once loaded: a
 * reload builds a new one and swaps the pointer (collector.c).
 */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "tm/tm_config.h"
#include "tm/tm_tables.h"

struct network {
    int family;
    uint8_t addr[16];
    int prefix;
};

struct entry {
    struct identity id;
    char **certs;
    size_t ncerts;
    char (*tokens)[65];
    size_t ntokens;
    struct network *networks;
    size_t nnetworks;
};

struct identity_map {
    struct entry *entries;
    size_t n;
    struct entry revoked; /* [revoked]: certs and tokens_sha256 refused whoever lists them */
};

static struct entry *entry_for(struct identity_map *m, const char *op, char *err)
{
    struct entry *e;

    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->entries[i].id.operator_id, op) == 0)
            return &m->entries[i];
    e = realloc(m->entries, (m->n + 1) * sizeof(*e));
    if (e == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    m->entries = e;
    e = &m->entries[m->n++];
    memset(e, 0, sizeof(*e));
    if (tm_strlcpy(e->id.operator_id, op, sizeof(e->id.operator_id)) != 0) {
        tm_err(err, "operator id longer than %d bytes", TM_EVENT_NAME_MAX);
        return NULL;
    }
    return e;
}

static int parse_network(const char *s, struct network *out, char *err)
{
    char buf[64];
    char *slash;
    int64_t prefix;

    if (tm_strlcpy(buf, s, sizeof(buf)) != 0)
        return tm_err(err, "network '%s' too long", s);
    slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return tm_err(err, "'%s' is not an address or CIDR range", s);
    out->prefix = out->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        if (tm_parse_int64(slash + 1, 0, out->prefix, &prefix) != 0)
            return tm_err(err, "bad prefix length in '%s'", s);
        out->prefix = (int)prefix;
    }
    return 0;
}

/* Calls fn for each comma-separated, trimmed item of value. */
static int each_item(const char *value, int (*fn)(struct entry *, const char *, char *),
                     struct entry *e, char *err)
{
    const char *p = value;

    while (*p != '\0') {
        char item[256];
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

        while (n > 0 && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n >= sizeof(item))
            return tm_err(err, "item longer than %zu bytes", sizeof(item) - 1);
        if (n > 0) {
            memcpy(item, p, n);
            item[n] = '\0';
            if (fn(e, item, err) != 0)
                return -1;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

static int add_cert(struct entry *e, const char *item, char *err)
{
    char **v = realloc(e->certs, (e->ncerts + 1) * sizeof(*v));

    if (v == NULL || (v[e->ncerts] = strdup(item)) == NULL) {
        if (v != NULL)
            e->certs = v;
        return tm_err(err, "out of memory");
    }
    e->certs = v;
    e->ncerts++;
    return 0;
}

static int add_token(struct entry *e, const char *item, char *err)
{
    char(*v)[65];

    if (strlen(item) != 64 || strspn(item, "0123456789abcdef") != 64)
        return tm_err(err, "'%.16s...' is not a lowercase hex SHA-256 digest", item);
    v = realloc(e->tokens, (e->ntokens + 1) * sizeof(*v));
    if (v == NULL)
        return tm_err(err, "out of memory");
    e->tokens = v;
    memcpy(v[e->ntokens++], item, 65);
    return 0;
}

static int add_network(struct entry *e, const char *item, char *err)
{
    struct network *v = realloc(e->networks, (e->nnetworks + 1) * sizeof(*v));

    if (v == NULL)
        return tm_err(err, "out of memory");
    e->networks = v;
    return parse_network(item, &v[e->nnetworks++], err);
}

/*
 * True for key itself and for its continuations "key.N" (N digits): a list too long for
 * one line goes on in certs.2, certs.3, ... (tm_inifile.h; tmctl and enrollment write
 * them so), since a key may appear once per section.
 */
static bool list_key(const char *key, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(key, name, n) != 0)
        return false;
    if (key[n] == '\0')
        return true;
    return key[n] == '.' && key[n + 1] != '\0' &&
           strspn(key + n + 1, "0123456789") == strlen(key + n + 1);
}

static int map_key_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    struct identity_map *m = arg;
    struct entry *e;

    if (strcmp(section, "revoked") == 0) {
        if (list_key(key, "certs"))
            return each_item(value, add_cert, &m->revoked, err);
        if (list_key(key, "tokens_sha256"))
            return each_item(value, add_token, &m->revoked, err);
        return tm_err(err, "unknown key in [revoked] (certs, tokens_sha256)");
    }
    if (strncmp(section, "operator.", 9) != 0)
        return tm_err(err, "unknown section (expected [operator.ID] or [revoked])");
    e = entry_for(m, section + 9, err);
    if (e == NULL)
        return -1;
    if (strcmp(key, "sector") == 0) {
        if (tm_sector_find(value) == NULL)
            return tm_err(err, "unknown sector");
        return tm_strlcpy(e->id.sector, value, sizeof(e->id.sector));
    }
    if (strcmp(key, "region") == 0) {
        if (tm_region_find(value) == NULL)
            return tm_err(err, "unknown ISO 3166-2:UA region");
        return tm_strlcpy(e->id.region, value, sizeof(e->id.region));
    }
    if (list_key(key, "certs"))
        return each_item(value, add_cert, e, err);
    if (list_key(key, "tokens_sha256"))
        return each_item(value, add_token, e, err);
    if (list_key(key, "networks"))
        return each_item(value, add_network, e, err);
    return tm_err(err, "unknown key (sector, region, certs, tokens_sha256, networks)");
}

struct identity_map *identity_map_load(const char *path, char *err)
{
    static const struct tm_config_option none[] = {
        {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL}};
    struct identity_map *m = calloc(1, sizeof(*m));
    struct tm_config_spec spec = {none, map_key_cb, m};
    char dummy;

    if (m == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    if (tm_config_load(&spec, &dummy, path, err) != 0)
        goto fail;
    for (size_t i = 0; i < m->n; i++)
        if (m->entries[i].id.sector[0] == '\0') {
            tm_err(err, "%s: [operator.%s] has no sector", path, m->entries[i].id.operator_id);
            goto fail;
        }
    return m;
fail:
    identity_map_free(m);
    return NULL;
}

static void entry_free(struct entry *e)
{
    for (size_t k = 0; k < e->ncerts; k++)
        free(e->certs[k]);
    free(e->certs);
    free(e->tokens);
    free(e->networks);
}

void identity_map_free(struct identity_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        entry_free(&m->entries[i]);
    entry_free(&m->revoked);
    free(m->entries);
    free(m);
}

int identity_by_cert_name(const struct identity_map *m, const char *name, struct identity *out)
{
    for (size_t k = 0; m != NULL && k < m->revoked.ncerts; k++)
        if (strcmp(m->revoked.certs[k], name) == 0)
            return IDENTITY_REVOKED;
    for (size_t i = 0; m != NULL && i < m->n; i++)
        for (size_t k = 0; k < m->entries[i].ncerts; k++)
            if (strcmp(m->entries[i].certs[k], name) == 0) {
                *out = m->entries[i].id;
                return 0;
            }
    return -1;
}

int identity_by_token(const struct identity_map *m, const char *token, struct identity *out)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];
    int found = -1;

    if (m == NULL || EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + i * 2, 3, "%02x", md[i]);
    /* Compare against every token, in constant time each, and do not stop early. */
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < m->entries[i].ntokens; k++)
            if (CRYPTO_memcmp(m->entries[i].tokens[k], hex, 64) == 0 && found < 0) {
                *out = m->entries[i].id;
                found = 0;
            }
    for (size_t k = 0; k < m->revoked.ntokens; k++)
        if (CRYPTO_memcmp(m->revoked.tokens[k], hex, 64) == 0)
            found = IDENTITY_REVOKED;
    return found;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    return rest == 0 || ((a[bytes] ^ b[bytes]) & (0xFF << (8 - rest))) == 0;
}

int identity_by_addr(const struct identity_map *m, const struct sockaddr *sa, struct identity *out)
{
    const uint8_t *addr;
    int family = sa->sa_family;
    const struct entry *best = NULL;
    int best_prefix = -1;

    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        addr = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        /* IPv4-mapped IPv6 addresses match IPv4 ranges. */
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)addr)) {
            addr += 12;
            family = AF_INET;
        }
    } else {
        return -1;
    }
    /* Longest prefix wins. */
    for (size_t i = 0; m != NULL && i < m->n; i++)
        for (size_t k = 0; k < m->entries[i].nnetworks; k++) {
            const struct network *n = &m->entries[i].networks[k];
            if (n->family == family && n->prefix > best_prefix &&
                prefix_match(n->addr, addr, n->prefix)) {
                best = &m->entries[i];
                best_prefix = n->prefix;
            }
        }
    if (best == NULL)
        return -1;
    *out = best->id;
    return 0;
}
