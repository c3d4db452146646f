/*
 * cmd_match.c - `tmctl match`: refreshes the priorities (as `tmctl priorities` would,
 * stored for the dashboard), assigns offers to open needs with match.c, and prints the
 * allocation, the needs left unmatched (with why) and the offers with capacity left.
 *
 * Needs go to the matcher highest priority first (then by id), offers by id, so equal
 * choices always fall the same way. --algorithm first-come runs the naive rule instead,
 * to show what the optimum gains.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

static int by_priority(const void *a, const void *b)
{
    const struct ctl_need *x = a, *y = b;

    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return strverscmp(x->id, y->id);
}

/* Why need j is not covered: no offer of its category, none eligible, or all taken. */
static void unmatched_reason(const struct ctl_need *nd, const struct ctl_offer *offers, size_t no,
                             const struct ctl_match *m, int64_t today, char *out, size_t len)
{
    size_t used = 0, same = 0, eligible = 0;

    out[0] = '\0';
    for (size_t i = 0; i < no; i++)
        if (offers[i].category == nd->category) {
            same++;
            if (ctl_match_eligible(&offers[i], nd, today) == CTL_ELIG_OK)
                eligible++;
        }
    if (same == 0) {
        snprintf(out, len, "no offer of category %s", tm_need_categories[nd->category]);
        return;
    }
    if (eligible > 0) {
        snprintf(out, len, "eligible offers are full:");
        used = strlen(out);
        for (size_t i = 0; i < no; i++)
            if (ctl_match_eligible(&offers[i], nd, today) == CTL_ELIG_OK) {
                int w = snprintf(out + used, len - used, " %s (%" PRId64 "/%" PRId64 ")",
                                 offers[i].id, m->used[i], offers[i].capacity);
                if (w < 0 || (size_t)w >= len - used)
                    return;
                used += (size_t)w;
            }
        return;
    }
    snprintf(out, len, "no eligible offer:");
    used = strlen(out);
    for (size_t i = 0; i < no; i++)
        if (offers[i].category == nd->category) {
            int w = snprintf(out + used, len - used, " %s %s;", offers[i].id,
                             ctl_elig_name(ctl_match_eligible(&offers[i], nd, today)));
            if (w < 0 || (size_t)w >= len - used)
                return;
            used += (size_t)w;
        }
    if (used > 0 && out[used - 1] == ';')
        out[used - 1] = '\0';
}

static const char *idle_reason(const struct ctl_offer *o, const struct ctl_need *needs, size_t nn,
                               int64_t today, char *buf, size_t len)
{
    if (o->expires >= 0 && o->expires < today) {
        char d[11];
        ctl_day_format(o->expires, d);
        snprintf(buf, len, "expired %s", d);
        return buf;
    }
    for (size_t j = 0; j < nn; j++)
        if (ctl_match_eligible(o, &needs[j], today) == CTL_ELIG_OK)
            return "capacity left: every eligible need is covered";
    return "no eligible open need";
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tmctl match [--format table|csv|json] [--algorithm optimal|first-come]\n");
}

