/*
 * tail.c - the file input: owns the set of followed files, their read offsets, the inotify
 * descriptor and the registry file that carries the offsets across restarts.
 *
 * Flow: a scan expands the globs and opens files not followed yet (deduplicated by device
 * and inode); a followed file whose path vanished or now names another inode becomes
 * "rotated": it is read to its end and closed once idle. inotify events on a file mark it
 * readable; events on a directory ask for a scan. Both only set flags and arm work_ev, a
 * zero timer, whose round reads at most read_chunk bytes from each marked file and re-arms
 * itself while any file has more, so one big file cannot starve the loop. A rescan timer
 * (rescan_ms) catches what inotify misses: scans, checks every file and closes idle rotated
 * files. Nothing polls in between.
 *
 * Reading keeps no per-file buffer: all files share one scratch buffer of
 * max(read_chunk, max_line + 2) bytes and read with pread() from f->off, the offset just
 * past the last consumed line. A last line without its newline is not consumed, so the
 * next read starts at it again; the buffer holds more than max_line + 1 bytes, so a full
 * buffer without a newline is always a line to cut (deliver max_line bytes, set f->skip
 * and discard up to the next newline). Per file this leaves a small struct and its path.
 *
 * Invariants: f->off only moves past bytes already delivered (or discarded) to line_cb, so
 * the offsets tail_checkpoint writes never run ahead of what the owner has seen. f->off is
 * always at a line start, or inside a cut line with f->skip set (the registry keeps both).
 * Every open file counts against max_files, rotated ones too.
 */
#include "tail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tm/tm_common.h"
#include "tm/tm_file.h"
#include "tm/tm_log.h"

#define FP_MAX 256
#define DEFAULT_MAX_LINE (16 * 1024)
#define DEFAULT_MAX_FILES 100
#define DEFAULT_READ_CHUNK (64 * 1024)
#define DEFAULT_RESCAN_MS 2000
#define DEFAULT_ROTATED_IDLE_MS 5000
#define REGISTRY_MAGIC "tm-tail-registry 2"
#define REGISTRY_MAGIC_V1 "tm-tail-registry 1" /* no mark line: read as mark 0 0 */

#define FILE_MASK (IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB)
#define DIR_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)

struct tfile {
    char *path; /* the name lines are reported under */
    int fd;
    int wd; /* inotify watch on the inode, -1 if none */
    uint64_t dev;
    uint64_t ino;
    uint64_t off;       /* just past the last consumed byte */
    uint64_t ckpt_off;  /* off as last written to the registry (or as found at open) */
    uint64_t fp;        /* FNV-1a of the first fp_len bytes */
    unsigned fp_len;    /* 0 until the file has a byte; grows to FP_MAX */
    bool skip;          /* inside a cut line: discard up to the next newline */
    bool rotated;       /* no longer at a matching path: read to the end, close when idle */
    bool more;          /* may have unread bytes: read it in the next round */
    bool seen;          /* matched by the scan in progress */
    uint64_t active_ms; /* last time a read consumed bytes (monotonic) */
};

/* A registry line, kept only while tail_create matches files against it. */
struct reg_entry {
    uint64_t dev;
    uint64_t ino;
    uint64_t off;
    uint64_t fp;
    unsigned fp_len;
    bool skip;
    bool used;
    char *path;
};

struct tail {
    struct event_base *base;
    tail_line_cb line_cb;
    void *arg;
    char **globs;
    size_t n_globs;
    char *registry_path;
    char *fast_path;                /* registry written by tail_checkpoint_fast */
    uint64_t mark[TAIL_MARK_WORDS]; /* written with the next checkpoint */
    enum tail_start start;
    size_t max_line;
    size_t max_files;
    size_t read_chunk;
    unsigned rescan_ms;
    unsigned rotated_idle_ms;

    int ifd;
    struct event *inotify_ev;
    struct event *work_ev;
    struct event *rescan_ev;
    bool need_scan;

    struct tfile **files; /* max_files slots, n_files used, in the order they were opened */
    size_t n_files;
    char *buf; /* shared read buffer */
    size_t buf_size;

    struct reg_entry *reg; /* during tail_create only */
    size_t n_reg;

