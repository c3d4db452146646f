/*
 * tm_log.c - the process-wide logger: a threshold, a program name, and a destination
 * (stderr, a file descriptor set by tests, or syslog).
 *
 * Flow: the macros in tm_log.h compare the level with tm_log_threshold before anything
 * else, so tm_log_write() only runs for lines that will be written. It builds the whole
 * line "TIME IDENT[PID] LEVEL: MESSAGE\n" in one stack buffer of LINE_MAX_LEN bytes and
 * hands it to a single write(2), so lines from different threads never interleave (the
 * buffer is no larger than PIPE_BUF, which makes the write atomic on pipes too). Longer
 * messages are cut and end in "...". Control bytes in the message are replaced with '?'
 * so that text taken from the network cannot forge extra log lines.
 *
 * Invariants: the ident buffer handed to openlog() is only rewritten when the ident
 * changes (syslog keeps the pointer); errno is the same after a log call as before.
 */
#include "tm/tm_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "tm/tm_time.h"

/* One line, prefix included; at most PIPE_BUF (4096 on Linux) so a pipe write is atomic. */
#define LINE_MAX_LEN 4096
#define IDENT_LEN 64

enum tm_log_level tm_log_threshold = TM_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[IDENT_LEN] = "tm";
static bool log_syslog_on;
static bool log_syslog_open;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tm_log_init(const char *ident, enum tm_log_level level, bool use_syslog)
{
    pthread_mutex_lock(&log_lock);
    if (ident != NULL && strcmp(ident, log_ident) != 0) {
        if (log_syslog_open) {
            closelog();
            log_syslog_open = false;
        }
        tm_strlcpy(log_ident, ident, sizeof(log_ident));
    }
    if (use_syslog && !log_syslog_open) {
        openlog(log_ident, LOG_PID, LOG_DAEMON);
        log_syslog_open = true;
    } else if (!use_syslog && log_syslog_open) {
        closelog();
        log_syslog_open = false;
    }
    __atomic_store_n(&log_syslog_on, use_syslog, __ATOMIC_RELAXED);
    tm_log_threshold = level;
    pthread_mutex_unlock(&log_lock);
}

void tm_log_set_fd(int fd)
{
    __atomic_store_n(&log_fd, fd < 0 ? STDERR_FILENO : fd, __ATOMIC_RELAXED);
}

int tm_log_level_parse(const char *s, enum tm_log_level *out)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < TM_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum tm_log_level)i;
            return 0;
        }
    }
    return -1;
}

static int syslog_priority(enum tm_log_level level)
{
    switch (level) {
    case TM_LOG_ERROR:
        return LOG_ERR;
    case TM_LOG_WARN:
        return LOG_WARNING;
    case TM_LOG_INFO:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

/*
 * Formats the message at msg (room bytes, room >= 4), cutting it with "..." when it does
 * not fit, drops trailing newlines and masks control bytes. Returns its length.
 */
static size_t format_message(char *msg, size_t room, const char *fmt, va_list ap) TM_PRINTF(3, 0);

static size_t format_message(char *msg, size_t room, const char *fmt, va_list ap)
{
    int n = vsnprintf(msg, room, fmt, ap);
    size_t len;

    if (n < 0) {
        tm_strlcpy(msg, "(unformattable message)", room);
        return strlen(msg);
    }
    len = (size_t)n;
    if (len >= room) {
        len = room - 1;
        memcpy(msg + len - 3, "...", 3);
    }
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            msg[i] = '?';
    }
    msg[len] = '\0';
    return len;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void tm_log_write(enum tm_log_level level, const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    char now[TM_TIME_LEN];
    int saved_errno = errno;
    unsigned lvl = (unsigned)level < TM_ARRAY_LEN(level_names) ? (unsigned)level : TM_LOG_DEBUG;
    size_t len = 0;
    va_list ap;
    int n;

    if (__atomic_load_n(&log_syslog_on, __ATOMIC_RELAXED)) {
        va_start(ap, fmt);
        format_message(line, sizeof(line), fmt, ap);
        va_end(ap);
        syslog(syslog_priority((enum tm_log_level)lvl), "%s", line);
        goto out;
    }
    if (tm_time_format(tm_time_now_ms(), now, sizeof(now)) != 0)
        tm_strlcpy(now, "0000-00-00T00:00:00.000Z", sizeof(now));
    pthread_mutex_lock(&log_lock);
    n = snprintf(line, sizeof(line), "%s %s[%ld] %s: ", now, log_ident, (long)getpid(),
                 level_names[lvl]);
    pthread_mutex_unlock(&log_lock);
    if (n < 0 || (size_t)n >= sizeof(line) / 2)
        goto out; /* cannot happen: the ident is at most IDENT_LEN bytes */
    len = (size_t)n;
    /* Keep one byte for the newline that replaces the NUL. */
    va_start(ap, fmt);
    len += format_message(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    line[len++] = '\n';
    write_all(__atomic_load_n(&log_fd, __ATOMIC_RELAXED), line, len);
out:
    errno = saved_errno;
}
