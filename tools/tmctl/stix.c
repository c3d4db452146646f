/*
 * stix.c - an export as a STIX 2.1 bundle that MISP and OpenCTI import.
 *
 * Objects (docs/planners.md, "STIX"):
 *   identity  the producer (tm-telemetry, identity_class system): created_by_ref of all
 *   identity  one per sector the export mentions (identity_class class, sectors from the
 *             industry-sector-ov mapping of docs/schema.md where there is one)
 *   report    the export itself: window, per-sector totals, object_refs to everything
 *   incident  one per significant incident (tm:feed), with a "targets" relationship to
 *             its sector; with a source address also an ipv4-addr / ipv6-addr SCO and an
 *             observed-data of it, "related-to" from the incident
 *   indicator one per top source, pattern [ipv4-addr:value = '...'], pattern_type stix,
 *             and a sighting of it per sector it hit (where_sighted_refs the sector)
 *
 * Ids are type--UUID. SCOs use STIX's own deterministic ids (UUIDv5 in the STIX namespace
 * over the canonical JSON of their id-contributing properties, section 2.9); every other
 * object a UUIDv5 in tm-telemetry's namespace over a name made of what the object is
 * about, so exporting the same facts twice gives the same ids and importers update
 * rather than duplicate. Objects describing one event are immutable (created = modified =
 * the event's time); indicators and sightings may grow while their window is open, so
 * their modified is the export time (a later version of the same object). The bundle's
 * and the report's ids are random (v4): each export is a report of its own. Timestamps
 * are RFC 3339 UTC with milliseconds.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define DAY_MS 86400000LL
#define EPOCH "2025-01-01T00:00:00.000Z" /* created of the identities: fixed */

/* STIX 2.1 namespace for SCO ids (section 2.9). */
static const unsigned char stix_ns[16] = {0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c,
                                          0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7};
/* tm-telemetry's namespace for everything else: 2b6f1c7e-3f0a-4d5b-9a8e-7c41d0e6b512. */
static const unsigned char tm_ns[16] = {0x2b, 0x6f, 0x1c, 0x7e, 0x3f, 0x0a, 0x4d, 0x5b,
                                        0x9a, 0x8e, 0x7c, 0x41, 0xd0, 0xe6, 0xb5, 0x12};

static void uuid_format(const unsigned char *b, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void ctl_uuid_v4(char *out)
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

void ctl_uuid_v5(const unsigned char *ns, const char *name, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    memset(md, 0, sizeof(md));
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, ns, 16) == 1 && EVP_DigestUpdate(ctx, name, len) == 1)
        EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    uuid_format(md, out);
}

/* "type--" + UUIDv5 of "type:" + name in tm's namespace. */
static void tm_id(char *out, size_t len, const char *type, const char *fmt, ...) TM_PRINTF(4, 5);
static void tm_id(char *out, size_t len, const char *type, const char *fmt, ...)
{
    char name[512], uuid[CTL_UUID_LEN + 1];
    va_list ap;
    int n = snprintf(name, sizeof(name), "%s:", type);

    va_start(ap, fmt);
    vsnprintf(name + n, sizeof(name) - (size_t)n, fmt, ap);
    va_end(ap);
    ctl_uuid_v5(tm_ns, name, strlen(name), uuid);
    snprintf(out, len, "%s--%s", type, uuid);
}

/* "YYYY-MM-DD" of a day number (stix.c stands alone: its unit test links only it). */
static void day_str(int64_t day, char out[11])
{
    char t[TM_TIME_LEN];

    if (tm_time_format(day * DAY_MS, t, sizeof(t)) != 0)
        t[0] = '\0';
    snprintf(out, 11, "%s", t);
}

static json_t *ts(int64_t ms)
{
    char t[TM_TIME_LEN];

    if (tm_time_format(ms, t, sizeof(t)) != 0)
        return json_string(EPOCH);
    return json_string(t);
}

/* Common properties of an SDO / SRO. */
static json_t *sdo(const char *type, const char *id, json_t *created, json_t *modified,
                   const char *producer)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "spec_version", json_string("2.1"));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "created", created);
    json_object_set_new(o, "modified", modified);
    if (producer != NULL)
        json_object_set_new(o, "created_by_ref", json_string(producer));
    return o;
}

static void sector_identity_id(char *out, size_t len, const char *sector)
{
    tm_id(out, len, "identity", "sector:%s", sector);
}

