# lib.sh - sourced by the shell tests in tests/deploy/. Each check is a shell function
# run by `check NAME`; it fails by returning non-zero after saying why (`fail MESSAGE`).
# Results are printed in cmocka's words ("[       OK ] name", "[  PASSED  ] N test(s).",
# "[  FAILED  ] N test(s), listed below:"), so tests/run-tests.sh adds them up with the C
# tests. Processes a test starts go through `spawn` and are stopped by PID at exit (SIGTERM,
# then SIGKILL); the scratch directory $T is removed then too.
#
# Environment (set by tests/run-tests.sh): TM_BUILD, the build directory under test;
# TM_ROOT, the source tree.

set -u
TM_ROOT=$(cd "${TM_ROOT:-.}" && pwd)
TM_BUILD=$(cd "${TM_BUILD:-build}" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/tm-deploy-test.XXXXXX")
_passed=0
_failed=()
_pids=()

_cleanup() {
  local p
  for p in "${_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

# fail MESSAGE...: says why the current check fails; returns 1 for `|| return`.
fail() {
  echo "    $*" >&2
  return 1
}

# need TOOL...: fails naming the package that brings a missing tool.
need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || fail "'$t' not found: run deploy/install-deps.sh" || return 1
  done
}

# check NAME: runs the function NAME as one test.
check() {
  echo "[ RUN      ] $1"
  if "$1"; then
    echo "[       OK ] $1"
    _passed=$((_passed + 1))
  else
    echo "[  FAILED  ] $1"
    _failed+=("$1")
  fi
}

# finish: the summary; exits 1 when a check failed.
finish() {
  local f
  echo "[==========] $((_passed + ${#_failed[@]})) test(s) run."
  echo "[  PASSED  ] $_passed test(s)."
  if [ ${#_failed[@]} -gt 0 ]; then
    echo "[  FAILED  ] ${#_failed[@]} test(s), listed below:"
    for f in "${_failed[@]}"; do echo "[  FAILED  ] $f"; done
    exit 1
  fi
  exit 0
}

# expect_eq WHAT GOT WANT
expect_eq() {
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# expect_has WHAT TEXT NEEDLE: TEXT contains NEEDLE (a fixed string).
expect_has() {
  case "$2" in
  *"$3"*) return 0 ;;
  *) fail "$1: '$3' not found in: $(printf '%s' "$2" | head -c 600)" ;;
  esac
}

# expect_lacks WHAT TEXT NEEDLE
expect_lacks() {
  case "$2" in
  *"$3"*) fail "$1: '$3' should not be in: $(printf '%s' "$2" | head -c 600)" ;;
  *) return 0 ;;
  esac
}

# spawn OUT ERR COMMAND...: starts COMMAND in the background with stdout in OUT and
# stderr in ERR, remembered for the cleanup; its PID is in $SPAWNED.
spawn() {
  local out=$1 err=$2
  shift 2
  "$@" >"$out" 2>"$err" &
  SPAWNED=$!
  _pids+=("$SPAWNED")
}

# stop PID: SIGTERM, up to 10 s, then SIGKILL; returns the exit status.
stop() {
  local i
  kill -TERM "$1" 2>/dev/null
  for i in $(seq 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# wait_line FILE PREFIX [SECONDS]: prints the rest of the first line of FILE that starts
# with PREFIX, waiting up to SECONDS (10) for it; fails otherwise.
wait_line() {
  local v i
  for i in $(seq $((${3:-10} * 10))); do
    v=$(sed -n "s/^$2//p" "$1" 2>/dev/null | head -n 1)
    [ -n "$v" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  fail "no '$2' line in $1 within ${3:-10} s"
}

# fresh_root DIR DEB...: an empty system tree dpkg --root can install the packages DEB
# into: an /etc with root's passwd, group, shadow and gshadow, and a dpkg database holding
# only the host's status entries of the packages' dependencies, each with an empty file
# list (so dpkg sees them installed, or refuses a Depends that names a wrong package).
fresh_root() {
  local r=$1 d p
  shift
  mkdir -p "$r/etc" "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates"
  : >"$r/var/lib/dpkg/status"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\nadm:x:4:\n' >"$r/etc/group"
  printf 'root:*:19000:0:99999:7:::\n' >"$r/etc/shadow"
  printf 'root:*::\nadm:*::\n' >"$r/etc/gshadow"
  chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
  for d in "$@"; do
    dpkg-deb -f "$d" Depends | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/[[:space:]]//g'
  done | sort -u | while read -r p; do
    [ -n "$p" ] || continue
    dpkg-query -s "$p" >>"$r/var/lib/dpkg/status" 2>/dev/null || continue
    echo >>"$r/var/lib/dpkg/status"
    : >"$r/var/lib/dpkg/info/$(dpkg-query -W -f '${binary:Package}' "$p").list"
  done
}

# dpkg_root DIR ARGS...: dpkg on the tree DIR, maintainer scripts without chroot (they
# see DPKG_ROOT=DIR and create users with useradd --prefix there).
dpkg_root() {
  local r=$1
  shift
  dpkg --root="$r" --force-script-chrootless --log=/dev/null "$@" >"$T/dpkg.log" 2>&1 ||
    fail "dpkg $*: $(tail -n 20 "$T/dpkg.log")"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
