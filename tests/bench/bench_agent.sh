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
#   footprint  one tm-agent with a file input, connected over TLS with a client certificate
#              to a second tm-collector (TLS, require_client_cert; certificates made here
#              with openssl): idle on an empty file (RSS after 5 s, CPU over 5 s), then
#              loaded: FOOTPRINT_RATE lines/s (default 10,000) of canonical JSON appended
#              for FOOTPRINT_SECONDS (default 10), every line an event (detectors out of
#              the way): peak VmRSS with its RssAnon and RssFile, and how many events were
#              acknowledged when the writer stopped. Targets: at most 2 MiB idle, at most
#              4 MiB at 10,000 events/s. RssFile is the pages of the binary and of the
#              shared libraries the kernel mapped around what ran: docs/agent.md,
#              "Footprint", says why it is most of the figure.
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
. "$(dirname "$0")/lib.sh"
bench_setup bench-agent
hz=$(getconf CLK_TCK)

# sample PID: sets s_ticks (utime + stime), s_hwm and s_rss (kB) from /proc, builtins only
# (no fork while a measured process runs). Returns 1 once the process is gone.
s_ticks=0 s_hwm=0 s_rss=0 s_anon=0 s_file=0
sample() {
  local f k v
  { read -ra f </proc/"$1"/stat; } 2>/dev/null || return 1
  [ "${f[2]}" != Z ] || return 1
  s_ticks=$((f[13] + f[14]))
  while read -r k v _; do
    case $k in
    VmHWM:) s_hwm=$v ;;
    VmRSS:) s_rss=$v ;;
    RssAnon:) s_anon=$v ;;
    RssFile:) s_file=$v ;;
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

# Footprint: a file input, TLS with a client certificate to a TLS collector; idle, then
# FOOTPRINT_RATE lines/s appended to the file.
rate_fp=${FOOTPRINT_RATE:-10000}
secs_fp=${FOOTPRINT_SECONDS:-10}
tls_pki "$tmp/pki" bench
printf '[operator.bench-op]\nsector = energy\nregion = UA-30\ncerts = agent.bench\n' \
  >"$tmp/identities.ini"
cat >"$tmp/collector-tls.ini" <<EOF
[collector]
workers = 1
[lumberjack]
tls = true
[tls]
cert = $tmp/pki/server.crt
key = $tmp/pki/server.key
ca = $tmp/pki/ca.crt
require_client_cert = true
[identity]
map = $tmp/identities.ini
EOF
"$build/tm-collector" -c "$tmp/collector-tls.ini" --kafka "$bootstrap" --lumberjack 127.0.0.1:0 \
  --admin 127.0.0.1:0 --log-level warn >"$tmp/collector-tls.out" 2>"$tmp/collector-tls.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening admin' "$tmp/collector-tls.out" 2>/dev/null && break; sleep 0.1; done
lj_tls=$(sed -n 's/^listening lumberjack //p' "$tmp/collector-tls.out")
[ -n "$lj_tls" ] || { echo "tm-collector (TLS) did not start:" >&2; cat "$tmp/collector-tls.log" >&2; exit 1; }
: >"$tmp/footprint.ndjson"
cat >"$tmp/agent-footprint.ini" <<EOF
[agent]
id = bench-footprint
state_dir = $tmp/state-footprint
[shipper]
collectors = $lj_tls
tls_ca = $tmp/pki/ca.crt
tls_cert = $tmp/pki/agent.crt
tls_key = $tmp/pki/agent.key
[input.events]
type = file
format = json
paths = $tmp/footprint.ndjson
pass_min_severity = 1
fold_window = 0
threshold = false
spike = false
EOF
"$build/tm-agent" -c "$tmp/agent-footprint.ini" --admin 127.0.0.1:0 --log-level warn \
  >"$tmp/agent-footprint.out" 2>"$tmp/agent-footprint.log" &
ipid=$!
pids+=("$ipid")
sleep 5
sample "$ipid" || { echo "tm-agent (footprint) exited:" >&2; cat "$tmp/agent-footprint.log" >&2; exit 1; }
idle_rss=$s_rss idle_anon=$s_anon idle_file=$s_file idle_c0=$s_ticks
sleep 5
sample "$ipid" || true
idle_cpu=$(echo "($s_ticks - $idle_c0) / $hz" | bc -l)
admin=$(sed -n 's/^listening admin //p' "$tmp/agent-footprint.out")
acked() { curl -s "http://$admin/metrics" | sed -n 's/^tm_agent_acked_events \([0-9]*\).*/\1/p'; }
acked0=$(acked)
# The writer appends what is due every 10 ms, then prints how many lines it wrote.
python3 -c '
import sys, time
path, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
line = ("{\"schema\":1,\"id\":\"fp-%09d\",\"ts\":\"2026-11-23T08:00:00.000Z\",\"category\":\"scan\","
        "\"severity\":5,\"src\":{\"ip\":\"198.51.100.%d\"},\"summary\":\"port scan %d\"}\n")
with open(path, "a") as f:
    t0, i = time.time(), 0
    while time.time() - t0 < secs:
        due = int((time.time() - t0) * rate)
        f.write("".join(line % (n, n % 250, n) for n in range(i, due)))
        f.flush()
        i = due
        time.sleep(0.01)
print(i)
' "$tmp/footprint.ndjson" "$rate_fp" "$secs_fp" >"$tmp/writer.out" &
wpid=$!
pids+=("$wpid")
peak_rss=0 peak_anon=0 peak_file=0
sample "$ipid"
load_c0=$s_ticks
while kill -0 "$wpid" 2>/dev/null; do
  sample "$ipid" || { echo "tm-agent (footprint) exited:" >&2; cat "$tmp/agent-footprint.log" >&2; exit 1; }
  if [ "$s_rss" -gt "$peak_rss" ]; then peak_rss=$s_rss peak_anon=$s_anon peak_file=$s_file; fi
  sleep 0.05
done
load_cpu=$(echo "($s_ticks - $load_c0) / $hz" | bc -l)
wait "$wpid"
written=$(cat "$tmp/writer.out")
acked1=$(acked)
for _ in $(seq 100); do [ "$(acked)" -ge $((acked0 + written)) ] && break; sleep 0.1; done
acked2=$(acked)
kill "$ipid"
wait "$ipid" || true

echo
printf '%-16s %10s %8s %8s %10s %9s  %s\n' "run" "lines/s" "wall s" "cpu s" \
  "cpu s/100k" "peak MB" "delivered"
for r in "${rows[@]}"; do echo "$r"; done
mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
linking=static
readelf -d "$build/tm-agent" 2>/dev/null | grep -q NEEDED && linking=dynamic
echo "tm-agent footprint (file input, TLS with a client certificate, $linking binary), MiB:"
printf '  idle    VmRSS %s (RssAnon %s, RssFile %s) after 5 s; cpu %.2f s over 5 s\n' \
  "$(mib "$idle_rss")" "$(mib "$idle_anon")" "$(mib "$idle_file")" "$idle_cpu"
printf '  loaded  peak VmRSS %s (RssAnon %s, RssFile %s) at %s lines/s for %s s; cpu %.2f s\n' \
  "$(mib "$peak_rss")" "$(mib "$peak_anon")" "$(mib "$peak_file")" "$rate_fp" "$secs_fp" "$load_cpu"
echo "          $written lines written; $((acked1 - acked0)) acknowledged when the writer stopped, $((acked2 - acked0)) after"
echo "  targets (issue 4): idle at most 2 MiB, loaded at most 4 MiB"
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
