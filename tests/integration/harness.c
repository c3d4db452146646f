/*
 * harness.c - process, port and server helpers for the integration tests (harness.h).
 *
 * It owns a table of the children it started. Entries carry the pid of the process that
 * started them, so that a forked copy of a test never signals its parent's children. The
 * table is emptied as children are reaped; whatever is left when the test exits (a failed
 * assertion jumps past a test's own cleanup) is stopped by an atexit handler, and by the
 * SIGINT/SIGTERM handlers, which use only async-signal-safe calls: kill, waitpid,
 * nanosleep, unlink, rmdir. Private redis directories are remembered the same way and
 * removed on exit.
 *
 * Every wait has a deadline and every buffer filled by a child or a socket has a hard
 * limit, so a misbehaving server fails a test instead of hanging it.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tm/tm_common.h"

#define MAX_CHILDREN 64
#define MAX_DIRS 16
#define RUN_OUTPUT_MAX (64u << 20)
#define HTTP_RESPONSE_MAX (1u << 20)
#define EXIT_DEADLINE_MS 5000

struct child {
    volatile pid_t pid;   /* 0 = free slot */
    volatile pid_t owner; /* getpid() of the process that started it */
};

struct private_dir {
    volatile pid_t owner; /* 0 = free slot */
    char path[256];
    char log[300]; /* the one file redis writes there, for the signal handler */
};

static struct child children[MAX_CHILDREN];
static struct private_dir dirs[MAX_DIRS];
static bool cleanup_installed;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int remember(pid_t pid)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        if (children[i].pid == 0) {
            children[i].owner = getpid();
            children[i].pid = pid;
            return 0;
        }
    }
    return -1;
}

static bool is_ours(pid_t pid)
{
    pid_t self = getpid();

    for (size_t i = 0; pid > 0 && i < MAX_CHILDREN; i++)
        if (children[i].pid == pid && children[i].owner == self)
            return true;
    return false;
}

static void forget(pid_t pid)
{
    for (size_t i = 0; pid > 0 && i < MAX_CHILDREN; i++)
        if (children[i].pid == pid)
            children[i].pid = 0;
}

/* Exit status as the header documents it: 0..255, or 128 + signal. */
static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/*
 * Stops every remembered child of this process: SIGTERM to all, up to EXIT_DEADLINE_MS
 * for them to go, SIGKILL to the rest, reap. Async-signal-safe.
 */
static void stop_all_children(void)
{
    pid_t self = getpid();
    int64_t deadline;
    bool left;

    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (children[i].pid > 0 && children[i].owner == self)
            kill(children[i].pid, SIGTERM);
    deadline = now_ms() + EXIT_DEADLINE_MS;
    do {
        left = false;
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
            pid_t pid = children[i].pid;
            if (pid <= 0 || children[i].owner != self)
                continue;
            if (waitpid(pid, NULL, WNOHANG) == 0)
                left = true;
            else
                children[i].pid = 0;
        }
        if (left)
            sleep_ms(10);
    } while (left && now_ms() < deadline);
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        pid_t pid = children[i].pid;
        if (pid <= 0 || children[i].owner != self)
            continue;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        children[i].pid = 0;
    }
}

static int remove_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int remove_tree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void remember_dir(const char *path)
{
    for (size_t i = 0; i < MAX_DIRS; i++) {
        if (dirs[i].owner == 0) {
            tm_strlcpy(dirs[i].path, path, sizeof(dirs[i].path));
            snprintf(dirs[i].log, sizeof(dirs[i].log), "%s/redis.log", path);
            dirs[i].owner = getpid();
            return;
        }
    }
}

static void forget_dir(const char *path)
{
    for (size_t i = 0; i < MAX_DIRS; i++)
        if (dirs[i].owner != 0 && strcmp(dirs[i].path, path) == 0)
            dirs[i].owner = 0;
}

static void exit_cleanup(void)
{
    stop_all_children();
    for (size_t i = 0; i < MAX_DIRS; i++) {
        if (dirs[i].owner == getpid()) {
            remove_tree(dirs[i].path);
            dirs[i].owner = 0;
        }
    }
}

