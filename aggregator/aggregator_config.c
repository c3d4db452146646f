/*
 * aggregator_config.c - tm-aggregator's options: the INI table (docs/aggregator.md is its
 * reference), the [risk] sector weights, the [kafka.librdkafka] pass-through section, and
 * the command-line names that override the file (--kafka, --redis, --group, --admin,
 * --log-level).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator.h"
#include "tm/tm_config.h"
#include "tm/tm_tables.h"

#define OFF(f) offsetof(struct agg_config, f)
#define STR(sec, key, def, f, help)                                                                \
    {                                                                                              \
        sec, key, TM_CONF_STRING, def, OFF(f), sizeof(((struct agg_config *)0)->f), 0, 0, NULL,    \
            help                                                                                   \
    }
#define ADDR(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_ADDR, def, OFF(f), sizeof(((struct agg_config *)0)->f), 0, 0, NULL, help \
    }
#define NUM(sec, key, type, def, f, lo, hi, help)                                                  \
    {                                                                                              \
        sec, key, type, def, OFF(f), 0, lo, hi, NULL, help                                         \
    }
#define BOOL(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_BOOL, def, OFF(f), 0, 0, 0, NULL, help                                   \
    }

#define DAY_MS 86400000LL

static const struct tm_config_option options[] = {
    ADDR("aggregator", "admin", "127.0.0.1:9602", admin, "address of /healthz and /metrics"),
    STR("aggregator", "log_level", "info", log_level, "error, warn, info or debug"),
    BOOL("aggregator", "log_syslog", "false", log_syslog, "log to syslog instead of stderr"),
    NUM("aggregator", "flush_interval", TM_CONF_DURATION, "1s", flush_interval_ms, 1, 600000,
        "flush at the latest this long after the first pending message"),
    NUM("aggregator", "flush_events", TM_CONF_INT, "5000", flush_events, 1, 1000000,
        "flush when this many messages are pending"),
    NUM("aggregator", "allowed_lateness", TM_CONF_DURATION, "10m", allowed_lateness_ms, 0,
        7 * DAY_MS, "watermark = greatest event time of a partition minus this"),
    NUM("aggregator", "max_future", TM_CONF_DURATION, "5m", max_future_ms, 0, 7 * DAY_MS,
        "event times past receive time + this do not move the watermark further"),
    NUM("aggregator", "dedup_horizon", TM_CONF_DURATION, "24h", dedup_horizon_ms, 60000,
        30 * DAY_MS, "a repeated event id is recognised at least this long"),
    NUM("aggregator", "top_sources", TM_CONF_INT, "1000", top_sources, 10, 1000000,
        "entries kept in each top-sources sorted set"),
    NUM("aggregator", "feed_min_severity", TM_CONF_INT, "7", feed_min_severity, 1, 10,
        "events at or above this severity go to the tm:feed stream"),
    NUM("aggregator", "feed_maxlen", TM_CONF_INT, "10000", feed_maxlen, 100, 10000000,
        "approximate length cap of tm:feed (XADD MAXLEN ~)"),

    NUM("trend", "alpha_percent", TM_CONF_INT, "30", trend_alpha_pct, 1, 100,
        "EWMA smoothing factor of the daily baseline, in percent"),
    NUM("trend", "baseline_days", TM_CONF_INT, "28", trend_baseline_days, 1, 365,
        "days before the current one the baseline is computed from"),
    NUM("trend", "ratio_k", TM_CONF_INT, "3", trend_ratio_k, 1, 1000,
        "anomaly when the day's events reach k times the baseline"),

    NUM("retention", "minute", TM_CONF_DURATION, "48h", retain_minute_ms, 60000, 400 * DAY_MS,
        "TTL of 1-minute window hashes"),
    NUM("retention", "hour", TM_CONF_DURATION, "35d", retain_hour_ms, 3600000, 400 * DAY_MS,
        "TTL of 1-hour window hashes; late events reach an hour window this long"),
    NUM("retention", "day", TM_CONF_DURATION, "400d", retain_day_ms, DAY_MS, 3650 * DAY_MS,
        "TTL of 1-day window hashes; late events reach a day window this long"),
    NUM("retention", "sources", TM_CONF_DURATION, "35d", retain_sources_ms, DAY_MS, 3650 * DAY_MS,
        "TTL of the per-day distinct-source, top-source and operator sets"),
    NUM("retention", "agents", TM_CONF_DURATION, "30d", retain_agents_ms, DAY_MS, 3650 * DAY_MS,
        "TTL of an agent's status hash after its last event or heartbeat"),

    STR("kafka", "bootstrap", "127.0.0.1:9092", kafka, "bootstrap servers"),
    STR("kafka", "group", "tm-aggregator", group, "consumer group (one per Redis database)"),
    STR("kafka", "topic_events", "tm.events.v1", topic_events, "canonical events"),
    STR("kafka", "topic_heartbeats", "tm.heartbeats", topic_heartbeats, "agent heartbeats"),
    NUM("kafka", "session_timeout", TM_CONF_DURATION, "10s", session_timeout_ms, 1000, 300000,
        "a member silent this long leaves the group and its partitions move"),

    ADDR("redis", "address", "127.0.0.1:6379", redis, "Redis server HOST:PORT"),
    STR("redis", "username", "", redis_username, "ACL user for AUTH (empty: default user)"),
    STR("redis", "password", "", redis_password, "AUTH password (empty: no AUTH); never logged"),
    NUM("redis", "db", TM_CONF_INT, "0", redis_db, 0, 1000, "database number (SELECT)"),
    NUM("redis", "timeout", TM_CONF_DURATION, "5s", redis_timeout_ms, 100, 600000,
        "connect and command timeout"),
    {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* [risk] sector = weight: a sector's criticality weight (0..100) in the risk score. */
