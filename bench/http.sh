#!/usr/bin/env bash
# HTTP benchmark: POST /api/v1/models/21/predict (warm key) and GET /health/live, same run,
# same server, 64 connections for DURATION each. Writes bench/results/http-<UTC date>.json.
# Usage: bench/http.sh [DURATION]   (default 20s)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}
port=${BENCH_PORT:-18080}
connections=64

command -v oha >/dev/null 2>&1 || cargo install oha --locked
cargo build --release --locked

work=$(mktemp -d)
export MODELGATE_DATABASE_URL="sqlite://$work/bench.db"
export MODELGATE_LISTEN="127.0.0.1:$port"
export MODELGATE_LOG_FILTER=warn
bin=./target/release/modelgate

key=$($bin keys create --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
$bin serve >"$work/server.out" 2>"$work/server.err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null && break
  sleep 0.1
done

body='{"inputs": {"company_size": 250, "engagement_score": 85, "website_visits": 30, "email_opens": 20, "content_downloads": 6, "demo_requested": true, "budget_confirmed": true, "industry": "Technology", "decision_timeline": "Q1 2025", "title": "VP of Sales"}}'
url="http://127.0.0.1:$port"

# Warm the key cache and the connection pool before measuring.
curl -fs "$url/api/v1/models/21/predict" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d "$body" >/dev/null

oha --no-tui --output-format json -z "$duration" -c "$connections" "$url/health/live" >"$work/live.json"
oha --no-tui --output-format json -z "$duration" -c "$connections" -m POST \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" \
  "$url/api/v1/models/21/predict" >"$work/predict.json"

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/http-$stamp.json"
python3 - "$work/live.json" "$work/predict.json" "$out" "$duration" "$connections" <<'PY'
import json, platform, os, sys
live_path, predict_path, out, duration, connections = sys.argv[1:]
def summary(path):
    d = json.load(open(path))
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    return {
        "requests_per_s": round(s["requestsPerSec"], 1),
        "p50_ms": round(p["p50"] * 1000, 3),
        "p99_ms": round(p["p99"] * 1000, 3),
        "success_rate": s["successRate"],
        "status_codes": codes,
    }
live, predict = summary(live_path), summary(predict_path)
result = {
    "date_utc": out.split("http-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
    "command": f"bench/http.sh {duration}",
    "connections": int(connections),
    "duration": duration,
    "live": live,
    "predict": predict,
    "ratio_predict_to_live": round(predict["requests_per_s"] / live["requests_per_s"], 3),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
echo "wrote $out"
