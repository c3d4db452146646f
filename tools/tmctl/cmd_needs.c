/*
 * cmd_needs.c - `tmctl needs import|add|list|close`: the needs registry in Redis
 * (tm:needs, tm:need:{id}; store.c). Every change is one MULTI/EXEC and is followed by a
 * priorities refresh, so the dashboard's ranking follows the registry; a failed refresh
 * is reported but does not undo the change (run `tmctl priorities` again).
 *
 * `needs list --format csv` writes the import columns, so list -> edit -> import round
 * trips.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

static int parse_need(void *rec, ctl_field_cb get, void *arg, int64_t today, char *err)
{
    return ctl_need_parse(rec, get, arg, today, err);
}

/* Refreshes tm:priorities from the whole registry after a change. */
static int after_change(struct ctl *c)
{
    struct ctl_need *all = NULL;
    size_t n = 0;
    char err[TM_ERR_LEN];
    int rc = 0;

    if (ctl_store_load_needs(c, &all, &n, err) != 0 ||
        ctl_priorities_refresh(c, all, n, NULL, err) != 0) {
        ctl_error("warning: the registry changed but priorities were not refreshed: %s; run "
                  "'tmctl priorities'",
                  err);
        rc = 0;
    }
    free(all);
    return rc;
}

static int needs_import(struct ctl *c, int argc, char **argv)
{
    struct ctl_need *needs = NULL;
    void *recs = NULL;
    size_t n = 0;
    char err[TM_ERR_LEN];
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: tmctl needs import FILE.csv\n");
        return 2;
    }
    if (ctl_import_csv(argv[1], ctl_need_fields, ctl_need_required, sizeof(struct ctl_need),
                       parse_need, c->today, &recs, &n) != 0)
        return 1;
    needs = recs;
    if (ctl_redis_connect(c, err) != 0 || ctl_store_put_needs(c, needs, n, err) != 0) {
        ctl_error("%s: %s: nothing imported", argv[1], err);
        goto out;
    }
    fprintf(c->out, "imported %zu need%s from %s\n", n, n == 1 ? "" : "s", argv[1]);
    rc = after_change(c);
out:
    free(needs);
    return rc;
}

struct opt_fields {
    const char *v[16];
};

static const char *opt_get(void *arg, const char *name)
{
    const struct opt_fields *o = arg;

    for (size_t i = 0; ctl_need_fields[i] != NULL; i++)
        if (strcmp(ctl_need_fields[i], name) == 0)
            return o->v[i];
    return NULL;
}

static int needs_add(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 0},
        {"operator", required_argument, NULL, 0},
        {"sector", required_argument, NULL, 0},
        {"region", required_argument, NULL, 0},
        {"category", required_argument, NULL, 0},
        {"description", required_argument, NULL, 0},
        {"cost", required_argument, NULL, 0},
        {"opened", required_argument, NULL, 0},
        {NULL, 0, NULL, 0},
    };
    struct opt_fields of = {{NULL}};
    struct ctl_need need;
    redisReply *r;
    char err[TM_ERR_LEN];
    int opt, idx;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (opt != 0)
            goto usage;
        for (size_t i = 0; ctl_need_fields[i] != NULL; i++)
            if (strcmp(ctl_need_fields[i], longopts[idx].name) == 0)
                of.v[i] = optarg;
    }
    if (optind != argc)
        goto usage;
    for (size_t i = 0; ctl_need_required[i] != NULL; i++)
        if (opt_get(&of, ctl_need_required[i]) == NULL) {
            ctl_error("needs add: --%s is required", ctl_need_required[i]);
            goto usage;
        }
    if (ctl_need_parse(&need, opt_get, &of, c->today, err) != 0) {
        /* "column 'cost': ..." reads as "--cost: ..." here */
        const char *q = strchr(err, '\'');
        const char *q2 = q != NULL ? strchr(q + 1, '\'') : NULL;
        if (q != NULL && q2 != NULL && strncmp(err, "column ", 7) == 0)
            ctl_error("needs add: --%.*s%s", (int)(q2 - q - 1), q + 1, q2 + 1);
        else
            ctl_error("needs add: %s", err);
        return 1;
    }
    if (ctl_redis_connect(c, err) != 0) {
        ctl_error("%s", err);
        return 1;
    }
    {
        const char *a[3] = {"SISMEMBER", "tm:needs", need.id};
        r = ctl_redis_argv(c, 3, a, err);
    }
    if (r == NULL) {
        ctl_error("%s", err);
        return 1;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        freeReplyObject(r);
        ctl_error("need '%s' exists already (change it with 'needs import')", need.id);
        return 1;
    }
    freeReplyObject(r);
    if (ctl_store_put_needs(c, &need, 1, err) != 0) {
        ctl_error("%s", err);
        return 1;
    }
    fprintf(c->out, "added need %s\n", need.id);
    return after_change(c);