static int risk_weight(struct agg_config *cfg, const char *key, const char *value, char *err)
{
    int64_t w;
    int i;

    if (tm_sector_find(key) == NULL)
        return tm_err(err, "unknown sector (docs/schema.md lists them)");
    if (tm_parse_int64(value, 0, 100, &w) != 0)
        return tm_err(err, "'%s': expected a weight from 0 to 100", value);
    for (i = 0; i < cfg->risk_weight_count; i++)
        if (strcmp(cfg->risk_weights[i].sector, key) == 0)
            break;
    if (i == AGG_MAX_RISK)
        return tm_err(err, "more than %d sector weights", AGG_MAX_RISK);
    if (i == cfg->risk_weight_count)
        cfg->risk_weight_count++;
    tm_strlcpy(cfg->risk_weights[i].sector, key, sizeof(cfg->risk_weights[i].sector));
    cfg->risk_weights[i].weight = w;
    return 0;
}

/* [kafka.librdkafka] key = value: handed to librdkafka as they are (TLS, SASL, ...). */
static int dynamic_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    struct agg_config *cfg = arg;

    if (strcmp(section, "risk") == 0)
        return risk_weight(cfg, key, value, err);
    if (strcmp(section, "kafka.librdkafka") != 0)
        return tm_err(err, "unknown section");
    return tm_config_kv_append(cfg->kafka_extra, &cfg->kafka_extra_count, AGG_MAX_EXTRA, key, value,
                               err);
}

int agg_config_load(struct agg_config *cfg, const char *path, char *err)
{
    struct tm_config_spec spec = {options, dynamic_cb, cfg};

    memset(cfg, 0, sizeof(*cfg));
    return tm_config_load(&spec, cfg, path, err);
}

int agg_config_override(struct agg_config *cfg, const char *name, const char *value, char *err)
{
    static const struct {
        const char *name, *section, *key;
    } map[] = {
        {"kafka", "kafka", "bootstrap"},
        {"redis", "redis", "address"},
        {"group", "kafka", "group"},
        {"admin", "aggregator", "admin"},
        {"log-level", "aggregator", "log_level"},
    };
    struct tm_config_spec spec = {options, NULL, NULL};

    for (size_t i = 0; i < TM_ARRAY_LEN(map); i++)
        if (strcmp(map[i].name, name) == 0)
            return tm_config_set(&spec, cfg, map[i].section, map[i].key, value, err);
    return tm_err(err, "unknown option '--%s'", name);
}

void agg_config_free(struct agg_config *cfg)
{
    for (int i = 0; i < cfg->kafka_extra_count; i++)
        free(cfg->kafka_extra[i]);
    cfg->kafka_extra_count = 0;
    cfg->kafka_extra[0] = NULL;
}
