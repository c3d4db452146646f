#!/usr/bin/env bash
# test_production.sh - deploy/production/ works as written.
#
# Every production file is used by the real program it is for. Paths under /etc/tm-*,
# /var/lib/tm-agent and /var/log are moved into a scratch directory that gets the files
# they name (a throwaway CA and certificates made with openssl, an identity map, password
# and token files), and every listening address is given on the command line as
# 127.0.0.1:0, so nothing clashes with a running system. Checks:
#   - tm-agent --check-config accepts the production agent config;
#   - tm-collector, tm-aggregator and tm-dashboard start with their production configs
#     unchanged otherwise, Kafka SASL/TLS pass-through included (librdkafka accepts every
#     property, the CA file loads), and answer /healthz; the Kafka and Redis addresses
#     point at closed ports, so nothing is reached. These daemons have no --check-config:
#     starting and answering is the check;
#   - redis-server starts with production redis.conf (as an include, then the test's
#     port, bind, dir and aclfile) and users.acl whose password placeholders were
#     replaced the way docs/operations.md says (sed with sha256sum): AOF everysec,
#     noeviction, the default user off;
#   - the whole pipeline on those configs: the production tm-agent (TLS client
#     certificate; heartbeat 1s instead of 30s to keep the test short) and HTTP posts
#     with a bearer token into the production tm-collector (TLS listener, identity map),
#     tm-devkafka (the collector's and aggregator's [kafka.librdkafka] SASL/TLS lines are
#     left out for it, since the mock broker is plaintext), the production tm-aggregator
#     as the ACL user `aggregator`, the production tm-dashboard (HTTPS, tokens) as
#     `dashboard`, and tmctl with the production tmctl.ini as `tmctl`: the dashboard's
#     figures, agents and priorities are exact, and Redis's ACL LOG has no denial;
#   - what each ACL user must not do, it cannot (NOPERM);
#   - tm-monitor.sh reports the agent's heartbeat age and loss and the group's lag (0),
#     read as the read-only `dashboard` user; prometheus-rules.yml parses and names only
#     metrics that exist;
#   - create-topics.sh --dry-run names the topics the daemons use, with replication 3 and
#     min.insync.replicas 2.
# Takes about 15 s. tm-devkafka keeps data in memory only (a few events here).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

prod=$TM_ROOT/deploy/production
closed=127.0.0.1:$(free_port) # a port nothing listens on
pki=$T/pki
token_ingest=ingest-$(openssl rand -hex 16)
token_analyst=analyst-$(openssl rand -hex 16)
declare -A pw
for u in aggregator dashboard tmctl ops; do pw[$u]=$(openssl rand -hex 24); done

# ---- set-up -----------------------------------------------------------------------------

# leaf NAME SAN: a certificate and key signed by the test CA.
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null &&
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=%s\n' "$2") \
      -out "$pki/$1.crt" 2>/dev/null
}

# moved FILE: a production file with its system paths moved under $T.
moved() {
  sed -e "s#/etc/tm-#$T/etc/tm-#g" -e "s#/var/lib/tm-agent#$T/var/lib/tm-agent#g" \
    -e "s#/var/log/#$T/var/log/#g" "$prod/$1"
}

# without_kafka_security: stdin without the [kafka.librdkafka] section.
without_kafka_security() {
  awk '/^\[/ { skip = ($0 == "[kafka.librdkafka]") } !skip'
}

