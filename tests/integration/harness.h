/*
 * harness.h - helpers for integration tests: run the project's real binaries and the real
 * redis-server and kcat on loopback ports picked at run time, talk to them, and make sure
 * nothing outlives the test.
 *
 * Every process started through tm_harness_spawn() is remembered by pid. An atexit
 * handler and SIGINT/SIGTERM handlers stop (SIGTERM, then SIGKILL after a deadline) and
 * reap every remembered pid that is still running; children also get SIGKILL from the
 * kernel if the test process dies first (PR_SET_PDEATHSIG). Only pids started here are
 * ever signalled, never processes found by name.
 *
 * Paths: binaries are looked up in tm_harness_build_dir() ($TM_BUILD, default "build"),
 * data files under tm_harness_root() ($TM_ROOT, default ".").
 */
#ifndef TM_HARNESS_H
#define TM_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* $TM_BUILD, or "build". */
const char *tm_harness_build_dir(void);

/* $TM_ROOT, or ".". */
const char *tm_harness_root(void);

/*
 * Returns a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back,
 * closed), or -1. Someone else may take it before the caller does; callers that start a
 * server on it retry with another port when the server fails to bind.
 */
int tm_harness_free_port(void);

/*
 * A blocking TCP connection to addr (IPv4 HOST:PORT), from the local address src_ip when
 * it is not NULL (any 127.0.0.0/8 address works on loopback). Returns the socket or -1.
 */
int tm_harness_tcp_connect(const char *addr, const char *src_ip);

/*
 * Starts argv[0] (looked up in PATH unless it holds a '/') with argv. When stdout_fd is
 * not NULL the child's stdout goes to a pipe whose reading end (close-on-exec) is stored
 * there and belongs to the caller; otherwise stdout is inherited. stderr is inherited.
 * Returns the pid, or -1 (with a message on stderr) when the program cannot be started.
 */
pid_t tm_harness_spawn(char *const argv[], int *stdout_fd);

/*
 * Sends SIGTERM to pid, waits up to timeout_ms for it to exit, then sends SIGKILL, and
 * reaps it. Returns its exit status (0..255), 128 + N when a signal N ended it (137 after
 * the SIGKILL fallback), or -1 when pid is not a running child of ours.
 */
int tm_harness_stop(pid_t pid, int timeout_ms);

/*
 * Waits up to timeout_ms for pid to exit by itself and reaps it. Returns its exit status
 * as tm_harness_stop() does, -2 when it was still running (it is then stopped), or -1
 * when pid is not a running child of ours.
 */
int tm_harness_wait(pid_t pid, int timeout_ms);

/* Sends SIGKILL to pid and reaps it. Returns 0, or -1 when pid is not a child of ours. */
int tm_harness_kill9(pid_t pid);

/*
 * Reads one line from fd into buf (len bytes) within timeout_ms, one byte at a time so
 * that nothing after the newline is consumed. The newline is stripped and buf is always
 * NUL-terminated. Returns the line's length, or -1 on timeout, end of file, an error or a
 * line longer than len - 1.
 */
int tm_harness_read_line(int fd, char *buf, size_t len, int timeout_ms);

/*
 * Runs argv to completion, capturing its stdout (at most 64 MB) into a NUL-terminated
 * malloc'd buffer stored in *out (the caller frees it) with its length in *outlen (out and
 * outlen may be NULL to discard the output). Kills it with SIGKILL past timeout_ms.
 * Returns the exit status as tm_harness_stop() does (137 after a timeout), or -1 when it
 * could not be started (*out is then NULL).
 */
int tm_harness_run(char *const argv[], char **out, size_t *outlen, int timeout_ms);

/*
 * A blocking HTTP/1.0 request to addr (HOST:PORT) with an empty body. Stores the status
 * code in *status and, when body is not NULL, the response body (NUL-terminated, malloc'd,
 * the caller frees it; at most 1 MB). Returns 0, or -1 when no complete response arrived
 * within timeout_ms.
 */
int tm_harness_http(const char *addr, const char *method, const char *path, int *status,
                    char **body, int timeout_ms);

/*
 * tm_harness_http with extra request headers: headers is NULL or complete header lines,
 * each ending in CRLF ("Authorization: Bearer T\r\n").
 */
int tm_harness_http_headers(const char *addr, const char *method, const char *path,
                            const char *headers, int *status, char **body, int timeout_ms);

/*
 * A private redis-server bound to 127.0.0.1 in its own directory: without persistence,
 * or with an append-only file (appendfsync non-empty).
 */
struct tm_harness_redis {
    pid_t pid;
    int port;
    char dir[256];
    char appendfsync[16]; /* "" no persistence; else the AOF's appendfsync policy */
};

/*
 * Creates a private directory (mkdtemp), starts redis-server on a free loopback port in
 * it without persistence, and waits up to 10 s until it answers PING (and is the process
 * we started). Tries other ports when the server fails to start. Returns 0 or -1.
 */
int tm_harness_redis_start(struct tm_harness_redis *r);

/*
 * As tm_harness_redis_start, with persistence: an append-only file in the private
 * directory (no RDB snapshots), fsynced as appendfsync says ("always", "everysec" or
 * "no"). A restart on the same directory loads it. Returns 0 or -1.
 */
int tm_harness_redis_start_aof(struct tm_harness_redis *r, const char *appendfsync);

/*
 * Stops the server by pid (SIGTERM, SIGKILL after 5 s), reaps it and removes its
 * directory. Returns 0, or -1 when it did not exit cleanly or the directory stayed.
 */
int tm_harness_redis_stop(struct tm_harness_redis *r);

/*
 * Stops the server and starts a fresh one on the same port and directory; with no
 * persistence it starts empty. Returns 0 or -1.
 */
int tm_harness_redis_restart(struct tm_harness_redis *r);

/*
 * Crashes the server (SIGKILL: no shutdown, no final fsync) and starts it again on the
 * same port and directory, where it loads what its append-only file holds. Returns 0 or -1.
 */
int tm_harness_redis_kill9_restart(struct tm_harness_redis *r);

/*
 * Crashes the server (SIGKILL), cuts its append-only file back to how it stood seconds
 * ago (redis-check-aof --truncate-to-timestamp, at a transaction boundary: the AOF carries
 * time stamps), and starts it again: a Redis that lost its last acknowledged writes, as
 * one with appendfsync everysec can after a power cut. Returns 0 or -1.
 */
int tm_harness_redis_kill9_rollback(struct tm_harness_redis *r, int seconds);

/* A running tm-devkafka. */
struct tm_harness_kafka {
    pid_t pid;
    char bootstrap[256];
    char admin[64]; /* HOST:PORT of its admin server */
};

/*
 * Starts $TM_BUILD/tm-devkafka with brokers and partitions and an admin server on a free
 * port, reads its bootstrap and admin lines, and waits until kcat sees tm.events.v1.
 * Returns 0 or -1.
 */
int tm_harness_kafka_start(struct tm_harness_kafka *k, int brokers, int partitions);

/* Stops it (SIGTERM, SIGKILL after 10 s). Returns its exit status as tm_harness_stop(). */
int tm_harness_kafka_stop(struct tm_harness_kafka *k);

/*
 * Takes broker id (1..brokers, or -1 for all) down or brings it up through the admin
 * control routes. Returns 0 when the admin server answered 200, or -1.
 */
int tm_harness_kafka_brokers(struct tm_harness_kafka *k, bool up, int id);

#endif
