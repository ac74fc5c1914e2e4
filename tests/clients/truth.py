#!/usr/bin/env python3
"""The independent truth of a topic (confluent-kafka): reads every
partition of TOPIC from the beginning, without a group (explicit
assignment), and counts each canary id (the slaprobe-id header, else the
key) it sees. Once STOP_FILE exists, it reads on until it has every record
up to the partitions' high watermarks at that moment, writes
{"ids": {id: times seen}, "partitions": {partition: records}} to OUT_JSON
and exits.

Usage: truth.py BOOTSTRAP TOPIC STOP_FILE OUT_JSON
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def main():
    bootstrap, topic, stop_file, out = sys.argv[1:5]
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "slaprobe-it-truth",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "log_level": 0,
    })
    md = c.list_topics(topic, timeout=30)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    ids, per_partition = {}, {p: 0 for p in parts}
    position = {p: 0 for p in parts}
    targets = None
    print("reading", flush=True)
    while True:
        msg = c.poll(0.2)
        if msg is not None and msg.error() is None:
            value = None
            for k, v in msg.headers() or []:
                if k == "slaprobe-id" and v is not None:
                    value = v.decode("utf-8", "replace")
            if value is None and msg.key() is not None:
                value = msg.key().decode("utf-8", "replace")
            ids[value] = ids.get(value, 0) + 1
            per_partition[msg.partition()] += 1
            position[msg.partition()] = msg.offset() + 1
        if targets is None and os.path.exists(stop_file):
            targets = {}
            for p in parts:
                _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                targets[p] = high
            print(f"reading up to {targets}", flush=True)
        if targets is not None and all(position[p] >= targets[p] for p in parts):
            break
    c.close()
    with open(out + ".tmp", "w") as f:
        json.dump({"ids": ids, "partitions": {str(p): n for p, n in per_partition.items()}}, f)
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
