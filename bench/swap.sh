#!/usr/bin/env bash
# Hot-swap benchmark (issue 13): predict p99 while a registry model's versions are swapped under
# load, against the steady p99 of the same server in the same run; and the time from an alias
# move in MLflow to the first (and so every) request on the new version.
#
# A real MLflow server (target/mlflow-venv, built by ./scripts/prepare) holds Model 21 as
# version 1 and the gradient-boosting fixture as version 2; modelgate serves model 21 from the
# registry (poll_interval 1s). Rounds alternate: `steady` (wrk -t2 -c64 for DURATION, no
# change) and `swap` (the same load while bench/swap.py moves the alias every 2 s, each move
# timed until served). The release build is used.
# Usage: bench/swap.sh [DURATION] [ROUNDS]   (defaults 10s, 3 rounds of each)
# Writes bench/results/swap-<UTC date>.json and prints the ratio of median p99s.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
rounds=${2:-3}
. bench/lib.sh

venv=target/mlflow-venv/bin
[ -x $venv/mlflow ] || { echo "needs target/mlflow-venv: run ./scripts/prepare" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
bench_build
bench_workdir
mlflow_port=${BENCH_MLFLOW_PORT:-15000}
tracking="http://127.0.0.1:$mlflow_port"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PYTHONWARNINGS=ignore \
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
setsid $venv/mlflow server --backend-store-uri "sqlite:///$bench_work/mlflow.db" \
  --serve-artifacts --artifacts-destination "$bench_work/artifacts" \
  --host 127.0.0.1 --port "$mlflow_port" --workers 1 >"$bench_work/mlflow.log" 2>&1 &
mlflow_pid=$!
trap 'kill -- -$mlflow_pid 2>/dev/null || true; bench_stop_server; rm -rf "$bench_work"' EXIT
for _ in $(seq 1 600); do
  curl -fs "$tracking/health" >/dev/null && break
  sleep 0.1
done
register() { $venv/python tools/model21/register.py --tracking-uri "$tracking" --name lead-scoring "$@" 2>/dev/null | tail -n 1; }
v1=$(register --onnx models/21/model.onnx --alias champion)
v2=$(register --onnx tests/fixtures/model21/boosting.onnx)
echo "registered versions $v1 and $v2" >&2

models="$bench_work/models"
mkdir -p "$models/21"
sed '/^file = /d' models/21/model.toml >"$models/21/model.toml"
cat >>"$models/21/model.toml" <<EOF

[source]
kind = "mlflow"
tracking_uri = "$tracking"
name = "lead-scoring"
alias = "champion"
poll_interval = "1s"
EOF
export MODELGATE_MODELS_DIR="$models" MODELGATE_MODELS_CACHE_DIR="$bench_work/cache"
bench_use_store bench
BENCH_KEY=$(bench_create_key)
export BENCH_KEY
bench_start_server "$bench_work/server.out" "$bench_work/server.err"
bench_warm "$BENCH_KEY"
wrk -t2 -c64 -d3s --timeout 5s -s bench/predict.lua "$bench_url/api/v1/models/21/predict" >/dev/null

seconds=${duration%s}
for round in $(seq 1 "$rounds"); do
  for phase in steady swap; do
    name="$phase-$round"
    echo "== $name" >&2
    mover=
    if [ "$phase" = swap ]; then
      $venv/python bench/swap.py "$tracking" lead-scoring champion "$v1" "$v2" "$bench_url" \
        "$BENCH_KEY" "$seconds" 2 >"$bench_work/$name.moves" &
      mover=$!
    fi
    wrk -t2 -c64 -d"$duration" --timeout 5s -s bench/predict.lua \
      "$bench_url/api/v1/models/21/predict" | tee "$bench_work/$name.wrk" >&2
    [ -z "$mover" ] || wait "$mover"
  done
done
bench_stop_server

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/swap-$stamp.json"
python3 - "$bench_work" "$out" "$duration" "$rounds" <<'PY'
import json, os, platform, statistics, sys
sys.path.insert(0, "bench")
from wrk_result import summary
work, out, duration, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(name):
    return summary(open(os.path.join(work, f"{name}.wrk")).read())
runs = {f"{p}-{i}": run(f"{p}-{i}") for i in range(1, rounds + 1) for p in ("steady", "swap")}
moves, move_errors = [], 0
for i in range(1, rounds + 1):
    m = json.loads(open(os.path.join(work, f"swap-{i}.moves")).read())
    moves += m["moves"]
    move_errors += m["errors"]
def median(phase, field):
    return statistics.median(runs[f"{phase}-{i}"][field] for i in range(1, rounds + 1))
result = {
    "date": os.path.basename(out)[len("swap-"):-len(".json")],
    "machine": f"{platform.node()} {os.cpu_count()} cpus",
    "duration": duration,
    "rounds": rounds,
    "runs": runs,
    "median_p99_ms": {"steady": median("steady", "p99_ms"), "swap": median("swap", "p99_ms")},
    "p99_ratio_swap_over_steady": round(median("swap", "p99_ms") / median("steady", "p99_ms"), 3),
    "median_rps": {"steady": median("steady", "requests_per_s"), "swap": median("swap", "requests_per_s")},
    "swaps": len(moves),
    "alias_move_to_served_s": {"median": statistics.median(moves), "max": max(moves)},
    "prober_non_2xx": move_errors,
    "non_2xx": sum(r["non_2xx"] for r in runs.values()),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
echo "wrote $out" >&2
