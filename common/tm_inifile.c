/*
 * tm_inifile.c - a line-preserving INI editor (tm_inifile.h). The model is the file's
 * lines as they were read (without their '\n'; a '\r' stays part of its line). Nothing is
 * parsed ahead: each query walks the lines, classifies them the way inih does and looks
 * at the ones in the wanted section. An edit changes one line in place, or inserts lines;
 * nothing else moves. Files are small (identity maps), so linear scans are fine.
 */
#include "tm/tm_inifile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_file.h"

struct tm_inifile {
    char **lines;
    size_t n, cap;
};

/* What one line is, with offsets into it. */
enum line_kind { LINE_BLANK, LINE_COMMENT, LINE_SECTION, LINE_KEY, LINE_OTHER };

struct line_info {
    enum line_kind kind;
    size_t name_start, name_len;   /* section name, or key */
    size_t value_start, value_end; /* LINE_KEY: the value, without an inline comment */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void classify(const char *s, struct line_info *li)
{
    size_t len = strlen(s), i = 0, end;

    memset(li, 0, sizeof(*li));
    while (i < len && is_space(s[i]))
        i++;
    end = len;
    while (end > i && is_space(s[end - 1]))
        end--;
    if (i == end) {
        li->kind = LINE_BLANK;
        return;
    }
    if (s[i] == ';' || s[i] == '#') {
        li->kind = LINE_COMMENT;
        return;
    }
    if (s[i] == '[') {
        const char *close = memchr(s + i + 1, ']', end - i - 1);
        if (close == NULL) {
            li->kind = LINE_OTHER;
            return;
        }
        li->kind = LINE_SECTION;
        li->name_start = i + 1;
        li->name_len = (size_t)(close - (s + i + 1));
        return;
    }
    /* key: up to the first '=' or ':' (an inline comment before it makes it no key line) */
    for (size_t k = i; k < end; k++) {
        if (s[k] == ';' && k > i && is_space(s[k - 1])) {
            li->kind = LINE_OTHER;
            return;
        }
        if (s[k] == '=' || s[k] == ':') {
            size_t kend = k, v = k + 1, vend = end;
            while (kend > i && is_space(s[kend - 1]))
                kend--;
            while (v < end && is_space(s[v]))
                v++;
            for (size_t c = v; c < end; c++)
                if (s[c] == ';' && c > v && is_space(s[c - 1])) {
                    vend = c;
                    break;
                }
            while (vend > v && is_space(s[vend - 1]))
                vend--;
            li->kind = LINE_KEY;
            li->name_start = i;
            li->name_len = kend - i;
            li->value_start = v;
            li->value_end = vend;
            return;
        }
    }
    li->kind = LINE_OTHER;
}

static bool name_is(const char *s, const struct line_info *li, const char *name)
{
    return strlen(name) == li->name_len && memcmp(s + li->name_start, name, li->name_len) == 0;
}

/*
 * 0 when the key of li is not the list key; 1 for KEY itself; N for "KEY.N" (N >= 2 in
 * practice; any run of digits is accepted).
 */
static long list_key_index(const char *s, const struct line_info *li, const char *key)
{
    size_t klen = strlen(key);
    long n = 0;

    if (li->kind != LINE_KEY || li->name_len < klen || memcmp(s + li->name_start, key, klen) != 0)
        return 0;
    if (li->name_len == klen)
        return 1;
    if (s[li->name_start + klen] != '.' || li->name_len == klen + 1)
        return 0;
    for (size_t i = li->name_start + klen + 1; i < li->name_start + li->name_len; i++) {
        if (!isdigit((unsigned char)s[i]) || n > 100000)
            return 0;
        n = n * 10 + (s[i] - '0');
    }
    return n > 0 ? n : 0;
}

/* ---- model ------------------------------------------------------------------------- */

static int insert_line(struct tm_inifile *f, size_t at, const char *text)
{
    char *copy = strdup(text);

    if (copy == NULL)
        return -1;
    if (f->n == f->cap) {
        size_t cap = f->cap == 0 ? 16 : f->cap * 2;
        char **v = realloc(f->lines, cap * sizeof(*v));
        if (v == NULL) {
            free(copy);
            return -1;
        }
        f->lines = v;
        f->cap = cap;
    }
    memmove(f->lines + at + 1, f->lines + at, (f->n - at) * sizeof(*f->lines));
    f->lines[at] = copy;
    f->n++;
    return 0;
}

struct tm_inifile *tm_inifile_parse(const char *text, size_t len)
{
    struct tm_inifile *f = calloc(1, sizeof(*f));
    size_t pos = 0;

