/*
 * spool.c - the agent's disk spool (see spool.h for the model). This file owns the
 * directory cfg->dir:
 *
 *   state                 loss counters, the seq high-water mark and the bulk drop floor
 *   priority/ack          acknowledged position of the priority lane
 *   priority/<seq>.seg    segments, <seq> = first seq they hold, 20 decimal digits
 *   bulk/ack, bulk/<seq>.seg
 *
 * A segment is a run of records, all integers little-endian:
 *
 *   0  u32 magic      "TMR1" live, "TMRX" dropped (corrupt payload, already counted lost)
 *   4  u32 comp_len   bytes of zlib payload after the header
 *   8  u32 raw_len    bytes once inflated (at most RAW_MAX)
 *   12 u32 count      events in the record (at least 1)
 *   16 u64 first_seq  seq of the first event
 *   24 u64 last_seq   seq of the last event
 *   32 u32 crc        CRC-32 of bytes 4..31 and the payload
 *   36 u32 hcrc       CRC-32 of bytes 4..35: the header alone can be trusted
 *   40 payload        zlib stream of count x { u64 seq, u32 len, len bytes of event }
 *
 * Data flow: spool_append copies an event into its lane's pending batch (memory);
 * spool_flush compresses the batch into one record and pwrites it at the end of the
 * lane's last segment, or of a new one once the last is full. spool_read finds the first
 * segment that can hold seq > after_seq in an in-memory index (first/last seq, size,
 * event counts), reads record headers only until it reaches a record with last_seq >
 * after_seq, and inflates from there into one reused buffer. spool_ack persists the
 * position, then deletes segments whose records are all acknowledged.
 *
 * Invariants: seqs rise across a lane's records and segments; every byte below a
 * segment's indexed size is a record whose header CRC held when the spool was opened;
 * files are never longer than their indexed size except while a write is in flight.
 * Open cuts a segment at the first record whose header is unreadable (torn tail), or
 * whose payload fails its CRC at the very end of the last segment. A bad payload CRC
 * anywhere else is a corrupt middle record: its events (those past the acknowledged
 * position) are counted as lost, the state file is saved, and its magic is rewritten to
 * "TMRX" so a later open skips it without counting it again. A corrupt record met by
 * spool_read after open is handled the same way.
 *
 * Counters survive restarts through the state file. Deleting segments (cap, corrupt
 * records) first saves the state with the high-water mark (the last issued seq) and,
 * for the cap, the drop floor (last seq of the deleted segment), then unlinks: a segment
 * that reappears after a crash or power loss is deleted again at open without being
 * counted twice, and next_seq = max(seqs on disk, acked positions, high-water mark) + 1
 * never hands out a seq twice.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tm/tm_common.h"

#define BATCH_BYTES (256u * 1024)               /* a pending batch is written at this size */
#define EVENT_MAX (256u * 1024)                 /* largest event spool_append takes */
#define RAW_MAX (1024u * 1024)                  /* hard limit on a record's inflated size */
#define COMP_MAX (RAW_MAX + RAW_MAX / 256 + 64) /* above zlib's compressBound(RAW_MAX) */
#define SEGMENT_DEFAULT (4u * 1024 * 1024)
#define REC_HDR 40
#define EV_HDR 12

#define REC_LIVE 0x31524d54u    /* "TMR1" */
#define REC_DEAD 0x58524d54u    /* "TMRX" */
#define ACK_MAGIC 0x31414d54u   /* "TMA1" */
#define ACK_SIZE 20             /* magic, u32 0, u64 acked, u32 crc of bytes 0..15 */
#define STATE_MAGIC 0x31534d54u /* "TMS1" */
#define STATE_SIZE 44           /* magic, u32 0, u64 lost events, lost segments, hwm, floor, crc */

static const char *const lane_names[SPOOL_LANES] = {"priority", "bulk"};

struct buf {
    unsigned char *p;
    size_t len;
    size_t cap;
};

/* One segment file in the index. */
struct seg {
    uint64_t name;    /* seq in the file name */
    uint64_t first;   /* lowest seq of any record header in it, live or dropped */
    uint64_t last;    /* highest seq of any record header in it */
    uint64_t events;  /* events in live records */
    uint64_t unacked; /* events in live records past the lane's acknowledged position */
    uint64_t size;    /* bytes of records */
};

struct lane {
    char dir[PATH_MAX];
    struct seg *segs; /* ordered by seq */
    size_t nsegs;
    size_t cap_segs;
    uint64_t bytes; /* sum of segs[].size */
    uint64_t acked;
    int fd; /* the last segment, open for writing, or -1 */
    bool fd_dirty;
    bool dir_dirty;
    struct buf pend; /* pending batch: events in the payload format */
    uint32_t pend_count;
    uint64_t pend_first;
    uint64_t pend_last;
    /* Read hint: in segment rh_seg, every record before rh_off has last_seq <= rh_last. */
    bool rh_ok;
    uint64_t rh_seg, rh_off, rh_last;
    /* Ack cursor: in segment ac_seg, every record before ac_off is acknowledged and
     * holds ac_before live events. Moves only forward. */
    bool ac_ok;
    uint64_t ac_seg, ac_off, ac_before;
};

