/*
 * score.c - the priority of a need, as docs/planners.md writes it:
 *
 *   m_d = (1 low + 2 medium + 5 high + 10 critical) / events       (day d of a scope)
 *   V7  = sum_{d = D-6 .. D}  tied_d x m_d      V30 = sum_{d = D-29 .. D} tied_d x m_d
 *   E   = V7 + 7/30 x V30                        (operator needs: E_op + share x E_sector)
 *   T   = 1 + min(max(z, 0), 6) / 6              A = 1 + min(days open, age_full) / age_full
 *   P   = round2(10 x w x T x A x ln(1 + E))
 *
 * The day hashes count events by category and by severity band, not by both, so the
 * severity of a day's tied events is taken as the day's mean (m_d). Band weights and the
 * trend factor are those of the aggregator's risk score (docs/aggregator.md), so a
 * sector's priorities and its risk move together. Pure arithmetic in a fixed order: the
 * same input gives the same doubles.
 */
#include <math.h>

#include "tmctl.h"

int ctl_band_weight(int band)
{
    static const int w[] = {1, 2, 5, 10};
    return band >= 0 && band < 4 ? w[band] : 0;
}

void ctl_score_volume(const struct ctl_day *days, struct ctl_volume *v)
{
    v->tied7 = v->tied30 = 0;
    v->v7 = v->v30 = 0;
    for (int d = 0; d < CTL_DAYS; d++) {
        const struct ctl_day *x = &days[d];
        int64_t weighted = 0;
        double w;

        if (x->events <= 0 || x->tied <= 0)
            continue;
        for (int b = 0; b < 4; b++)
            weighted += x->band[b] * ctl_band_weight(b);
        w = (double)x->tied * (double)weighted / (double)x->events;
        if (d < 7) {
            v->tied7 += x->tied;
            v->v7 += w;
        }
        v->tied30 += x->tied;
        v->v30 += w;
    }
    v->e = v->v7 + v->v30 * 7.0 / 30.0;
}

double ctl_round2(double x)
{
    return round(x * 100.0) / 100.0;
}

void ctl_score_compute(const struct ctl_score_in *in, const struct ctl_score_params *p,
                       struct ctl_score *out)
{
    double z = in->z > 0 ? in->z : 0;
    int64_t full = p->age_full_days > 0 ? p->age_full_days : 1;
    int64_t age = in->age_days > 0 ? in->age_days : 0;

    out->e =
        in->has_op ? in->op.e + (double)p->sector_share_pct / 100.0 * in->sector.e : in->sector.e;
    out->t = 1.0 + (z < 6 ? z : 6) / 6.0;
    out->a = 1.0 + (double)(age < full ? age : full) / (double)full;
    out->priority = ctl_round2(10.0 * (double)in->weight * out->t * out->a * log1p(out->e));
}
