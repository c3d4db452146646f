/*
 * tail.h - the agent's file input: follows every file that matches a set of globs and
 * hands each complete line to a callback, across restarts, rotation and truncation.
 *
 * Lines: delivered without the trailing "\n" (and without a "\r" before it). A last line
 * with no newline yet is held (not delivered) until its newline arrives, as Filebeat
 * does; the one exception is a rotated-away file that has gone idle, whose unfinished
 * last line is delivered before the file is closed, since nobody will finish it. A line
 * longer than max_line bytes is delivered cut to max_line bytes and the rest of it is
 * skipped (counted in truncated_lines).
 *
 * Commit protocol (no loss): tail keeps, per file, the offset just past the last line it
 * has delivered. tail_checkpoint() writes those offsets to the registry file atomically;
 * the owner calls it only once every line delivered so far is durable (after its spool
 * flush). After a crash, reading resumes at the last checkpoint: the lines delivered
 * after it come again (duplicates within that window, never gaps). A fast checkpoint
 * (no fsync) may be taken after every flush as well; the owner decides at start-up which
 * of the two registries is both newer and covered by data that survived.
 *
 * Files are identified by device and inode plus a fingerprint (FNV-1a 64 of the first
 * bytes, up to 256). On restart a registry entry applies to a file only when all three
 * match; an inode reused by another file starts from 0.
 *
 * Rotation: by rename (or deletion) - the old file is read to its end and kept open until
 * it has been idle for rotated_idle_ms, so lines a writer still appends to it are read;
 * with a registry it is also kept until a checkpoint covers its last line. Lines written
 * to it after it was closed are not read. The new file at the path is read from 0. If the
 * new name matches a glob too, the file simply goes on under its new name. By
 * copytruncate or truncation - a size below the offset, or changed first bytes (truncated
 * and rewritten past the offset), restart the file from 0; lines written between our last
 * read and the truncation are lost (inherent to copytruncate), and the glob must not match
 * the copies or they are read again as new files. Files that start matching later are
 * read from 0. TAIL_START_END starting mid-line skips the rest of that line.
 *
 * Each loop round reads at most max(read_chunk, max_line + 2) bytes per file (the size of
 * the one shared read buffer) and re-arms itself while any file has more. Memory: that
 * buffer plus about 100 bytes and the path per open file; no per-file line buffers.
 *
 * Shutdown while a rotated-away file is still being read: its entry (with the file's
 * current name) is in the registry like any other. On restart, an entry that no glob match
 * claims is looked up by inode in the directory of its last known name; if found with the
 * same fingerprint it is read to its end as a rotated file. If it was deleted, compressed
 * or moved to another directory meanwhile, its unread rest is lost.
 *
 * Not thread-safe: one owner, the agent's event loop.
 */
#ifndef TM_AGENT_TAIL_H
#define TM_AGENT_TAIL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

enum tail_start {
    TAIL_START_BEGINNING = 0, /* files without a registry entry are read from offset 0 */
    TAIL_START_END = 1,       /* ...from their end; only for files present at tail_create */
};

struct tail_config {
    const char *const *globs; /* glob(3) patterns; at least one */
    size_t n_globs;
    const char *registry_path; /* NULL: no registry (tail_checkpoint is a no-op) */
    /* NULL: none. Where tail_checkpoint_fast writes (read by nobody here: the owner
     * decides at start-up whether it replaces registry_path, see tail_registry_mark) */
    const char *fast_registry_path;
    enum tail_start start;
    size_t max_line;          /* longer lines are cut; 0 = 16 KiB */
    size_t max_files;         /* open files at most (rotated ones count); 0 = 100 */
    size_t read_chunk;        /* bytes per file per loop round; 0 = 64 KiB */
    unsigned rescan_ms;       /* fallback glob rescan and file check; 0 = 2000 */
    unsigned rotated_idle_ms; /* close a rotated-away file idle this long; 0 = 5000 */
};

struct tail_stats {
    uint64_t files_watched;   /* files open now (following and rotated) */
    uint64_t files_over_max;  /* matching files not opened at the last scan: max_files */
    uint64_t lines;           /* lines delivered to line_cb */
    uint64_t bytes;           /* bytes consumed (lines, newlines and skipped parts) */
    uint64_t truncated_lines; /* lines cut to max_line */
    uint64_t rotations;       /* followed files whose path went away or changed inode */
    uint64_t truncations;     /* files restarted from 0: shrank or fingerprint changed */
    uint64_t read_errors;
};

/* Where a line starts: the same line read again (after a restart) has the same position. */
struct tail_pos {
    uint64_t dev, ino; /* the file's device and inode */
    uint64_t off;      /* the byte offset of the line's first byte */
};

/*
 * Called for each line. path is the name tail knows the file by (it opened it under that
 * name, or found it renamed to another matching name). line is NUL-terminated for
 * convenience, len excludes the NUL (the line itself may hold NUL bytes); line, path and
 * pos are valid only during the call. The callback may call tail_checkpoint, not
 * tail_destroy.
 */
typedef void (*tail_line_cb)(void *arg, const char *path, const char *line, size_t len,
                             const struct tail_pos *pos);

struct tail;

/*
 * Loads the registry (a missing file is an empty registry), expands the globs, opens the
 * matching files at their registry offsets (or at cfg->start), watches them and their
 * directories with inotify on base and arms the rescan timer. Reading starts on the
 * next loop round. cfg is copied (the glob strings too). Returns NULL with err
 * (TM_ERR_LEN bytes) filled when the registry cannot be read or parsed, or inotify or
 * memory fail. The caller owns the tail and frees it with tail_destroy.
 */
struct tail *tail_create(struct event_base *base, const struct tail_config *cfg,
                         tail_line_cb line_cb, void *arg, char *err);

/*
 * Closes every file and the inotify descriptor and frees the tail. It does not write the
 * registry: call tail_checkpoint first if all delivered lines are durable. NULL is ignored.
 */
void tail_destroy(struct tail *t);

/*
 * Writes the registry (a temporary file, fsync, rename, fsync of the directory) with the
 * offset just past the last line delivered from each open file, and the mark last set.
 * Removes the fast registry, which is older now. Returns 0 (also without a
 * registry_path), or -1 with err filled; the previous registry then stays in place.
 */
int tail_checkpoint(struct tail *t, char *err);

/*
 * The same offsets and mark written to fast_registry_path atomically (rename) but without
 * any fsync: cheap enough for every spool flush. It survives the death of the process,
 * not necessarily a power loss; which is why the owner checks its mark before using it.
 */
int tail_checkpoint_fast(struct tail *t, char *err);

/*
 * The mark: TAIL_MARK_WORDS numbers the owner stores with each checkpoint to tell, at the
 * next start, whether the data the offsets stand for survived and which of two registries
 * is newer (tm-agent: the last seq of each spool lane when the offsets were taken).
 */
#define TAIL_MARK_WORDS 2
void tail_set_mark(struct tail *t, const uint64_t mark[TAIL_MARK_WORDS]);

/*
 * Reads the mark of the registry at path into mark (zeros for a registry of version 1),
 * checking every line as tail_create would. Returns 1, 0 when the file does not exist,
 * or -1 with err filled (unreadable, cut short or malformed).
 */
int tail_registry_mark(const char *path, uint64_t mark[TAIL_MARK_WORDS], char *err);

/* Expands the globs and checks every open file now, as the rescan timer does. */
void tail_rescan(struct tail *t);

void tail_get_stats(const struct tail *t, struct tail_stats *out);

#endif
