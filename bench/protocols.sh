#!/usr/bin/env bash
# Protocols benchmark (issue 15): Model 21 predictions of 1 and of 100 rows over modelgate's
# /api/v1 JSON, V2 REST JSON (/v2/models/21/infer) and V2 gRPC (ModelInfer, typed contents and
# raw_input_contents), then the same forest in MLServer 1.7.1 (scikit-learn runtime) over V2
# REST and V2 gRPC. One run, one case after the other, on this machine:
#   - REST load: wrk -t2 -c64 with bench/predict.lua; gRPC load: benches/grpc_load.rs,
#     64 requests in flight over 4 HTTP/2 connections. Each case: BENCH_WARMUP (default 2s) of
#     load, then DURATION of measured load.
#   - modelgate: release build, fresh SQLite store, default settings (inference records on),
#     log filter warn, one key without a rate limit.
#   - MLServer: target/mlserver-venv from bench/mlserver/requirements.txt, the forest rebuilt
#     by bench/mlserver/export_forest.py (checked identical to models/21/model.onnx), default
#     parallel_workers, debug off (no access log).
#   - Rows: 100 complete rows from tools/model21/train.py's generator (seed 15); the 1-row
#     cases send the first. Before any MLServer load, its answer to the 100-row request must
#     equal modelgate's conversion_probability (V1 and V2) within 1e-6.
# Writes bench/results/protocols-<UTC date>.json, prints a table with the ratios; exits 1 if
# any request failed (non-2xx, gRPC error or socket error).
# Usage: bench/protocols.sh [DURATION]   (seconds, default 15s; BENCH_WARMUP default 2s;
#        ports: BENCH_PORT/BENCH_GRPC_PORT for modelgate, BENCH_MLSERVER_PORT (+1 gRPC, +2 metrics))
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
secs=${duration%s}
warmup=${BENCH_WARMUP:-2s}
connections=64
channels=4
. bench/lib.sh
mls_http=${BENCH_MLSERVER_PORT:-18090}
mls_grpc=$((mls_http + 1))
mls_metrics=$((mls_http + 2))
mls_url="http://127.0.0.1:$mls_http"
venv=target/mlserver-venv
mlserver_bin="$PWD/$venv/bin/mlserver"

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }

# The MLServer venv, rebuilt when its requirements change (as scripts/prepare's python_env).
want=$(sha256sum bench/mlserver/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/mlserver/requirements.txt
  echo "$want" >"$venv/.requirements.sha256"
fi

bench_build
grpc_load=$(cargo build --release --locked --bench grpc_load --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "grpc_load" and m.get("executable"):
        print(m["executable"])')
[ -x "$grpc_load" ] || { echo "no grpc_load executable" >&2; exit 1; }

bench_workdir
work=$bench_work
mls_pid=
stop_mlserver() {
  if [ -n "$mls_pid" ]; then
    kill "$mls_pid" 2>/dev/null || true
    wait "$mls_pid" 2>/dev/null || true
    mls_pid=
  fi
}
trap 'stop_mlserver; bench_stop_server; rm -rf "$work"' EXIT
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Rows, request bodies, and MLServer's model folder.
"$venv/bin/python" bench/mlserver/export_forest.py "$work/mlserver/21"
"$venv/bin/python" - "$work" <<'PY'
import json, sys
import numpy as np
sys.path.insert(0, "tools/model21")
import train
work = sys.argv[1]
rng = np.random.default_rng(15)
rows = [r for r in train.generate_records(rng, 400) if len(r) == len(train.FEATURE_ORDER)][:100]
assert len(rows) == 100
features = train.encode_all(rows)
def dump(name, value):
    with open(f"{work}/{name}.json", "w") as f:
        json.dump(value, f)
def datatype(field):
    return "FP64" if field in train.NUMERIC_FIELDS else "BOOL" if field in train.BOOL_FIELDS else "BYTES"
dump("rows", rows)
dump("features", features.tolist())
for n in (1, 100):
    dump(f"v1-{n}", {"inputs": rows[0] if n == 1 else rows[:n]})
    dump(f"v2-{n}", {"inputs": [
        {"name": f, "datatype": datatype(f), "shape": [n], "data": [r[f] for r in rows[:n]]}
        for f in train.FEATURE_ORDER]})
    dump(f"mls-{n}", {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [n, 10],
                                  "data": features[:n].reshape(-1).tolist()}]})
PY

