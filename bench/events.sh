#!/usr/bin/env bash
# Events benchmark, one run, one machine:
#   1. predict throughput with events off, then on (database + Redis stream sinks), same
#      config otherwise (64 connections, DURATION each);
#   2. outbox drain rate: under the same load (5 s + OUTAGE + 30 s), Redis is frozen (CLIENT PAUSE ALL, so the
#      stream sink stalls as if its packets were dropped) for OUTAGE seconds; records go to the
#      outbox; after Redis is back, how fast the outbox drains while load continues.
# Writes bench/results/events-<UTC date>.json.
# Usage: bench/events.sh [DURATION] [OUTAGE_SECONDS]   (defaults 15s, 15)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
outage=${2:-15}
port=${BENCH_PORT:-18081}
redis=${BENCH_REDIS:-127.0.0.1:6379}
connections=64

command -v oha >/dev/null 2>&1 || cargo install oha --locked
cargo build --release --locked

work=$(mktemp -d)
bin=./target/release/modelgate
stream="modelgate:bench:$(date +%s)"
export MODELGATE_DATABASE_URL="sqlite://$work/bench.db"
export MODELGATE_LISTEN="127.0.0.1:$port"
export MODELGATE_LOG_FILTER=warn
export MODELGATE_REDIS_URL="redis://$redis/0"
export MODELGATE_EVENTS_STREAM="$stream"
export MODELGATE_EVENTS_OUTBOX_DIR="$work/outbox"
url="http://127.0.0.1:$port"
body='{"inputs": {"company_size": 250, "engagement_score": 85, "website_visits": 30, "email_opens": 20, "content_downloads": 6, "demo_requested": true, "budget_confirmed": true, "industry": "Technology", "decision_timeline": "Q1 2025", "title": "VP of Sales"}}'

key=$($bin keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
server=
stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
  server=
}
trap 'stop_server; redis-cli -u "redis://$redis" DEL "$stream" >/dev/null 2>&1; rm -rf "$work"' EXIT

start_server() { # $1: events enabled
  MODELGATE_EVENTS_ENABLED=$1 $bin serve >"$work/server.out" 2>>"$work/server.err" &
  server=$!
  for _ in $(seq 1 50); do
    curl -fs "$url/health/ready" >/dev/null && break
    sleep 0.1
  done
  curl -fs "$url/api/v1/models/21/predict" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d "$body" >/dev/null
}

load() { # $1: duration, $2: output file
  oha --no-tui --output-format json -z "$1" -c "$connections" -m POST \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" \
    "$url/api/v1/models/21/predict" >"$2"
}

metric() { # value of one series in /metrics (0 when absent)
  curl -fs "$url/metrics" | awk -v s="$1" '$1 == s { print $2; found=1 } END { if (!found) print 0 }'
}

start_server false
load "$duration" "$work/off.json"
stop_server

start_server true
load "$duration" "$work/on.json"

# Outage under load: 5 s healthy, OUTAGE s frozen Redis, then load until the outbox is empty.
total=$((5 + outage + 30))
load "${total}s" "$work/outage.json" &
loader=$!
sleep 5
redis-cli -u "redis://$redis" CLIENT PAUSE $((outage * 1000)) ALL >/dev/null
sleep "$outage"
back=$(date +%s.%N)
replayed_before=$(metric 'modelgate_events_replayed_total{sink="stream"}')
peak=$(metric modelgate_events_outbox_bytes)
drained=
while :; do
  bytes=$(metric modelgate_events_outbox_bytes)
  [ "$bytes" = 0 ] && { drained=$(date +%s.%N); break; }
  awk -v b="$bytes" -v p="$peak" 'BEGIN { exit !(b > p) }' && peak=$bytes
  awk -v now="$(date +%s.%N)" -v back="$back" 'BEGIN { exit !(now - back > 60) }' && break
  sleep 0.2
done
replayed_after=$(metric 'modelgate_events_replayed_total{sink="stream"}')
outboxed=$(metric 'modelgate_events_outboxed_total{sink="stream"}')
dropped=$(metric 'modelgate_events_dropped_total{reason="outbox_full"}')
wait "$loader"
stop_server

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/events-$stamp.json"
python3 - "$work" "$out" "$duration" "$outage" "$back" "${drained:-}" "$replayed_before" "$replayed_after" "$outboxed" "$peak" "$dropped" <<'PY'
import json, os, platform, sys
work, out, duration, outage, back, drained, r0, r1, outboxed, peak, dropped = sys.argv[1:]
def summary(name):
    d = json.load(open(os.path.join(work, name)))
    s, p = d["summary"], d["latencyPercentiles"]
    return {"requests_per_s": round(s["requestsPerSec"], 1), "p50_ms": round(p["p50"] * 1000, 3),
            "p99_ms": round(p["p99"] * 1000, 3), "success_rate": s["successRate"]}
off, on = summary("off.json"), summary("on.json")
replayed = float(r1) - float(r0)
drain_s = float(drained) - float(back) if drained else None
result = {
    "date_utc": out.split("events-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
    "command": f"bench/events.sh {duration} {outage}",
    "connections": 64,
    "predict_events_off": off,
    "predict_events_on": on,
    "ratio_on_to_off": round(on["requests_per_s"] / off["requests_per_s"], 3),
    "outage": {
        "redis_frozen_s": int(outage),
        "records_outboxed_total": float(outboxed),
        "outbox_peak_bytes": float(peak),
        "replayed_after_recovery": replayed,
        "drain_seconds": round(drain_s, 2) if drain_s is not None else "not drained within 60 s",
        "drain_records_per_s": round(replayed / drain_s, 1) if drain_s else None,
        "dropped": float(dropped),
        "load_during_outage": summary("outage.json"),
    },
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
echo "wrote $out"
