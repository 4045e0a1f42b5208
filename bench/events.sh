#!/usr/bin/env bash
# Events benchmark (benches/events.rs): predict throughput with inference records off vs on
# in one run with the CPU time each costs per request (machine, Redis server, SQLite workers),
# and the outbox drain rate after a 60 s Redis outage under a steady load.
# Needs Redis on 127.0.0.1:6379. BENCH_DATABASE_URL=postgres://… uses that database instead of
# a fresh SQLite file. Writes bench/results/events-<UTC date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench events