    if (f == NULL)
        return NULL;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        char *line = malloc(n + 1);

        if (line == NULL) {
            tm_inifile_free(f);
            return NULL;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        if (insert_line(f, f->n, line) != 0) {
            free(line);
            tm_inifile_free(f);
            return NULL;
        }
        free(line);
        pos += n + (nl != NULL ? 1 : 0);
    }
    return f;
}

int tm_inifile_load(const char *path, struct tm_inifile **out, char *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = tm_file_read(path, TM_INIFILE_MAX, true, &text, &len, err);

    if (rc < 0)
        return -1;
    *out = tm_inifile_parse(text != NULL ? text : "", len);
    free(text);
    if (*out == NULL)
        return tm_err(err, "cannot read '%s': out of memory", path);
    return 0;
}

char *tm_inifile_text(const struct tm_inifile *f, size_t *len)
{
    size_t total = 0, pos = 0;
    char *out;

    for (size_t i = 0; i < f->n; i++)
        total += strlen(f->lines[i]) + 1;
    out = malloc(total + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < f->n; i++) {
        size_t n = strlen(f->lines[i]);
        memcpy(out + pos, f->lines[i], n);
        pos += n;
        out[pos++] = '\n';
    }
    out[pos] = '\0';
    if (len != NULL)
        *len = pos;
    return out;
}

int tm_inifile_save(const struct tm_inifile *f, const char *path, unsigned mode, char *err)
{
    size_t len;
    char *text = tm_inifile_text(f, &len);
    int rc;

    if (text == NULL)
        return tm_err(err, "cannot write '%s': out of memory", path);
    rc = tm_file_write_atomic(path, text, len, (mode_t)mode, TM_FILE_KEEP_MODE, err);
    free(text);
    return rc;
}

void tm_inifile_free(struct tm_inifile *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->lines[i]);
    free(f->lines);
    free(f);
}

/* ---- queries ----------------------------------------------------------------------- */

/*
 * Walks the lines of every block of section: calls fn for each line inside one (not the
 * header). Stops when fn returns non-zero and returns that value.
 */
static int each_in_section(const struct tm_inifile *f, const char *section,
                           int (*fn)(void *arg, size_t idx, const struct line_info *li), void *arg)
{
    bool inside = section[0] == '\0';

    for (size_t i = 0; i < f->n; i++) {
        struct line_info li;
        int rc;

        classify(f->lines[i], &li);
        if (li.kind == LINE_SECTION) {
            inside = name_is(f->lines[i], &li, section);
            continue;
        }
        if (inside && (rc = fn(arg, i, &li)) != 0)
            return rc;
    }
    return 0;
}

bool tm_inifile_has_section(const struct tm_inifile *f, const char *section)
{
    for (size_t i = 0; i < f->n; i++) {
        struct line_info li;
        classify(f->lines[i], &li);
        if (li.kind == LINE_SECTION && name_is(f->lines[i], &li, section))
            return true;
    }
    return false;
}

int tm_inifile_sections(const struct tm_inifile *f, const char *prefix,
                        int (*cb)(void *arg, const char *section), void *arg)
{
    size_t plen = strlen(prefix);

    for (size_t i = 0; i < f->n; i++) {
        struct line_info li;
        char name[256];
        int rc;

        classify(f->lines[i], &li);
        if (li.kind != LINE_SECTION || li.name_len >= sizeof(name) || li.name_len < plen ||
            memcmp(f->lines[i] + li.name_start, prefix, plen) != 0)
            continue;
        memcpy(name, f->lines[i] + li.name_start, li.name_len);
        name[li.name_len] = '\0';
        if ((rc = cb(arg, name)) != 0)
            return rc;
    }
    return 0;
}

struct get_ctx {
    const struct tm_inifile *f;
    const char *key;
    size_t idx;
    struct line_info li;
};

static int find_key_fn(void *arg, size_t idx, const struct line_info *li)
{
    struct get_ctx *g = arg;

    if (li->kind == LINE_KEY && name_is(g->f->lines[idx], li, g->key)) {
        g->idx = idx;
        g->li = *li;
        return 1;
    }
    return 0;
}

