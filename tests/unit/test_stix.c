/*
 * test_stix.c - the STIX 2.1 bundle of an export (tools/tmctl/stix.c): UUID v4/v5 against
 * known values, id formats, the required properties of every object type, timestamps
 * with milliseconds, every reference resolving inside the bundle, deterministic ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define DAY_MS 86400000LL

static int64_t at(const char *s)
{
    int64_t t;

    assert_int_equal(tm_time_parse(s, strlen(s), &t), 0);
    return t;
}

static bool matches(const char *re, const char *s)
{
    regex_t r;
    bool ok;

    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    ok = s != NULL && regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static void test_stix_uuids(void **state)
{
    /* RFC 4122 DNS namespace 6ba7b810-9dad-11d1-80b4-00c04fd430c8 */
    static const unsigned char dns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                          0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    char u[CTL_UUID_LEN + 1], v[CTL_UUID_LEN + 1];

    (void)state;
    ctl_uuid_v5(dns, "python.org", 10, u);
    assert_string_equal(u, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    ctl_uuid_v4(u);
    ctl_uuid_v4(v);
    assert_true(
        matches("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", u));
    assert_string_not_equal(u, v);
}

static struct ctl_export_sector sectors[2];
static struct ctl_export_incident incidents[4];
static struct ctl_export_source sources[2];

static void make_export(struct ctl_export *x)
{
    memset(x, 0, sizeof(*x));
    memset(sectors, 0, sizeof(sectors));
    memset(incidents, 0, sizeof(incidents));
    memset(sources, 0, sizeof(sources));
    x->now_ms = at("2026-11-23T12:00:00.000Z");
    x->since_ms = at("2026-11-17T00:00:00.000Z");
    x->until_ms = x->now_ms;
    sectors[0] =
        (struct ctl_export_sector){tm_sector_index("energy"), 40, 90, {10, 10, 15, 5}, {0}};
    sectors[1] = (struct ctl_export_sector){tm_sector_index("other"), 3, 3, {3, 0, 0, 0}, {0}};
    x->sectors = sectors;
    x->nsectors = 2;
    incidents[0] = (struct ctl_export_incident){"EV-1",      at("2026-11-20T08:15:00.250Z"),
                                                "energy",    "op-kyiv",
                                                "UA-32",     "bruteforce",
                                                "T1110.001", "198.51.100.3",
                                                8,           "57 failed logins for root"};
    incidents[1] = (struct ctl_export_incident){"EV-2",
                                                at("2026-11-21T10:00:00.000Z"),
                                                "local-government",
                                                "",
                                                "",
                                                "ddos",
                                                "",
                                                "2001:db8::1",
                                                9,
                                                ""};
    incidents[2] = (struct ctl_export_incident){"EV-3",   at("2026-11-22T10:00:00.000Z"),
                                                "health", "op-h",
                                                "UA-46",  "ransomware",
                                                "",       "",
                                                10,       "files encrypted"};
    incidents[3] = incidents[0]; /* the same source again: one SCO in the bundle */
    snprintf(incidents[3].event_id, sizeof(incidents[3].event_id), "EV-4");
    incidents[3].ts += 60000;
    x->incidents = incidents;
    x->nincidents = 4;
    snprintf(sources[0].ip, sizeof(sources[0].ip), "198.51.100.3");
    sources[0].events = 30;
    sources[0].by_sector[tm_sector_index("energy")] = 20;
    sources[0].by_sector[tm_sector_index("transport")] = 10; /* a sector with no totals */
    sources[0].first_day = at("2026-11-18T00:00:00.000Z") / DAY_MS;
    sources[0].last_day = at("2026-11-23T00:00:00.000Z") / DAY_MS;
    snprintf(sources[1].ip, sizeof(sources[1].ip), "not-an-ip");
    sources[1].events = 5;
    x->sources = sources;
    x->nsources = 2;
}

static json_t *find(json_t *objects, const char *id)
{
    size_t i;
    json_t *o;

    json_array_foreach(objects, i, o) if (strcmp(json_string_value(json_object_get(o, "id")), id) ==
                                          0) return o;
    return NULL;
}

static void check_ref(json_t *objects, json_t *ref, const char *where)
{
    if (!json_is_string(ref) || find(objects, json_string_value(ref)) == NULL)
        fail_msg("%s: reference '%s' does not resolve", where,
                 json_is_string(ref) ? json_string_value(ref) : "(not a string)");
}

