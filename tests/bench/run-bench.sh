#!/usr/bin/env bash
# Runs every benchmark of the given build directory. Each benchmark measures a reference
# beside itself in the same run (the bare library, kcat, rsyslog, redis-benchmark) and
# prints the ratio, so a busy machine shifts both numbers and not the conclusion.
set -eu
build=${1:-build}
cd "$(dirname "$0")/../.."
export TM_BUILD="$build" TM_ROOT="$PWD"
status=0
for b in "$build"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== ${b##*/}"
  "$b" || status=1
done
for s in tests/bench/bench_*.sh; do
  [ -x "$s" ] || continue
  echo "== ${s##*/}"
  "$s" "$build" || status=1
done
exit $status
