/*
 * match.c - which donor offer covers which need.
 *
 * The problem: open needs j with priority p_j, offers i with capacity c_i (needs it can
 * cover), an eligible pair (i, j) when category, sector, region, cost ceiling and expiry
 * allow it (ctl_match_eligible). Choose pairs so that each need is covered at most once,
 * each offer at most c_i times, and the covered priority is as large as possible.
 *
 * That is a maximum-weight bipartite b-matching, a transportation problem, which a
 * min-cost flow solves exactly: source -> offer i (capacity min(c_i, eligible needs),
 * cost 0), offer i -> need j (capacity 1, cost -w_j) for every eligible pair, need j ->
 * sink (capacity 1, cost 0). Successive shortest paths, augmenting while the cheapest
 * path still has negative cost, give the cheapest flow of every size; stopping at the
 * first non-negative path gives the minimum over all sizes, i.e. the maximum weight. The
 * flow is integral, so it is an assignment. Shortest paths are Dijkstra's on reduced costs
 * (Johnson potentials; the first potentials are exact because the graph is a DAG with one
 * cost per need), O(F E log V) for F covered needs.
 *
 * Weights are integers, so the optimum is exact and the result reproducible:
 * w_j = cents(p_j) x (K + 1) + 1 for K candidate needs, which maximises the covered
 * priority first and, among equal covers, the number of needs covered (the "+1"s add up
 * to at most K < K + 1, never outweighing a cent). Equal choices fall to the input order.
 *
 * The naive rule (first come, first served) is here too, for comparison only.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

#define MAX_NEEDS 20000
#define MAX_PRIORITY 1e6
#define INF INT64_MAX

const char *ctl_elig_name(enum ctl_elig e)
{
    static const char *const names[] = {
        "eligible",           "need closed",        "other category",    "offer expired",
        "sector not allowed", "region not allowed", "cost over ceiling", "no capacity",
    };
    return (unsigned)e < TM_ARRAY_LEN(names) ? names[e] : "?";
}

enum ctl_elig ctl_match_eligible(const struct ctl_offer *o, const struct ctl_need *n, int64_t today)
{
    int s = tm_sector_index(n->sector);

    if (n->status != CTL_NEED_OPEN)
        return CTL_ELIG_CLOSED;
    if (o->category != n->category)
        return CTL_ELIG_CATEGORY;
    if (o->expires >= 0 && o->expires < today)
        return CTL_ELIG_EXPIRED;
    if (o->sectors != 0 && (s < 0 || s >= 32 || !(o->sectors & (1u << s))))
        return CTL_ELIG_SECTOR;
    if (o->regions != 0) {
        const struct tm_region *r = tm_region_find(n->region);
        int ri = r != NULL ? (int)(r - tm_regions) : -1;
        if (ri < 0 || ri >= 32 || !(o->regions & (1u << ri)))
            return CTL_ELIG_REGION;
    }
    if (o->cost_ceiling >= 0 && n->cost > o->cost_ceiling)
        return CTL_ELIG_COST;
    if (o->capacity <= 0)
        return CTL_ELIG_CAPACITY;
    return CTL_ELIG_OK;
}

void ctl_match_free(struct ctl_match *m)
{
    free(m->need_offer);
    free(m->used);
    m->need_offer = NULL;
    m->used = NULL;
}

/* ---- min-cost flow ----------------------------------------------------------------- */

struct edge {
    int to, next;
    int64_t cap, cost;
};

struct graph {
    int nodes;
    int *head;
    struct edge *e;
    int ne, cap_e;
};

static int add_edge(struct graph *g, int from, int to, int64_t cap, int64_t cost)
{
    if (g->ne + 2 > g->cap_e) {
        int ncap = g->cap_e ? g->cap_e * 2 : 256;
        struct edge *e = realloc(g->e, (size_t)ncap * sizeof(*e));
        if (e == NULL)
            return -1;
        g->e = e;
        g->cap_e = ncap;
    }
    g->e[g->ne] = (struct edge){to, g->head[from], cap, cost};
    g->head[from] = g->ne++;
    g->e[g->ne] = (struct edge){from, g->head[to], 0, -cost};
    g->head[to] = g->ne++;
    return 0;
}

/* Binary heap of (dist, node), ties to the lower node: deterministic. */
struct heap {
    int64_t *d;
    int *v;
    int n;
};

