/*
 * cmd_offers.c - `tmctl offers import [--replace] FILE` and `tmctl offers list`: donor
 * offers in Redis (tm:offers, tm:offer:{id}; store.c). An import adds or replaces the
 * offers it names; with --replace, offers missing from the file are removed in the same
 * MULTI/EXEC (the file is then the whole list).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

static int parse_offer(void *rec, ctl_field_cb get, void *arg, int64_t today, char *err)
{
    (void)today;
    return ctl_offer_parse(rec, get, arg, err);
}

static int offers_import(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"replace", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    bool replace = false;
    void *recs = NULL;
    size_t n = 0;
    char err[TM_ERR_LEN];
    int opt, rc = 1;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt != 'r')
            goto usage;
        replace = true;
    }
    if (optind + 1 != argc)
        goto usage;
    if (ctl_import_csv(argv[optind], ctl_offer_fields, ctl_offer_required, sizeof(struct ctl_offer),
                       parse_offer, c->today, &recs, &n) != 0)
        return 1;
    if (ctl_redis_connect(c, err) != 0 || ctl_store_put_offers(c, recs, n, replace, err) != 0) {
        ctl_error("%s: %s: nothing imported", argv[optind], err);
        goto out;
    }
    fprintf(c->out, "imported %zu offer%s from %s%s\n", n, n == 1 ? "" : "s", argv[optind],
            replace ? " (replacing the list)" : "");
    rc = 0;
out:
    free(recs);
    return rc;
usage:
    fprintf(stderr, "usage: tmctl offers import [--replace] FILE.csv\n");
    return 2;
}

static int offers_list(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    enum ctl_format fmt = CTL_FMT_TABLE;
    struct ctl_offer *offers = NULL;
    size_t n = 0;
    char err[TM_ERR_LEN];
    json_t *arr = json_array();
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1)
        if (opt != 'f' || ctl_format_parse(optarg, false, &fmt) != 0) {
            fprintf(stderr, "usage: tmctl offers list [--format table|csv|json]\n");
            json_decref(arr);
            return 2;
        }
    if (ctl_redis_connect(c, err) != 0 || ctl_store_load_offers(c, &offers, &n, err) != 0) {
        ctl_error("%s", err);
        json_decref(arr);
        return 1;
    }
    if (fmt == CTL_FMT_CSV)
        ctl_csv_write(c->out, (const char *const *)ctl_offer_fields, 9);
    else if (fmt == CTL_FMT_TABLE)
        fprintf(c->out, "%-14s %-24s %-17s %8s %12s  %-10s %-28s %s\n", "offer", "donor",
                "category", "capacity", "ceiling EUR", "expires", "sectors", "regions");
    for (size_t i = 0; i < n; i++) {
        char vals[9][CTL_DESC_MAX + 1];
        const char *row[9];
        for (int f = 0; f < 9; f++)
            row[f] = ctl_offer_field(&offers[i], ctl_offer_fields[f], vals[f], sizeof(vals[f]));
        if (fmt == CTL_FMT_CSV) {
            ctl_csv_write(c->out, row, 9);
        } else if (fmt == CTL_FMT_JSON) {
            json_t *o = json_object();
            for (int f = 0; f < 9; f++)
                json_object_set_new(o, ctl_offer_fields[f], json_string(row[f]));
            json_object_set_new(o, "capacity", json_integer(offers[i].capacity));
            json_object_set_new(o, "cost_ceiling",
                                offers[i].cost_ceiling >= 0 ? json_integer(offers[i].cost_ceiling)
                                                            : json_null());
            json_array_append_new(arr, o);
        } else {
            fprintf(c->out, "%-14s %-24s %-17s %8s %12s  %-10s %-28s %s\n", row[0], row[1], row[2],
                    row[3], row[4][0] ? row[4] : "-", row[7][0] ? row[7] : "-",
                    row[5][0] ? row[5] : "any", row[6][0] ? row[6] : "any");
        }
    }
    if (fmt == CTL_FMT_JSON) {
        json_t *doc = json_pack("{s:O}", "offers", arr);
        json_dumpf(doc, c->out, JSON_INDENT(2));
        fputc('\n', c->out);
        json_decref(doc);
    } else if (fmt == CTL_FMT_TABLE) {
        fprintf(c->out, "%zu offer%s\n", n, n == 1 ? "" : "s");
    }
    json_decref(arr);
    free(offers);
    return 0;
}

int ctl_cmd_offers(struct ctl *c, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "import") == 0)
        return offers_import(c, argc, argv);
    if (argc >= 1 && strcmp(argv[0], "list") == 0)
        return offers_list(c, argc, argv);
    fprintf(stderr, "usage: tmctl offers import [--replace] FILE | list [--format F]\n");
    return 2;
}
