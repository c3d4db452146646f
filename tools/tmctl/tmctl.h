/*
 * tmctl.h - the planners' tool: needs registry, donor offers, assistance priorities,
 * matching and exports for partner CERTs (docs/planners.md). Modules:
 *
 *   csv.c            RFC 4180 reader (quotes, CRLF, embedded newlines) and writer
 *   records.c        needs and offers: the one validation of a record, whatever it came
 *                    from (a CSV row, a Redis hash, command-line options); dates
 *   mapping.c        incident category / ATT&CK technique -> need categories
 *   score.c          the priority formula, pure arithmetic
 *   match.c          offers to needs: exact maximum-priority assignment (min-cost flow)
 *   stix.c           STIX 2.1 bundle of an export, UUIDv4/v5 ids
 *   tmctl_config.c   the INI file and its defaults
 *   store.c          Redis: connection, needs and offers keys
 *   cmd_needs.c, cmd_offers.c, cmd_priorities.c, cmd_match.c, cmd_export.c: the commands
 *   cmd_ca.c, cmd_enroll.c: agent enrollment (docs/enrollment.md): the CA, enroll, revoke
 *   main.c           global options and dispatch
 *
 * csv, records, mapping, score, match and stix touch neither Redis nor files, so their
 * unit tests (tests/unit/test_<module>.c) run them on data alone.
 */
#ifndef TMCTL_H
#define TMCTL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tm/tm_common.h"
#include "tm/tm_net.h"

#define CTL_ID_MAX 64     /* need and offer ids: 1-64 of A-Z a-z 0-9 . _ : - */
#define CTL_DESC_MAX 1024 /* description */
#define CTL_DONOR_MAX 128
#define CTL_NEED_CATS 10        /* = tm_need_categories_count (checked at start) */
#define CTL_DAYS 30             /* days of evidence a priority looks at: D-29 .. D */
#define CTL_CSV_MAX (16u << 20) /* largest CSV file read */

/* ---- csv.c ---------------------------------------------------------------------- */

struct ctl_csv;

/*
 * A reader over data[0..len) (not copied: data must outlive the reader). RFC 4180 with
 * the usual tolerances: LF or CRLF line ends, a UTF-8 byte order mark at the start, no
 * final line end. A quoted field may hold commas, CR, LF and "" (one quote). Returns NULL
 * when out of memory.
 */
struct ctl_csv *ctl_csv_create(const char *data, size_t len);
void ctl_csv_destroy(struct ctl_csv *c);

/*
 * Reads the next record. Returns 1 with *fields (n NUL-terminated strings owned by the
 * reader, valid until the next call) and *row (1 = the first record of the file, as a
 * spreadsheet numbers it; blank lines count but are skipped); 0 at the end; -1 with
 * "row N, column C: reason" in err for an unterminated quote, a character after a
 * closing quote, a quote inside an unquoted field, a NUL byte, or a field or record over
 * the limits (64 KiB per field, 256 fields).
 */
int ctl_csv_next(struct ctl_csv *c, char ***fields, size_t *n, long *row, char *err);

/*
 * Reads a whole file (at most CTL_CSV_MAX bytes) into a malloc'd, NUL-terminated buffer
 * the caller frees. Returns 0, or -1 with "cannot open 'F': reason" in err.
 */
int ctl_read_file(const char *path, char **out, size_t *len, char *err);

/*
 * Writes one record to f: fields joined by commas, quoted when they hold a comma, quote,
 * CR or LF, ending in CRLF (RFC 4180). A field that a spreadsheet would run as a formula
 * (starting with = + - @ TAB CR, and not a plain number) is prefixed with a single quote,
 * since summaries come from attacker-influenced logs.
 */
void ctl_csv_write(FILE *f, const char *const *fields, size_t n);

/* ---- records.c -------------------------------------------------------------------- */

enum ctl_need_status { CTL_NEED_OPEN = 0, CTL_NEED_CLOSED = 1 };

