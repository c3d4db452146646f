#!/usr/bin/env bash
# bench_collector.sh BUILD_DIR - tm-collector throughput against two references measured
# in the same run, on the same tm-devkafka:
#   kcat -P -z lz4   raw produce of the same lines (no parsing, no acks to a sender)
#   rsyslog          imtcp -> omkafka forwarding the same lines (no parsing)
#   tm-collector     tm-loadgen sends BENCH_EVENTS events of about 350 bytes in zlib windows
#                    of 1,000 over Lumberjack v2; every event is validated, stamped and
#                    produced, and counted only when its window is acknowledged (after Kafka
#                    delivered it). tm-loadgen replays 64 pre-compressed windows, so it is
#                    not the bottleneck.
# Prints events/s, CPU seconds and peak RSS of each, and the collector's ratio to both.
# With 'perf' installed, BENCH_PERF=1 adds a profile of the collector (BENCH_PERF_ARGS are
# passed to perf record, e.g. "--call-graph dwarf"; BENCH_PERF_KEEP=FILE keeps perf.data).
# tm-devkafka keeps about 5 MB per partition and drops older batches silently; nothing
# here reads the data back, so that does not matter for these rates.
set -eu
build=$(cd "${1:-build}" && pwd)
n=${BENCH_EVENTS:-1000000}
workers=${BENCH_WORKERS:-2}
conns=${BENCH_CONNECTIONS:-8}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
bench_setup bench

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
end_offsets() { # topic -> sum of the partitions' end offsets
  local topic=$1 parts sum=0 p o
  parts=$(kcat -L -b "$bootstrap" -t "$topic" 2>/dev/null | sed -n 's/.*with \([0-9]*\) partitions.*/\1/p')
  for ((p = 0; p < ${parts:-0}; p++)); do
    o=$(kcat -Q -b "$bootstrap" -t "$topic:$p:-1" 2>/dev/null | sed -n 's/.*offset \([0-9]*\).*/\1/p')
    sum=$((sum + ${o:-0}))
  done
  echo "$sum"
}

"$build/tm-devkafka" --partitions 6 >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/kafka.out" ] && break; sleep 0.1; done
bootstrap=$(head -n 1 "$tmp/kafka.out")
echo "events: $n of about 350 bytes; tm-devkafka $bootstrap, 6 partitions; $(nproc) cores"

# The lines kcat and rsyslog send: the same shape tm-loadgen sends.
awk -v n="$n" 'BEGIN {
  split("phishing malware bruteforce scan ddos", cat, " ");
  pad = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
  for (i = 0; i < n; i++)
    printf "{\"id\":\"bench-%d\",\"ts\":\"2026-11-23T07:22:05.123Z\",\"category\":\"%s\",\"severity\":%d,\"src\":{\"ip\":\"198.51.100.%d\",\"port\":%d},\"dst\":{\"ip\":\"10.0.%d.%d\",\"port\":443},\"summary\":\"%s%s\"}\n", i, cat[i % 5 + 1], 1 + i % 10, i % 250, 1024 + i % 60000, int(i / 250) % 250, i % 250, pad, substr(pad, 1, 40)
}' >"$tmp/lines"
echo "line size: $(awk '{s += length($0)} END {printf "%d", s / NR}' "$tmp/lines") bytes mean"

# 1. kcat
t0=$(now)
kcat -P -b "$bootstrap" -t bench.kcat -z lz4 -X linger.ms=5 -X batch.size=1000000 -l "$tmp/lines"
t1=$(now)
kcat_rate=$(echo "$n / ($t1 - $t0)" | bc -l)
printf '%-14s %10.0f events/s\n' "kcat -P" "$kcat_rate"

# 2. rsyslog imtcp -> omkafka
rsyslog_rate=0
if command -v rsyslogd >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so ]; then
  port=$(free_port)
  mkdir -p "$tmp/rsyslog"
  cat >"$tmp/rsyslog.conf" <<EOF
global(workDirectory="$tmp/rsyslog" maxMessageSize="8k")
module(load="imtcp")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
input(type="imtcp" port="$port" address="127.0.0.1")
action(type="omkafka" broker=["$bootstrap"] topic="bench.rsyslog" template="raw"
       confParam=["compression.codec=lz4", "linger.ms=5", "batch.size=1000000",
                  "queue.buffering.max.messages=2000000"]
       queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="1024")
