/*
 * tm_lumberjack.c - the Lumberjack v2 codec: a streaming decoder for what Beats and
 * tm-agent send (window, JSON data and compressed frames) and the encoders for every
 * frame, acks included.
 *
 * The decoder keeps no parse state between calls: each call walks whole frames from the
 * start of the bytes it is given, and when the input ends inside a frame it stops before
 * that frame and says how many contiguous bytes the frame needs, so the caller keeps the
 * tail and calls again. Every length read from the wire is checked against the limits
 * before it is trusted. A compressed frame is inflated in bounded steps into one buffer
 * owned by the decoder, which starts small, doubles, and never grows past
 * max_decompressed: when it is full at the cap, one probe byte decides whether the frame
 * is over the limit, so a zip bomb costs at most max_decompressed bytes. The inflated
 * bytes are then walked like the outer stream, except that another compressed frame or a
 * partial frame is an error. The inflate state is created on the first compressed frame
 * and reset before each one; the buffer is reused, but dropped after a frame that grew it
 * past 1 MiB, so between frames a decoder holds at most that much.
 */
#include "tm/tm_lumberjack.h"

#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

#define HEADER_LEN 2            /* version byte and frame type */
#define WINDOW_LEN 6            /* '2' 'W' size */
#define JSON_HEADER_LEN 10      /* '2' 'J' seq payload_len */
#define COMPRESSED_HEADER_LEN 6 /* '2' 'C' payload_len */
#define ACK_LEN 6               /* '2' 'A' seq */

/* The inflate buffer starts at this size (or 8 times the compressed size) ... */
#define INFLATE_MIN (64u * 1024)
/* ... and is freed after a frame when it grew past this, instead of being kept. */
#define INFLATE_KEEP (1024u * 1024)

struct tm_lj_decoder {
    struct tm_lj_limits limits;
    z_stream zs; /* valid when zs_ready */
    bool zs_ready;
    uint8_t *buf; /* inflated payload of the compressed frame being walked */
    size_t cap;   /* allocated size of buf, never over limits.max_decompressed */
};

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes a byte as 'c' (0x63) when printable, else as 0x63, for error messages. */
static const char *byte_name(uint8_t c, char *out, size_t outlen)
{
    if (c >= 0x20 && c < 0x7f && c != '\'')
        snprintf(out, outlen, "'%c' (0x%02x)", c, c);
    else
        snprintf(out, outlen, "0x%02x", c);
    return out;
}

/*
 * After a callback returned -1: whether it wrote its own reason into err (callbacks may
 * share the caller's err buffer, which feed clears first). That reason is then kept.
 */
static bool callback_said(const char *err)
{
    return err != NULL && err[0] != '\0';
}

void tm_lj_limits_default(struct tm_lj_limits *l)
{
    l->max_frame = 1024u * 1024;
    l->max_decompressed = 16u * 1024 * 1024;
    l->max_window = 10000;
}

struct tm_lj_decoder *tm_lj_decoder_create(const struct tm_lj_limits *limits)
{
    struct tm_lj_decoder *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    if (limits != NULL)
        d->limits = *limits;
    else
        tm_lj_limits_default(&d->limits);
    return d;
}

void tm_lj_decoder_destroy(struct tm_lj_decoder *d)
{
    if (d == NULL)
        return;
    if (d->zs_ready)
        inflateEnd(&d->zs);
    free(d->buf);
    free(d);
}

/* Grows the inflate buffer towards the cap. Returns 0, or -1 with err. */
static int grow_buffer(struct tm_lj_decoder *d, size_t hint, char *err)
{
    size_t max = d->limits.max_decompressed;
    size_t want;
    uint8_t *nb;

    if (d->cap == 0)
        want = hint < INFLATE_MIN ? INFLATE_MIN : hint;
    else
        want = d->cap > max / 2 ? max : d->cap * 2;
    if (want > max)
        want = max;
    nb = realloc(d->buf, want);
    if (nb == NULL)
        return tm_err(err, "out of memory inflating a compressed frame of %zu bytes", want);
    d->buf = nb;
    d->cap = want;
    return 0;
}