static json_t *sector_identity(const struct tm_sector *s, const char *producer)
{
    char id[80], name[160], desc[256];
    json_t *o;

    sector_identity_id(id, sizeof(id), s->id);
    o = sdo("identity", id, json_string(EPOCH), json_string(EPOCH), producer);
    snprintf(name, sizeof(name), "Ukraine: %s sector", s->name);
    json_object_set_new(o, "name", json_string(name));
    snprintf(desc, sizeof(desc),
             "Critical-infrastructure operators of the %s sector in Ukraine%s%s%s "
             "(tm-telemetry sector '%s').",
             s->name, strcmp(s->nis2, "-") != 0 ? " (NIS2 Annex " : "",
             strcmp(s->nis2, "-") != 0 ? s->nis2 : "", strcmp(s->nis2, "-") != 0 ? ")" : "", s->id);
    json_object_set_new(o, "description", json_string(desc));
    json_object_set_new(o, "identity_class", json_string("class"));
    if (s->stix != NULL)
        json_object_set_new(o, "sectors", json_pack("[s]", s->stix));
    json_object_set_new(o, "x_tm_sector", json_string(s->id));
    return o;
}

/* The SCO of an address, with its STIX id; NULL when ip is not an address. */
static json_t *address_sco(const char *ip, char *id, size_t idlen)
{
    unsigned char bin[16];
    char canon[INET6_ADDRSTRLEN], contrib[128], uuid[CTL_UUID_LEN + 1];
    const char *type;
    json_t *o;

    if (inet_pton(AF_INET, ip, bin) == 1) {
        type = "ipv4-addr";
        inet_ntop(AF_INET, bin, canon, sizeof(canon));
    } else if (inet_pton(AF_INET6, ip, bin) == 1) {
        type = "ipv6-addr";
        inet_ntop(AF_INET6, bin, canon, sizeof(canon));
    } else {
        return NULL;
    }
    snprintf(contrib, sizeof(contrib), "{\"value\":\"%s\"}", canon);
    ctl_uuid_v5(stix_ns, contrib, strlen(contrib), uuid);
    snprintf(id, idlen, "%s--%s", type, uuid);
    o = json_object();
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "spec_version", json_string("2.1"));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "value", json_string(canon));
    return o;
}

static json_t *relationship(const char *rtype, const char *event_id, const char *src,
                            const char *dst, int64_t ms, const char *producer)
{
    char id[80];
    json_t *o;

    tm_id(id, sizeof(id), "relationship", "%s:%s", rtype, event_id);
    o = sdo("relationship", id, ts(ms), ts(ms), producer);
    json_object_set_new(o, "relationship_type", json_string(rtype));
    json_object_set_new(o, "source_ref", json_string(src));
    json_object_set_new(o, "target_ref", json_string(dst));
    return o;
}

static void add(json_t *objects, json_t *refs, json_t *o)
{
    if (refs != NULL)
        json_array_append(refs, json_object_get(o, "id"));
    json_array_append_new(objects, o);
}

/*
 * seen: ids of the SCOs already in the bundle; an address seen in many incidents is one
 * object (its id is the same each time).
 */
