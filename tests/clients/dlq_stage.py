#!/usr/bin/env python3
"""An independent pipeline stage with a dead-letter queue (confluent-kafka):
consumes INPUT as a consumer group; a record whose value is JSON goes to
SINK with its key, value and headers; one that is not ("poison") is handled
as MODE says:
  route    to DLQ, with its headers and an `error` header (what a stage
           should do),
  forward  to SINK like any other (a stage that forgot to validate),
  drop     nowhere (a stage that swallows what it cannot parse).
After each poison record it writes `<mode> <count>` to COUNTS (replaced
atomically): how many it routed, forwarded (delivery acknowledged) or
dropped. On SIGTERM it stops reading, flushes its producer, writes the final
count and exits 0.
Usage: dlq_stage.py BOOTSTRAP INPUT SINK DLQ MODE COUNTS"""
import json
import os
import signal
import sys

from confluent_kafka import Consumer, Producer


def main():
    bootstrap, source, sink, dlq, mode, counts = sys.argv[1:7]
    assert mode in ("route", "forward", "drop"), mode
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "slaprobe-it-dlq-" + source,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
    })
    consumer.subscribe([source])
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
    })
    done = [0]

    def write_count():
        tmp = counts + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{mode} {done[0]}\n")
        os.replace(tmp, counts)

    def acked(err, _msg):
        if err is None:
            done[0] += 1
            write_count()

    write_count()
    print("stage running", flush=True)
    while not stop:
        msg = consumer.poll(0.05)
        producer.poll(0)
        if msg is None or msg.error() is not None:
            continue
        key, value, headers = msg.key(), msg.value(), msg.headers() or []
        try:
            json.loads(value)
        except (ValueError, TypeError) as e:
            if mode == "route":
                error = ("error", f"invalid JSON: {e}".encode())
                producer.produce(dlq, key=key, value=value, headers=headers + [error], on_delivery=acked)
            elif mode == "forward":
                producer.produce(sink, key=key, value=value, headers=headers, on_delivery=acked)
            else:
                done[0] += 1
                write_count()
            continue
        producer.produce(sink, key=key, value=value, headers=headers)
    producer.flush(10)
    write_count()
    consumer.close()


if __name__ == "__main__":
    main()
