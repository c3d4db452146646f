/*
 * static_files.c - the page's files, served from one web root (the page has no CDN and
 * no build step on the server).
 *
 * Only regular files under the root's real path are served: the request path is
 * percent-decoded once, must not hold NUL, backslashes, empty, "." or ".." segments or
 * hidden names, and the joined path is resolved with realpath() and must still lie under
 * the root, so neither "..%2f" nor a symbolic link can lead outside. Only the types the
 * page uses are served (html, js, css, svg, png, ico); anything else is 404, so a stray
 * file (a backup, a README) is never published by accident. "/" is index.html.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dashboard.h"
#include "tm/tm_log.h"

#define INSTALLED_WEB_ROOT "/usr/share/tm-telemetry/web"

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

void dash_static_root(const struct dash_config *cfg, char *out, size_t outlen)
{
    char exe[PATH_MAX], guess[PATH_MAX + 32], real[PATH_MAX];
    const char *pick = cfg->web_root;
    ssize_t n;

    out[0] = '\0';
    if (pick[0] == '\0') {
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        pick = INSTALLED_WEB_ROOT;
        if (n > 0) {
            char *slash;
            exe[n] = '\0';
            slash = strrchr(exe, '/');
            if (slash != NULL)
                *slash = '\0';
            snprintf(guess, sizeof(guess), "%s/../dashboard/web", exe);
            if (access(guess, F_OK) == 0)
                pick = guess;
        }
    }
    if (realpath(pick, real) == NULL) {
        tm_log_warn("web root '%s': %s; the page will not be served (set --web)", pick,
                    strerror(errno));
        return;
    }
    if (tm_strlcpy(out, real, outlen) != 0) {
        tm_log_warn("web root '%s': path too long", real);
        out[0] = '\0';
    }
}

static const char *type_of(const char *path)
{
    const char *dot = strrchr(path, '.');

    if (dot == NULL || strchr(dot, '/') != NULL)
        return NULL;
    for (size_t i = 0; i < TM_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* True when every segment of p (which starts with '/') is a plain, visible name. */
static bool path_ok(const char *p)
{
    if (strchr(p, '\\') != NULL)
        return false;
    while (*p == '/') {
        size_t n = strcspn(p + 1, "/");
        if (n == 0 || p[1] == '.')
            return false; /* empty, ".", "..", ".hidden" */
        p += 1 + n;
    }
    return *p == '\0';
}

void dash_static_serve(struct dash *d, struct evhttp_request *req, const char *path,
                       int64_t start_ms)
{
    char *decoded = NULL;
    const char *rel, *ctype;
    char full[PATH_MAX], real[PATH_MAX];
    size_t rootlen = strlen(d->web_root), len = 0;
    struct evbuffer *buf = NULL;
    struct stat st;
    int fd = -1;

    if (d->web_root[0] == '\0')
        goto not_found;
    decoded = evhttp_uridecode(path, 0, &len);
    if (decoded == NULL || strlen(decoded) != len)
        goto not_found;
    rel = strcmp(decoded, "/") == 0 ? "/index.html" : decoded;
    if (!path_ok(rel) || (ctype = type_of(rel)) == NULL)
        goto not_found;
    if (snprintf(full, sizeof(full), "%s%s", d->web_root, rel) >= (int)sizeof(full) ||
        realpath(full, real) == NULL)
        goto not_found;
    if (strncmp(real, d->web_root, rootlen) != 0 || real[rootlen] != '/')
        goto not_found;
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto not_found;
    buf = evbuffer_new();
    if (buf == NULL || evbuffer_add_file(buf, fd, 0, st.st_size) != 0) {
        dash_reply_error(d, req, EP_STATIC, 500, start_ms, "cannot read the file");
        goto out;
    }
    fd = -1; /* the buffer owns it */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
    dash_reply_file(d, req, ctype, buf, start_ms);
    goto out;
not_found:
    dash_reply_error(d, req, EP_STATIC, 404, start_ms, "not found");
out:
    if (fd >= 0)
        close(fd);
    if (buf != NULL)
        evbuffer_free(buf);
    free(decoded);
}