struct spool {
    char dir[PATH_MAX];
    uint64_t max_bytes;
    uint64_t segment_bytes;
    enum spool_fsync fsync;
    int level;
    struct lane lanes[SPOOL_LANES];
    uint64_t next_seq;
    uint64_t lost_events;
    uint64_t lost_segments;
    uint64_t torn_bytes;
    uint64_t hwm;        /* persisted high-water mark: no seq <= hwm is handed out again */
    uint64_t drop_floor; /* bulk segments with last_seq <= drop_floor were dropped */
    struct buf comp;     /* compressed record being written or read */
    struct buf raw;      /* the one inflate buffer */
};

/* A record header as read from disk. */
struct rec {
    unsigned char h[REC_HDR];
    uint32_t magic;
    uint32_t comp_len;
    uint32_t raw_len;
    uint32_t count;
    uint64_t first;
    uint64_t last;
    uint32_t crc;
};

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t crc(uint32_t c, const void *p, size_t n)
{
    return (uint32_t)crc32(c, (const Bytef *)p, (uInt)n);
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Grows b to hold at least n bytes: doubling while small, then in 64 KiB steps so that
 * a batch just over BATCH_BYTES does not reserve twice that. */
static int buf_reserve(struct buf *b, size_t n, char *err)
{
    size_t cap = b->cap ? b->cap : 4096;
    unsigned char *p;

    if (n <= b->cap)
        return 0;
    while (cap < n)
        cap = cap < 65536 ? cap * 2 : cap + 65536;
    p = realloc(b->p, cap);
    if (p == NULL)
        return tm_err(err, "out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static int sys_err(char *err, const char *what, const char *path)
{
    return tm_err(err, "%s '%s': %s", what, path, strerror(errno));
}

static int join(char *out, const char *dir, const char *name, char *err)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX)
        return tm_err(err, "path too long: '%s/%s'", dir, name);
    return 0;
}

static int seg_path(char *out, const struct lane *l, uint64_t name, char *err)
{
    int n = snprintf(out, PATH_MAX, "%s/%020" PRIu64 ".seg", l->dir, name);
    if (n < 0 || n >= PATH_MAX)
        return tm_err(err, "path too long: '%s'", l->dir);
    return 0;
}

static int pwrite_full(int fd, const void *p, size_t n, uint64_t off)
{
    const unsigned char *c = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Reads exactly n bytes at off; a short file is EIO (the index says the bytes exist). */
static int pread_full(int fd, void *p, size_t n, uint64_t off)
{
    unsigned char *c = p;
    while (n > 0) {
        ssize_t r = pread(fd, c, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int fsync_dir(const char *dir, char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return sys_err(err, "cannot open", dir);
    if (fsync(fd) != 0)
        rc = sys_err(err, "cannot fsync", dir);
    close(fd);
    return rc;
}

/* Replaces dir/name with data: write dir/name.tmp, fsync, rename, fsync dir. */
static int write_atomic(const char *dir, const char *name, const void *data, size_t len, char *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    int fd = -1;
    int rc = -1;

    if (join(path, dir, name, err) != 0)
        goto out;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        tm_err(err, "path too long: '%s'", path);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        sys_err(err, "cannot create", tmp);
        goto out;
    }
    if (pwrite_full(fd, data, len, 0) != 0) {
        sys_err(err, "cannot write", tmp);
        goto out;
    }
    if (fsync(fd) != 0) {
        sys_err(err, "cannot fsync", tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        sys_err(err, "cannot close", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        sys_err(err, "cannot rename", tmp);
        goto out;
    }
    rc = fsync_dir(dir, err);
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Reads a small file of exactly len bytes. Returns 0, 1 when it does not exist, or -1. */
static int read_small(const char *path, unsigned char *data, size_t len, char *err)
{
    unsigned char extra;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;

    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        return sys_err(err, "cannot open", path);
    }
    if (pread_full(fd, data, len, 0) != 0) {
        if (errno == EIO)
            tm_err(err, "corrupt '%s': shorter than %zu bytes", path, len);
        else
            sys_err(err, "cannot read", path);
        goto out;
    }
    if (pread(fd, &extra, 1, (off_t)len) != 0) {
        tm_err(err, "corrupt '%s': longer than %zu bytes", path, len);
        goto out;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

static int save_state(struct spool *s, char *err)
{
    unsigned char b[STATE_SIZE];

    put32(b, STATE_MAGIC);
    put32(b + 4, 0);
    put64(b + 8, s->lost_events);
    put64(b + 16, s->lost_segments);
    put64(b + 24, s->hwm);
    put64(b + 32, s->drop_floor);
    put32(b + 40, crc(0, b, 40));
    return write_atomic(s->dir, "state", b, sizeof(b), err);
}

static int load_state(struct spool *s, char *err)
{
    char path[PATH_MAX];
    unsigned char b[STATE_SIZE];
    int rc;

    if (join(path, s->dir, "state", err) != 0)
        return -1;
    rc = read_small(path, b, sizeof(b), err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (get32(b) != STATE_MAGIC || get32(b + 40) != crc(0, b, 40))
        return tm_err(err, "corrupt '%s': bad magic or crc", path);
    s->lost_events = get64(b + 8);
    s->lost_segments = get64(b + 16);
    s->hwm = get64(b + 24);
    s->drop_floor = get64(b + 32);
    return 0;
}

static int save_ack(const struct lane *l, uint64_t seq, char *err)
{
    unsigned char b[ACK_SIZE];

    put32(b, ACK_MAGIC);
    put32(b + 4, 0);
    put64(b + 8, seq);
    put32(b + 16, crc(0, b, 16));
    return write_atomic(l->dir, "ack", b, sizeof(b), err);
}

static int load_ack(struct lane *l, char *err)
{
    char path[PATH_MAX];
    unsigned char b[ACK_SIZE];
    int rc;

    if (join(path, l->dir, "ack", err) != 0)
        return -1;
    rc = read_small(path, b, sizeof(b), err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (get32(b) != ACK_MAGIC || get32(b + 16) != crc(0, b, 16))
        return tm_err(err, "corrupt '%s': bad magic or crc", path);
    l->acked = get64(b + 8);
    return 0;
}

/*
 * Reads and checks the record header at off of a segment of size bytes. Returns 0, 1 when
 * there is no valid header there (torn or corrupt: the segment ends at off), or -1 with
 * errno on I/O errors.
 */
static int read_rec(int fd, uint64_t off, uint64_t size, struct rec *r)
{
    if (size - off < REC_HDR)
        return 1;
    if (pread_full(fd, r->h, REC_HDR, off) != 0)
        return -1;
    r->magic = get32(r->h);
    r->comp_len = get32(r->h + 4);
    r->raw_len = get32(r->h + 8);
    r->count = get32(r->h + 12);
    r->first = get64(r->h + 16);
    r->last = get64(r->h + 24);
    r->crc = get32(r->h + 32);
    if (r->magic != REC_LIVE && r->magic != REC_DEAD)
        return 1;
    if (get32(r->h + 36) != crc(0, r->h + 4, 32))
        return 1;
    if (r->count == 0 || r->comp_len == 0 || r->comp_len > COMP_MAX || r->raw_len > RAW_MAX ||
        r->raw_len / EV_HDR < r->count || r->first == 0 || r->first > r->last ||
        r->last - r->first < r->count - 1u)
        return 1;
    if (r->comp_len > size - off - REC_HDR)
        return 1;
    return 0;
}

static uint64_t rec_end(uint64_t off, const struct rec *r)
{
    return off + REC_HDR + r->comp_len;
}

/* Reads the payload of r into s->comp. Returns 0, 1 when its CRC fails, -1 on I/O. */
static int read_payload(struct spool *s, int fd, uint64_t off, const struct rec *r,
                        const char *path, char *err)
{
    if (buf_reserve(&s->comp, r->comp_len, err) != 0)
        return -1;
    if (pread_full(fd, s->comp.p, r->comp_len, off + REC_HDR) != 0)
        return sys_err(err, "cannot read", path);
    s->comp.len = r->comp_len;
    if (crc(crc(0, r->h + 4, 28), s->comp.p, r->comp_len) != r->crc)
        return 1;
    return 0;
}

/*
 * Inflates s->comp into s->raw (never more than r->raw_len <= RAW_MAX bytes) and checks
 * the event list against the header. Returns 0, or 1 when the record is corrupt.
 */
static int decode(struct spool *s, const struct rec *r, char *err)
{
    uLongf out = r->raw_len;
    size_t pos = 0;
    uint32_t n = 0;
    uint64_t prev = 0;

    if (buf_reserve(&s->raw, r->raw_len, err) != 0)
        return -1;
    if (uncompress(s->raw.p, &out, s->comp.p, s->comp.len) != Z_OK || out != r->raw_len)
        return 1;
    s->raw.len = r->raw_len;
    while (pos < s->raw.len) {
        uint64_t seq;
        uint32_t len;
        if (s->raw.len - pos < EV_HDR)
            return 1;
        seq = get64(s->raw.p + pos);
        len = get32(s->raw.p + pos + 8);
        if (len > s->raw.len - pos - EV_HDR)
            return 1;
        if (n == 0 ? seq != r->first : seq <= prev)
            return 1;
        prev = seq;
        n++;
        pos += EV_HDR + len;
    }
    return n == r->count && prev == r->last ? 0 : 1;
}

/* Events of the decoded record with seq <= x. */
static uint64_t count_upto(const struct spool *s, uint64_t x)
{
    uint64_t n = 0;
    for (size_t pos = 0; pos < s->raw.len; pos += EV_HDR + get32(s->raw.p + pos + 8)) {
        if (get64(s->raw.p + pos) > x)
            break;
        n++;
    }
    return n;
}

/*
 * A record with a sound header but a bad payload: counts its events past the lane's
 * acknowledged position as lost (exact unless the position falls inside the record; then
 * an upper bound), saves the state, then marks the record dropped on disk so that it is
 * neither read nor counted again. in_index says whether g already counts its events.
 */
static int drop_record(struct spool *s, struct lane *l, struct seg *g, bool in_index, int fd,
                       uint64_t off, const struct rec *r, const char *path, char *err)
{
    unsigned char dead[4];
    uint64_t lost = r->count;

    if (r->first <= l->acked)
        lost = r->last <= l->acked ? 0 : (r->last - l->acked < lost ? r->last - l->acked : lost);
    s->lost_events += lost;
    s->hwm = max64(s->hwm, s->next_seq - 1);
    if (save_state(s, err) != 0) {
        s->lost_events -= lost;
        return -1;
    }
    if (in_index) {
        g->events -= r->count;
        g->unacked -= lost < g->unacked ? lost : g->unacked;
    }
    put32(dead, REC_DEAD);
    if (pwrite_full(fd, dead, sizeof(dead), off) != 0)
        return sys_err(err, "cannot write", path);
    return 0;
}

static void close_fd(struct lane *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    l->fd_dirty = false;
}

/* Deletes segment i (the file and its index entry). */
static int seg_remove(struct lane *l, size_t i, char *err)
{
    char path[PATH_MAX];

    if (seg_path(path, l, l->segs[i].name, err) != 0)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return sys_err(err, "cannot delete", path);
    if (i == l->nsegs - 1)
        close_fd(l);
    l->bytes -= l->segs[i].size;
    memmove(&l->segs[i], &l->segs[i + 1], (l->nsegs - i - 1) * sizeof(l->segs[0]));
    l->nsegs--;
    return 0;
}

static int seg_push(struct lane *l, uint64_t name, char *err)
{
    if (l->nsegs == l->cap_segs) {
        size_t cap = l->cap_segs ? l->cap_segs * 2 : 16;
        struct seg *p = realloc(l->segs, cap * sizeof(*p));
        if (p == NULL)
            return tm_err(err, "out of memory (%zu segments)", cap);
        l->segs = p;
        l->cap_segs = cap;
    }
    memset(&l->segs[l->nsegs], 0, sizeof(l->segs[0]));
    l->segs[l->nsegs].name = name;
    l->nsegs++;
    return 0;
}

/*
 * Open: checks every record of segment g, cuts it at a torn or unreadable record, counts
 * and marks corrupt middle records, and fills g's seqs, events and unacked count.
 */
static int seg_scan(struct spool *s, struct lane *l, struct seg *g, bool is_last,
                    uint64_t prev_last, char *err)
{
    char path[PATH_MAX];
    struct stat st;
    struct rec r;
    uint64_t off = 0, size;
    int fd = -1, rc = -1;

    if (seg_path(path, l, g->name, err) != 0)
        return -1;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        sys_err(err, "cannot open", path);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        sys_err(err, "cannot stat", path);
        goto out;
    }
    size = (uint64_t)st.st_size;
    while (off < size) {
        int hr = read_rec(fd, off, size, &r);
        if (hr < 0) {
            sys_err(err, "cannot read", path);
            goto out;
        }
        if (hr > 0 || r.first <= prev_last)
            break; /* torn tail or garbage: the segment ends here */
        if (r.magic == REC_LIVE) {
            int pr = read_payload(s, fd, off, &r, path, err);
            if (pr < 0)
                goto out;
            if (pr > 0 && is_last && rec_end(off, &r) == size)
                break; /* the last record, half written */
            if (pr == 0 && r.first <= l->acked && r.last > l->acked)
                pr = decode(s, &r, err);
            if (pr < 0)
                goto out;
            if (pr > 0) {
                if (drop_record(s, l, g, false, fd, off, &r, path, err) != 0)
                    goto out;
            } else {
                g->events += r.count;
                if (r.first > l->acked)
                    g->unacked += r.count;
                else if (r.last > l->acked)
                    g->unacked += r.count - count_upto(s, l->acked);
            }
        }
        if (off == 0)
            g->first = r.first;
        g->last = r.last;
        prev_last = r.last;
        off = rec_end(off, &r);
    }
    if (off < size) {
        if (ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0) {
            sys_err(err, "cannot truncate", path);
            goto out;
        }
        s->torn_bytes += size - off;
    }
    g->size = off;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Parses "<20 digits>.seg". */
static int parse_seg_name(const char *name, uint64_t *seq)
{
    uint64_t v = 0;

    if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0)
        return -1;
    for (int i = 0; i < 20; i++) {
        unsigned d = (unsigned)(name[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *seq = v;
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const struct seg *)a)->name, y = ((const struct seg *)b)->name;
    return x < y ? -1 : x > y;
}

/* Open: lists, checks and indexes the lane's segments; finishes interrupted deletions. */
static int lane_load(struct spool *s, struct lane *l, bool bulk, char *err)
{
    char path[PATH_MAX];
    DIR *d = NULL;
    struct dirent *e;
    uint64_t prev_last = 0;
    int rc = -1;

    if (load_ack(l, err) != 0)
        return -1;
    if (join(path, l->dir, "ack.tmp", err) != 0)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT)
        return sys_err(err, "cannot delete", path);
    d = opendir(l->dir);
    if (d == NULL)
        return sys_err(err, "cannot open", l->dir);
    for (;;) {
        uint64_t seq;
        errno = 0;
        e = readdir(d);
        if (e == NULL) {
            if (errno != 0) {
                sys_err(err, "cannot read", l->dir);
                goto out;
            }
            break;
        }
        if (parse_seg_name(e->d_name, &seq) == 0 && seg_push(l, seq, err) != 0)
            goto out;
    }
    if (l->nsegs > 0)
        qsort(l->segs, l->nsegs, sizeof(l->segs[0]), cmp_seg);
    for (size_t i = 0; i < l->nsegs; i++) {
        if (seg_scan(s, l, &l->segs[i], i == l->nsegs - 1, prev_last, err) != 0)
            goto out;
        if (l->segs[i].size > 0)
            prev_last = l->segs[i].last;
        l->bytes += l->segs[i].size;
    }
    for (size_t i = 0; i < l->nsegs;) {
        const struct seg *g = &l->segs[i];
        if (g->size == 0 || g->last <= l->acked || (bulk && g->last <= s->drop_floor)) {
            if (seg_remove(l, i, err) != 0)
                goto out;
        } else {
            i++;
        }
    }
    rc = 0;
out:
    if (d != NULL)
        closedir(d);
    return rc;
}

static int mkdir_p(const char *dir, char *err)
{
    char path[PATH_MAX];

    if (tm_strlcpy(path, dir, sizeof(path)) != 0)
        return tm_err(err, "path too long: '%s'", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return sys_err(err, "cannot create", path);
        *p = c;
        if (c == '\0')
            break;
    }
    return 0;
}

struct spool *spool_open(const struct spool_config *cfg, char *err)
{
    struct spool *s = NULL;
    char path[PATH_MAX];
    uint64_t top;
    bool created = false;

    if (cfg == NULL || cfg->dir == NULL || cfg->dir[0] == '\0') {
        tm_err(err, "spool directory not set");
        return NULL;
    }
    if (cfg->compression_level < 1 || cfg->compression_level > 9) {
        tm_err(err, "compression level %d is not in 1..9", cfg->compression_level);
        return NULL;
    }
    if (cfg->fsync != SPOOL_FSYNC_ALWAYS && cfg->fsync != SPOOL_FSYNC_INTERVAL &&
        cfg->fsync != SPOOL_FSYNC_NEVER) {
        tm_err(err, "unknown fsync policy %d", (int)cfg->fsync);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        tm_err(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < SPOOL_LANES; i++)
        s->lanes[i].fd = -1;
    if (tm_strlcpy(s->dir, cfg->dir, sizeof(s->dir)) != 0) {
        tm_err(err, "path too long: '%s'", cfg->dir);
        goto fail;
    }
    s->max_bytes = cfg->max_bytes;
    s->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : SEGMENT_DEFAULT;
    s->fsync = cfg->fsync;
    s->level = cfg->compression_level;
    if (mkdir_p(s->dir, err) != 0 || load_state(s, err) != 0)
        goto fail;
    if (join(path, s->dir, "state.tmp", err) != 0)
        goto fail;
    if (unlink(path) != 0 && errno != ENOENT) {
        sys_err(err, "cannot delete", path);
        goto fail;
    }
    for (int i = 0; i < SPOOL_LANES; i++) {
        struct lane *l = &s->lanes[i];
        if (join(l->dir, s->dir, lane_names[i], err) != 0)
            goto fail;
        if (mkdir(l->dir, 0700) == 0) {
            created = true;
        } else if (errno != EEXIST) {
            sys_err(err, "cannot create", l->dir);
            goto fail;
        }
    }
    if (created && fsync_dir(s->dir, err) != 0)
        goto fail;
    /* Records dropped while loading save the state, which needs next_seq: give it the
     * best value known so far (it only feeds the high-water mark). */
    s->next_seq = max64(s->hwm, max64(s->lanes[0].acked, s->lanes[1].acked)) + 1;
    for (int i = 0; i < SPOOL_LANES; i++)
        if (lane_load(s, &s->lanes[i], i == SPOOL_BULK, err) != 0)
            goto fail;
    top = max64(s->hwm, max64(s->lanes[0].acked, s->lanes[1].acked));
    for (int i = 0; i < SPOOL_LANES; i++) {
        const struct lane *l = &s->lanes[i];
        if (l->nsegs > 0)
            top = max64(top, l->segs[l->nsegs - 1].last);
    }
    s->next_seq = top + 1;
    return s;
fail:
    for (int i = 0; i < SPOOL_LANES; i++) {
        close_fd(&s->lanes[i]);
        free(s->lanes[i].segs);
    }
    free(s->comp.p);
    free(s->raw.p);
    free(s);
    return NULL;
}

/* fsyncs a lane's written segment and new directory entries. */
static int lane_sync(struct lane *l, char *err)
{
    if (l->fd >= 0 && l->fd_dirty) {
        char path[PATH_MAX];
        if (fsync(l->fd) != 0) {
            if (seg_path(path, l, l->segs[l->nsegs - 1].name, err) != 0)
                return -1;
            return sys_err(err, "cannot fsync", path);
        }
        l->fd_dirty = false;
    }
    if (l->dir_dirty) {
        if (fsync_dir(l->dir, err) != 0)
            return -1;
        l->dir_dirty = false;
    }
    return 0;
}

/*
 * Writes the lane's pending batch as one record at the end of its last segment, or of a
 * new one when the last is full. On failure nothing is written (a partial write is cut
 * off again) and the batch stays pending.
 */
static int write_batch(struct spool *s, struct lane *l, char *err)
{
    char path[PATH_MAX];
    unsigned char *h;
    uLongf clen;
    uint64_t reclen, off = 0;
    struct seg *cur = l->nsegs > 0 ? &l->segs[l->nsegs - 1] : NULL;
    bool fresh;

    if (l->pend_count == 0)
        return 0;
    clen = compressBound((uLong)l->pend.len);
    if (buf_reserve(&s->comp, REC_HDR + clen, err) != 0)
        return -1;
    if (compress2(s->comp.p + REC_HDR, &clen, l->pend.p, (uLong)l->pend.len, s->level) != Z_OK)
        return tm_err(err, "cannot compress a batch of %" PRIu32 " events", l->pend_count);
    h = s->comp.p;
    put32(h, REC_LIVE);
    put32(h + 4, (uint32_t)clen);
    put32(h + 8, (uint32_t)l->pend.len);
    put32(h + 12, l->pend_count);
    put64(h + 16, l->pend_first);
    put64(h + 24, l->pend_last);
    put32(h + 32, crc(crc(0, h + 4, 28), h + REC_HDR, clen));
    put32(h + 36, crc(0, h + 4, 32));
    reclen = REC_HDR + clen;

    fresh = cur == NULL || (cur->size > 0 && cur->size + reclen > s->segment_bytes);
    if (fresh) {
        if (s->fsync != SPOOL_FSYNC_NEVER && lane_sync(l, err) != 0)
            return -1;
        close_fd(l);
        if (seg_push(l, l->pend_first, err) != 0)
            return -1;
        l->nsegs--; /* reserved; indexed once the record is written */
        if (seg_path(path, l, l->pend_first, err) != 0)
            return -1;
        l->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (l->fd < 0)
            return sys_err(err, "cannot create", path);
    } else {
        if (seg_path(path, l, cur->name, err) != 0)
            return -1;
        if (l->fd < 0) {
            l->fd = open(path, O_WRONLY | O_CLOEXEC);
            if (l->fd < 0)
                return sys_err(err, "cannot open", path);
        }
        off = cur->size;
    }
    if (pwrite_full(l->fd, s->comp.p, reclen, off) != 0) {
        int saved = errno;
        /* Best effort, the write error is what gets reported: should the cleanup fail,
         * the next record overwrites the partial one at the same offset, and should the
         * process die first, open deletes an empty segment or cuts the torn tail. */
        if (fresh) {
            close_fd(l);
            (void)unlink(path);
        } else {
            (void)ftruncate(l->fd, (off_t)off);
        }
        errno = saved;
        return sys_err(err, "cannot write", path);
    }
    if (fresh) {
        cur = &l->segs[l->nsegs++];
        memset(cur, 0, sizeof(*cur));
        cur->name = cur->first = l->pend_first;
        l->dir_dirty = true;
    }
    cur->last = l->pend_last;
    cur->size += reclen;
    cur->events += l->pend_count;
    cur->unacked += l->pend_count;
    if (l->pend_first <= l->acked) {
        /* Acknowledged before they were flushed (spool_ack allows any issued seq). */
        for (size_t pos = 0; pos < l->pend.len; pos += EV_HDR + get32(l->pend.p + pos + 8))
            if (get64(l->pend.p + pos) <= l->acked)
                cur->unacked--;
    }
    l->bytes += reclen;
    l->fd_dirty = true;
    l->pend.len = 0;
    l->pend_count = 0;
    return 0;
}

/*
 * The bulk cap: deletes the oldest bulk segments (the open one too, should it alone be
 * over the cap) until the lane fits, counting their unacknowledged events as lost. The
 * state is saved before each unlink, so a crash in between never counts a loss twice.
 */
static int apply_cap(struct spool *s, char *err)
{
    struct lane *l = &s->lanes[SPOOL_BULK];

    while (s->max_bytes > 0 && l->bytes > s->max_bytes && l->nsegs > 0) {
        const struct seg *g = &l->segs[0];
        uint64_t ev = s->lost_events, sg = s->lost_segments, old_floor = s->drop_floor;

        s->lost_events += g->unacked;
        s->lost_segments++;
        s->drop_floor = max64(s->drop_floor, g->last);
        s->hwm = max64(s->hwm, s->next_seq - 1);
        if (save_state(s, err) != 0) {
            s->lost_events = ev;
            s->lost_segments = sg;
            s->drop_floor = old_floor;
            return -1;
        }
        if (seg_remove(l, 0, err) != 0)
            return -1;
    }
    return 0;
}

void spool_close(struct spool *s)
{
    char err[TM_ERR_LEN];

    if (s == NULL)
        return;
    /* Errors cannot be reported from here: whatever was not written is lost, and
     * whatever was written but not synced is cut by the next open if it is torn. */
    (void)spool_flush(s, err);
    for (int i = 0; i < SPOOL_LANES; i++) {
        struct lane *l = &s->lanes[i];
        (void)lane_sync(l, err);
        close_fd(l);
        free(l->segs);
        free(l->pend.p);
    }
    free(s->comp.p);
    free(s->raw.p);
    free(s);
}

uint64_t spool_next_seq(const struct spool *s)
{
    return s->next_seq;
}

int spool_append(struct spool *s, enum spool_lane lane, const void *data, size_t len, char *err)
{
    struct lane *l;
    size_t old_len;
    uint64_t old_last;

    if (lane != SPOOL_PRIORITY && lane != SPOOL_BULK)
        return tm_err(err, "unknown spool lane %d", (int)lane);
    if (len > EVENT_MAX)
        return tm_err(err, "event of %zu bytes is over the limit of %u", len, EVENT_MAX);
    l = &s->lanes[lane];
    if (buf_reserve(&l->pend, l->pend.len + EV_HDR + len, err) != 0)
        return -1;
    old_len = l->pend.len;
    old_last = l->pend_last;
    put64(l->pend.p + l->pend.len, s->next_seq);
    put32(l->pend.p + l->pend.len + 8, (uint32_t)len);
    if (len > 0)
        memcpy(l->pend.p + l->pend.len + EV_HDR, data, len);
    l->pend.len += EV_HDR + len;
    if (l->pend_count++ == 0)
        l->pend_first = s->next_seq;
    l->pend_last = s->next_seq++;
    /* Only written here; fsync and the cap follow at the next spool_flush. */
    if (l->pend.len >= BATCH_BYTES && write_batch(s, l, err) != 0) {
        l->pend.len = old_len;
        l->pend_count--;
        l->pend_last = old_last;
        s->next_seq--;
        return -1;
    }
    return 0;
}

int spool_flush(struct spool *s, char *err)
{
    for (int i = 0; i < SPOOL_LANES; i++)
        if (write_batch(s, &s->lanes[i], err) != 0)
            return -1;
    if (s->fsync == SPOOL_FSYNC_ALWAYS && spool_sync(s, err) != 0)
        return -1;
    return apply_cap(s, err);
}

int spool_sync(struct spool *s, char *err)
{
    for (int i = 0; i < SPOOL_LANES; i++)
        if (lane_sync(&s->lanes[i], err) != 0)
            return -1;
    return 0;
}

/* Where spool_read can start in segment g to find seq > after: an offset and an upper
 * bound on the last seq of the records before it. */
static uint64_t read_start(const struct lane *l, const struct seg *g, uint64_t after,
                           uint64_t *before_last)
{
    uint64_t off = 0;

    *before_last = 0;
    if (l->rh_ok && l->rh_seg == g->name && l->rh_last <= after) {
        off = l->rh_off;
        *before_last = l->rh_last;
    }
    if (l->ac_ok && l->ac_seg == g->name && l->ac_off > off) {
        off = l->ac_off;
        *before_last = l->acked;
    }
    return off;
}

static void set_hint(struct lane *l, uint64_t seg, uint64_t off, uint64_t before_last)
{
    l->rh_ok = true;
    l->rh_seg = seg;
    l->rh_off = off;
    l->rh_last = before_last;
}

long spool_read(struct spool *s, enum spool_lane lane, uint64_t after_seq, size_t max,
                spool_event_cb cb, void *arg, char *err)
{
    char path[PATH_MAX];
    struct lane *l;
    uint64_t after;
    size_t n = 0;
    bool stop = false;
    int fd = -1;
    long result = -1;

    if (lane != SPOOL_PRIORITY && lane != SPOOL_BULK)
        return tm_err(err, "unknown spool lane %d", (int)lane);
    if (cb == NULL)
        return tm_err(err, "no callback");
    l = &s->lanes[lane];
    after = max64(after_seq, l->acked);
    for (size_t i = 0; i < l->nsegs && !stop && n < max; i++) {
        struct seg *g = &l->segs[i];
        uint64_t before_last, off;

        if (g->last <= after || g->events == 0)
            continue;
        if (seg_path(path, l, g->name, err) != 0)
            goto out;
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            sys_err(err, "cannot open", path);
            goto out;
        }
        off = read_start(l, g, after, &before_last);
        while (off < g->size && !stop && n < max) {
            struct rec r;
            uint64_t next;
            size_t pos;
            int rc = read_rec(fd, off, g->size, &r);

            if (rc != 0) {
                if (rc < 0)
                    sys_err(err, "cannot read", path);
                else
                    tm_err(err, "corrupt record header in '%s' at offset %" PRIu64, path, off);
                goto out;
            }
            next = rec_end(off, &r);
            if (r.magic == REC_DEAD || r.last <= after) {
                before_last = max64(before_last, r.last);
                off = next;
                set_hint(l, g->name, off, before_last);
                continue;
            }
            rc = read_payload(s, fd, off, &r, path, err);
            if (rc == 0)
                rc = decode(s, &r, err);
            if (rc < 0)
                goto out;
            if (rc > 0) {
                if (drop_record(s, l, g, true, fd, off, &r, path, err) != 0)
                    goto out;
                continue; /* the same offset again, now a dropped record */
            }
            set_hint(l, g->name, off, before_last);
            for (pos = 0; pos < s->raw.len && !stop && n < max;) {
                uint64_t seq = get64(s->raw.p + pos);
                uint32_t len = get32(s->raw.p + pos + 8);
                const char *data = (const char *)s->raw.p + pos + EV_HDR;

                pos += EV_HDR + len;
                if (seq <= after)
                    continue;
                n++;
                if (cb(seq, data, len, arg) != 0)
                    stop = true;
            }
            before_last = max64(before_last, r.last);
            off = next;
            if (pos == s->raw.len)
                set_hint(l, g->name, off, before_last);
        }
        close(fd);
        fd = -1;
    }
    result = (long)n;
out:
    if (fd >= 0)
        close(fd);
    return result;
}

/*
 * Moves the lane's ack cursor through segment g up to the acknowledged position and
 * recomputes g->unacked: whole records by their headers, the one the position falls in
 * by inflating it.
 */
static int ack_advance(struct spool *s, struct lane *l, struct seg *g, char *err)
{
    char path[PATH_MAX];
    uint64_t partial = 0;
    int fd = -1, rc = -1;

    if (!l->ac_ok || l->ac_seg != g->name) {
        l->ac_ok = true;
        l->ac_seg = g->name;
        l->ac_off = 0;
        l->ac_before = 0;
    }
    if (seg_path(path, l, g->name, err) != 0)
        return -1;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, "cannot open", path);
    while (l->ac_off < g->size) {
        struct rec r;
        int hr = read_rec(fd, l->ac_off, g->size, &r);
        if (hr != 0) {
            if (hr < 0)
                sys_err(err, "cannot read", path);
            else
                tm_err(err, "corrupt record header in '%s' at offset %" PRIu64, path, l->ac_off);
            goto out;
        }
        if (r.first > l->acked)
            break;
        if (r.magic == REC_LIVE && r.last > l->acked) {
            int pr = read_payload(s, fd, l->ac_off, &r, path, err);
            if (pr == 0)
                pr = decode(s, &r, err);
            if (pr < 0)
                goto out;
            if (pr > 0) {
                if (drop_record(s, l, g, true, fd, l->ac_off, &r, path, err) != 0)
                    goto out;
            } else {
                partial = count_upto(s, l->acked);
            }
            break;
        }
        if (r.magic == REC_LIVE)
            l->ac_before += r.count;
        l->ac_off = rec_end(l->ac_off, &r);
    }
    g->unacked = g->events - l->ac_before - partial;
    rc = 0;
out:
    close(fd);
    return rc;
}

int spool_ack(struct spool *s, enum spool_lane lane, uint64_t seq, char *err)
{
    struct lane *l;

    if (lane != SPOOL_PRIORITY && lane != SPOOL_BULK)
        return tm_err(err, "unknown spool lane %d", (int)lane);
    l = &s->lanes[lane];
    if (seq <= l->acked)
        return 0;
    if (seq >= s->next_seq)
        return tm_err(err,
                      "cannot acknowledge seq %" PRIu64 ": the last one handed out is %" PRIu64,
                      seq, s->next_seq - 1);
    if (save_ack(l, seq, err) != 0)
        return -1;
    l->acked = seq;
    while (l->nsegs > 0 && l->segs[0].last <= seq)
        if (seg_remove(l, 0, err) != 0)
            return -1;
    if (l->nsegs > 0 && l->segs[0].first <= seq)
        return ack_advance(s, l, &l->segs[0], err);
    return 0;
}

size_t spool_pending_bytes(const struct spool *s)
{
    return s->lanes[SPOOL_PRIORITY].pend.len + s->lanes[SPOOL_BULK].pend.len;
}

uint64_t spool_lane_last(const struct spool *s, enum spool_lane lane)
{
    const struct lane *l;
    uint64_t last;

    if (lane != SPOOL_PRIORITY && lane != SPOOL_BULK)
        return 0;
    l = &s->lanes[lane];
    last = l->acked;
    for (size_t i = l->nsegs; i > 0; i--)
        if (l->segs[i - 1].size > 0) { /* seqs rise across segments */
            last = max64(last, l->segs[i - 1].last);
            break;
        }
    if (lane == SPOOL_BULK)
        last = max64(last, s->drop_floor);
    return last;
}

uint64_t spool_acked(const struct spool *s, enum spool_lane lane)
{
    if (lane != SPOOL_PRIORITY && lane != SPOOL_BULK)
        return 0;
    return s->lanes[lane].acked;
}

void spool_get_stats(const struct spool *s, struct spool_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->next_seq = s->next_seq;
    for (int i = 0; i < SPOOL_LANES; i++) {
        const struct lane *l = &s->lanes[i];
        for (size_t j = 0; j < l->nsegs; j++)
            out->depth_events[i] += l->segs[j].unacked;
        out->depth_bytes[i] = l->bytes;
        out->pending_events += l->pend_count;
    }
    out->lost_events = s->lost_events;
    out->lost_segments = s->lost_segments;
    out->torn_bytes = s->torn_bytes;
}