struct ctl_need {
    char id[CTL_ID_MAX + 1];
    char operator_id[CTL_ID_MAX + 1]; /* "" = the need is the whole sector's */
    char sector[32];                  /* required: tm_sectors id */
    char region[8];                   /* "" = none given (national) */
    int category;                     /* index in tm_need_categories */
    char description[CTL_DESC_MAX + 1];
    int64_t cost; /* estimated cost, whole EUR */
    enum ctl_need_status status;
    int64_t opened;  /* day number (days since 1970-01-01) */
    int64_t closed;  /* day number, -1 while open */
    double priority; /* computed by cmd_priorities.c; 0 until then */
};

struct ctl_offer {
    char id[CTL_ID_MAX + 1];
    char donor[CTL_DONOR_MAX + 1];
    int category;         /* index in tm_need_categories */
    int64_t capacity;     /* how many needs it can cover (one unit each) */
    int64_t cost_ceiling; /* most it funds for one need (EUR); -1 = no ceiling */
    uint32_t sectors;     /* bit i = tm_sectors[i] allowed; 0 = any sector */
    uint32_t regions;     /* bit i = tm_regions[i] allowed; 0 = any region */
    int64_t expires;      /* last day it can be used (day number); -1 = no expiry */
    char description[CTL_DESC_MAX + 1];
};

/* Gives the value of a named field, or NULL when the source has no such field. */
typedef const char *(*ctl_field_cb)(void *arg, const char *name);

/* Field names, NULL-terminated, in the order CSV exports and docs list them. */
extern const char *const ctl_need_fields[];
extern const char *const ctl_need_required[];
extern const char *const ctl_offer_fields[];
extern const char *const ctl_offer_required[];

/*
 * Checks a CSV header: every name one of fields, none twice, every required one present.
 * Returns 0, or -1 with "column N 'name': reason" or "missing column 'name'" in err.
 */
int ctl_header_check(const char *const *fields, const char *const *required, char **names, size_t n,
                     char *err);

/*
 * Builds a need from named fields (absent or empty optional fields take their defaults:
 * status open, opened = today). Returns 0, or -1 with "column 'cost': reason" in err.
 */
int ctl_need_parse(struct ctl_need *n, ctl_field_cb get, void *arg, int64_t today, char *err);

/* Same for an offer. */
int ctl_offer_parse(struct ctl_offer *o, ctl_field_cb get, void *arg, char *err);

/*
 * Text of one field of a need / an offer as stored and exported ("" when empty), written
 * into buf. Returns buf.
 */
const char *ctl_need_field(const struct ctl_need *n, const char *name, char *buf, size_t len);
const char *ctl_offer_field(const struct ctl_offer *o, const char *name, char *buf, size_t len);

/* True for 1-64 bytes of A-Z a-z 0-9 . _ : - */
bool ctl_id_valid(const char *s);

/* "YYYY-MM-DD" <-> day number. Parse returns 0, or -1 for anything else. */
int ctl_day_parse(const char *s, int64_t *day);
void ctl_day_format(int64_t day, char out[11]);

/* ---- mapping.c -------------------------------------------------------------------- */

#define CTL_MAP_TECH_MAX 64

/* Which need categories (bit i = tm_need_categories[i]) incidents of a kind are tied to. */
struct ctl_mapping {
    uint16_t category[16]; /* by tm_categories index */
    struct {
        char technique[16]; /* T1110 (also matches T1110.xxx) or T1110.001 */
        uint16_t needs;
    } tech[CTL_MAP_TECH_MAX];
    int ntech;
};

/* The defaults of docs/planners.md (ddos -> anti-ddos, connectivity; ...). */
void ctl_mapping_defaults(struct ctl_mapping *m);

/*
 * Sets the need categories of one key, an incident category ("ddos") or an ATT&CK
 * technique ("T1110"), from a list separated by commas, semicolons or spaces ("" = none),
 * replacing what the key had. Returns 0, or -1 with the reason in err.
 */
int ctl_mapping_set(struct ctl_mapping *m, const char *key, const char *value, char *err);

/*
 * Need categories a window-hash field is tied to: "cat:{category}" and "tech:{technique}"
 * fields; 0 for any other field. *is_tech tells which of the two sums the field joins.
 */
