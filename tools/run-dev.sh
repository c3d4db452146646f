#!/usr/bin/env bash
# run-dev.sh BUILD_DIR - the whole system on loopback, for development ('make run').
#
# Starts, in run/ at the repository root:
#   tm-devkafka   librdkafka's mock Kafka cluster; bootstrap servers in run/kafka.bootstrap.
#                 Development only: the data lives in memory, and each partition keeps only
#                 about the last 5 MB of batches (older ones are dropped silently).
#                 Production points at a real Kafka cluster.
#   redis-server  private, on 127.0.0.1:6390, no persistence, dir run/redis, log run/redis.log
# then whichever of tm-collector, tm-aggregator and tm-dashboard exist in BUILD_DIR, with
# the addresses of DESIGN.md's command-line contract, and three demo tm-agents (one per
# demo operator, each with its own TLS client certificate from run/pki) tailing log
# files that tools/replay-corpus.sh fills from the sample corpus. Each program's stdout goes to
# run/NAME.out and its stderr to run/NAME.log.
#
# Runs until Ctrl-C or SIGTERM, or until one of the programs exits, then stops everything
# it started, by PID only (SIGTERM, SIGKILL after 10 s). A lock on run/.lock keeps a
# second 'make run' from starting beside this one.
set -u

die() {
  echo "run-dev: $*" >&2
  exit 1
}

