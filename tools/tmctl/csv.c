/*
 * csv.c - comma-separated values as planners' spreadsheets write them (RFC 4180): a
 * reader that hands out one record at a time with the spreadsheet's row number, and a
 * writer that quotes what must be quoted and defuses formulas.
 *
 * The reader works on a buffer the caller owns (files are small: CTL_CSV_MAX). Each
 * record's fields are copied into one growing buffer, NUL-separated, and the pointer
 * array is rebuilt after the record is complete (the buffer may move while growing).
 * Rows are numbered as a spreadsheet numbers them: one per record, the header being row
 * 1; blank lines count as rows and are skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tmctl.h"

#define FIELD_MAX (64u << 10)
#define FIELDS_MAX 256

struct ctl_csv {
    const char *p, *end;
    long row;
    char *buf; /* the current record's fields, NUL-separated */
    size_t len, cap;
    size_t starts[FIELDS_MAX];
    char *fields[FIELDS_MAX];
};

struct ctl_csv *ctl_csv_create(const char *data, size_t len)
{
    struct ctl_csv *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        len -= 3;
    }
    c->p = data;
    c->end = data + len;
    return c;
}

void ctl_csv_destroy(struct ctl_csv *c)
{
    if (c == NULL)
        return;
    free(c->buf);
    free(c);
}

static int put(struct ctl_csv *c, char ch)
{
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        char *b = realloc(c->buf, cap);
        if (b == NULL)
            return -1;
        c->buf = b;
        c->cap = cap;
    }
    c->buf[c->len++] = ch;
    return 0;
}

/* Appends one byte of field nf to the record; errors name the row and column. */
static int put_field(struct ctl_csv *c, char ch, size_t *flen, size_t nf, char *err)
{
    if (ch == '\0')
        return tm_err(err, "row %ld, column %zu: NUL byte", c->row, nf + 1);
    if (++*flen > FIELD_MAX)
        return tm_err(err, "row %ld, column %zu: field longer than %u bytes", c->row, nf + 1,
                      FIELD_MAX);
    if (put(c, ch) != 0)
        return tm_err(err, "out of memory");
    return 0;
}

/* True at a line end; consumes it. */
static bool eol(struct ctl_csv *c)
{
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        return true;
    }
    if (c->p < c->end && *c->p == '\r') {
        c->p++;
        if (c->p < c->end && *c->p == '\n')
            c->p++;
        return true;
    }
    return false;
}

int ctl_csv_next(struct ctl_csv *c, char ***fields, size_t *n, long *row, char *err)
{
    size_t nf = 0, flen;
    bool done = false;

    /* Blank lines are rows of their own, skipped. */
    for (;;) {
        if (c->p >= c->end)
            return 0;
        c->row++;
        if (!eol(c))
            break;
    }
    c->len = 0;
    while (!done) {
        if (nf == FIELDS_MAX)
            return tm_err(err, "row %ld: more than %d columns", c->row, FIELDS_MAX);
        c->starts[nf] = c->len;
        flen = 0;
        if (c->p < c->end && *c->p == '"') {
            c->p++;
            for (;;) {
                if (c->p >= c->end)
                    return tm_err(err, "row %ld, column %zu: quoted field never closed", c->row,
                                  nf + 1);
                if (*c->p == '"') {
                    if (c->p + 1 < c->end && c->p[1] == '"') {
                        c->p += 2;
                        if (put_field(c, '"', &flen, nf, err) != 0)
                            return -1;
                        continue;
                    }
                    c->p++;
                    break;
                }
                if (put_field(c, *c->p++, &flen, nf, err) != 0)
                    return -1;
            }
            if (c->p < c->end && *c->p == ',')
                c->p++;
            else if (c->p >= c->end || eol(c))
                done = true;
            else
                return tm_err(err, "row %ld, column %zu: '%c' after a closing quote", c->row,
                              nf + 1, *c->p);
        } else {
            for (;;) {
                if (c->p >= c->end || eol(c)) {
                    done = true;
                    break;
                }
                if (*c->p == ',') {
                    c->p++;
                    break;
                }
                if (*c->p == '"')
                    return tm_err(err,
                                  "row %ld, column %zu: quote inside an unquoted field "
                                  "(quote the whole field and double the quote)",
                                  c->row, nf + 1);
                if (put_field(c, *c->p++, &flen, nf, err) != 0)
                    return -1;
            }
        }
        if (put(c, '\0') != 0)
            return tm_err(err, "out of memory");
        nf++;
    }
    for (size_t i = 0; i < nf; i++)
        c->fields[i] = c->buf + c->starts[i];
    *fields = c->fields;
    *n = nf;
    *row = c->row;
    return 1;
}

int ctl_read_file(const char *path, char **out, size_t *len, char *err)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    struct stat st;
    size_t got;
    int rc = -1;

    *out = NULL;
    if (fp == NULL)
        return tm_err(err, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) != 0) {
        tm_err(err, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CTL_CSV_MAX) {
        tm_err(err, "'%s': not a regular file of at most %u bytes", path, CTL_CSV_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    got = fread(buf, 1, (size_t)st.st_size, fp);
    if (got != (size_t)st.st_size || ferror(fp)) {
        tm_err(err, "cannot read '%s'", path);
        goto out;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(fp);
    return rc;
}

/* A plain decimal number ("-12", "3.5"): safe in a spreadsheet as it is. */
static bool numeric(const char *s)
{
    const char *p = s;

    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

void ctl_csv_write(FILE *f, const char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = fields[i] != NULL ? fields[i] : "";
        bool guard = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL && !numeric(s);
        bool quote = guard || strpbrk(s, ",\"\r\n") != NULL;

        if (i > 0)
            fputc(',', f);
        if (quote)
            fputc('"', f);
        if (guard)
            fputc('\'', f);
        for (const char *p = s; *p != '\0'; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        if (quote)
            fputc('"', f);
    }
    fputs("\r\n", f);
}
