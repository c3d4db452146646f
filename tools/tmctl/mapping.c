/*
 * mapping.c - which incidents a need is tied to: a table from incident category
 * (tm_categories) and MITRE ATT&CK technique to need categories (tm_need_categories),
 * as bit sets. Defaults follow issue 7 (docs/planners.md has the table); [mapping] in
 * tmctl's config replaces the entry of any key it names.
 *
 * A technique key without a sub-technique (T1110) also matches its sub-techniques
 * (tech:T1110.001), so the aggregator's fields are looked up by prefix; a field matching
 * several keys is still one field (its bits are OR'ed), so no event counts twice.
 */
#include <stdio.h>
#include <string.h>

#include "tm/tm_tables.h"
#include "tmctl.h"

static uint16_t need_bit(const char *need)
{
    int i = tm_need_category_index(need);
    return i < 0 ? 0 : (uint16_t)(1u << i);
}

/* Bit set from a list separated by commas, semicolons or spaces. */
static int need_set(const char *value, uint16_t *out, char *err)
{
    char item[32];
    const char *p = value;

    *out = 0;
    while (*p != '\0') {
        size_t n = strcspn(p, ",; \t");
        if (n > 0) {
            uint16_t b;
            if (n >= sizeof(item))
                return tm_err(err, "'%.40s': not a need category", p);
            memcpy(item, p, n);
            item[n] = '\0';
            b = need_bit(item);
            if (b == 0)
                return tm_err(err,
                              "'%s': not a need category (edr, backup, anti-ddos, training, "
                              "connectivity, assessment, incident-response, mfa, "
                              "email-security, other)",
                              item);
            *out |= b;
        }
        p += n;
        if (*p != '\0')
            p++;
    }
    return 0;
}

int ctl_mapping_set(struct ctl_mapping *m, const char *key, const char *value, char *err)
{
    uint16_t set;
    int i;

    if (need_set(value, &set, err) != 0)
        return -1;
    i = tm_category_index(key);
    if (i >= 0) {
        if ((size_t)i >= TM_ARRAY_LEN(m->category))
            return tm_err(err, "category table too small");
        m->category[i] = set;
        return 0;
    }
    if (!tm_attack_technique_valid(key))
        return tm_err(err,
                      "'%s' is neither an incident category (docs/schema.md) nor an "
                      "ATT&CK technique id (T1110, T1110.001)",
                      key);
    for (i = 0; i < m->ntech; i++)
        if (strcmp(m->tech[i].technique, key) == 0)
            break;
    if (i == m->ntech) {
        if (m->ntech == CTL_MAP_TECH_MAX)
            return tm_err(err, "more than %d techniques", CTL_MAP_TECH_MAX);
        m->ntech++;
        tm_strlcpy(m->tech[i].technique, key, sizeof(m->tech[i].technique));
    }
    m->tech[i].needs = set;
    return 0;
}

void ctl_mapping_defaults(struct ctl_mapping *m)
{
    static const struct {
        const char *key, *needs;
    } defaults[] = {
        /* incident categories (issue 7) */
        {"ddos", "anti-ddos, connectivity"},
        {"ransomware", "backup, edr, incident-response"},
        {"wiper", "backup, edr, incident-response"},
        {"malware", "backup, edr, incident-response"},
        {"phishing", "training, email-security"},
        {"bruteforce", "mfa, edr, assessment"},
        {"intrusion", "mfa, edr, assessment"},
        {"service-outage", "connectivity"},
        /* further categories, where the answer is plain */
        {"exploit", "assessment, edr"},
        {"defacement", "incident-response, assessment"},
        {"data-leak", "incident-response, assessment"},
        /* techniques: catch events whose category is "other" or too coarse */
        {"T1110", "mfa"},                       /* brute force */
        {"T1078", "mfa"},                       /* valid accounts */
        {"T1566", "training, email-security"},  /* phishing */
        {"T1486", "backup, incident-response"}, /* data encrypted for impact */
        {"T1485", "backup"},                    /* data destruction */
        {"T1561", "backup"},                    /* disk wipe */
        {"T1498", "anti-ddos"},                 /* network denial of service */
        {"T1499", "anti-ddos"},                 /* endpoint denial of service */
        {"T1190", "assessment"},                /* exploit public-facing application */
    };
    char err[TM_ERR_LEN];

    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < TM_ARRAY_LEN(defaults); i++)
        (void)ctl_mapping_set(m, defaults[i].key, defaults[i].needs, err);
}

static bool tech_matches(const char *key, const char *technique)
{
    size_t n = strlen(key);

    if (strcmp(key, technique) == 0)
        return true;
    return strchr(key, '.') == NULL && strncmp(key, technique, n) == 0 && technique[n] == '.';
}

uint16_t ctl_mapping_field(const struct ctl_mapping *m, const char *field, bool *is_tech)
{
    uint16_t set = 0;

    *is_tech = false;
    if (strncmp(field, "cat:", 4) == 0) {
        int i = tm_category_index(field + 4);
        return i >= 0 && (size_t)i < TM_ARRAY_LEN(m->category) ? m->category[i] : 0;
    }
    if (strncmp(field, "tech:", 5) != 0)
        return 0;
    *is_tech = true;
    for (int i = 0; i < m->ntech; i++)
        if (tech_matches(m->tech[i].technique, field + 5))
            set |= m->tech[i].needs;
    return set;
}

void ctl_mapping_describe(const struct ctl_mapping *m, int need, char *out, size_t len)
{
    size_t used = 0;
    bool any = false;

    out[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(out + used, len - used, __VA_ARGS__);                                    \
        if (w_ < 0 || (size_t)w_ >= len - used)                                                    \
            return;                                                                                \
        used += (size_t)w_;                                                                        \
    } while (0)
    for (size_t i = 0; i < tm_categories_count && i < TM_ARRAY_LEN(m->category); i++)
        if (m->category[i] & (1u << need)) {
            ADD("%s%s", any ? ", " : "categories ", tm_categories[i].id);
            any = true;
        }
    for (int i = 0, first = 1; i < m->ntech; i++)
        if (m->tech[i].needs & (1u << need)) {
            ADD("%s%s", first ? (any ? "; techniques " : "techniques ") : ", ",
                m->tech[i].technique);
            first = 0;
            any = true;
        }
    if (!any)
        ADD("none");
#undef ADD
}
