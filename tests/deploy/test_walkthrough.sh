#!/usr/bin/env bash
# test_walkthrough.sh - the README's walk-through "From packages to an enrolled agent on
# the dashboard", run as it is written there, so that it cannot silently go wrong.
#
# The shell blocks of that README section are taken from the README itself and run in
# order by `bash -e -o pipefail`, as root, in a scratch system tree $R instead of /:
#   - paths under /etc, /var/lib, /var/log, /run and /usr/bin in the commands (and in
#     the config files the units start with) are moved under $R, the fixed ports of the
#     walk-through (5044, 5045, 8080, 9601-9603, 5514, 9701, 6379) become free ports
#     picked now, and 0.0.0.0 becomes 127.0.0.1: nothing clashes with a running system;
#   - the commands that touch the system are stand-ins with the same meaning, in $T/shim
#     and shell functions: `make deb` runs deploy/debian/build-debs.sh on $TM_BUILD;
#     `apt install ./x.deb` installs into $R with `dpkg --root --force-script-chrootless`
#     (the real maintainer scripts: users created in $R/etc) and only checks that other
#     packages named (redis-server) are on the host; `systemctl enable --now UNIT` starts
#     the unit's ExecStartPre and ExecStart as its User, Group and SupplementaryGroups
#     (numeric ids from $R/etc, setpriv), after making its StateDirectory, with its UMask;
#     `systemctl reload` sends SIGHUP; chown, chgrp, install -o/-g and runuser -u take the
#     user and group names of $R;
#   - the Redis of the walk-through is a private redis-server on the port 6379 maps to.
# So the daemons run as their own unprivileged users on the files the walk-through made:
# a key the collector cannot read, a map it cannot rewrite, a lock it cannot take fails
# here as it would under systemd. Not covered: systemd's sandbox itself (ProtectSystem
# and the rest; test_packages.sh verifies the units) and apt's dependency resolution.
#
# Then: the agent is on the dashboard's /api/agents (the last block, repeated until its
# first heartbeat, 30 s) as the operator, sector and region enrollment gave it; its
# report is in the feed and in Kafka with that identity; each daemon runs as its user;
# the key, the map, the burned token are as docs/enrollment.md says; no token in any log;
# and `tmctl revoke` (the README's last step) reloads the collector through
# reload_command, after which the agent's next connection is refused. About a minute.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

R=$T/root   # the system tree
W=$T/work   # the walk-through's working directory (a source tree's place)
S=$T/shim   # stand-ins first in PATH
U=$T/units  # pid, stdout and stderr of each unit started
SECTION="## From packages to an enrolled agent on the dashboard"
# The daemons run as users of $R: they must be able to reach it.
chmod 0755 "$T"
mkdir -p "$W/build" "$S" "$U"
ln -s "$TM_BUILD/tm-devkafka" "$W/build/tm-devkafka"

# ---- the moves: paths into $R, fixed ports to free ones -----------------------------------

declare -A port
for p in 5044 5045 5514 6379 8080 9601 9602 9603 9701; do
  while :; do
    port[$p]=$(free_port)
    dup=0
    for q in "${!port[@]}"; do [ "$q" != "$p" ] && [ "${port[$q]}" = "${port[$p]}" ] && dup=1; done
    [ "$dup" = 0 ] && break
  done
done
{
  # A path is moved where it starts a word, a value or a redirection; one already under
  # $R is not moved again.
  for d in /etc/ /var/lib/ /var/log/ /run/ /usr/bin/; do
    printf 's#(^|[[:space:]=,>"'"'"'(:])%s#\\1%s%s#g\n' "$d" "$R" "$d"
  done
  for p in "${!port[@]}"; do printf 's#:%s\\b#:%s#g\n' "$p" "${port[$p]}"; done
  printf 's#0\\.0\\.0\\.0:#127.0.0.1:#g\n'
} >"$T/moves.sed"

# ---- stand-ins ----------------------------------------------------------------------------

