#!/usr/bin/env python3
"""An independent pipeline stage for the chaos run (confluent-kafka):
consumes INPUT as a consumer group and writes every record to each topic of
OUTPUTS (comma-separated), to the partition it came from, with the same key,
value and headers; idempotent, so a retried produce is no duplicate.

It does on request what a faulty pipeline does, and logs each thing it does
to a canary, one JSON line per action in LOG (appended; the stage may be
killed and started again):
  {"t": unix seconds, "id": canary id, "action": "forward"|"drop"|"dup"|"reorder"}

CONTROL is a JSON file read every 100 ms (missing: run normally):
  {"stall": true}           consume nothing until it is false again
  {"drop": N, "seq": K}     drop the next N canaries (K tells one request
  {"dup": N, "seq": K}      from the next: an unchanged K is not repeated)
  {"reorder": N, "seq": K}  hold a canary and write it after the next one of
                            its partition, N times

Usage: chaos_stage.py BOOTSTRAP INPUT OUTPUTS CONTROL LOG GROUP
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer


def canary_id(msg):
    for k, v in msg.headers() or []:
        if k == "slaprobe-id" and v is not None:
            return v.decode("utf-8", "replace")
    return None


def main():
    bootstrap, source, sinks, control, log_path, group = sys.argv[1:7]
    sinks = sinks.split(",")
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        # Committed only after the record is written: a killed stage reads
        # again what it had not written (and writes again what it had but
        # not committed: duplicates, which the truth sees too).
        "enable.auto.commit": False,
        "log_level": 0,
    })
    consumer.subscribe([source])
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
        "log_level": 0,
    })
    log = open(log_path, "a", buffering=1)
    state = {"stall": False, "drop": 0, "dup": 0, "reorder": 0}
    seen_seq = None
    last_control = 0.0
    held = {}  # per partition, a record held back to be written after the next one
    print("stage running", flush=True)

    def note(cid, action):
        if cid is not None:
            log.write(json.dumps({"t": time.time(), "id": cid, "action": action}) + "\n")

    def write(msg):
        for sink in sinks:
            producer.produce(sink, key=msg.key(), value=msg.value(),
                             headers=msg.headers(), partition=msg.partition())

    while True:
        now = time.monotonic()
        if now - last_control >= 0.1:
            last_control = now
            try:
                with open(control) as f:
                    c = json.load(f)
            except (OSError, ValueError):
                c = {}
            state["stall"] = bool(c.get("stall", False))
            if c.get("seq") is not None and c.get("seq") != seen_seq:
                seen_seq = c.get("seq")
                for k in ("drop", "dup", "reorder"):
                    state[k] += int(c.get(k, 0))
        if state["stall"]:
            producer.poll(0.05)
            continue
        msg = consumer.poll(0.05)
        producer.poll(0)
        if msg is None or msg.error() is not None:
            continue
        cid = canary_id(msg)
        if cid is not None and state["drop"] > 0:
            state["drop"] -= 1
            note(cid, "drop")
        elif cid is not None and state["reorder"] > 0 and msg.partition() not in held:
            state["reorder"] -= 1
            held[msg.partition()] = msg
            note(cid, "reorder")
            continue
        else:
            write(msg)
            note(cid, "forward")
            if cid is not None and state["dup"] > 0:
                state["dup"] -= 1
                write(msg)
                note(cid, "dup")
        later = held.pop(msg.partition(), None)
        if later is not None:
            write(later)
        producer.flush(10)
        # Nothing held back: what was read is written.
        if not held:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException:
                pass  # a broker down: committed with a later record


if __name__ == "__main__":
    main()