EOF
  rsyslogd -n -f "$tmp/rsyslog.conf" -i "$tmp/rsyslog.pid" >"$tmp/rsyslog.log" 2>&1 &
  rpid=$!
  pids+=($rpid)
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  c0=$(cpu_s "$rpid")
  t0=$(now)
  cat "$tmp/lines" >/dev/tcp/127.0.0.1/"$port"
  for _ in $(seq 1200); do
    [ "$(end_offsets bench.rsyslog)" -ge "$n" ] && break
    sleep 0.1
  done
  t1=$(now)
  got=$(end_offsets bench.rsyslog)
  rsyslog_rate=$(echo "$got / ($t1 - $t0)" | bc -l)
  printf '%-14s %10.0f events/s   cpu %6.2f s   peak rss %6.1f MB   (%d of %d forwarded)\n' \
    "rsyslog" "$rsyslog_rate" "$(echo "$(cpu_s "$rpid") - $c0" | bc -l)" "$(hwm_mb "$rpid")" "$got" "$n"
else
  echo "rsyslog: not installed (rsyslog, rsyslog-kafka); no reference"
fi

# 3. tm-collector
cat >"$tmp/collector.ini" <<EOF
[collector]
workers = $workers
max_connections_per_ip = 1000
[identity]
default_operator = bench-op
default_sector = energy
[kafka]
linger = 5ms
EOF
"$build/tm-collector" -c "$tmp/collector.ini" --kafka "$bootstrap" --lumberjack 127.0.0.1:0 \
  --admin 127.0.0.1:0 --log-level warn >"$tmp/collector.out" 2>"$tmp/collector.log" &
cpid=$!
pids+=($cpid)
for _ in $(seq 100); do grep -q '^listening admin' "$tmp/collector.out" 2>/dev/null && break; sleep 0.1; done
lj=$(sed -n 's/^listening lumberjack //p' "$tmp/collector.out")
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
  perf record ${BENCH_PERF_ARGS:-} -F 999 -p "$cpid" -o "$tmp/perf.data" >/dev/null 2>&1 &
  perfpid=$!
fi
c0=$(cpu_s "$cpid")
"$build/tm-loadgen" --target "$lj" --events "$n" --window 1000 --pool 64 --level 1 \
  --connections "$conns" --timeout 600 >"$tmp/loadgen.json"
c1=$(cpu_s "$cpid")
if [ -n "${perfpid:-}" ]; then
  kill -INT "$perfpid"
  wait "$perfpid" 2>/dev/null || true
fi
rate=$(sed -n 's/.*"events_per_s":\([0-9]*\).*/\1/p' "$tmp/loadgen.json")
acked=$(sed -n 's/.*"acked":\([0-9]*\).*/\1/p' "$tmp/loadgen.json")
printf '%-14s %10.0f events/s   cpu %6.2f s   peak rss %6.1f MB   (%d of %d acked, %d worker(s), %d connections)\n' \
  "tm-collector" "$rate" "$(echo "$c1 - $c0" | bc -l)" "$(hwm_mb "$cpid")" "$acked" "$n" "$workers" "$conns"
printf 'ratio: %.2f x rsyslog, %.2f x kcat -P\n' \
  "$(echo "if ($rsyslog_rate > 0) $rate / $rsyslog_rate else 0" | bc -l)" "$(echo "$rate / $kcat_rate" | bc -l)"
if [ -n "${perfpid:-}" ]; then
  echo "perf profile of tm-collector (self time, top 25):"
  perf report -i "$tmp/perf.data" --stdio --no-children --sort comm,dso 2>/dev/null | grep -E "^ +[0-9]" | head -n 12
  perf report -i "$tmp/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
    grep -E "^ +[0-9]" | head -n "${BENCH_PERF_LINES:-25}"
  if [ -n "${BENCH_PERF_KEEP:-}" ]; then cp "$tmp/perf.data" "$BENCH_PERF_KEEP"; fi
fi
[ "$acked" = "$n" ]