/* Every property ending in _ref / _refs names an object of the bundle. */
static void check_refs(json_t *objects)
{
    size_t i, k;
    json_t *o, *v, *r;
    const char *key;

    json_array_foreach(objects, i, o)
    {
        json_object_foreach(o, key, v)
        {
            size_t n = strlen(key);
            if (n > 4 && strcmp(key + n - 4, "_ref") == 0)
                check_ref(objects, v, key);
            else if (n > 5 && strcmp(key + n - 5, "_refs") == 0) {
                assert_true(json_is_array(v) && json_array_size(v) > 0);
                json_array_foreach(v, k, r) check_ref(objects, r, key);
            }
        }
    }
}

static void require(json_t *o, const char *const *props)
{
    for (size_t i = 0; props[i] != NULL; i++)
        if (json_object_get(o, props[i]) == NULL)
            fail_msg("%s lacks '%s'", json_string_value(json_object_get(o, "id")), props[i]);
}

static void test_stix_structure(void **state)
{
    static const char *const common[] = {"type", "spec_version", "id", "created", "modified", NULL};
    static const char *const identity[] = {"name", "identity_class", "created_by_ref", NULL};
    static const char *const incident[] = {"name", NULL};
    static const char *const indicator[] = {"pattern", "pattern_type", "valid_from", NULL};
    static const char *const sighting[] = {"sighting_of_ref", "where_sighted_refs", NULL};
    static const char *const observed[] = {"first_observed", "last_observed", "number_observed",
                                           "object_refs", NULL};
    static const char *const rel[] = {"relationship_type", "source_ref", "target_ref", NULL};
    static const char *const report[] = {"name", "published", "object_refs", NULL};
    const char *ts_re = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$";
    const char *id_re = "^[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                        "[0-9a-f]{12}$";
    struct ctl_export x;
    json_t *b, *objects, *o;
    size_t i;
    int counts[10] = {0};

    (void)state;
    make_export(&x);
    b = ctl_stix_bundle(&x);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "bundle");
    assert_true(matches(id_re, json_string_value(json_object_get(b, "id"))));
    assert_true(strncmp(json_string_value(json_object_get(b, "id")), "bundle--", 8) == 0);
    objects = json_object_get(b, "objects");
    assert_true(json_array_size(objects) > 10);
    json_array_foreach(objects, i, o)
    {
        const char *type = json_string_value(json_object_get(o, "type"));
        const char *id = json_string_value(json_object_get(o, "id"));
        size_t tl = strlen(type);
        assert_non_null(type);
        assert_true(matches(id_re, id));
        assert_true(strncmp(id, type, tl) == 0 && id[tl] == '-' && id[tl + 1] == '-');
        assert_string_equal(json_string_value(json_object_get(o, "spec_version")), "2.1");
        /* ids unique */
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(
                json_string_value(json_object_get(json_array_get(objects, k), "id")), id);
        if (strcmp(type, "ipv4-addr") == 0 || strcmp(type, "ipv6-addr") == 0) {
            assert_non_null(json_object_get(o, "value"));
            counts[9]++;
            continue;
        }
        require(o, common);
        assert_true(matches(ts_re, json_string_value(json_object_get(o, "created"))));
        assert_true(matches(ts_re, json_string_value(json_object_get(o, "modified"))));
        assert_true(strcmp(json_string_value(json_object_get(o, "created")),
                           json_string_value(json_object_get(o, "modified"))) <= 0);
        if (strcmp(type, "identity") == 0) {
            if (json_object_get(o, "created_by_ref") != NULL)
                require(o, identity);
            counts[0]++;
        } else if (strcmp(type, "incident") == 0) {
            require(o, incident);
            counts[1]++;
        } else if (strcmp(type, "indicator") == 0) {
            require(o, indicator);
            assert_true(matches(ts_re, json_string_value(json_object_get(o, "valid_from"))));
            assert_string_equal(json_string_value(json_object_get(o, "pattern")),
                                "[ipv4-addr:value = '198.51.100.3']");
            assert_string_equal(json_string_value(json_object_get(o, "pattern_type")), "stix");
            counts[2]++;
        } else if (strcmp(type, "sighting") == 0) {
            require(o, sighting);
            assert_true(json_integer_value(json_object_get(o, "count")) > 0);
            counts[3]++;
        } else if (strcmp(type, "observed-data") == 0) {
            require(o, observed);
            assert_int_equal(json_integer_value(json_object_get(o, "number_observed")), 1);
            counts[4]++;
        } else if (strcmp(type, "relationship") == 0) {
            require(o, rel);
            counts[5]++;
        } else if (strcmp(type, "report") == 0) {
            require(o, report);
            assert_int_equal(json_array_size(json_object_get(o, "object_refs")),
                             json_array_size(objects) - 2); /* all but producer and itself */
            counts[6]++;
        } else {
            fail_msg("unexpected type '%s'", type);
        }
    }
    /* producer + energy, other, local-government, health, transport */
    assert_int_equal(counts[0], 6);
    assert_int_equal(counts[1], 4); /* incidents */
    assert_int_equal(counts[2], 1); /* the invalid address is skipped */
    assert_int_equal(counts[3], 2); /* energy and transport */
    assert_int_equal(counts[4], 3); /* incidents with an address */
    assert_int_equal(counts[5], 4 + 3);
    assert_int_equal(counts[6], 1);
    assert_int_equal(counts[9], 2);
    check_refs(objects);
    json_decref(b);
}