    struct tail_stats stats;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t fnv1a(const unsigned char *p, size_t len)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Hashes the first len bytes of fd. Returns 0, or -1 when the file is shorter. */
static int fingerprint(int fd, unsigned len, uint64_t *out)
{
    unsigned char b[FP_MAX];
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, b + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    *out = fnv1a(b, len);
    return 0;
}

/* Starts f over from offset 0: it was truncated or rewritten (copytruncate). */
static void restart_file(struct tail *t, struct tfile *f, const char *why)
{
    tm_log_info("tail '%s': %s at offset %" PRIu64 ", reading from 0", f->path, why, f->off);
    f->off = 0;
    f->skip = false;
    f->fp_len = 0;
    f->more = true;
    t->stats.truncations++;
}

/*
 * Checks and grows the fingerprint. The first bytes of a file that is only appended to
 * never change; when the bytes already hashed differ, the file was truncated and written
 * again (copytruncate) past our offset, which the size alone cannot show: start it over.
 */
static void update_fp(struct tail *t, struct tfile *f, uint64_t size)
{
    unsigned char b[FP_MAX];
    size_t len = size < FP_MAX ? (size_t)size : FP_MAX;
    ssize_t n;

    if (len == 0)
        return;
    n = pread(f->fd, b, len, 0);
    if (n <= 0)
        return;
    if (f->fp_len > 0 && ((size_t)n < f->fp_len || fnv1a(b, f->fp_len) != f->fp))
        restart_file(t, f, "fingerprint changed");
    if ((size_t)n > f->fp_len) {
        f->fp = fnv1a(b, (size_t)n);
        f->fp_len = (unsigned)n;
    }
}

static void schedule_work(struct tail *t)
{
    static const struct timeval zero = {0, 0};

    if (!evtimer_pending(t->work_ev, NULL))
        evtimer_add(t->work_ev, &zero);
}

/* Delivers the line that starts at offset off of f. */
static void emit(struct tail *t, struct tfile *f, uint64_t off, char *line, size_t len)
{
    struct tail_pos pos = {f->dev, f->ino, off};

    line[len] = '\0';
    t->stats.lines++;
    t->line_cb(t->arg, f->path, line, len, &pos);
}

/* Moves f past the next `used` bytes of buf; they have been delivered or discarded. */
static void advance(struct tail *t, struct tfile *f, size_t used)
{
    f->off += used;
    t->stats.bytes += used;
}

/*
 * Delivers the complete lines in buf[0..n) (read at f->off) and returns how many bytes
 * were consumed; an unfinished last line of at most max_line + 1 bytes stays unconsumed.
 * f->off moves past a line before line_cb sees it, so a tail_checkpoint from inside the
 * callback covers that line. Writes a NUL after each delivered line, always over a byte
 * already consumed.
 */
static size_t consume(struct tail *t, struct tfile *f, char *buf, size_t n)
{
    size_t p = 0;

    while (p < n) {
        char *nl = memchr(buf + p, '\n', n - p);
        char *line = buf + p;
        size_t len;

        uint64_t start = f->off; /* buf[p] is at f->off */

        if (nl != NULL) {
            size_t end = (size_t)(nl - buf);
            bool skipped = f->skip;

            len = end - p;
            if (len > 0 && buf[end - 1] == '\r')
                len--;
            f->skip = false;
            advance(t, f, end + 1 - p);
            p = end + 1;
            if (skipped)
                continue;
            if (len > t->max_line) {
                len = t->max_line;
                t->stats.truncated_lines++;
            }
            emit(t, f, start, line, len);
        } else if (f->skip) {
            advance(t, f, n - p);
            p = n;
        } else if (n - p > t->max_line + 1) {
            /* Longer than any line we keep even before its "\r\n": cut it now. */
            t->stats.truncated_lines++;
            f->skip = true;
            advance(t, f, n - p);
            p = n;
            emit(t, f, start, line, t->max_line);
        } else {
            break;
        }
    }
    return p;
}

/*
 * Reads f from f->off, at most about read_chunk bytes. Returns true when that budget ran
 * out with data left (the caller comes back next round), false at the end of the data.
 */
static bool read_file(struct tail *t, struct tfile *f)
{
    struct stat st;
    size_t used = 0;

    if (fstat(f->fd, &st) != 0) {
        t->stats.read_errors++;
        return false;
    }
    if ((uint64_t)st.st_size < f->off)
        restart_file(t, f, "file shrank");
    update_fp(t, f, (uint64_t)st.st_size);

    while (used < t->read_chunk) {
        ssize_t n = pread(f->fd, t->buf, t->buf_size, (off_t)f->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            t->stats.read_errors++;
            tm_log_warn("tail '%s': read failed: %s", f->path, strerror(errno));
            return false;
        }
        if (n == 0)
            return false;
        used += (size_t)n;
        if (consume(t, f, t->buf, (size_t)n) == 0)
            return false; /* an unfinished line waits for its newline */
        f->active_ms = now_ms();
        if ((size_t)n < t->buf_size)
            return false; /* short read: the end for now; inotify says when it grows */
    }
    return true;
}

/*
 * A rotated file nobody writes to any more: hand out its unfinished last line, since no
 * newline will come for it.
 */
static void flush_partial(struct tail *t, struct tfile *f)
{
    ssize_t n;

    if (f->skip)
        return;
    n = pread(f->fd, t->buf, t->max_line + 2, (off_t)f->off);
    if (n <= 0 || memchr(t->buf, '\n', (size_t)n) != NULL)
        return;
    size_t len = (size_t)n;
    if (len > 0 && t->buf[len - 1] == '\r')
        len--;
    if (len > t->max_line) {
        len = t->max_line;
        t->stats.truncated_lines++;
    }
    uint64_t start = f->off;
    advance(t, f, (size_t)n);
    emit(t, f, start, t->buf, len);
}

static void watch_dir_of(struct tail *t, const char *path, bool only_literal)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        tm_strlcpy(dir, ".", sizeof(dir));
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof(dir))
            return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    if (only_literal && strpbrk(dir, "*?[") != NULL)
        return;
    /* Fails while the directory does not exist; the rescan timer retries. */
    (void)inotify_add_watch(t->ifd, dir, DIR_MASK);
}