setup() {
  mkdir -p "$pki" "$T/etc/tm-collector/tls" "$T/etc/tm-aggregator" "$T/etc/tm-dashboard/tls" \
    "$T/etc/tm-agent" "$T/var/lib/tm-agent" "$T/var/log/suricata" "$T/redis" || return 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=tm test CA" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null &&
    leaf collector.test "DNS:collector.test,IP:127.0.0.1" &&
    leaf agent.test "DNS:agent.test" &&
    leaf dashboard.test "DNS:dashboard.test,IP:127.0.0.1" || fail "openssl could not make the test PKI" || return 1
  cp "$pki/ca.crt" "$T/etc/tm-collector/kafka-ca.crt"
  cp "$pki/ca.crt" "$T/etc/tm-aggregator/kafka-ca.crt"
  cp "$pki/collector.test.crt" "$T/etc/tm-collector/tls/collector.crt"
  cp "$pki/collector.test.key" "$T/etc/tm-collector/tls/collector.key"
  cp "$pki/ca.crt" "$T/etc/tm-collector/tls/agents-ca.crt"
  cp "$pki/dashboard.test.crt" "$T/etc/tm-dashboard/tls/dashboard.crt"
  cp "$pki/dashboard.test.key" "$T/etc/tm-dashboard/tls/dashboard.key"
  cp "$pki/ca.crt" "$T/etc/tm-agent/ca.crt"
  cp "$pki/agent.test.crt" "$T/etc/tm-agent/agent.crt"
  cp "$pki/agent.test.key" "$T/etc/tm-agent/agent.key"
  # The packaged identity map (all comments), plus one enrolled operator.
  {
    cat "$prod/identities.ini"
    printf '[operator.test-water]\nsector = drinking-water\nregion = UA-30\ncerts = agent.test\n'
    printf 'tokens_sha256 = %s\n' "$(printf %s "$token_ingest" | sha256sum | cut -d' ' -f1)"
  } >"$T/etc/tm-collector/identities.ini"
  printf '%s\n' "${pw[dashboard]}" >"$T/etc/tm-dashboard/redis.password"
  printf '# analysts\nanalyst:%s\n' "$token_analyst" >"$T/etc/tm-dashboard/tokens"
  chmod 0600 "$T/etc/tm-dashboard/tokens" "$T/etc/tm-dashboard/redis.password"
  : >"$T/var/log/suricata/eve.json"
  : >"$T/var/log/auth.log"
  moved tm-collector.ini >"$T/etc/tm-collector/tm-collector.ini"
  moved tm-aggregator.ini | sed "s/^password = CHANGE-ME.*/password = ${pw[aggregator]}/" \
    >"$T/etc/tm-aggregator/tm-aggregator.ini"
  moved tm-dashboard.ini >"$T/etc/tm-dashboard/tm-dashboard.ini"
  # users.acl with the placeholders replaced as docs/operations.md does it.
  cp "$prod/users.acl" "$T/redis/users.acl"
  for u in aggregator dashboard tmctl ops; do
    sed -i "s/#SHA256-OF-${u^^}-PASSWORD/#$(printf %s "${pw[$u]}" | sha256sum | cut -d' ' -f1)/" \
      "$T/redis/users.acl"
  done
}

# rcli USER ARGS...: redis-cli on the test's Redis as an ACL user.
rcli() {
  local u=$1
  shift
  REDISCLI_AUTH=${pw[$u]} redis-cli -p "$rport" --user "$u" --no-auth-warning "$@"
}

# https_get PATH: the production dashboard's answer with the analyst's token.
dash_get() {
  curl -sk --max-time 5 -H "Authorization: Bearer $token_analyst" "https://$dash_http$1"
}

# json EXPR: a Python expression over the JSON document on stdin (as j).
json() {
  python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"
}

# ---- checks -----------------------------------------------------------------------------

test_production_agent_check_config() {
  local out
  out=$("$TM_BUILD/tm-agent" -c "$prod/tm-agent.ini" --check-config 2>&1) || fail "$out" || return 1
  expect_has "tm-agent --check-config" "$out" "config ok: agent 'ua-energy-lviv-gw1', 3 input(s)"
}

# start_as_written NAME ARGS...: the daemon with its production config starts and
# answers /healthz (200 or 503: it is up, whatever it can reach); then it stops.
start_as_written() {
  local name=$1 admin code pid
  shift
  spawn "$T/$name.out" "$T/$name.err" "$TM_BUILD/$name" -c "$T/etc/$name/$name.ini" \
    --admin 127.0.0.1:0 --log-level warn "$@"
  pid=$SPAWNED
  admin=$(wait_line "$T/$name.out" "listening admin ") ||
    fail "$name did not start: $(tail -n 5 "$T/$name.err")" || return 1
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$admin/healthz")
  case "$code" in
  200 | 503) ;;
  *) fail "$name /healthz answered '$code': $(tail -n 5 "$T/$name.err")" || return 1 ;;
  esac
  kill -0 "$pid" 2>/dev/null || fail "$name exited: $(tail -n 5 "$T/$name.err")" || return 1
  if grep -E 'error: .*(config|property|ssl|sasl|unknown)' "$T/$name.err" | grep -v 'Connect to' >"$T/$name.bad"; then
    fail "$name: $(cat "$T/$name.bad")" || return 1
  fi
  stop "$pid"
}

test_production_daemons_start_as_written() {
  start_as_written tm-collector --kafka "$closed" --lumberjack 127.0.0.1:0 \
    --syslog-tcp 127.0.0.1:0 --http 127.0.0.1:0 || return 1
  start_as_written tm-aggregator --kafka "$closed" --redis "$closed" || return 1
  start_as_written tm-dashboard --redis "$closed" --http 127.0.0.1:0
}

