/*
 * agent_config.c - tm-agent's options: [agent] and [shipper] from a fixed table, and one
 * [input.NAME] section per input, each read through its own table (input options and
 * the input's detector settings). docs/agent.md is the reference; deploy/tm-agent.ini
 * the commented example.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"

#define OFF(f) offsetof(struct agent_config, f)
#define SZ(f) sizeof(((struct agent_config *)0)->f)
#define STR(sec, key, def, f, help)                                                                \
    {                                                                                              \
        sec, key, TM_CONF_STRING, def, OFF(f), SZ(f), 0, 0, NULL, help                             \
    }
#define ADDR(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_ADDR, def, OFF(f), SZ(f), 0, 0, NULL, help                               \
    }
#define NUM(sec, key, type, def, f, lo, hi, help)                                                  \
    {                                                                                              \
        sec, key, type, def, OFF(f), 0, lo, hi, NULL, help                                         \
    }
#define BOOL(sec, key, def, f, help)                                                               \
    {                                                                                              \
        sec, key, TM_CONF_BOOL, def, OFF(f), 0, 0, 0, NULL, help                                   \
    }
#define ENUM(sec, key, def, f, ch, help)                                                           \
    {                                                                                              \
        sec, key, TM_CONF_ENUM, def, OFF(f), 0, 0, 0, ch, help                                     \
    }

static const char *const fsync_choices[] = {"always", "interval", "never", NULL};

static const struct tm_config_option options[] = {
    STR("agent", "id", "", id, "this agent's id, unique within its operator (required)"),
    STR("agent", "host", "", host,
        "source.host for events whose log names none (default: hostname)"),
    STR("agent", "state_dir", "/var/lib/tm-agent", state_dir,
        "spool, file registries, report inbox and lock"),
    NUM("agent", "spool_max", TM_CONF_SIZE, "256MiB", spool_max, 0, 0,
        "cap on the bulk spool; over it the oldest segment is dropped and counted as lost"),
    NUM("agent", "spool_segment", TM_CONF_SIZE, "8MiB", spool_segment, 65536, 1073741824,
        "size of one spool segment file"),
    ENUM("agent", "fsync", "interval", fsync, fsync_choices,
         "always (every flush), interval, or never (survives SIGKILL, not power loss)"),
    NUM("agent", "fsync_interval", TM_CONF_DURATION, "1s", fsync_interval_ms, 10, 3600000,
        "with fsync = interval, how often"),
    NUM("agent", "flush_interval", TM_CONF_DURATION, "200ms", flush_interval_ms, 0, 60000,
        "longest an event waits in memory before it is written to the spool"),
    ADDR("agent", "admin", "", admin, "address of /healthz and /metrics (empty: off)"),
    STR("agent", "log_level", "info", log_level, "error, warn, info or debug"),
    BOOL("agent", "log_syslog", "false", log_syslog, "log to syslog instead of stderr"),

    STR("shipper", "collectors", "", collectors, "HOST:PORT[,HOST:PORT...] in failover order"),
    STR("shipper", "tls_ca", "", tls_ca, "pinned CA of the collectors (set: TLS on)"),
    STR("shipper", "tls_cert", "", tls_cert, "this agent's certificate"),
    STR("shipper", "tls_key", "", tls_key, "its private key"),
    BOOL("shipper", "tls_verify_name", "true", tls_verify_name,
         "check the collector's certificate names its address or tls_server_name"),
    STR("shipper", "tls_server_name", "", tls_server_name, "name to expect (default: the host)"),
    NUM("shipper", "window", TM_CONF_INT, "1000", window, 1, 100000, "events per window"),
    NUM("shipper", "window_bytes", TM_CONF_SIZE, "768KiB", window_bytes, 1024, 16777216,
        "JSON bytes per window"),
    NUM("shipper", "compression", TM_CONF_INT, "3", compression, 0, 9, "zlib level"),
    NUM("shipper", "connect_timeout", TM_CONF_DURATION, "10s", connect_timeout_ms, 100, 600000,
        "TCP and TLS handshake"),
    NUM("shipper", "ack_timeout", TM_CONF_DURATION, "30s", ack_timeout_ms, 100, 3600000,
        "reconnect when a window gets no ack (not even a keepalive) this long"),
    NUM("shipper", "backoff_base", TM_CONF_DURATION, "500ms", backoff_base_ms, 1, 600000,
        "first reconnect delay (doubles, full jitter)"),
    NUM("shipper", "backoff_max", TM_CONF_DURATION, "30s", backoff_max_ms, 1, 3600000,
        "longest reconnect delay"),
    NUM("shipper", "heartbeat", TM_CONF_DURATION, "30s", heartbeat_ms, 0, 86400000,
        "heartbeat interval (0: none)"),
    {NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL},
};

#undef OFF
#undef SZ
#define OFF(f) offsetof(struct input_config, f)
#define SZ(f) sizeof(((struct input_config *)0)->f)
#define DOFF(f) (offsetof(struct input_config, detect) + offsetof(struct detect_config, f))
#define DSZ(f) sizeof(((struct detect_config *)0)->f)
#define DNUM(key, type, def, f, lo, hi, help)                                                      \
    {                                                                                              \
        "", key, type, def, DOFF(f), 0, lo, hi, NULL, help                                         \
    }
#define DSTR(key, def, f, help)                                                                    \
    {                                                                                              \
        "", key, TM_CONF_STRING, def, DOFF(f), DSZ(f), 0, 0, NULL, help                            \
    }
#define DBOOL(key, def, f, help)                                                                   \
    {                                                                                              \
        "", key, TM_CONF_BOOL, def, DOFF(f), 0, 0, 0, NULL, help                                   \
    }

static const char *const type_choices[] = {"file", "syslog-udp", "syslog-tcp", "stdin", NULL};
static const char *const start_choices[] = {"beginning", "end", NULL};

/* Keys of an [input.NAME] section: the input, then its detectors (detect.h). */
static const struct tm_config_option input_options[] = {
    {"", "type", TM_CONF_ENUM, "file", OFF(type), 0, 0, 0, type_choices,
     "file, syslog-udp, syslog-tcp or stdin"},
    {"", "format", TM_CONF_STRING, "syslog", OFF(format), SZ(format), 0, 0, NULL,
     "parser: eve, auth, cef, syslog or json"},
    {"", "paths", TM_CONF_STRING, "", OFF(paths), SZ(paths), 0, 0, NULL,
     "file: comma-separated globs"},
    {"", "listen", TM_CONF_ADDR, "", OFF(listen), SZ(listen), 0, 0, NULL, "syslog: HOST:PORT"},
    {"", "start", TM_CONF_ENUM, "beginning", OFF(start), 0, 0, 0, start_choices,
     "file: where to start in files found at start-up without a registry entry"},
    {"", "max_line", TM_CONF_SIZE, "16KiB", OFF(max_line), 0, 256, 1048576, NULL,
     "longer lines are cut (and counted)"},
    {"", "max_connections", TM_CONF_INT, "64", OFF(max_connections), 0, 1, 100000, NULL,
     "syslog-tcp: open connections"},
    DNUM("pass_min_severity", TM_CONF_INT, "4", pass_min_severity, 1, 10,
         "events below this severity are only counted (and feed threshold and spike)"),
    DNUM("fold_window", TM_CONF_DURATION, "60s", fold_window_ms, 0, 86400000,
         "identical events within this window are folded into one with a count (0: off)"),
    DNUM("fold_max_keys", TM_CONF_INT, "1024", fold_max_keys, 1, 1000000, "fold keys held"),
    DBOOL("threshold", "true", threshold_enabled, "threshold per source address"),
    DSTR("threshold_match_category", "bruteforce", threshold_match_category,
         "events counted: this category (empty: any)"),
    DSTR("threshold_match_kind", "", threshold_match_kind, "and this source.kind (empty: any)"),
    DSTR("threshold_match_prefix", "", threshold_match_prefix,
         "and a summary starting with this (empty: any)"),
    DNUM("threshold_count", TM_CONF_INT, "20", threshold_count, 1, 1000000000,
         "events from one source within the window that fire"),
    DNUM("threshold_window", TM_CONF_DURATION, "60s", threshold_window_ms, 1000, 86400000,
         "sliding window"),
    DNUM("threshold_suppress", TM_CONF_DURATION, "5m", threshold_suppress_ms, 1000, 86400000,
         "after firing, further events from the source only add to one follow-up"),
    DNUM("threshold_severity", TM_CONF_INT, "6", threshold_severity, 1, 10, "of the event emitted"),
    DSTR("threshold_category", "bruteforce", threshold_category, "of the event emitted"),
    DSTR("threshold_label", "failed ssh logins", threshold_label, "summary wording"),
    DNUM("threshold_max_sources", TM_CONF_INT, "10000", threshold_max_sources, 1, 10000000,
         "sources tracked at once"),
    DBOOL("spike", "true", spike_enabled, "rate spike against the input's own baseline"),
    DSTR("spike_match_category", "", spike_match_category, "events counted (empty: all)"),
    DNUM("spike_interval", TM_CONF_DURATION, "10s", spike_interval_ms, 1000, 86400000,
         "rate interval"),
    DNUM("spike_factor_pct", TM_CONF_INT, "500", spike_factor_pct, 101, 1000000,
         "fire at this percentage of the baseline"),
    DNUM("spike_min_count", TM_CONF_INT, "100", spike_min_count, 1, 1000000000,
         "and at least this many events in the interval"),
    DNUM("spike_warmup", TM_CONF_INT, "30", spike_warmup, 1, 100000,
         "intervals before the first spike can fire"),
    DNUM("spike_alpha_pct", TM_CONF_INT, "10", spike_alpha_pct, 1, 100, "EWMA weight"),
    DNUM("spike_alpha_spiking_pct", TM_CONF_INT, "0", spike_alpha_spiking_pct, 0, 100,
         "EWMA weight during a spike (0: baseline frozen)"),
    DNUM("spike_suppress", TM_CONF_DURATION, "5m", spike_suppress_ms, 100, 86400000,
         "one follow-up per period while a spike lasts"),
    DNUM("spike_severity", TM_CONF_INT, "7", spike_severity, 1, 10, "of the event emitted"),
    DSTR("spike_category", "ddos", spike_category, "ddos (T1498) or scan (T1595)"),
    {NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL},
};