static bool less(const struct heap *h, int a, int b)
{
    return h->d[a] < h->d[b] || (h->d[a] == h->d[b] && h->v[a] < h->v[b]);
}

static void swap(struct heap *h, int a, int b)
{
    int64_t d = h->d[a];
    int v = h->v[a];
    h->d[a] = h->d[b];
    h->v[a] = h->v[b];
    h->d[b] = d;
    h->v[b] = v;
}

static void push(struct heap *h, int64_t d, int v)
{
    int i = h->n++;
    h->d[i] = d;
    h->v[i] = v;
    while (i > 0 && less(h, i, (i - 1) / 2)) {
        swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void pop(struct heap *h, int64_t *d, int *v)
{
    int i = 0;

    *d = h->d[0];
    *v = h->v[0];
    h->n--;
    h->d[0] = h->d[h->n];
    h->v[0] = h->v[h->n];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && less(h, l, m))
            m = l;
        if (r < h->n && less(h, r, m))
            m = r;
        if (m == i)
            break;
        swap(h, i, m);
        i = m;
    }
}

/*
 * Successive shortest paths from s to t while the path's real cost is negative. pot holds
 * valid potentials on entry (reduced costs of residual edges >= 0). Returns 0 or -1.
 */
static int min_cost_flow(struct graph *g, int s, int t, int64_t *pot)
{
    int64_t *dist = malloc((size_t)g->nodes * sizeof(*dist));
    int *prev = malloc((size_t)g->nodes * sizeof(*prev));
    struct heap h = {malloc((size_t)g->ne * sizeof(int64_t) + sizeof(int64_t)),
                     malloc((size_t)g->ne * sizeof(int) + sizeof(int)), 0};
    int rc = -1;

    if (dist == NULL || prev == NULL || h.d == NULL || h.v == NULL)
        goto out;
    for (;;) {
        for (int v = 0; v < g->nodes; v++) {
            dist[v] = INF;
            prev[v] = -1;
        }
        dist[s] = 0;
        h.n = 0;
        push(&h, 0, s);
        while (h.n > 0) {
            int64_t d;
            int u;
            pop(&h, &d, &u);
            if (d > dist[u])
                continue;
            for (int k = g->head[u]; k >= 0; k = g->e[k].next) {
                const struct edge *e = &g->e[k];
                int64_t nd;
                if (e->cap <= 0)
                    continue;
                nd = d + e->cost + pot[u] - pot[e->to];
                if (nd < dist[e->to]) {
                    dist[e->to] = nd;
                    prev[e->to] = k;
                    push(&h, nd, e->to);
                }
            }
        }
        if (dist[t] == INF || dist[t] + pot[t] - pot[s] >= 0)
            break;
        for (int v = 0; v < g->nodes; v++)
            if (dist[v] != INF)
                pot[v] += dist[v];
        for (int v = t; v != s; v = g->e[prev[v] ^ 1].to) {
            g->e[prev[v]].cap -= 1;
            g->e[prev[v] ^ 1].cap += 1;
        }
    }
    rc = 0;
out:
    free(dist);
    free(prev);
    free(h.d);
    free(h.v);
    return rc;
}

