#!/usr/bin/env python3
"""Reads modelgate's inference records from the Redis stream, once each.

A consumer group (XREADGROUP) shares the stream between workers; every entry is XACKed after it
is handled. Delivery is at-least-once (a replay from modelgate's outbox, or a crash here before
XACK, can deliver a record again), so records are deduplicated by their `id`.

    pip install -r requirements.txt
    python consumer.py --redis redis://127.0.0.1:6379/0 --stream modelgate:inference
"""

import argparse
import json
import signal
import sys

import redis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--stream", default="modelgate:inference")
    parser.add_argument("--group", default="example")
    parser.add_argument("--consumer", default="consumer-1")
    parser.add_argument("--count", type=int, default=100, help="entries per read")
    parser.add_argument("--exit-when-idle", action="store_true", help="stop after one empty read")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis, decode_responses=True)
    try:
        # From the stream's start ("0"); MKSTREAM so the group can exist before modelgate writes.
        client.xgroup_create(args.stream, args.group, id="0", mkstream=True)
    except redis.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise

    # A real consumer keeps this set in its own store (e.g. a unique key on `id`) and bounds it.
    seen: set[str] = set()
    last_seq: dict[str, int] = {}
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    # First entries delivered to this consumer but never acknowledged (a crash), then new ones.
    start = "0"
    while not stopping:
        reply = client.xreadgroup(args.group, args.consumer, {args.stream: start}, count=args.count, block=2000)
        entries = reply[0][1] if reply else []
        if start == "0" and not entries:
            start = ">"
            continue
        if not entries and args.exit_when_idle:
            break
        for entry_id, fields in entries:
            record_id = fields["id"]
            if record_id not in seen:
                seen.add(record_id)
                handle(json.loads(fields["record"]), last_seq)
            client.xack(args.stream, args.group, entry_id)
    print(f"{len(seen)} distinct records", file=sys.stderr)
    return 0


def handle(record: dict, last_seq: dict[str, int]) -> None:
    """Prints the record; warns when an instance's seq jumps (records lost upstream)."""
    instance, seq = record["instance"], record["seq"]
    previous = last_seq.get(instance)
    if previous is not None and seq != previous + 1:
        print(f"note: {instance} seq {previous} -> {seq}", file=sys.stderr)
    last_seq[instance] = max(seq, previous or 0)
    print(json.dumps({k: record[k] for k in ("id", "instance", "seq", "model_id", "status", "latency_ms", "created_at")}))


if __name__ == "__main__":
    sys.exit(main())