static void signal_cleanup(int sig)
{
    struct sigaction sa;

    stop_all_children();
    /*
     * nftw is not async-signal-safe: remove the one file redis writes, then the dir (a
     * directory with an append-only file stays behind).
     */
    for (size_t i = 0; i < MAX_DIRS; i++) {
        if (dirs[i].owner == getpid()) {
            unlink(dirs[i].log);
            rmdir(dirs[i].path);
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
}

static void install_cleanup(void)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    struct sigaction sa, old;

    if (cleanup_installed)
        return;
    cleanup_installed = true;
    atexit(exit_cleanup);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = signal_cleanup;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < TM_ARRAY_LEN(sigs); i++) {
        /* Leave alone a handler the test installed itself. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            sigaction(sigs[i], &sa, NULL);
    }
}

const char *tm_harness_build_dir(void)
{
    const char *s = getenv("TM_BUILD");

    return s != NULL && *s != '\0' ? s : "build";
}

const char *tm_harness_root(void)
{
    const char *s = getenv("TM_ROOT");

    return s != NULL && *s != '\0' ? s : ".";
}

int tm_harness_tcp_connect(const char *addr, const char *src_ip)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    const char *colon = strrchr(addr, ':');
    char host[64];
    int fd;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1)
        return -1;
    dst.sin_port = htons((uint16_t)strtol(colon + 1, NULL, 10));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (src_ip != NULL && (inet_pton(AF_INET, src_ip, &src.sin_addr) != 1 ||
                           bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)) {
        close(fd);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tm_harness_free_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

pid_t tm_harness_spawn(char *const argv[], int *stdout_fd)
{
    int out[2] = {-1, -1}, status[2] = {-1, -1};
    pid_t parent = getpid(), pid = -1;
    int child_errno = 0;
    ssize_t n;
    pid_t result = -1;

    install_cleanup();
    if ((stdout_fd != NULL && pipe2(out, O_CLOEXEC) < 0) || pipe2(status, O_CLOEXEC) < 0) {
        fprintf(stderr, "harness: cannot create a pipe: %s\n", strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: cannot fork for '%s': %s\n", argv[0], strerror(errno));
        goto out;
    }
    if (pid == 0) {
        sigset_t none;

        /* Die with the test; if it is already gone, do not start at all. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (stdout_fd != NULL && dup2(out[1], STDOUT_FILENO) < 0)
            _exit(127);
        execvp(argv[0], argv);
        child_errno = errno;
        if (write(status[1], &child_errno, sizeof(child_errno)) < 0)
            _exit(127);
        _exit(127);
    }
    if (remember(pid) < 0)
        fprintf(stderr, "harness: more than %d children; pid %ld is not tracked\n", MAX_CHILDREN,
                (long)pid);
    close(status[1]);
    status[1] = -1;
    /* The status pipe closes on a successful exec and carries errno on a failed one. */
    do
        n = read(status[0], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(child_errno)) {
        fprintf(stderr, "harness: cannot run '%s': %s\n", argv[0], strerror(child_errno));
        waitpid(pid, NULL, 0);
        forget(pid);
        goto out;
    }
    if (stdout_fd != NULL) {
        *stdout_fd = out[0];
        out[0] = -1;
    }
    result = pid;
out:
    for (size_t i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (status[i] >= 0)
            close(status[i]);
    }
    return result;
}

/* Waits for pid until deadline (monotonic ms). Returns 1 with *st set, 0 on timeout, -1. */
static int wait_until(pid_t pid, int64_t deadline, int *st)
{
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= deadline)
            return 0;
        sleep_ms(5);
    }
}

int tm_harness_stop(pid_t pid, int timeout_ms)
{
    int st = 0, r;

    if (!is_ours(pid))
        return -1;
    kill(pid, SIGTERM);
    r = wait_until(pid, now_ms() + timeout_ms, &st);
    if (r == 0) {
        fprintf(stderr, "harness: pid %ld ignored SIGTERM for %d ms, sending SIGKILL\n", (long)pid,
                timeout_ms);
        kill(pid, SIGKILL);
        while ((r = (int)waitpid(pid, &st, 0)) < 0 && errno == EINTR)
            ;
        r = r == pid ? 1 : -1;
    }
    forget(pid);
    return r == 1 ? decode_status(st) : -1;
}