usage:
    fprintf(stderr, "usage: tmctl needs add --id ID --sector S --category C --cost EUR\n"
                    "                       [--operator OP] [--region UA-NN] "
                    "[--description TEXT] [--opened YYYY-MM-DD]\n");
    return 2;
}

/* Stored priorities: ZSCORE of each need, NAN when none. */
static double *stored_priorities(struct ctl *c, const struct ctl_need *needs, size_t n)
{
    double *p = calloc(n + 1, sizeof(*p));

    for (size_t i = 0; p != NULL && i < n; i++) {
        const char *a[3] = {"ZSCORE", "tm:priorities", needs[i].id};
        char err[TM_ERR_LEN];
        redisReply *r = ctl_redis_argv(c, 3, a, err);
        p[i] = -1;
        if (r != NULL && r->type == REDIS_REPLY_STRING)
            p[i] = strtod(r->str, NULL);
        freeReplyObject(r);
    }
    return p;
}

static int needs_list(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"status", required_argument, NULL, 's'},
        {"sector", required_argument, NULL, 'S'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *status = "open", *sector = NULL;
    enum ctl_format fmt = CTL_FMT_TABLE;
    struct ctl_need *needs = NULL;
    double *prio = NULL;
    json_t *arr = NULL;
    size_t n = 0, shown = 0;
    char err[TM_ERR_LEN], buf[CTL_DESC_MAX + 1];
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 's' && (strcmp(optarg, "open") == 0 || strcmp(optarg, "closed") == 0 ||
                           strcmp(optarg, "all") == 0))
            status = optarg;
        else if (opt == 'S' && tm_sector_find(optarg) != NULL)
            sector = optarg;
        else if (opt == 'f' && ctl_format_parse(optarg, false, &fmt) == 0)
            ;
        else
            goto usage;
    }
    if (optind != argc)
        goto usage;
    if (ctl_redis_connect(c, err) != 0 || ctl_store_load_needs(c, &needs, &n, err) != 0) {
        ctl_error("%s", err);
        free(needs);
        return 1;
    }
    prio = stored_priorities(c, needs, n);
    if (fmt == CTL_FMT_CSV)
        ctl_csv_write(c->out, (const char *const *)ctl_need_fields, 10);
    else if (fmt == CTL_FMT_JSON)
        arr = json_array();
    else
        fprintf(c->out, "%-16s %9s  %-6s %-22s %-18s %-6s %-17s %10s  %-10s %s\n", "need",
                "priority", "status", "sector", "operator", "region", "category", "cost EUR",
                "opened", "description");
    for (size_t i = 0; i < n; i++) {
        const struct ctl_need *nd = &needs[i];
        char day[11];
        if ((strcmp(status, "open") == 0 && nd->status != CTL_NEED_OPEN) ||
            (strcmp(status, "closed") == 0 && nd->status != CTL_NEED_CLOSED) ||
            (sector != NULL && strcmp(nd->sector, sector) != 0))
            continue;
        shown++;
        if (fmt == CTL_FMT_CSV) {
            char vals[10][CTL_DESC_MAX + 1];
            const char *row[10];
            for (int f = 0; f < 10; f++)
                row[f] = ctl_need_field(nd, ctl_need_fields[f], vals[f], sizeof(vals[f]));
            ctl_csv_write(c->out, row, 10);
        } else if (fmt == CTL_FMT_JSON) {
            json_t *o = json_object();
            for (int f = 0; f < 10; f++)
                json_object_set_new(
                    o, ctl_need_fields[f],
                    json_string(ctl_need_field(nd, ctl_need_fields[f], buf, sizeof(buf))));
            json_object_set_new(o, "cost", json_integer(nd->cost));
            json_object_set_new(o, "priority",
                                prio != NULL && prio[i] >= 0 ? json_real(prio[i]) : json_null());
            json_array_append_new(arr, o);
        } else {
            char p[32] = "-";
            if (prio != NULL && prio[i] >= 0)
                snprintf(p, sizeof(p), "%.2f", prio[i]);
            ctl_day_format(nd->opened, day);
            fprintf(c->out, "%-16s %9s  %-6s %-22s %-18s %-6s %-17s %10" PRId64 "  %-10s %s\n",
                    nd->id, p, nd->status == CTL_NEED_OPEN ? "open" : "closed", nd->sector,
                    nd->operator_id, nd->region, tm_need_categories[nd->category], nd->cost, day,
                    nd->description);
        }
    }
    if (fmt == CTL_FMT_JSON) {
        json_t *doc = json_pack("{s:o}", "needs", arr);
        json_dumpf(doc, c->out, JSON_INDENT(2));
        fputc('\n', c->out);
        json_decref(doc);
    } else if (fmt == CTL_FMT_TABLE) {
        fprintf(c->out, "%zu need%s\n", shown, shown == 1 ? "" : "s");
    }
    free(prio);
    free(needs);
    return 0;
