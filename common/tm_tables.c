/*
 * tm_tables.c - the vocabularies of schema v1 and their lookups. The tables are small
 * and fixed, so lookups are linear scans; the collector calls them a few times per event
 * and they stay in cache. Mappings to NIS2, STIX 2.1 and RSIT follow docs/schema.md.
 */
#include "tm/tm_tables.h"

#include <string.h>

/* NIS2: Annex I = sectors of high criticality, Annex II = other critical sectors; "-" = none. */
const struct tm_sector tm_sectors[] = {
    {"energy", "Energy", "I.1", "energy", 5},
    {"transport", "Transport", "I.2", "transportation", 4},
    {"banking", "Banking", "I.3", "financial-services", 4},
    {"financial-market", "Financial market infrastructures", "I.4", "financial-services", 4},
    {"health", "Health", "I.5", "healthcare", 5},
    {"drinking-water", "Drinking water", "I.6", "water", 5},
    {"waste-water", "Waste water", "I.7", "water", 4},
    {"digital-infrastructure", "Digital infrastructure", "I.8", "telecommunications", 5},
    {"ict-services", "ICT service management", "I.9", "technology", 4},
    {"public-administration", "Public administration (central)", "I.10", "government-national", 4},
    {"state-registries", "State registries", "I.10", "government-national", 5},
    {"local-government", "Local authorities", "I.10", "government-local", 3},
    {"space", "Space", "I.11", "aerospace", 3},
    {"postal", "Postal and courier services", "II.1", "commercial", 2},
    {"waste-management", "Waste management", "II.2", "utilities", 2},
    {"chemicals", "Chemicals", "II.3", "chemical", 4},
    {"food", "Food", "II.4", "agriculture", 3},
    {"manufacturing", "Manufacturing", "II.5", "manufacturing", 3},
    {"digital-providers", "Digital providers", "II.6", "technology", 3},
    {"research", "Research", "II.7", "education", 2},
    {"defence-industry", "Security and defence industry", "-", "defense", 5},
    {"education", "Education", "-", "education", 2},
    {"media", "Media", "-", "communications", 3},
    {"other", "Other", "-", NULL, 1},
};
const size_t tm_sectors_count = TM_ARRAY_LEN(tm_sectors);

/* ISO 3166-2:UA: 24 oblasts, 2 cities with special status, 1 autonomous republic. */
const struct tm_region tm_regions[] = {
    {"UA-05", "Vinnytska oblast"},
    {"UA-07", "Volynska oblast"},
    {"UA-09", "Luhanska oblast"},
    {"UA-12", "Dnipropetrovska oblast"},
    {"UA-14", "Donetska oblast"},
    {"UA-18", "Zhytomyrska oblast"},
    {"UA-21", "Zakarpatska oblast"},
    {"UA-23", "Zaporizka oblast"},
    {"UA-26", "Ivano-Frankivska oblast"},
    {"UA-30", "Kyiv"},
    {"UA-32", "Kyivska oblast"},
    {"UA-35", "Kirovohradska oblast"},
    {"UA-40", "Sevastopol"},
    {"UA-43", "Avtonomna Respublika Krym"},
    {"UA-46", "Lvivska oblast"},
    {"UA-48", "Mykolaivska oblast"},
    {"UA-51", "Odeska oblast"},
    {"UA-53", "Poltavska oblast"},
    {"UA-56", "Rivnenska oblast"},
    {"UA-59", "Sumska oblast"},
    {"UA-61", "Ternopilska oblast"},
    {"UA-63", "Kharkivska oblast"},
    {"UA-65", "Khersonska oblast"},
    {"UA-68", "Khmelnytska oblast"},
    {"UA-71", "Cherkaska oblast"},
    {"UA-74", "Chernihivska oblast"},
    {"UA-77", "Chernivetska oblast"},
};
const size_t tm_regions_count = TM_ARRAY_LEN(tm_regions);

