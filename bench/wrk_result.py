"""The figures of one wrk run, from the `RESULT {json}` line bench/predict.lua prints at its end.
Shared by the shell benchmarks' result writers (they run from the repository root)."""

import json


def summary(wrk_output):
    line = next(l for l in wrk_output.splitlines() if l.startswith("RESULT "))
    r = json.loads(line.removeprefix("RESULT "))
    return {
        "requests_per_s": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": round(r["p50_us"] / 1000, 3),
        "p99_ms": round(r["p99_us"] / 1000, 3),
        "max_ms": round(r["max_us"] / 1000, 3),
        "requests": r["requests"],
        "non_2xx": r["non_2xx"],
        "socket_errors": r["socket_errors"],
    }
