#!/usr/bin/env bash
# Redis Cluster benchmark: modelgate with a standalone Redis vs with a Redis Cluster of 3 masters
# and 3 replicas, side by side in one run, on this machine:
#   - modelgate: release build, pinned to CPU 0 (`taskset`, from its start), a fresh SQLite store,
#     default settings (inference records on: SQLite rows and the Redis stream), log filter warn.
#   - Keys: BENCH_KEYS (default 12) keys, each with a rate limit far above the load, so that every
#     prediction runs the GCRA script (EVALSHA) on Redis and none is refused. They are chosen so
#     that their GCRA state keys (`modelgate:rl:v2:{key id}`) split evenly over the cluster's
#     masters; wrk sends them in turn (a Lua script built on bench/predict.lua), so the
#     EVALSHAs spread over the masters. The stream is one key, so every XADD lands on one master.
#   - Redis: the script's own servers on private ports (never the shared 6379), no persistence,
#     started before anything is pinned (they run on either CPU):
#       standalone: one redis-server on BENCH_REDIS_PORT (default 16479);
#       cluster: six redis-servers on BENCH_CLUSTER_PORT..+5 (default 17001..17006, cluster bus
#       on port + 1000), joined by `redis-cli --cluster create --cluster-replicas 1`.
#   - Load: wrk pinned to CPU 1, -t1 -c32, Model 21 at 1 row. BENCH_ROUNDS (default 3) rounds of
#     standalone then cluster, each a fresh server, BENCH_WARMUP (default 2s) of load, then
#     DURATION measured.
#   - Per case: requests/s, p50, p99, non-2xx and socket errors (must be 0), CPU of modelgate and
#     of the Redis servers per prediction, modelgate_ratelimit_redis_fallbacks_total and the
#     global-tier decisions from /metrics (fallbacks must stay ~0: the limit was decided on
#     Redis), and INFO commandstats per Redis node (EVALSHA and XADD per master). Before the
#     rounds, the CPU the Redis servers use in 5 s without any client (the cluster's bus and
#     replication pings), for scale.
# Writes bench/results/cluster-<UTC date>.json, prints a table with the ratio cluster/standalone;
# exits 1 if any request failed or Redis did not decide the limits.
# Usage: bench/cluster.sh [DURATION]   (default 15s)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
warmup=${BENCH_WARMUP:-2s}
rounds=${BENCH_ROUNDS:-3}
key_count=${BENCH_KEYS:-12}
connections=32
standalone_port=${BENCH_REDIS_PORT:-16479}
cluster_base=${BENCH_CLUSTER_PORT:-17001}
cluster_ports=()
for i in 0 1 2 3 4 5; do cluster_ports+=($((cluster_base + i))); done
. bench/lib.sh

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
for tool in redis-server redis-cli taskset curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "cluster.sh needs $tool" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "cluster.sh needs 2 CPUs (server on one, load on the other)" >&2; exit 1; }
[ $((key_count % 3)) -eq 0 ] || { echo "BENCH_KEYS must be a multiple of 3 (one share per master)" >&2; exit 1; }
for port in "$standalone_port" "${cluster_ports[@]}"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "something already answers on port $port; set BENCH_REDIS_PORT / BENCH_CLUSTER_PORT" >&2
    exit 1
  fi
done
bench_build

