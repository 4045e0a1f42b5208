"""Moves a registered model's alias back and forth and times each move until modelgate serves it.

Run by bench/swap.sh with target/mlflow-venv's Python:

    swap.py TRACKING_URI NAME ALIAS VERSION_A VERSION_B MODELGATE_URL KEY SECONDS EVERY

For SECONDS, every EVERY seconds, points ALIAS at the other version and then sends one
prediction every 5 ms until one answers with that version: from the alias move to that answer
is the time to the new version (a swap is atomic, so every later request is on it too). Prints
one JSON line: {"moves": [seconds, ...], "errors": N}.
"""

import json
import sys
import time

import requests


def main() -> None:
    tracking, name, alias, a, b, url, key, seconds, every = sys.argv[1:]
    seconds, every = float(seconds), float(every)
    body = {"inputs": {"company_size": 250, "engagement_score": 85, "industry": "Technology",
                       "decision_timeline": "Q1 2025", "title": "VP of Sales"}}
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    moves, errors = [], 0
    target = b
    ends = time.monotonic() + seconds
    while time.monotonic() + every <= ends:
        started = time.monotonic()
        reply = session.post(f"{tracking}/api/2.0/mlflow/registered-models/alias",
                             json={"name": name, "alias": alias, "version": target}, timeout=10)
        reply.raise_for_status()
        moved = time.monotonic()
        while True:
            answer = session.post(f"{url}/api/v1/models/21/predict", json=body, headers=headers,
                                  timeout=10)
            if answer.status_code != 200:
                errors += 1
            elif answer.json()["metadata"]["model_version"] == target:
                break
            if time.monotonic() - moved > 30:
                raise SystemExit(f"version {target} not served 30 s after the alias moved")
            time.sleep(0.005)
        moves.append(round(time.monotonic() - moved, 4))
        target = a if target == b else b
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    print(json.dumps({"moves": moves, "errors": errors}))


if __name__ == "__main__":
    main()
