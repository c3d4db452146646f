#!/usr/bin/env bash
# Installs the Debian packages tm-telemetry needs to build, test and run.
# Idempotent: does nothing when every package is already installed; otherwise runs
# 'apt-get update' once and installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # build
  build-essential pkg-config clang llvm lld
  libevent-dev librdkafka-dev zlib1g-dev libhiredis-dev libssl-dev
  libjansson-dev libyajl-dev libinih-dev liblz4-dev libzstd-dev libmbedtls-dev
  # test
  libcmocka-dev redis-server redis-tools kcat curl bsdutils gzip util-linux openssl python3
  # browser test (tests/e2e): Debian's chromium, driven by playwright-core from npm
  # (Node.js and npm come with the machine; .ci/run runs 'npm ci --prefix tests/e2e')
  chromium
  # make deb (dpkg-shlibdeps, dpkg-gencontrol, dpkg-deb) and the package and unit tests
  # (tests/deploy: useradd --prefix, /bin/kill, systemd-analyze verify, the alert rules' YAML)
  dpkg-dev passwd procps systemd python3-yaml
  # benchmarks
  rsyslog rsyslog-kafka bc linux-perf wrk
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in
    ii*) ;;
    *) missing+=("$p") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

# The rsyslog package starts a system daemon on install; tests start their own instances.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now rsyslog redis-server >/dev/null 2>&1 || true
fi