static void watch_file(struct tail *t, struct tfile *f)
{
    char proc[64];

    /* Through /proc the watch lands on the inode we opened, even if the path moved on. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
    f->wd = inotify_add_watch(t->ifd, proc, FILE_MASK);
    if (f->wd < 0)
        f->wd = inotify_add_watch(t->ifd, f->path, FILE_MASK);
    watch_dir_of(t, f->path, false);
}

static struct tfile *find_by_inode(struct tail *t, uint64_t dev, uint64_t ino)
{
    for (size_t i = 0; i < t->n_files; i++)
        if (t->files[i]->dev == dev && t->files[i]->ino == ino)
            return t->files[i];
    return NULL;
}

/*
 * Opens path as a followed file at offset 0 and adds it to t->files. Returns NULL when it
 * cannot be opened, is not a regular file, or turns out to be followed already (the path
 * was replaced between stat and open).
 */
static struct tfile *open_file(struct tail *t, const char *path, struct stat *st)
{
    struct tfile *f = NULL;
    int fd = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tm_log_warn("tail: cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))
        goto fail;
    if (find_by_inode(t, (uint64_t)st->st_dev, (uint64_t)st->st_ino) != NULL)
        goto fail;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        goto fail;
    f->path = strdup(path);
    if (f->path == NULL)
        goto fail;
    f->fd = fd;
    f->dev = (uint64_t)st->st_dev;
    f->ino = (uint64_t)st->st_ino;
    f->more = true;
    f->seen = true;
    f->active_ms = now_ms();
    t->files[t->n_files++] = f;
    watch_file(t, f);
    t->stats.files_watched = t->n_files;
    tm_log_debug("tail: following '%s'", path);
    return f;

fail:
    if (f != NULL)
        free(f->path);
    free(f);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void close_file(struct tail *t, size_t i)
{
    struct tfile *f = t->files[i];

    tm_log_debug("tail: closing '%s' at offset %" PRIu64, f->path, f->off);
    if (f->wd >= 0)
        inotify_rm_watch(t->ifd, f->wd);
    close(f->fd);
    free(f->path);
    free(f);
    memmove(&t->files[i], &t->files[i + 1], (t->n_files - i - 1) * sizeof(t->files[0]));
    t->n_files--;
    t->stats.files_watched = t->n_files;
}

/* Sets the start of a file found at tail_create: its registry entry, or cfg->start. */
static void place_initial(struct tail *t, struct tfile *f, uint64_t size)
{
    for (size_t i = 0; i < t->n_reg; i++) {
        struct reg_entry *e = &t->reg[i];
        uint64_t h;

        if (e->used || e->dev != f->dev || e->ino != f->ino)
            continue;
        e->used = true;
        if (e->fp_len > 0 && (fingerprint(f->fd, e->fp_len, &h) != 0 || h != e->fp)) {
            tm_log_info("tail '%s': inode reused by another file, reading from 0", f->path);
            return;
        }
        if (e->off > size) {
            restart_file(t, f, "file shrank while stopped");
            return;
        }
        f->off = f->ckpt_off = e->off;
        f->skip = e->skip;
        return;
    }
    if (t->start == TAIL_START_END && size > 0) {
        char last;

        /* Mid-line at the end: skip the rest of that line rather than deliver a piece. */
        f->off = f->ckpt_off = size;
        f->skip = pread(f->fd, &last, 1, (off_t)(size - 1)) == 1 && last != '\n';
    }
}

/*
 * Expands the globs: opens new matches, notices followed files renamed to another
 * matching name, and marks followed files whose path no longer leads to them as rotated.
 */
static void scan(struct tail *t, bool initial)
{
    uint64_t over = 0;

    for (size_t i = 0; i < t->n_files; i++)
        t->files[i]->seen = false;

    for (size_t g = 0; g < t->n_globs; g++) {
        glob_t gl;
        int rc;

        watch_dir_of(t, t->globs[g], true);
        rc = glob(t->globs[g], 0, NULL, &gl);
        if (rc == GLOB_NOMATCH)
            continue;
        if (rc != 0) {
            tm_log_warn("tail: glob '%s' failed (%d)", t->globs[g], rc);
            continue;
        }
        for (size_t k = 0; k < gl.gl_pathc; k++) {
            const char *path = gl.gl_pathv[k];
            struct stat st;
            struct tfile *f;

            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            f = find_by_inode(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
            if (f != NULL) {
                if (strcmp(f->path, path) != 0) {
                    char *p = strdup(path);
                    if (p != NULL) {
                        free(f->path);
                        f->path = p;
                    }
                }
                f->seen = true;
                f->rotated = false;
                continue;
            }
            if (t->n_files >= t->max_files) {
                over++;
                continue;
            }
            f = open_file(t, path, &st);
            if (f != NULL && initial)
                place_initial(t, f, (uint64_t)st.st_size);
        }
        globfree(&gl);
    }

    for (size_t i = 0; i < t->n_files; i++) {
        struct tfile *f = t->files[i];
        if (f->seen || f->rotated)
            continue;
        tm_log_info("tail '%s': rotated away at offset %" PRIu64 ", reading it to the end", f->path,
                    f->off);
        f->rotated = true;
        f->more = true;
        f->active_ms = now_ms();
        t->stats.rotations++;
    }
    t->stats.files_over_max = over;
}

/*
 * After the first scan: registry entries no glob match claimed may be files rotated away
 * while we were stopped. Looks for the inode in the directory of the entry's last name and
 * reads a fingerprint-matching file to its end as a rotated file.
 */
static void adopt_rotated(struct tail *t)
{
    for (size_t i = 0; i < t->n_reg && t->n_files < t->max_files; i++) {
        struct reg_entry *e = &t->reg[i];
        char dir[PATH_MAX];
        char path[PATH_MAX];
        const char *slash;
        DIR *d;
        struct dirent *de;

        if (e->used)
            continue;
        slash = strrchr(e->path, '/');
        if (slash == NULL)
            tm_strlcpy(dir, ".", sizeof(dir));
        else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - e->path), e->path) >=
                 (int)sizeof(dir))
            continue;
        d = opendir(dir[0] != '\0' ? dir : "/");
        if (d == NULL)
            continue;
        while ((de = readdir(d)) != NULL) {
            struct stat st;
            struct tfile *f;
            uint64_t h;

            if ((uint64_t)de->d_ino != e->ino)
                continue;
            if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
                break;
            if (stat(path, &st) != 0 || (uint64_t)st.st_dev != e->dev ||
                (uint64_t)st.st_ino != e->ino)
                break;
            f = open_file(t, path, &st);
            if (f == NULL)
                break;
            if (e->fp_len > 0 && (fingerprint(f->fd, e->fp_len, &h) != 0 || h != e->fp)) {
                close_file(t, t->n_files - 1);
                break;
            }
            e->used = true;
            f->off = f->ckpt_off = e->off <= (uint64_t)st.st_size ? e->off : 0;
            f->skip = f->off == e->off && e->skip;
            f->rotated = true;
            tm_log_info("tail: finishing rotated '%s' from offset %" PRIu64, path, f->off);
            break;
        }
        closedir(d);
    }
}

static void free_registry(struct tail *t)
{
    for (size_t i = 0; i < t->n_reg; i++)
        free(t->reg[i].path);
    free(t->reg);
    t->reg = NULL;
    t->n_reg = 0;
}

/*
 * Registry format (text, one file per line after a magic line):
 *     tm-tail-registry 1
 *     DEV INO OFFSET SKIP FP_LEN FP PATH
 * decimal DEV, INO, OFFSET; SKIP 0 or 1 (OFFSET is inside a cut line); FP_LEN 0..256 and
 * FP (16 hex digits) the FNV-1a 64 hash of the file's first FP_LEN bytes; PATH the file's
 * name at the checkpoint (newlines replaced), used only to find rotated files again.
 */
/*
 * Reads and checks the registry at path: its mark into mark (zeros for version 1) and, when
 * reg is not NULL, up to max entries into reg (*n of them; paths malloc'd). Returns 1, 0
 * when the file does not exist, or -1 with err: unreadable, or any line malformed.
 */
static int read_registry(const char *path, uint64_t mark[TAIL_MARK_WORDS], struct reg_entry *reg,
                         size_t max, size_t *n, char *err)
{
    FILE *fp;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    bool v1 = false;
    int result = -1;

    mark[0] = mark[1] = 0;
    if (n != NULL)
        *n = 0;
    fp = fopen(path, "r");
    if (fp == NULL) {
        if (errno == ENOENT)
            return 0;
        return tm_err(err, "cannot open '%s': %s", path, strerror(errno));
    }
    while ((len = getline(&line, &cap, fp)) > 0) {
        struct reg_entry e = {0};
        unsigned skip;
        int pos = 0;

        lineno++;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (lineno == 1) {
            v1 = strcmp(line, REGISTRY_MAGIC_V1) == 0;
            if (!v1 && strcmp(line, REGISTRY_MAGIC) != 0) {
                tm_err(err, "'%s': not a tail registry", path);
                goto out;
            }
            continue;
        }
        if (lineno == 2 && !v1) {
            if (sscanf(line, "mark %" SCNu64 " %" SCNu64 "%n", &mark[0], &mark[1], &pos) != 2 ||
                line[pos] != '\0') {
                tm_err(err, "%s:2: malformed mark line", path);
                goto out;
            }
            continue;
        }
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %u %u %16" SCNx64 "%n", &e.dev,
                   &e.ino, &e.off, &skip, &e.fp_len, &e.fp, &pos) != 6 ||
            line[pos] != ' ' || skip > 1 || e.fp_len > FP_MAX) {
            tm_err(err, "%s:%u: malformed registry line", path, lineno);
            goto out;
        }
        if (reg == NULL)
            continue;
        if (*n == max) {
            tm_log_warn("tail: '%s' has more than %zu entries, ignoring the rest", path, max);
            break;
        }
        e.skip = skip == 1;
        e.path = strdup(line + pos + 1);
        if (e.path == NULL) {
            tm_err(err, "out of memory");
            goto out;
        }
        reg[(*n)++] = e;
    }
    if (ferror(fp)) {
        tm_err(err, "cannot read '%s'", path);
        goto out;
    }
    if (lineno < (v1 ? 1u : 2u)) {
        tm_err(err, "'%s' is cut short", path);
        goto out;
    }
    result = 1;
