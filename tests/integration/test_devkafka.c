/*
 * test_devkafka.c - tm-devkafka as its users see it: the real binary on loopback ports,
 * inspected with kcat. Metadata must list the three project topics with the requested
 * partition count and replication factor on the requested brokers; the first stdout line
 * is the bootstrap list and --bootstrap-file holds the same; SIGTERM ends it with status
 * 0; the admin routes take brokers down (metadata requests then fail) and up again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

static const char *const topics[] = {"tm.events.v1", "tm.events.rejected", "tm.heartbeats"};

struct fixture {
    struct tm_harness_kafka kafka;
    char dir[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->kafka.pid = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[512];

    if (f->kafka.pid > 0)
        tm_harness_kafka_stop(&f->kafka);
    if (f->dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/kafka.bootstrap", f->dir);
        unlink(path);
        rmdir(f->dir);
    }
    free(f);
    return 0;
}

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s != '\0'; s++)
        n += *s == c;
    return n;
}

/* Runs kcat -L -J against the cluster and returns its parsed metadata. */
static json_t *kafka_metadata(const char *bootstrap)
{
    char *argv[] = {"kcat", "-L", "-J", "-b", (char *)bootstrap, "-m", "5", NULL};
    json_error_t jerr;
    json_t *md;
    char *out = NULL;
    size_t len = 0;
    int st;

    st = tm_harness_run(argv, &out, &len, 20000);
    assert_int_equal(st, 0);
    assert_non_null(out);
    md = json_loadb(out, len, 0, &jerr);
    if (md == NULL)
        fail_msg("kcat -L -J printed no JSON (%s): %.200s", jerr.text, out);
    free(out);
    return md;
}

static json_t *find_topic(json_t *md, const char *name)
{
    json_t *topic;
    size_t i;

    json_array_foreach(json_object_get(md, "topics"), i, topic)
    {
        if (strcmp(json_string_value(json_object_get(topic, "topic")), name) == 0)
            return topic;
    }
    return NULL;
}

/* The cluster's metadata shows brokers brokers and the topics with partitions each. */
static void check_metadata(const struct tm_harness_kafka *k, int brokers, int partitions)
{
    int replication = brokers < 3 ? brokers : 3;
    json_t *md = kafka_metadata(k->bootstrap);
    json_t *list = json_object_get(md, "brokers"), *b;
    size_t i;

    /* "127.0.0.1:P1,127.0.0.1:P2": one entry per broker, each a broker of the metadata. */
    assert_int_equal(count_char(k->bootstrap, ',') + 1, brokers);
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), brokers);
    json_array_foreach(list, i, b)
    {
        const char *name = json_string_value(json_object_get(b, "name"));
        json_int_t id = json_integer_value(json_object_get(b, "id"));
        assert_non_null(name);
        assert_true(strncmp(name, "127.0.0.1:", 10) == 0);
        assert_non_null(strstr(k->bootstrap, name));
        assert_true(id >= 1 && id <= brokers);
    }

    for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
        json_t *topic = find_topic(md, topics[t]), *parts, *p;
        unsigned seen = 0;

        if (topic == NULL)
            fail_msg("topic '%s' is not in the metadata", topics[t]);
        assert_null(json_object_get(topic, "error"));
        parts = json_object_get(topic, "partitions");
        assert_int_equal(json_array_size(parts), partitions);
        json_array_foreach(parts, i, p)
        {
            json_int_t pid = json_integer_value(json_object_get(p, "partition"));
            json_int_t leader = json_integer_value(json_object_get(p, "leader"));
            assert_true(pid >= 0 && pid < partitions);
            seen |= 1u << pid;
            assert_true(leader >= 1 && leader <= brokers);
            assert_int_equal(json_array_size(json_object_get(p, "replicas")), replication);
        }
        assert_int_equal(seen, (1u << partitions) - 1);
    }
    json_decref(md);
}

static void test_devkafka_metadata_one_broker(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(tm_harness_kafka_start(&f->kafka, 1, 6), 0);
    check_metadata(&f->kafka, 1, 6);
    assert_int_equal(tm_harness_kafka_stop(&f->kafka), 0);
}

static void test_devkafka_metadata_three_brokers(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(tm_harness_kafka_start(&f->kafka, 3, 4), 0);
    check_metadata(&f->kafka, 3, 4);
    assert_int_equal(tm_harness_kafka_stop(&f->kafka), 0);
}