# systemctl: an executable, since tmctl's reload_command runs it.
cat >"$S/systemctl" <<'SHIM'
#!/usr/bin/env bash
# systemctl for the tree $R (test_walkthrough.sh): start, stop, reload, enable --now.
set -u
id_in() { awk -F: -v n="$2" '$1 == n { print $3; f = 1 } END { exit !f }' "$R/etc/$1"; }
val() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
moved() { sed -E -f "$T/moves.sed"; }

start() {
  local unit=$R/lib/systemd/system/$1 name=${1%.service} uid gid gids="" g st cmd pre conf
  [ -f "$unit" ] || { echo "systemctl: unit $1 not found" >&2; return 5; }
  if ! uid=$(id_in passwd "$(val "$unit" User)") || ! gid=$(id_in group "$(val "$unit" Group)"); then
    echo "systemctl: $1: no user or group in $R/etc" >&2
    return 1
  fi
  for g in $(val "$unit" SupplementaryGroups); do gids=${gids:+$gids,}$(id_in group "$g"); done
  st=$(val "$unit" StateDirectory)
  if [ -n "$st" ]; then
    mkdir -p "$R/var/lib/$st" && chown "$uid:$gid" "$R/var/lib/$st" &&
      chmod "$(val "$unit" StateDirectoryMode)" "$R/var/lib/$st" || return 1
  fi
  cmd=$(val "$unit" ExecStart | moved)
  pre=$(val "$unit" ExecStartPre | moved)
  # The config named by -c gets the same moves (keeping its inode, owner and mode).
  conf=$(printf '%s\n' "$cmd" | sed -n 's/.* -c \([^ ]*\).*/\1/p')
  if [ -n "$conf" ] && [ -f "$conf" ]; then
    moved <"$conf" >"$T/conf.tmp" && cat "$T/conf.tmp" >"$conf" || return 1
  fi
  as_unit() {
    umask "$(val "$unit" UMask)"
    if [ -n "$gids" ]; then
      exec setpriv --reuid="$uid" --regid="$gid" --groups="$gids" -- "$@"
    fi
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
  }
  # ExecStartPre and ExecStart are word lists, split as systemd splits them (no quotes here).
  # shellcheck disable=SC2086
  if [ -n "$pre" ] && ! (as_unit $pre) >>"$U/$name.log" 2>&1; then
    echo "systemctl: $1: ExecStartPre failed: $(tail -n 3 "$U/$name.log")" >&2
    return 1
  fi
  # shellcheck disable=SC2086
  (as_unit $cmd) >"$U/$name.out" 2>>"$U/$name.log" </dev/null &
  echo $! >"$U/$name.pid"
  for _ in $(seq 200); do
    grep -q '^listening admin ' "$U/$name.out" 2>/dev/null && return 0
    kill -0 "$(cat "$U/$name.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "systemctl: $1 did not start: $(tail -n 5 "$U/$name.log")" >&2
  return 1
}

stop() {
  local name=${1%.service} pid
  pid=$(cat "$U/$name.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$U/$name.pid"
}

verb=$1
shift
now=0
units=()
for a; do
  case "$a" in
  --now) now=1 ;;
  -*) ;;
  *) units+=("$a") ;;
  esac
done
for u in "${units[@]}"; do
  case "$u" in *.service) ;; *) u=$u.service ;; esac
  case "$verb" in
  start) start "$u" || exit 1 ;;
  stop) stop "$u" ;;
  restart) stop "$u" && start "$u" || exit 1 ;;
  reload) kill -HUP "$(cat "$U/${u%.service}.pid")" || exit 1 ;;
  enable) [ "$now" = 0 ] || start "$u" || exit 1 ;;
  *) echo "systemctl: '$verb' is not done here" >&2; exit 1 ;;
  esac
done
exit 0
SHIM
chmod 0755 "$S/systemctl"