bench_workdir
work=$bench_work
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A redis_pid_of=()
cleanup() {
  bench_stop_server
  local pid
  for pid in "${redis_pid_of[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${redis_pid_of[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_redis PORT [ARG...]: a redis-server in its own folder under $work, without persistence.
start_redis() {
  local port=$1
  shift
  mkdir -p "$work/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work/redis-$port" "$@" >"$work/redis-$port/log" 2>&1 &
  redis_pid_of[$port]=$!
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server on $port did not start; its log:" >&2
  cat "$work/redis-$port/log" >&2
  return 1
}

start_redis "$standalone_port"
for port in "${cluster_ports[@]}"; do
  start_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 1000 --cluster-port $((port + 1000))
done
cluster_nodes=()
for port in "${cluster_ports[@]}"; do cluster_nodes+=("127.0.0.1:$port"); done
redis-cli --cluster create "${cluster_nodes[@]}" --cluster-replicas 1 --cluster-yes \
  >"$work/cluster-create.log" 2>&1 || { cat "$work/cluster-create.log" >&2; exit 1; }

# Ready: every node says cluster_state:ok, every replica's link to its master is up, and the
# nodes agree on the slot map.
cluster_ready() {
  local port
  for port in "${cluster_ports[@]}"; do
    redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' || return 1
    if redis-cli -p "$port" info replication | grep -q '^role:slave'; then
      redis-cli -p "$port" info replication | grep -q '^master_link_status:up' || return 1
    fi
  done
  redis-cli --cluster check "127.0.0.1:${cluster_ports[0]}" >"$work/cluster-check.log" 2>&1
}
for _ in $(seq 1 300); do
  cluster_ready && break
  sleep 0.1
done
cluster_ready || { echo "the cluster did not become ready" >&2; cat "$work/cluster-check.log" >&2; exit 1; }
redis-cli -p "${cluster_ports[0]}" cluster nodes >"$work/cluster-nodes.txt"
masters=()
replicas=()
for port in "${cluster_ports[@]}"; do
  if redis-cli -p "$port" info replication | grep -q '^role:master'; then
    masters+=("$port")
  else
    replicas+=("$port")
  fi
done
[ "${#masters[@]}" -eq 3 ] || { echo "expected 3 masters, got ${masters[*]}" >&2; exit 1; }
echo "cluster ready: masters ${masters[*]}, replicas ${replicas[*]}" >&2

# master_of KEY: the port of the master that owns KEY's slot.
master_of() {
  local slot
  slot=$(redis-cli -p "${cluster_ports[0]}" cluster keyslot "$1")
  awk -v s="$slot" '$3 ~ /master/ {
    for (i = 9; i <= NF; i++) {
      n = split($i, r, "-"); if (n == 1) r[2] = r[1]
      if (s + 0 >= r[1] + 0 && s + 0 <= r[2] + 0) { split($2, a, "[:@]"); print a[2] }
    }
  }' "$work/cluster-nodes.txt"
}

# ---- keys: key_count rate-limited keys, key_count / 3 of them on each master's slots.
bench_use_store cluster
export MODELGATE_LOG_FILTER=warn
unset MODELGATE_RATELIMIT_DEFAULT MODELGATE_REDIS_URL MODELGATE_REDIS_CLUSTER REDIS_URL REDIS_HOST \
  REDIS_PORT
declare -A keys_on=()
keys=()
: >"$work/keys.txt"
for _ in $(seq 1 $((key_count * 10))); do
  [ "${#keys[@]}" -lt "$key_count" ] || break
  created=$("$bench_bin" keys create --name bench --json --rate-limit 1000000/s 2>>"$work/keys.err")
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$created")
  key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' <<<"$created")
  owner=$(master_of "modelgate:rl:v2:{$id}")
  if [ "${keys_on[$owner]:-0}" -lt $((key_count / 3)) ]; then
    keys_on[$owner]=$((${keys_on[$owner]:-0} + 1))
    keys+=("$key")
    echo "$id $owner" >>"$work/keys.txt"
  fi
done
[ "${#keys[@]}" -eq "$key_count" ] || { echo "could not spread $key_count keys over the masters" >&2; exit 1; }
stream_master=$(master_of "modelgate:inference")
BENCH_KEY=${keys[0]}
BENCH_KEYS=$(IFS=,; echo "${keys[*]}")
export BENCH_KEY BENCH_KEYS

