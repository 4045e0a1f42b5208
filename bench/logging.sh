#!/usr/bin/env bash
# Logging benchmark: predict throughput and p99 with the access log off, at its default
# (`errors`) and `all`, back to back in one run, each on a fresh server with default settings
# otherwise (SQLite store, inference records on, log filter info, text format). The server's
# stderr goes to a file, as under a supervisor or container runtime that keeps logs on disk.
# Load: wrk -t2 -c64 for DURATION per setting, after a short warm-up.
# Writes bench/results/logging-<UTC date>.json and prints the ratios to `off`.
# Usage: bench/logging.sh [DURATION]   (default 15s; BENCH_WARMUP, default 3s)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
warmup=${BENCH_WARMUP:-3s}
. bench/lib.sh

command -v wrk >/dev/null 2>&1 || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
bench_build
bench_workdir

wrk_predict() {
  wrk -t2 -c64 -d"$1" --timeout 5s -s bench/predict.lua "$bench_url/api/v1/models/21/predict"
}

for access in off errors all; do
  echo "== log.access = $access" >&2
  bench_use_store "$access"
  export MODELGATE_LOG_ACCESS=$access
  BENCH_KEY=$(bench_create_key)
  export BENCH_KEY
  log="$bench_work/$access.log"
  bench_start_server "$bench_work/$access.out" "$log"
  bench_warm "$BENCH_KEY"
  wrk_predict "$warmup" >/dev/null
  before=$(wc -c <"$log") # only the timed run's lines count
  wrk_predict "$duration" | tee "$bench_work/$access.wrk" >&2
  curl -fs "$bench_url/metrics" | awk '$1 == "modelgate_log_lines_dropped_total" { print $2 }' \
    >"$bench_work/$access.dropped"
  bench_stop_server
  echo $(($(wc -c <"$log") - before)) >"$bench_work/$access.log_bytes"
done

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/logging-$stamp.json"
python3 - "$bench_work" "$out" "$duration" <<'PY'
import json, os, platform, sys
sys.path.insert(0, "bench")
from wrk_result import summary
work, out, duration = sys.argv[1:]
def read(access, ext):
    return open(os.path.join(work, f"{access}.{ext}")).read().strip()
runs = {}
for access in ("off", "errors", "all"):
    run = summary(read(access, "wrk"))
    log_bytes = int(read(access, "log_bytes"))
    runs[access] = {
        **run,
        "log_bytes": log_bytes,
        "log_bytes_per_request": round(log_bytes / max(run["requests"], 1), 1),
        "log_lines_dropped": int(float(read(access, "dropped") or 0)),
    }
off = runs["off"]["requests_per_s"]
result = {
    "date_utc": out.split("logging-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
    "command": f"bench/logging.sh {duration}",
    "load": f"wrk -t2 -c64 -d{duration} POST /api/v1/models/21/predict (one warm key)",
    "server": "release build, SQLite, events on, log filter info, text logs, stderr to a file",
    "runs": runs,
    "ratio_errors_to_off": round(runs["errors"]["requests_per_s"] / off, 3),
    "ratio_all_to_off": round(runs["all"]["requests_per_s"] / off, 3),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
for access, goal in (("errors", 0.9), ("all", 0.8)):
    ratio = result[f"ratio_{access}_to_off"]
    verdict = "met" if ratio >= goal else "NOT met"
    print(f"{access} / off: {ratio:.3f} (goal >= {goal}: {verdict}), "
          f"p99 {runs[access]['p99_ms']} ms vs {runs['off']['p99_ms']} ms")
PY
echo "wrote $out"