static int optimal(const struct ctl_need *needs, size_t nn, const struct ctl_offer *offers,
                   size_t no, int64_t today, struct ctl_match *m, char *err)
{
    struct graph g = {0};
    int64_t *pot = NULL, *w = NULL, *eligible = NULL;
    int s = 0, t = (int)(no + nn + 1);
    size_t k = 0;
    int rc = -1;

    for (size_t j = 0; j < nn; j++)
        if (needs[j].status == CTL_NEED_OPEN)
            k++;
    if (k > MAX_NEEDS)
        return tm_err(err, "more than %d open needs", MAX_NEEDS);
    g.nodes = t + 1;
    g.head = malloc((size_t)g.nodes * sizeof(*g.head));
    pot = calloc((size_t)g.nodes, sizeof(*pot));
    w = calloc(nn + 1, sizeof(*w));
    eligible = calloc(no + 1, sizeof(*eligible));
    if (g.head == NULL || pot == NULL || w == NULL || eligible == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    for (int v = 0; v < g.nodes; v++)
        g.head[v] = -1;
    for (size_t j = 0; j < nn; j++) {
        double p = needs[j].priority > 0 ? needs[j].priority : 0;
        if (!(p <= MAX_PRIORITY)) {
            tm_err(err, "need '%s': priority %.2f out of range", needs[j].id, p);
            goto out;
        }
        w[j] = llround(p * 100.0) * (int64_t)(k + 1) + 1;
    }
    /* Edges in input order: need -> sink first, so their reverse edges come last. */
    for (size_t j = 0; j < nn; j++)
        if (needs[j].status == CTL_NEED_OPEN && add_edge(&g, (int)(1 + no + j), t, 1, 0) != 0)
            goto oom;
    for (size_t i = 0; i < no; i++)
        for (size_t j = 0; j < nn; j++)
            if (ctl_match_eligible(&offers[i], &needs[j], today) == CTL_ELIG_OK) {
                if (add_edge(&g, (int)(1 + i), (int)(1 + no + j), 1, -w[j]) != 0)
                    goto oom;
                eligible[i]++;
            }
    for (size_t i = 0; i < no; i++)
        if (eligible[i] > 0 &&
            add_edge(&g, s, (int)(1 + i),
                     offers[i].capacity < eligible[i] ? offers[i].capacity : eligible[i], 0) != 0)
            goto oom;
    /* Exact first potentials: distances from s in the DAG. */
    pot[t] = 0;
    for (size_t j = 0; j < nn; j++) {
        pot[1 + no + j] = -w[j];
        if (-w[j] < pot[t])
            pot[t] = -w[j];
    }
    if (min_cost_flow(&g, s, t, pot) != 0)
        goto oom;
    for (size_t i = 0; i < no; i++)
        for (int e = g.head[1 + i]; e >= 0; e = g.e[e].next) {
            int to = g.e[e].to;
            if (to > (int)no && to < t && (e & 1) == 0 && g.e[e].cap == 0) {
                m->need_offer[to - 1 - (int)no] = (int)i;
                m->used[i]++;
            }
        }
    rc = 0;
    goto out;
oom:
    tm_err(err, "out of memory");
out:
    free(g.head);
    free(g.e);
    free(pot);
    free(w);
    free(eligible);
    return rc;
}

/* Needs by opening date (then input order), each to the first offer with room. */
static int first_come(const struct ctl_need *needs, size_t nn, const struct ctl_offer *offers,
                      size_t no, int64_t today, struct ctl_match *m, char *err)
{
    size_t *order = malloc((nn + 1) * sizeof(*order));

    if (order == NULL)
        return tm_err(err, "out of memory");
    for (size_t j = 0; j < nn; j++)
        order[j] = j;
    for (size_t a = 1; a < nn; a++) /* stable insertion sort by opened */
        for (size_t b = a; b > 0 && needs[order[b]].opened < needs[order[b - 1]].opened; b--) {
            size_t x = order[b];
            order[b] = order[b - 1];
            order[b - 1] = x;
        }
    for (size_t a = 0; a < nn; a++) {
        size_t j = order[a];
        for (size_t i = 0; i < no; i++)
            if (m->used[i] < offers[i].capacity &&
                ctl_match_eligible(&offers[i], &needs[j], today) == CTL_ELIG_OK) {
                m->need_offer[j] = (int)i;
                m->used[i]++;
                break;
            }
    }
    free(order);
    return 0;
}

int ctl_match_run(const struct ctl_need *needs, size_t nneeds, const struct ctl_offer *offers,
                  size_t noffers, int64_t today, enum ctl_match_algo algo, struct ctl_match *m,
                  char *err)
{
    int rc;

    memset(m, 0, sizeof(*m));
    m->need_offer = malloc((nneeds + 1) * sizeof(*m->need_offer));
    m->used = calloc(noffers + 1, sizeof(*m->used));
    if (m->need_offer == NULL || m->used == NULL) {
        ctl_match_free(m);
        return tm_err(err, "out of memory");
    }
    for (size_t j = 0; j < nneeds; j++)
        m->need_offer[j] = -1;
    if (algo == CTL_MATCH_FIRST_COME)
        rc = first_come(needs, nneeds, offers, noffers, today, m, err);
    else
        rc = optimal(needs, nneeds, offers, noffers, today, m, err);
    if (rc != 0) {
        ctl_match_free(m);
        return -1;
    }
    for (size_t j = 0; j < nneeds; j++)
        if (m->need_offer[j] >= 0) {
            m->covered += needs[j].priority;
            m->ncovered++;
        }
    m->covered = round(m->covered * 100.0) / 100.0;
    return 0;
}