/*
 * Inflates src[0..len) (one zlib stream) into d->buf. Returns 0 with the inflated size in
 * *out_len, or -1 with err when the stream is corrupt, truncated, followed by other bytes,
 * or inflates to more than max_decompressed.
 */
static int inflate_payload(struct tm_lj_decoder *d, const uint8_t *src, uint32_t len,
                           size_t *out_len, char *err)
{
    size_t have = 0;
    size_t hint = (size_t)len * 8;
    int zr;
    int rc = -1;

    if (!d->zs_ready) {
        memset(&d->zs, 0, sizeof(d->zs));
        zr = inflateInit(&d->zs);
        if (zr != Z_OK) {
            tm_err(err, "cannot start inflating: %s",
                   zr == Z_MEM_ERROR ? "out of memory" : "zlib error");
            goto out;
        }
        d->zs_ready = true;
    } else if (inflateReset(&d->zs) != Z_OK) {
        tm_err(err, "cannot reset the inflate state");
        goto out;
    }
    d->zs.next_in = (Bytef *)(uintptr_t)src;
    d->zs.avail_in = len;

    for (;;) {
        uint8_t probe;
        bool probing = false;
        uInt room;

        if (have == d->cap) {
            if (d->cap < d->limits.max_decompressed) {
                if (grow_buffer(d, hint, err) != 0)
                    goto out;
            } else {
                /* Full at the cap: only a stream that ends right here may pass. */
                probing = true;
            }
        }
        if (probing) {
            d->zs.next_out = &probe;
            room = 1;
        } else {
            size_t space = d->cap - have;
            d->zs.next_out = d->buf + have;
            room = space > UINT_MAX ? UINT_MAX : (uInt)space;
        }
        d->zs.avail_out = room;
        zr = inflate(&d->zs, Z_NO_FLUSH);
        if (probing && d->zs.avail_out < room) {
            tm_err(err, "decompressed size over the limit of %" PRIu32 " bytes",
                   d->limits.max_decompressed);
            goto out;
        }
        if (!probing)
            have += room - d->zs.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR) {
            /* No progress possible: the output always has room, so the input ran out. */
            tm_err(err, "truncated zlib stream in compressed frame of %" PRIu32 " bytes", len);
        } else if (zr == Z_MEM_ERROR) {
            tm_err(err, "out of memory inflating a compressed frame");
        } else if (zr == Z_NEED_DICT) {
            tm_err(err, "corrupt compressed frame: 'preset dictionary' is not supported");
        } else {
            tm_err(err, "corrupt compressed frame: '%s'",
                   d->zs.msg != NULL ? d->zs.msg : "invalid zlib data");
        }
        goto out;
    }
    if (d->zs.avail_in != 0) {
        tm_err(err, "%u bytes after the end of the zlib stream in compressed frame",
               d->zs.avail_in);
        goto out;
    }
    *out_len = have;
    rc = 0;
out:
    return rc;
}

/* After a compressed frame: drops a buffer that a large frame left behind. */
static void trim_buffer(struct tm_lj_decoder *d)
{
    if (d->cap > INFLATE_KEEP) {
        free(d->buf);
        d->buf = NULL;
        d->cap = 0;
    }
}

static int walk_inflated(struct tm_lj_decoder *d, size_t len, const struct tm_lj_callbacks *cb,
                         char *err);

/*
 * Decodes the frame at p[0..avail). Returns 1 with its size in *used after the callbacks
 * ran, 0 with the bytes it needs in *need when avail is short, or -1 with err. Inside a
 * compressed frame (nested) another compressed frame is an error.
 */
