#!/usr/bin/env bash
# agent-layout.sh BUILD_DIR [OUT] - lists the functions a running tm-agent executes, for
# the static link's layout (agent/layout.order; docs/agent.md, "Footprint").
#
# The kernel maps a binary's pages around each one the process touches (64 KiB windows),
# so code that runs spread over the whole binary makes all of it resident. Placing what
# runs next to each other keeps the resident part small. This runs BUILD_DIR/tm-agent
# under valgrind's callgrind through what a deployed agent does: start, a TLS connection
# with a client certificate to a local tm-collector, a file input with a few hundred
# events of each parsed format, shipping, heartbeats, idle time and a SIGTERM. Every
# function callgrind saw run is written to OUT (default agent/layout.order), one per
# line, sorted (all of them run at start or soon after, so their order among themselves
# matters little, and a sorted list changes little from one run to the next). The link
# accepts a stale list: functions no longer there are skipped, new ones land after the
# listed ones.
set -eu
build=$(cd "${1:-build}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$root/agent/layout.order}
command -v valgrind >/dev/null || { echo "agent-layout: valgrind is not installed" >&2; exit 1; }
. "$(dirname "$0")/../tests/bench/lib.sh"
bench_setup agent-layout

tls_pki "$tmp" layout
"$build/tm-devkafka" --partitions 2 >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/kafka.out" ] && break; sleep 0.1; done
printf '[operator.layout-op]\nsector = energy\nregion = UA-30\ncerts = agent.layout\n' \
  >"$tmp/identities.ini"
cat >"$tmp/collector.ini" <<EOF
[lumberjack]
tls = true
[tls]
cert = $tmp/server.crt
key = $tmp/server.key
ca = $tmp/ca.crt
require_client_cert = true
[identity]
map = $tmp/identities.ini
EOF
"$build/tm-collector" -c "$tmp/collector.ini" --kafka "$(head -n 1 "$tmp/kafka.out")" \
  --lumberjack 127.0.0.1:0 --admin 127.0.0.1:0 >"$tmp/collector.out" 2>"$tmp/collector.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening admin' "$tmp/collector.out" 2>/dev/null && break; sleep 0.1; done
lj=$(sed -n 's/^listening lumberjack //p' "$tmp/collector.out")
[ -n "$lj" ] || { echo "agent-layout: tm-collector did not start" >&2; cat "$tmp/collector.log" >&2; exit 1; }

data=$root/tests/data
: >"$tmp/eve.json" && : >"$tmp/auth.log" && : >"$tmp/events.ndjson"
cat >"$tmp/agent.ini" <<EOF
[agent]
id = layout
state_dir = $tmp/state
[shipper]
collectors = $lj
tls_ca = $tmp/ca.crt
tls_cert = $tmp/agent.crt
tls_key = $tmp/agent.key
heartbeat = 2s
[input.eve]
type = file
format = eve
paths = $tmp/eve.json
[input.auth]
type = file
format = auth
paths = $tmp/auth.log
[input.events]
type = file
format = json
paths = $tmp/events.ndjson
pass_min_severity = 1
EOF
valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out" \
  "$build/tm-agent" -c "$tmp/agent.ini" --admin 127.0.0.1:0 >"$tmp/agent.out" 2>"$tmp/agent.log" &
apid=$!
pids+=("$apid")
sleep 4
head -n 300 "$data/suricata/eve-formbook-dridex.json" >>"$tmp/eve.json"
head -n 300 "$data/syslog/loghub-OpenSSH_2k.log" >>"$tmp/auth.log"
for i in $(seq 300); do
  printf '{"schema":1,"ts":"2026-11-01T10:00:00Z","category":"scan","severity":5,"src":{"ip":"198.51.100.%d"},"summary":"layout %d"}\n' \
    $((i % 250)) "$i"
done >>"$tmp/events.ndjson"
sleep 6
kill -TERM "$apid"
wait "$apid" || true
grep -q 'connected to' "$tmp/agent.log" ||
  { echo "agent-layout: the agent never connected:" >&2; cat "$tmp/agent.log" >&2; exit 1; }
# callgrind names a function "(id) name" the first time it appears, as a function that
# ran (fn=) or was called (cfn=), and "(id)" after; every function that ran has fn= lines.
awk '
  match($0, /^c?fn=\([0-9]+\)/) {
    id = substr($0, RSTART, RLENGTH); sub(/^c?fn=/, "", id)
    name = substr($0, RLENGTH + 2)
    if (name != "" && !(id in names)) names[id] = name
    if ($0 ~ /^fn=/ && !(id in ran)) { ran[id] = 1; order[n++] = id }
  }
  END { for (i = 0; i < n; i++) if (order[i] in names) print names[order[i]] }
' "$tmp/callgrind.out" | LC_ALL=C sort -u >"$out"
echo "agent-layout: $(wc -l <"$out") functions -> $out"