usage:
    fprintf(stderr, "usage: tmctl needs list [--status open|closed|all] [--sector S] "
                    "[--format table|csv|json]\n");
    return 2;
}

static int needs_close(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"date", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    struct ctl_need *needs = NULL, *nd = NULL;
    int64_t day = c->today;
    size_t n = 0;
    char err[TM_ERR_LEN];
    int opt, rc = 1;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt != 'd' || ctl_day_parse(optarg, &day) != 0) {
            fprintf(stderr, "usage: tmctl needs close ID [--date YYYY-MM-DD]\n");
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: tmctl needs close ID [--date YYYY-MM-DD]\n");
        return 2;
    }
    if (ctl_redis_connect(c, err) != 0 || ctl_store_load_needs(c, &needs, &n, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    for (size_t i = 0; i < n && nd == NULL; i++)
        if (strcmp(needs[i].id, argv[optind]) == 0)
            nd = &needs[i];
    if (nd == NULL) {
        ctl_error("no need '%s'", argv[optind]);
        goto out;
    }
    if (nd->status == CTL_NEED_CLOSED) {
        fprintf(c->out, "need %s was closed already\n", nd->id);
        rc = 0;
        goto out;
    }
    if (day < nd->opened) {
        ctl_error("need '%s': --date is before it was opened", nd->id);
        goto out;
    }
    nd->status = CTL_NEED_CLOSED;
    nd->closed = day;
    if (ctl_store_put_needs(c, nd, 1, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    fprintf(c->out, "closed need %s\n", nd->id);
    if (ctl_priorities_refresh(c, needs, n, NULL, err) != 0)
        ctl_error("warning: priorities not refreshed: %s; run 'tmctl priorities'", err);
    rc = 0;
out:
    free(needs);
    return rc;
}

int ctl_cmd_needs(struct ctl *c, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "import") == 0)
        return needs_import(c, argc, argv);
    if (argc >= 1 && strcmp(argv[0], "add") == 0)
        return needs_add(c, argc, argv);
    if (argc >= 1 && strcmp(argv[0], "list") == 0)
        return needs_list(c, argc, argv);
    if (argc >= 1 && strcmp(argv[0], "close") == 0)
        return needs_close(c, argc, argv);
    fprintf(stderr, "usage: tmctl needs import FILE | add ... | list [...] | close ID\n");
    return 2;
}
