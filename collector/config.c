/*
 * config.c - tm-collector's options: the INI table (docs/collector.md is its reference),
 * the [kafka.librdkafka] pass-through section, and the command-line names that override
 * the file (--kafka, --lumberjack, --syslog-tcp, --syslog-udp, --http, --admin, --enroll).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "tm/tm_config.h"

#define OFF(f) offsetof(struct collector_config, f)
#define STR(sec, key, def, f, help)                                                                \
    {                                                                                              \
        sec, key, TM_CONF_STRING, def, OFF(f), sizeof(((struct collector_config *)0)->f), 0, 0,    \
            NULL, help                                                                             \
    }
#define ADDR(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_ADDR, def, OFF(f), sizeof(((struct collector_config *)0)->f), 0, 0,      \
            NULL, help                                                                             \
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
    NUM("collector", "workers", TM_CONF_INT, "1", workers, 1, COLLECTOR_MAX_WORKERS,
        "worker threads, each with its own event loop and Kafka producer"),
    ADDR("collector", "admin", "127.0.0.1:9601", admin, "address of /healthz and /metrics"),
    STR("collector", "log_level", "info", log_level, "error, warn, info or debug"),
    BOOL("collector", "log_syslog", "false", log_syslog, "log to syslog instead of stderr"),
    NUM("collector", "drain_timeout", TM_CONF_DURATION, "10s", drain_timeout_ms, 0, 600000,
        "on SIGTERM, how long to wait for Kafka to take what is queued"),
    NUM("collector", "max_connections", TM_CONF_INT, "10000", max_connections, 1, 1000000,
        "open TCP connections in all"),
    NUM("collector", "max_connections_per_ip", TM_CONF_INT, "256", max_connections_per_ip, 1,
        1000000, "open TCP connections from one source address"),

    STR("kafka", "bootstrap", "127.0.0.1:9092", kafka, "bootstrap servers"),
    STR("kafka", "topic_events", "tm.events.v1", topic_events, "valid events"),
    STR("kafka", "topic_rejected", "tm.events.rejected", topic_rejected, "what failed validation"),
    STR("kafka", "topic_heartbeats", "tm.heartbeats", topic_heartbeats, "agent heartbeats"),
    STR("kafka", "compression", "lz4", compression, "lz4, zstd, gzip, snappy or none"),
    NUM("kafka", "linger", TM_CONF_DURATION, "5ms", linger_ms, 0, 10000,
        "how long librdkafka waits to fill a batch"),
    NUM("kafka", "batch_bytes", TM_CONF_INT, "1000000", batch_bytes, 1000, 100000000,
        "largest batch per partition"),
    NUM("kafka", "message_timeout", TM_CONF_DURATION, "5m", message_timeout_ms, 1000, 86400000,
        "how long to retry a message before failing it (its sender gets no ack)"),
    NUM("kafka", "high_water", TM_CONF_INT, "200000", high_water, 100, 10000000,
        "queued messages above which senders are paused"),
    NUM("kafka", "low_water", TM_CONF_INT, "100000", low_water, 0, 10000000,
        "queued messages below which senders resume"),

    ADDR("lumberjack", "listen", "", lumberjack, "Beats / tm-agent listener (empty: off)"),
    BOOL("lumberjack", "tls", "false", lumberjack_tls, "require TLS on the Lumberjack listener"),
    NUM("lumberjack", "max_frame", TM_CONF_SIZE, "1MiB", max_frame, 64, 1073741824,
        "largest data or compressed frame"),
    NUM("lumberjack", "max_decompressed", TM_CONF_SIZE, "16MiB", max_decompressed, 64, 1073741824,
        "largest inflated compressed frame"),
    NUM("lumberjack", "max_window", TM_CONF_INT, "10000", max_window, 1, 1000000,
        "largest window a sender may announce"),
    NUM("lumberjack", "max_pending_windows", TM_CONF_INT, "4", max_pending_windows, 1, 64,
        "unacknowledged windows per connection before reading pauses"),
    NUM("lumberjack", "idle_timeout", TM_CONF_DURATION, "60s", idle_timeout_ms, 100, 86400000,
        "close a connection silent this long with nothing in flight"),
    NUM("lumberjack", "keepalive", TM_CONF_DURATION, "5s", keepalive_ms, 100, 600000,
        "ack the last acknowledged sequence this often while a window waits for Kafka"),
    NUM("lumberjack", "rate_per_sender", TM_CONF_INT, "0", lj_rate_per_sender, 0, 100000000,
        "events per second per operator; a faster sender's connections stop being read until "
        "it is back under (0: no limit)"),
    NUM("lumberjack", "rate_burst", TM_CONF_INT, "0", lj_rate_burst, 0, 100000000,
        "events a sender may send at once above its rate (0: one second's worth)"),

    ADDR("syslog", "tcp", "", syslog_tcp, "syslog over TCP (empty: off)"),
    ADDR("syslog", "udp", "", syslog_udp, "syslog over UDP (empty: off)"),
    BOOL("syslog", "tls", "false", syslog_tls, "require TLS on the syslog TCP listener (RFC 5425)"),
    NUM("syslog", "max_line", TM_CONF_SIZE, "64KiB", max_line, 128, 16777216,
        "longest syslog message"),
    NUM("syslog", "rate_per_sender", TM_CONF_INT, "0", syslog_rate_per_sender, 0, 100000000,
        "messages per second per operator; over it a TCP sender's connections stop being read "
        "until it is back under, UDP datagrams are dropped and counted (0: no limit)"),
    NUM("syslog", "rate_burst", TM_CONF_INT, "0", syslog_rate_burst, 0, 100000000,
        "messages a sender may send at once above its rate (0: one second's worth)"),

    ADDR("http", "listen", "", http, "HTTP ingest, POST /v1/events (empty: off)"),
    NUM("http", "max_body", TM_CONF_SIZE, "16MiB", max_body, 1024, 1073741824,
        "largest request body, before and after gzip"),
    NUM("http", "rate_per_sender", TM_CONF_INT, "0", rate_per_sender, 0, 100000000,
        "events per second per operator (0: no limit)"),
    NUM("http", "rate_burst", TM_CONF_INT, "0", rate_burst, 0, 100000000,
        "events a sender may send at once above its rate (0: one second's worth)"),

    STR("tls", "cert", "", tls_cert, "server certificate (PEM)"),
    STR("tls", "key", "", tls_key, "server private key (PEM)"),
    STR("tls", "ca", "", tls_ca, "CA that signs client certificates (PEM)"),
    BOOL("tls", "require_client_cert", "true", tls_require_client_cert,
         "refuse TLS clients without a certificate signed by the CA"),

    STR("identity", "map", "", identity_map, "identity map file (reloaded on SIGHUP)"),
    STR("identity", "default_operator", "", default_operator,
        "operator of senders the map does not name (empty: refuse them)"),
    STR("identity", "default_sector", "other", default_sector, "sector of the default identity"),
    STR("identity", "default_region", "", default_region, "region of the default identity"),

    ADDR("enroll", "listen", "", enroll,
         "TLS listener of POST /v1/enroll for tm-agent enroll (empty: off; needs ca_key)"),
    STR("enroll", "ca_cert", "", enroll_ca_cert, "CA certificate that signs enrolled agents"),
    STR("enroll", "ca_key", "", enroll_ca_key,
        "its private key (empty: enrollment off); the collector can then mint certificates"),
    STR("enroll", "tokens", "", enroll_tokens,
        "enrollment token file (empty: enroll-tokens beside the identity map)"),
    NUM("enroll", "cert_days", TM_CONF_INT, "365", enroll_cert_days, 1, 3650,
        "validity of the certificates it issues"),
    {NULL, NULL, TM_CONF_STRING, NULL, 0, 0, 0, 0, NULL, NULL},
};

/* [kafka.librdkafka] key = value: handed to librdkafka as they are (TLS, SASL, ...). */
static int dynamic_cb(void *arg, const char *section, const char *key, const char *value, char *err)
{
    struct collector_config *cfg = arg;

    if (strcmp(section, "kafka.librdkafka") != 0)
        return tm_err(err, "unknown section");
    return tm_config_kv_append(cfg->kafka_extra, &cfg->kafka_extra_count, COLLECTOR_MAX_EXTRA, key,
                               value, err);
}

