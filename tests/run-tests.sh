#!/usr/bin/env bash
# Runs every test program of the given build directories: unit tests, integration tests
# (real processes on loopback) and the fuzz corpus replays; then, once, against the
# first build directory only (the plain build, not the sanitizer one), the browser test
# tests/e2e/dashboard.test.mjs (node, Debian chromium, 'npm ci --prefix tests/e2e'; when
# one of those is missing it fails and says which) and the deployment tests
# tests/deploy/test_*.sh (packages, systemd units, production configs). Sums cmocka's
# per-program results (the browser and deployment tests print the same lines); a
# program that dies before printing its summary counts as one failure. Closes with
# "N passed, N failed" and exits non-zero on any failure.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..." >&2; exit 2; }

# Sanitizers: any report fails the run.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp:print_suppressions=0"

passed=0
failed=0
failures=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/tm-tests.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

# run_one BUILD NAME COMMAND [ARG...]: runs one test program and adds up its results.
run_one() {
  local build=$1 name=$2 log rc p f t0 t
  log="$logdir/$(echo "$build/$name" | tr '/' '_').log"
  printf '%-60s ' "$build/$name"
  t0=$SECONDS
  TM_BUILD="$build" TM_ROOT="$here" timeout 600 "${@:3}" >"$log" 2>&1
  rc=$?
  t=$((SECONDS - t0))
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
    echo "ok ($p) ${t}s"
  else
    echo "FAILED (exit $rc, $f failed) ${t}s"
    failures+=("$build/$name")
    sed 's/^/    | /' "$log" | tail -n 60
  fi
}

for build in "$@"; do
  for bin in "$build"/tests/unit/test_* "$build"/tests/integration/test_*; do
    [ -x "$bin" ] || continue
    run_one "$build" "${bin#"$build"/}" "$bin"
  done
  for bin in "$build"/tests/fuzz/replay_*; do
    [ -x "$bin" ] || continue
    target=${bin##*/replay_}
    run_one "$build" "${bin#"$build"/}" "$bin" "tests/fuzz/corpus/$target"
  done
done

# The browser test, once. Missing node is reported here; missing chromium or
# node_modules by the test itself, as a failed check that names the fix.
if command -v node >/dev/null 2>&1; then
  run_one "$1" e2e/dashboard.test.mjs node tests/e2e/dashboard.test.mjs
else
  printf '%-60s FAILED (node not found: the browser test needs Node.js and npm)\n' "$1/e2e/dashboard.test.mjs"
  failed=$((failed + 1))
  failures+=("$1/e2e/dashboard.test.mjs")
fi

# The deployment tests (tests/deploy/test_*.sh: packages, units, production configs),
# once, against the plain build: they print cmocka's summary lines too.
for t in tests/deploy/test_*.sh; do
  [ -f "$t" ] || continue
  run_one "$1" "${t#tests/}" bash "$t"
done

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed programs: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