static void incident(json_t *objects, json_t *refs, json_t *seen,
                     const struct ctl_export_incident *in, const char *producer)
{
    char id[80], sid[80], sco_id[80], od_id[80], name[256];
    const struct tm_category *cat = tm_category_find(in->category);
    json_t *o, *sco;

    tm_id(id, sizeof(id), "incident", "%s", in->event_id);
    o = sdo("incident", id, ts(in->ts), ts(in->ts), producer);
    snprintf(name, sizeof(name), "%s against %s%s%s, severity %d", in->category, in->sector,
             in->region[0] ? " in " : "", in->region, in->severity);
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "description", json_string(in->summary[0] ? in->summary : name));
    if (in->technique[0] != '\0') {
        char url[128], path[16];
        tm_strlcpy(path, in->technique, sizeof(path));
        for (char *p = path; *p != '\0'; p++)
            if (*p == '.')
                *p = '/';
        snprintf(url, sizeof(url), "https://attack.mitre.org/techniques/%s/", path);
        json_object_set_new(o, "external_references",
                            json_pack("[{s:s, s:s, s:s}]", "source_name", "mitre-attack",
                                      "external_id", in->technique, "url", url));
    }
    json_object_set_new(o, "x_tm_event_id", json_string(in->event_id));
    json_object_set_new(o, "x_tm_category", json_string(in->category));
    if (cat != NULL)
        json_object_set_new(o, "x_tm_rsit", json_string(cat->rsit));
    json_object_set_new(o, "x_tm_severity", json_integer(in->severity));
    json_object_set_new(o, "x_tm_sector", json_string(in->sector));
    if (in->region[0] != '\0')
        json_object_set_new(o, "x_tm_region", json_string(in->region));
    if (in->operator_id[0] != '\0')
        json_object_set_new(o, "x_tm_operator", json_string(in->operator_id));
    add(objects, refs, o);
    sector_identity_id(sid, sizeof(sid), in->sector);
    add(objects, refs, relationship("targets", in->event_id, id, sid, in->ts, producer));
    sco = in->src[0] != '\0' ? address_sco(in->src, sco_id, sizeof(sco_id)) : NULL;
    if (sco == NULL)
        return;
    if (json_object_get(seen, sco_id) == NULL) {
        json_object_set_new(seen, sco_id, json_true());
        add(objects, refs, sco);
    } else {
        json_decref(sco);
    }
    tm_id(od_id, sizeof(od_id), "observed-data", "%s", in->event_id);
    o = sdo("observed-data", od_id, ts(in->ts), ts(in->ts), producer);
    json_object_set_new(o, "first_observed", ts(in->ts));
    json_object_set_new(o, "last_observed", ts(in->ts));
    json_object_set_new(o, "number_observed", json_integer(1));
    json_object_set_new(o, "object_refs", json_pack("[s]", sco_id));
    add(objects, refs, o);
    add(objects, refs, relationship("related-to", in->event_id, id, od_id, in->ts, producer));
}

static void source(json_t *objects, json_t *refs, const struct ctl_export_source *s,
                   const struct ctl_export *x, const char *producer)
{
    char id[80], sco_id[80], pattern[128], name[160], first[11];
    int64_t from = s->first_day * DAY_MS;
    int64_t to = (s->last_day + 1) * DAY_MS - 1;
    json_t *sco = address_sco(s->ip, sco_id, sizeof(sco_id)), *o;
    int nsec = 0;

    if (sco == NULL)
        return;
    if (to > x->now_ms)
        to = x->now_ms;
    if (to < from)
        to = from;
    day_str(s->first_day, first);
    for (size_t i = 0; i < tm_sectors_count; i++)
        nsec += s->by_sector[i] > 0;
    snprintf(pattern, sizeof(pattern), "[%s:value = '%s']",
             strncmp(sco_id, "ipv4", 4) == 0 ? "ipv4-addr" : "ipv6-addr",
             json_string_value(json_object_get(sco, "value")));
    json_decref(sco);
    tm_id(id, sizeof(id), "indicator", "%s:%s", s->ip, first);
    o = sdo("indicator", id, ts(from), ts(x->now_ms > from ? x->now_ms : from), producer);
    snprintf(name, sizeof(name), "%s: source of %" PRId64 " events against %d sector%s", s->ip,
             s->events, nsec, nsec == 1 ? "" : "s");
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "description",
                        json_string("A top source of attacks on Ukrainian critical "
                                    "infrastructure seen by tm-telemetry sensors."));
    json_object_set_new(o, "indicator_types", json_pack("[s]", "malicious-activity"));
    json_object_set_new(o, "pattern", json_string(pattern));
    json_object_set_new(o, "pattern_type", json_string("stix"));
    json_object_set_new(o, "pattern_version", json_string("2.1"));
    json_object_set_new(o, "valid_from", ts(from));
    add(objects, refs, o);
    for (size_t i = 0; i < tm_sectors_count; i++) {
        char sid[80], sg[80];
        json_t *g;
        if (s->by_sector[i] <= 0)
            continue;
        sector_identity_id(sid, sizeof(sid), tm_sectors[i].id);
        tm_id(sg, sizeof(sg), "sighting", "%s:%s:%s", s->ip, tm_sectors[i].id, first);
        g = sdo("sighting", sg, ts(from), ts(x->now_ms > from ? x->now_ms : from), producer);
        json_object_set_new(g, "sighting_of_ref", json_string(id));
        json_object_set_new(g, "where_sighted_refs", json_pack("[s]", sid));
        json_object_set_new(
            g, "count", json_integer(s->by_sector[i] < 999999999 ? s->by_sector[i] : 999999999));
        json_object_set_new(g, "first_seen", ts(from));
        json_object_set_new(g, "last_seen", ts(to));
        add(objects, refs, g);
    }
}

