#!/usr/bin/env bash
# bench_agent.sh BUILD_DIR - tm-agent throughput and footprint, against rsyslog measured in
# the same run on the same files.
#
#   tm-agent   `tm-agent --once` with a stdin input reads a file of BENCH_LINES lines
#              (default 200,000), parses each line, runs the input's detectors, spools
#              what comes out (zlib, fsync = interval) and ships it over Lumberjack v2 to
#              a local tm-collector, which produces it to tm-devkafka. --once exits only
#              when stdin is at its end and every spooled event was acknowledged, i.e. is
#              in Kafka; the wall time is until it exits. Four runs:
#                eve      Suricata EVE (tests/data/suricata/eve-formbook-dridex.json
#                         repeated), default detectors: repeated alerts are folded
#                auth     sshd auth.log (tests/data/syslog/loghub-OpenSSH_2k.log
#                         repeated), default detectors: single failures (severity 3) are
#                         only counted; the per-source threshold fires
#                eve-all  as eve with pass_min_severity = 1 and fold_window = 0: every
#                auth-all alert (every sshd failure) is shipped, the shipping path's cost
#   rsyslog    imfile reading the same file and forwarding each line over TCP (omfwd) to
#              a local receiver that counts lines: no parsing, no disk queue, no acks.
#              The reference for lines/s. Skipped when rsyslogd is not installed.
#   idle       a tm-agent with a file input on an empty file: RSS after 3 s, CPU over 5 s.
#
# CPU (utime + stime) and peak RSS (VmHWM) are read from /proc/PID while the process
# runs, every 50 ms; a process that exits by itself is measured by its last sample, which
# misses at most its last 50 ms (the agent spends its last second waiting for the tick).
# --once notices the end on its 1-second tick, so an agent run lasts at least about 2 s
# whatever the input: with small BENCH_LINES, read CPU s per 100k lines, not lines/s.
#
# tm-devkafka keeps only about the last 5 MB per partition and drops older batches
# silently; nothing here reads events back (only end offsets), so only the acks matter.
set -eu
build=$(cd "${1:-build}" && pwd)
n=${BENCH_LINES:-200000}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tm-bench-agent.XXXXXX")
hz=$(getconf CLK_TCK)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# sample PID: sets s_ticks (utime + stime), s_hwm and s_rss (kB) from /proc, builtins only
# (no fork while a measured process runs). Returns 1 once the process is gone.
s_ticks=0 s_hwm=0 s_rss=0
sample() {
  local f k v
  { read -ra f </proc/"$1"/stat; } 2>/dev/null || return 1
  [ "${f[2]}" != Z ] || return 1
  s_ticks=$((f[13] + f[14]))
  while read -r k v _; do
    case $k in
    VmHWM:) s_hwm=$v ;;
    VmRSS:) s_rss=$v ;;
    esac
  done 2>/dev/null </proc/"$1"/status || true
}

end_offsets() { # topic -> sum of the partitions' end offsets
  local topic=$1 parts sum=0 p o
  parts=$(kcat -L -b "$bootstrap" -t "$topic" 2>/dev/null | sed -n 's/.*with \([0-9]*\) partitions.*/\1/p')
  for ((p = 0; p < ${parts:-0}; p++)); do
    o=$(kcat -Q -b "$bootstrap" -t "$topic:$p:-1" 2>/dev/null | sed -n 's/.*offset \([0-9]*\).*/\1/p')
    sum=$((sum + ${o:-0}))
  done
  echo "$sum"
}

# repeat FILE OUT: FILE's lines over and over, n lines in all.
repeat() {
  awk -v n="$n" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' "$1" >"$2"
}

rows=()
declare -A rate cpu # lines/s and CPU s per line, by run name
# row NAME LINES WALL_S TICKS HWM_KB NOTE
row() {
  rows+=("$(awk -v name="$1" -v lines="$2" -v wall="$3" -v ticks="$4" -v hz="$hz" -v hwm="$5" \
    -v note="$6" 'BEGIN {
      cpu = ticks / hz
      printf "%-16s %10.0f %8.2f %8.2f %10.3f %9.1f  %s", name, lines / wall, wall, cpu,
             cpu * 100000 / lines, hwm / 1024, note }')")
}

"$build/tm-devkafka" --partitions 6 >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/kafka.out" ] && break; sleep 0.1; done
bootstrap=$(head -n 1 "$tmp/kafka.out")