static const struct tm_config_spec input_spec = {input_options, NULL, NULL};

/* [input.NAME] keys: a new input on the first key of its section. */
static int input_key_cb(void *arg, const char *section, const char *key, const char *value,
                        char *err)
{
    struct agent_config *cfg = arg;
    const char *name;
    struct input_config *in = NULL;

    if (strncmp(section, "input.", 6) != 0 || section[6] == '\0') {
        tm_err(err, "unknown section '%s'", section);
        return -1;
    }
    name = section + 6;
    for (int i = 0; i < cfg->ninputs; i++)
        if (strcmp(cfg->inputs[i].name, name) == 0)
            in = &cfg->inputs[i];
    if (in == NULL) {
        if (cfg->ninputs == AGENT_MAX_INPUTS) {
            tm_err(err, "more than %d inputs", AGENT_MAX_INPUTS);
            return -1;
        }
        if (strlen(name) >= sizeof(in->name)) {
            tm_err(err, "input name '%s' is longer than %zu bytes", name, sizeof(in->name) - 1);
            return -1;
        }
        in = &cfg->inputs[cfg->ninputs];
        memset(in, 0, sizeof(*in));
        detect_config_defaults(&in->detect);
        if (tm_config_defaults(&input_spec, in, err) != 0)
            return -1;
        tm_strlcpy(in->name, name, sizeof(in->name));
        cfg->ninputs++;
    }
    if (strcmp(key, "threshold_match_prefix") == 0)
        in->prefix_set = true;
    return tm_config_apply(&input_spec, in, NULL, key, value, err);
}