int collector_config_load(struct collector_config *cfg, const char *path, char *err)
{
    struct tm_config_spec spec = {options, dynamic_cb, cfg};

    memset(cfg, 0, sizeof(*cfg));
    return tm_config_load(&spec, cfg, path, err);
}

int collector_config_override(struct collector_config *cfg, const char *name, const char *value,
                              char *err)
{
    static const struct {
        const char *name, *section, *key;
    } map[] = {
        {"kafka", "kafka", "bootstrap"},     {"lumberjack", "lumberjack", "listen"},
        {"syslog-tcp", "syslog", "tcp"},     {"syslog-udp", "syslog", "udp"},
        {"http", "http", "listen"},          {"admin", "collector", "admin"},
        {"workers", "collector", "workers"}, {"log-level", "collector", "log_level"},
        {"enroll", "enroll", "listen"},
    };
    struct tm_config_spec spec = {options, NULL, NULL};

    for (size_t i = 0; i < TM_ARRAY_LEN(map); i++)
        if (strcmp(map[i].name, name) == 0)
            return tm_config_set(&spec, cfg, map[i].section, map[i].key, value, err);
    return tm_err(err, "unknown option '--%s'", name);
}

void collector_config_free(struct collector_config *cfg)
{
    for (int i = 0; i < cfg->kafka_extra_count; i++)
        free(cfg->kafka_extra[i]);
    cfg->kafka_extra_count = 0;
    cfg->kafka_extra[0] = NULL;
}
