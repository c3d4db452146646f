/*
 * tm_file.h - small files that must never be seen half written: reading one whole, writing
 * one atomically (temporary file in the same directory, fsync, rename, fsync of the
 * directory), and an advisory lock (flock on a lock file beside it) for the
 * read-modify-write cycles that several programs do on one file (the identity map and
 * the enrollment tokens: tmctl and tm-collector).
 */
#ifndef TM_FILE_H
#define TM_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tm/tm_common.h"

/*
 * Reads the file at path (at most max bytes) into a NUL-terminated malloc'd buffer that
 * the caller frees; *len (may be NULL) gets its length. Returns 0; 1 when the file does
 * not exist and missing_ok (then *out is NULL); or -1 with "cannot read 'PATH': reason"
 * or "'PATH' is larger than N bytes" in err.
 */
int tm_file_read(const char *path, size_t max, bool missing_ok, char **out, size_t *len, char *err);

/* Flags of tm_file_write_atomic. */
#define TM_FILE_NO_REPLACE 1 /* fail with EEXIST when path exists (link instead of rename) */
#define TM_FILE_KEEP_MODE 2  /* an existing file's mode (and, as root, owner) win over mode */
#define TM_FILE_NO_SYNC 4    /* no fsync: atomic if this process dies, not across power loss */

/*
 * Writes len bytes of data to path so that a reader (or a crash) sees the old content or
 * the new, never a mix: a temporary file in the same directory created with mode, written,
 * fsynced, renamed over path (linked, with TM_FILE_NO_REPLACE), then the directory
 * fsynced. A new file created by root takes the directory's group, so a daemon whose
 * group owns the directory can read it. Returns 0, or -1 with the path and reason in err
 * (errno is kept: EEXIST for TM_FILE_NO_REPLACE).
 */
int tm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int flags,
                         char *err);

/*
 * Takes an exclusive flock on the file at path (created with mode 0660 when missing, by
 * root with its directory's group, as tm_file_write_atomic does; a read-only descriptor
 * is enough for flock), waiting up to timeout_ms. Returns the descriptor to hand to
 * tm_file_unlock, or -1 with the reason in err and errno EWOULDBLOCK when another holder
 * kept it for timeout_ms (any other errno: the file could not be opened or locked).
 */
int tm_file_lock(const char *path, int timeout_ms, char *err);

/* Releases a lock from tm_file_lock (fd < 0 is ignored). */
void tm_file_unlock(int fd);

/* Writes the directory part of path ("." when it has none) into out. Returns 0 or -1. */
int tm_file_dirname(const char *path, char *out, size_t outlen);

#endif