int tm_inifile_get(const struct tm_inifile *f, const char *section, const char *key, char *out,
                   size_t outlen)
{
    struct get_ctx g = {f, key, 0, {0}};
    size_t n;

    if (outlen > 0)
        out[0] = '\0';
    if (each_in_section(f, section, find_key_fn, &g) == 0)
        return -1;
    n = g.li.value_end - g.li.value_start;
    if (n >= outlen)
        return -2;
    memcpy(out, f->lines[g.idx] + g.li.value_start, n);
    out[n] = '\0';
    return 0;
}

struct list_ctx {
    const struct tm_inifile *f;
    const char *key;
    int (*cb)(void *arg, const char *item);
    void *arg;
};

static int list_fn(void *arg, size_t idx, const struct line_info *li)
{
    struct list_ctx *l = arg;
    const char *s = l->f->lines[idx];
    size_t p = li->value_start;

    if (list_key_index(s, li, l->key) == 0)
        return 0;
    while (p < li->value_end) {
        const char *comma = memchr(s + p, ',', li->value_end - p);
        size_t end = comma != NULL ? (size_t)(comma - s) : li->value_end, a = p, b = end;
        char item[1024];
        int rc;

        while (a < b && is_space(s[a]))
            a++;
        while (b > a && is_space(s[b - 1]))
            b--;
        if (b > a) {
            size_t n = b - a < sizeof(item) - 1 ? b - a : sizeof(item) - 1;
            memcpy(item, s + a, n);
            item[n] = '\0';
            if ((rc = l->cb(l->arg, item)) != 0)
                return rc;
        }
        p = end + 1;
    }
    return 0;
}

int tm_inifile_list_each(const struct tm_inifile *f, const char *section, const char *key,
                         int (*cb)(void *arg, const char *item), void *arg)
{
    struct list_ctx l = {f, key, cb, arg};

    return each_in_section(f, section, list_fn, &l);
}

static int has_cb(void *arg, const char *item)
{
    return strcmp(item, arg) == 0 ? 1 : 0;
}

bool tm_inifile_list_has(const struct tm_inifile *f, const char *section, const char *key,
                         const char *item)
{
    return tm_inifile_list_each(f, section, key, has_cb, (void *)item) == 1;
}

/* ---- edits ------------------------------------------------------------------------- */

/* Where a new key of section goes, and what the list KEY looks like there. */
struct place {
    bool found;     /* the section has a header */
    size_t header;  /* its last header line */
    size_t last_kv; /* last key line of that block (header when none) */
    bool has_list;
    size_t last_list; /* last KEY / KEY.N line of that block */
    long max_index;   /* highest N (KEY counts as 1) */
};

static void locate(const struct tm_inifile *f, const char *section, const char *key,
                   struct place *pl)
{
    bool inside = false;

    memset(pl, 0, sizeof(*pl));
    for (size_t i = 0; i < f->n; i++) {
        struct line_info li;
        long idx;

        classify(f->lines[i], &li);
        if (li.kind == LINE_SECTION) {
            inside = name_is(f->lines[i], &li, section);
            if (inside) { /* a later block of the same section: start over there */
                memset(pl, 0, sizeof(*pl));
                pl->found = true;
                pl->header = pl->last_kv = i;
            }
            continue;
        }
        if (!inside || li.kind != LINE_KEY)
            continue;
        pl->last_kv = i;
        if (key != NULL && (idx = list_key_index(f->lines[i], &li, key)) > 0) {
            pl->has_list = true;
            pl->last_list = i;
            if (idx > pl->max_index)
                pl->max_index = idx;
        }
    }
}

/* Appends "[section]" (after a blank line) and returns the header's index. */
static int add_section(struct tm_inifile *f, const char *section, size_t *header)
{
    char line[512];

    if (snprintf(line, sizeof(line), "[%s]", section) >= (int)sizeof(line))
        return -1;
    if (f->n > 0) {
        struct line_info li;
        classify(f->lines[f->n - 1], &li);
        if (li.kind != LINE_BLANK && insert_line(f, f->n, "") != 0)
            return -1;
    }
    if (insert_line(f, f->n, line) != 0)
        return -1;
    *header = f->n - 1;
    return 0;
}