test_production_redis_config() {
  need redis-server redis-cli || return 1
  rport=$(free_port)
  cp "$prod/redis.conf" "$T/redis/tm-telemetry.conf"
  # As on Debian: the main file, then the production fragment, then this test's places.
  cat >"$T/redis/redis.conf" <<EOF
include $T/redis/tm-telemetry.conf
bind 127.0.0.1
port $rport
dir $T/redis
aclfile $T/redis/users.acl
logfile $T/redis/redis.log
save ""
EOF
  ! grep -q 'SHA256-OF' "$T/redis/users.acl" || fail "a password placeholder is left in users.acl" || return 1
  spawn "$T/redis.out" "$T/redis.err" redis-server "$T/redis/redis.conf"
  for _ in $(seq 50); do rcli ops PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  expect_eq "PING as ops" "$(rcli ops PING 2>&1)" PONG || fail "$(tail -n 5 "$T/redis/redis.log")" || return 1
  expect_eq appendonly "$(rcli ops CONFIG GET appendonly | tail -n 1)" yes || return 1
  expect_eq appendfsync "$(rcli ops CONFIG GET appendfsync | tail -n 1)" everysec || return 1
  expect_eq maxmemory-policy "$(rcli ops CONFIG GET maxmemory-policy | tail -n 1)" noeviction || return 1
  expect_has "the default user" "$(redis-cli -p "$rport" PING 2>&1)" NOAUTH || return 1
  expect_eq "users" "$(rcli ops ACL USERS | tr '\n' ' ')" "aggregator dashboard default ops tmctl "
}

