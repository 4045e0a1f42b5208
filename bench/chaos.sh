#!/usr/bin/env bash
# Chaos benchmark: 30 s of predict load with warm keys while Redis's packets are dropped
# (seconds 10-20; and a second run with them dropped from start-up to second 20).
# Needs Redis on 127.0.0.1:6379. Writes bench/results/chaos-*.json and docs/chaos.png.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(date -u +%s)
cargo bench --locked --bench chaos
venv=${CHAOS_VENV:-/tmp/modelgate-bench-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/requirements.txt
fi
latest=()
for scenario in outage dropped_at_start; do
  file=$(ls -t bench/results/chaos-"$scenario"-*.json | head -n 1)
  [ "$(stat -c %Y "$file")" -ge "$before" ] || { echo "no fresh result for $scenario" >&2; exit 1; }
  latest+=("$file")
done
"$venv/bin/python" bench/plot_chaos.py docs/chaos.png "${latest[@]}"
echo "wrote docs/chaos.png from ${latest[*]}"
