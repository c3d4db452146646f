#!/usr/bin/env bash
# tm-monitor.sh - the national health figures no daemon's /metrics has, in Prometheus text
# format, for node_exporter's textfile collector (docs/operations.md, "Monitoring"):
#
#   tm_agents_last_seen_age_seconds{operator,agent}  since the agent's last heartbeat
#                                                   (tm:agents:lastseen)
#   tm_agents_seq_lost{operator,agent}       records the agent numbered that have not
#                                            reached the aggregates (tm:agent:* seq_lost)
#   tm_agents_reported_lost{operator,agent}  events the agent itself dropped (agent_lost)
#   tm_agents_spool_events{operator,agent}   events waiting in its spool (last heartbeat)
#   tm_aggregator_partition_lag_messages{topic,partition}  Kafka's end offset minus the
#       next offset the group stored in Redis. The aggregator never commits offsets to
#       Kafka (they live in Redis with the results), so kafka-consumer-groups.sh shows no
#       lag for it: this is the lag as seen from Redis. Each aggregator also exports its
#       own, tm_aggregator_consumer_lag_messages, for the partitions it owns (prefer
#       it); this one still exists when no aggregator runs. Only with KAFKA_BOOTSTRAP
#       set (needs kcat).
#   tm_monitor_success                       1 when every query above answered
#
# Environment: REDIS (HOST:PORT, default 127.0.0.1:6379), REDIS_USER (default dashboard:
# read-only is enough), REDISCLI_AUTH (the password) or REDIS_PASSWORD_FILE;
# KAFKA_BOOTSTRAP, KCAT_ARGS (e.g. "-F /etc/tm-monitor/kcat.conf" with the SASL/TLS
# properties), GROUP (default tm-aggregator), TOPICS (default "tm.events.v1 tm.heartbeats").
# From cron, every minute:
#   tm-monitor.sh >/var/lib/prometheus/node-exporter/tm.prom.tmp &&
#     mv /var/lib/prometheus/node-exporter/tm.prom.tmp /var/lib/prometheus/node-exporter/tm.prom
set -u
redis=${REDIS:-127.0.0.1:6379}
user=${REDIS_USER:-dashboard}
group=${GROUP:-tm-aggregator}
topics=${TOPICS:-tm.events.v1 tm.heartbeats}
if [ -z "${REDISCLI_AUTH:-}" ] && [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
  REDISCLI_AUTH=$(head -n 1 "$REDIS_PASSWORD_FILE")
fi
export REDISCLI_AUTH
ok=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tm-monitor.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

rcli() {
  redis-cli -h "${redis%:*}" -p "${redis##*:}" --user "$user" --no-auth-warning "$@"
}

now_ms=$(date +%s%3N)
# redis-cli exits 0 on a refused AUTH or command: look at what it said.
if ! rcli ZRANGE tm:agents:lastseen 0 -1 WITHSCORES >"$tmp/lastseen" 2>&1 ||
  grep -qE '^(ERR|NOAUTH|NOPERM|WRONGPASS|AUTH failed|Could not connect)' "$tmp/lastseen"; then
  ok=0
fi
# member (operator/agent) and score (last seen, ms) alternate, one a line.
paste - - <"$tmp/lastseen" | awk -F'\t' 'NF == 2 && $1 ~ /\//' >"$tmp/agents"

echo "# HELP tm_agents_last_seen_age_seconds Seconds since the agent's last heartbeat reached Redis."
echo "# TYPE tm_agents_last_seen_age_seconds gauge"
awk -F'\t' -v now="$now_ms" '{ split($1, a, "/");
  printf "tm_agents_last_seen_age_seconds{operator=\"%s\",agent=\"%s\"} %.3f\n", a[1], a[2], (now - $2) / 1000 }' \
  "$tmp/agents"

# One pipelined HMGET per agent: seq_lost, agent_lost, spool_events.
fields=$(awk -F'\t' '{ split($1, a, "/"); printf "HMGET tm:agent:%s:%s seq_lost agent_lost spool_events\n", a[1], a[2] }' \
  "$tmp/agents" | rcli 2>/dev/null) || ok=0
[ -s "$tmp/agents" ] && printf '%s\n' "$fields" | paste - - - |
  paste "$tmp/agents" - |
  awk -F'\t' '{ split($1, a, "/"); l = "{operator=\"" a[1] "\",agent=\"" a[2] "\"}"
    s[++n] = "tm_agents_seq_lost" l " " ($3 == "" ? 0 : $3)
    r[n] = "tm_agents_reported_lost" l " " ($4 == "" ? 0 : $4)
    q[n] = "tm_agents_spool_events" l " " ($5 == "" ? 0 : $5) }
  END {
    print "# HELP tm_agents_seq_lost Records the agent numbered that have not reached the aggregates."
    print "# TYPE tm_agents_seq_lost gauge"; for (i = 1; i <= n; i++) print s[i]
    print "# HELP tm_agents_reported_lost Events the agent reports it dropped (spool cap)."
    print "# TYPE tm_agents_reported_lost gauge"; for (i = 1; i <= n; i++) print r[i]
    print "# HELP tm_agents_spool_events Events in the agent spool at its last heartbeat."
    print "# TYPE tm_agents_spool_events gauge"; for (i = 1; i <= n; i++) print q[i] }'

if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
  echo "# HELP tm_aggregator_partition_lag_messages Kafka end offset minus the next offset stored in Redis."
  echo "# TYPE tm_aggregator_partition_lag_messages gauge"
  for t in $topics; do
    # shellcheck disable=SC2086 # KCAT_ARGS is a list of options
    parts=$(kcat -b "$KAFKA_BOOTSTRAP" ${KCAT_ARGS:-} -L -t "$t" 2>/dev/null |
      sed -n 's/^ *partition \([0-9]*\),.*/\1/p')
    [ -n "$parts" ] || { ok=0; continue; }
    for p in $parts; do
      # shellcheck disable=SC2086
      end=$(kcat -b "$KAFKA_BOOTSTRAP" ${KCAT_ARGS:-} -Q -t "$t:$p:-1" 2>/dev/null |
        sed -n 's/.*offset \([0-9]*\).*/\1/p')
      next=$(rcli HGET "tm:offset:$group:$t:$p" next 2>/dev/null)
      if [ -z "$end" ]; then
        ok=0
        continue
      fi
      echo "tm_aggregator_partition_lag_messages{topic=\"$t\",partition=\"$p\"} $((end - ${next:-0}))"
    done
  done
fi
echo "# HELP tm_monitor_success 1 when every query of tm-monitor.sh answered."
echo "# TYPE tm_monitor_success gauge"
echo "tm_monitor_success $ok"
