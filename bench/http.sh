#!/usr/bin/env bash
# HTTP benchmark: POST /api/v1/models/21/predict (warm key) and GET /health/live, same run,
# same server, 64 connections for DURATION each. Writes bench/results/http-<UTC date>.json.
# Usage: bench/http.sh [DURATION]   (default 20s)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}
connections=64
. bench/lib.sh

command -v oha >/dev/null 2>&1 || cargo install oha --locked
bench_build

bench_workdir
work=$bench_work
bench_use_store bench
export MODELGATE_LOG_FILTER=warn
key=$(bench_create_key)
bench_start_server "$work/server.out" "$work/server.err"

# Warm the key cache and the connection pool before measuring.
bench_warm "$key"

oha --no-tui --output-format json -z "$duration" -c "$connections" "$bench_url/health/live" >"$work/live.json"
oha --no-tui --output-format json -z "$duration" -c "$connections" -m POST \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$BENCH_BODY" \
  "$bench_url/api/v1/models/21/predict" >"$work/predict.json"

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