# run_wrk CASE URL BODY: warm-up, then the measured run into $work/CASE.out.
run_wrk() {
  echo "== $1" >&2
  BENCH_BODY=$(cat "$work/$3.json") wrk -t2 -c"$connections" -d"$warmup" --timeout 5s \
    -s bench/predict.lua "$2" >/dev/null
  BENCH_BODY=$(cat "$work/$3.json") wrk -t2 -c"$connections" -d"$duration" --timeout 5s \
    -s bench/predict.lua "$2" | tee "$work/$1.out" >&2
}
# run_grpc CASE ADDR ROWS [VAR=VALUE...]: the same with benches/grpc_load.rs.
run_grpc() {
  local case=$1 addr=$2 rows=$3
  shift 3
  echo "== $case" >&2
  env BENCH_GRPC_ADDR="$addr" BENCH_ROWS="$rows" BENCH_CONNECTIONS="$connections" \
    BENCH_CHANNELS="$channels" BENCH_DURATION_S="${warmup%s}" "$@" "$grpc_load" >/dev/null
  env BENCH_GRPC_ADDR="$addr" BENCH_ROWS="$rows" BENCH_CONNECTIONS="$connections" \
    BENCH_CHANNELS="$channels" BENCH_DURATION_S="$secs" "$@" "$grpc_load" | tee "$work/$case.out" >&2
}

# ---- modelgate
bench_use_store protocols
export MODELGATE_LOG_FILTER=warn
unset MODELGATE_RATELIMIT_DEFAULT MODELGATE_REDIS_URL
BENCH_KEY=$(bench_create_key)
export BENCH_KEY
bench_start_server "$work/modelgate.out" "$work/modelgate.err"
bench_warm "$BENCH_KEY"
for n in 1 100; do
  for kind in v1 v2; do
    path=/api/v1/models/21/predict
    [ "$kind" = v2 ] && path=/v2/models/21/infer
    curl -fsS "$bench_url$path" -H "Authorization: Bearer $BENCH_KEY" \
      -H 'Content-Type: application/json' -d @"$work/$kind-$n.json" >"$work/answer-$kind-$n.json"
  done
done
grpc_addr="127.0.0.1:$bench_grpc_port"
for n in 1 100; do
  run_wrk "modelgate-v1-$n" "$bench_url/api/v1/models/21/predict" "v1-$n"
  run_wrk "modelgate-v2_rest-$n" "$bench_url/v2/models/21/infer" "v2-$n"
  run_grpc "modelgate-v2_grpc-$n" "$grpc_addr" "$n" BENCH_ROWS_FILE="$work/rows.json"
  run_grpc "modelgate-v2_grpc_raw-$n" "$grpc_addr" "$n" BENCH_ROWS_FILE="$work/rows.json" BENCH_RAW=1
done
peak_rss_kib "$bench_server" >"$work/modelgate.rss"
bench_stop_server

# ---- MLServer
(
  cd "$work" # its .metrics and .envs folders go here
  MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT=$mls_http MLSERVER_GRPC_PORT=$mls_grpc \
    MLSERVER_METRICS_PORT=$mls_metrics MLSERVER_DEBUG=false \
    exec "$mlserver_bin" start "$work/mlserver"
) >"$work/mlserver.log" 2>&1 &
mls_pid=$!
for _ in $(seq 1 600); do
  curl -fs "$mls_url/v2/models/21/ready" >/dev/null 2>&1 && break
  kill -0 "$mls_pid" 2>/dev/null || break
  sleep 0.1
done
curl -fs "$mls_url/v2/models/21/ready" >/dev/null || {
  echo "MLServer did not become ready; its log:" >&2
  cat "$work/mlserver.log" >&2
  exit 1
}
for n in 1 100; do
  curl -fsS "$mls_url/v2/models/21/infer" -H 'Content-Type: application/json' \
    -d @"$work/mls-$n.json" >"$work/answer-mls-$n.json"
done
# Same forest, same answers: modelgate's conversion_probability (V1 and V2) against MLServer's
# predict_proba[:, 1], before any MLServer figure is taken.
python3 - "$work" <<'PY' | tee "$work/answers.txt" >&2
import json, sys
work = sys.argv[1]
def load(name):
    return json.load(open(f"{work}/answer-{name}.json"))
worst = 0.0
for n in (1, 100):
    v1 = load(f"v1-{n}")["predictions"]
    v1 = [p["conversion_probability"] for p in (v1 if isinstance(v1, list) else [v1])]
    v2 = next(o["data"] for o in load(f"v2-{n}")["outputs"] if o["name"] == "conversion_probability")
    proba = next(o["data"] for o in load(f"mls-{n}")["outputs"] if o["name"] == "predict_proba")
    mls = proba[1::2]
    assert len(v1) == len(v2) == len(mls) == n, (len(v1), len(v2), len(mls))
    worst = max([worst] + [abs(a - b) for a, b in zip(v1, v2)] + [abs(a - b) for a, b in zip(v1, mls)])
verdict = "same" if worst <= 1e-6 else "DIFFERENT"
print(f"answers: modelgate V1 = V2 = MLServer predict_proba[:,1] on 100 rows: max abs diff "
      f"{worst:.2e} ({verdict})")
sys.exit(0 if worst <= 1e-6 else 1)
PY
export BENCH_KEY=unused # predict.lua sends it; MLServer ignores the header
for n in 1 100; do
  run_wrk "mlserver-v2_rest-$n" "$mls_url/v2/models/21/infer" "mls-$n"
  run_grpc "mlserver-v2_grpc-$n" "127.0.0.1:$mls_grpc" "$n" BENCH_ROWS_FILE="$work/features.json" \
    BENCH_NO_AUTH=1