out:
    free(line);
    fclose(fp);
    return result;
}

static int load_registry(struct tail *t, char *err)
{
    t->reg = calloc(t->max_files, sizeof(*t->reg));
    if (t->reg == NULL)
        return tm_err(err, "out of memory");
    return read_registry(t->registry_path, t->mark, t->reg, t->max_files, &t->n_reg, err) < 0 ? -1
                                                                                              : 0;
}

/* Reads every marked file once (one chunk each); re-arms itself while any has more. */
static void run_round(struct tail *t)
{
    bool again = false;

    if (t->need_scan) {
        t->need_scan = false;
        scan(t, false);
    }
    for (size_t i = 0; i < t->n_files; i++) {
        struct tfile *f = t->files[i];
        if (f->more)
            f->more = read_file(t, f);
        again = again || f->more;
    }
    if (again)
        schedule_work(t);
}

static void work_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_round(arg);
}

static struct tfile *find_by_wd(struct tail *t, int wd)
{
    for (size_t i = 0; i < t->n_files; i++)
        if (t->files[i]->wd == wd)
            return t->files[i];
    return NULL;
}

static void inotify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tail *t = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    (void)what;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            struct tfile *f = ev->wd >= 0 ? find_by_wd(t, ev->wd) : NULL;

            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                t->need_scan = true;
                for (size_t i = 0; i < t->n_files; i++)
                    t->files[i]->more = true;
            } else if (f != NULL) {
                f->more = true;
                if (ev->mask & IN_IGNORED)
                    f->wd = -1;
                if (ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB))
                    t->need_scan = true;
            } else if (ev->mask & DIR_MASK) {
                t->need_scan = true;
            }
        }
    }
    schedule_work(t);
}

