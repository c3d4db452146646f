/*
 * dashboard_config.c - tm-dashboard's options: the INI table (docs/dashboard.md,
 * "Configuration" is its reference), the command-line names that override the file
 * (--redis, --http, --admin, --web, --log-level) and the Redis password file.
 * Secrets (tokens, the Redis password) are kept in the struct only to be hashed or sent
 * to Redis; nothing here prints them.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dashboard.h"
#include "tm/tm_config.h"

#define OFF(f) offsetof(struct dash_config, f)
#define FSIZE(f) sizeof(((struct dash_config *)0)->f)
#define STR(sec, key, def, f, help)                                                                \
    {                                                                                              \
        sec, key, TM_CONF_STRING, def, OFF(f), FSIZE(f), 0, 0, NULL, help                          \
    }
#define ADDR(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_ADDR, def, OFF(f), FSIZE(f), 0, 0, NULL, help                            \
    }
#define NUM(sec, key, type, def, f, lo, hi, help)                                                  \
    {                                                                                              \
        sec, key, type, def, OFF(f), 0, lo, hi, NULL, help                                         \
    }
#define BOOL(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_BOOL, def, OFF(f), 0, 0, 0, NULL, help                                   \
    }

static const struct tm_config_option options[] = {
    ADDR("dashboard", "http", "127.0.0.1:8080", http, "address of the page, the API and SSE"),
    ADDR("dashboard", "admin", "127.0.0.1:9603", admin, "address of /healthz and /metrics"),
    STR("dashboard", "web_root", "", web_root,
        "folder of the page (default: ../dashboard/web beside the binary, else "
        "/usr/share/tm-telemetry/web)"),
    STR("dashboard", "log_level", "info", log_level, "error, warn, info or debug"),
    BOOL("dashboard", "log_syslog", "false", log_syslog, "log to syslog instead of stderr"),
    NUM("dashboard", "max_inflight", TM_CONF_INT, "256", max_inflight, 1, 100000,
        "API requests waiting for Redis at once; more get 503"),
    NUM("dashboard", "max_streams", TM_CONF_INT, "100", max_streams, 1, 100000,
        "Server-Sent Events clients at once; more get 503"),
    NUM("dashboard", "silent_after", TM_CONF_DURATION, "90s", silent_after_ms, 1000,
        30 * 86400000LL, "an agent without a heartbeat this long is silent"),
    NUM("dashboard", "cache_ttl", TM_CONF_DURATION, "1s", cache_ttl_ms, 0, 60000,
        "overview, sector and feed answers are reused this long unless a flush was "
        "announced (0: off)"),
    NUM("dashboard", "ping_interval", TM_CONF_DURATION, "15s", ping_interval_ms, 100, 3600000,
        "comment line sent to SSE clients this often"),

    ADDR("redis", "address", "127.0.0.1:6379", redis, "Redis server HOST:PORT"),
    STR("redis", "username", "", redis_username, "ACL user for AUTH (empty: default user)"),
    STR("redis", "password", "", redis_password, "AUTH password (empty: no AUTH); never logged"),
    STR("redis", "password_file", "", redis_password_file,
        "file whose first line is the AUTH password (instead of password)"),
    NUM("redis", "db", TM_CONF_INT, "0", redis_db, 0, 1000, "database number (SELECT)"),
    NUM("redis", "timeout", TM_CONF_DURATION, "5s", redis_timeout_ms, 100, 600000,
        "connect timeout, and the longest a query may wait for its replies"),
    NUM("redis", "backoff_max", TM_CONF_DURATION, "5s", redis_backoff_max_ms, 100, 600000,
        "longest wait between reconnection attempts (doubling from 100ms)"),

    BOOL("auth", "auth", "on", auth, "off: no token needed (loopback addresses only)"),
    STR("auth", "tokens", "", tokens, "name:token,name:token read-only tokens; never logged"),
    STR("auth", "tokens_file", "", tokens_file, "file of name:token lines (reloaded on SIGHUP)"),
    NUM("auth", "session_lifetime", TM_CONF_DURATION, "12h", session_lifetime_ms, 60000,
        30 * 86400000LL, "lifetime of the login cookie"),

    STR("tls", "cert", "", tls_cert, "PEM certificate chain: serve HTTPS only"),
    STR("tls", "key", "", tls_key, "PEM private key of cert"),
    {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
};

int dash_config_load(struct dash_config *cfg, const char *path, char *err)
{
    struct tm_config_spec spec = {options, NULL, NULL};

    memset(cfg, 0, sizeof(*cfg));
    return tm_config_load(&spec, cfg, path, err);
}

int dash_config_override(struct dash_config *cfg, const char *name, const char *value, char *err)
{
    static const struct {
        const char *name, *section, *key;
    } map[] = {
        {"redis", "redis", "address"},           {"http", "dashboard", "http"},
        {"admin", "dashboard", "admin"},         {"web", "dashboard", "web_root"},
        {"log-level", "dashboard", "log_level"},
    };
    struct tm_config_spec spec = {options, NULL, NULL};

    for (size_t i = 0; i < TM_ARRAY_LEN(map); i++)
        if (strcmp(map[i].name, name) == 0)
            return tm_config_set(&spec, cfg, map[i].section, map[i].key, value, err);
    return tm_err(err, "unknown option '--%s'", name);
}

int dash_config_read_password(struct dash_config *cfg, char *err)
{
    if (cfg->redis_password_file[0] == '\0')
        return 0;
    if (cfg->redis_password[0] != '\0')
        return tm_err(err, "[redis] password and password_file are both set; keep one");
    return tm_config_read_secret(cfg->redis_password_file, cfg->redis_password,
                                 sizeof(cfg->redis_password), err);
}
