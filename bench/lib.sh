# shellcheck shell=bash
# Shared pieces of the HTTP benchmarks (sourced by bench/http.sh, bench/logging.sh,
# bench/protocols.sh, bench/sizing.sh and bench/cluster.sh): the release build, a server on its
# own fresh SQLite store, a key, the prediction they send, and the memory and CPU a process used.
# Callers `set -euo pipefail` and `cd` to the repository root first.

bench_port=${BENCH_PORT:-18080}
bench_url="http://127.0.0.1:$bench_port"
bench_grpc_port=${BENCH_GRPC_PORT:-18081}
bench_bin="${CARGO_TARGET_DIR:-target}/release/modelgate"
# One Model 21 row with every input set: the single-row prediction the benchmarks measure.
export BENCH_BODY='{"inputs": {"company_size": 250, "engagement_score": 85, "website_visits": 30, "email_opens": 20, "content_downloads": 6, "demo_requested": true, "budget_confirmed": true, "industry": "Technology", "decision_timeline": "Q1 2025", "title": "VP of Sales"}}'

bench_build() {
  cargo build --release --locked
}

# A scratch folder for the run, removed (with any server still running) on exit.
bench_workdir() {
  bench_work=$(mktemp -d)
  bench_server=
  trap 'bench_stop_server; rm -rf "$bench_work"' EXIT
}

# bench_use_store NAME: later commands and servers use a fresh SQLite store and outbox NAME.
bench_use_store() {
  export MODELGATE_DATABASE_URL="sqlite://$bench_work/$1.db"
  export MODELGATE_EVENTS_OUTBOX_DIR="$bench_work/$1-outbox"
  export MODELGATE_LISTEN="127.0.0.1:$bench_port"
  export MODELGATE_GRPC_LISTEN="127.0.0.1:$bench_grpc_port"
}

# Prints a new key with the predict scope; arguments go to `keys create` (e.g. --rate-limit).
bench_create_key() {
  "$bench_bin" keys create --name bench --json "$@" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# bench_start_server STDOUT STDERR: serves in the background until ready.
bench_start_server() {
  "$bench_bin" serve >"$1" 2>"$2" &
  bench_server=$!
  for _ in $(seq 1 100); do
    kill -0 "$bench_server" 2>/dev/null || break
    # The banner says it bound the port: another process there would answer too.
    grep -q "serving on" "$1" && curl -fs "$bench_url/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "server did not become ready on $bench_url; its stderr:" >&2
  cat "$2" >&2
  return 1
}

# SIGTERM, then wait: the server flushes its logs before it exits.
bench_stop_server() {
  if [ -n "${bench_server:-}" ]; then
    kill "$bench_server" 2>/dev/null || true
    wait "$bench_server" 2>/dev/null || true
    bench_server=
  fi
}

# bench_warm KEY: one prediction, so the key cache and the connection pool are warm.
bench_warm() {
  curl -fsS "$bench_url/api/v1/models/21/predict" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -d "$BENCH_BODY" >/dev/null
}

# peak_rss_kib PID: VmHWM of PID and its descendants, added up.
peak_rss_kib() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" 2>/dev/null || true); do
    total=$((total + $(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# cpu_ticks PID...: user + system clock ticks of the processes (and all their threads).
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
