#!/usr/bin/env bash
# Durable-ack benchmark (issue 12): predict throughput and p99 of this build, where a response
# carries its `inference_log_id` only once the record is in the journal (one group-committed
# write per round of requests), against a build from before that guarantee, side by side in one
# run. Rounds alternate (before, after, before, after, ...) so that the machine's own drift hits
# both alike; each round is a fresh server on its own SQLite store with default settings
# (inference records on), a warm key, and `wrk -t2 -c64` for DURATION.
# Usage: BENCH_BIN_BEFORE=/path/to/old/modelgate bench/durable.sh [DURATION] [ROUNDS]
#        (defaults 8s, 10 rounds each; BENCH_WARMUP, default 3s). Single rounds on a 2-core VM
#        vary by ±15 %: five rounds gave medians from 0.85 to 0.98 for the same two builds.
# Writes bench/results/durable-<UTC date>.json and prints the median ratio after / before.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-8s}
rounds=${2:-10}
warmup=${BENCH_WARMUP:-3s}
. bench/lib.sh

before_bin=${BENCH_BIN_BEFORE:?set BENCH_BIN_BEFORE to a modelgate binary built before the journal}
command -v wrk >/dev/null 2>&1 || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
bench_build
after_bin=$bench_bin
bench_workdir

for round in $(seq 1 "$rounds"); do
  for side in before after; do
    name="$side-$round"
    echo "== $name" >&2
    if [ "$side" = before ]; then bench_bin=$before_bin; else bench_bin=$after_bin; fi
    bench_use_store "$name"
    BENCH_KEY=$(bench_create_key)
    export BENCH_KEY
    bench_start_server "$bench_work/$name.out" "$bench_work/$name.err"
    bench_warm "$BENCH_KEY"
    wrk -t2 -c64 -d"$warmup" --timeout 5s -s bench/predict.lua \
      "$bench_url/api/v1/models/21/predict" >/dev/null
    wrk -t2 -c64 -d"$duration" --timeout 5s -s bench/predict.lua \
      "$bench_url/api/v1/models/21/predict" | tee "$bench_work/$name.wrk" >&2
    bench_stop_server
  done
done

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/durable-$stamp.json"
python3 - "$bench_work" "$out" "$duration" "$rounds" <<'PY'
import json, os, platform, statistics, sys
sys.path.insert(0, "bench")
from wrk_result import summary
work, out, duration, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(name):
    return summary(open(os.path.join(work, f"{name}.wrk")).read())
runs = {f"{side}-{i}": run(f"{side}-{i}") for i in range(1, rounds + 1) for side in ("before", "after")}
def median(side, field):
    return statistics.median(runs[f"{side}-{i}"][field] for i in range(1, rounds + 1))
ratios = [runs[f"after-{i}"]["requests_per_s"] / runs[f"before-{i}"]["requests_per_s"]
          for i in range(1, rounds + 1)]
result = {
    "date_utc": out.split("durable-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
    "command": f"bench/durable.sh {duration} {rounds}",
    "load": f"wrk -t2 -c64 -d{duration} POST /api/v1/models/21/predict (one warm key), rounds alternating",
    "server": "release builds, SQLite, inference records on, default settings",
    "runs": runs,
    "median_requests_per_s": {"before": median("before", "requests_per_s"), "after": median("after", "requests_per_s")},
    "median_p99_ms": {"before": median("before", "p99_ms"), "after": median("after", "p99_ms")},
    "ratio_per_round": [round(r, 3) for r in ratios],
    "median_ratio": round(statistics.median(ratios), 3),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
verdict = "met" if result["median_ratio"] >= 0.9 else "NOT met"
print(f"after / before: {result['median_ratio']} (goal >= 0.9: {verdict}); p99 "
      f"{result['median_p99_ms']['after']} ms vs {result['median_p99_ms']['before']} ms")
PY
echo "wrote $out"
