/*
 * tm_lumberjack.h - the Lumberjack protocol version 2 codec (what Beats speak to
 * Logstash; docs/protocols.md), shared by tm-collector (decoding, acks) and tm-agent and
 * tm-loadgen (encoding).
 *
 * Frames, every integer unsigned 32-bit big-endian:
 *   '2' 'W' window_size                      the sender will send this many events, then wait
 *   '2' 'J' seq payload_len payload          one event as JSON, seq counts 1.. per window
 *   '2' 'C' payload_len zlib_payload         frames compressed together (not nested again)
 *   '2' 'A' seq                              receiver -> sender: everything up to seq is safe
 *
 * Decoding is streaming: feed it whatever bytes have arrived; it calls back once per
 * window and data frame (also those inside compressed frames), consumes whole frames
 * only, and reports how many bytes the next frame needs. Every size is capped by the
 * limits, and compressed payloads are inflated in steps that stop at the cap, so a small
 * zip bomb cannot make it allocate more than max_decompressed.
 */
#ifndef TM_LUMBERJACK_H
#define TM_LUMBERJACK_H

#include <stddef.h>
#include <stdint.h>

#include "tm/tm_common.h"

struct evbuffer;

#define TM_LJ_VERSION '2'
#define TM_LJ_HEADER_ACK_LEN 6 /* length of an ack frame */

struct tm_lj_limits {
    uint32_t max_frame;        /* largest J payload or C payload, bytes (default 1 MiB) */
    uint32_t max_decompressed; /* largest inflated C payload, bytes (default 16 MiB) */
    uint32_t max_window;       /* largest window size accepted (default 10,000) */
};

/* Fills the defaults above. */
void tm_lj_limits_default(struct tm_lj_limits *l);

struct tm_lj_callbacks {
    /* A window frame: the sender will send `size` events before waiting for an ack. */
    int (*window_cb)(void *arg, uint32_t size);
    /*
     * A JSON data frame. payload is valid only during the call (it may point into an
     * inflated buffer). Return 0 to go on, -1 to stop decoding with an error.
     */
    int (*data_cb)(void *arg, uint32_t seq, const char *payload, size_t len);
    void *arg;
};

struct tm_lj_decoder;

/*
 * Creates a decoder with these limits (copied; NULL means the defaults). Returns NULL on
 * allocation failure. The decoder holds no parse state between calls, only a reusable
 * inflate buffer (at most max_decompressed bytes); one decoder per connection.
 */
struct tm_lj_decoder *tm_lj_decoder_create(const struct tm_lj_limits *limits);

/* Frees the decoder. NULL is allowed. */
void tm_lj_decoder_destroy(struct tm_lj_decoder *d);

/*
 * Decodes as many whole frames from data[0..len) as there are, calling the callbacks
 * (cb or either callback may be NULL). Returns the number of bytes consumed (whole frames
 * only), with *need set to the total number of contiguous bytes the next frame needs from
 * data + consumed: 2 for its header, then 6 or 10 once the type is known, then the whole
 * frame once its length is known; always more than len - consumed. The caller keeps the
 * unconsumed tail and calls again, with the same decoder, once it has *need bytes.
 * Returns -1 on a protocol error or limit, or when a callback returned -1, with the
 * reason in err (TM_ERR_LEN bytes, may be NULL): "unsupported version byte '1' (0x31)",
 * "unsupported frame type 'D' (0x44)", "window of 0 events", "json frame of 5000000
 * bytes over the limit of 1048576 bytes", "decompressed size over the limit of 16777216
 * bytes", "compressed frame inside compressed frame", "truncated frame inside compressed
 * frame: ...", "corrupt compressed frame: '...'". A callback that returns -1 may first
 * write its own reason into the same err buffer (feed clears it on entry); that reason is
 * kept. After -1 the connection must be closed. Callbacks must not feed the same decoder.
 */
long tm_lj_decoder_feed(struct tm_lj_decoder *d, const uint8_t *data, size_t len, size_t *need,
                        const struct tm_lj_callbacks *cb, char *err);

/*
 * Encoders: each appends one whole frame to out and returns 0, or -1 (out unchanged) on
 * allocation failure or a payload over 4 GiB.
 */
int tm_lj_write_window(struct evbuffer *out, uint32_t size);
int tm_lj_write_json(struct evbuffer *out, uint32_t seq, const char *payload, size_t len);
int tm_lj_write_ack(struct evbuffer *out, uint32_t seq);
/*
 * Compresses the frames already encoded in frames[0..len) (W and J frames, never C) with
 * zlib at level (0..9, or -1 for zlib's default) and appends them as one C frame. Returns
 * 0, or -1 (out unchanged) on allocation failure or a level out of range.
 */
int tm_lj_write_compressed(struct evbuffer *out, const uint8_t *frames, size_t len, int level);

/*
 * Reads one ack frame from data. Returns 6 (its length) and the seq in *seq, TM_AGAIN
 * when fewer than 6 bytes are given and those are the start of an ack frame, or -1 when
 * the bytes given (even fewer than 6) are not an ack frame.
 */
int tm_lj_read_ack(const uint8_t *data, size_t len, uint32_t *seq);

#endif
