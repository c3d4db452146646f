/*
 * tm_common.h - definitions every libtm module and program shares: the size of error
 * buffers, the "need more bytes" return code of streaming decoders, and small string
 * helpers that replace the banned strcpy/strcat/sprintf family.
 */
#ifndef TM_COMMON_H
#define TM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The release, from the VERSION file: the Makefile passes -DTM_VERSION. */
#ifndef TM_VERSION
#error "TM_VERSION is not defined: build with the project's Makefile"
#endif

/* Size of the caller-provided error buffers that config, network and codec helpers fill. */
#define TM_ERR_LEN 256

/* Returned by streaming decoders when the input ends before a complete unit. */
#define TM_AGAIN (-2)

#define TM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define TM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/*
 * Copies the NUL-terminated string src into dst of size dstlen, always terminating dst
 * when dstlen > 0. Returns 0, or -1 when src did not fit (dst then holds a truncated copy).
 */
int tm_strlcpy(char *dst, const char *src, size_t dstlen);

/*
 * Writes a formatted message into err (TM_ERR_LEN bytes) when err is not NULL.
 * Always returns -1 so that callers can write `return tm_err(err, "...", ...);`.
 */
int tm_err(char *err, const char *fmt, ...) TM_PRINTF(2, 3);

/*
 * Parses a whole string as a signed decimal integer within [min, max].
 * Returns 0 and stores it in *out, or -1 for empty input, trailing bytes or a value
 * out of range.
 */
int tm_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