cat >"$tmp/collector.ini" <<EOF
[collector]
workers = 1
[identity]
default_operator = bench-op
default_sector = energy
EOF
"$build/tm-collector" -c "$tmp/collector.ini" --kafka "$bootstrap" --lumberjack 127.0.0.1:0 \
  --admin 127.0.0.1:0 --log-level warn >"$tmp/collector.out" 2>"$tmp/collector.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening admin' "$tmp/collector.out" 2>/dev/null && break; sleep 0.1; done
lj=$(sed -n 's/^listening lumberjack //p' "$tmp/collector.out")
[ -n "$lj" ] || { echo "tm-collector did not start:" >&2; cat "$tmp/collector.log" >&2; exit 1; }

repeat "$root/tests/data/suricata/eve-formbook-dridex.json" "$tmp/eve.json"
repeat "$root/tests/data/syslog/loghub-OpenSSH_2k.log" "$tmp/auth.log"
echo "lines: $n per run; eve.json $(($(stat -c %s "$tmp/eve.json") / 1048576)) MiB," \
  "auth.log $(($(stat -c %s "$tmp/auth.log") / 1048576)) MiB; tm-devkafka $bootstrap;" \
  "tm-collector $lj (1 worker); $(nproc) cores"

# agent_run NAME FORMAT FILE [EXTRA INPUT KEYS...]: one `tm-agent --once` over FILE.
agent_run() {
  local name=$1 format=$2 file=$3 ev0 hb0 ev1 hb1 t0 t1 pid rc
  shift 3
  {
    printf '[agent]\nid = bench-%s\nstate_dir = %s/state-%s\n' "$name" "$tmp" "$name"
    printf '[shipper]\ncollectors = %s\n' "$lj"
    printf '[input.in]\ntype = stdin\nformat = %s\n' "$format"
    for kv in "$@"; do printf '%s\n' "$kv"; done
  } >"$tmp/agent-$name.ini"
  ev0=$(end_offsets tm.events.v1)
  hb0=$(end_offsets tm.heartbeats)
  s_ticks=0 s_hwm=0
  t0=$(now)
  "$build/tm-agent" -c "$tmp/agent-$name.ini" --once --log-level warn <"$file" \
    >"$tmp/agent-$name.out" 2>"$tmp/agent-$name.log" &
  pid=$!
  pids+=("$pid")
  while sample "$pid"; do sleep 0.05; done
  rc=0
  wait "$pid" || rc=$?
  t1=$(now)
  ev1=$(end_offsets tm.events.v1)
  hb1=$(end_offsets tm.heartbeats)
  if [ "$rc" != 0 ]; then
    echo "tm-agent ($name) exited $rc:" >&2
    cat "$tmp/agent-$name.log" >&2
    exit 1
  fi
  rate[$name]=$(echo "$n / ($t1 - $t0)" | bc -l)
  cpu[$name]=$(echo "$s_ticks / $hz / $n" | bc -l)
  row "tm-agent $name" "$n" "$(echo "$t1 - $t0" | bc -l)" "$s_ticks" "$s_hwm" \
    "$((ev1 - ev0)) events in Kafka, $((hb1 - hb0)) heartbeats"
}

# rsyslog_run NAME FILE: imfile -> omfwd (TCP) -> a line-counting receiver.
rsyslog_run() {
  local name=$1 file=$2 port rpid recv t0 t1 got
  port=$(free_port)
  python3 -c '
import selectors, socket, sys
n, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
srv = socket.create_server(("127.0.0.1", port))
sel = selectors.DefaultSelector()
sel.register(srv, selectors.EVENT_READ)
print("ready", flush=True)
got = 0
while got < n:
    events = sel.select(timeout=120)
    if not events:
        break
    for key, _ in events:
        if key.fileobj is srv:
            c, _ = srv.accept()
            sel.register(c, selectors.EVENT_READ)
            continue
        data = key.fileobj.recv(1 << 20)
        if not data:
            sel.unregister(key.fileobj)
            key.fileobj.close()
        got += data.count(b"\n")
with open(out, "w") as f:
    f.write("%d\n" % got)
' "$n" "$port" "$tmp/recv-$name.count" >"$tmp/recv-$name.out" &
  recv=$!
  pids+=("$recv")
  for _ in $(seq 50); do [ -s "$tmp/recv-$name.out" ] && break; sleep 0.1; done
  mkdir -p "$tmp/rsyslog-$name"
  cat >"$tmp/rsyslog-$name.conf" <<EOF
global(workDirectory="$tmp/rsyslog-$name" maxMessageSize="64k")
module(load="imfile" mode="inotify")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="fwd") {
  action(type="omfwd" target="127.0.0.1" port="$port" protocol="tcp" template="raw"
         TCP_Framing="traditional")
}
input(type="imfile" File="$file" Tag="bench" ruleset="fwd" freshStartTail="off")
EOF
  s_ticks=0 s_hwm=0
  t0=$(now)
  rsyslogd -n -f "$tmp/rsyslog-$name.conf" -i "$tmp/rsyslog-$name.pid" \
    >"$tmp/rsyslog-$name.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  while kill -0 "$recv" 2>/dev/null; do
    sample "$rpid" || break
    sleep 0.05
  done
  wait "$recv" || true
  t1=$(now)
  sample "$rpid" || true
  kill "$rpid" 2>/dev/null || true
  wait "$rpid" 2>/dev/null || true
  got=$(cat "$tmp/recv-$name.count" 2>/dev/null || echo 0)
  row "rsyslog $name" "$got" "$(echo "$t1 - $t0" | bc -l)" "$s_ticks" "$s_hwm" \
    "$got of $n lines forwarded"
  rate[rsyslog-$name]=$(echo "$got / ($t1 - $t0)" | bc -l)
  [ "$got" -gt 0 ] && cpu[rsyslog-$name]=$(echo "$s_ticks / $hz / $got" | bc -l)
}