[ $# -le 1 ] || die "usage: $0 [BUILD_DIR]"
build=${1:-build}
[ -d "$build" ] || die "build directory '$build' does not exist; run 'make' first"
build=$(cd "$build" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
run=$root/run
redis_port=6390

[ -x "$build/tm-devkafka" ] || die "'$build/tm-devkafka' not found; run 'make' first"
command -v redis-server >/dev/null || die "'redis-server' not found; run deploy/install-deps.sh"
mkdir -p "$run" || die "cannot create '$run'"

# One 'make run' at a time. fd 9 holds the lock; children do not inherit it (9>&- below),
# so the lock goes away with this script.
exec 9>"$run/.lock" || die "cannot open '$run/.lock'"
if ! flock -n 9; then
  die "another 'make run' is already running (pid $(cat "$run/run.pid" 2>/dev/null || echo '?')); stop it with Ctrl-C first"
fi
echo $$ >"$run/run.pid"

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_taken "$redis_port" &&
  die "port $redis_port on 127.0.0.1 is taken (a leftover of an earlier run? see '$run/pids'); free it first"
if [ -x "$build/tm-collector" ]; then
  for p in 5044 5514 8088; do
    port_taken "$p" && die "port $p on 127.0.0.1 (tm-collector) is taken; free it first"
  done
fi
if [ -x "$build/tm-dashboard" ]; then
  port_taken 8080 && die "port 8080 on 127.0.0.1 (tm-dashboard) is taken; free it first"
fi

pids=()
names=()

# Stops what we started, newest first, by PID.
cleanup() {
  local i p alive
  trap - EXIT
  trap "" INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null
  done
  for _ in $(seq 100); do
    alive=0
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null && alive=1
    done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      echo "run-dev: ${names[i]} (pid ${pids[i]}) ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "${pids[i]}" 2>/dev/null
    fi
  done
  wait 2>/dev/null
  rm -f "$run/kafka.bootstrap" "$run/run.pid" "$run/pids"
  rm -rf "$run/redis" "$run/demo" "$run"/agent-*.state "$run/pki"
  echo "run-dev: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME STDOUT STDERR COMMAND... : runs COMMAND in the background and remembers it.
start() {
  local name=$1 out=$2 err=$3
  shift 3
  "$@" </dev/null >"$out" 2>"$err" 9>&- &
  pids+=($!)
  names+=("$name")
  echo "$name $!" >>"$run/pids"
}

# Fails with the tail of a program's log when it is no longer running.
check_alive() {
  local pid=$1 name=$2 log=$3
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run-dev: $name exited; the end of '$log':" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}

rm -f "$run/kafka.bootstrap" "$run/pids"
rm -rf "$run/redis"
mkdir -p "$run/redis" || die "cannot create '$run/redis'"

start tm-devkafka "$run/tm-devkafka.out" "$run/tm-devkafka.log" \
  "$build/tm-devkafka" --bootstrap-file "$run/kafka.bootstrap" --admin 127.0.0.1:0
start redis "$run/redis.out" "$run/redis.out" \
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$run/redis" --logfile "$run/redis.log" --daemonize no

for _ in $(seq 150); do
  [ -s "$run/kafka.bootstrap" ] && break
  check_alive "${pids[0]}" tm-devkafka "$run/tm-devkafka.log"
  sleep 0.1
done
[ -s "$run/kafka.bootstrap" ] || die "tm-devkafka wrote no '$run/kafka.bootstrap' within 15 s"
bootstrap=$(cat "$run/kafka.bootstrap")
kafka_admin=$(sed -n 's/^admin //p' "$run/tm-devkafka.out")

ready=
for _ in $(seq 100); do
  if [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; then
    ready=1
    break
  fi
  check_alive "${pids[1]}" redis-server "$run/redis.log"
  sleep 0.1
done
[ -n "$ready" ] || die "redis-server did not answer on 127.0.0.1:$redis_port within 10 s"

started=()
# Demo operators: each demo agent is one operator site, identified by its TLS client
# certificate (CN demo-NAME.tm.test) through the collector's identity map.
#   NAME  operator          sector                  region  input
demo_sites=(
  "ids   ua-energy-kyiv    energy                  UA-30   eve:eve.json"
  "auth  ua-water-odesa    drinking-water          UA-51   auth:auth.log"
  "fw    ua-telecom-lviv   digital-infrastructure  UA-46   cef:firewall.cef"
)

# make_pki DIR: a throwaway CA, a server certificate for 127.0.0.1 and one client
# certificate per demo site (P-256, valid 30 days). Development only.
make_pki() {
  local dir=$1 site name
  mkdir -p "$dir" || return 1
  (
    cd "$dir" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=tm-telemetry dev CA" -keyout ca.key -out ca.crt 2>/dev/null || exit 1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=collector.tm.test" \
      -keyout server.key -out server.csr 2>/dev/null || exit 1
    printf 'subjectAltName=DNS:collector.tm.test,IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile server.ext -out server.crt 2>/dev/null || exit 1
    for site in "${demo_sites[@]}"; do
      read -r name _ <<<"$site"
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=demo-$name.tm.test" -keyout "agent-$name.key" -out "agent-$name.csr" \
        2>/dev/null || exit 1
      openssl x509 -req -in "agent-$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 30 -out "agent-$name.crt" 2>/dev/null || exit 1
    done
    chmod 600 ./*.key
  )
}

if [ -x "$build/tm-collector" ]; then
  command -v openssl >/dev/null || die "'openssl' not found; run deploy/install-deps.sh"
  make_pki "$run/pki" || die "cannot make the development PKI in '$run/pki'"
  # Identity map: each demo agent's certificate names its operator, sector and region.
  # Senders on plain syslog and HTTP get the development identity 'dev-local'.
  # Production uses real certificates and tokens (docs/collector.md).
  : >"$run/identities.ini"
  for site in "${demo_sites[@]}"; do
    read -r name op sector region _ <<<"$site"
    printf '[operator.%s]\nsector = %s\nregion = %s\ncerts = demo-%s.tm.test\n' \
      "$op" "$sector" "$region" "$name" >>"$run/identities.ini"
  done
  cat >"$run/collector.ini" <<EOF_INI
[identity]
map = $run/identities.ini
default_operator = dev-local
default_sector = local-government
default_region = UA-30
[lumberjack]
tls = true
[tls]
cert = $run/pki/server.crt
key = $run/pki/server.key
ca = $run/pki/ca.crt
[kafka]
linger = 5ms
EOF_INI
  start tm-collector "$run/tm-collector.out" "$run/tm-collector.log" \
    "$build/tm-collector" -c "$run/collector.ini" --kafka "$bootstrap" --lumberjack 127.0.0.1:5044 \
    --syslog-tcp 127.0.0.1:5514 --syslog-udp 127.0.0.1:5514 --http 127.0.0.1:8088 \
    --admin 127.0.0.1:0
  started+=("  tm-collector   lumberjack+TLS 127.0.0.1:5044 (client certificates: run/pki), syslog 127.0.0.1:5514 (tcp, udp), http 127.0.0.1:8088")
fi
agent_names=()
if [ -x "$build/tm-agent" ] && [ -x "$build/tm-collector" ]; then
  # Demo agents: a replayer appends lines of the sample corpus (tests/data, see its
  # SOURCES.md) to log files in run/demo/ every second, the way a live site writes them,
  # and one tm-agent per demo site tails its file and ships it over TLS.
  mkdir -p "$run/demo" || die "cannot create '$run/demo'"
  : >"$run/demo/eve.json"
  : >"$run/demo/auth.log"
  : >"$run/demo/firewall.cef"
  start replayer "$run/replayer.out" "$run/replayer.log" \
    "$root/tools/replay-corpus.sh" "$root/tests/data" "$run/demo"
  for site in "${demo_sites[@]}"; do
    read -r name op _ _ input <<<"$site"
    cat >"$run/agent-$name.ini" <<EOF_INI
[agent]
id = demo-$name
state_dir = $run/agent-$name.state
fsync = never
[shipper]
collectors = 127.0.0.1:5044
heartbeat = 10s
tls_ca = $run/pki/ca.crt
tls_cert = $run/pki/agent-$name.crt
tls_key = $run/pki/agent-$name.key
[input.demo]
type = file
format = ${input%%:*}
paths = $run/demo/${input#*:}
EOF_INI
    start "tm-agent-$name" "$run/tm-agent-$name.out" "$run/tm-agent-$name.log" \
      "$build/tm-agent" -c "$run/agent-$name.ini" --admin 127.0.0.1:0
    agent_names+=("tm-agent-$name")
    started+=("  tm-agent       demo-$name: operator $op, tails run/demo/${input#*:} (replayed from tests/data)")
  done
fi
if [ -x "$build/tm-aggregator" ]; then
  start tm-aggregator "$run/tm-aggregator.out" "$run/tm-aggregator.log" \
    "$build/tm-aggregator" --kafka "$bootstrap" --redis "127.0.0.1:$redis_port" \
    --admin 127.0.0.1:0
  started+=("  tm-aggregator  kafka -> redis 127.0.0.1:$redis_port")
fi
if [ -x "$build/tm-dashboard" ]; then
  # A read-only token for the analyst 'dev', made once and kept in run/dashboard.tokens
  # (mode 600) so a browser stays signed in across runs: sign in on the page with it, or
  # send 'Authorization: Bearer TOKEN'. Production: deploy/tm-dashboard.ini.
  if ! grep -q '^dev:' "$run/dashboard.tokens" 2>/dev/null; then
    (umask 077 && printf 'dev:%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
      >"$run/dashboard.tokens") || die "cannot write '$run/dashboard.tokens'"
  fi
  dash_token=$(sed -n 's/^dev://p' "$run/dashboard.tokens" | head -n 1)
  printf '[auth]\ntokens_file = %s\n' "$run/dashboard.tokens" >"$run/dashboard.ini"
  start tm-dashboard "$run/tm-dashboard.out" "$run/tm-dashboard.log" \
    "$build/tm-dashboard" -c "$run/dashboard.ini" --redis "127.0.0.1:$redis_port" \
    --http 127.0.0.1:8080 --admin 127.0.0.1:0 --web "$root/dashboard/web"
  started+=("  tm-dashboard   http://127.0.0.1:8080/  token: $dash_token (run/dashboard.tokens)")
fi

echo "run-dev: running on loopback; Ctrl-C stops everything"
echo "  kafka          $bootstrap (also in run/kafka.bootstrap); admin ${kafka_admin:-?}"
echo "                 tm-devkafka: in memory only, about 5 MB kept per partition, dev/test only"
echo "  redis          127.0.0.1:$redis_port (no persistence)"
for line in ${started[@]+"${started[@]}"}; do
  echo "$line"
done
[ ${#started[@]} -gt 0 ] || echo "  (no tm-collector, tm-aggregator or tm-dashboard in '$build' yet)"
# What the daemons themselves announce on stdout (the addresses they bound, admin ports).
if [ ${#started[@]} -gt 0 ]; then
  sleep 1
  for name in tm-collector ${agent_names[@]+"${agent_names[@]}"} tm-aggregator tm-dashboard; do
    [ -s "$run/$name.out" ] && sed "s/^/  $name: /" "$run/$name.out"
  done
fi
echo "  logs           $run/*.log; each program's stdout in $run/*.out"

# Until a signal arrives (the traps exit) or a program exits on its own.
while :; do
  wait -n "${pids[@]}"
  status=$?
  for ((i = 0; i < ${#pids[@]}; i++)); do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      echo "run-dev: ${names[i]} (pid ${pids[i]}) exited (status $status); stopping the rest" >&2
      exit 1
    fi
  done
done