json_t *ctl_stix_bundle(const struct ctl_export *x)
{
    bool used[32] = {false};
    char producer[80], bundle_id[80], uuid[CTL_UUID_LEN + 1], rid[80], name[128], a[11], b[11];
    json_t *bundle = json_object(), *objects = json_array(), *refs = json_array(), *o, *rep;
    json_t *seen = json_object();
    char desc[4096];
    size_t dl = 0;

    if (bundle == NULL || objects == NULL || refs == NULL || seen == NULL) {
        json_decref(bundle);
        json_decref(objects);
        json_decref(refs);
        json_decref(seen);
        return NULL;
    }
    ctl_uuid_v4(uuid);
    snprintf(bundle_id, sizeof(bundle_id), "bundle--%s", uuid);
    json_object_set_new(bundle, "type", json_string("bundle"));
    json_object_set_new(bundle, "id", json_string(bundle_id));

    tm_id(producer, sizeof(producer), "identity", "producer:tm-telemetry");
    o = sdo("identity", producer, json_string(EPOCH), json_string(EPOCH), NULL);
    json_object_set_new(o, "name", json_string("tm-telemetry"));
    json_object_set_new(o, "description",
                        json_string("Cyber-incident telemetry of the Tallinn Mechanism: "
                                    "statistics of attacks on Ukrainian critical infrastructure."));
    json_object_set_new(o, "identity_class", json_string("system"));
    add(objects, NULL, o);

    /* Every sector any object refers to gets its identity. */
    for (size_t i = 0; i < x->nsectors; i++)
        if (x->sectors[i].sector >= 0 && x->sectors[i].sector < 32)
            used[x->sectors[i].sector] = true;
    for (size_t i = 0; i < x->nincidents; i++) {
        int s = tm_sector_index(x->incidents[i].sector);
        if (s >= 0 && s < 32)
            used[s] = true;
    }
    for (size_t i = 0; i < x->nsources; i++)
        for (size_t s = 0; s < tm_sectors_count && s < 32; s++)
            if (x->sources[i].by_sector[s] > 0)
                used[s] = true;
    for (size_t s = 0; s < tm_sectors_count && s < 32; s++)
        if (used[s])
            add(objects, refs, sector_identity(&tm_sectors[s], producer));

    for (size_t i = 0; i < x->nincidents; i++)
        if (tm_sector_find(x->incidents[i].sector) != NULL)
            incident(objects, refs, seen, &x->incidents[i], producer);
    for (size_t i = 0; i < x->nsources; i++)
        source(objects, refs, &x->sources[i], x, producer);

    /* The report: what this export is, with the sector totals in words. */
    day_str(x->since_ms / DAY_MS, a);
    day_str(x->until_ms / DAY_MS, b);
    dl = (size_t)snprintf(desc, sizeof(desc),
                          "tm-telemetry export, %s to %s (UTC). Events by sector:", a, b);
    for (size_t i = 0; i < x->nsectors && dl < sizeof(desc); i++) {
        const struct ctl_export_sector *s = &x->sectors[i];
        int w = snprintf(desc + dl, sizeof(desc) - dl,
                         "%s %s %" PRId64 " (high %" PRId64 ", critical %" PRId64 ")", i ? "," : "",
                         tm_sectors[s->sector].id, s->events, s->band[2], s->band[3]);
        if (w < 0)
            break;
        dl += (size_t)w;
    }
    if (dl < sizeof(desc))
        snprintf(desc + dl, sizeof(desc) - dl, "%s.", x->nsectors ? "" : " none");
    ctl_uuid_v4(uuid);
    snprintf(rid, sizeof(rid), "report--%s", uuid);
    rep = sdo("report", rid, ts(x->now_ms), ts(x->now_ms), producer);
    snprintf(name, sizeof(name), "tm-telemetry: incidents in Ukraine, %s to %s", a, b);
    json_object_set_new(rep, "name", json_string(name));
    json_object_set_new(rep, "description", json_string(desc));
    json_object_set_new(rep, "report_types", json_pack("[s]", "threat-report"));
    json_object_set_new(rep, "published", ts(x->now_ms));
    if (json_array_size(refs) == 0)
        json_array_append_new(refs, json_string(producer));
    json_object_set_new(rep, "object_refs", refs);
    add(objects, NULL, rep);

    json_object_set_new(bundle, "objects", objects);
    json_decref(seen);
    return bundle;
}
