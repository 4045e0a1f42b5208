#!/usr/bin/env bash
# Sizing benchmark (issue 16, docs/deploy.md "Sizing"): what one modelgate instance costs and
# how many of them one Redis and one PostgreSQL carry. One run, on this machine:
#   - modelgate: release build, pinned to CPU 0 (`taskset`, from its start, so its runtime sees
#     one core), PostgreSQL (a fresh database on 127.0.0.1:5432, dropped at the end) and Redis,
#     default settings (inference records on: PostgreSQL rows and the Redis stream), log filter
#     warn, one key with a rate limit far above the load (every prediction runs the global GCRA
#     script in Redis, as keys with limits do).
#   - Load: wrk pinned to CPU 1, -t1 -c32, Model 21 at 1 row (bench/predict.lua), BENCH_WARMUP
#     (default 2s) then DURATION measured.
#   - Memory: VmRSS idle (one prediction, then 14 s without load), the largest VmRSS sampled
#     each second under load, and VmHWM (start-up included) at the end.
#   - Redis: its own redis-server (BENCH_REDIS_PORT, default 16379, no persistence), so that
#     INFO commandstats counts modelgate's commands only (the shared 6379 serves tests too);
#     commands and redis-server CPU per prediction; then redis-benchmark of the same commands
#     (EVALSHA of src/ratelimit/gcra.lua, XADD of a record of the measured size in pipelines
#     of events.batch_size) with redis-server pinned to CPU 0 and the client on CPU 1.
#   - PostgreSQL: pg_stat_database xact_commit and pg_stat_user_tables n_tup_ins of the fresh
#     database per prediction, and the CPU of its backends; then pgbench inserting copies of
#     the measured inference_logs rows, as the events writer does (64 rows per INSERT, 256 per
#     transaction), with 4 clients.
#   - Idle: the same counters over 10 s without load (background health probes).
# Writes bench/results/sizing-<UTC date>.json and prints it. Needs wrk, redis-server,
# redis-benchmark, psql, pgbench, taskset and at least 2 CPUs.
# Usage: bench/sizing.sh [DURATION]   (default 15s; BENCH_PG_URL admin URL, default
#        postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
warmup=${BENCH_WARMUP:-2s}
connections=32
redis_port=${BENCH_REDIS_PORT:-16379}
pg_admin=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
batch=256
. bench/lib.sh

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
for tool in redis-server redis-benchmark redis-cli psql pgbench taskset; do
  command -v "$tool" >/dev/null 2>&1 || { echo "sizing.sh needs $tool" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "sizing.sh needs 2 CPUs (server on one, load on the other)" >&2; exit 1; }
bench_build

