#!/usr/bin/env bash
# bench_aggregator.sh BUILD_DIR - tm-aggregator throughput from tm-devkafka into a private
# redis-server, against references measured in the same run:
#   kcat -C            consuming the same topic to its end (the Kafka side alone)
#   redis-benchmark    HINCRBY over a few keys, pipelined (-P 16; the Redis side alone)
#   tm-aggregator      BENCH_EVENTS stamped events (default 120,000) over 6 partitions and
#                      7 sectors, lz4-compressed; timed until every partition's stored
#                      offset in Redis is at its end (so each counted event's effects are
#                      committed in a MULTI/EXEC), from the moment the group assigned the
#                      partitions (its /metrics show them) and, separately, from process
#                      start: a new group member waits about 3 s for the group's first
#                      rebalance (Kafka's group.initial.rebalance.delay.ms, which the mock
#                      cluster copies), a one-off cost kcat -C, which joins no group, skips.
# Prints events/s and their ratio to kcat's, Redis commands per event (INFO commandstats
# before/after, both the commands the aggregator sent and every command Redis ran,
# script-internal calls included), CPU seconds and peak RSS. The polling loops run one
# client process per round, so they take little from the two cores being measured. tm-devkafka keeps about 5 MB of batches per
# partition and drops older ones silently: the default volume is ~6.4 MB of JSON per
# partition before lz4, well under the cap after it; kcat's message count (printed) shows
# nothing was dropped, and the run fails unless Redis counted every event.
set -eu
build=$(cd "${1:-build}" && pwd)
n=${BENCH_EVENTS:-120000}
parts=6
. "$(dirname "$0")/lib.sh"
bench_setup bench-agg

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
# Sum of calls in INFO commandstats; $1 = a regexp of command names, or '' for all.
calls() { rcli INFO commandstats | tr -d '\r' | awk -F'[:=,]' -v re="${1:-.}" \
  '/^cmdstat_/ { c = substr($1, 9); if (c ~ re) s += $3 } END { printf "%d", s }'; }

"$build/tm-devkafka" --partitions "$parts" >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
rpid=$!
pids+=($rpid)
for _ in $(seq 50); do [ -s "$tmp/kafka.out" ] && rcli PING >/dev/null 2>&1 && break; sleep 0.1; done
bootstrap=$(head -n 1 "$tmp/kafka.out")
echo "events: $n over $parts partitions; tm-devkafka $bootstrap; redis-server 127.0.0.1:$rport; $(nproc) cores"

# Stamped events, one sector per partition key, 1 s apart in event time.
awk -v n="$n" 'BEGIN {
  split("energy health banking drinking-water ict-services local-government transport", sec, " ");
  split("phishing malware bruteforce scan ddos", cat, " ");
  t0 = 1795420800; # 2026-11-23T00:00:00Z
  for (i = 0; i < n; i++) {
    s = sec[i % 7 + 1]; t = t0 + int(i / 10);
    ts = strftime("%Y-%m-%dT%H:%M:%S", t, 1);
    printf "%s|{\"schema\":1,\"id\":\"bench-%d\",\"ts\":\"%s.%03dZ\",\"received\":\"%s.900Z\",\"operator\":\"op-%d\",\"sector\":\"%s\",\"region\":\"UA-32\",\"category\":\"%s\",\"severity\":%d,\"attack\":{\"technique\":\"T1110\",\"tactic\":\"credential-access\"},\"src\":{\"ip\":\"198.51.100.%d\",\"port\":%d},\"count\":%d,\"summary\":\"bench event %d\"}\n", s, i, ts, (i % 10) * 100, ts, i % 40, s, cat[i % 5 + 1], 1 + i % 10, i % 250, 1024 + i % 60000, 1 + i % 7, i
  }
}' >"$tmp/events"
echo "event size: $(awk -F'|' '{s += length($2)} END {printf "%d", s / NR}' "$tmp/events") bytes mean"
kcat -P -b "$bootstrap" -t tm.events.v1 -K'|' -z lz4 -X linger.ms=20 -X batch.size=1000000 -l "$tmp/events"
kcat -P -b "$bootstrap" -t tm.heartbeats -z lz4 </dev/null
echo "payload: $(( $(cut -d'|' -f2- "$tmp/events" | wc -c) / parts / 1024 )) KiB per partition before lz4"

# 1. kcat -C: the same topic from the beginning to its end
t0=$(now)
got=$(kcat -C -b "$bootstrap" -t tm.events.v1 -e -o beginning -f '\n' 2>/dev/null | wc -l)
t1=$(now)
kcat_rate=$(echo "$got / ($t1 - $t0)" | bc -l)