agent_run eve eve "$tmp/eve.json"
agent_run auth auth "$tmp/auth.log"
agent_run eve-all eve "$tmp/eve.json" "pass_min_severity = 1" "fold_window = 0"
agent_run auth-all auth "$tmp/auth.log" "pass_min_severity = 1" "fold_window = 0"
if command -v rsyslogd >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/rsyslog/imfile.so ]; then
  rsyslog_run eve "$tmp/eve.json"
  rsyslog_run auth "$tmp/auth.log"
else
  rows+=("rsyslog          not installed (package rsyslog): no reference")
fi

# Idle: a file input on an empty file.
: >"$tmp/empty.log"
cat >"$tmp/agent-idle.ini" <<EOF
[agent]
id = bench-idle
state_dir = $tmp/state-idle
[shipper]
collectors = $lj
[input.empty]
type = file
format = auth
paths = $tmp/empty.log
EOF
"$build/tm-agent" -c "$tmp/agent-idle.ini" --log-level warn >"$tmp/agent-idle.out" \
  2>"$tmp/agent-idle.log" &
ipid=$!
pids+=("$ipid")
sleep 3
sample "$ipid" || { echo "idle tm-agent exited:" >&2; cat "$tmp/agent-idle.log" >&2; exit 1; }
idle_rss=$s_rss idle_c0=$s_ticks
sleep 5
sample "$ipid" || true
idle_cpu=$(echo "($s_ticks - $idle_c0) / $hz" | bc -l)
kill "$ipid"
wait "$ipid" || true

echo
printf '%-16s %10s %8s %8s %10s %9s  %s\n' "run" "lines/s" "wall s" "cpu s" \
  "cpu s/100k" "peak MB" "delivered"
for r in "${rows[@]}"; do echo "$r"; done
printf 'idle tm-agent (file input, empty file): rss %.1f MB after 3 s, cpu %.2f s over 5 s\n' \
  "$(echo "$idle_rss / 1024" | bc -l)" "$idle_cpu"
ratio() { # A B -> A / B as "x.xx", or "n/a" without B
  awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}
printf 'tm-agent / rsyslog, lines/s:         eve %s, auth %s, eve-all %s, auth-all %s\n' \
  "$(ratio "${rate[eve]}" "${rate[rsyslog-eve]:-}")" "$(ratio "${rate[auth]}" "${rate[rsyslog-auth]:-}")" \
  "$(ratio "${rate[eve-all]}" "${rate[rsyslog-eve]:-}")" "$(ratio "${rate[auth-all]}" "${rate[rsyslog-auth]:-}")"
printf 'tm-agent / rsyslog, CPU s per line:  eve %s, auth %s, eve-all %s, auth-all %s\n' \
  "$(ratio "${cpu[eve]}" "${cpu[rsyslog-eve]:-}")" "$(ratio "${cpu[auth]}" "${cpu[rsyslog-auth]:-}")" \
  "$(ratio "${cpu[eve-all]}" "${cpu[rsyslog-eve]:-}")" "$(ratio "${cpu[auth-all]}" "${cpu[rsyslog-auth]:-}")"
echo "(an agent run lasts at least ~2 s: --once checks for the end on its 1-second tick)"
