/*
 * agent.h - tm-agent's shared types: configuration, the input plug-in table and the
 * pipeline every input feeds.
 *
 * Modules:
 *   main.c          options and wiring (run, report)
 *   agent_config.c  the INI file: [agent], [shipper] and one [input.NAME] per input
 *   agent.c         the pipeline: line -> parser -> detectors -> spool -> shipper; the
 *                   flush/checkpoint cycle, timers, metrics, the report inbox
 *   input_file.c    files by glob (tail.c), input_syslog.c UDP/TCP, input_stdin.c stdin
 *   report.c        manual incidents: `tm-agent report` writes them to the inbox
 *   tail.c detect.c spool.c ship.c   the parts, each with its own header and unit tests
 *
 * Data flow and the no-loss rule: an input hands each line to agent_line(); the parser
 * turns it into an event (or skips it), the input's detectors pass, fold or create
 * events, and each resulting event gets the agent id, an id and the next seq and is
 * appended to the spool. agent_dirty() then schedules one flush for the loop iteration:
 * spool_flush, then each input's checkpoint (a file's registry offset moves only past
 * lines whose events are on disk), then ship_kick. The shipper removes events from the
 * spool only when a collector acknowledged them.
 *
 * One process, one libevent loop, no threads.
 */
#ifndef TM_AGENT_AGENT_H
#define TM_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detect.h"
#include "ship.h"
#include "spool.h"
#include "tm/tm_common.h"
#include "tm/tm_config.h"
#include "tm/tm_event.h"
#include "tm/tm_metrics.h"
#include "tm/tm_parse.h"

#define AGENT_VERSION TM_VERSION
#define AGENT_MAX_INPUTS 32
#define AGENT_MAX_GLOBS 16
#define AGENT_PATH_LEN 512
#define AGENT_MARK_WORDS 2 /* a checkpoint's stamp: the last seq of each spool lane */

enum input_type { INPUT_FILE, INPUT_SYSLOG_UDP, INPUT_SYSLOG_TCP, INPUT_STDIN };

/* One [input.NAME] section. */
struct input_config {
    char name[48];
    int type;         /* enum input_type */
    char format[16];  /* parser: eve, auth, cef, syslog, json */
    char paths[2048]; /* file: comma-separated globs */
    char listen[64];  /* syslog: HOST:PORT */
    int start;        /* file: 0 = beginning, 1 = end (for files present at start) */
    uint64_t max_line;
    int64_t max_connections; /* syslog-tcp */
    struct detect_config detect;
    bool prefix_set; /* threshold_match_prefix given: auth inputs default to "failed " */
};

struct agent_config {
    char id[TM_EVENT_ID_MAX + 1];
    char host[TM_EVENT_HOST_MAX + 1]; /* source.host when a parser leaves it empty */
    char state_dir[AGENT_PATH_LEN];   /* spool/, registry, inbox/ and the lock live here */
    uint64_t spool_max;
    uint64_t spool_segment;
    int fsync; /* enum spool_fsync */
    int64_t fsync_interval_ms;
    int64_t flush_interval_ms; /* longest an event waits in memory before spool_flush */
    char admin[64];
    char log_level[16];
    bool log_syslog;
    /* [shipper] */
    char collectors[1024]; /* comma-separated HOST:PORT, failover order */
    char tls_ca[AGENT_PATH_LEN];
    char tls_cert[AGENT_PATH_LEN];
    char tls_key[AGENT_PATH_LEN];
    bool tls_verify_name;
    char tls_server_name[256];
    int64_t window;
    uint64_t window_bytes;
    int64_t compression;
    int64_t connect_timeout_ms;
    int64_t ack_timeout_ms;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    int64_t heartbeat_ms;
    /* inputs */
    struct input_config inputs[AGENT_MAX_INPUTS];
    int ninputs;
};

/*
 * Loads the agent's config file (NULL: defaults only, which have no inputs). Returns 0, or
 * -1 with "FILE:LINE: ..." in err.
 */
int agent_config_load(struct agent_config *cfg, const char *path, char *err);

/* Checks what the table cannot: an id, at least one collector, TLS files in pairs. */
int agent_config_check(const struct agent_config *cfg, char *err);

/* Applies one command-line override ("[shipper] collectors" and the like). */
int agent_config_set(struct agent_config *cfg, const char *section, const char *key,
                     const char *value, char *err);

struct agent;
struct input;