# 2. redis-benchmark: pipelined HINCRBY, the cheapest write the aggregator's hashes need
rb_rate=$(redis-benchmark -h 127.0.0.1 -p "$rport" -n 500000 -P 16 -r 1000 -q \
  HINCRBY "tm:bench:__rand_int__" events 1 2>/dev/null | tr '\r' '\n' |
  sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
rcli FLUSHALL >/dev/null
rcli CONFIG RESETSTAT >/dev/null

# 3. tm-aggregator
cat >"$tmp/agg.ini" <<EOF2
[aggregator]
flush_interval = 1s
flush_events = ${BENCH_FLUSH_EVENTS:-5000}
EOF2
before_all=$(calls '')
before_eval=$(calls '^eval')
declare -A end
for ((p = 0; p < parts; p++)); do
  end[$p]=$(kcat -Q -b "$bootstrap" -t "tm.events.v1:$p:-1" 2>/dev/null | sed -n 's/.*offset \([0-9]*\).*/\1/p')
done
want=$(for ((p = 0; p < parts; p++)); do printf '%s ' "${end[$p]}"; done)
# The stored next offsets of every partition, space-separated, in one round trip.
stored() { rcli EVAL "local r = {} for p = 0, $((parts - 1)) do
  r[#r + 1] = redis.call('HGET', KEYS[1] .. p, 'next') or '0' end
  return table.concat(r, ' ') .. ' '" 1 tm:offset:bench:tm.events.v1:; }
t0=$(now)
"$build/tm-aggregator" -c "$tmp/agg.ini" --kafka "$bootstrap" --redis "127.0.0.1:$rport" \
  --group bench --admin 127.0.0.1:0 --log-level warn >"$tmp/agg.out" 2>"$tmp/agg.log" &
apid=$!
pids+=($apid)
for _ in $(seq 500); do grep -q '^listening admin ' "$tmp/agg.out" && break; sleep 0.01; done
admin=$(sed -n 's/^listening admin //p' "$tmp/agg.out")
ta=""
for _ in $(seq 3000); do
  n_parts=$(curl -s "http://$admin/metrics" | sed -n 's/^tm_aggregator_partitions \([0-9]*\).*/\1/p')
  [ "${n_parts:-0}" -gt 0 ] && { ta=$(now); break; }
  sleep 0.01
done
done_all=0
for _ in $(seq 6000); do
  [ "$(stored)" = "$want" ] && { done_all=1; break; }
  sleep 0.02
done
t1=$(now)
cpu=$(cpu_s "$apid")
rss=$(hwm_mb "$apid")
after_all=$(calls '')
after_eval=$(calls '^eval')
applied=0
for k in $(rcli --scan --pattern 'tm:n:1d:*'); do applied=$((applied + $(rcli HGET "$k" events))); done
sent=$(curl -s "http://$admin/metrics" |
  sed -n 's/^tm_aggregator_redis_commands_total \([0-9]*\).*/\1/p')
rate=$(echo "$n / ($t1 - ${ta:-$t0})" | bc -l)
rate_all=$(echo "$n / ($t1 - $t0)" | bc -l)

printf '\n%-34s %14s\n' "measure" "value"
printf '%-34s %14.0f\n' "kcat -C events/s" "$kcat_rate"
printf '%-34s %14s\n' "  messages read by kcat" "$got"
printf '%-34s %14.0f\n' "redis-benchmark HINCRBY -P16 ops/s" "${rb_rate:-0}"
printf '%-34s %14.0f\n' "tm-aggregator events/s" "$rate"
printf '%-34s %14.2f\n' "  ratio to kcat -C" "$(echo "$rate / $kcat_rate" | bc -l)"
printf '%-34s %14.2f\n' "  seconds to the group's assignment" "$(echo "${ta:-$t1} - $t0" | bc -l)"
printf '%-34s %14.0f\n' "  events/s, start included" "$rate_all"
printf '%-34s %14.2f\n' "  ratio to kcat -C, start included" "$(echo "$rate_all / $kcat_rate" | bc -l)"
printf '%-34s %14s\n' "  events counted in Redis" "$applied of $n"
printf '%-34s %14.4f\n' "  commands sent per event" "$(echo "${sent:-0} / $n" | bc -l)"
printf '%-34s %14.4f\n' "  EVAL calls per event" "$(echo "($after_eval - $before_eval) / $n" | bc -l)"
printf '%-34s %14.4f\n' "  all commands per event (+ Lua)" "$(echo "($after_all - $before_all) / $n" | bc -l)"
printf '%-34s %14.4f\n' "  redis ops/s vs redis-benchmark" "$(echo "(($after_all - $before_all) / ($t1 - ${ta:-$t0})) / ${rb_rate:-1}" | bc -l)"
printf '%-34s %14s\n' "  cpu seconds" "$cpu"
printf '%-34s %14s\n' "  peak rss MB" "$rss"
[ -n "$ta" ] && [ "$done_all" = 1 ] && [ "$applied" = "$n" ]
