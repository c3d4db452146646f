# lib.sh - sourced by the benchmarks (tests/bench/bench_*.sh) and tools/agent-layout.sh.

# bench_setup NAME: tmp, a fresh directory under TMPDIR; pids, the processes started (add
# each one's PID); on exit every one of them is ended by its PID and tmp is removed.
bench_setup() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/tm-$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# tls_pki DIR NAME: a throwaway PKI in DIR, made with the openssl command line: ca.crt
# and ca.key ("NAME CA"), server.crt and server.key for a collector on 127.0.0.1 (IP SAN),
# agent.crt and agent.key for the client certificate "agent.NAME". All EC P-256, valid
# for 2 days.
tls_pki() {
  mkdir -p "$1"
  (
    cd "$1"
    ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@" 2>/dev/null; }
    ec -x509 -days 2 -subj "/CN=$2 CA" -keyout ca.key -out ca.crt
    ec -subj "/CN=collector.$2" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt 2>/dev/null
    ec -subj "/CN=agent.$2" -keyout agent.key -out agent.csr
    openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -out agent.crt 2>/dev/null
  )
}
