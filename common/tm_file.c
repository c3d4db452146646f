/*
 * tm_file.c - whole-file reads, atomic writes and lock files (tm_file.h). The atomic write
 * is the usual sequence: mkstemp beside the target, write everything, fchmod/fchown,
 * fsync, rename (or link, which refuses to replace), fsync the directory so the rename
 * itself survives a power cut. The temporary file is removed on every failure path.
 */
#include "tm/tm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int tm_file_dirname(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL)
        return tm_strlcpy(out, ".", outlen);
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= outlen)
        return -1;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

int tm_file_read(const char *path, size_t max, bool missing_ok, char **out, size_t *len, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t used = 0, cap;
    int rc = -1;

    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 1;
        return tm_err(err, "cannot read '%s': %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        tm_err(err, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        tm_err(err, "'%s' is larger than %zu bytes", path, max);
        goto out;
    }
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        tm_err(err, "cannot read '%s': out of memory", path);
        goto out;
    }
    /* The size may change under us: read to the end, never past cap - 1. */
    for (;;) {
        ssize_t n = read(fd, buf + used, cap - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            tm_err(err, "cannot read '%s': %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (used == cap - 1) {
            char probe;
            if (read(fd, &probe, 1) > 0) {
                tm_err(err, "'%s' changed while it was read", path);
                goto out;
            }
            break;
        }
    }
    buf[used] = '\0';
    *out = buf;
    buf = NULL;
    if (len != NULL)
        *len = used;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static int fsync_dir(const char *dir, char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0 || fsync(fd) != 0)
        rc = tm_err(err, "cannot fsync directory '%s': %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

int tm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, int flags,
                         char *err)
{
    char dir[4096], tmp[4200];
    const char *p = data;
    struct stat st, dst;
    size_t done = 0;
    int fd = -1, saved = 0, rc = -1;
    bool exists;

    if (tm_file_dirname(path, dir, sizeof(dir)) != 0 ||
        snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return tm_err(err, "path '%.200s' is too long", path);
    }
    exists = stat(path, &st) == 0;
    if (exists && (flags & TM_FILE_NO_REPLACE)) {
        errno = EEXIST;
        return tm_err(err, "'%s' already exists", path);
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        saved = errno;
        tm_err(err, "cannot create a file in '%s': %s", dir, strerror(errno));
        errno = saved;
        return -1;
    }
    if (exists && (flags & TM_FILE_KEEP_MODE)) {
        mode = st.st_mode & 07777;
        if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
            goto fail;
    } else if (geteuid() == 0 && stat(dir, &dst) == 0 && fchown(fd, (uid_t)-1, dst.st_gid) != 0) {
        goto fail;
    }
    if (fchmod(fd, mode) != 0)
        goto fail;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        done += (size_t)n;
    }
    if (!(flags & TM_FILE_NO_SYNC) && fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (flags & TM_FILE_NO_REPLACE) {
        if (link(tmp, path) != 0)
            goto fail;
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        goto fail;
    }
    rc = (flags & TM_FILE_NO_SYNC) ? 0 : fsync_dir(dir, err);
    return rc;
fail:
    saved = errno;
    if (saved == EEXIST)
        tm_err(err, "'%s' already exists", path);
    else
        tm_err(err, "cannot write '%s': %s", path, strerror(saved));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

int tm_file_lock(const char *path, int timeout_ms, char *err)
{
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
    int waited = 0;

    if (fd >= 0) {
        /*
         * Made here: mode 0660 whatever the umask, and as root the directory's group, so
         * that a daemon of that group (tm-collector) can still open it after root's tmctl
         * made it first.
         */
        char dir[4096];
        struct stat dst;

        if (fchmod(fd, 0660) != 0 ||
            (geteuid() == 0 && tm_file_dirname(path, dir, sizeof(dir)) == 0 &&
             stat(dir, &dst) == 0 && fchown(fd, (uid_t)-1, dst.st_gid) != 0)) {
            tm_err(err, "cannot set up lock file '%s': %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    } else if (errno == EEXIST) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return tm_err(err, "cannot open lock file '%s': %s", path, strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (errno != EWOULDBLOCK && errno != EINTR) {
            tm_err(err, "cannot lock '%s': %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (waited >= timeout_ms) {
            tm_err(err, "'%s' is locked by another process (waited %d ms)", path, timeout_ms);
            close(fd);
            errno = EWOULDBLOCK;
            return -1;
        }
        nanosleep(&ts, NULL);
        waited += 10;
    }
    return fd;
}

void tm_file_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}
