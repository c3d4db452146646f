/*
 * tmctl_config.c - tmctl's INI file (docs/planners.md, "Configuration"): the Redis
 * connection, the priority parameters, the [mapping] from incidents to need categories
 * and the [risk] sector weights (the same section and meaning as tm-aggregator's, so one
 * file's [risk] can be copied into the other; defaults are the criticality column of
 * tm_sectors, shared through libtm).
 *
 * [ca] and [collector] say where the enrollment CA, the collector's identity map and its
 * token file are, and how to make the collector reload (docs/enrollment.md).
 *
 * The Redis password comes from [redis] password, or password_file (first line), or the
 * environment variable TMCTL_REDIS_PASSWORD, in that order; it is sent with AUTH only,
 * never printed or logged.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tm/tm_config.h"
#include "tm/tm_tables.h"
#include "tmctl.h"

#define OFF(f) offsetof(struct ctl_config, f)
#define SZ(f) sizeof(((struct ctl_config *)0)->f)

static const struct tm_config_option options[] = {
    {"tmctl", "log_level", TM_CONF_STRING, "warn", OFF(log_level), SZ(log_level), 0, 0, NULL,
     "error, warn, info or debug"},
    {"redis", "address", TM_CONF_ADDR, "127.0.0.1:6379", OFF(redis), SZ(redis), 0, 0, NULL,
     "Redis server HOST:PORT"},
    {"redis", "username", TM_CONF_STRING, "", OFF(redis_username), SZ(redis_username), 0, 0, NULL,
     "ACL user for AUTH (empty: default user)"},
    {"redis", "password", TM_CONF_STRING, "", OFF(redis_password), SZ(redis_password), 0, 0, NULL,
     "AUTH password (empty: none); never printed"},
    {"redis", "password_file", TM_CONF_STRING, "", OFF(redis_password_file),
     SZ(redis_password_file), 0, 0, NULL, "file whose first line is the AUTH password"},
    {"redis", "db", TM_CONF_INT, "0", OFF(redis_db), 0, 0, 1000, NULL, "database (SELECT)"},
    {"redis", "timeout", TM_CONF_DURATION, "5s", OFF(redis_timeout_ms), 0, 100, 600000, NULL,
     "connect and command timeout"},
    {"priorities", "sector_share_percent", TM_CONF_INT, "25", OFF(sector_share_pct), 0, 0, 100,
     NULL, "operator needs: share of their sector's evidence added to their own"},
    {"priorities", "age_full_days", TM_CONF_INT, "90", OFF(age_full_days), 0, 1, 3650, NULL,
     "days open at which the age factor reaches its maximum of 2"},
    {"export", "top_sources", TM_CONF_INT, "20", OFF(top_sources), 0, 0, 1000, NULL,
     "indicators exported for the top sources of the window"},
    {"ca", "dir", TM_CONF_STRING, "/etc/tm-collector/ca", OFF(ca_dir), SZ(ca_dir), 0, 0, NULL,
     "the enrollment CA: ca.crt and ca.key (docs/enrollment.md)"},
    {"ca", "cert_days", TM_CONF_INT, "365", OFF(cert_days), 0, 1, 3650, NULL,
     "validity of the certificates tmctl enroll issues"},
    {"ca", "name_domain", TM_CONF_STRING, "agents.tm", OFF(name_domain), SZ(name_domain), 0, 0,
     NULL, "agents are named OPERATOR-RANDOM.<name_domain> unless --name says otherwise"},
    {"collector", "identity_map", TM_CONF_STRING, "/etc/tm-collector/identities.ini",
     OFF(identity_map), SZ(identity_map), 0, 0, NULL, "the collector's identity map"},
    {"collector", "tokens", TM_CONF_STRING, "", OFF(tokens), SZ(tokens), 0, 0, NULL,
     "enrollment token file (empty: enroll-tokens beside the identity map)"},
    {"collector", "pid_file", TM_CONF_STRING, "", OFF(pid_file), SZ(pid_file), 0, 0, NULL,
     "after a map change, SIGHUP the pid in this file"},
    {"collector", "reload_command", TM_CONF_STRING, "", OFF(reload_command), SZ(reload_command), 0,
     0, NULL, "after a map change, run this (e.g. systemctl reload tm-collector)"},
    {"collector", "enroll_address", TM_CONF_STRING, "", OFF(enroll_address), SZ(enroll_address), 0,
     0, NULL, "HOST:PORT of the collector's [enroll] listener, for the printed agent command"},
    {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
};

static int dynamic_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    struct ctl_config *cfg = arg;

    if (strcmp(section, "mapping") == 0)
        return ctl_mapping_set(&cfg->mapping, key, value, err);
    if (strcmp(section, "risk") == 0) {
        int i = tm_sector_index(key);
        int64_t w;
        if (i < 0 || i >= 32)
            return tm_err(err, "unknown sector (docs/schema.md lists them)");
        if (tm_parse_int64(value, 0, 100, &w) != 0)
            return tm_err(err, "'%s': expected a weight from 0 to 100", value);
        cfg->weights[i] = w;
        return 0;
    }
    return tm_err(err, "unknown section (known: tmctl, redis, priorities, export, mapping, "
                       "risk, ca, collector)");
}

static int read_password(struct ctl_config *cfg, char *err)
{
    char line[sizeof(cfg->redis_password) + 2];
    const char *env = getenv("TMCTL_REDIS_PASSWORD");
    FILE *fp;
    size_t n;

    if (cfg->redis_password_file[0] == '\0') {
        if (cfg->redis_password[0] == '\0' && env != NULL && env[0] != '\0' &&
            tm_strlcpy(cfg->redis_password, env, sizeof(cfg->redis_password)) != 0)
            return tm_err(err, "TMCTL_REDIS_PASSWORD: longer than %zu bytes",
                          sizeof(cfg->redis_password) - 1);
        return 0;
    }
    if (cfg->redis_password[0] != '\0')
        return tm_err(err, "[redis] password and password_file are both set; keep one");
    fp = fopen(cfg->redis_password_file, "r");
    if (fp == NULL)
        return tm_err(err, "cannot open '%s': %s", cfg->redis_password_file, strerror(errno));
    if (fgets(line, sizeof(line), fp) == NULL)
        line[0] = '\0';
    fclose(fp);
    n = strcspn(line, "\r\n");
    if (line[n] == '\0' && n == sizeof(line) - 1)
        return tm_err(err, "'%s': password longer than %zu bytes", cfg->redis_password_file,
                      sizeof(cfg->redis_password) - 1);
    line[n] = '\0';
    if (n == 0)
        return tm_err(err, "'%s': empty first line", cfg->redis_password_file);
    tm_strlcpy(cfg->redis_password, line, sizeof(cfg->redis_password));
    explicit_bzero(line, sizeof(line));
    return 0;
}

int ctl_config_load(struct ctl_config *cfg, const char *path, char *err)
{
    struct tm_config_spec spec = {options, dynamic_cb, cfg};

    memset(cfg, 0, sizeof(*cfg));
    ctl_mapping_defaults(&cfg->mapping);
    for (size_t i = 0; i < tm_sectors_count && i < 32; i++)
        cfg->weights[i] = tm_sectors[i].criticality;
    if (tm_config_load(&spec, cfg, path, err) != 0)
        return -1;
    return read_password(cfg, err);
}
