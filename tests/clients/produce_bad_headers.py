#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka) writing records whose header
names are not UTF-8. Usage: produce_bad_headers.py BOOTSTRAP TOPIC COUNT [ID]
With ID, one more record carries a bad header first and then `slaprobe-id: ID`."""
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    canary_id = sys.argv[4] if len(sys.argv) > 4 else None
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(err)

    bad = (b"\xff\xfe-not-utf8", b"x")
    for i in range(count):
        producer.produce(topic, value=b"hostile %d" % i, headers=[bad], on_delivery=report)
        if i % 1000 == 0:
            producer.poll(0)
    if canary_id is not None:
        producer.produce(
            topic,
            value=b"{}",
            headers=[bad, ("slaprobe-id", canary_id.encode())],
            partition=0,
            on_delivery=report,
        )
    remaining = producer.flush(60)
    if remaining or failures:
        print(f"failed: {remaining} unflushed, errors {failures[:3]}", file=sys.stderr)
        return 1
    print(f"produced {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
