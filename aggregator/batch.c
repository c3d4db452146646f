/*
 * batch.c - the increments of one flush, held in memory until the flush's MULTI/EXEC.
 *
 * Entries are (kind, key, member) -> int64, named by one string "K\x1fkey\x1fmember".
 * Names live in one arena (a growing char buffer, addressed by offset), entries in a
 * dense array in insertion order, and an open-addressing index (linear probing, grown at
 * 50% load) maps a name's hash to its entry. A put builds the name on the stack, hashes
 * it eight bytes at a time and compares the stored hash before the bytes, so the common
 * case (the entry exists) allocates nothing: a flush makes tens of puts per event, and
 * this is the aggregator's innermost loop.
 *
 * Emission sorts the entries by name, so every (kind, key) group is contiguous and becomes
 * one Redis command or script call, and the same batch always produces the same commands
 * in the same order. Clearing keeps every buffer for the next flush.
 */
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"

#define SEP '\x1f'
#define NAME_STACK 512 /* names up to this long are built without allocating */

struct entry {
    uint64_t hash;
    size_t name;   /* offset of the NUL-terminated name in the arena */
    uint32_t len;  /* strlen of the name */
    uint32_t klen; /* length of "K\x1fkey" */
    int64_t v;
};

struct agg_batch {
    struct entry *entries;
    size_t count, cap_entries;
    uint32_t *index; /* 0 = empty, else entry number + 1 */
    size_t cap_index;
    char *arena;
    size_t used, cap_arena;
};

