#!/usr/bin/env python3
"""Independent consumer groups (confluent-kafka) that behave the ways
slaprobe's lag evaluation must tell apart, and the producer that feeds them.
Each role runs until killed and prints one line per phase change.

Usage: lag_group.py BOOTSTRAP ROLE TOPIC [GROUP] [TRIGGER_FILE]

Roles:
  produce    five records every 250 ms to each partition, in batches of
             five (multi-record batches, as real producers write)
  keepup     subscribes, consumes, commits every record: OK
  nocommit   like keepup until TRIGGER_FILE exists, then goes on consuming
             without committing: STALL
  slow       subscribes, consumes one record every 0.4 s and commits it,
             slower than the input: WARN
  rewind     assigned (no membership), commits high watermark - 5 on each
             partition every 0.5 s; once TRIGGER_FILE exists, commits 0 (the
             offsets reset to the beginning), then moves on slowly: REWIND
  aged       (GROUP, then AGE in seconds) writes five records stamped AGE
             seconds ago and five stamped now to each partition, commits
             GROUP at the first of the old ones (lag: AGE seconds), exits
  caughtup   writes three records to each partition and commits GROUP at
             the high watermark (a quiet topic read to its end), exits
  many       (PREFIX, then N) commits groups PREFIX0 .. PREFIX<N-1>
             without members: group i at offset i + 1 on partition 0 and
             i + 2 on partition 1, exits
  offsets    prints {"committed": {"topic/partition": offset},
             "high_watermarks": {"topic/partition": offset}} for GROUP on
             TOPIC, then exits
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka import ConsumerGroupTopicPartitions


def partitions(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return sorted(md.topics[topic].partitions)


def member(bootstrap, group):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "fetch.wait.max.ms": 10,
    })


def produce(bootstrap, topic):
    parts = partitions(bootstrap, topic)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    print("producing", flush=True)
    while True:
        for part in parts:
            for _ in range(5):
                p.produce(topic, b"x", partition=part)
        p.flush(5)
        time.sleep(0.25)


def consume(bootstrap, topic, group, trigger, pause):
    c = member(bootstrap, group)
    c.subscribe([topic])
    committing = True
    print("consuming", flush=True)
    while True:
        m = c.poll(0.2)
        if committing and trigger and os.path.exists(trigger):
            committing = False
            print("stopped committing", flush=True)
        if m is None or m.error():
            continue
        if committing:
            c.commit(m, asynchronous=False)
        if pause:
            time.sleep(pause)


def rewind(bootstrap, topic, group, trigger):
    c = member(bootstrap, group)
    parts = partitions(bootstrap, topic)
    print("committing behind the watermark", flush=True)
    reset_at = None
    while True:
        offsets = []
        for part in parts:
            _, high = c.get_watermark_offsets(TopicPartition(topic, part), timeout=5)
            if reset_at is None:
                offsets.append(TopicPartition(topic, part, max(high - 5, 0)))
            else:
                # Re-reading from the beginning, slowly.
                offsets.append(TopicPartition(topic, part, int(time.time() - reset_at)))
        if reset_at is None and trigger and os.path.exists(trigger):
            reset_at = time.time()
            offsets = [TopicPartition(topic, part, 0) for part in parts]
            print("reset to the beginning", flush=True)
        c.commit(offsets=offsets, asynchronous=False)
        time.sleep(0.5)


def aged(bootstrap, topic, group, age):
    """Records written `age` seconds ago (their CreateTime) are the first
    the group has not consumed; fresh ones follow."""
    parts = partitions(bootstrap, topic)
    c = member(bootstrap, group)
    p = Producer({"bootstrap.servers": bootstrap})
    start = []
    for part in parts:
        _, high = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
        start.append(TopicPartition(topic, part, high))
    now_ms = int(time.time() * 1000)
    for part in parts:
        for _ in range(5):
            p.produce(topic, b"old", partition=part, timestamp=now_ms - age * 1000)
        for _ in range(5):
            p.produce(topic, b"new", partition=part)
    if p.flush(10) != 0:
        sys.exit("records not delivered")
    c.commit(offsets=start, asynchronous=False)
    print("committed before records written %d s ago" % age, flush=True)


def caught_up(bootstrap, topic, group):
    parts = partitions(bootstrap, topic)
    p = Producer({"bootstrap.servers": bootstrap})
    for part in parts:
        for _ in range(3):
            p.produce(topic, b"x", partition=part)
    if p.flush(10) != 0:
        sys.exit("records not delivered")
    c = member(bootstrap, group)
    ends = [TopicPartition(topic, part, c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)[1])
            for part in parts]
    c.commit(offsets=ends, asynchronous=False)
    print("committed at the end", flush=True)


def many(bootstrap, topic, prefix, n):
    """Groups prefix0 .. prefix<n-1>, none with a member: group i commits
    offset i + 1 on partition 0 and i + 2 on partition 1."""
    p = Producer({"bootstrap.servers": bootstrap})
    for part in partitions(bootstrap, topic):
        for _ in range(n + 2):
            p.produce(topic, b"x", partition=part)
    if p.flush(10) != 0:
        sys.exit("records not delivered")
    for i in range(n):
        c = member(bootstrap, "%s%d" % (prefix, i))
        c.commit(offsets=[TopicPartition(topic, 0, i + 1), TopicPartition(topic, 1, i + 2)],
                 asynchronous=False)
        c.close()
    print("committed %d groups" % n, flush=True)


def offsets(bootstrap, topic, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group + "-reader"})
    committed, high = {}, {}
    for tp in res.topic_partitions:
        if tp.topic == topic and tp.offset >= 0:
            key = "%s/%d" % (tp.topic, tp.partition)
            committed[key] = tp.offset
            high[key] = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
    c.close()
    print(json.dumps({"committed": committed, "high_watermarks": high}), flush=True)


def main():
    bootstrap, role, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    group = sys.argv[4] if len(sys.argv) > 4 else None
    trigger = sys.argv[5] if len(sys.argv) > 5 else None
    if role == "produce":
        produce(bootstrap, topic)
    elif role == "keepup":
        consume(bootstrap, topic, group, None, 0)
    elif role == "nocommit":
        consume(bootstrap, topic, group, trigger, 0)
    elif role == "slow":
        consume(bootstrap, topic, group, None, 0.4)
    elif role == "rewind":
        rewind(bootstrap, topic, group, trigger)
    elif role == "aged":
        aged(bootstrap, topic, group, int(trigger))
    elif role == "caughtup":
        caught_up(bootstrap, topic, group)
    elif role == "many":
        many(bootstrap, topic, group, int(trigger))
    elif role == "offsets":
        offsets(bootstrap, topic, group)
    else:
        sys.exit("unknown role " + role)


if __name__ == "__main__":
    main()