static void test_stix_content(void **state)
{
    struct ctl_export x;
    json_t *b, *objects, *o;
    size_t i;
    bool saw_energy = false, saw_other = false, saw_v4 = false, saw_v6 = false, saw_inc = false;

    (void)state;
    make_export(&x);
    b = ctl_stix_bundle(&x);
    objects = json_object_get(b, "objects");
    json_array_foreach(objects, i, o)
    {
        const char *type = json_string_value(json_object_get(o, "type"));
        const char *sector = json_string_value(json_object_get(o, "x_tm_sector"));
        if (strcmp(type, "identity") == 0 && sector != NULL && strcmp(sector, "energy") == 0) {
            assert_string_equal(json_string_value(json_object_get(o, "identity_class")), "class");
            assert_string_equal(json_string_value(json_array_get(json_object_get(o, "sectors"), 0)),
                                "energy");
            saw_energy = true;
        }
        if (strcmp(type, "identity") == 0 && sector != NULL && strcmp(sector, "other") == 0) {
            assert_null(json_object_get(o, "sectors")); /* no industry-sector-ov value */
            saw_other = true;
        }
        /* STIX's own deterministic SCO ids (UUIDv5 of {"value":...}) */
        if (strcmp(type, "ipv4-addr") == 0) {
            assert_string_equal(json_string_value(json_object_get(o, "id")),
                                "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4");
            saw_v4 = true;
        }
        if (strcmp(type, "ipv6-addr") == 0) {
            assert_string_equal(json_string_value(json_object_get(o, "id")),
                                "ipv6-addr--6469e3a9-b053-5e34-a025-9396ae051d26");
            saw_v6 = true;
        }
        if (strcmp(type, "incident") == 0 &&
            strcmp(json_string_value(json_object_get(o, "x_tm_event_id")), "EV-1") == 0) {
            json_t *ref = json_array_get(json_object_get(o, "external_references"), 0);
            assert_string_equal(json_string_value(json_object_get(o, "created")),
                                "2026-11-20T08:15:00.250Z");
            assert_string_equal(json_string_value(json_object_get(ref, "external_id")),
                                "T1110.001");
            assert_string_equal(json_string_value(json_object_get(ref, "url")),
                                "https://attack.mitre.org/techniques/T1110/001/");
            assert_int_equal(json_integer_value(json_object_get(o, "x_tm_severity")), 8);
            saw_inc = true;
        }
    }
    assert_true(saw_energy && saw_other && saw_v4 && saw_v6 && saw_inc);
    json_decref(b);
}

/* Same facts, same ids (bundle and report aside): importers update, not duplicate. */
static void test_stix_deterministic_ids(void **state)
{
    struct ctl_export x;
    json_t *a, *b, *oa, *ob, *x1;
    size_t i;

    (void)state;
    make_export(&x);
    a = ctl_stix_bundle(&x);
    b = ctl_stix_bundle(&x);
    assert_string_not_equal(json_string_value(json_object_get(a, "id")),
                            json_string_value(json_object_get(b, "id")));
    oa = json_object_get(a, "objects");
    ob = json_object_get(b, "objects");
    assert_int_equal(json_array_size(oa), json_array_size(ob));
    json_array_foreach(oa, i, x1)
    {
        json_t *y = json_array_get(ob, i);
        if (strcmp(json_string_value(json_object_get(x1, "type")), "report") == 0)
            continue;
        assert_true(json_equal(x1, y));
    }
    json_decref(a);
    json_decref(b);
}

static void test_stix_empty_export(void **state)
{
    struct ctl_export x;
    json_t *b;

    (void)state;
    memset(&x, 0, sizeof(x));
    x.now_ms = at("2026-11-23T12:00:00.000Z");
    x.since_ms = x.now_ms - 7 * DAY_MS;
    x.until_ms = x.now_ms;
    b = ctl_stix_bundle(&x);
    /* the producer and a report that refers to it */
    assert_int_equal(json_array_size(json_object_get(b, "objects")), 2);
    check_refs(json_object_get(b, "objects"));
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stix_uuids),        cmocka_unit_test(test_stix_structure),
        cmocka_unit_test(test_stix_content),      cmocka_unit_test(test_stix_deterministic_ids),
        cmocka_unit_test(test_stix_empty_export),
    };
    return cmocka_run_group_tests_name("stix", tests, NULL, NULL);
}
