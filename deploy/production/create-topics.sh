#!/usr/bin/env bash
# create-topics.sh - creates (or brings up to date) tm-telemetry's Kafka topics and,
# with --acls, the ACLs of the collectors' and aggregators' SASL users, using the Kafka
# distribution's own tools (kafka-topics.sh, kafka-configs.sh, kafka-acls.sh from
# https://kafka.apache.org/downloads; not installed by this project). A `tmctl topics
# create` on librdkafka's admin API may replace this later; until then this is the way.
#
#   create-topics.sh --bootstrap kafka1.tm.example:9093 --command-config admin.properties
#                    [--events-partitions 12] [--acls] [--dry-run]
#
# --command-config: the admin client's properties, e.g. for SASL/SCRAM over TLS:
#   security.protocol=SASL_SSL
#   sasl.mechanism=SCRAM-SHA-512
#   sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="...";
#   ssl.truststore.type=PEM
#   ssl.truststore.location=/etc/kafka/ca.crt
# Kafka's tools are found through KAFKA_BIN (the distribution's bin/ folder), else in
# PATH, else in /opt/kafka/bin. --dry-run prints the commands instead of running them
# (tests/deploy/test_production.sh checks them against the daemons' topic names).
#
# Every topic: replication factor 3 and min.insync.replicas 2, so with the collector's
# acks=all an acknowledged event is on at least two brokers and one broker may be down
# without stopping writes; no unclean leader election (it could drop acknowledged
# events). Running it again is safe: topics that exist get their settings re-applied
# (a partition count is never lowered; raise it by hand with kafka-topics.sh --alter).
set -euo pipefail

usage() {
  sed -n '8,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

bootstrap=""
command_config=""
events_partitions=12
acls=0
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
  --bootstrap) bootstrap=${2:?}; shift 2 ;;
  --command-config) command_config=${2:?}; shift 2 ;;
  --events-partitions) events_partitions=${2:?}; shift 2 ;;
  --acls) acls=1; shift ;;
  --dry-run) dry=1; shift ;;
  *) usage ;;
  esac
done
[ -n "$bootstrap" ] || usage
[[ $events_partitions =~ ^[1-9][0-9]*$ ]] || usage

tool() { # NAME: the path of one of Kafka's tools
  if [ -n "${KAFKA_BIN:-}" ]; then
    echo "$KAFKA_BIN/$1"
  elif command -v "$1" >/dev/null; then
    command -v "$1"
  else
    echo "/opt/kafka/bin/$1"
  fi
}
run() {
  if [ "$dry" = 1 ]; then
    printf '%q ' "$@"
    echo
  else
    "$@"
  fi
}
conn=(--bootstrap-server "$bootstrap")
[ -n "$command_config" ] && conn+=(--command-config "$command_config")

day=86400000
# Settings every topic gets. max.message.bytes: the largest canonical event is far
# smaller (summary 1 KiB, raw 8 KiB), but Kafka's default batch limit is kept.
common="min.insync.replicas=2,unclean.leader.election.enable=false,cleanup.policy=delete,compression.type=producer"

# topic, partitions, retention.ms. tm.events.v1 is keyed by sector, so its partitions
# bound the aggregator members that do work (docs/operations.md, "Sizing"); 35 days of
# retention cover the hour windows and let a lost Redis be rebuilt that far back.
topics=(
  "tm.events.v1 $events_partitions $((35 * day))"
  "tm.events.rejected 3 $((14 * day))"
  "tm.heartbeats 6 $((7 * day))"
)

for t in "${topics[@]}"; do
  read -r name parts retention <<<"$t"
  run "$(tool kafka-topics.sh)" "${conn[@]}" --create --if-not-exists --topic "$name" \
    --partitions "$parts" --replication-factor 3 \
    --config min.insync.replicas=2 --config unclean.leader.election.enable=false \
    --config cleanup.policy=delete --config compression.type=producer \
    --config "retention.ms=$retention"
  # Re-applied, so an existing topic converges to the settings above.
  run "$(tool kafka-configs.sh)" "${conn[@]}" --entity-type topics --entity-name "$name" \
    --alter --add-config "$common,retention.ms=$retention"
done

if [ "$acls" = 1 ]; then
  # tm-collector produces (idempotently) to all three topics.
  run "$(tool kafka-acls.sh)" "${conn[@]}" --add --allow-principal User:tm-collector \
    --operation Write --operation Describe \
    --topic tm.events.v1 --topic tm.events.rejected --topic tm.heartbeats
  # Kafka before 2.8 also wants IdempotentWrite on the cluster for an idempotent producer.
  run "$(tool kafka-acls.sh)" "${conn[@]}" --add --allow-principal User:tm-collector \
    --operation IdempotentWrite --cluster
  # tm-aggregator reads events and heartbeats as the group tm-aggregator; it never
  # commits offsets to Kafka (they live in Redis), but joining a group needs Read on it.
  run "$(tool kafka-acls.sh)" "${conn[@]}" --add --allow-principal User:tm-aggregator \
    --operation Read --operation Describe --topic tm.events.v1 --topic tm.heartbeats
  run "$(tool kafka-acls.sh)" "${conn[@]}" --add --allow-principal User:tm-aggregator \
    --operation Read --operation Describe --group tm-aggregator
fi

run "$(tool kafka-topics.sh)" "${conn[@]}" --describe \
  --topic 'tm\.(events\.v1|events\.rejected|heartbeats)'