int tm_harness_wait(pid_t pid, int timeout_ms)
{
    int st = 0, r;

    if (!is_ours(pid))
        return -1;
    r = wait_until(pid, now_ms() + timeout_ms, &st);
    if (r == 0)
        return tm_harness_stop(pid, 1000) >= 0 ? -2 : -1;
    forget(pid);
    return r == 1 ? decode_status(st) : -1;
}

int tm_harness_kill9(pid_t pid)
{
    pid_t r;

    if (!is_ours(pid))
        return -1;
    kill(pid, SIGKILL);
    while ((r = waitpid(pid, NULL, 0)) < 0 && errno == EINTR)
        ;
    forget(pid);
    return r == pid ? 0 : -1;
}

/* Polls fd for input until deadline. Returns 1 when readable, 0 on timeout, -1. */
static int wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        int r;

        if (left <= 0)
            return 0;
        r = poll(&p, 1, (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

int tm_harness_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t n = 0;

    if (len == 0)
        return -1;
    buf[0] = '\0';
    for (;;) {
        char c;
        ssize_t r;

        if (wait_readable(fd, deadline) != 1)
            return -1;
        r = read(fd, &c, 1);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        if (n + 1 >= len)
            return -1;
        buf[n++] = c;
        buf[n] = '\0';
    }
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return (int)n;
}

int tm_harness_run(char *const argv[], char **out, size_t *outlen, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = -1, st = 0, rc = -1;
    bool timed_out = false;
    pid_t pid;

    if (out != NULL)
        *out = NULL;
    if (outlen != NULL)
        *outlen = 0;
    pid = tm_harness_spawn(argv, &fd);
    if (pid < 0)
        goto out;
    for (;;) {
        ssize_t r;
        int w = wait_readable(fd, deadline);

        if (w == 0) {
            timed_out = true;
            break;
        }
        if (w < 0)
            break;
        if (cap - len < 4096) {
            size_t ncap = cap == 0 ? 65536 : cap * 2;
            char *nbuf;
            if (ncap > RUN_OUTPUT_MAX + 1) {
                fprintf(stderr, "harness: '%s' wrote more than %u bytes\n", argv[0],
                        RUN_OUTPUT_MAX);
                timed_out = true; /* treat as runaway: kill it */
                break;
            }
            nbuf = realloc(buf, ncap);
            if (nbuf == NULL)
                break;
            buf = nbuf;
            cap = ncap;
        }
        r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    if (timed_out || wait_until(pid, deadline, &st) != 1) {
        fprintf(stderr, "harness: '%s' ran past %d ms, killing it\n", argv[0], timeout_ms);
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    forget(pid);
    rc = decode_status(st);
    if (buf == NULL)
        buf = calloc(1, 1);
    if (buf != NULL)
        buf[len] = '\0';
    if (out != NULL) {
        *out = buf;
        buf = NULL;
    }
    if (outlen != NULL)
        *outlen = len;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/* Connects to HOST:PORT (IPv6 hosts in brackets). Returns a blocking socket, or -1. */
static int connect_addr(const char *addr)
{
    struct addrinfo hints, *res = NULL;
    char host[128];
    const char *colon = strrchr(addr, ':');
    size_t hlen;
    int fd = -1;

    if (colon == NULL)
        return -1;
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -1;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int tm_harness_http(const char *addr, const char *method, const char *path, int *status,
                    char **body, int timeout_ms)
{
    return tm_harness_http_headers(addr, method, path, NULL, status, body, timeout_ms);
}

int tm_harness_http_headers(const char *addr, const char *method, const char *path,
                            const char *headers, int *status, char **body, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char req[1024];
    char *buf = NULL, *sep;
    size_t len = 0, off = 0;
    int fd = -1, n, code, rc = -1;

    if (body != NULL)
        *body = NULL;
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.0\r\nHost: %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n",
                 method, path, addr, headers != NULL ? headers : "");
    if (n < 0 || (size_t)n >= sizeof(req))
        goto out;
    buf = malloc(HTTP_RESPONSE_MAX + 1);
    fd = connect_addr(addr);
    if (buf == NULL || fd < 0)
        goto out;
    while (off < (size_t)n) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    /* HTTP/1.0 with Connection: close: the response ends where the server closes. */
    for (;;) {
        ssize_t r;

        if (len == HTTP_RESPONSE_MAX || wait_readable(fd, deadline) != 1)
            goto out;
        r = recv(fd, buf + len, HTTP_RESPONSE_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %3d", &code) != 1)
        goto out;
    sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL)
        goto out;
    *status = code;
    if (body != NULL) {
        *body = strdup(sep + 4);
        if (*body == NULL)
            goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/*
 * Asks the server on port for INFO server and checks that its process_id is pid, so that
 * a foreign redis that happens to hold the port is never mistaken for ours.
 */
static bool redis_is(int port, pid_t pid)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *reply = NULL;
    const char *p;
    bool ok = false;

    if (c == NULL || c->err)
        goto out;
    redisSetTimeout(c, tv);
    reply = redisCommand(c, "INFO server");
    if (reply == NULL || reply->type != REDIS_REPLY_STRING)
        goto out;
    p = strstr(reply->str, "process_id:");
    ok = p != NULL && strtol(p + strlen("process_id:"), NULL, 10) == (long)pid;
out:
    if (reply != NULL)
        freeReplyObject(reply);
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* Starts redis-server on port in r->dir and waits up to 10 s for it. Returns 0 or -1. */
static int redis_start_on(struct tm_harness_redis *r, int port)
{
    char portbuf[16], logfile[300];
    bool aof = r->appendfsync[0] != '\0';
    char *argv[] = {"redis-server",
                    "--port",
                    portbuf,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    aof ? "yes" : "no",
                    "--appendfsync",
                    aof ? r->appendfsync : "everysec",
                    "--aof-timestamp-enabled",
                    aof ? "yes" : "no",
                    "--dir",
                    r->dir,
                    "--daemonize",
                    "no",
                    "--logfile",
                    logfile,
                    NULL};
    int64_t deadline = now_ms() + 10000;
    pid_t pid;
    int st;

    snprintf(portbuf, sizeof(portbuf), "%d", port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", r->dir);
    pid = tm_harness_spawn(argv, NULL);
    if (pid < 0)
        return -1;
    while (now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            forget(pid);
            fprintf(stderr, "harness: redis-server on port %d exited (status %d); see '%s'\n", port,
                    decode_status(st), logfile);
            return -1;
        }
        if (redis_is(port, pid)) {
            r->pid = pid;
            r->port = port;
            return 0;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "harness: redis-server on port %d did not answer within 10 s\n", port);
    tm_harness_stop(pid, 2000);
    return -1;
}

int tm_harness_redis_start(struct tm_harness_redis *r)
{
    return tm_harness_redis_start_aof(r, "");
}

int tm_harness_redis_start_aof(struct tm_harness_redis *r, const char *appendfsync)
{
    const char *tmp = getenv("TMPDIR");

    memset(r, 0, sizeof(*r));
    r->pid = -1;
    if (tm_strlcpy(r->appendfsync, appendfsync, sizeof(r->appendfsync)) < 0)
        return -1;
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    if (snprintf(r->dir, sizeof(r->dir), "%s/tm-redis.XXXXXX", tmp) >= (int)sizeof(r->dir) ||
        mkdtemp(r->dir) == NULL) {
        fprintf(stderr, "harness: cannot create a directory under '%s': %s\n", tmp,
                strerror(errno));
        r->dir[0] = '\0';
        return -1;
    }
    install_cleanup();
    remember_dir(r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = tm_harness_free_port();
        if (port > 0 && redis_start_on(r, port) == 0)
            return 0;
    }
    remove_tree(r->dir);
    forget_dir(r->dir);
    r->dir[0] = '\0';
    return -1;
}

int tm_harness_redis_stop(struct tm_harness_redis *r)
{
    int rc = 0;

    if (r->pid > 0 && tm_harness_stop(r->pid, EXIT_DEADLINE_MS) != 0)
        rc = -1;
    r->pid = -1;
    if (r->dir[0] != '\0') {
        if (remove_tree(r->dir) < 0) {
            fprintf(stderr, "harness: cannot remove '%s': %s\n", r->dir, strerror(errno));
            rc = -1;
        }
        forget_dir(r->dir);
    }
    return rc;
}

/* Starts the server again on its port and directory (just released: a few tries). */
static int redis_start_again(struct tm_harness_redis *r)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (redis_start_on(r, r->port) == 0)
            return 0;
        sleep_ms(200);
    }
    return -1;
}

int tm_harness_redis_restart(struct tm_harness_redis *r)
{
    if (r->pid > 0 && tm_harness_stop(r->pid, EXIT_DEADLINE_MS) != 0)
        fprintf(stderr, "harness: redis-server %ld did not exit cleanly\n", (long)r->pid);
    r->pid = -1;
    return redis_start_again(r);
}

int tm_harness_redis_kill9_restart(struct tm_harness_redis *r)
{
    if (r->pid > 0 && tm_harness_kill9(r->pid) != 0)
        return -1;
    r->pid = -1;
    return redis_start_again(r);
}

int tm_harness_redis_kill9_rollback(struct tm_harness_redis *r, int seconds)
{
    char manifest[320], ts[32];
    char *argv[] = {"redis-check-aof", "--truncate-to-timestamp", ts, manifest, NULL};
    struct timespec now;

    if (r->appendfsync[0] == '\0' || (r->pid > 0 && tm_harness_kill9(r->pid) != 0))
        return -1;
    r->pid = -1;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(ts, sizeof(ts), "%lld", (long long)now.tv_sec - seconds);
    snprintf(manifest, sizeof(manifest), "%s/appendonlydir/appendonly.aof.manifest", r->dir);
    if (tm_harness_run(argv, NULL, NULL, 30000) != 0) {
        fprintf(stderr, "harness: redis-check-aof could not cut '%s' back to %s\n", manifest, ts);
        return -1;
    }
    return redis_start_again(r);
}

int tm_harness_kafka_start(struct tm_harness_kafka *k, int brokers, int partitions)
{
    char bin[512], nbrokers[16], nparts[16], line[512];
    char *argv[] = {bin,    "--brokers", nbrokers,      "--partitions",
                    nparts, "--admin",   "127.0.0.1:0", NULL};
    int64_t deadline;
    int fd = -1, rc = -1;

    memset(k, 0, sizeof(*k));
    k->pid = -1;
    snprintf(bin, sizeof(bin), "%s/tm-devkafka", tm_harness_build_dir());
    snprintf(nbrokers, sizeof(nbrokers), "%d", brokers);
    snprintf(nparts, sizeof(nparts), "%d", partitions);
    k->pid = tm_harness_spawn(argv, &fd);
    if (k->pid < 0)
        goto out;
    if (tm_harness_read_line(fd, k->bootstrap, sizeof(k->bootstrap), 15000) <= 0) {
        fprintf(stderr, "harness: no bootstrap line from '%s'\n", bin);
        goto out;
    }
    if (tm_harness_read_line(fd, line, sizeof(line), 5000) <= 0 ||
        strncmp(line, "admin ", 6) != 0 || tm_strlcpy(k->admin, line + 6, sizeof(k->admin)) < 0) {
        fprintf(stderr, "harness: no admin line from '%s'\n", bin);
        goto out;
    }
    /* Ready when a metadata request through the bootstrap servers sees the topic. */
    deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        char *kout = NULL;
        char *kargv[] = {"kcat", "-L", "-b", k->bootstrap, "-t", "tm.events.v1", "-m", "2", NULL};
        int st = tm_harness_run(kargv, &kout, NULL, 5000);
        bool seen = st == 0 && kout != NULL && strstr(kout, "topic \"tm.events.v1\" with") != NULL;

        free(kout);
        if (seen) {
            rc = 0;
            goto out;
        }
        sleep_ms(100);
    }
    fprintf(stderr, "harness: kcat never saw 'tm.events.v1' at '%s'\n", k->bootstrap);
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && k->pid > 0) {
        tm_harness_stop(k->pid, 5000);
        k->pid = -1;
    }
    return rc;
}

int tm_harness_kafka_stop(struct tm_harness_kafka *k)
{
    int st = -1;

    if (k->pid > 0)
        st = tm_harness_stop(k->pid, 10000);
    k->pid = -1;
    return st;
}

int tm_harness_kafka_brokers(struct tm_harness_kafka *k, bool up, int id)
{
    char path[64];
    int status = 0;

    snprintf(path, sizeof(path), "/brokers/%s?id=%d", up ? "up" : "down", id);
    if (tm_harness_http(k->admin, "POST", path, &status, NULL, 5000) < 0)
        return -1;
    return status == 200 ? 0 : -1;
}