static int parse_frame(struct tm_lj_decoder *d, const uint8_t *p, size_t avail, bool nested,
                       const struct tm_lj_callbacks *cb, char *err, size_t *used, size_t *need)
{
    char name[32];
    uint32_t n, seq;
    uint64_t total;
    size_t inflated = 0;
    int rc;

    if (avail < HEADER_LEN) {
        if (avail == 1 && p[0] != TM_LJ_VERSION)
            goto bad_version;
        *need = HEADER_LEN;
        return 0;
    }
    if (p[0] != TM_LJ_VERSION)
        goto bad_version;

    switch (p[1]) {
    case 'W':
        if (avail < WINDOW_LEN) {
            *need = WINDOW_LEN;
            return 0;
        }
        n = get_u32(p + 2);
        if (n == 0)
            return tm_err(err, "window of 0 events");
        if (n > d->limits.max_window)
            return tm_err(err, "window of %" PRIu32 " events over the limit of %" PRIu32, n,
                          d->limits.max_window);
        if (cb != NULL && cb->window_cb != NULL && cb->window_cb(cb->arg, n) != 0)
            return callback_said(err)
                       ? -1
                       : tm_err(err, "window callback refused a window of %" PRIu32 " events", n);
        *used = WINDOW_LEN;
        return 1;

    case 'J':
        if (avail < JSON_HEADER_LEN) {
            *need = JSON_HEADER_LEN;
            return 0;
        }
        seq = get_u32(p + 2);
        n = get_u32(p + 6);
        if (n > d->limits.max_frame)
            return tm_err(err,
                          "json frame of %" PRIu32 " bytes over the limit of %" PRIu32 " bytes", n,
                          d->limits.max_frame);
        total = (uint64_t)JSON_HEADER_LEN + n;
        if (avail < total) {
            *need = (size_t)total;
            return 0;
        }
        if (cb != NULL && cb->data_cb != NULL &&
            cb->data_cb(cb->arg, seq, (const char *)p + JSON_HEADER_LEN, n) != 0)
            return callback_said(err)
                       ? -1
                       : tm_err(err, "data callback refused the json frame of seq %" PRIu32, seq);
        *used = (size_t)total;
        return 1;

    case 'C':
        if (nested)
            return tm_err(err, "compressed frame inside compressed frame");
        if (avail < COMPRESSED_HEADER_LEN) {
            *need = COMPRESSED_HEADER_LEN;
            return 0;
        }
        n = get_u32(p + 2);
        if (n > d->limits.max_frame)
            return tm_err(
                err, "compressed frame of %" PRIu32 " bytes over the limit of %" PRIu32 " bytes", n,
                d->limits.max_frame);
        total = (uint64_t)COMPRESSED_HEADER_LEN + n;
        if (avail < total) {
            *need = (size_t)total;
            return 0;
        }
        rc = inflate_payload(d, p + COMPRESSED_HEADER_LEN, n, &inflated, err);
        if (rc == 0)
            rc = walk_inflated(d, inflated, cb, err);
        trim_buffer(d);
        if (rc != 0)
            return -1;
        *used = (size_t)total;
        return 1;

    default:
        return tm_err(err, "unsupported frame type %s", byte_name(p[1], name, sizeof(name)));
    }

bad_version:
    return tm_err(err, "unsupported version byte %s", byte_name(p[0], name, sizeof(name)));
}

/* Walks the frames inflated into d->buf[0..len); each must be whole. */
static int walk_inflated(struct tm_lj_decoder *d, size_t len, const struct tm_lj_callbacks *cb,
                         char *err)
{
    size_t off = 0;

    while (off < len) {
        size_t used = 0, need = 0;
        int r = parse_frame(d, d->buf + off, len - off, true, cb, err, &used, &need);

        if (r < 0)
            return -1;
        if (r == 0)
            return tm_err(err,
                          "truncated frame inside compressed frame: %zu of %zu bytes at offset %zu",
                          len - off, need, off);
        off += used;
    }
    return 0;
}