# wrk: bench/predict.lua (its body, headers and RESULT line), with the keys sent in turn.
cat >"$work/keys.lua" <<'LUA'
dofile("bench/predict.lua")
local requests, i = {}, 0
function init(args)
  for key in string.gmatch(os.getenv("BENCH_KEYS"), "[^,]+") do
    wrk.headers["Authorization"] = "Bearer " .. key
    requests[#requests + 1] = wrk.format()
  end
end
function request()
  i = i % #requests + 1
  return requests[i]
end
LUA

# snapshot NAME PORT...: commandstats of each node, CPU ticks of each node and of the server.
snapshot() {
  local name=$1 port
  shift
  for port in "$@"; do
    redis-cli -p "$port" info commandstats >"$work/$name-$port.stats"
    cpu_ticks "${redis_pid_of[$port]}" >"$work/$name-$port.ticks"
  done
  cpu_ticks "$bench_server" >"$work/$name-server.ticks"
}

# run_case CASE PORT...: a fresh server on the Redis set up in MODELGATE_REDIS_*, warm-up, then
# the measured run into $work/CASE.out, its /metrics into $work/CASE.metrics.
run_case() {
  local case=$1 key
  shift
  echo "== $case" >&2
  taskset -p -c 0 $$ >/dev/null
  bench_start_server "$work/$case.server.out" "$work/$case.server.err"
  taskset -p -c 1 $$ >/dev/null
  for key in "${keys[@]}"; do bench_warm "$key"; done
  taskset -c 1 wrk -t1 -c"$connections" -d"$warmup" --timeout 5s -s "$work/keys.lua" \
    "$bench_url/api/v1/models/21/predict" >/dev/null
  sleep 1
  snapshot "$case-start" "$@"
  taskset -c 1 wrk -t1 -c"$connections" -d"$duration" --timeout 5s -s "$work/keys.lua" \
    "$bench_url/api/v1/models/21/predict" | tee "$work/$case.out" >&2
  # The events writer flushes within events.flush_interval (100 ms).
  sleep 1
  snapshot "$case-end" "$@"
  curl -fsS "$bench_url/metrics" >"$work/$case.metrics"
  curl -fsS "$bench_url/health" >"$work/$case.health"
  bench_stop_server
}

# Idle: the Redis servers alone, no modelgate.
idle_start=$(date +%s.%N)
cpu_ticks "${redis_pid_of[$standalone_port]}" >"$work/idle-start-standalone.ticks"
cluster_pids=()
for port in "${cluster_ports[@]}"; do cluster_pids+=("${redis_pid_of[$port]}"); done
cpu_ticks "${cluster_pids[@]}" >"$work/idle-start-cluster.ticks"
sleep 5
cpu_ticks "${redis_pid_of[$standalone_port]}" >"$work/idle-end-standalone.ticks"
cpu_ticks "${cluster_pids[@]}" >"$work/idle-end-cluster.ticks"
idle_secs=$(python3 -c "import sys, time; print(time.time() - float(sys.argv[1]))" "$idle_start")

for round in $(seq 1 "$rounds"); do
  export MODELGATE_REDIS_URL="redis://127.0.0.1:$standalone_port/0"
  export MODELGATE_REDIS_CLUSTER=false
  run_case "standalone-$round" "$standalone_port"
  MODELGATE_REDIS_URL=$(printf 'redis://127.0.0.1:%s,' "${cluster_ports[@]}")
  export MODELGATE_REDIS_URL=${MODELGATE_REDIS_URL%,}
  export MODELGATE_REDIS_CLUSTER=true
  run_case "cluster-$round" "${cluster_ports[@]}"
done

out="bench/results/cluster-$stamp.json"
python3 - "$work" "$out" "$duration" "$warmup" "$rounds" "$loadavg_before" "$(getconf CLK_TCK)" \
  "$standalone_port" "${masters[*]}" "${replicas[*]}" "$stream_master" \
  "$(redis-server --version | awk '{ print $3 }')" "$idle_secs" <<'PY'
import json, os, platform, re, sys
sys.path.insert(0, "bench")
from wrk_result import summary
(work, out, duration, warmup, rounds, loadavg, hz, standalone, masters, replicas, stream_master,
 redis_version, idle_secs) = sys.argv[1:]
redis_version = redis_version.removeprefix("v=")
rounds, hz = int(rounds), int(hz)
masters, replicas = masters.split(), replicas.split()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")

def calls(path):
    stats = {}
    for line in open(path):
        if line.startswith("cmdstat_"):
            name, fields = line.strip().removeprefix("cmdstat_").split(":", 1)
            stats[name] = int(dict(f.split("=") for f in fields.split(","))["calls"])
    return stats

def node_delta(case, port):
    a, b = calls(f"{work}/{case}-start-{port}.stats"), calls(f"{work}/{case}-end-{port}.stats")
    d = {c: n - a.get(c, 0) for c, n in b.items() if n - a.get(c, 0) > 0}
    d.pop("info", None)
    d.pop("ping", None)
    ticks = lambda when: int(open(f"{work}/{case}-{when}-{port}.ticks").read())
    return d, ticks("end") - ticks("start")

def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total

cases = []
for r in range(1, rounds + 1):
    for kind in ("standalone", "cluster"):
        case = f"{kind}-{r}"
        s = summary(open(f"{work}/{case}.out").read())
        ports = [standalone] if kind == "standalone" else masters + replicas
        nodes = {}
        redis_ticks = 0
        for port in ports:
            d, t = node_delta(case, port)
            redis_ticks += t
            role = "standalone" if kind == "standalone" else ("master" if port in masters else "replica")
            nodes[port] = {"role": role, "evalsha": d.get("evalsha", 0), "xadd": d.get("xadd", 0),
                           "all_commands": sum(d.values()), "cpu_s": round(t / hz, 2)}
        server_ticks = (int(open(f"{work}/{case}-end-server.ticks").read())
                        - int(open(f"{work}/{case}-start-server.ticks").read()))
        m = open(f"{work}/{case}.metrics").read()
        served = [n for n in nodes.values() if n["role"] != "replica"]
        evalsha = sum(n["evalsha"] for n in served)
        xadd = sum(n["xadd"] for n in served)
        health = json.load(open(f"{work}/{case}.health"))
        cases.append({
            "case": kind, "round": r, **s,
            "server_cpu_us_per_request": round(server_ticks / hz / s["requests"] * 1e6, 1),
            "redis_cpu_us_per_request": round(redis_ticks / hz / s["requests"] * 1e6, 1),
            "ratelimit_redis_fallbacks_total": metric(m, "modelgate_ratelimit_redis_fallbacks_total"),
            "ratelimit_decisions_global_allowed": metric(m, "modelgate_ratelimit_decisions_total", tier="global", outcome="allowed"),
            "ratelimit_decisions_local": metric(m, "modelgate_ratelimit_decisions_total", tier="local"),
            "evalsha_per_request": round(evalsha / s["requests"], 3),
            "xadd_per_request": round(xadd / s["requests"], 3),
            "server_warnings": sum(1 for _ in open(f"{work}/{case}.server.err")),
            "health_status": health.get("status"),
            "redis_nodes": nodes,
        })

def total(kind, field):
    return sum(c[field] for c in cases if c["case"] == kind)

def agg(kind):
    cs = [c for c in cases if c["case"] == kind]
    secs = sum(c["requests"] / c["requests_per_s"] for c in cs)
    return {"requests_per_s": round(total(kind, "requests") / secs, 1),
            "p50_ms": round(sum(c["p50_ms"] for c in cs) / len(cs), 3),
            "p99_ms": round(sum(c["p99_ms"] for c in cs) / len(cs), 3),
            "non_2xx": total(kind, "non_2xx"), "socket_errors": total(kind, "socket_errors"),
            "server_cpu_us_per_request": round(sum(c["server_cpu_us_per_request"] * c["requests"] for c in cs) / total(kind, "requests"), 1),
            "redis_cpu_us_per_request": round(sum(c["redis_cpu_us_per_request"] * c["requests"] for c in cs) / total(kind, "requests"), 1),
            "ratelimit_redis_fallbacks_total": total(kind, "ratelimit_redis_fallbacks_total")}
summary_ = {k: agg(k) for k in ("standalone", "cluster")}
ratio = {f: round(summary_["cluster"][f] / summary_["standalone"][f], 3)
         for f in ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_request", "redis_cpu_us_per_request")}
spread = {}
for port in masters:
    spread[port] = {"evalsha": sum(c["redis_nodes"][port]["evalsha"] for c in cases if c["case"] == "cluster"),
                    "xadd": sum(c["redis_nodes"][port]["xadd"] for c in cases if c["case"] == "cluster")}
keys_per_master = {}
for line in open(f"{work}/keys.txt"):
    _, port = line.split()
    keys_per_master[port] = keys_per_master.get(port, 0) + 1

result = {
    "date_utc": out.split("cluster-")[1].removesuffix(".json"),
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, {platform.platform()}",
    "loadavg_before": loadavg,
    "command": f"bench/cluster.sh {duration}",
    "settings": (f"release build pinned to CPU 0, SQLite store, inference records on, log filter warn; "
                 f"wrk -t1 -c32 pinned to CPU 1, {warmup} warm-up then {duration} per case, "
                 f"{rounds} rounds of standalone then cluster, each on a fresh server; Model 21 at 1 row; "
                 f"{sum(keys_per_master.values())} keys with rate limit 1000000/s sent in turn; "
                 f"redis-server {redis_version} (no persistence, not pinned)"),
    "redis": {"standalone_port": int(standalone), "cluster_masters": [int(p) for p in masters],
              "cluster_replicas": [int(p) for p in replicas],
              "keys_per_master": keys_per_master, "stream_master": int(stream_master)},
    "redis_idle_cpu_cores": {
        kind: round((int(open(f"{work}/idle-end-{kind}.ticks").read())
                     - int(open(f"{work}/idle-start-{kind}.ticks").read())) / hz / float(idle_secs), 4)
        for kind in ("standalone", "cluster")},
    "summary": summary_,
    "ratio_cluster_to_standalone": ratio,
    "cluster_commands_per_master": spread,
    "cases": cases,
}
json.dump(result, open(out, "w"), indent=2)
print(f"wrote {out}")

print(f"\n{'case':12} {'round':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
      f"{'srv µs/req':>10} {'redis µs/req':>12} {'fallbacks':>9} {'evalsha/req':>11} {'xadd/req':>8}")
for c in cases:
    print(f"{c['case']:12} {c['round']:>5} {c['requests_per_s']:>9.0f} {c['p50_ms']:>8.2f} "
          f"{c['p99_ms']:>8.2f} {c['non_2xx'] + c['socket_errors']:>6} "
          f"{c['server_cpu_us_per_request']:>10.1f} {c['redis_cpu_us_per_request']:>12.1f} "
          f"{c['ratelimit_redis_fallbacks_total']:>9.0f} {c['evalsha_per_request']:>11.3f} "
          f"{c['xadd_per_request']:>8.3f}")
for kind, s in summary_.items():
    print(f"{kind:12} {'all':>5} {s['requests_per_s']:>9.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} "
          f"{s['non_2xx'] + s['socket_errors']:>6} {s['server_cpu_us_per_request']:>10.1f} "
          f"{s['redis_cpu_us_per_request']:>12.1f} {s['ratelimit_redis_fallbacks_total']:>9.0f}")
print("\nratio cluster / standalone: " + ", ".join(f"{k} {v}" for k, v in ratio.items()))
print("cluster masters (EVALSHA, XADD over the measured runs): " + ", ".join(
    f"{p}: {v['evalsha']}, {v['xadd']}" for p, v in spread.items())
      + f"; keys per master {keys_per_master}; the stream lives on {stream_master}")
print("Redis CPU without clients (cores): " + ", ".join(f"{k} {v}" for k, v in result["redis_idle_cpu_cores"].items()))

problems = []
for c in cases:
    name = f"{c['case']} round {c['round']}"
    if c["non_2xx"] or c["socket_errors"]:
        problems.append(f"{name}: {c['non_2xx']} non-2xx, {c['socket_errors']} socket errors")
    if c["ratelimit_redis_fallbacks_total"] > 0.001 * c["requests"]:
        problems.append(f"{name}: {c['ratelimit_redis_fallbacks_total']:.0f} rate-limit fallbacks")
    if c["evalsha_per_request"] < 0.99:
        problems.append(f"{name}: only {c['evalsha_per_request']} EVALSHA per request")
if problems:
    print("\n!!! " + "; ".join(problems) + " !!!")
    sys.exit(1)
PY
echo "wrote $out"
