/*
 * records.c - needs and offers as records: their fields, the one validation each record
 * goes through whatever it came from (a CSV row, a Redis hash, `needs add` options), and
 * their text form for storing and exporting. A record either passes whole or is refused
 * with the name of the first bad field, so importers can refuse a file before writing.
 *
 * Dates are UTC calendar days, "YYYY-MM-DD", held as day numbers (days since 1970-01-01).
 * Money is whole euros. Lists of sectors and regions are separated by ';', ',' or spaces;
 * empty or "*" means any.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tm/tm_time.h"
#include "tmctl.h"

#define MONEY_MAX 1000000000000LL /* EUR 10^12 */
#define CAPACITY_MAX 1000000

const char *const ctl_need_fields[] = {"id",       "operator",    "sector", "region",
                                       "category", "description", "cost",   "status",
                                       "opened",   "closed",      NULL};
const char *const ctl_need_required[] = {"id", "sector", "category", "cost", NULL};
const char *const ctl_offer_fields[] = {"id",           "donor",   "category", "capacity",
                                        "cost_ceiling", "sectors", "regions",  "expires",
                                        "description",  NULL};
const char *const ctl_offer_required[] = {"id", "donor", "category", "capacity", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

int ctl_header_check(const char *const *fields, const char *const *required, char **names, size_t n,
                     char *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!in_list(fields, names[i])) {
            char known[256] = "";
            for (size_t k = 0; fields[k] != NULL; k++) {
                size_t l = strlen(known);
                snprintf(known + l, sizeof(known) - l, "%s%s", k ? ", " : "", fields[k]);
            }
            return tm_err(err, "column %zu '%.40s': unknown column (known: %s)", i + 1, names[i],
                          known);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return tm_err(err, "column %zu '%s': given twice (also column %zu)", i + 1,
                              names[i], j + 1);
    }
    for (size_t k = 0; required[k] != NULL; k++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(names[i], required[k]) == 0;
        if (!found)
            return tm_err(err, "missing column '%s'", required[k]);
    }
    return 0;
}

bool ctl_id_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CTL_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("._:-", s[i]) == NULL)
            return false;
    return true;
}

int ctl_day_parse(const char *s, int64_t *day)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y = 0, m = 0, d = 0;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return -1;
    }
    y = (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
    m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return -1;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    *day = tm_time_days_from_civil(y, m, d);
    return 0;
}

void ctl_day_format(int64_t day, char out[11])
{
    char t[TM_TIME_LEN];

    if (tm_time_format(day * 86400000LL, t, sizeof(t)) != 0) {
        snprintf(out, 11, "?");
        return;
    }
    memcpy(out, t, 10);
    out[10] = '\0';
}

static const char *get_or_empty(ctl_field_cb get, void *arg, const char *name)
{
    const char *v = get(arg, name);
    return v != NULL ? v : "";
}