void tail_rescan(struct tail *t)
{
    uint64_t now;

    scan(t, false);
    t->need_scan = false;
    /* Also checks each fingerprint (read_file), for writes inotify did not report. */
    for (size_t i = 0; i < t->n_files; i++)
        t->files[i]->more = true;
    run_round(t);

    now = now_ms();
    for (size_t i = 0; i < t->n_files;) {
        struct tfile *f = t->files[i];
        struct stat st;

        if (!f->rotated || f->more || now - f->active_ms < t->rotated_idle_ms ||
            fstat(f->fd, &st) != 0) {
            i++;
            continue;
        }
        if ((uint64_t)st.st_size > f->off)
            flush_partial(t, f);
        /* Keep it until its last offset is in the registry, so a crash cannot skip it. */
        if (t->registry_path == NULL || f->ckpt_off == f->off || st.st_nlink == 0)
            close_file(t, i);
        else
            i++;
    }
}

static void rescan_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tail_rescan(arg);
}

/* Newlines would split the registry line; the name is only a hint anyway. */
static void clean_path(char *p)
{
    for (; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = '?';
}

/* The name to record for f: where a rotated file is now (it moved since we opened it). */
static void current_name(const struct tfile *f, char *out, size_t outlen)
{
    static const char deleted[] = " (deleted)";
    char proc[64];
    ssize_t n = -1;

    if (f->rotated) {
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
        n = readlink(proc, out, outlen - 1);
    }
    if (n > 0 && (size_t)n < outlen - 1) {
        out[n] = '\0';
        if ((size_t)n < sizeof(deleted) - 1 ||
            strcmp(out + n - (sizeof(deleted) - 1), deleted) != 0) {
            clean_path(out);
            return;
        }
    }
    tm_strlcpy(out, f->path, outlen);
    clean_path(out);
}

/* Writes the registry to path: atomically, and durably unless fast (no fsync at all). */
static int write_registry(struct tail *t, const char *path, bool fast, char *err)
{
    char name[PATH_MAX];
    char *data = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&data, &len);
    int rc;

    if (fp == NULL)
        return tm_err(err, "out of memory");
    fprintf(fp, "%s\nmark %" PRIu64 " %" PRIu64 "\n", REGISTRY_MAGIC, t->mark[0], t->mark[1]);
    for (size_t i = 0; i < t->n_files; i++) {
        const struct tfile *f = t->files[i];
        current_name(f, name, sizeof(name));
        fprintf(fp, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %d %u %016" PRIx64 " %s\n", f->dev, f->ino,
                f->off, f->skip ? 1 : 0, f->fp_len, f->fp, name);
    }
    if (fclose(fp) != 0) {
        free(data);
        return tm_err(err, "out of memory");
    }
    rc = tm_file_write_atomic(path, data, len, 0600, fast ? TM_FILE_NO_SYNC : 0, err);
    free(data);
    return rc;
}