# Shell functions for the walk-through's shell (lib.sh's fresh_root and dpkg_root too).
{
  declare -f fail fresh_root dpkg_root
  cat <<'SHIM'
# the tree's numeric id of a user (passwd) or group name; numbers stay numbers
tree_id() {
  case "$2" in
  '' | *[!0-9]*) awk -F: -v n="$2" '$1 == n { print $3; f = 1 } END { exit !f }' "$R/etc/$1" ||
    { echo "no $1 entry '$2' in $R/etc/$1" >&2; return 1; } ;;
  *) echo "$2" ;;
  esac
}
make() {
  [ "$*" = deb ] || { echo "make $*: only 'make deb' is done here" >&2; return 2; }
  "$TM_ROOT/deploy/debian/build-debs.sh" "$TM_BUILD" build/deb >/dev/null
}
apt() {
  local debs=() a
  [ "$1" = install ] || { echo "apt $1: only install is done here" >&2; return 2; }
  shift
  for a; do
    case "$a" in
    *.deb) debs+=("$a") ;;
    -*) ;;
    *) dpkg-query -W -f '${Status}' "$a" 2>/dev/null | grep -q 'ok installed' ||
      { echo "apt: '$a' is not installed on this host" >&2; return 1; } ;;
    esac
  done
  if [ ! -d "$R/var/lib/dpkg" ]; then
    fresh_root "$R" "${debs[@]}"
    mkdir -p "$R/run" "$R/var/log" # as on any installed system
  fi
  dpkg_root "$R" -i "${debs[@]}" || return 1
  # tm-dashboard finds its page beside its binary first: there it is /usr/share/...
  mkdir -p "$R/usr/dashboard" && ln -sfn ../share/tm-telemetry/web "$R/usr/dashboard/web"
}
chown() {
  local a=() o u g first=1
  for o; do
    if [ "$first" = 1 ] && [ "${o#-}" = "$o" ]; then
      u=${o%%:*}
      g=
      [ "$u" = "$o" ] || g=${o#*:}
      o=$(tree_id passwd "$u")${g:+:$(tree_id group "$g")} || return 1
      first=0
    fi
    a+=("$o")
  done
  command chown "${a[@]}"
}
chgrp() {
  local a=() o first=1
  for o; do
    if [ "$first" = 1 ] && [ "${o#-}" = "$o" ]; then
      o=$(tree_id group "$o") || return 1
      first=0
    fi
    a+=("$o")
  done
  command chgrp "${a[@]}"
}
install() {
  local a=() o prev=
  for o; do
    case "$prev" in
    -o) a+=("$(tree_id passwd "$o")") ;;
    -g) a+=("$(tree_id group "$o")") ;;
    *) a+=("$o") ;;
    esac
    prev=$o
  done
  command install "${a[@]}"
}
runuser() {
  local u gid
  [ "$1" = -u ] || { echo "runuser: only -u USER -- COMMAND is done here" >&2; return 2; }
  u=$2
  shift 2
  [ "${1:-}" != -- ] || shift
  gid=$(awk -F: -v n="$u" '$1 == n { print $4 }' "$R/etc/passwd")
  setpriv --reuid="$(tree_id passwd "$u")" --regid="$gid" --clear-groups -- "$@"
}
SHIM
} >"$T/shims.sh"

# The README section's shell blocks, each after a "#BLOCK N" line, with the moves.
blocks() {
  awk -v sec="$SECTION" '
    /^## / { on = ($0 == sec) }
    on && /^```sh$/ { inb = 1; n++; print "#BLOCK " n; next }
    on && inb && /^```$/ { inb = 0; next }
    on && inb { print }' "$TM_ROOT/README.md" | sed -E -f "$T/moves.sed"
}

# in_walk COMMAND...: runs in the walk-through's environment.
in_walk() {
  (cd "$W" && env R="$R" T="$T" U="$U" TM_ROOT="$TM_ROOT" TM_BUILD="$TM_BUILD" \
    PATH="$S:$R/usr/bin:$R/usr/sbin:$PATH" "$@")
}

