/*
 * tm_parse_auth.c - sshd lines of auth.log / secure ("Mmm dd hh:mm:ss host sshd[pid]: msg")
 * and the sshd message logic that the syslog parser reuses for sshd messages it receives.
 *
 * The header is read by tm_parse_bsd_header() (shared with RFC 3164); a line without a
 * time stamp followed by a host or a "program[pid]:" tag is an error, a line of another
 * program (or with no readable tag, like "syslogd 1.4.1: restart.") is skipped.
 * The message is then matched against the few sshd messages that are evidence of an
 * attack; everything else sshd says (session open/close, disconnects, PAM echoes) is
 * skipped, because it repeats what those lines already said:
 *
 *   Failed <password|keyboard-interactive/pam|none> for [invalid user] U from IP port P
 *   Invalid user U from IP [port P]
 *   <pam module>(sshd:auth): authentication failure; ... rhost=IP   (also "sshd(pam_unix)")
 *   PAM: Authentication failure for U from IP
 *   Connection closed by <authenticating|invalid> user U IP port P [preauth]
 *   maximum authentication attempts exceeded for U from IP port P
 *   Disconnecting...: Too many authentication failures ...
 *       -> bruteforce, severity 3, T1110 credential-access
 *   message repeated N times: [ <one of the above> ]  -> the same, count N
 *   Did not receive identification string from IP     (a port scan or banner grab)
 *   Bad protocol version identification '...' from IP  (a non-SSH client probing)
 *       -> scan, severity 2, T1595 reconnaissance
 *   Accepted <method> for U from IP port P
 *       -> other, severity 1: a login is not an attack, but detectors correlate it with
 *          earlier failures from the same address (a brute force that succeeded)
 *
 * Deliberately skipped: "Failed publickey" (a client offering several keys is normal;
 * fail2ban does the same), "PAM N more authentication failures" (a recap of failures
 * already reported one by one), "input_userauth_request: invalid user" and "check pass;
 * user unknown" (echoes of "Invalid user"), "reverse mapping checking ... POSSIBLE
 * BREAK-IN ATTEMPT!" (a DNS mismatch, not an attack by itself), "Received disconnect",
 * "Connection closed by IP", sessions opened and closed.
 *
 * One failed password can still produce up to three events (Invalid user, the PAM line,
 * Failed password), as in Wazuh: each is a separate observation in the log, and on old
 * systems the PAM line is the only one there is. Folding them is the detectors' job.
 */
#include "tm/tm_parse.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tm/tm_common.h"
#include "tm/tm_event.h"
#include "tm_parse_internal.h"

/* Bytes of an sshd message looked at (sshd's own log buffer is 1 KiB). */
#define SSHD_MSG_MAX 2048
/* Upper bound for "message repeated N times". */
#define REPEAT_MAX 1000000

enum sshd_kind { SSHD_SKIP, SSHD_BRUTEFORCE, SSHD_SCAN, SSHD_ACCEPTED };

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool tm_parse_is_sshd(const char *app)
{
    return strcmp(app, "sshd") == 0 || starts(app, "sshd(") || strcmp(app, "sshd-session") == 0;
}

static enum sshd_kind classify(const char *s)
{
    /* "Failed <method> for ...", but not "Failed to ..." or a rejected key. */
    if (starts(s, "Failed ")) {
        const char *method = s + 7;
        size_t n = strcspn(method, " ");
        return n > 0 && starts(method + n, " for ") && !starts(method, "publickey ")
                   ? SSHD_BRUTEFORCE
                   : SSHD_SKIP;
    }
    if (starts(s, "Invalid user ") || starts(s, "Connection closed by authenticating user ") ||
        starts(s, "Connection closed by invalid user ") ||
        starts(s, "maximum authentication attempts exceeded ") ||
        starts(s, "PAM: Authentication failure for ") ||
        strstr(s, "Too many authentication failures") != NULL)
        return SSHD_BRUTEFORCE;
    /* pam_unix(sshd:auth): ..., or the whole message under the tag "sshd(pam_unix)". */
    if (!starts(s, "PAM ") && strstr(s, "authentication failure;") != NULL)
        return SSHD_BRUTEFORCE;
    if (starts(s, "Did not receive identification string from ") ||
        starts(s, "Bad protocol version identification "))
        return SSHD_SCAN;
    if (starts(s, "Accepted "))
        return SSHD_ACCEPTED;
    return SSHD_SKIP;
}

/* The last occurrence of needle in s, or NULL. */
static const char *last(const char *s, const char *needle)
{
    const char *p = NULL;

    while ((s = strstr(s, needle)) != NULL)
        p = s++;
    return p;
}

/*
 * The client's address. sshd appends it last ("... from IP port P ...", "... user U IP
 * port P"), so the last " port " wins over anything a client put into a user name; PAM
 * writes "rhost=" (an address or, with UseDNS, a host name, which is left out).
 */
