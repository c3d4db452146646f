/*
 * cluster.c - tm-devkafka's mock Kafka cluster. It owns one librdkafka producer handle,
 * which librdkafka's mock cluster (rdkafka_mock.h) needs only for bookkeeping (it never
 * produces anything), and the cluster built on it: N brokers listening on 127.0.0.1 at
 * ports the kernel picks, and the project's topics created up front with the requested
 * partition count, so that clients see them in their first metadata request.
 *
 * What the mock cluster is and is not: the data lives in this process's memory only and
 * is gone when it exits; each partition keeps only about the last 5 MB of stored batches
 * and silently drops older ones (200,000 uncompressed 350-byte messages produced into one
 * partition leave about 14,000). It is for development and tests; production points at a
 * real Kafka cluster. Tests and benchmarks must stay under that limit: compress, spread
 * over partitions, or consume while producing.
 *
 * Broker state (up or down) is mirrored here, because librdkafka offers no way to read it
 * back. Everything runs on the caller's thread; librdkafka's mock threads do the network.
 */
#include "devkafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "tm/tm_log.h"

const char *const tm_devkafka_topics[] = {"tm.events.v1", "tm.events.rejected", "tm.heartbeats"};
const size_t tm_devkafka_topics_count = TM_ARRAY_LEN(tm_devkafka_topics);

struct tm_devkafka {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    int brokers;
    int partitions;
    int replication;
    bool up[TM_DEVKAFKA_MAX_BROKERS + 1]; /* indexed by broker id, 1..brokers */
};

/*
 * librdkafka's own log lines (only errors pass log_level 3) go through tm_log so that they
 * carry the program name like every other line.
 */
static void rdkafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        tm_log_error("librdkafka %s: %s", fac, buf);
    else if (level == 4)
        tm_log_warn("librdkafka %s: %s", fac, buf);
    else
        tm_log_debug("librdkafka %s: %s", fac, buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return tm_err(err, "cannot set librdkafka '%s': %s", name, errstr);
    return 0;
}

struct tm_devkafka *tm_devkafka_create(int brokers, int partitions, char *err)
{
    struct tm_devkafka *dk = NULL;
    rd_kafka_conf_t *conf = NULL;
    char errstr[512];
    struct tm_devkafka *result = NULL;

    if (brokers < 1 || brokers > TM_DEVKAFKA_MAX_BROKERS) {
        tm_err(err, "broker count %d is out of range 1..%d", brokers, TM_DEVKAFKA_MAX_BROKERS);
        goto out;
    }
    if (partitions < 1 || partitions > TM_DEVKAFKA_MAX_PARTITIONS) {
        tm_err(err, "partition count %d is out of range 1..%d", partitions,
               TM_DEVKAFKA_MAX_PARTITIONS);
        goto out;
    }
    dk = calloc(1, sizeof(*dk));
    conf = rd_kafka_conf_new();
    if (dk == NULL || conf == NULL) {
        tm_err(err, "out of memory");
        goto out;
    }
    dk->brokers = brokers;
    dk->partitions = partitions;
    dk->replication = brokers < 3 ? brokers : 3;

    /* The handle only keeps the cluster's books: keep it quiet and unconnected. */
    if (conf_set(conf, "client.id", "tm-devkafka", err) < 0 ||
        conf_set(conf, "log_level", "3", err) < 0)
        goto out;
    rd_kafka_conf_set_log_cb(conf, rdkafka_log_cb);
    dk->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (dk->rk == NULL) {
        tm_err(err, "cannot create librdkafka handle: %s", errstr);
        goto out;
    }
    conf = NULL; /* owned by dk->rk now */

    dk->mcluster = rd_kafka_mock_cluster_new(dk->rk, brokers);
    if (dk->mcluster == NULL) {
        tm_err(err, "cannot start a mock cluster of %d brokers", brokers);
        goto out;
    }
    for (int id = 1; id <= brokers; id++)
        dk->up[id] = true;

    for (size_t i = 0; i < tm_devkafka_topics_count; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(dk->mcluster, tm_devkafka_topics[i],
                                                           partitions, dk->replication);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            tm_err(err, "cannot create topic '%s': %s", tm_devkafka_topics[i], rd_kafka_err2str(e));
            goto out;
        }
    }
    result = dk;
    dk = NULL;
out:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    tm_devkafka_destroy(dk);
    return result;
}

const char *tm_devkafka_bootstrap(const struct tm_devkafka *dk)
{
    return rd_kafka_mock_cluster_bootstraps(dk->mcluster);
}

int tm_devkafka_broker_count(const struct tm_devkafka *dk)
{
    return dk->brokers;
}

int tm_devkafka_partition_count(const struct tm_devkafka *dk)
{
    return dk->partitions;
}

int tm_devkafka_replication_factor(const struct tm_devkafka *dk)
{
    return dk->replication;
}

bool tm_devkafka_broker_is_up(const struct tm_devkafka *dk, int id)
{
    return id >= 1 && id <= dk->brokers && dk->up[id];
}

int tm_devkafka_brokers_up(const struct tm_devkafka *dk)
{
    int n = 0;

    for (int id = 1; id <= dk->brokers; id++)
        n += dk->up[id] ? 1 : 0;
    return n;
}

int tm_devkafka_set_broker(struct tm_devkafka *dk, int id, bool up, char *err)
{
    int first = id, last = id;

    if (id == -1) {
        first = 1;
        last = dk->brokers;
    } else if (id < 1 || id > dk->brokers) {
        return tm_err(err, "broker '%d' does not exist (ids are 1..%d, or -1 for all)", id,
                      dk->brokers);
    }
    /* One broker at a time, so that the mirror in dk->up stays exact even on failure. */
    for (int b = first; b <= last; b++) {
        rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(dk->mcluster, b)
                                   : rd_kafka_mock_broker_set_down(dk->mcluster, b);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            return tm_err(err, "cannot set broker '%d' %s: %s", b, up ? "up" : "down",
                          rd_kafka_err2str(e));
        dk->up[b] = up;
    }
    return 0;
}

void tm_devkafka_destroy(struct tm_devkafka *dk)
{
    if (dk == NULL)
        return;
    if (dk->mcluster != NULL)
        rd_kafka_mock_cluster_destroy(dk->mcluster);
    if (dk->rk != NULL)
        rd_kafka_destroy(dk->rk);
    free(dk);
}
