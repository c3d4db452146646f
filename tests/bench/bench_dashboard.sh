#!/usr/bin/env bash
# bench_dashboard.sh BUILD_DIR - tm-dashboard against references measured in the same run,
# on the same private redis-server:
#   redis-benchmark -t get   the Redis side alone (one GET per request, 32 clients)
#   wrk /api/overview        the dashboard's busiest page (24h: ~130 Redis commands per
#                            request), 2 threads x 32 connections, with the default
#                            1 s answer cache and with the cache off (cache_ttl = 0)
#   SSE latency              events posted to tm-collector's HTTP ingest at BENCH_RATE
#                            events/s (default 1,000, severity 9 so they reach tm:feed),
#                            through tm-devkafka and tm-aggregator (flush_interval 100ms),
#                            until they appear on /api/stream (tests/bench/sse_latency.py)
# Prints requests/s and their ratio to redis-benchmark's GET rate, and the latency
# p50 / p99. tm-devkafka keeps about 5 MB per partition and drops older batches
# silently; BENCH_SECONDS x BENCH_RATE events of ~300 bytes stay well under it.
set -eu
build=$(cd "${1:-build}" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
rate=${BENCH_RATE:-1000}
seconds=${BENCH_SECONDS:-10}
wrk_seconds=${BENCH_WRK_SECONDS:-10}
. "$(dirname "$0")/lib.sh"
bench_setup bench-dash

for tool in wrk redis-benchmark python3; do
  command -v "$tool" >/dev/null || { echo "bench_dashboard: '$tool' not found (deploy/install-deps.sh)"; exit 1; }
done
wait_line() { # FILE PREFIX: the rest of the first line starting with PREFIX, within 10 s
  for _ in $(seq 100); do
    v=$(sed -n "s/^$2//p" "$1" 2>/dev/null | head -n 1)
    [ -n "$v" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  echo "bench_dashboard: no '$2' line in $1" >&2
  return 1
}
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
ingest=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

"$build/tm-devkafka" --partitions 3 >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  [ -s "$tmp/kafka.out" ] && redis-cli -p "$rport" PING >/dev/null 2>&1 && break
  sleep 0.1
done
bootstrap=$(head -n 1 "$tmp/kafka.out")

cat >"$tmp/identities.ini" <<EOF
[operator.op-bench]
sector = energy
region = UA-30
tokens_sha256 = $(printf %s "$ingest" | sha256sum | cut -d' ' -f1)
EOF
cat >"$tmp/collector.ini" <<EOF
[identity]
map = $tmp/identities.ini
[kafka]
linger = 2ms
EOF
"$build/tm-collector" -c "$tmp/collector.ini" --kafka "$bootstrap" --http 127.0.0.1:0 \
  --admin 127.0.0.1:0 --log-level warn >"$tmp/collector.out" 2>"$tmp/collector.log" &
pids+=($!)
# librdkafka's mock cluster answers a fetch only when fetch.wait.max.ms (500 ms) runs out
# (a real broker answers as soon as data arrives): ask it every 20 ms, like a live cluster.
cat >"$tmp/agg.ini" <<EOF
[aggregator]
flush_interval = 100ms
[kafka.librdkafka]
fetch.wait.max.ms = ${BENCH_FETCH_WAIT_MS:-20}
EOF
"$build/tm-aggregator" -c "$tmp/agg.ini" --kafka "$bootstrap" --redis "127.0.0.1:$rport" \
  --admin 127.0.0.1:0 --log-level warn >"$tmp/agg.out" 2>"$tmp/agg.log" &
pids+=($!)
start_dashboard() { # NAME CACHE_TTL
  printf '[dashboard]\ncache_ttl = %s\nlog_level = warn\n[auth]\ntokens = bench:%s\n' "$2" "$token" >"$tmp/$1.ini"
  "$build/tm-dashboard" -c "$tmp/$1.ini" --redis "127.0.0.1:$rport" --http 127.0.0.1:0 \
    --admin 127.0.0.1:0 --web "$root/dashboard/web" >"$tmp/$1.out" 2>"$tmp/$1.log" &
  pids+=($!)
}
start_dashboard dash 1s
start_dashboard dash-nocache 0
http_in=$(wait_line "$tmp/collector.out" "listening http ")
dash=$(wait_line "$tmp/dash.out" "listening http ")
dash_nc=$(wait_line "$tmp/dash-nocache.out" "listening http ")
wait_line "$tmp/agg.out" "listening admin " >/dev/null
echo "tm-devkafka $bootstrap; redis 127.0.0.1:$rport; collector $http_in; dashboard $dash (cache 1s), $dash_nc (cache off); $(nproc) cores"

# 1. latency, collector -> Kafka -> aggregator -> Redis -> dashboard -> SSE (also fills Redis),
# once one warm-up event has gone the whole way (the aggregator has joined its group)
curl -s -o /dev/null -H "Authorization: Bearer $ingest" --data-binary \
  '{"ts":"'"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"'","category":"scan","severity":9,"summary":"warm-up"}' \
  "http://$http_in/v1/events"
for _ in $(seq 300); do
  [ "$(redis-cli -p "$rport" XLEN tm:feed)" -ge 1 ] 2>/dev/null && break
  sleep 0.1
done
python3 "$root/tests/bench/sse_latency.py" --collector "$http_in" --ingest-token "$ingest" \
  --dashboard "$dash" --token "$token" --rate "$rate" --seconds "$seconds" | tee "$tmp/lat.txt"
lat_ok=${PIPESTATUS[0]}
agg_admin=$(sed -n 's/^listening admin //p' "$tmp/agg.out")
flush=$(curl -s "http://$agg_admin/metrics" | awk '/^tm_aggregator_flush_seconds_sum/ {s = $2}
  /^tm_aggregator_flush_seconds_count/ {c = $2} END {if (c) printf "%d flushes, %.1f ms mean", c, 1000 * s / c}')

# 2. redis-benchmark GET on the same Redis
rb=$(redis-benchmark -h 127.0.0.1 -p "$rport" -t get -n 300000 -c 32 -q 2>/dev/null | tr '\r' '\n' |
  sed -n 's/.*GET: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)

# 3. wrk on /api/overview, cached and not
wrk_rate() {
  wrk -t2 -c32 -d"${wrk_seconds}s" -H "Authorization: Bearer $token" "http://$1/api/overview" |
    tee "$tmp/wrk.txt" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'
}
check() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$1/api/overview"; }
[ "$(check "$dash")" = 200 ] && [ "$(check "$dash_nc")" = 200 ] ||
  { echo "bench_dashboard: /api/overview does not answer 200"; exit 1; }
cached=$(wrk_rate "$dash")
errors_c=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/wrk.txt")
uncached=$(wrk_rate "$dash_nc")
errors_u=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/wrk.txt")
latency_u=$(sed -n 's/^ *Latency *\([0-9.]*[a-z]*\).*/\1/p' "$tmp/wrk.txt")

printf '\n%-44s %14s\n' "measure" "value"
printf '%-44s %14.0f\n' "redis-benchmark GET requests/s" "${rb:-0}"
printf '%-44s %14.0f\n' "/api/overview req/s (cache 1s)" "${cached:-0}"
printf '%-44s %14.4f\n' "  ratio to redis GET" "$(echo "${cached:-0} / ${rb:-1}" | bc -l)"
printf '%-44s %14.0f\n' "/api/overview req/s (cache off)" "${uncached:-0}"
printf '%-44s %14.4f\n' "  ratio to redis GET" "$(echo "${uncached:-0} / ${rb:-1}" | bc -l)"
printf '%-44s %14s\n' "  mean latency (cache off)" "${latency_u:-?}"
per_req=$(curl -s "http://$(sed -n 's/^listening admin //p' "$tmp/dash-nocache.out")/metrics" |
  awk '/^tm_dashboard_redis_commands_total/ {c = $2} /^tm_dashboard_requests_total.*overview.*"200"/ {r = $2} END {if (r) printf "%.1f", c / r}')
printf '%-44s %14s\n' "  redis commands per request (cache off)" "${per_req:-?}"
printf '%-44s %14.2f\n' "  redis commands/s vs redis GET/s" "$(echo "${uncached:-0} * ${per_req:-0} / ${rb:-1}" | bc -l)"
printf '%-44s %14s\n' "  non-2xx answers (cached / not)" "${errors_c:-0} / ${errors_u:-0}"
printf '%-44s %14s\n' "SSE latency p50 ms (collector -> stream)" "$(sed -n 's/.*p50 \([0-9.]*\).*/\1/p' "$tmp/lat.txt")"
printf '%-44s %14s\n' "SSE latency p99 ms" "$(sed -n 's/.*p99 \([0-9.]*\).*/\1/p' "$tmp/lat.txt")"
printf '%-44s %s\n' "  aggregator flushes meanwhile" "$flush"
[ "$lat_ok" = 0 ] && [ -z "$errors_c" ] && [ -z "$errors_u" ]