uint16_t ctl_mapping_field(const struct ctl_mapping *m, const char *field, bool *is_tech);

/*
 * "categories ddos; techniques T1498, T1499" (what incidents need category need is tied
 * to), or "none" when nothing maps to it.
 */
void ctl_mapping_describe(const struct ctl_mapping *m, int need, char *out, size_t len);

/* ---- score.c ---------------------------------------------------------------------- */

/* One scope (sector or operator), one UTC day, as the aggregator's day hash has it. */
struct ctl_day {
    int64_t events;
    int64_t band[4]; /* sev:low, sev:medium, sev:high, sev:critical */
    int64_t tied;    /* events tied to the need's category (mapping.c) */
};

/* Severity-weighted volume of one scope; days[0] = D (today), days[i] = D - i. */
struct ctl_volume {
    int64_t tied7, tied30;
    double v7, v30; /* sum of tied x mean severity weight of the day */
    double e;       /* v7 + 7/30 v30 */
};

struct ctl_score_params {
    int64_t sector_share_pct; /* operator needs: share of the sector's evidence added */
    int64_t age_full_days;    /* days open at which the age factor reaches 2 */
};

struct ctl_score_in {
    struct ctl_volume sector;
    struct ctl_volume op; /* used when has_op */
    bool has_op;
    double z;       /* the sector's trend z (0 when stale or absent) */
    int64_t weight; /* sector criticality */
    int64_t age_days;
};

struct ctl_score {
    double e, t, a, priority; /* evidence, trend factor, age factor, the score */
};

/* Severity weight of a band: 1, 2, 5, 10 (as in the aggregator's risk score). */
int ctl_band_weight(int band);

/* Sums days[0 .. CTL_DAYS) into v. */
void ctl_score_volume(const struct ctl_day *days, struct ctl_volume *v);

/* P = round2(10 w T A ln(1 + E)) and its factors (docs/planners.md). */
void ctl_score_compute(const struct ctl_score_in *in, const struct ctl_score_params *p,
                       struct ctl_score *out);

/* x rounded half away from zero to 2 decimals. */
double ctl_round2(double x);

/* ---- match.c ---------------------------------------------------------------------- */

enum ctl_match_algo { CTL_MATCH_OPTIMAL = 0, CTL_MATCH_FIRST_COME = 1 };

/* Why an offer cannot cover a need; CTL_ELIG_OK when it can. Checked in this order. */
enum ctl_elig {
    CTL_ELIG_OK = 0,
    CTL_ELIG_CLOSED,   /* the need is closed */
    CTL_ELIG_CATEGORY, /* other category */
    CTL_ELIG_EXPIRED,  /* the offer expired before today */
    CTL_ELIG_SECTOR,   /* sector not allowed */
    CTL_ELIG_REGION,   /* region not allowed (or the need has none and the offer lists some) */
    CTL_ELIG_COST,     /* the need's cost is over the ceiling */
    CTL_ELIG_CAPACITY, /* the offer has no capacity */
};

const char *ctl_elig_name(enum ctl_elig e);
enum ctl_elig ctl_match_eligible(const struct ctl_offer *o, const struct ctl_need *n,
                                 int64_t today);

struct ctl_match {
    int *need_offer; /* per need: index of the offer covering it, or -1 */
    int64_t *used;   /* per offer: needs it covers */
    double covered;  /* sum of the covered needs' priorities */
    size_t ncovered;
};

/*
 * Assigns offers to open needs: each need at most once, each offer at most its capacity,
 * only eligible pairs. CTL_MATCH_OPTIMAL maximises the covered priority (in cents), then
 * the number of needs covered, exactly (min-cost flow by successive shortest paths);
 * CTL_MATCH_FIRST_COME is the naive rule (needs by opening date, each to the first
 * eligible offer with capacity left), kept for comparison. Results depend only on the
 * input order of equal choices, which callers fix by sorting. Returns 0 (free m with
 * ctl_match_free), or -1 with the reason in err.
 */
