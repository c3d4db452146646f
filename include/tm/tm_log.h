/*
 * tm_log.h - leveled logging to stderr (one write per line, safe across threads) or to
 * syslog. The macros test the level before evaluating their arguments, so a debug
 * message costs one comparison when debug is off. Messages are lowercase, carry their
 * context (peer address, input name) and quote their subject:
 *     tm_log_warn("lumberjack %s: frame of %zu bytes over the limit", peer, n);
 */
#ifndef TM_LOG_H
#define TM_LOG_H

#include <stdbool.h>

#include "tm/tm_common.h"

enum tm_log_level {
    TM_LOG_ERROR = 0,
    TM_LOG_WARN = 1,
    TM_LOG_INFO = 2,
    TM_LOG_DEBUG = 3,
};

/* The current threshold; read by the macros below. Set it with tm_log_init(). */
extern enum tm_log_level tm_log_threshold;

/*
 * Sets the program name printed on every line, the threshold, and whether lines go to
 * syslog (LOG_DAEMON) instead of stderr. May be called again (for example on SIGHUP).
 */
void tm_log_init(const char *ident, enum tm_log_level level, bool use_syslog);

/* Redirects stderr output to fd (tests use a pipe); -1 restores stderr. */
void tm_log_set_fd(int fd);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for anything else. */
int tm_log_level_parse(const char *s, enum tm_log_level *out);

/* Writes one line at the given level; prefer the macros. */
void tm_log_write(enum tm_log_level level, const char *fmt, ...) TM_PRINTF(2, 3);

#define tm_log_at(lvl, ...)                                                                        \
    do {                                                                                           \
        if ((lvl) <= tm_log_threshold)                                                             \
            tm_log_write((lvl), __VA_ARGS__);                                                      \
    } while (0)
#define tm_log_error(...) tm_log_at(TM_LOG_ERROR, __VA_ARGS__)
#define tm_log_warn(...) tm_log_at(TM_LOG_WARN, __VA_ARGS__)
#define tm_log_info(...) tm_log_at(TM_LOG_INFO, __VA_ARGS__)
#define tm_log_debug(...) tm_log_at(TM_LOG_DEBUG, __VA_ARGS__)

#endif