test_production_pipeline() {
  local agent_admin id n today
  [ -n "${rport:-}" ] || fail "needs test_production_redis_config" || return 1
  need curl python3 || return 1
  spawn "$T/kafka.out" "$T/kafka.err" "$TM_BUILD/tm-devkafka" --partitions 3
  bootstrap=$(wait_line "$T/kafka.out" "") || return 1
  without_kafka_security <"$T/etc/tm-collector/tm-collector.ini" >"$T/collector-dev.ini"
  spawn "$T/collector.out" "$T/collector.err" "$TM_BUILD/tm-collector" -c "$T/collector-dev.ini" \
    --kafka "$bootstrap" --lumberjack 127.0.0.1:0 --syslog-tcp 127.0.0.1:0 --http 127.0.0.1:0 \
    --admin 127.0.0.1:0
  without_kafka_security <"$T/etc/tm-aggregator/tm-aggregator.ini" >"$T/aggregator-dev.ini"
  spawn "$T/aggregator.out" "$T/aggregator.err" "$TM_BUILD/tm-aggregator" -c "$T/aggregator-dev.ini" \
    --kafka "$bootstrap" --redis "127.0.0.1:$rport" --admin 127.0.0.1:0
  spawn "$T/dashboard.out" "$T/dashboard.err" "$TM_BUILD/tm-dashboard" \
    -c "$T/etc/tm-dashboard/tm-dashboard.ini" --redis "127.0.0.1:$rport" --http 127.0.0.1:0 \
    --admin 127.0.0.1:0 --web "$TM_ROOT/dashboard/web"
  lj=$(wait_line "$T/collector.out" "listening lumberjack ") || return 1
  http_in=$(wait_line "$T/collector.out" "listening http ") || return 1
  agg_admin=$(wait_line "$T/aggregator.out" "listening admin ") || return 1
  dash_http=$(wait_line "$T/dashboard.out" "listening http ") || return 1
  # The production agent: to this collector, its firewall input on a free port.
  moved tm-agent.ini | sed -e "s/^collectors = .*/collectors = $lj/" \
    -e 's/^listen = 10.0.0.5:5514$/listen = 127.0.0.1:0/' -e 's/^heartbeat = 30s$/heartbeat = 1s/' \
    >"$T/etc/tm-agent/tm-agent.ini"
  spawn "$T/agent.out" "$T/agent.err" "$TM_BUILD/tm-agent" -c "$T/etc/tm-agent/tm-agent.ini" \
    --admin 127.0.0.1:0
  agent_admin=$(wait_line "$T/agent.out" "listening admin ") || fail "$(tail "$T/agent.err")" || return 1
  # Five events over HTTP with the operator's token, one manual report through the agent.
  for n in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 -H "Authorization: Bearer $token_ingest" \
      --data-binary '{"ts":"'"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"'","category":"ddos","severity":'"$((n + 2))"',"summary":"production test '"$n"'"}' \
      "http://$http_in/v1/events"
  done >"$T/posts"
  expect_eq "HTTP ingest answers" "$(sort -u "$T/posts")" 200 || return 1
  id=$("$TM_BUILD/tm-agent" report -c "$T/etc/tm-agent/tm-agent.ini" --category ransomware \
    --severity 9 --summary "production test report" 2>"$T/report.err") ||
    fail "tm-agent report: $(cat "$T/report.err")" || return 1
  for _ in $(seq 300); do
    today=$(dash_get /api/overview | json 'j["national"]["today"]' 2>/dev/null)
    [ "$today" = 6 ] && break
    sleep 0.1
  done
  expect_eq "national events today on the dashboard" "$today" 6 || return 1
  expect_eq "drinking-water today" "$(dash_get /api/overview |
    json '[s["today"] for s in j["sectors"] if s["sector"] == "drinking-water"][0]')" 6 || return 1
  expect_has "the feed" "$(dash_get /api/feed)" "\"id\":\"$id\"" || return 1
  for _ in $(seq 100); do
    dash_get /api/agents | grep -q '"agent":"ua-energy-lviv-gw1"' && break
    sleep 0.1
  done
  expect_eq "the agent on the dashboard" "$(dash_get /api/agents |
    json '[(a["operator"], a["silent"]) for a in j["agents"] if a["agent"] == "ua-energy-lviv-gw1"]')" \
    "[('test-water', False)]" || return 1
  expect_eq "flush errors" "$(curl -s "http://$agg_admin/metrics" |
    sed -n 's/^tm_aggregator_flush_errors_total \([0-9]*\).*/\1/p')" 0 || return 1
  # tmctl as its ACL user: a need, then priorities, which the dashboard reads.
  if [ -x "$TM_BUILD/tmctl" ]; then
    sed "s/^address = .*/address = 127.0.0.1:$rport/" "$prod/tmctl.ini" >"$T/tmctl.ini"
    TMCTL_REDIS_PASSWORD=${pw[tmctl]} "$TM_BUILD/tmctl" -c "$T/tmctl.ini" needs add --id N-1 \
      --sector drinking-water --category anti-ddos --cost 5000 >"$T/tmctl.out" 2>&1 &&
      TMCTL_REDIS_PASSWORD=${pw[tmctl]} "$TM_BUILD/tmctl" -c "$T/tmctl.ini" priorities \
        >>"$T/tmctl.out" 2>&1 || fail "tmctl: $(cat "$T/tmctl.out")" || return 1
    expect_has "priorities on the dashboard" "$(dash_get /api/priorities)" '"need":"N-1"' || return 1
  fi
  expect_eq "ACL denials" "$(rcli ops ACL LOG | head -c 400)" ""
}

# Each ACL user is refused what it has no business doing.
test_production_acl_limits() {
  [ -n "${rport:-}" ] || fail "needs test_production_redis_config" || return 1
  local u cmd
  for u in dashboard; do
    for cmd in "SET tm:x 1" "DEL tm:risk" "PUBLISH tm:updates x" "GET other:key" "FLUSHALL" \
      "CONFIG GET maxmemory" "KEYS tm:x"; do
      expect_has "$u: $cmd" "$(rcli "$u" $cmd 2>&1)" NOPERM || return 1
    done
    expect_eq "$u: reading tm:n:roll" "$(rcli "$u" EXISTS tm:n:roll)" 1 || return 1
  done
  for u in aggregator tmctl; do
    for cmd in "GET other:key" "FLUSHALL" "FLUSHDB" "CONFIG SET appendonly no" "KEYS tm:x" "SHUTDOWN" \
      "SCRIPT FLUSH" "CLIENT LIST" "ACL LIST"; do
      expect_has "$u: $cmd" "$(rcli "$u" $cmd 2>&1)" NOPERM || return 1
    done
  done
  expect_has "aggregator: PUBLISH outside tm:updates" "$(rcli aggregator PUBLISH other x 2>&1)" NOPERM
}

