"""Draw the chaos benchmark (bench/results/chaos-*.json) as one PNG.

Usage: python3 bench/plot_chaos.py OUT.png RESULT.json [RESULT.json ...]
One row per scenario: requests per second, and p50 / p99 latency, per second of the run,
with the seconds during which Redis's packets were dropped shaded.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    out, paths = sys.argv[1], sys.argv[2:]
    runs = [json.load(open(p)) for p in paths]
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.6 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        rows = run["per_second"]
        seconds = [r["second"] for r in rows]
        rps = [r["requests"] for r in rows]
        p50 = [r["p50_ms"] for r in rows]
        p99 = [r["p99_ms"] for r in rows]
        errors = [r["non_2xx"] for r in rows]
        lo, hi = run["redis_dropped_s"]
        ax.axvspan(lo, hi, color="tab:red", alpha=0.12, label="Redis packets dropped")
        ax.plot(seconds, rps, color="tab:blue", label="requests/s")
        ax.set_ylabel("requests per second")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("second of the run")
        lat = ax.twinx()
        lat.plot(seconds, p50, color="tab:green", label="p50 ms")
        lat.plot(seconds, p99, color="tab:orange", label="p99 ms")
        lat.set_ylabel("latency (ms)")
        lat.set_ylim(bottom=0)
        bad = sum(errors)
        title = (
            f"{run['scenario']}: p99 outage {run['outage']['p99_ms']:.2f} ms vs healthy "
            f"{run['healthy_after']['p99_ms']:.2f} ms; non-2xx {bad}"
        )
        ax.set_title(title)
        handles = ax.get_legend_handles_labels()
        lat_handles = lat.get_legend_handles_labels()
        ax.legend(handles[0] + lat_handles[0], handles[1] + lat_handles[1], loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
