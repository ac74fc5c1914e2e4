#!/usr/bin/env python3
"""What watching consumer groups costs: `slaprobe run` with one `type: lag`
probe whose group_pattern matches GROUPS groups, each with committed
offsets on every partition of a PARTITIONS-partition topic (default 100 x
50: 5,000 partition series), read every INTERVAL.

Prints, per read: CPU (ms and share of a core), the lag reader's requests
by type (slaprobe_kafka_requests_total{client="lag"}), and the process's
RSS and threads, the exposition's size and consumergroup series, and the
status API's size and time. Against an idle slaprobe with no probe at all
(the baseline) for CPU and RSS.

Usage: lag.py --bootstrap HOST:PORT --slaprobe PATH [--groups 100]
       [--partitions 50] [--interval 10] [--reads 6]
Prints a Markdown table; asserts nothing.
"""

import argparse
import json
import time

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka import ConsumerGroupTopicPartitions

from probes import Slaprobe, get, metric_sum, proc


def prepare(bootstrap, tag, groups, partitions, replication=1):
    """The topic, a record per partition, and every group's commits."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"lagbench.{tag}"
    admin.create_topics([NewTopic(topic, partitions, replication)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for _ in range(4):
        for p in range(partitions):
            producer.produce(topic, b"x", partition=p)
        producer.flush(30)
    names = [f"lagbench-{tag}-{i:03d}" for i in range(groups)]
    for name in names:
        offsets = [TopicPartition(topic, p, (p + hash(name)) % 4) for p in range(partitions)]
        # A commit can fail per partition (on Kafka, while the offsets
        # topic is created and its coordinators load): again until none does.
        deadline = time.time() + 60
        while True:
            done = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(name, offsets)])[name].result()
            errors = [tp.error for tp in done.topic_partitions if tp.error]
            if not errors:
                break
            if time.time() > deadline:
                raise SystemExit(f"committing offsets for {name} failed: {errors[0]}")
            time.sleep(0.5)
    return topic, names


def config(bootstrap, pattern, interval):
    yaml = [
        "clusters:",
        f"  b: {{ bootstrap: '{bootstrap}', librdkafka: {{ statistics.interval.ms: '1000' }} }}",
    ]
    if pattern:
        yaml += [
            "probes:",
            f"  - {{ name: groups, type: lag, cluster: b, group_pattern: '{pattern}', interval: {interval}s }}",
        ]
    return "\n".join(yaml) + "\n"


def status(s):
    t0 = time.time()
    body = get(s.base + "/api/v1/status", 30)[1]
    return json.loads(body), len(body), time.time() - t0


def measure(args, yaml, groups, partitions):
    with Slaprobe(args.slaprobe, yaml) as s:
        s.wait_ready()
        deadline = time.time() + 120
        while groups and time.time() < deadline:
            st, _, _ = status(s)
            seen = [g for g in st["consumer_groups"] if g["partitions"] == partitions]
            if len(seen) == groups:
                break
            time.sleep(1)
        else:
            if groups:
                raise SystemExit(f"slaprobe did not read {groups} groups in 120 s")
        # Start the window right after a read.
        time.sleep(1)
        before = s.metrics()
        cpu0, _, _ = proc(s.pid)
        t0 = time.time()
        rss = threads = 0
        while time.time() - t0 < args.reads * args.interval:
            time.sleep(1)
            _, r, t = proc(s.pid)
            rss, threads = max(rss, r), max(threads, t)
        cpu1, _, _ = proc(s.pid)
        elapsed = time.time() - t0
        after = s.metrics()
        reads = elapsed / args.interval
        requests = {}
        for line in after.splitlines():
            if line.startswith("slaprobe_kafka_requests_total{") and 'client="lag"' in line:
                req = line.split('request="')[1].split('"')[0]
                requests[req] = requests.get(req, 0.0)
        for req in requests:
            d = (metric_sum(after, "slaprobe_kafka_requests_total", client="lag", request=req) or 0) - (
                metric_sum(before, "slaprobe_kafka_requests_total", client="lag", request=req) or 0)
            requests[req] = d / reads
        series = sum(1 for l in after.splitlines() if l.startswith("slaprobe_consumergroup_"))
        _, api_bytes, api_secs = status(s)
        return {
            "cpu_per_read": (cpu1 - cpu0) / reads,
            "cpu_share": (cpu1 - cpu0) / elapsed,
            "rss": rss,
            "threads": threads,
            "requests": requests,
            "series": series,
            "metrics_bytes": len(after),
            "api_bytes": api_bytes,
            "api_secs": api_secs,
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--slaprobe", required=True)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=50)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--reads", type=int, default=6)
    args = ap.parse_args()
    tag = str(int(time.time()))
    _, names = prepare(args.bootstrap, tag, args.groups, args.partitions, args.replication)
    base = measure(args, config(args.bootstrap, None, args.interval), 0, args.partitions)
    lag = measure(args, config(args.bootstrap, f"lagbench-{tag}-.*", args.interval), len(names), args.partitions)
    print(f"\n### Watching {args.groups} groups x {args.partitions} partitions, read every {args.interval} s "
          f"({args.reads} reads measured)\n")
    print("| | no probe | lag probe |")
    print("|---|---|---|")
    print(f"| CPU per read | {base['cpu_per_read'] * 1000:.0f} ms | {lag['cpu_per_read'] * 1000:.0f} ms |")
    print(f"| CPU (share of a core) | {base['cpu_share'] * 100:.1f} % | {lag['cpu_share'] * 100:.1f} % |")
    print(f"| RSS | {base['rss'] / 1024:.1f} MB | {lag['rss'] / 1024:.1f} MB |")
    print(f"| threads | {base['threads']} | {lag['threads']} |")
    print(f"| consumergroup series | {base['series']} | {lag['series']} |")
    print(f"| /metrics size | {base['metrics_bytes'] / 1024:.0f} KB | {lag['metrics_bytes'] / 1024:.0f} KB |")
    print(f"| /api/v1/status | {base['api_bytes'] / 1024:.0f} KB, {base['api_secs'] * 1000:.0f} ms | "
          f"{lag['api_bytes'] / 1024:.0f} KB, {lag['api_secs'] * 1000:.0f} ms |")
    print("\nRequests the lag reader sends per read (all brokers):\n")
    print("| request | per read |")
    print("|---|---|")
    for req, n in sorted(lag["requests"].items()):
        if n >= 0.05:
            print(f"| {req} | {n:.1f} |")


if __name__ == "__main__":
    main()
