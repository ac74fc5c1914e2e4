#!/usr/bin/env python3
"""How late slaprobe reports a loss: a pipeline probe whose output topic
never receives anything, so every canary is lost, and /metrics sampled
every few milliseconds. The k-th canary declared lost is matched with the
k-th canary sent (every canary is acked, in order per partition): the
delay is (the time lost_total reached k) - (the time sent_total reached k)
- deadline. Prints the distribution; asserts nothing.

Usage: loss.py --bootstrap HOST:PORT --slaprobe PATH [--seconds 30]
       [--deadline-ms 1000] [--rate 100]
"""

import argparse
import bisect
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bare import create_topic  # noqa: E402
from probes import Slaprobe, metric_sum  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--slaprobe", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--deadline-ms", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    args = ap.parse_args()
    partitions = 6
    stamp = int(time.time())
    source, sink = f"bench.loss.in.{stamp}", f"bench.loss.out.{stamp}"
    create_topic(args.bootstrap, source, partitions, args.replication)
    create_topic(args.bootstrap, sink, 1, args.replication)
    yaml = (
        "clusters:\n"
        f"  b: {{ bootstrap: '{args.bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}\n"
        "probes:\n"
        "  - name: loss\n    type: pipeline\n"
        f"    interval: {round(partitions * 1e6 / args.rate)}us\n"
        f"    deadline: {args.deadline_ms}ms\n"
        f"    input: {{ cluster: b, topic: {source}, payload: '{{{{id}}}}' }}\n"
        "    outputs:\n"
        f"      - {{ name: nowhere, cluster: b, topic: {sink}, match: {{ header: slaprobe-id }} }}\n"
    )
    sent, lost = [], []  # (time, count) samples
    with Slaprobe(args.slaprobe, yaml) as s:
        end = time.time() + args.seconds + args.deadline_ms / 1000 + 10
        while time.time() < end:
            try:
                text = s.metrics()
            except Exception:
                time.sleep(0.05)
                continue
            now = time.time()
            count = metric_sum(text, "slaprobe_canaries_sent_total")
            gone = metric_sum(text, "slaprobe_canaries_lost_total")
            if count is not None:
                sent.append((now, count))
            if gone is not None:
                lost.append((now, gone))
            time.sleep(0.005)

    def first_time(samples, k):
        """When the count first reached k (the sample that showed it)."""
        counts = [c for _, c in samples]
        i = bisect.bisect_left(counts, k)
        return samples[i][0] if i < len(samples) else None

    delays = []
    total_lost = int(lost[-1][1]) if lost else 0
    for k in range(1, total_lost + 1):
        t_lost, t_sent = first_time(lost, k), first_time(sent, k)
        if t_lost is not None and t_sent is not None:
            delays.append((t_lost - t_sent) * 1000 - args.deadline_ms)
    if not delays:
        sys.exit("no canary was declared lost")
    delays.sort()
    q = lambda f: delays[min(len(delays) - 1, int(f * len(delays)))]  # noqa: E731
    gaps = [b[0] - a[0] for a, b in zip(sent, sent[1:])]
    print(f"\nLoss detection: {len(delays)} canaries lost (deadline {args.deadline_ms} ms, "
          f"{args.rate:g}/s); declared lost after sent + deadline by: p50 {q(0.5):.0f} ms, "
          f"p99 {q(0.99):.0f} ms, max {delays[-1]:.0f} ms "
          f"(/metrics sampled every {statistics.median(gaps) * 1000:.0f} ms, which adds up to that)")


if __name__ == "__main__":
    main()