/* Whole euros or units: digits only, within [min, max]. */
static int whole(const char *name, const char *v, int64_t min, int64_t max, int64_t *out, char *err)
{
    for (const char *p = v; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return tm_err(err, "column '%s': '%.40s' is not a whole number", name, v);
    if (tm_parse_int64(v, min, max, out) != 0)
        return tm_err(err,
                      "column '%s': '%.40s' is not a whole number from %" PRId64 " to %" PRId64,
                      name, v, min, max);
    return 0;
}

static int text(const char *name, const char *v, char *out, size_t len, char *err)
{
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return tm_err(err, "column '%s': control character", name);
    if (tm_strlcpy(out, v, len) != 0)
        return tm_err(err, "column '%s': longer than %zu bytes", name, len - 1);
    return 0;
}

static int category(const char *v, int *out, char *err)
{
    *out = tm_need_category_index(v);
    if (*out < 0)
        return tm_err(err,
                      "column 'category': unknown category '%.40s' (edr, backup, anti-ddos, "
                      "training, connectivity, assessment, incident-response, mfa, "
                      "email-security, other)",
                      v);
    return 0;
}

int ctl_need_parse(struct ctl_need *n, ctl_field_cb get, void *arg, int64_t today, char *err)
{
    const char *v;

    memset(n, 0, sizeof(*n));
    n->closed = -1;
    v = get_or_empty(get, arg, "id");
    if (!ctl_id_valid(v))
        return tm_err(err, "column 'id': '%.40s' is not 1-64 of A-Z a-z 0-9 . _ : -", v);
    tm_strlcpy(n->id, v, sizeof(n->id));
    v = get_or_empty(get, arg, "operator");
    if (v[0] != '\0' && !ctl_id_valid(v))
        return tm_err(err, "column 'operator': '%.40s' is not 1-64 of A-Z a-z 0-9 . _ : -", v);
    tm_strlcpy(n->operator_id, v, sizeof(n->operator_id));
    v = get_or_empty(get, arg, "sector");
    if (tm_sector_find(v) == NULL)
        return tm_err(err, "column 'sector': unknown sector '%.40s' (docs/schema.md)", v);
    tm_strlcpy(n->sector, v, sizeof(n->sector));
    v = get_or_empty(get, arg, "region");
    if (v[0] != '\0' && tm_region_find(v) == NULL)
        return tm_err(err, "column 'region': unknown region '%.40s' (ISO 3166-2:UA, e.g. UA-32)",
                      v);
    tm_strlcpy(n->region, v, sizeof(n->region));
    if (category(get_or_empty(get, arg, "category"), &n->category, err) != 0)
        return -1;
    if (text("description", get_or_empty(get, arg, "description"), n->description,
             sizeof(n->description), err) != 0)
        return -1;
    if (whole("cost", get_or_empty(get, arg, "cost"), 0, MONEY_MAX, &n->cost, err) != 0)
        return -1;
    v = get_or_empty(get, arg, "status");
    if (v[0] == '\0' || strcmp(v, "open") == 0)
        n->status = CTL_NEED_OPEN;
    else if (strcmp(v, "closed") == 0)
        n->status = CTL_NEED_CLOSED;
    else
        return tm_err(err, "column 'status': '%.40s' is neither open nor closed", v);
    v = get_or_empty(get, arg, "opened");
    if (v[0] == '\0')
        n->opened = today;
    else if (ctl_day_parse(v, &n->opened) != 0)
        return tm_err(err, "column 'opened': '%.40s' is not a date YYYY-MM-DD", v);
    v = get_or_empty(get, arg, "closed");
    if (v[0] != '\0') {
        if (ctl_day_parse(v, &n->closed) != 0)
            return tm_err(err, "column 'closed': '%.40s' is not a date YYYY-MM-DD", v);
        if (n->status != CTL_NEED_CLOSED)
            return tm_err(err, "column 'closed': set on a need whose status is open");
        if (n->closed < n->opened)
            return tm_err(err, "column 'closed': before the need was opened");
    } else if (n->status == CTL_NEED_CLOSED) {
        n->closed = today;
    }
    return 0;
}

/*
 * A list of ids of a table into a bit set; "" or "*" = any (0). find returns the index
 * of an id or -1.
 */
static int id_set(const char *name, const char *v, int (*find)(const char *), uint32_t *out,
                  char *err)
{
    char item[64];
    const char *p = v;

    *out = 0;
    if (strcmp(v, "*") == 0)
        return 0;
    while (*p != '\0') {
        size_t n = strcspn(p, ";, \t");
        int i;
        if (n > 0) {
            if (n >= sizeof(item))
                return tm_err(err, "column '%s': '%.40s' is not known", name, p);
            memcpy(item, p, n);
            item[n] = '\0';
            i = find(item);
            if (i < 0 || i >= 32)
                return tm_err(err, "column '%s': '%s' is not known", name, item);
            *out |= 1u << i;
        }
        p += n;
        if (*p != '\0')
            p++;
    }
    return 0;
}

static int sector_index(const char *s)
{
    return tm_sector_index(s);
}

static int region_index(const char *s)
{
    const struct tm_region *r = tm_region_find(s);
    return r != NULL ? (int)(r - tm_regions) : -1;
}

int ctl_offer_parse(struct ctl_offer *o, ctl_field_cb get, void *arg, char *err)
{
    const char *v;

    memset(o, 0, sizeof(*o));
    v = get_or_empty(get, arg, "id");
    if (!ctl_id_valid(v))
        return tm_err(err, "column 'id': '%.40s' is not 1-64 of A-Z a-z 0-9 . _ : -", v);
    tm_strlcpy(o->id, v, sizeof(o->id));
    v = get_or_empty(get, arg, "donor");
    if (v[0] == '\0')
        return tm_err(err, "column 'donor': empty");
    if (text("donor", v, o->donor, sizeof(o->donor), err) != 0)
        return -1;
    if (category(get_or_empty(get, arg, "category"), &o->category, err) != 0)
        return -1;
    if (whole("capacity", get_or_empty(get, arg, "capacity"), 1, CAPACITY_MAX, &o->capacity, err) !=
        0)
        return -1;
    v = get_or_empty(get, arg, "cost_ceiling");
    o->cost_ceiling = -1;
    if (v[0] != '\0' && whole("cost_ceiling", v, 0, MONEY_MAX, &o->cost_ceiling, err) != 0)
        return -1;
    if (id_set("sectors", get_or_empty(get, arg, "sectors"), sector_index, &o->sectors, err) != 0)
        return -1;
    if (id_set("regions", get_or_empty(get, arg, "regions"), region_index, &o->regions, err) != 0)
        return -1;
    v = get_or_empty(get, arg, "expires");
    o->expires = -1;
    if (v[0] != '\0' && ctl_day_parse(v, &o->expires) != 0)
        return tm_err(err, "column 'expires': '%.40s' is not a date YYYY-MM-DD", v);
    return text("description", get_or_empty(get, arg, "description"), o->description,
                sizeof(o->description), err);
}

const char *ctl_need_field(const struct ctl_need *n, const char *name, char *buf, size_t len)
{
    char day[11];

    buf[0] = '\0';
    if (strcmp(name, "id") == 0)
        snprintf(buf, len, "%s", n->id);
    else if (strcmp(name, "operator") == 0)
        snprintf(buf, len, "%s", n->operator_id);
    else if (strcmp(name, "sector") == 0)
        snprintf(buf, len, "%s", n->sector);
    else if (strcmp(name, "region") == 0)
        snprintf(buf, len, "%s", n->region);
    else if (strcmp(name, "category") == 0)
        snprintf(buf, len, "%s", tm_need_categories[n->category]);
    else if (strcmp(name, "description") == 0)
        snprintf(buf, len, "%s", n->description);
    else if (strcmp(name, "cost") == 0)
        snprintf(buf, len, "%" PRId64, n->cost);
    else if (strcmp(name, "status") == 0)
        snprintf(buf, len, "%s", n->status == CTL_NEED_OPEN ? "open" : "closed");
    else if (strcmp(name, "opened") == 0) {
        ctl_day_format(n->opened, day);
        snprintf(buf, len, "%s", day);
    } else if (strcmp(name, "closed") == 0 && n->closed >= 0) {
        ctl_day_format(n->closed, day);
        snprintf(buf, len, "%s", day);
    }
    return buf;
}

/* "energy;health" from a bit set over ids (get returns the id of index i). */
static void id_list(uint32_t set, size_t count, const char *(*get)(size_t), char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < count && i < 32; i++)
        if (set & (1u << i)) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? ";" : "", get(i));
            if (w < 0 || (size_t)w >= len - used)
                return;
            used += (size_t)w;
        }
}

