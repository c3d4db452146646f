/*
 * spool.h - the agent's disk spool: every event the agent produces is appended here
 * before anything is shipped, and leaves only when a collector has acknowledged it.
 *
 * Two lanes share one sequence counter (the event's "seq", one higher per spooled event,
 * so gaps found downstream are losses):
 *   SPOOL_PRIORITY  manual reports and severity 9-10; shipped first, never dropped
 *   SPOOL_BULK      everything else; over the size cap its oldest segment is deleted and
 *                   the events in it are counted as lost
 *
 * On disk, per lane, a directory of append-only segment files named by the first seq they
 * hold. A segment is a list of records; a record is one zlib-compressed batch of events
 * with a header carrying the first seq, the event count and a CRC-32 over header and
 * payload. A torn tail (SIGKILL or power loss during a write) fails its CRC on open and is
 * cut off. The acknowledged position of each lane is a small file replaced atomically
 * (write, fsync, rename, fsync of the directory).
 *
 * Not thread-safe: one owner, the agent's event loop.
 *
 * Damage found on open or read (spool.c has the byte layout): a record whose header is
 * unreadable ends its segment there (the rest is cut and counted in torn_bytes); a record
 * with a sound header but a bad payload (CRC, zlib, or more than 1 MiB once inflated) is
 * skipped, its unacknowledged events are added to lost_events, and it is marked on disk
 * so that it is not counted again.
 */
#ifndef TM_AGENT_SPOOL_H
#define TM_AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

enum spool_lane { SPOOL_PRIORITY = 0, SPOOL_BULK = 1, SPOOL_LANES = 2 };

enum spool_fsync {
    SPOOL_FSYNC_ALWAYS,   /* every spool_flush ends with fsync */
    SPOOL_FSYNC_INTERVAL, /* spool_sync() from a timer; flushes only write() */
    SPOOL_FSYNC_NEVER,    /* the kernel decides (survives SIGKILL, not power loss) */
};

struct spool_config {
    const char *dir;        /* created if missing (mode 0700) */
    uint64_t max_bytes;     /* cap on the bulk lane's segment files; 0 = no cap */
    uint64_t segment_bytes; /* a segment is closed and a new one started past this size */
    enum spool_fsync fsync;
    int compression_level; /* zlib level 1..9 */
};

struct spool_stats {
    uint64_t next_seq;                  /* seq of the next appended event (starts at 1) */
    uint64_t depth_events[SPOOL_LANES]; /* flushed and not yet acknowledged */
    uint64_t depth_bytes[SPOOL_LANES];  /* bytes of segment files on disk */
    uint64_t pending_events;            /* appended, not yet flushed (in memory) */
    uint64_t lost_events;               /* dropped by the cap since the spool was created */
    uint64_t lost_segments;
    uint64_t torn_bytes; /* cut from torn tails when this process opened it */
};

struct spool;

/*
 * Opens (or creates) the spool in cfg->dir, checks every record's CRC, cuts a torn tail
 * and restores next_seq, the acknowledged positions and the loss counters. Returns NULL
 * with err (TM_ERR_LEN bytes) filled on failure. The caller owns the spool.
 */
struct spool *spool_open(const struct spool_config *cfg, char *err);

/* Flushes pending events (spool_flush), fsyncs and frees. NULL is ignored. */
void spool_close(struct spool *s);

/* The seq the next spool_append will take. The caller writes it into the event. */
uint64_t spool_next_seq(const struct spool *s);

/*
 * Appends one encoded event (JSON bytes, copied) to the lane's pending batch with seq
 * spool_next_seq() and advances it. The batch is written as one record by spool_flush,
 * or automatically when it reaches 256 KiB (written only: fsync and the bulk cap wait for
 * the next spool_flush). Events over 256 KiB are refused. Returns 0, or -1 with err
 * filled (I/O error: the event is not spooled and next_seq is unchanged).
 */
int spool_append(struct spool *s, enum spool_lane lane, const void *data, size_t len, char *err);

/*
 * Writes each lane's pending batch as one record and, with SPOOL_FSYNC_ALWAYS, fsyncs.
 * After it returns 0 every appended event survives SIGKILL (and power loss when
 * fsynced). Applies the bulk cap. Returns 0 or -1 with err filled.
 */
int spool_flush(struct spool *s, char *err);

/* fsync of the open segments (SPOOL_FSYNC_INTERVAL timers). Returns 0 or -1. */
int spool_sync(struct spool *s, char *err);

/* Called by spool_read for each event, in seq order. Return 0 to go on, 1 to stop. */
typedef int (*spool_event_cb)(uint64_t seq, const char *data, size_t len, void *arg);

/*
 * Reads flushed events of a lane with seq > after_seq, in order, at most max of them,
 * calling cb for each; data is valid only during the call, and cb must not call into the
 * spool. Pass after_seq = 0 to start at the acknowledged position (a smaller after_seq is
 * raised to it). Events removed by the cap are skipped. Returns the number of events
 * delivered, or -1 with err.
 */
long spool_read(struct spool *s, enum spool_lane lane, uint64_t after_seq, size_t max,
                spool_event_cb cb, void *arg, char *err);

/*
 * Marks every event of the lane with seq <= seq as acknowledged, persists the position
 * atomically and deletes segments that hold only acknowledged events. A seq at or below
 * the current position is a no-op; one never handed out (>= next_seq) is an error.
 * Returns 0 or -1.
 */
int spool_ack(struct spool *s, enum spool_lane lane, uint64_t seq, char *err);

/* Bytes appended and not yet written (both lanes). spool_append writes a lane's batch by
 * itself at 256 KiB; an owner that saves read positions only after spool_flush calls
 * spool_flush before that, so no record is written that its positions do not cover. */
size_t spool_pending_bytes(const struct spool *s);

/*
 * The highest seq the lane has written (pending events not included) or accounted for:
 * in a segment, acknowledged, or dropped by the cap. After spool_open, what survived a
 * crash: every event of the lane up to it is on disk, in a collector's hands or counted
 * lost (0 for an empty lane).
 */
uint64_t spool_lane_last(const struct spool *s, enum spool_lane lane);

/* The lane's acknowledged position (0 when nothing was acknowledged yet). */
uint64_t spool_acked(const struct spool *s, enum spool_lane lane);

void spool_get_stats(const struct spool *s, struct spool_stats *out);

#endif