bench_workdir
work=$bench_work
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
db="modelgate_sizing_$(date -u +%s)"
redis_pid=
cleanup() {
  bench_stop_server
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis() { redis-cli -p "$redis_port" "$@"; }
psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
db_url="${pg_admin%/*}/$db"

bench_use_store sizing
export MODELGATE_DATABASE_URL="$db_url"
export MODELGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export MODELGATE_LOG_FILTER=warn
unset MODELGATE_RATELIMIT_DEFAULT
BENCH_KEY=$(bench_create_key --rate-limit 1000000/s)
export BENCH_KEY

# The shell pins itself to CPU 0 while it starts the server, which inherits it; wrk and the
# helpers run on CPU 1.
taskset -p -c 0 $$ >/dev/null
bench_start_server "$work/server.out" "$work/server.err"
taskset -p -c 1 $$ >/dev/null
server=$bench_server
bench_warm "$BENCH_KEY"
sleep 3

backends() {
  psql -At "$pg_admin" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db'"
}
# snapshot NAME: every counter, into $work/NAME.json.
snapshot() {
  local pg
  pg=$(psql -At "$db_url" -c "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), \
    (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables), \
    (SELECT count(*) FROM inference_logs)")
  python3 - "$work/$1.json" "$(date +%s.%N)" "$pg" "$(cpu_ticks "$server")" \
    "$(cpu_ticks "$redis_pid")" "$(cpu_ticks $(backends))" "$(redis info commandstats)" <<'PY'
import json, sys
out, now, pg, server, redis, backends, stats = sys.argv[1:]
xacts, inserted, rows = (int(x) for x in pg.split("|"))
commands = {}
for line in stats.splitlines():
    if line.startswith("cmdstat_"):
        name, fields = line.removeprefix("cmdstat_").split(":", 1)
        commands[name] = int(dict(f.split("=") for f in fields.split(","))["calls"])
json.dump({"t": float(now), "pg_xact_commit": xacts, "pg_tup_ins": int(inserted),
           "inference_logs": rows, "server_ticks": int(server), "redis_ticks": int(redis),
           "pg_backend_ticks": int(backends), "redis_commands": commands}, open(out, "w"))
PY
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# ---- idle
# PostgreSQL counts a backend's work when it next goes idle (at most once a second).
sleep 1
snapshot idle-start
sleep 10
snapshot idle-end
# Read after the idle window: start-up (migrations, model checks) leaves memory that the
# allocator returns within seconds.
idle_rss=$(rss_kib "$server")

# ---- load
taskset -c 1 wrk -t1 -c"$connections" -d"$warmup" --timeout 5s -s bench/predict.lua \
  "$bench_url/api/v1/models/21/predict" >/dev/null
sleep 2
snapshot load-start
(
  while kill -0 "$server" 2>/dev/null; do
    rss_kib "$server" >>"$work/rss-samples"
    sleep 1
  done
) &
sampler=$!
taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --timeout 5s -s bench/predict.lua \
  "$bench_url/api/v1/models/21/predict" | tee "$work/load.out" >&2
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
# The events writer flushes within events.flush_interval; PostgreSQL's counters within 1 s.
sleep 3
snapshot load-end
peak_rss=$(peak_rss_kib "$server")
load_rss=$(sort -n "$work/rss-samples" | tail -1)
bench_stop_server

# ---- Redis on its own: the commands a prediction sends, at full speed.
sha=$(redis SCRIPT LOAD "$(cat src/ratelimit/gcra.lua)")
# The size of a real record: the stream's first entry is `id <uuid> record <json>`.
record_bytes=$(redis --raw XRANGE modelgate:inference - + COUNT 1 | awk 'NR == 5 { print length($0) }')
record=$(head -c "$record_bytes" /dev/zero | tr '\0' x)
taskset -a -p -c 0 "$redis_pid" >/dev/null
redis FLUSHALL >/dev/null
taskset -c 1 redis-benchmark -p "$redis_port" -c 32 -n 300000 -r 100000 --csv \
  EVALSHA "$sha" 1 'bench:gcra:__rand_int__' 1 1000000000 | tail -1 >"$work/redis-evalsha.csv"
# A shorter stream than events.stream_maxlen, so that trimming (part of each XADD's cost)
# starts within the run.
taskset -c 1 redis-benchmark -p "$redis_port" -c 4 -P "$batch" -n 400000 -r 1000000 --csv \
  XADD bench:stream MAXLEN '~' 100000 '*' id '__rand_int__' record "$record" | tail -1 >"$work/redis-xadd.csv"
taskset -c 1 redis-benchmark -p "$redis_port" -c 32 -n 300000 -r 100000 --csv \
  GET 'bench:key:__rand_int__' | tail -1 >"$work/redis-get.csv"

# ---- PostgreSQL on its own: inference_logs rows, written as the events writer writes them.
psql -q "$db_url" -c "CREATE TABLE sizing_rows AS SELECT * FROM inference_logs LIMIT 64" >/dev/null
columns="instance, seq, api_key_id, model_id, model_version, inputs, outputs, truncated, latency_ms, status, protocol, created_at"
insert="INSERT INTO inference_logs (id, $columns) SELECT gen_random_uuid()::text, $columns FROM sizing_rows;"
{
  echo "BEGIN;"
  for _ in $(seq 1 $((batch / 64))); do echo "$insert"; done
  echo "COMMIT;"
} >"$work/insert.sql"
pgbench -n -c 4 -j 1 -T 10 -f "$work/insert.sql" "$db_url" >"$work/pgbench.out" 2>&1 ||
  { cat "$work/pgbench.out" >&2; exit 1; }

out="bench/results/sizing-$stamp.json"
python3 - "$work" "$out" "$duration" "$connections" "$idle_rss" "$load_rss" "$peak_rss" \
  "$(getconf CLK_TCK)" "$batch" "$record_bytes" <<'PY'
import csv, json, os, platform, re, sys
sys.path.insert(0, "bench")
from wrk_result import summary
work, out, duration, connections, idle_rss, load_rss, peak_rss, hz, batch, record_bytes = sys.argv[1:]
hz, batch = int(hz), int(batch)
snap = lambda name: json.load(open(f"{work}/{name}.json"))
def delta(a, b):
    d = {k: b[k] - a[k] for k in a if k != "redis_commands"}
    d["redis_commands"] = {c: n - a["redis_commands"].get(c, 0)
                           for c, n in b["redis_commands"].items()
                           if n - a["redis_commands"].get(c, 0) > 0 and c not in ("info", "ping")}
    return d
load = summary(open(f"{work}/load.out").read())
assert load["non_2xx"] == 0 and load["socket_errors"] == 0, load
L = delta(snap("load-start"), snap("load-end"))
I = delta(snap("idle-start"), snap("idle-end"))
predictions = L["inference_logs"]
assert predictions >= load["requests"] * 0.99, (predictions, load["requests"])
secs = load["requests"] / load["requests_per_s"]
per = lambda v: round(v / predictions, 4)
server_cpu = L["server_ticks"] / hz
redis_us = L["redis_ticks"] / hz / predictions * 1e6
pg_us = L["pg_backend_ticks"] / hz / predictions * 1e6
def bench_rate(name):
    row = next(csv.reader(open(f"{work}/redis-{name}.csv")))
    return float(row[1])
redis_bench = {"evalsha_gcra_per_s": bench_rate("evalsha"),
               f"xadd_pipelined_{batch}_per_s": bench_rate("xadd"),
               "get_per_s": bench_rate("get")}
pgb = open(f"{work}/pgbench.out").read()
tps = float(re.search(r"tps = ([\d.]+)", pgb).group(1))
commands = {c: per(n) for c, n in sorted(L["redis_commands"].items())}
# commandstats also counts the commands the GCRA script runs (TIME, GET, SET per EVALSHA):
# what modelgate itself sends is the rest.
sent = dict(L["redis_commands"])
for inner in ("time", "get", "set"):
    sent[inner] = sent.get(inner, 0) - sent.get("evalsha", 0)
sent = {c: per(n) for c, n in sorted(sent.items()) if n > 0}
# Seconds of single-threaded redis-server per prediction, from the benchmarked commands.
top = {"evalsha": redis_bench["evalsha_gcra_per_s"], "xadd": redis_bench[f"xadd_pipelined_{batch}_per_s"],
       "get": redis_bench["get_per_s"]}
redis_s = sum(sent.get(c, 0) / rate for c, rate in top.items())
per_core = round(load["requests_per_s"] / max(server_cpu / secs, 1e-9), 1)
result = {
    "date_utc": out.split("sizing-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
    "command": f"bench/sizing.sh {duration}",
    "connections": int(connections),
    "duration": duration,
    "load": load,
    "server_cpu_cores_used": round(server_cpu / secs, 3),
    "predictions_per_s_per_core": per_core,
    "per_core_note": "requests_per_s / server_cpu_cores_used: the server is pinned to CPU 0; "
                     "when it does not saturate it (CPU 1 also runs wrk, redis-server and "
                     "PostgreSQL), its CPU time per prediction is the figure that scales",
    "memory_kib": {"rss_idle": int(idle_rss), "rss_under_load_max": int(load_rss), "vmhwm": int(peak_rss)},
    "redis": {
        "commands_per_prediction": commands,
        "sent_per_prediction": sent,
        "redis_server_cpu_us_per_prediction": round(redis_us, 2),
        "benchmark": {**redis_bench, "record_bytes": int(record_bytes)},
        "predictions_per_s_capacity_by_benchmark": round(1 / redis_s) if redis_s else None,
        "predictions_per_s_capacity_by_cpu": round(1e6 / redis_us) if redis_us else None,
        "idle_commands_per_s": round(sum(I["redis_commands"].values()) / (I["t"]), 2),
    },
    "postgres": {
        "transactions_per_prediction": per(L["pg_xact_commit"]),
        "rows_inserted_per_prediction": per(L["pg_tup_ins"]),
        "backend_cpu_us_per_prediction": round(pg_us, 2),
        "pgbench_rows_per_s": round(tps * batch),
        "pgbench_transactions_per_s": tps,
        "idle_transactions_per_s": round(I["pg_xact_commit"] / I["t"], 2),
    },
}
r, p = result["redis"], result["postgres"]
cap_r = min(x for x in (r["predictions_per_s_capacity_by_benchmark"], r["predictions_per_s_capacity_by_cpu"]) if x)
xadd_only = redis_bench[f"xadd_pipelined_{batch}_per_s"] / max(sent.get("xadd", 1), 1e-9)
result["derived"] = {
    "instance_cores_per_redis": round(cap_r / per_core, 1),
    # The same arithmetic for keys without a rate limit: no EVALSHA, only the stream's XADD.
    "instance_cores_per_redis_keys_without_limits": round(xadd_only / per_core, 1),
    "instance_cores_per_postgres": round(p["pgbench_rows_per_s"] / per_core, 1),
    "note": "capacity / one instance core at full load; Redis by the lower of its benchmark and CPU "
            "figures, PostgreSQL by pgbench of the same inserts on this machine (its 2 cores shared "
            "with the client)",
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
echo "wrote $out"
