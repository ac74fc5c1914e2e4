#!/usr/bin/env python3
"""The independent truth of the chaos run (confluent-kafka): reads every
partition of each TOPIC from the beginning, without a group (explicit
assignment), and writes one JSON line per canary record to OUT (appended):
  {"topic", "partition", "offset", "id", "ts": record timestamp (ms),
   "read_ms": when this consumer read it (wall clock, ms),
   "sent_ns": the slaprobe-sent-ns header or null}
It tails the topics from their creation, so a record's read time is when
it became readable to a consumer (its partition's high watermark passed
it), within a poll: a record appended but not yet committed (acks=all
waiting for a replica that died) is read later than its timestamp says.
Once STOP_FILE exists it reads on up to the partitions' high watermarks at
that moment, then exits.

Usage: chaos_truth.py BOOTSTRAP TOPICS(comma) STOP_FILE OUT
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def main():
    bootstrap, topics, stop_file, out = sys.argv[1:5]
    topics = topics.split(",")
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "slaprobe-chaos-truth",
        "enable.auto.commit": False,
        "log_level": 0,
        # slaprobe's own reconnect backoff (librdkafka's default backs off
        # up to 10 s): after a broker's restart the truth must not read
        # seconds after slaprobe for want of trying.
        "reconnect.backoff.max.ms": 1000,
    })
    parts = []
    for t in topics:
        md = c.list_topics(t, timeout=60)
        parts += [(t, p) for p in sorted(md.topics[t].partitions)]
    c.assign([TopicPartition(t, p, 0) for t, p in parts])
    position = {tp: 0 for tp in parts}
    targets = None
    f = open(out, "a", buffering=1)
    print("reading", flush=True)
    while True:
        msg = c.poll(0.2)
        if msg is not None and msg.error() is None:
            cid, sent = None, None
            for k, v in msg.headers() or []:
                if k == "slaprobe-id" and v is not None:
                    cid = v.decode("utf-8", "replace")
                elif k == "slaprobe-sent-ns" and v is not None:
                    sent = int(v.decode("ascii", "replace") or 0)
            if cid is not None:
                f.write(json.dumps({
                    "topic": msg.topic(), "partition": msg.partition(),
                    "offset": msg.offset(), "id": cid,
                    "ts": msg.timestamp()[1], "read_ms": int(time.time() * 1000),
                    "sent_ns": sent,
                }) + "\n")
            position[(msg.topic(), msg.partition())] = msg.offset() + 1
        if targets is None and os.path.exists(stop_file):
            targets = {}
            for t, p in parts:
                _, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=60)
                targets[(t, p)] = high
            print(f"reading up to {targets}", flush=True)
        if targets is not None and all(position[tp] >= targets[tp] for tp in parts):
            break
    c.close()


if __name__ == "__main__":
    main()