# tm-monitor.sh against the pipeline above: the agent's age and loss, the group's lag.
test_production_monitor_script() {
  local out
  [ -n "${bootstrap:-}" ] || fail "needs test_production_pipeline" || return 1
  REDIS=127.0.0.1:$rport REDIS_USER=dashboard REDISCLI_AUTH=${pw[dashboard]} \
    KAFKA_BOOTSTRAP=$bootstrap TOPICS=tm.events.v1 "$prod/tm-monitor.sh" >"$T/monitor.prom" 2>"$T/monitor.err" ||
    fail "tm-monitor.sh: $(cat "$T/monitor.err")" || return 1
  out=$(cat "$T/monitor.prom")
  expect_has "tm-monitor.sh" "$out" 'tm_agents_last_seen_age_seconds{operator="test-water",agent="ua-energy-lviv-gw1"} ' || return 1
  expect_has "tm-monitor.sh" "$out" 'tm_agents_seq_lost{operator="test-water",agent="ua-energy-lviv-gw1"} 0' || return 1
  expect_has "tm-monitor.sh" "$out" 'tm_agents_reported_lost{operator="test-water",agent="ua-energy-lviv-gw1"} 0' || return 1
  expect_eq "partitions with a lag line" "$(grep -c '^tm_aggregator_partition_lag_messages{topic="tm.events.v1"' <<<"$out")" 3 || return 1
  expect_eq "lag of tm.events.v1" "$(grep '^tm_aggregator_partition_lag_messages' <<<"$out" | awk '{ s += $2 } END { print s }')" 0 || return 1
  expect_has "tm-monitor.sh" "$out" "tm_monitor_success 1" || return 1
  # Every line is a comment or NAME{LABELS} VALUE.
  ! grep -vE '^(# (HELP|TYPE) .*|[a-z_]+(\{[^}]*\})? -?[0-9.]+)$' <<<"$out" >"$T/monitor.bad" ||
    fail "not Prometheus text: $(head -n 3 "$T/monitor.bad")"
}

# The alert rules parse, and every tm_* metric they name exists: in a daemon's sources
# or in what tm-monitor.sh prints.
test_production_alert_rules() {
  local known missing
  python3 -c '
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
rules = [r for g in doc["groups"] for r in g["rules"]]
assert rules and all("alert" in r and "expr" in r for r in rules), "each rule needs alert and expr"
print(len(rules))' "$prod/prometheus-rules.yml" >"$T/rules.n" 2>&1 || fail "prometheus-rules.yml: $(cat "$T/rules.n")" || return 1
  known=$( {
    grep -rhoE '"tm_[a-z_]+"' "$TM_ROOT"/collector "$TM_ROOT"/aggregator "$TM_ROOT"/dashboard \
      "$TM_ROOT"/agent "$TM_ROOT"/common | tr -d '"'
    grep -oE '^tm_[a-z_]+' "$T/monitor.prom" 2>/dev/null
    grep -oE 'tm_(agents|monitor|aggregator_partition)_[a-z_]+' "$prod/tm-monitor.sh"
  } | sort -u)
  missing=$(grep -v '^ *#' "$prod/prometheus-rules.yml" | grep -oE '\btm_[a-z_]+' |
    sed -E 's/_(bucket|sum|count)$//' | sort -u | grep -vxF -f <(printf '%s\n' "$known"))
  expect_eq "metrics named in prometheus-rules.yml that nothing exports" "$missing" ""
}

test_production_topics_script() {
  local out t
  out=$("$prod/create-topics.sh" --bootstrap kafka1.tm.example:9093 --command-config admin.properties \
    --acls --dry-run) || fail "create-topics.sh --dry-run failed" || return 1
  for t in $(sed -n 's/^topic_[a-z]* = //p' "$prod/tm-collector.ini" "$prod/tm-aggregator.ini" | sort -u); do
    expect_has "create-topics.sh" "$out" "--create --if-not-exists --topic $t --partitions" || return 1
  done
  expect_eq "topics created" "$(grep -c -- '--create' <<<"$out")" 3 || return 1
  expect_eq "replication factor 3 each" "$(grep -c -- '--replication-factor 3 --config min.insync.replicas=2' <<<"$out")" 3 || return 1
  expect_has "aggregator group ACL" "$out" "--group $(sed -n 's/^group = //p' "$prod/tm-aggregator.ini")"
}

for tool in openssl redis-server redis-cli curl python3 sha256sum; do
  command -v "$tool" >/dev/null || echo "test_production: '$tool' not found: run deploy/install-deps.sh" >&2
done
setup || { echo "test_production: set-up failed" >&2; }
check test_production_agent_check_config
check test_production_daemons_start_as_written
check test_production_redis_config
check test_production_pipeline
check test_production_monitor_script
check test_production_acl_limits
check test_production_alert_rules
check test_production_topics_script
finish