/* A 64-bit hash of n bytes: one multiply per 8-byte word, then murmur3's finaliser. */
static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    uint64_t w;

    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
    }
    if (n > 0) {
        w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

struct agg_batch *agg_batch_create(void)
{
    struct agg_batch *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->cap_index = 1024;
    b->index = calloc(b->cap_index, sizeof(*b->index));
    if (b->index == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

void agg_batch_clear(struct agg_batch *b)
{
    if (b->count > 0)
        memset(b->index, 0, b->cap_index * sizeof(*b->index));
    b->count = 0;
    b->used = 0;
}

void agg_batch_destroy(struct agg_batch *b)
{
    if (b == NULL)
        return;
    free(b->entries);
    free(b->index);
    free(b->arena);
    free(b);
}

size_t agg_batch_count(const struct agg_batch *b)
{
    return b->count;
}

/*
 * Builds "K\x1fkey\x1fmember" into buf (len bytes), or into a malloc'd buffer stored in
 * *heap when it does not fit. Returns the name (NULL out of memory) with *n its length and
 * *klen the length of "K\x1fkey".
 */
static char *make_name(char *buf, size_t len, char **heap, char kind, const char *key,
                       const char *member, size_t *n, size_t *klen)
{
    size_t kl = strlen(key), ml = strlen(member);
    char *s = buf;

    *heap = NULL;
    if (kl + ml + 4 > len) {
        s = *heap = malloc(kl + ml + 4);
        if (s == NULL)
            return NULL;
    }
    s[0] = kind;
    s[1] = SEP;
    memcpy(s + 2, key, kl);
    s[2 + kl] = SEP;
    memcpy(s + 3 + kl, member, ml);
    s[3 + kl + ml] = '\0';
    *n = kl + ml + 3;
    *klen = kl + 2;
    return s;
}

/* The index slot holding name, or the empty slot where it would go. */
static uint32_t *find(const struct agg_batch *b, const char *name, size_t n, uint64_t h)
{
    size_t mask = b->cap_index - 1, i = (size_t)h & mask;

    for (;; i = (i + 1) & mask) {
        const struct entry *e;
        if (b->index[i] == 0)
            return &b->index[i];
        e = &b->entries[b->index[i] - 1];
        if (e->hash == h && e->len == n && memcmp(b->arena + e->name, name, n) == 0)
            return &b->index[i];
    }
}

static int grow_index(struct agg_batch *b)
{
    size_t cap = b->cap_index * 2, mask = cap - 1;
    uint32_t *index = calloc(cap, sizeof(*index));

    if (index == NULL)
        return -1;
    for (size_t k = 0; k < b->count; k++) {
        size_t i = (size_t)b->entries[k].hash & mask;
        while (index[i] != 0)
            i = (i + 1) & mask;
        index[i] = (uint32_t)(k + 1);
    }
    free(b->index);
    b->index = index;
    b->cap_index = cap;
    return 0;
}

/* Appends a new entry named name (n bytes); returns it, or NULL out of memory. */
static struct entry *add(struct agg_batch *b, const char *name, size_t n, size_t klen, uint64_t h)
{
    struct entry *e;
    uint32_t *slot;

    if (b->count == b->cap_entries) {
        size_t cap = b->cap_entries == 0 ? 512 : b->cap_entries * 2;
        struct entry *v = realloc(b->entries, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        b->entries = v;
        b->cap_entries = cap;
    }
    if (b->used + n + 1 > b->cap_arena) {
        size_t cap = b->cap_arena == 0 ? 65536 : b->cap_arena;
        char *v;
        while (b->used + n + 1 > cap)
            cap *= 2;
        v = realloc(b->arena, cap);
        if (v == NULL)
            return NULL;
        b->arena = v;
        b->cap_arena = cap;
    }
    if ((b->count + 1) * 2 > b->cap_index && grow_index(b) != 0)
        return NULL;
    slot = find(b, name, n, h);
    e = &b->entries[b->count];
    e->hash = h;
    e->name = b->used;
    e->len = (uint32_t)n;
    e->klen = (uint32_t)klen;
    e->v = 0;
    memcpy(b->arena + b->used, name, n + 1);
    b->used += n + 1;
    b->count++;
    *slot = (uint32_t)b->count;
    return e;
}

/*
 * The entry named (kind, key, member), added with value v when absent. Returns it (*added
 * says which case), or NULL out of memory.
 */
static struct entry *locate(struct agg_batch *b, char kind, const char *key, const char *member,
                            int64_t v, bool *added)
{
    char buf[NAME_STACK], *heap;
    size_t n, klen;
    const char *name = make_name(buf, sizeof(buf), &heap, kind, key, member, &n, &klen);
    uint64_t h;
    uint32_t *slot;
    struct entry *e = NULL;

    if (name == NULL)
        return NULL;
    h = hash(name, n);
    slot = find(b, name, n, h);
    *added = *slot == 0;
    if (!*added)
        e = &b->entries[*slot - 1];
    else if ((e = add(b, name, n, klen, h)) != NULL)
        e->v = v;
    free(heap);
    return e;
}

int agg_batch_put(struct agg_batch *b, char kind, const char *key, const char *member, int64_t v,
                  enum agg_op op)
{
    bool added;
    struct entry *e = locate(b, kind, key, member, v, &added);

    if (e == NULL)
        return -1;
    if (added)
        return 0;
    if (op == AGG_OP_SUM)
        e->v += v;
    else if ((op == AGG_OP_MIN && v < e->v) || (op == AGG_OP_MAX && v > e->v))
        e->v = v;
    return 0;
}

int agg_batch_insert(struct agg_batch *b, char kind, const char *key, const char *member, int64_t v,
                     int64_t *old)
{
    bool added;
    struct entry *e = locate(b, kind, key, member, v, &added);

    if (e == NULL)
        return -1;
    if (!added && old != NULL)
        *old = e->v;
    return added ? 1 : 0;
}

int agg_batch_get(const struct agg_batch *b, char kind, const char *key, const char *member,
                  int64_t *v)
{
    char buf[NAME_STACK], *heap;
    size_t n, klen;
    const char *name = make_name(buf, sizeof(buf), &heap, kind, key, member, &n, &klen);
    uint32_t *slot;
    int rc = -1;

    if (name == NULL)
        return -1;
    slot = find(b, name, n, hash(name, n));
    if (*slot != 0) {
        *v = b->entries[*slot - 1].v;
        rc = 0;
    }
    free(heap);
    return rc;
}

static int cmp_entry(const void *a, const void *b, void *arena)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    return strcmp((const char *)arena + x->name, (const char *)arena + y->name);
}

int agg_batch_emit(struct agg_batch *b, int (*cb)(void *arg, const struct agg_group *g), void *arg)
{
    struct entry **sorted = NULL;
    const char **members = NULL;
    int64_t *values = NULL;
    char *key = NULL;
    size_t n = b->count, maxkey = 0;
    int rc = -1;

    sorted = malloc((n + 1) * sizeof(*sorted));
    members = malloc((n + 1) * sizeof(*members));
    values = malloc((n + 1) * sizeof(*values));
    if (sorted == NULL || members == NULL || values == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &b->entries[i];
        if (b->entries[i].klen > maxkey)
            maxkey = b->entries[i].klen;
    }
    qsort_r(sorted, n, sizeof(*sorted), cmp_entry, b->arena);
    key = malloc(maxkey + 1);
    if (key == NULL)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i, kl = sorted[i]->klen;
        const char *first = b->arena + sorted[i]->name;
        struct agg_group g;

        while (j < n && sorted[j]->klen == kl &&
               memcmp(b->arena + sorted[j]->name, first, kl) == 0) {
            members[j - i] = b->arena + sorted[j]->name + kl + 1;
            values[j - i] = sorted[j]->v;
            j++;
        }
        memcpy(key, first + 2, kl - 2);
        key[kl - 2] = '\0';
        g.kind = first[0];
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