int agent_config_load(struct agent_config *cfg, const char *path, char *err)
{
    struct tm_config_spec spec = {options, input_key_cb, cfg};

    memset(cfg, 0, sizeof(*cfg));
    if (tm_config_load(&spec, cfg, path, err) != 0)
        return -1;
    /*
     * sshd writes up to three lines per failed attempt; counting only its "Failed ..."
     * lines makes threshold_count a number of attempts.
     */
    for (int i = 0; i < cfg->ninputs; i++)
        if (strcmp(cfg->inputs[i].format, "auth") == 0 && !cfg->inputs[i].prefix_set)
            tm_strlcpy(cfg->inputs[i].detect.threshold_match_prefix, "failed ",
                       sizeof(cfg->inputs[i].detect.threshold_match_prefix));
    return 0;
}

int agent_config_set(struct agent_config *cfg, const char *section, const char *key,
                     const char *value, char *err)
{
    struct tm_config_spec spec = {options, NULL, NULL};

    return tm_config_set(&spec, cfg, section, key, value, err);
}

static void check_emit_cb(void *arg, struct tm_event *ev)
{
    (void)arg;
    (void)ev;
}

int agent_config_check(const struct agent_config *cfg, char *err)
{
    if (cfg->id[0] == '\0') {
        tm_err(err, "[agent] id is required");
        return -1;
    }
    if (cfg->collectors[0] == '\0') {
        tm_err(err, "[shipper] collectors is required (or --collector)");
        return -1;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        tm_err(err, "[shipper] tls_cert and tls_key go together");
        return -1;
    }
    if (cfg->tls_cert[0] != '\0' && cfg->tls_ca[0] == '\0') {
        tm_err(err, "[shipper] tls_cert needs tls_ca (the collector's CA)");
        return -1;
    }
    if (cfg->backoff_max_ms < cfg->backoff_base_ms) {
        tm_err(err, "[shipper] backoff_max is below backoff_base");
        return -1;
    }
    for (int i = 0; i < cfg->ninputs; i++) {
        const struct input_config *in = &cfg->inputs[i];
        struct detect *d;
        char why[TM_ERR_LEN];
        /* The detectors check their own settings (categories, ranges that depend on each
         * other): ask them now, so --check-config says what starting would say. */
        d = detect_create(&in->detect, check_emit_cb, NULL, 0, why);
        if (d == NULL) {
            tm_err(err, "[input.%s] %s", in->name, why);
            return -1;
        }
        detect_destroy(d);
        if (tm_parser_find(in->format) == NULL) {
            tm_err(err, "[input.%s] format '%s': not one of eve, auth, cef, syslog, json", in->name,
                   in->format);
            return -1;
        }
        if (in->type == INPUT_FILE && in->paths[0] == '\0') {
            tm_err(err, "[input.%s] a file input needs paths", in->name);
            return -1;
        }
        if ((in->type == INPUT_SYSLOG_UDP || in->type == INPUT_SYSLOG_TCP) &&
            in->listen[0] == '\0') {
            tm_err(err, "[input.%s] a syslog input needs listen", in->name);
            return -1;
        }
    }
    return 0;
}