/* Replaces line idx with line[0..a) + middle + line[b..). */
static int splice(struct tm_inifile *f, size_t idx, size_t a, size_t b, const char *middle)
{
    const char *s = f->lines[idx];
    size_t slen = strlen(s), mlen = strlen(middle);
    char *n = malloc(a + mlen + (slen - b) + 1);

    if (n == NULL)
        return -1;
    memcpy(n, s, a);
    memcpy(n + a, middle, mlen);
    memcpy(n + a + mlen, s + b, slen - b + 1);
    free(f->lines[idx]);
    f->lines[idx] = n;
    return 0;
}

static bool safe_text(const char *s, const char *forbidden)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || strchr(forbidden, *s) != NULL)
            return false;
    return true;
}

int tm_inifile_list_add(struct tm_inifile *f, const char *section, const char *key,
                        const char *item, char *err)
{
    struct place pl;
    char line[TM_INIFILE_LIST_LINE + 64];

    if (item[0] == '\0' || is_space(item[0]) || is_space(item[strlen(item) - 1]) ||
        !safe_text(item, ",;#[]=") || strlen(item) > 1000)
        return tm_err(err, "'%.64s' cannot be an item of a list", item);
    if (!safe_text(section, "[]") || !safe_text(key, "[]=:;#"))
        return tm_err(err, "bad section or key name");
    if (tm_inifile_list_has(f, section, key, item))
        return 0;
    locate(f, section, key, &pl);
    if (!pl.found) {
        if (add_section(f, section, &pl.header) != 0)
            return tm_err(err, "out of memory");
        pl.last_kv = pl.header;
    }
    if (pl.has_list) {
        const char *s = f->lines[pl.last_list];
        struct line_info li;

        classify(s, &li);
        if (strlen(s) + strlen(item) + 2 <= TM_INIFILE_LIST_LINE) {
            char middle[TM_INIFILE_LIST_LINE + 8];
            if (li.value_end == li.value_start) /* "certs =": the first item */
                snprintf(middle, sizeof(middle), "%s%s", is_space(s[li.value_end - 1]) ? "" : " ",
                         item);
            else
                snprintf(middle, sizeof(middle), ", %s", item);
            if (splice(f, pl.last_list, li.value_end, li.value_end, middle) != 0)
                return tm_err(err, "out of memory");
            return 0;
        }
        snprintf(line, sizeof(line), "%s.%ld = %s", key, pl.max_index + 1, item);
        if (insert_line(f, pl.last_list + 1, line) != 0)
            return tm_err(err, "out of memory");
        return 0;
    }
    snprintf(line, sizeof(line), "%s = %s", key, item);
    if (insert_line(f, pl.last_kv + 1, line) != 0)
        return tm_err(err, "out of memory");
    return 0;
}

int tm_inifile_set(struct tm_inifile *f, const char *section, const char *key, const char *value,
                   char *err)
{
    struct get_ctx g = {f, key, 0, {0}};
    struct place pl;
    char line[1200];

    if (!safe_text(value, ";") || strlen(value) > 1000 ||
        (value[0] != '\0' && (is_space(value[0]) || is_space(value[strlen(value) - 1]))))
        return tm_err(err, "'%.64s' cannot be a value", value);
    if (!safe_text(section, "[]") || !safe_text(key, "[]=:;#"))
        return tm_err(err, "bad section or key name");
    if (each_in_section(f, section, find_key_fn, &g) != 0) {
        const char *s = f->lines[g.idx];
        char middle[1100];
        snprintf(middle, sizeof(middle), "%s%s",
                 g.li.value_start > 0 && !is_space(s[g.li.value_start - 1]) ? " " : "", value);
        if (splice(f, g.idx, g.li.value_start, g.li.value_end, middle) != 0)
            return tm_err(err, "out of memory");
        return 0;
    }
    locate(f, section, NULL, &pl);
    if (!pl.found) {
        if (add_section(f, section, &pl.header) != 0)
            return tm_err(err, "out of memory");
        pl.last_kv = pl.header;
    }
    snprintf(line, sizeof(line), "%s = %s", key, value);
    if (insert_line(f, pl.last_kv + 1, line) != 0)
        return tm_err(err, "out of memory");
    return 0;
}
