/*
 * tm_tables.h - the fixed vocabularies of schema v1 as tables with lookups: sectors
 * (with their NIS2 annex and STIX 2.1 industry-sector mapping and a criticality weight),
 * Ukrainian regions (ISO 3166-2:UA), incident categories (with RSIT classes), source
 * kinds, severity bands, MITRE ATT&CK tactics and the categories of assistance needs that
 * planners register (docs/planners.md). Lookups are exact and case-sensitive:
 * ids on the wire are lowercase.
 */
#ifndef TM_TABLES_H
#define TM_TABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "tm/tm_common.h"

struct tm_sector {
    const char *id;   /* "energy" */
    const char *name; /* "Energy" */
    const char *nis2; /* "I.1" (Annex I, sector 1) or "II.3" */
    const char *stix; /* STIX 2.1 industry-sector-ov value, e.g. "energy" */
    int criticality;  /* default weight 1..5 used by risk scores (configurable later) */
};

struct tm_region {
    const char *code; /* "UA-32" */
    const char *name; /* "Kyiv Oblast" */
};

struct tm_category {
    const char *id;   /* "ddos" */
    const char *rsit; /* "availability:ddos" */
};

enum tm_severity_band {
    TM_SEV_LOW = 0,      /* 1-3 */
    TM_SEV_MEDIUM = 1,   /* 4-6 */
    TM_SEV_HIGH = 2,     /* 7-8 */
    TM_SEV_CRITICAL = 3, /* 9-10 */
};

extern const struct tm_sector tm_sectors[];
extern const size_t tm_sectors_count;
extern const struct tm_region tm_regions[];
extern const size_t tm_regions_count;
extern const struct tm_category tm_categories[];
extern const size_t tm_categories_count;
extern const char *const tm_source_kinds[];
extern const size_t tm_source_kinds_count;
extern const char *const tm_tactics[];
extern const size_t tm_tactics_count;
/* Assistance need categories: edr, backup, anti-ddos, ..., other (docs/planners.md). */
extern const char *const tm_need_categories[];
extern const size_t tm_need_categories_count;

/* Each lookup returns the entry, or NULL when the id is unknown. */
const struct tm_sector *tm_sector_find(const char *id);
const struct tm_region *tm_region_find(const char *code);
const struct tm_category *tm_category_find(const char *id);

/* Index of the id in its table, or -1. */
int tm_sector_index(const char *id);
int tm_category_index(const char *id);
int tm_source_kind_index(const char *kind);
int tm_tactic_index(const char *shortname);
int tm_need_category_index(const char *id);

/* Band of a severity 1..10; values outside are clamped. */
enum tm_severity_band tm_severity_band(int severity);
/* "low", "medium", "high" or "critical". */
const char *tm_severity_band_name(enum tm_severity_band band);

/* True for "T" + 4 digits, optionally "." + 3 digits (T1110, T1110.001, T0831). */
bool tm_attack_technique_valid(const char *s);

#endif
