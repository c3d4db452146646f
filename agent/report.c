/*
 * report.c - manual incidents. `tm-agent report` (a person at the operator's site) writes
 * the incident as a canonical event file into STATE_DIR/inbox/ - written to a temporary
 * name, fsynced, renamed, directory fsynced - so it survives a crash and a stopped
 * agent. The running agent takes the inbox every second: each report is spooled in the
 * priority lane and flushed, and only then is its file deleted. A crash in between spools
 * it again with the same event id, which the aggregator's dedup absorbs. A file that does
 * not decode is renamed to NAME.bad and logged, never retried in a loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "tm/tm_id.h"
#include "tm/tm_log.h"
#include "tm/tm_time.h"

static void inbox_path(const char *state_dir, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/inbox", state_dir);
}

static int fsync_dir(const char *dir, char *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0 || fsync(fd) != 0) {
        tm_err(err, "cannot fsync '%s': %s", dir, strerror(errno));
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int report_write(const char *state_dir, struct tm_event *ev, char *id_out, char *err)
{
    char dir[AGENT_PATH_LEN + 8], tmp[AGENT_PATH_LEN + 96], final[AGENT_PATH_LEN + 96];
    char msg[TM_ERR_LEN];
    char *json = NULL;
    size_t len = 0;
    int fd = -1, rc = -1;

    if (ev->id[0] == '\0')
        tm_id_new(ev->id);
    if (ev->ts < 0)
        ev->ts = tm_time_now_ms();
    tm_strlcpy(ev->source.kind, "manual", sizeof(ev->source.kind));
    if (tm_event_validate(ev, TM_EVENT_SUBMITTED, msg) != TM_EVENT_OK) {
        tm_err(err, "invalid report: %s", msg);
        return -1;
    }
    json = tm_event_encode(ev, &len);
    if (json == NULL) {
        tm_err(err, "cannot encode the report");
        return -1;
    }
    inbox_path(state_dir, dir, sizeof(dir));
    if ((mkdir(state_dir, 0750) != 0 && errno != EEXIST) ||
        (mkdir(dir, 0750) != 0 && errno != EEXIST)) {
        tm_err(err, "cannot create '%s': %s", dir, strerror(errno));
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, ev->id);
    snprintf(final, sizeof(final), "%s/%s.json", dir, ev->id);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, json, len) != (ssize_t)len || fsync(fd) != 0) {
        tm_err(err, "cannot write '%s': %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, final) != 0) {
        tm_err(err, "cannot rename '%s': %s", tmp, strerror(errno));
        goto out;
    }
    if (fsync_dir(dir, err) != 0)
        goto out;
    tm_strlcpy(id_out, ev->id, TM_EVENT_ID_MAX + 1);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(json);
    return rc;
}

static int is_report(const struct dirent *d)
{
    size_t n = strlen(d->d_name);

    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

/* Reads one report file (at most TM_EVENT_JSON_MAX bytes) and decodes it. */
static int read_report(const char *path, struct tm_event *ev, char *err)
{
    char *buf = malloc(TM_EVENT_JSON_MAX + 1);
    char msg[TM_ERR_LEN];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = -1;
    int rc = -1;

    if (buf == NULL || fd < 0) {
        tm_err(err, "cannot open '%s': %s", path, buf == NULL ? "out of memory" : strerror(errno));
        goto out;
    }
    n = read(fd, buf, TM_EVENT_JSON_MAX + 1);
    if (n < 0 || n > TM_EVENT_JSON_MAX) {
        tm_err(err, "cannot read '%s': %s", path, n < 0 ? strerror(errno) : "too large");
        goto out;
    }
    if (tm_event_decode(ev, buf, (size_t)n, TM_EVENT_SUBMITTED, msg) != TM_EVENT_OK) {
        tm_err(err, "'%s': %s", path, msg);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

long report_take_all(const char *state_dir, report_take_cb cb, void *arg, char *err)
{
    char dir[AGENT_PATH_LEN + 8], path[AGENT_PATH_LEN + 300], bad[AGENT_PATH_LEN + 310];
    struct dirent **names = NULL;
    long taken = 0;
    int n;

    inbox_path(state_dir, dir, sizeof(dir));
    n = scandir(dir, &names, is_report, alphasort); /* ULID names: oldest first */
    if (n < 0)
        return errno == ENOENT ? 0
                               : (tm_err(err, "cannot read '%s': %s", dir, strerror(errno)), -1);
    for (int i = 0; i < n; i++) {
        struct tm_event ev;
        char msg[TM_ERR_LEN];

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (taken >= 0 && read_report(path, &ev, msg) != 0) {
            tm_log_error("report: %s; renamed to .bad", msg);
            snprintf(bad, sizeof(bad), "%s.bad", path);
            rename(path, bad);
        } else if (taken >= 0) {
            if (cb(arg, &ev, msg) != 0) {
                tm_err(err, "cannot spool report '%s': %s", path, msg);
                taken = -1;
            } else if (unlink(path) != 0) {
                tm_log_error("report: cannot delete '%s': %s", path, strerror(errno));
            } else {
                taken++;
            }
        }
        free(names[i]);
    }
    free(names);
    return taken;
}