/* RSIT classes as MISP's rsit taxonomy spells them (predicate:value). */
const struct tm_category tm_categories[] = {
    {"ddos", "availability:ddos"},
    {"phishing", "fraud:phishing"},
    {"malware", "malicious-code:infected-system"},
    {"ransomware", "malicious-code:infected-system"},
    {"wiper", "availability:sabotage"},
    {"intrusion", "intrusions:system-compromise"},
    {"bruteforce", "intrusion-attempts:brute-force"},
    {"scan", "information-gathering:scanner"},
    {"exploit", "intrusion-attempts:exploit-known-vulnerability"},
    {"defacement", "intrusions:application-compromise"},
    {"data-leak", "information-content-security:leak-confidential-information"},
    {"service-outage", "availability:outage"},
    {"other", "other:undetermined"},
};
const size_t tm_categories_count = TM_ARRAY_LEN(tm_categories);

const char *const tm_source_kinds[] = {"suricata", "auth", "cef", "syslog", "json", "manual"};
const size_t tm_source_kinds_count = TM_ARRAY_LEN(tm_source_kinds);

/* Tactic shortnames of the Enterprise and ICS matrices (MITRE ATT&CK, corpus/attack). */
const char *const tm_tactics[] = {
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
    "evasion",
    "impair-process-control",
    "inhibit-response-function",
};
const size_t tm_tactics_count = TM_ARRAY_LEN(tm_tactics);

/* What planners register as a need and donors offer (tmctl, docs/planners.md). */
const char *const tm_need_categories[] = {
    "edr",
    "backup",
    "anti-ddos",
    "training",
    "connectivity",
    "assessment",
    "incident-response",
    "mfa",
    "email-security",
    "other",
};
const size_t tm_need_categories_count = TM_ARRAY_LEN(tm_need_categories);

static int name_index(const char *const *names, size_t n, const char *id)
{
    for (size_t i = 0; id != NULL && i < n; i++)
        if (names[i][0] == id[0] && strcmp(names[i], id) == 0)
            return (int)i;
    return -1;
}

int tm_sector_index(const char *id)
{
    for (size_t i = 0; id != NULL && i < tm_sectors_count; i++)
        if (tm_sectors[i].id[0] == id[0] && strcmp(tm_sectors[i].id, id) == 0)
            return (int)i;
    return -1;
}

int tm_category_index(const char *id)
{
    for (size_t i = 0; id != NULL && i < tm_categories_count; i++)
        if (tm_categories[i].id[0] == id[0] && strcmp(tm_categories[i].id, id) == 0)
            return (int)i;
    return -1;
}

int tm_source_kind_index(const char *kind)
{
    return name_index(tm_source_kinds, tm_source_kinds_count, kind);
}

int tm_tactic_index(const char *shortname)
{
    return name_index(tm_tactics, tm_tactics_count, shortname);
}

int tm_need_category_index(const char *id)
{
    return name_index(tm_need_categories, tm_need_categories_count, id);
}

const struct tm_sector *tm_sector_find(const char *id)
{
    int i = tm_sector_index(id);
    return i < 0 ? NULL : &tm_sectors[i];
}

const struct tm_category *tm_category_find(const char *id)
{
    int i = tm_category_index(id);
    return i < 0 ? NULL : &tm_categories[i];
}

const struct tm_region *tm_region_find(const char *code)
{
    for (size_t i = 0; code != NULL && i < tm_regions_count; i++)
        if (strcmp(tm_regions[i].code, code) == 0)
            return &tm_regions[i];
    return NULL;
}

enum tm_severity_band tm_severity_band(int severity)
{
    if (severity <= 3)
        return TM_SEV_LOW;
    if (severity <= 6)
        return TM_SEV_MEDIUM;
    if (severity <= 8)
        return TM_SEV_HIGH;
    return TM_SEV_CRITICAL;
}

const char *tm_severity_band_name(enum tm_severity_band band)
{
    static const char *const names[] = {"low", "medium", "high", "critical"};

    if ((unsigned)band >= TM_ARRAY_LEN(names))
        return "unknown";
    return names[band];
}

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool tm_attack_technique_valid(const char *s)
{
    size_t n = strlen(s);

    if (s[0] != 'T' || (n != 5 && n != 9))
        return false;
    if (!is_digits(s + 1, 4))
        return false;
    return n == 5 || (s[5] == '.' && is_digits(s + 6, 3));
}
