"""Merges the two halves of bench/onnx_corpus.sh into one result file and a markdown table.

Usage: onnx_corpus_report.py MODELGATE.json ONNXRUNTIME.json OUT.json
Goals (issue 14): every model faster than onnxruntime at both batch sizes; every tree model's
cost per tree (batch 64) within 1.5x of Model 21's single-node forest."""

import json
import os
import platform
import sys
from datetime import datetime, timezone

FOREST = "model21_forest (single node)"


def main():
    ours, theirs, out = sys.argv[1:4]
    modelgate = json.load(open(ours))
    onnxruntime = json.load(open(theirs))
    forest = modelgate[FOREST]
    forest_per_tree = forest["batch64_ns_per_row"] / forest["trees"]
    rows = {}
    for name, m in modelgate.items():
        o = onnxruntime[name]
        row = {
            "engine": m["engine"],
            "trees": m["trees"],
            "modelgate_ns_per_row": {b: m[f"batch{b}_ns_per_row"] for b in (1, 64)},
            "onnxruntime_ns_per_row": {b: o[f"batch{b}_ns_per_row"] for b in (1, 64)},
        }
        row["speedup_vs_onnxruntime"] = {
            b: row["onnxruntime_ns_per_row"][b] / row["modelgate_ns_per_row"][b] for b in (1, 64)
        }
        if m["trees"]:
            per_tree = m["batch64_ns_per_row"] / m["trees"]
            row["ns_per_tree_batch64"] = per_tree
            row["per_tree_vs_forest"] = per_tree / forest_per_tree
        rows[name] = row
    slower = [n for n, r in rows.items() if min(r["speedup_vs_onnxruntime"].values()) < 1]
    over_tree_budget = [n for n, r in rows.items() if r.get("per_tree_vs_forest", 0) > 1.5]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "forest_ns_per_tree_batch64": forest_per_tree,
        "models": rows,
        "slower_than_onnxruntime": slower,
        "per_tree_over_1_5x_forest": over_tree_budget,
    }
    json.dump(result, open(out, "w"), indent=2, sort_keys=True)
    print("| model | engine | trees | batch 1: modelgate / onnxruntime (ns per row) | speedup | batch 64: modelgate / onnxruntime | speedup | per tree vs forest |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in sorted(rows.items()):
        mg, ort_ = r["modelgate_ns_per_row"], r["onnxruntime_ns_per_row"]
        s = r["speedup_vs_onnxruntime"]
        tree = f'{r["per_tree_vs_forest"]:.2f}x' if "per_tree_vs_forest" in r else ""
        print(f'| {name} | {r["engine"]} | {r["trees"]} | {mg[1]:.0f} / {ort_[1]:.0f} | {s[1]:.1f}x '
              f'| {mg[64]:.0f} / {ort_[64]:.0f} | {s[64]:.1f}x | {tree} |')
    print(f"\nslower than onnxruntime: {slower or 'none'}; per tree over 1.5x the forest: {over_tree_budget or 'none'}")


if __name__ == "__main__":
    main()