int ctl_cmd_match(struct ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"algorithm", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    enum ctl_format fmt = CTL_FMT_TABLE;
    enum ctl_match_algo algo = CTL_MATCH_OPTIMAL;
    struct ctl_need *all = NULL, *needs = NULL;
    struct ctl_offer *offers = NULL;
    struct ctl_match m = {0};
    size_t na = 0, nn = 0, no = 0;
    double open_total = 0;
    char err[TM_ERR_LEN], day[11];
    json_t *alloc = json_array(), *unmatched = json_array(), *idle = json_array();
    int opt, rc = 1;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'f' && ctl_format_parse(optarg, false, &fmt) == 0)
            continue;
        if (opt == 'a' && strcmp(optarg, "optimal") == 0)
            algo = CTL_MATCH_OPTIMAL;
        else if (opt == 'a' && strcmp(optarg, "first-come") == 0)
            algo = CTL_MATCH_FIRST_COME;
        else if (opt == 'h') {
            usage(stdout);
            rc = 0;
            goto out;
        } else {
            usage(stderr);
            rc = 2;
            goto out;
        }
    }
    if (optind != argc) {
        usage(stderr);
        rc = 2;
        goto out;
    }
    if (ctl_redis_connect(c, err) != 0 || ctl_store_load_needs(c, &all, &na, err) != 0 ||
        ctl_priorities_refresh(c, all, na, NULL, err) != 0 ||
        ctl_store_load_offers(c, &offers, &no, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    needs = calloc(na + 1, sizeof(*needs));
    if (needs == NULL) {
        ctl_error("out of memory");
        goto out;
    }
    for (size_t i = 0; i < na; i++)
        if (all[i].status == CTL_NEED_OPEN) {
            needs[nn++] = all[i];
            open_total += all[i].priority;
        }
    if (algo == CTL_MATCH_OPTIMAL)
        qsort(needs, nn, sizeof(*needs), by_priority);
    if (ctl_match_run(needs, nn, offers, no, c->today, algo, &m, err) != 0) {
        ctl_error("%s", err);
        goto out;
    }
    for (size_t j = 0; j < nn; j++) {
        const struct ctl_need *nd = &needs[j];
        json_t *o = json_pack("{s:s, s:f, s:s, s:s, s:s, s:s, s:I}", "need", nd->id, "priority",
                              nd->priority, "sector", nd->sector, "operator", nd->operator_id,
                              "region", nd->region, "category", tm_need_categories[nd->category],
                              "cost", (json_int_t)nd->cost);
        if (m.need_offer[j] >= 0) {
            const struct ctl_offer *of = &offers[m.need_offer[j]];
            json_object_set_new(o, "offer", json_string(of->id));
            json_object_set_new(o, "donor", json_string(of->donor));
            json_array_append_new(alloc, o);
        } else {
            char why[512];
            unmatched_reason(nd, offers, no, &m, c->today, why, sizeof(why));
            json_object_set_new(o, "reason", json_string(why));
            json_array_append_new(unmatched, o);
        }
    }
    for (size_t i = 0; i < no; i++) {
        char why[64];
        if (m.used[i] >= offers[i].capacity)
            continue;
        json_array_append_new(
            idle,
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "offer", offers[i].id, "donor",
                      offers[i].donor, "category", tm_need_categories[offers[i].category],
                      "capacity", (json_int_t)offers[i].capacity, "used", (json_int_t)m.used[i],
                      "left", (json_int_t)(offers[i].capacity - m.used[i]), "reason",
                      idle_reason(&offers[i], needs, nn, c->today, why, sizeof(why))));
    }
    ctl_day_format(c->today, day);
    open_total = ctl_round2(open_total);
    if (fmt == CTL_FMT_JSON) {
        json_t *doc = json_pack(
            "{s:s, s:s, s:f, s:f, s:I, s:I, s:O, s:O, s:O}", "day", day, "algorithm",
            algo == CTL_MATCH_OPTIMAL ? "optimal" : "first-come", "covered_priority", m.covered,
            "open_priority", open_total, "needs_covered", (json_int_t)m.ncovered, "needs_open",
            (json_int_t)nn, "allocation", alloc, "unmatched", unmatched, "idle", idle);
        json_dumpf(doc, c->out, JSON_INDENT(2));
        fputc('\n', c->out);
        json_decref(doc);
    } else if (fmt == CTL_FMT_CSV) {
        static const char *const head[] = {"section", "need",     "priority", "sector", "operator",
                                           "region",  "category", "cost",     "offer",  "donor",
                                           "used",    "left",     "reason"};
        json_t *lists[3] = {alloc, unmatched, idle};
        const char *names[3] = {"allocation", "unmatched", "idle"};
        ctl_csv_write(c->out, head, TM_ARRAY_LEN(head));
        for (int l = 0; l < 3; l++) {
            size_t i;
            json_t *it;
            json_array_foreach(lists[l], i, it)
            {
                char p[32] = "", cost[24] = "", used[24] = "", left[24] = "";
                const char *row[13];
                json_t *v;
                if ((v = json_object_get(it, "priority")) != NULL)
                    snprintf(p, sizeof(p), "%.2f", json_real_value(v));
                if ((v = json_object_get(it, "cost")) != NULL)
                    snprintf(cost, sizeof(cost), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                if ((v = json_object_get(it, "used")) != NULL)
                    snprintf(used, sizeof(used), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                if ((v = json_object_get(it, "left")) != NULL)
                    snprintf(left, sizeof(left), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                row[0] = names[l];
                row[1] = json_string_value(json_object_get(it, "need"));
                row[2] = p;
                row[3] = json_string_value(json_object_get(it, "sector"));
                row[4] = json_string_value(json_object_get(it, "operator"));
                row[5] = json_string_value(json_object_get(it, "region"));
                row[6] = json_string_value(json_object_get(it, "category"));
                row[7] = cost;
                row[8] = json_string_value(json_object_get(it, "offer"));
                row[9] = json_string_value(json_object_get(it, "donor"));
                row[10] = used;
                row[11] = left;
                row[12] = json_string_value(json_object_get(it, "reason"));
                ctl_csv_write(c->out, row, 13);
            }
        }
    } else {
        size_t i;
        json_t *it;
        fprintf(c->out,
                "match on %s (UTC), %s: covered priority %.2f of %.2f open (%zu of %zu needs)\n",
                day, algo == CTL_MATCH_OPTIMAL ? "optimal" : "first-come", m.covered, open_total,
                m.ncovered, nn);
        fprintf(c->out, "\nallocation\n%-16s %9s  %-22s %-18s %-6s %-17s %10s  %-14s %s\n", "need",
                "priority", "sector", "operator", "region", "category", "cost EUR", "offer",
                "donor");
        json_array_foreach(alloc, i, it)
        {
            fprintf(c->out,
                    "%-16s %9.2f  %-22s %-18s %-6s %-17s %10" JSON_INTEGER_FORMAT "  %-14s %s\n",
                    json_string_value(json_object_get(it, "need")),
                    json_real_value(json_object_get(it, "priority")),
                    json_string_value(json_object_get(it, "sector")),
                    json_string_value(json_object_get(it, "operator")),
                    json_string_value(json_object_get(it, "region")),
                    json_string_value(json_object_get(it, "category")),
                    json_integer_value(json_object_get(it, "cost")),
                    json_string_value(json_object_get(it, "offer")),
                    json_string_value(json_object_get(it, "donor")));
        }
        fprintf(c->out, "\nunmatched needs\n%-16s %9s  %-22s %-17s %s\n", "need", "priority",
                "sector", "category", "why");
        json_array_foreach(unmatched, i, it)
        {
            fprintf(c->out, "%-16s %9.2f  %-22s %-17s %s\n",
                    json_string_value(json_object_get(it, "need")),
                    json_real_value(json_object_get(it, "priority")),
                    json_string_value(json_object_get(it, "sector")),
                    json_string_value(json_object_get(it, "category")),
                    json_string_value(json_object_get(it, "reason")));
        }
        fprintf(c->out, "\nidle offers\n%-14s %-24s %-17s %5s %5s  %s\n", "offer", "donor",
                "category", "used", "left", "why");
        json_array_foreach(idle, i, it)
        {
            fprintf(c->out,
                    "%-14s %-24s %-17s %5" JSON_INTEGER_FORMAT " %5" JSON_INTEGER_FORMAT "  %s\n",
                    json_string_value(json_object_get(it, "offer")),
                    json_string_value(json_object_get(it, "donor")),
                    json_string_value(json_object_get(it, "category")),
                    json_integer_value(json_object_get(it, "used")),
                    json_integer_value(json_object_get(it, "left")),
                    json_string_value(json_object_get(it, "reason")));
        }
    }
    rc = 0;
out:
    ctl_match_free(&m);
    json_decref(alloc);
    json_decref(unmatched);
    json_decref(idle);
    free(needs);
    free(all);
    free(offers);
    return rc;
}
