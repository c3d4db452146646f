/*
 * test_net.c - HOST:PORT parsing and formatting (IPv4, bracketed IPv6, the special hosts,
 * and a list of inputs that must be refused without touching the resolver), and
 * listening sockets on loopback: port 0 read back, socket flags, address in use,
 * SO_REUSEPORT, datagram sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "tm/tm_net.h"

/* Parses addr and formats it back; fails the test if either step fails. */
static void round_trip(const char *addr, const char *want, int family)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char err[TM_ERR_LEN] = "";
    char out[TM_ADDR_LEN];

    if (tm_net_parse_addr(addr, &ss, &len, err) != 0)
        fail_msg("'%s' did not parse: %s", addr, err);
    assert_int_equal(ss.ss_family, family);
    assert_int_equal(len,
                     family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    assert_int_equal(tm_net_format_addr((struct sockaddr *)&ss, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

/* The port (host order) of a HOST:PORT string. */
static int port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    int port = 0;

    assert_non_null(colon);
    for (const char *c = colon + 1; *c != '\0'; c++) {
        assert_true(*c >= '0' && *c <= '9');
        port = port * 10 + (*c - '0');
    }
    return port;
}

static void test_net_parse_format_ipv4(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    round_trip("127.0.0.1:5044", "127.0.0.1:5044", AF_INET);
    round_trip("0.0.0.0:0", "0.0.0.0:0", AF_INET);
    round_trip("255.255.255.255:65535", "255.255.255.255:65535", AF_INET);
    round_trip("10.1.2.3:00080", "10.1.2.3:80", AF_INET);
    assert_int_equal(tm_net_parse_addr("192.0.2.7:8088", &ss, &len, NULL), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8088);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0xc0000207);
}

static void test_net_parse_format_ipv6(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    round_trip("[::1]:0", "[::1]:0", AF_INET6);
    round_trip("[::]:8080", "[::]:8080", AF_INET6);
    round_trip("[2001:db8::1]:5044", "[2001:db8::1]:5044", AF_INET6);
    round_trip("[2001:0DB8:0:0:0:0:0:1]:1", "[2001:db8::1]:1", AF_INET6);
    round_trip("[::ffff:192.0.2.1]:514", "[::ffff:192.0.2.1]:514", AF_INET6);
    /* A numeric zone is kept as the scope id. */
    assert_int_equal(tm_net_parse_addr("[fe80::1%1]:80", &ss, &len, NULL), 0);
    assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 1);
}

static void test_net_parse_special_hosts(void **state)
{
    (void)state;
    round_trip("localhost:6390", "127.0.0.1:6390", AF_INET);
    round_trip("LocalHost:1", "127.0.0.1:1", AF_INET);
    round_trip("*:5514", "0.0.0.0:5514", AF_INET);
    round_trip(":5514", "0.0.0.0:5514", AF_INET);
}

static void test_net_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:99999999",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1: 80",
        "127.0.0.1:80 ",
        "127.0.0.1:0x50",
        "127.0.0.1:80x",
        "1.2.3.256:80",
        "127.1:80",
        "1.2.3.4.5:80",
        "::1:80",
        "::1",
        "[::1]",
        "[::1]80",
        "[::1:80",
        "[]:80",
        "[::1]:",
        "[zz::1]:80",
        "[127.0.0.1]:80",
        "[::1]]:80",
        "bad host:80",
        "bad/host:80",
        "host\n:80",
    };
    struct sockaddr_storage ss;
    socklen_t len;
    char err[TM_ERR_LEN];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (tm_net_parse_addr(bad[i], &ss, &len, err) == 0)
            fail_msg("'%s' parsed but should not", bad[i]);
        if (err[0] == '\0')
            fail_msg("'%s' refused without a reason", bad[i]);
    }
    assert_int_equal(tm_net_parse_addr("1.2.3.256:80", &ss, &len, err), -1);
    assert_string_equal(err, "bad address '1.2.3.256:80': not an IPv4 address");
    assert_int_equal(tm_net_parse_addr("127.0.0.1", &ss, &len, err), -1);
    assert_string_equal(err, "bad address '127.0.0.1': missing port (use HOST:PORT)");
    assert_int_equal(tm_net_parse_addr("::1:80", &ss, &len, err), -1);
    assert_string_equal(err, "bad address '::1:80': IPv6 addresses need brackets ([::1]:PORT)");
    assert_int_equal(tm_net_parse_addr("127.0.0.1:65536", &ss, &len, err), -1);
    assert_string_equal(err, "bad address '127.0.0.1:65536': port is not a number in 0-65535");
    assert_int_equal(tm_net_parse_addr(NULL, &ss, &len, err), -1);
}

