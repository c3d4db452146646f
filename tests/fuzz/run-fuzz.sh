#!/usr/bin/env bash
# Runs each named libFuzzer target for SECONDS, starting from a scratch copy of its seed
# corpus (tests/fuzz/corpus/NAME) so generated inputs never land in the source tree.
# A crash leaves its input in BUILD_DIR/fuzz-artifacts/ and fails the run.
set -eu
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$build/fuzz-artifacts"
for name in "$@"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/tm-fuzz-$name.XXXXXX")
  cp -r "$here/tests/fuzz/corpus/$name/." "$work/"
  echo "fuzz: $name for ${seconds}s"
  if ! "$build/fuzz_$name" -max_total_time="$seconds" -max_len=70000 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=0 \
      -artifact_prefix="$build/fuzz-artifacts/$name-" "$work" >"$build/fuzz-$name.log" 2>&1; then
    tail -n 40 "$build/fuzz-$name.log"
    rm -rf "$work"
    echo "fuzz: $name FAILED (input saved under $build/fuzz-artifacts/)"
    exit 1
  fi
  grep -E '^#[0-9]+.*DONE|Done [0-9]+ runs' "$build/fuzz-$name.log" | tail -n 1 || true
  rm -rf "$work"
done