int ctl_match_run(const struct ctl_need *needs, size_t nneeds, const struct ctl_offer *offers,
                  size_t noffers, int64_t today, enum ctl_match_algo algo, struct ctl_match *m,
                  char *err);
void ctl_match_free(struct ctl_match *m);

/* ---- stix.c / exports ------------------------------------------------------------- */

#define CTL_IP_MAX 46

struct ctl_export_sector {
    int sector; /* tm_sectors index */
    int64_t events, count;
    int64_t band[4];
    int64_t category[16]; /* by tm_categories index */
};

/* A significant incident, from tm:feed. */
struct ctl_export_incident {
    char event_id[CTL_ID_MAX + 1];
    int64_t ts;
    char sector[32], operator_id[CTL_ID_MAX + 1], region[8], category[24], technique[16];
    char src[CTL_IP_MAX];
    int severity;
    char summary[1025];
};

/* A top source: events by sector over the window, and the days it was seen. */
struct ctl_export_source {
    char ip[CTL_IP_MAX];
    int64_t events;
    int64_t by_sector[32]; /* by tm_sectors index */
    int64_t first_day, last_day;
};

struct ctl_export {
    int64_t since_ms, until_ms; /* the window: [since, until] */
    int64_t now_ms;             /* when the export was made */
    struct ctl_export_sector *sectors;
    size_t nsectors;
    struct ctl_export_incident *incidents;
    size_t nincidents;
    struct ctl_export_source *sources;
    size_t nsources;
};

#define CTL_UUID_LEN 36

/* A random (version 4) UUID, lowercase, into out (CTL_UUID_LEN + 1 bytes). */
void ctl_uuid_v4(char *out);

/* A name-based (version 5, SHA-1) UUID of name in namespace ns (16 bytes). */
void ctl_uuid_v5(const unsigned char *ns, const char *name, size_t len, char *out);

/*
 * The STIX 2.1 bundle of an export (docs/planners.md, "STIX"): the producer identity, an
 * identity per sector with activity, an incident (targets -> sector) and, with a source
 * address, an observed-data with its SCO for each significant incident; an indicator and
 * per-sector sightings for each top source. Ids are deterministic (UUIDv5) except the
 * bundle's (v4). Returns a new reference, or NULL when out of memory.
 */
json_t *ctl_stix_bundle(const struct ctl_export *x);

/* ---- tmctl_config.c --------------------------------------------------------------- */

struct ctl_config {
    char log_level[16];
    char redis[TM_ADDR_LEN];
    char redis_username[128];
    char redis_password[256];
    char redis_password_file[512];
    int64_t redis_db;
    int64_t redis_timeout_ms;
    int64_t sector_share_pct;
    int64_t age_full_days;
    int64_t top_sources;
    struct ctl_mapping mapping;
    int64_t weights[32]; /* [risk]: by tm_sectors index */
    /* [ca], [collector]: enrollment (cmd_ca.c, cmd_enroll.c) */
    char ca_dir[512];
    int64_t cert_days;
    char name_domain[128];
    char identity_map[512];
    char tokens[512];
    char pid_file[512];
    char reload_command[512];
    char enroll_address[256];
};

/*
 * Defaults, then the INI file at path (NULL: defaults only), then the password file.
 * Returns 0, or -1 with "FILE:LINE: ..." in err.
 */
int ctl_config_load(struct ctl_config *cfg, const char *path, char *err);

/* ---- store.c ---------------------------------------------------------------------- */

/* Everything a command needs: config, the Redis connection, and "now". */
struct ctl {
    struct ctl_config cfg;
    redisContext *redis;
    int64_t now_ms; /* --now, or the clock */
    int64_t today;  /* UTC day number of now_ms */
    FILE *out;      /* stdout */
};

/* Connects (AUTH, SELECT, PING) unless connected. Returns 0, or -1 with the reason. */
int ctl_redis_connect(struct ctl *c, char *err);
void ctl_redis_close(struct ctl *c);