static void find_source(const char *s, struct tm_endpoint *src)
{
    const char *p = last(s, " port "), *a;
    size_t n;

    if (p != NULL) {
        for (a = p; a > s && a[-1] != ' ';)
            a--;
        if (tm_parse_ip(a, (size_t)(p - a), src->ip) == 0) {
            p += 6;
            src->port = tm_parse_port(p, strspn(p, "0123456789"));
            return;
        }
    }
    if ((p = last(s, " from ")) != NULL) {
        p += 6;
        n = strcspn(p, " ");
        if (n > 0 && p[n - 1] == ':') /* "from 1.2.3.4: 11: Bye" */
            n--;
        if (tm_parse_ip(p, n, src->ip) == 0)
            return;
    }
    if ((p = strstr(s, "rhost=")) != NULL) {
        p += 6;
        tm_parse_ip(p, strcspn(p, " "), src->ip);
    }
}

enum tm_parse_result tm_parse_sshd(const struct tm_parse_ctx *ctx, const struct tm_syslog_msg *m,
                                   const char *line, size_t len, struct tm_event *out, char *err)
{
    char msg[SSHD_MSG_MAX + 1];
    char *s = msg, *end;
    int64_t count = 1;
    enum sshd_kind kind;
    size_t n;

    tm_event_init(out);
    tm_parse_copy_text(msg, sizeof(msg), m->msg, m->msg_len);
    if (starts(s, "error: "))
        s += 7;
    /* syslogd's folding of identical lines: "message repeated 5 times: [ Failed ...]". */
    if (starts(s, "message repeated ")) {
        s += 17;
        for (count = 0; *s >= '0' && *s <= '9'; s++)
            if (count <= REPEAT_MAX)
                count = count * 10 + (*s - '0');
        if (count < 1 || count > REPEAT_MAX || !starts(s, " times: ["))
            return TM_PARSE_SKIP;
        s += 9;
        s += strspn(s, " ");
        end = s + strlen(s);
        if (end > s && end[-1] == ']')
            end[-1] = '\0';
    }
    kind = classify(s);
    if (kind == SSHD_SKIP)
        return TM_PARSE_SKIP;

    out->ts = m->ts >= 0 ? m->ts : tm_parse_now(ctx);
    out->count = count;
    switch (kind) {
    case SSHD_BRUTEFORCE:
        tm_strlcpy(out->category, "bruteforce", sizeof(out->category));
        out->severity = 3;
        tm_strlcpy(out->attack.technique, "T1110", sizeof(out->attack.technique));
        tm_strlcpy(out->attack.tactic, "credential-access", sizeof(out->attack.tactic));
        break;
    case SSHD_SCAN:
        tm_strlcpy(out->category, "scan", sizeof(out->category));
        out->severity = 2;
        tm_strlcpy(out->attack.technique, "T1595", sizeof(out->attack.technique));
        tm_strlcpy(out->attack.tactic, "reconnaissance", sizeof(out->attack.tactic));
        break;
    default:
        tm_strlcpy(out->category, "other", sizeof(out->category));
        out->severity = 1;
        break;
    }
    find_source(s, &out->src);
    /* The message itself, starting lowercase ("accepted password for ..."). */
    n = tm_parse_copy_text(out->summary, sizeof(out->summary), s, strlen(s));
    if (out->summary[0] >= 'A' && out->summary[0] <= 'Z')
        out->summary[0] = (char)(out->summary[0] - 'A' + 'a');
    if (count > 1 && n < sizeof(out->summary))
        snprintf(out->summary + n, sizeof(out->summary) - n, " (repeated %lld times)",
                 (long long)count);
    tm_strlcpy(out->source.kind, "auth", sizeof(out->source.kind));
    tm_strlcpy(out->source.host, m->host, sizeof(out->source.host));
    tm_parse_set_raw(out, line, len);
    return tm_parse_finish(out, err);
}

enum tm_parse_result tm_parse_auth_cb(const struct tm_parse_ctx *ctx, const char *line, size_t len,
                                      struct tm_event *out, char *err)
{
    struct tm_syslog_msg m;
    char why[TM_ERR_LEN] = "";

    tm_event_init(out);
    len = tm_parse_trim_eol(line, len);
    if (tm_parse_bsd_header(ctx, line, len, &m, why) != 0) {
        tm_err(err, "auth: %s", why);
        return TM_PARSE_ERROR;
    }
    if (m.host[0] == '\0' && m.app[0] == '\0') {
        tm_err(err, "auth: expected 'host program[pid]: message' after the time stamp");
        return TM_PARSE_ERROR;
    }
    if (!tm_parse_is_sshd(m.app))
        return TM_PARSE_SKIP;
    return tm_parse_sshd(ctx, &m, line, len, out, err);
}
