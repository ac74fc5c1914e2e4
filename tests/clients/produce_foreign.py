#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka) writing records that are not
this slaprobe's canaries to a topic: plain traffic, a canary id of another
run, a malformed id. Usage: produce_foreign.py BOOTSTRAP TOPIC COUNT"""
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(err)

    kinds = [
        dict(value=b"plain traffic, no headers"),
        dict(value=b"{}", headers=[("slaprobe-id", b"hb/00000000000000ff/0/0")]),
        dict(value=b"\x00\x01\x02", headers=[("slaprobe-id", b"not an id")]),
    ]
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, on_delivery=report, **kinds[i % len(kinds)])
    remaining = producer.flush(30)
    if remaining or failures:
        print(f"failed: {remaining} unflushed, errors {failures}", file=sys.stderr)
        return 1
    print(f"produced {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