static const char *sector_id(size_t i)
{
    return tm_sectors[i].id;
}

static const char *region_code(size_t i)
{
    return tm_regions[i].code;
}

const char *ctl_offer_field(const struct ctl_offer *o, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    if (strcmp(name, "id") == 0)
        snprintf(buf, len, "%s", o->id);
    else if (strcmp(name, "donor") == 0)
        snprintf(buf, len, "%s", o->donor);
    else if (strcmp(name, "category") == 0)
        snprintf(buf, len, "%s", tm_need_categories[o->category]);
    else if (strcmp(name, "capacity") == 0)
        snprintf(buf, len, "%" PRId64, o->capacity);
    else if (strcmp(name, "cost_ceiling") == 0 && o->cost_ceiling >= 0)
        snprintf(buf, len, "%" PRId64, o->cost_ceiling);
    else if (strcmp(name, "sectors") == 0)
        id_list(o->sectors, tm_sectors_count, sector_id, buf, len);
    else if (strcmp(name, "regions") == 0)
        id_list(o->regions, tm_regions_count, region_code, buf, len);
    else if (strcmp(name, "expires") == 0 && o->expires >= 0) {
        char day[11];
        ctl_day_format(o->expires, day);
        snprintf(buf, len, "%s", day);
    } else if (strcmp(name, "description") == 0)
        snprintf(buf, len, "%s", o->description);
    return buf;
}