long tm_lj_decoder_feed(struct tm_lj_decoder *d, const uint8_t *data, size_t len, size_t *need,
                        const struct tm_lj_callbacks *cb, char *err)
{
    size_t off = 0;
    long result = -1;

    *need = 0;
    if (err != NULL)
        err[0] = '\0';
    /* Whole frames only, so stopping early just leaves more for the next call. */
    if (len > LONG_MAX)
        len = LONG_MAX;
    for (;;) {
        size_t used = 0, want = 0;
        int r = parse_frame(d, data + off, len - off, false, cb, err, &used, &want);

        if (r < 0)
            goto out;
        if (r == 0) {
            *need = want;
            break;
        }
        off += used;
    }
    result = (long)off;
out:
    return result;
}

/*
 * Appends n bytes made of header[0..hlen) and body[0..blen) to out in one step, so that a
 * failure leaves out unchanged.
 */
static int append_frame(struct evbuffer *out, const uint8_t *header, size_t hlen, const void *body,
                        size_t blen)
{
    struct evbuffer_iovec v;

    if (evbuffer_reserve_space(out, (ev_ssize_t)(hlen + blen), &v, 1) != 1)
        return -1;
    memcpy(v.iov_base, header, hlen);
    if (blen > 0)
        memcpy((uint8_t *)v.iov_base + hlen, body, blen);
    v.iov_len = hlen + blen;
    return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

int tm_lj_write_window(struct evbuffer *out, uint32_t size)
{
    uint8_t h[WINDOW_LEN] = {TM_LJ_VERSION, 'W'};

    put_u32(h + 2, size);
    return append_frame(out, h, sizeof(h), NULL, 0);
}

int tm_lj_write_json(struct evbuffer *out, uint32_t seq, const char *payload, size_t len)
{
    uint8_t h[JSON_HEADER_LEN] = {TM_LJ_VERSION, 'J'};

    if (len > UINT32_MAX)
        return -1;
    put_u32(h + 2, seq);
    put_u32(h + 6, (uint32_t)len);
    return append_frame(out, h, sizeof(h), payload, len);
}

int tm_lj_write_ack(struct evbuffer *out, uint32_t seq)
{
    uint8_t h[ACK_LEN] = {TM_LJ_VERSION, 'A'};

    put_u32(h + 2, seq);
    return append_frame(out, h, sizeof(h), NULL, 0);
}

int tm_lj_write_compressed(struct evbuffer *out, const uint8_t *frames, size_t len, int level)
{
    struct evbuffer_iovec v;
    uLongf zlen;
    uLong bound;
    uint8_t *p;

    if (level != Z_DEFAULT_COMPRESSION && (level < 0 || level > 9))
        return -1;
    if (len > UINT32_MAX)
        return -1;
    bound = compressBound((uLong)len);
    if (bound > UINT32_MAX)
        return -1;
    /* Compress straight into the output buffer; the space is only committed on success. */
    if (evbuffer_reserve_space(out, (ev_ssize_t)(COMPRESSED_HEADER_LEN + bound), &v, 1) != 1)
        return -1;
    p = v.iov_base;
    zlen = bound;
    if (compress2(p + COMPRESSED_HEADER_LEN, &zlen, frames, (uLong)len, level) != Z_OK)
        return -1;
    p[0] = TM_LJ_VERSION;
    p[1] = 'C';
    put_u32(p + 2, (uint32_t)zlen);
    v.iov_len = COMPRESSED_HEADER_LEN + zlen;
    return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

int tm_lj_read_ack(const uint8_t *data, size_t len, uint32_t *seq)
{
    /* Reject as early as the bytes allow, so a sender of garbage is not waited for. */
    if (len >= 1 && data[0] != TM_LJ_VERSION)
        return -1;
    if (len >= 2 && data[1] != 'A')
        return -1;
    if (len < ACK_LEN)
        return TM_AGAIN;
    *seq = get_u32(data + 2);
    return ACK_LEN;
}
