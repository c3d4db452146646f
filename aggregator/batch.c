/*
 * batch.c - the increments of one flush, held in memory until the flush's MULTI/EXEC.
 *
 * Entries are (kind, key, member) -> int64, stored as one string "K\x1fkey\x1fmember" in
 * an open-addressing hash table (FNV-1a, linear probing, grown at 50% load). Emission
 * sorts the entries, so every (kind, key) group is contiguous and becomes one Redis
 * command or script call, and the same batch always produces the same commands in the
 * same order. Clearing keeps the table's memory for the next flush.
 */
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"

#define SEP '\x1f'

struct entry {
    char *name; /* "K\x1fkey\x1fmember"; NULL = empty slot */
    size_t keylen;
    int64_t v;
};

struct agg_batch {
    struct entry *slots;
    size_t cap, count;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct agg_batch *agg_batch_create(void)
{
    struct agg_batch *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->cap = 1024;
    b->slots = calloc(b->cap, sizeof(*b->slots));
    if (b->slots == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

void agg_batch_clear(struct agg_batch *b)
{
    for (size_t i = 0; i < b->cap; i++) {
        free(b->slots[i].name);
        b->slots[i].name = NULL;
    }
    b->count = 0;
}

void agg_batch_destroy(struct agg_batch *b)
{
    if (b == NULL)
        return;
    agg_batch_clear(b);
    free(b->slots);
    free(b);
}

size_t agg_batch_count(const struct agg_batch *b)
{
    return b->count;
}

/* Builds the entry name into a malloc'd string; *keylen = length of "K\x1fkey". */
static char *make_name(char kind, const char *key, const char *member, size_t *len, size_t *keylen)
{
    size_t kl = strlen(key), ml = strlen(member);
    char *s = malloc(kl + ml + 4);

    if (s == NULL)
        return NULL;
    s[0] = kind;
    s[1] = SEP;
    memcpy(s + 2, key, kl);
    s[2 + kl] = SEP;
    memcpy(s + 3 + kl, member, ml);
    s[3 + kl + ml] = '\0';
    *len = kl + ml + 3;
    *keylen = kl + 2;
    return s;
}

static struct entry *find(const struct agg_batch *b, const char *name, size_t len)
{
    size_t i = hash(name, len) & (b->cap - 1);

    while (b->slots[i].name != NULL && strcmp(b->slots[i].name, name) != 0)
        i = (i + 1) & (b->cap - 1);
    return &b->slots[i];
}

static int grow(struct agg_batch *b)
{
    struct entry *old = b->slots;
    size_t oldcap = b->cap;

    b->slots = calloc(oldcap * 2, sizeof(*b->slots));
    if (b->slots == NULL) {
        b->slots = old;
        return -1;
    }
    b->cap = oldcap * 2;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].name != NULL)
            *find(b, old[i].name, strlen(old[i].name)) = old[i];
    free(old);
    return 0;
}

int agg_batch_put(struct agg_batch *b, char kind, const char *key, const char *member, int64_t v,
                  enum agg_op op)
{
    size_t len, keylen;
    char *name = make_name(kind, key, member, &len, &keylen);
    struct entry *e;

    if (name == NULL)
        return -1;
    e = find(b, name, len);
    if (e->name != NULL) {
        free(name);
        if (op == AGG_OP_SUM)
            e->v += v;
        else if ((op == AGG_OP_MIN && v < e->v) || (op == AGG_OP_MAX && v > e->v))
            e->v = v;
        return 0;
    }
    if ((b->count + 1) * 2 > b->cap) {
        if (grow(b) != 0) {
            free(name);
            return -1;
        }
        e = find(b, name, len);
    }
    e->name = name;
    e->keylen = keylen;
    e->v = v;
    b->count++;
    return 0;
}

int agg_batch_get(const struct agg_batch *b, char kind, const char *key, const char *member,
                  int64_t *v)
{
    size_t len, keylen;
    char *name = make_name(kind, key, member, &len, &keylen);
    const struct entry *e;
    int rc = -1;

    if (name == NULL)
        return -1;
    e = find(b, name, len);
    if (e->name != NULL) {
        *v = e->v;
        rc = 0;
    }
    free(name);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    return strcmp(x->name, y->name);
}

int agg_batch_emit(struct agg_batch *b, int (*cb)(void *arg, const struct agg_group *g), void *arg)
{
    struct entry **sorted = NULL;
    const char **members = NULL;
    int64_t *values = NULL;
    char *key = NULL;
    size_t n = 0, maxkey = 0;
    int rc = -1;

    sorted = malloc((b->count + 1) * sizeof(*sorted));
    members = malloc((b->count + 1) * sizeof(*members));
    values = malloc((b->count + 1) * sizeof(*values));
    if (sorted == NULL || members == NULL || values == NULL)
        goto out;
    for (size_t i = 0; i < b->cap; i++)
        if (b->slots[i].name != NULL) {
            sorted[n++] = &b->slots[i];
            if (b->slots[i].keylen > maxkey)
                maxkey = b->slots[i].keylen;
        }
    qsort(sorted, n, sizeof(*sorted), cmp_entry);
    key = malloc(maxkey + 1);
    if (key == NULL)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i, kl = sorted[i]->keylen;
        struct agg_group g;

        while (j < n && sorted[j]->keylen == kl &&
               memcmp(sorted[j]->name, sorted[i]->name, kl) == 0) {
            members[j - i] = sorted[j]->name + kl + 1;
            values[j - i] = sorted[j]->v;
            j++;
        }
        memcpy(key, sorted[i]->name + 2, kl - 2);
        key[kl - 2] = '\0';
        g.kind = sorted[i]->name[0];
        g.key = key;
        g.members = members;
        g.values = values;
        g.n = j - i;
        rc = cb(arg, &g);
        i = j;
    }
out:
    free(key);
    free(values);
    free(members);
    free(sorted);
    return rc;
}