void tail_set_mark(struct tail *t, const uint64_t mark[TAIL_MARK_WORDS])
{
    memcpy(t->mark, mark, sizeof(t->mark));
}

int tail_checkpoint(struct tail *t, char *err)
{
    if (t->registry_path == NULL)
        return 0;
    if (write_registry(t, t->registry_path, false, err) != 0)
        return -1;
    for (size_t i = 0; i < t->n_files; i++)
        t->files[i]->ckpt_off = t->files[i]->off;
    if (t->fast_path != NULL)
        unlink(t->fast_path); /* older than the registry now */
    return 0;
}

int tail_checkpoint_fast(struct tail *t, char *err)
{
    /* ckpt_off stays: rotated files are kept open until a durable checkpoint covers them */
    return t->fast_path == NULL ? 0 : write_registry(t, t->fast_path, true, err);
}

int tail_registry_mark(const char *path, uint64_t mark[TAIL_MARK_WORDS], char *err)
{
    return read_registry(path, mark, NULL, 0, NULL, err);
}

struct tail *tail_create(struct event_base *base, const struct tail_config *cfg,
                         tail_line_cb line_cb, void *arg, char *err)
{
    struct tail *t = NULL;
    struct timeval tv;

    if (cfg->n_globs == 0 || cfg->globs == NULL || line_cb == NULL) {
        tm_err(err, "tail needs at least one glob and a line callback");
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    t->ifd = -1;
    t->base = base;
    t->line_cb = line_cb;
    t->arg = arg;
    t->start = cfg->start;
    t->max_line = cfg->max_line ? cfg->max_line : DEFAULT_MAX_LINE;
    t->max_files = cfg->max_files ? cfg->max_files : DEFAULT_MAX_FILES;
    t->read_chunk = cfg->read_chunk ? cfg->read_chunk : DEFAULT_READ_CHUNK;
    t->rescan_ms = cfg->rescan_ms ? cfg->rescan_ms : DEFAULT_RESCAN_MS;
    t->rotated_idle_ms = cfg->rotated_idle_ms ? cfg->rotated_idle_ms : DEFAULT_ROTATED_IDLE_MS;
    t->buf_size = t->read_chunk > t->max_line + 2 ? t->read_chunk : t->max_line + 2;

    t->globs = calloc(cfg->n_globs, sizeof(*t->globs));
    t->files = calloc(t->max_files, sizeof(*t->files));
    t->buf = malloc(t->buf_size);
    if (t->globs == NULL || t->files == NULL || t->buf == NULL)
        goto nomem;
    for (size_t i = 0; i < cfg->n_globs; i++) {
        t->globs[i] = strdup(cfg->globs[i]);
        if (t->globs[i] == NULL)
            goto nomem;
        t->n_globs++;
    }
    if (cfg->registry_path != NULL) {
        t->registry_path = strdup(cfg->registry_path);
        if (t->registry_path == NULL)
            goto nomem;
        if (load_registry(t, err) != 0)
            goto fail;
    }
    if (cfg->fast_registry_path != NULL && (t->fast_path = strdup(cfg->fast_registry_path)) == NULL)
        goto nomem;

    t->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (t->ifd < 0) {
        tm_err(err, "inotify: %s", strerror(errno));
        goto fail;
    }
    t->inotify_ev = event_new(base, t->ifd, EV_READ | EV_PERSIST, inotify_cb, t);
    t->work_ev = evtimer_new(base, work_cb, t);
    t->rescan_ev = event_new(base, -1, EV_PERSIST, rescan_cb, t);
    if (t->inotify_ev == NULL || t->work_ev == NULL || t->rescan_ev == NULL)
        goto nomem;
    tv.tv_sec = t->rescan_ms / 1000;
    tv.tv_usec = (t->rescan_ms % 1000) * 1000;
    if (event_add(t->inotify_ev, NULL) != 0 || event_add(t->rescan_ev, &tv) != 0) {
        tm_err(err, "cannot add tail events to the event loop");
        goto fail;
    }

    scan(t, true);
    adopt_rotated(t);
    free_registry(t);
    schedule_work(t);
    return t;

nomem:
    tm_err(err, "out of memory");
fail:
    tail_destroy(t);
    return NULL;
}

void tail_destroy(struct tail *t)
{
    if (t == NULL)
        return;
    if (t->rescan_ev != NULL)
        event_free(t->rescan_ev);
    if (t->work_ev != NULL)
        event_free(t->work_ev);
    if (t->inotify_ev != NULL)
        event_free(t->inotify_ev);
    while (t->n_files > 0)
        close_file(t, t->n_files - 1);
    if (t->ifd >= 0)
        close(t->ifd);
    free_registry(t);
    for (size_t i = 0; i < t->n_globs; i++)
        free(t->globs[i]);
    free(t->globs);
    free(t->files);
    free(t->buf);
    free(t->registry_path);
    free(t->fast_path);
    free(t);
}

void tail_get_stats(const struct tail *t, struct tail_stats *out)
{
    *out = t->stats;
}