/*
 * Runs one command given as argv strings. Returns the reply (the caller frees it), or
 * NULL with "redis: ..." in err for a connection error or an error reply.
 */
redisReply *ctl_redis_argv(struct ctl *c, int argc, const char **argv, char *err);

/*
 * Reads the next reply of a pipeline (redisAppendCommand). Returns it (the caller frees
 * it), or NULL with "redis: ..." in err for a connection error or an error reply.
 */
redisReply *ctl_redis_reply(struct ctl *c, char *err);

/*
 * Loads every need of the registry (tm:needs, tm:need:{id}), sorted by id. Returns 0 with
 * a malloc'd array the caller frees, or -1 with the key and reason in err.
 */
int ctl_store_load_needs(struct ctl *c, struct ctl_need **out, size_t *n, char *err);
int ctl_store_load_offers(struct ctl *c, struct ctl_offer **out, size_t *n, char *err);

/*
 * Writes needs (replacing each tm:need:{id} hash, adding the id to tm:needs) in one
 * MULTI/EXEC: all or nothing. Returns 0 or -1.
 */
int ctl_store_put_needs(struct ctl *c, const struct ctl_need *needs, size_t n, char *err);

/* Same for offers; with replace, offers not in the list are deleted in the same EXEC. */
int ctl_store_put_offers(struct ctl *c, const struct ctl_offer *offers, size_t n, bool replace,
                         char *err);

/* ---- import.c ------------------------------------------------------------------- */

/* Builds one record (struct ctl_need or ctl_offer, which begin with their id). */
typedef int (*ctl_row_cb)(void *rec, ctl_field_cb get, void *arg, int64_t today, char *err);

/*
 * Reads the CSV file at path into records of recsize bytes: header checked against
 * fields/required, every row validated by parse, ids unique. Every bad row is reported on
 * stderr ("FILE: row N, column 'C': reason"). Returns 0 with a malloc'd array the caller
 * frees, or -1 when anything was wrong (nothing is returned then).
 */
int ctl_import_csv(const char *path, const char *const *fields, const char *const *required,
                   size_t recsize, ctl_row_cb parse, int64_t today, void **out, size_t *n);

/* ---- commands (cmd_*.c): argv after the command word; return the exit status ------ */

enum ctl_format { CTL_FMT_TABLE = 0, CTL_FMT_CSV, CTL_FMT_JSON, CTL_FMT_STIX };

/* Parses "table", "csv", "json" (and "stix" when allow_stix). Returns 0 or -1. */
int ctl_format_parse(const char *s, bool allow_stix, enum ctl_format *out);

int ctl_cmd_needs(struct ctl *c, int argc, char **argv);
int ctl_cmd_offers(struct ctl *c, int argc, char **argv);
int ctl_cmd_priorities(struct ctl *c, int argc, char **argv);
int ctl_cmd_match(struct ctl *c, int argc, char **argv);
int ctl_cmd_export(struct ctl *c, int argc, char **argv);
int ctl_cmd_ca(struct ctl *c, int argc, char **argv);
int ctl_cmd_enroll(struct ctl *c, int argc, char **argv);
int ctl_cmd_revoke(struct ctl *c, int argc, char **argv);

/*
 * The enrollment CA of dir: DIR/ca.crt and DIR/ca.key, checked to belong together.
 * Returns 0 with both (free with X509_free, EVP_PKEY_free), or -1 with err.
 */
int ctl_ca_load(const char *dir, X509 **cert, EVP_PKEY **key, char *err);

/*
 * Computes the priority of every open need (setting needs[i].priority; closed needs get
 * 0) from the aggregator's keys and stores the results (tm:priorities and the keys
 * docs/redis-keys.md lists beside it) in one MULTI/EXEC. With explain (may be NULL),
 * also returns a JSON object per need index: every input and factor. Returns 0 or -1.
 */
int ctl_priorities_refresh(struct ctl *c, struct ctl_need *needs, size_t n, json_t **explain,
                           char *err);

/* Prints "tmctl: " + message to stderr. */
void ctl_error(const char *fmt, ...) TM_PRINTF(1, 2);

#endif
