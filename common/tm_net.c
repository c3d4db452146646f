/*
 * tm_net.c - the HOST:PORT addresses of the command lines and config files, and the
 * listening sockets bound to them.
 *
 * Parsing accepts, in this order: a bracketed IPv6 literal ("[::1]:0", a zone such as
 * "[fe80::1%eth0]:80" allowed), an empty host or "*" (0.0.0.0, all IPv4 addresses),
 * "localhost" (127.0.0.1, without asking the resolver, so it works in containers with no
 * hosts file), an IPv4 dotted quad, and otherwise a host name, which is resolved with
 * getaddrinfo() - a blocking call, meant for start-up, and the first answer wins. The
 * port is always 0..65535 in plain decimal digits. Nothing that looks numeric ever
 * reaches the resolver, so a mistyped address fails at once instead of after a DNS
 * timeout.
 *
 * Sockets are created non-blocking and close-on-exec, ready for libevent.
 */
#include "tm/tm_net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The longest host part we accept: a DNS name is at most 253 characters. */
#define HOST_LEN 256
/* Listen backlog of stream sockets; the kernel caps it at net.core.somaxconn. */
#define BACKLOG 1024

/* Parses 1 to 5 decimal digits, 0..65535, nothing else (no sign, no spaces). */
static int parse_port(const char *s, uint16_t *out)
{
    int64_t v;
    size_t n = strlen(s);

    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    if (tm_parse_int64(s, 0, 65535, &v) != 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static bool looks_numeric(const char *host)
{
    for (const char *c = host; *c != '\0'; c++)
        if (!isdigit((unsigned char)*c) && *c != '.')
            return false;
    return true;
}

static bool valid_host_name(const char *host)
{
    for (const char *c = host; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' && *c != '_')
            return false;
    return true;
}

/* Copies the first answer of getaddrinfo(host) into ss. Returns 0 or a gai error. */
static int resolve(const char *host, int family, int flags, struct sockaddr_storage *ss,
                   socklen_t *sslen)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return rc;
    if (res->ai_addrlen > sizeof(*ss)) {
        rc = EAI_FAMILY;
        goto out;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
out:
    freeaddrinfo(res);
    return rc;
}

int tm_net_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *err)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    char host[HOST_LEN];
    const char *port_s, *host_s;
    socklen_t sslen = 0;
    size_t hlen;
    uint16_t port;
    bool bracketed = false;
    int rc;

    if (addr == NULL)
        return tm_err(err, "missing address (use HOST:PORT)");
    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (close == NULL)
            return tm_err(err, "bad address '%.80s': missing ']'", addr);
        if (close[1] != ':')
            return tm_err(err, "bad address '%.80s': missing port (use [IPV6]:PORT)", addr);
        host_s = addr + 1;
        hlen = (size_t)(close - host_s);
        port_s = close + 2;
        bracketed = true;
    } else {
        const char *colon = strrchr(addr, ':');

        if (colon == NULL)
            return tm_err(err, "bad address '%.80s': missing port (use HOST:PORT)", addr);
        host_s = addr;
        hlen = (size_t)(colon - addr);
        port_s = colon + 1;
        if (memchr(host_s, ':', hlen) != NULL)
            return tm_err(err, "bad address '%.80s': IPv6 addresses need brackets ([::1]:PORT)",
                          addr);
    }
    if (hlen >= sizeof(host))
        return tm_err(err, "bad address '%.80s...': host too long", addr);
    memcpy(host, host_s, hlen);
    host[hlen] = '\0';
    if (parse_port(port_s, &port) != 0)
        return tm_err(err, "bad address '%.80s': port is not a number in 0-65535", addr);

    if (bracketed) {
        if (hlen == 0 || resolve(host, AF_INET6, AI_NUMERICHOST, ss, &sslen) != 0)
            return tm_err(err, "bad address '%.80s': not an IPv6 address", addr);
        sin6->sin6_port = htons(port);
    } else if (hlen == 0 || strcmp(host, "*") == 0) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons(port);
        sslen = sizeof(*sin);
    } else if (strcasecmp(host, "localhost") == 0) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin->sin_port = htons(port);
        sslen = sizeof(*sin);
    } else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sslen = sizeof(*sin);
    } else if (looks_numeric(host)) {
        return tm_err(err, "bad address '%.80s': not an IPv4 address", addr);
    } else if (!valid_host_name(host)) {
        return tm_err(err, "bad address '%.80s': bad character in host", addr);
    } else {
        rc = resolve(host, AF_UNSPEC, AI_ADDRCONFIG, ss, &sslen);
        if (rc != 0)
            return tm_err(err, "cannot resolve '%.80s': %s", host, gai_strerror(rc));
        if (ss->ss_family == AF_INET)
            sin->sin_port = htons(port);
        else
            sin6->sin6_port = htons(port);
    }
    if (len != NULL)
        *len = sslen;
    return 0;
}

int tm_net_format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    char zone[IF_NAMESIZE + 1] = "";
    int n = -1;

    if (out == NULL || outlen == 0)
        return -1;
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) != NULL)
            n = snprintf(out, outlen, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (sin6->sin6_scope_id != 0) {
            char name[IF_NAMESIZE];

            if (if_indextoname(sin6->sin6_scope_id, name) != NULL)
                snprintf(zone, sizeof(zone), "%%%s", name);
            else
                snprintf(zone, sizeof(zone), "%%%u", (unsigned)sin6->sin6_scope_id);
        }
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) != NULL)
            n = snprintf(out, outlen, "[%s%s]:%u", ip, zone, (unsigned)ntohs(sin6->sin6_port));
    }
    if (n < 0 || (size_t)n >= outlen) {
        tm_strlcpy(out, "(unknown)", outlen);
        return -1;
    }
    return 0;
}

int tm_net_listen(const char *addr, int type, bool reuseport, char *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int fd = -1, result = -1, one = 1;

    if (type != SOCK_STREAM && type != SOCK_DGRAM) {
        tm_err(err, "cannot listen on '%.80s': socket type %d is not stream or datagram",
               addr != NULL ? addr : "", type);
        goto out;
    }
    if (tm_net_parse_addr(addr, &ss, &sslen, err) != 0)
        goto out;
    fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tm_err(err, "cannot listen on '%.80s': socket: %s", addr, strerror(errno));
        goto out;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        tm_err(err, "cannot listen on '%.80s': SO_REUSEADDR: %s", addr, strerror(errno));
        goto out;
    }
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        tm_err(err, "cannot listen on '%.80s': SO_REUSEPORT: %s", addr, strerror(errno));
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
        tm_err(err, "cannot bind '%.80s': %s", addr, strerror(errno));
        goto out;
    }
    if (type == SOCK_STREAM && listen(fd, BACKLOG) != 0) {
        tm_err(err, "cannot listen on '%.80s': %s", addr, strerror(errno));
        goto out;
    }
    result = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return result;
}

int tm_net_local_addr(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        if (out != NULL && outlen > 0)
            tm_strlcpy(out, "(unknown)", outlen);
        return -1;
    }
    return tm_net_format_addr((const struct sockaddr *)&ss, out, outlen);
}