done
peak_rss_kib "$mls_pid" >"$work/mlserver.rss"
stop_mlserver

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/protocols-$stamp.json"
mls_version=$("$venv/bin/python" -c 'import mlserver, sklearn; print(f"mlserver {mlserver.__version__}, scikit-learn {sklearn.__version__}")')
python3 - "$work" "$out" "$duration" "$warmup" "$loadavg_before" "$mls_version" <<'PY'
import json, os, platform, sys
sys.path.insert(0, "bench")
from wrk_result import summary
work, out, duration, warmup, loadavg, mls_version = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cases = []
for server, protocols in (("modelgate", ("v1", "v2_rest", "v2_grpc", "v2_grpc_raw")),
                          ("mlserver", ("v2_rest", "v2_grpc"))):
    for rows in (1, 100):
        for protocol in protocols:
            s = summary(open(f"{work}/{server}-{protocol}-{rows}.out").read())
            cases.append({"server": server, "protocol": protocol, "rows": rows, **s,
                          "rows_per_s": round(s["requests_per_s"] * rows, 1)})
def rps(server, protocol, rows):
    return next(c["requests_per_s"] for c in cases
                if (c["server"], c["protocol"], c["rows"]) == (server, protocol, rows))
ratios, goals = {}, []
for rows in (1, 100):
    v1 = rps("modelgate", "v1", rows)
    for key, num, den, goal in (
        ("v2_rest_to_v1", rps("modelgate", "v2_rest", rows), v1, 0.9),
        ("v2_grpc_to_v1", rps("modelgate", "v2_grpc", rows), v1, 1.0),
        ("v2_grpc_raw_to_v1", rps("modelgate", "v2_grpc_raw", rows), v1, 1.0),
        ("modelgate_to_mlserver_v2_rest", rps("modelgate", "v2_rest", rows),
         rps("mlserver", "v2_rest", rows), None),
        ("modelgate_to_mlserver_v2_grpc", rps("modelgate", "v2_grpc", rows),
         rps("mlserver", "v2_grpc", rows), None),
    ):
        ratio = round(num / den, 3)
        ratios[f"{key}_{rows}_row{'s' if rows > 1 else ''}"] = ratio
        if goal is not None:
            goals.append((f"{key} ({rows} row{'s' if rows > 1 else ''})", ratio, goal))
failed = [c for c in cases if c["non_2xx"] or c["socket_errors"]]
result = {
    "date_utc": out.split("protocols-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, {platform.platform()}",
    "loadavg_before": loadavg,
    "command": f"bench/protocols.sh {duration}",
    "load": (f"REST: wrk -t2 -c64 -d{duration} (bench/predict.lua); gRPC: benches/grpc_load.rs, "
             f"64 in flight over 4 HTTP/2 connections, {duration}; each after {warmup} of warm-up"),
    "modelgate": {"settings": "release build, SQLite, inference records on, log filter warn, "
                              "key without rate limit",
                  "peak_rss_kib": int(open(f"{work}/modelgate.rss").read())},
    "mlserver": {"versions": mls_version, "settings": "parallel_workers 1 (default), debug off",
                 "peak_rss_kib_all_processes": int(open(f"{work}/mlserver.rss").read())},
    "answers": open(f"{work}/answers.txt").read().strip(),
    "cases": cases,
    "ratios": ratios,
}
json.dump(result, open(out, "w"), indent=2)
print(f"wrote {out}")

print(f"\n{'server':10} {'protocol':12} {'rows':>4} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} "
      f"{'p99 ms':>8} {'non-2xx':>7}")
for c in cases:
    print(f"{c['server']:10} {c['protocol']:12} {c['rows']:>4} {c['requests_per_s']:>9.0f} "
          f"{c['rows_per_s']:>10.0f} {c['p50_ms']:>8.2f} {c['p99_ms']:>8.2f} "
          f"{c['non_2xx'] + c['socket_errors']:>7}")
print(f"\npeak RSS: modelgate {result['modelgate']['peak_rss_kib'] / 1024:.0f} MiB, MLServer "
      f"(all processes) {result['mlserver']['peak_rss_kib_all_processes'] / 1024:.0f} MiB")
for key, ratio in ratios.items():
    print(f"{key}: {ratio}")
for name, ratio, goal in goals:
    print(f"goal {name} >= {goal}: {ratio} ({'met' if ratio >= goal else 'NOT met'})")
if failed:
    print("\n!!! FAILED REQUESTS: " + ", ".join(
        f"{c['server']} {c['protocol']} {c['rows']} rows: {c['non_2xx']} non-2xx, "
        f"{c['socket_errors']} socket errors" for c in failed) + " !!!")
    sys.exit(1)
PY