# Stops what the walk-through started (the units, its background jobs), by PID.
walk_cleanup() {
  local p pids
  pids=$(cat "$U"/*.pid "$T/jobs.pids" 2>/dev/null)
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  [ -z "$pids" ] || sleep 0.5
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  _cleanup
}
trap walk_cleanup EXIT

# json EXPR: a Python expression over the JSON document on stdin (as j).
json() {
  python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"
}

uid_in() { awk -F: -v n="$2" '$1 == n { print $3 }' "$R/etc/$1"; }

# ---- checks -------------------------------------------------------------------------------

test_walkthrough_section_found() {
  local n
  n=$(blocks | grep -c '^#BLOCK ')
  [ "$n" -ge 5 ] || fail "README: '$SECTION' has $n shell blocks" || return 1
  blocks >"$T/blocks.sh"
  # every block but the last is the walk-through; the last one shows the dashboard
  last=$(grep '^#BLOCK ' "$T/blocks.sh" | tail -n 1)
  {
    echo "set -e -o pipefail"
    # its background jobs (tm-devkafka), for the cleanup, however it ends
    echo 'trap '"'"'jobs -p >"$T/jobs.pids"'"'"' EXIT'
    echo "trap 'exit 143' TERM"
    echo ". '$T/shims.sh'"
    sed "/^$last\$/,\$d" "$T/blocks.sh"
  } >"$T/walkthrough.sh"
  sed -n "/^$last\$/,\$p" "$T/blocks.sh" >"$T/last.sh"
}

test_walkthrough_runs() {
  need setpriv redis-server curl python3 openssl kcat dpkg-deb || return 1
  [ -f "$T/walkthrough.sh" ] || fail "needs test_walkthrough_section_found" || return 1
  # The host's redis-server of `apt install redis-server`, on the moved port 6379.
  spawn "$T/redis.out" "$T/redis.err" redis-server --port "${port[6379]}" --bind 127.0.0.1 \
    --save '' --appendonly no --dir "$T"
  for _ in $(seq 50); do redis-cli -p "${port[6379]}" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  # In the background, so that the cleanup stops it (by PID) if the test is cut short.
  in_walk timeout 300 bash "$T/walkthrough.sh" >"$T/walk.out" 2>"$T/walk.err" &
  _pids+=("$!")
  if ! wait "$!"; then
    fail "the walk-through failed: $(tail -n 15 "$T/walk.err")" \
      "$(tail -n 5 "$U"/*.log 2>/dev/null)" || return 1
  fi
  grep -q '^token: tme_' "$T/walk.err" || fail "tmctl enroll printed no token" || return 1
  expect_has "tm-agent enroll" "$(cat "$T/walk.out")" "enrolled: ua-water-odesa-"
}

test_walkthrough_agent_on_dashboard() {
  local out="" a
  [ -f "$U/tm-agent.pid" ] || fail "needs test_walkthrough_runs" || return 1
  for _ in $(seq 90); do
    out=$(in_walk bash -e "$T/last.sh" 2>&1) || true
    case "$out" in *'"odesa-gw1"'*) break ;; esac
    sleep 1
  done
  a=$(printf '%s' "$out" | json '[x for x in j["agents"] if x["agent"] == "odesa-gw1"][0]') ||
    fail "odesa-gw1 not in /api/agents: $out" || return 1
  expect_has "the agent" "$a" "'operator': 'ua-water-odesa'" &&
    expect_has "the agent" "$a" "'sector': 'drinking-water'" &&
    expect_has "the agent" "$a" "'region': 'UA-51'" &&
    expect_has "the agent" "$a" "'silent': False"
}

test_walkthrough_report_in_feed_and_kafka() {
  local tok feed bootstrap msgs
  [ -f "$U/tm-dashboard.pid" ] || fail "needs test_walkthrough_runs" || return 1
  tok=$(cut -d: -f2 "$R/etc/tm-dashboard/tokens")
  for _ in $(seq 30); do
    feed=$(curl -s --max-time 5 -H "Authorization: Bearer $tok" "http://127.0.0.1:${port[8080]}/api/feed")
    case "$feed" in *"newly enrolled agent"*) break ;; esac
    sleep 1
  done
  expect_has "/api/feed" "$feed" '"operator":"ua-water-odesa"' &&
    expect_has "/api/feed" "$feed" "test report from a newly enrolled agent" || return 1
  bootstrap=$(cat "$R/run/tm-devkafka.bootstrap")
  msgs=$(kcat -C -b "$bootstrap" -t tm.events.v1 -e -q 2>/dev/null)
  expect_has "tm.events.v1" "$msgs" '"operator":"ua-water-odesa","sector":"drinking-water","region":"UA-51","agent":"odesa-gw1"' || return 1
  # the page itself is served
  expect_eq "GET /" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[8080]}/")" 200
}

test_walkthrough_daemons_run_as_their_users() {
  local d pid uid
  for d in tm-collector tm-aggregator tm-dashboard tm-agent; do
    pid=$(cat "$U/$d.pid" 2>/dev/null) || fail "$d was not started" || return 1
    uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    expect_eq "$d's uid" "$uid" "$(uid_in passwd "$d")" || return 1
    [ "$uid" != 0 ] || fail "$d runs as root" || return 1
  done
}

test_walkthrough_files() {
  local key=$R/etc/tm-agent/agent.key map=$R/var/lib/tm-collector/identities.ini t
  [ -f "$key" ] || fail "no agent.key" || return 1
  expect_eq "agent.key mode and owner" "$(stat -c '%a %u %g' "$key")" \
    "640 0 $(uid_in group tm-agent)" || return 1
  expect_has "identity map" "$(cat "$map")" "[operator.ua-water-odesa]" || return 1
  expect_has "identity map" "$(cat "$map")" "certs = ua-water-odesa-" || return 1
  expect_has "token file" "$(cat "$R/var/lib/tm-collector/enroll-tokens")" " used:" || return 1
  # The token appears in no log of the daemons.
  t=$(sed -n 's/^token: //p' "$T/walk.err")
  [ -n "$t" ] || fail "no token in tmctl's output" || return 1
  ! grep -rqF "$t" "$U" || fail "the token is in a daemon's log: $(grep -rlF "$t" "$U")"
}

# The README's closing step: revoke; the collector reloads through reload_command
# (systemctl reload), and refuses the agent's next connection.
test_walkthrough_revoke() {
  local name out
  [ -f "$U/tm-collector.pid" ] || fail "needs test_walkthrough_runs" || return 1
  name=$(sed -n 's/^name: //p' "$T/walk.err")
  out=$(in_walk tmctl -c "$R/etc/tm-collector/tmctl.ini" revoke "$name" 2>&1) ||
    fail "tmctl revoke: $out" || return 1
  expect_has "tmctl revoke" "$out" "revoked cert: $name" || return 1
  for _ in $(seq 50); do grep -q 'identity map reloaded' "$U/tm-collector.log" && break; sleep 0.1; done
  grep -q 'identity map reloaded' "$U/tm-collector.log" || fail "the collector did not reload" || return 1
  in_walk systemctl restart tm-agent || fail "tm-agent did not start again" || return 1
  for _ in $(seq 50); do grep -q "certificate '$name' is revoked" "$U/tm-collector.log" && break; sleep 0.1; done
  grep -q "certificate '$name' is revoked" "$U/tm-collector.log" ||
    fail "the revoked agent was not refused: $(tail -n 5 "$U/tm-collector.log")"
}

[ "$(id -u)" = 0 ] || echo "test_walkthrough: needs root (dpkg --root, setpriv)" >&2
check test_walkthrough_section_found
check test_walkthrough_runs
check test_walkthrough_agent_on_dashboard
check test_walkthrough_report_in_feed_and_kafka
check test_walkthrough_daemons_run_as_their_users
check test_walkthrough_files
check test_walkthrough_revoke
finish
