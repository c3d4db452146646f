/*
 * devkafka.h - the parts of tm-devkafka, private to tools/devkafka: the mock cluster and
 * its topics (cluster.c), and the admin routes that take brokers down and up (control.c).
 * main.c parses options and wires them to an event loop.
 *
 * The mock cluster is librdkafka's own (rdkafka_mock.h). It keeps data in memory only and
 * only about the last 5 MB of stored batches per partition; it is for development and
 * tests, never for production, which points at a real Kafka cluster.
 */
#ifndef TM_DEVKAFKA_H
#define TM_DEVKAFKA_H

#include <stdbool.h>
#include <stddef.h>

#include "tm/tm_admin.h"
#include "tm/tm_common.h"
#include "tm/tm_metrics.h"

#define TM_DEVKAFKA_MAX_BROKERS 5
#define TM_DEVKAFKA_MAX_PARTITIONS 1024
#define TM_DEVKAFKA_DEFAULT_PARTITIONS 6

/* The topics every cluster starts with (DESIGN.md, "Kafka"). */
extern const char *const tm_devkafka_topics[];
extern const size_t tm_devkafka_topics_count;

struct tm_devkafka;
struct tm_devkafka_control;

/*
 * Starts a mock cluster of brokers (1..TM_DEVKAFKA_MAX_BROKERS) listening on loopback and
 * creates every topic of tm_devkafka_topics with the given partition count and a
 * replication factor of min(3, brokers). Returns NULL with the reason in err.
 */
struct tm_devkafka *tm_devkafka_create(int brokers, int partitions, char *err);

/* The bootstrap servers ("127.0.0.1:P1,127.0.0.1:P2,..."), owned by dk. */
const char *tm_devkafka_bootstrap(const struct tm_devkafka *dk);

int tm_devkafka_broker_count(const struct tm_devkafka *dk);
int tm_devkafka_partition_count(const struct tm_devkafka *dk);
int tm_devkafka_replication_factor(const struct tm_devkafka *dk);

/* True when broker id (1..count) accepts connections. */
bool tm_devkafka_broker_is_up(const struct tm_devkafka *dk, int id);

/* How many brokers accept connections. */
int tm_devkafka_brokers_up(const struct tm_devkafka *dk);

/*
 * Takes broker id (1..count, or -1 for all) down (it drops its connections and refuses
 * new ones; partition leadership does not move) or brings it up again. Returns 0, or -1
 * with the reason in err.
 */
int tm_devkafka_set_broker(struct tm_devkafka *dk, int id, bool up, char *err);

/* Stops the brokers and frees every byte they held. NULL is allowed. */
void tm_devkafka_destroy(struct tm_devkafka *dk);

/*
 * Adds POST /brokers/down?id=N and POST /brokers/up?id=N (N a broker id, or -1 or "all")
 * to admin, a /healthz check that fails while every broker is down, and the cluster's
 * gauges to metrics. dk, admin and metrics are borrowed and must outlive the control.
 * Returns NULL with the reason in err.
 */
struct tm_devkafka_control *tm_devkafka_control_create(struct tm_admin *admin,
                                                       struct tm_devkafka *dk,
                                                       struct tm_metrics *metrics, char *err);

/*
 * Frees the control. Its routes stay registered on admin, so destroy admin first.
 * NULL is allowed.
 */
void tm_devkafka_control_destroy(struct tm_devkafka_control *c);

#endif
