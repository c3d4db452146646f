/*
 * import.c - a CSV file of needs or offers into records, all or nothing: the header is
 * checked, then every row is validated (column count, every field, ids unique in the
 * file) before anything is written, and every bad row is reported with its row number
 * and column, not only the first. The caller writes the records in one transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "tmctl.h"

#define ERRORS_MAX 50

struct row {
    char **header, **fields;
    size_t n;
};

static const char *row_get(void *arg, const char *name)
{
    const struct row *r = arg;

    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->header[i], name) == 0)
            return r->fields[i];
    return NULL;
}

int ctl_import_csv(const char *path, const char *const *fields, const char *const *required,
                   size_t recsize, ctl_row_cb parse, int64_t today, void **out, size_t *nout)
{
    char *data = NULL, *recs = NULL, err[TM_ERR_LEN];
    char **header = NULL;
    long *rows = NULL;
    size_t len, nhead = 0, n = 0, cap = 0, errors = 0;
    struct ctl_csv *csv = NULL;
    char **f;
    size_t nf;
    long row;
    int r, rc = -1;

    *out = NULL;
    *nout = 0;
    if (ctl_read_file(path, &data, &len, err) != 0) {
        ctl_error("%s: nothing imported", err);
        return -1;
    }
    csv = ctl_csv_create(data, len);
    if (csv == NULL) {
        ctl_error("out of memory");
        goto out;
    }
    r = ctl_csv_next(csv, &f, &nf, &row, err);
    if (r <= 0) {
        ctl_error("%s: %s", path, r == 0 ? "empty file: a header row is required" : err);
        goto out;
    }
    if (ctl_header_check(fields, required, f, nf, err) != 0) {
        ctl_error("%s: row %ld (header), %s", path, row, err);
        goto out;
    }
    header = calloc(nf, sizeof(*header));
    if (header == NULL)
        goto oom;
    for (nhead = 0; nhead < nf; nhead++)
        if ((header[nhead] = strdup(f[nhead])) == NULL)
            goto oom;
    while ((r = ctl_csv_next(csv, &f, &nf, &row, err)) == 1) {
        struct row ro = {header, f, nf};
        char *rec;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 64;
            char *p = realloc(recs, c2 * recsize);
            long *q = realloc(rows, c2 * sizeof(*rows));
            if (p != NULL)
                recs = p;
            if (q != NULL)
                rows = q;
            if (p == NULL || q == NULL)
                goto oom;
            cap = c2;
        }
        rec = recs + n * recsize;
        if (nf != nhead) {
            if (errors++ < ERRORS_MAX)
                ctl_error("%s: row %ld: %zu column%s, the header has %zu", path, row, nf,
                          nf == 1 ? "" : "s", nhead);
            continue;
        }
        if (parse(rec, row_get, &ro, today, err) != 0) {
            if (errors++ < ERRORS_MAX)
                ctl_error("%s: row %ld, %s", path, row, err);
            continue;
        }
        /* Records begin with their id (struct ctl_need, struct ctl_offer). */
        for (size_t k = 0; k < n; k++)
            if (strcmp(recs + k * recsize, rec) == 0) {
                if (errors++ < ERRORS_MAX)
                    ctl_error("%s: row %ld, column 'id': '%s' is also on row %ld", path, row, rec,
                              rows[k]);
                rec = NULL;
                break;
            }
        if (rec != NULL)
            rows[n++] = row;
    }
    if (r < 0) {
        ctl_error("%s: %s", path, err);
        errors++;
    }
    if (errors > ERRORS_MAX)
        ctl_error("%s: %zu more errors", path, errors - ERRORS_MAX);
    if (errors > 0) {
        ctl_error("%s: %zu bad row%s", path, errors, errors == 1 ? "" : "s");
        goto out;
    }
    if (n == 0) {
        ctl_error("%s: no rows after the header", path);
        goto out;
    }
    *out = recs;
    *nout = n;
    recs = NULL;
    rc = 0;
    goto out;
oom:
    ctl_error("out of memory");
out:
    if (rc != 0)
        ctl_error("%s: nothing imported", path);
    for (size_t i = 0; header != NULL && i < nhead; i++)
        free(header[i]);
    free(header);
    free(rows);
    free(recs);
    ctl_csv_destroy(csv);
    free(data);
    return rc;
}