static void test_net_format_unknown_family(void **state)
{
    struct sockaddr_un sun;
    char out[TM_ADDR_LEN];
    char tiny[8];
    struct sockaddr_in sin;
    (void)state;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_int_equal(tm_net_format_addr((struct sockaddr *)&sun, out, sizeof(out)), -1);
    assert_string_equal(out, "(unknown)");
    /* Too small a buffer is an error, never an overflow. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(5044);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(tm_net_format_addr((struct sockaddr *)&sin, tiny, sizeof(tiny)), -1);
    assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_net_listen_port_zero(void **state)
{
    char err[TM_ERR_LEN] = "";
    char bound[TM_ADDR_LEN];
    struct sockaddr_in sin;
    int fd, client = -1, port;
    (void)state;

    fd = tm_net_listen("127.0.0.1:0", SOCK_STREAM, false, err);
    if (fd < 0)
        fail_msg("listen: %s", err);
    assert_int_equal(tm_net_local_addr(fd, bound, sizeof(bound)), 0);
    assert_int_equal(strncmp(bound, "127.0.0.1:", 10), 0);
    port = port_of(bound);
    assert_true(port > 0 && port <= 65535);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    /* It really listens: a blocking connect completes from the backlog. */
    client = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(client >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(client, (struct sockaddr *)&sin, sizeof(sin)), 0);
    close(client);
    close(fd);
}

static void test_net_listen_address_in_use(void **state)
{
    char err[TM_ERR_LEN] = "";
    char bound[TM_ADDR_LEN];
    char want[TM_ERR_LEN];
    int fd, fd2, a, b;
    (void)state;

    fd = tm_net_listen("127.0.0.1:0", SOCK_STREAM, false, err);
    assert_true(fd >= 0);
    assert_int_equal(tm_net_local_addr(fd, bound, sizeof(bound)), 0);
    fd2 = tm_net_listen(bound, SOCK_STREAM, false, err);
    assert_int_equal(fd2, -1);
    snprintf(want, sizeof(want), "cannot bind '%s': %s", bound, strerror(EADDRINUSE));
    assert_string_equal(err, want);
    close(fd);

    /* With SO_REUSEPORT on both, two sockets share the port. */
    a = tm_net_listen("127.0.0.1:0", SOCK_STREAM, true, err);
    assert_true(a >= 0);
    assert_int_equal(tm_net_local_addr(a, bound, sizeof(bound)), 0);
    b = tm_net_listen(bound, SOCK_STREAM, true, err);
    if (b < 0)
        fail_msg("second SO_REUSEPORT listener on '%s': %s", bound, err);
    close(b);
    close(a);

    assert_int_equal(tm_net_listen("127.0.0.1:0", SOCK_RAW, false, err), -1);
    assert_int_equal(tm_net_listen("nowhere", SOCK_STREAM, false, err), -1);
    assert_string_equal(err, "bad address 'nowhere': missing port (use HOST:PORT)");
}

static void test_net_listen_datagram_and_ipv6(void **state)
{
    char err[TM_ERR_LEN] = "";
    char bound[TM_ADDR_LEN];
    int fd;
    (void)state;

    fd = tm_net_listen("127.0.0.1:0", SOCK_DGRAM, false, err);
    if (fd < 0)
        fail_msg("udp listen: %s", err);
    assert_int_equal(tm_net_local_addr(fd, bound, sizeof(bound)), 0);
    assert_true(port_of(bound) > 0);
    close(fd);

    fd = tm_net_listen("[::1]:0", SOCK_STREAM, false, err);
    if (fd < 0) {
        /* Containers without IPv6 loopback cannot run the rest. */
        assert_non_null(strstr(err, "'[::1]:0'"));
        skip();
    }
    assert_int_equal(tm_net_local_addr(fd, bound, sizeof(bound)), 0);
    assert_int_equal(strncmp(bound, "[::1]:", 6), 0);
    assert_true(port_of(bound) > 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_parse_format_ipv4),
        cmocka_unit_test(test_net_parse_format_ipv6),
        cmocka_unit_test(test_net_parse_special_hosts),
        cmocka_unit_test(test_net_parse_rejects),
        cmocka_unit_test(test_net_format_unknown_family),
        cmocka_unit_test(test_net_listen_port_zero),
        cmocka_unit_test(test_net_listen_address_in_use),
        cmocka_unit_test(test_net_listen_datagram_and_ipv6),
    };

    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