/* What every input type implements (input_file.c, input_syslog.c, input_stdin.c). */
struct input_ops {
    const char *type;
    /* Opens files or sockets and starts feeding agent_line(). -1 with err on failure. */
    int (*start)(struct input *in, char *err);
    /*
     * Every line handed to agent_line() so far has its events in the spool file: save the
     * read position, stamped with mark (agent_spool_mark). fast: after a flush, without
     * fsync; otherwise after a spool fsync, durably.
     */
    int (*checkpoint)(struct input *in, const uint64_t mark[AGENT_MARK_WORDS], bool fast,
                      char *err);
    /* True when the input has no more to give (stdin at EOF). */
    bool (*finished)(const struct input *in);
    void (*stop)(struct input *in);
};

struct input {
    const struct input_ops *ops;
    const struct input_config *cfg;
    struct agent *agent;
    const struct tm_parser *parser;
    struct detect *detect;
    void *state; /* the input type's own */
    /* Counters (also in /metrics, labelled by input). */
    struct tm_counter *lines, *events, *skipped, *parse_errors, *truncated;
    /* The detectors' own counts, published each tick (detect_stats since the last one). */
    struct tm_counter *det_passed, *det_below_min, *det_folded, *det_emitted[DETECT_KINDS];
    struct tm_gauge *det_baseline;
    struct detect_stats det_last;
    bool error_logged[4]; /* one log line with a sample per kind of failure */
};

extern const struct input_ops input_file_ops;
extern const struct input_ops input_syslog_udp_ops;
extern const struct input_ops input_syslog_tcp_ops;
extern const struct input_ops input_stdin_ops;

/* The event loop of the agent (inputs add their events to it). */
struct event_base *agent_base(struct agent *a);

/*
 * The stamp of a checkpoint taken now: spool_lane_last of the priority and bulk lanes.
 * A saved position is usable after a crash only if the spool still reaches its stamp.
 */
void agent_spool_mark(const struct agent *a, uint64_t mark[AGENT_MARK_WORDS]);

/* fsyncs the spool (before a position saved without fsync is made durable). 0 or -1. */
int agent_spool_sync(struct agent *a, char *err);

/* A directory under the state dir for an input's own files ("registry.NAME"). */
void agent_state_path(const struct agent *a, const char *name, char *out, size_t outlen);

/* One line from an input: parse, detect, spool. Never fails: problems are counted. */
/*
 * Where a line was read, for inputs that can read the same line again after a crash
 * (files): the events parsed from it get ids derived from the agent id, this position and
 * the line's bytes, so a re-read line yields the same ids and downstream dedup drops the
 * copies. Lines from sockets and stdin pass NULL and get fresh random ids.
 */
struct line_origin {
    uint64_t dev, ino, off;
};

void agent_line(struct input *in, const char *line, size_t len, const struct line_origin *origin);

/* Events were appended: flush, checkpoint and kick the shipper in this loop iteration. */
void agent_dirty(struct agent *a);

/*
 * Creates the agent from a checked config: takes the state dir's lock, opens the spool,
 * creates inputs, detectors and the shipper, and starts them. once: exit when every
 * input is finished and the spool is empty. Returns NULL with err.
 */
struct agent *agent_create(const struct agent_config *cfg, bool once, char *err);

/* Runs the loop until SIGTERM/SIGINT (or, with once, until drained). Returns exit code. */
int agent_run(struct agent *a);

/* Flushes detectors and the spool, checkpoints inputs, frees. NULL is ignored. */
void agent_destroy(struct agent *a);

/* ---- manual reports (report.c) ------------------------------------------------------ */

/*
 * Writes a manual incident into the inbox of the agent whose state dir is given, as a
 * canonical event file (write, fsync, rename), for the running agent to spool in its
 * priority lane. Prints nothing; fills id_out (TM_EVENT_ID_MAX + 1) with the event's id.
 * Returns 0, or -1 with err (an invalid event names the field).
 */
int report_write(const char *state_dir, struct tm_event *ev, char *id_out, char *err);

/* ---- enroll.c ---------------------------------------------------------------------- */

/*
 * `tm-agent enroll ...` (argv[0] is "enroll"): trades a one-time token for this agent's
 * certificate at a collector's enrollment listener. Returns the exit status.
 */
int enroll_main(int argc, char **argv);

/*
 * Moves every report in the inbox into the spool through cb (which spools it), deleting
 * each file only after cb returned 0. Returns the number taken, or -1 with err.
 */
typedef int (*report_take_cb)(void *arg, struct tm_event *ev, char *err);
long report_take_all(const char *state_dir, report_take_cb cb, void *arg, char *err);

#endif