static void test_devkafka_bootstrap_file_and_sigterm(void **state)
{
    struct fixture *f = *state;
    char bin[512], file[512], line[512], content[512];
    char *argv[] = {bin, "--brokers", "2", "--bootstrap-file", file, NULL};
    struct dirent *de;
    struct stat st;
    FILE *fp;
    DIR *d;
    int fd = -1, entries = 0;

    snprintf(f->dir, sizeof(f->dir), "%s/tm-devkafka-test.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(bin, sizeof(bin), "%s/tm-devkafka", tm_harness_build_dir());
    snprintf(file, sizeof(file), "%s/kafka.bootstrap", f->dir);

    f->kafka.pid = tm_harness_spawn(argv, &fd);
    assert_true(f->kafka.pid > 0);
    /* First stdout line: the bootstrap servers, one per broker, nothing else. */
    assert_true(tm_harness_read_line(fd, line, sizeof(line), 15000) > 0);
    close(fd);
    assert_int_equal(count_char(line, ','), 1);
    assert_null(strchr(line, ' '));
    assert_true(strncmp(line, "127.0.0.1:", 10) == 0);

    /* The file holds the same line and a newline; no temporary file is left beside it. */
    fp = fopen(file, "r");
    assert_non_null(fp);
    assert_non_null(fgets(content, sizeof(content), fp));
    fclose(fp);
    assert_int_equal(strlen(content), strlen(line) + 1);
    assert_memory_equal(content, line, strlen(line));
    assert_int_equal(content[strlen(line)], '\n');
    d = opendir(f->dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        entries += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 1);

    /* The bootstrap works, and SIGTERM ends the process with status 0 and removes the file. */
    snprintf(f->kafka.bootstrap, sizeof(f->kafka.bootstrap), "%s", line);
    {
        char *kargv[] = {"kcat", "-L", "-b", line, "-m", "5", NULL};
        assert_int_equal(tm_harness_run(kargv, NULL, NULL, 20000), 0);
    }
    assert_int_equal(tm_harness_stop(f->kafka.pid, 10000), 0);
    f->kafka.pid = -1;
    assert_int_equal(stat(file, &st), -1);
    assert_int_equal(errno, ENOENT);
}

/* The value of an unlabelled metric in Prometheus text, or -1 when it is absent. */
static double metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);

    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* kcat's metadata request with a 3 s timeout: its exit status (137 if it hung). */
static int kcat_metadata_status(const char *bootstrap)
{
    char *argv[] = {"kcat", "-L", "-b", (char *)bootstrap, "-m", "3", NULL};

    return tm_harness_run(argv, NULL, NULL, 15000);
}

static void test_devkafka_broker_down_up(void **state)
{
    struct fixture *f = *state;
    char *body = NULL;
    int status = 0;

    assert_int_equal(tm_harness_kafka_start(&f->kafka, 3, 2), 0);
    assert_int_equal(tm_harness_http(f->kafka.admin, "GET", "/healthz", &status, NULL, 5000), 0);
    assert_int_equal(status, 200);

    /* One broker down: the other two still answer metadata requests. */
    assert_int_equal(tm_harness_kafka_brokers(&f->kafka, false, 2), 0);
    assert_int_equal(kcat_metadata_status(f->kafka.bootstrap), 0);
    assert_int_equal(tm_harness_http(f->kafka.admin, "GET", "/healthz", &status, NULL, 5000), 0);
    assert_int_equal(status, 200);

    /* Every broker down: the request fails, and /healthz says so. */
    assert_int_equal(tm_harness_kafka_brokers(&f->kafka, false, -1), 0);
    assert_int_not_equal(kcat_metadata_status(f->kafka.bootstrap), 0);
    assert_int_equal(tm_harness_http(f->kafka.admin, "GET", "/healthz", &status, &body, 5000), 0);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "down"));
    free(body);
    body = NULL;

    /* Up again: metadata requests succeed once more. */
    assert_int_equal(tm_harness_kafka_brokers(&f->kafka, true, -1), 0);
    assert_int_equal(kcat_metadata_status(f->kafka.bootstrap), 0);
    check_metadata(&f->kafka, 3, 2);

    /* The metrics follow; a bad id and a GET are refused. */
    assert_int_equal(tm_harness_http(f->kafka.admin, "GET", "/metrics", &status, &body, 5000), 0);
    assert_int_equal(status, 200);
    assert_true(metric_value(body, "tm_devkafka_brokers_up") == 3.0);
    free(body);
    body = NULL;
    assert_int_equal(tm_harness_kafka_brokers(&f->kafka, false, 9), -1);
    assert_int_equal(tm_harness_kafka_brokers(&f->kafka, false, 0), -1);
    assert_int_equal(
        tm_harness_http(f->kafka.admin, "GET", "/brokers/down?id=1", &status, NULL, 5000), 0);
    assert_int_equal(status, 405);
    assert_int_equal(tm_harness_http(f->kafka.admin, "POST", "/brokers/down", &status, NULL, 5000),
                     0);
    assert_int_equal(status, 400);
    assert_int_equal(kcat_metadata_status(f->kafka.bootstrap), 0);

    assert_int_equal(tm_harness_kafka_stop(&f->kafka), 0);
}

static void test_devkafka_help_states_limits(void **state)
{
    char bin[512];
    char *help[] = {bin, "--help", NULL};
    char *bad_brokers[] = {bin, "--brokers", "0", NULL};
    char *bad_partitions[] = {bin, "--partitions", "six", NULL};
    char *out = NULL;

    (void)state;
    snprintf(bin, sizeof(bin), "%s/tm-devkafka", tm_harness_build_dir());
    assert_int_equal(tm_harness_run(help, &out, NULL, 10000), 0);
    /* The warnings users must not miss. */
    assert_non_null(strstr(out, "memory only"));
    assert_non_null(strstr(out, "5 MB"));
    assert_non_null(strstr(out, "silently drops"));
    assert_non_null(strstr(out, "real Kafka cluster"));
    free(out);
    assert_int_equal(tm_harness_run(bad_brokers, NULL, NULL, 10000), 2);
    assert_int_equal(tm_harness_run(bad_partitions, NULL, NULL, 10000), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_devkafka_metadata_one_broker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devkafka_metadata_three_brokers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devkafka_bootstrap_file_and_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devkafka_broker_down_up, setup, teardown),
        cmocka_unit_test(test_devkafka_help_states_limits),
    };

    return cmocka_run_group_tests_name("devkafka", tests, NULL, NULL);
}
