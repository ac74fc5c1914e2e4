#!/usr/bin/env python3
"""An independent pipeline stage (confluent-kafka): consumes INPUT as a
consumer group, holds every record HOLD seconds, then produces it to OUTPUT
with the same key, value and headers, compressed with COMPRESSION (none,
gzip, snappy, lz4, zstd; default none). Runs until killed.
Usage: delay_stage.py BOOTSTRAP INPUT OUTPUT HOLD [COMPRESSION]"""
import collections
import sys
import time

from confluent_kafka import Consumer, Producer


def main():
    bootstrap, source, sink, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    compression = sys.argv[5] if len(sys.argv) > 5 else "none"
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "slaprobe-it-delay-" + source + "-" + sink,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
    })
    consumer.subscribe([source])
    # Idempotent: a retried produce must not make the duplicates slaprobe
    # would then (rightly) report.
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
        "compression.type": compression,
    })
    held = collections.deque()
    print("stage running", flush=True)
    while True:
        msg = consumer.poll(0.05)
        if msg is not None and msg.error() is None:
            held.append((time.monotonic() + hold, msg.key(), msg.value(), msg.headers()))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, key, value, headers = held.popleft()
            producer.produce(sink, key=key, value=value, headers=headers)
        producer.poll(0)


if __name__ == "__main__":
    main()
