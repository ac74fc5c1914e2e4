#!/usr/bin/env python3
"""A pipeline output on a busy topic: slaprobe reads every record of an
output topic, its canaries and everything else the pipeline writes there.
What that costs it, and what it does to canary latency.

One pipeline probe whose output is its input topic (6 partitions), at
--canaries canaries/s, matched by a JSON field (`match: { json:
/order_id }`, the costliest rule: the foreign records are JSON with that
field too, and only a byte search for slaprobe's run id keeps them from
being parsed), while a separate process (an independent
confluent-kafka producer) writes non-canary JSON records of ~200 bytes
into the same topic at each --foreign rate in turn: 0, then 1,000, 10,000
and 100,000 records/s by default. For each: the foreign records slaprobe
read per second (the producer's rate where it keeps up), slaprobe's CPU
(share of a core, and µs per 1,000 foreign records above the idle
figure), RSS (most seen), canary e2e p50/p99 over its last minute, lost.

With --burst BASE (e.g. 10000): one slaprobe run on one topic, the
foreign rate stepping from BASE to 10 x BASE and back, --phases phases
(default 6: base, burst, base, burst, ...), each --phase-seconds long
(default 70, more than the 1-minute window the quantiles are read from at
each phase's end): canary p50/p99 per phase, and burst vs the base phases
around it (median over the pairs). With --bare PATH (examples/bare.rs),
a reference beside it: an independent client with librdkafka's default
settings producing its own timestamped records into the same topic at the
same rate and reading the whole topic, its latency taken over the same
last minute of each phase. What a burst does to the reference is what the
brokers and the machine do; what it does to slaprobe beyond that is
slaprobe's.

Usage: busy.py --bootstrap HOST:PORT --slaprobe PATH [--replication N]
       [--fetch-wait MS] [--foreign 0,1000,10000,100000] [--canaries 100]
       [--warmup 20] [--seconds 40]
       [--burst BASE [--phases 6] [--phase-seconds 70] [--bare PATH]]
Prints a Markdown table; asserts nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bare import create_topic  # noqa: E402
from probes import Slaprobe, metric_sum, proc, quantile_ms  # noqa: E402

PARTITIONS = 6

# The foreign producer, a process of its own so that its CPU is not
# slaprobe's and its pacing is not held up by the measurement.
FOREIGN = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
              "queue.buffering.max.messages": 1000000, "compression.type": "none"})
value = b'{"order_id":"%012d","amount":1250,"currency":"EUR","customer":"c-0042",' \
        b'"items":[{"sku":"A-1","n":2},{"sku":"B-7","n":1}],"note":"' + b"x" * 60 + b'"}'
start = time.time()
sent = 0
while True:
    due = int((time.time() - start) * rate)
    while sent < due:
        try:
            p.produce(topic, value % sent)
        except BufferError:
            p.poll(0.01)
            continue
        sent += 1
    p.poll(0)
    time.sleep(0.005)
"""


def yaml(args, topic):
    wait = f", librdkafka: {{ fetch.wait.max.ms: '{args.fetch_wait}' }}" if args.fetch_wait else ""
    # A pipeline probe sends one canary per input partition per interval.
    interval_us = round(PARTITIONS * 1e6 / args.canaries)
    return (
        "clusters:\n"
        f"  b: {{ bootstrap: '{args.bootstrap}'{wait} }}\n"
        "probes:\n"
        f"  - name: busy\n"
        f"    type: pipeline\n"
        f"    interval: {interval_us}us\n"
        f"    deadline: 10s\n"
        f"    input: {{ cluster: b, topic: {topic}, payload: '{{\"order_id\":\"{{{{id}}}}\"}}' }}\n"
        f"    outputs:\n"
        f"      - {{ name: out, cluster: b, topic: {topic}, match: {{ json: /order_id }} }}\n"
    )


def run_one(args, foreign):
    topic = f"bench.busy.{foreign}.{int(time.time())}"
    create_topic(args.bootstrap, topic, PARTITIONS, args.replication)
    producer = None
    if foreign > 0:
        producer = subprocess.Popen(
            [sys.executable, "-c", FOREIGN, args.bootstrap, topic, str(foreign)])
    try:
        with Slaprobe(args.slaprobe, yaml(args, topic)) as s:
            s.wait_ready(120)
            m = s.measure(args.warmup, args.seconds)
    finally:
        if producer is not None:
            producer.kill()
            producer.wait()
    before, after, elapsed = m["before"], m["after"], m["elapsed"]

    def delta(name):
        return (metric_sum(after, name) or 0.0) - (metric_sum(before, name) or 0.0)

    return {
        "foreign": foreign,
        "read": delta("slaprobe_records_foreign_total") / elapsed,
        "canaries": delta("slaprobe_canaries_delivered_total") / elapsed,
        "cpu_core": m["cpu"] / elapsed,
        "rss_mb": m["rss_kb"] / 1024,
        "p50": quantile_ms(after, "0.5"),
        "p99": quantile_ms(after, "0.99"),
        "lost": delta("slaprobe_canaries_lost_total"),
    }


def run_burst(args):
    """One run, the foreign rate stepping between base and 10 x base."""
    base = args.burst
    topic = f"bench.busy.burst.{int(time.time())}"
    create_topic(args.bootstrap, topic, PARTITIONS, args.replication)
    rows = []
    producer = None
    bare = None
    if args.bare:
        options = [f"fetch.wait.max.ms={args.fetch_wait}"] if args.fetch_wait else []
        bare = subprocess.Popen(
            [args.bare, "--bootstrap", args.bootstrap, "--topic", topic,
             "--partitions", str(PARTITIONS), "--rate", str(args.canaries),
             "--client-defaults", "true", "--commands", "true"]
            + [x for o in options for x in ("--librdkafka", o)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def reference(command):
        bare.stdin.write(command + "\n")
        bare.stdin.flush()
        if command != "report":
            return {}
        while True:
            line = bare.stdout.readline()
            if not line:
                sys.exit("bare: no report")
            if line.startswith("{"):
                r = json.loads(line)
                return {"ref_p50": r["p50_us"] / 1000, "ref_p99": r["p99_us"] / 1000}

    def foreign(rate):
        nonlocal producer
        if producer is not None:
            producer.kill()
            producer.wait()
        producer = subprocess.Popen(
            [sys.executable, "-c", FOREIGN, args.bootstrap, topic, str(rate)])

    try:
        foreign(base)
        with Slaprobe(args.slaprobe, yaml(args, topic)) as s:
            s.wait_ready(120)
            time.sleep(args.warmup)
            for phase in range(args.phases):
                rate = base * 10 if phase % 2 else base
                if phase > 0:
                    foreign(rate)
                before = s.metrics()
                cpu0, _, _ = proc(s.pid)
                t0 = time.time()
                # slaprobe's quantiles cover its last minute: the reference's too.
                time.sleep(max(args.phase_seconds - 60, 0))
                if bare is not None:
                    reference("reset")
                time.sleep(min(args.phase_seconds, 60))
                after = s.metrics()
                ref = reference("report") if bare is not None else {}
                cpu1, rss, _ = proc(s.pid)
                elapsed = time.time() - t0

                def delta(name):
                    return (metric_sum(after, name) or 0.0) - (metric_sum(before, name) or 0.0)

                row = {
                    "phase": phase + 1,
                    "foreign": rate,
                    "read": delta("slaprobe_records_foreign_total") / elapsed,
                    "cpu_core": (cpu1 - cpu0) / elapsed,
                    "rss_mb": rss / 1024,
                    "p50": quantile_ms(after, "0.5"),
                    "p99": quantile_ms(after, "0.99"),
                    "lost": delta("slaprobe_canaries_lost_total"),
                    **ref,
                }
                print(f"# phase {row}", file=sys.stderr, flush=True)
                rows.append(row)
    finally:
        if producer is not None:
            producer.kill()
            producer.wait()
        if bare is not None:
            bare.stdin.close()
            bare.wait(30)
    ref = bare is not None
    print(f"\n{args.canaries:.0f} canaries/s over {PARTITIONS} partitions, output = input topic; "
          f"foreign records {base:,}/s and 10x that in turns of {args.phase_seconds:.0f} s "
          "in one run; latency over slaprobe's last minute at each phase's end")
    print("\n| phase | foreign written/s | foreign read/s | CPU (cores) | RSS MB | e2e p50 ms | e2e p99 ms | lost |"
          + (" reference p50 ms | reference p99 ms |" if ref else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if ref else ""))
    for r in rows:
        print(f"| {r['phase']} | {r['foreign']:,} | {r['read']:,.0f} | {r['cpu_core']:.3f} | "
              f"{r['rss_mb']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['lost']:.0f} |"
              + (f" {r['ref_p50']:.1f} | {r['ref_p99']:.1f} |" if ref else ""))
    # Each burst phase against the mean of the base phases around it.
    def ratios(p50, p99, who):
        p50s, p99s = [], []
        for i, r in enumerate(rows):
            if i % 2 == 0:
                continue
            around = [rows[j] for j in (i - 1, i + 1) if j < len(rows)]
            for k, out in ((p50, p50s), (p99, p99s)):
                b = statistics.mean(x[k] for x in around)
                if b > 0:
                    out.append(r[k] / b)
        if p50s:
            print(f"\n{who}: burst vs the base phases around it: p50 {statistics.median(p50s):.2f}× "
                  f"({min(p50s):.2f}..{max(p50s):.2f}), p99 {statistics.median(p99s):.2f}× "
                  f"({min(p99s):.2f}..{max(p99s):.2f}) over {len(p50s)} bursts")

    ratios("p50", "p99", "slaprobe")
    if ref:
        ratios("ref_p50", "ref_p99", "reference (librdkafka's defaults, same topic)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--slaprobe", required=True)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--fetch-wait", type=int, default=10)
    ap.add_argument("--foreign", default="0,1000,10000,100000")
    ap.add_argument("--canaries", type=float, default=100)
    ap.add_argument("--warmup", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--burst", type=int, default=0)
    ap.add_argument("--phases", type=int, default=6)
    ap.add_argument("--phase-seconds", type=float, default=70)
    ap.add_argument("--bare", help="examples/bare.rs, run beside slaprobe as the burst's reference")
    args = ap.parse_args()
    if args.burst:
        run_burst(args)
        return
    rows = [run_one(args, int(f)) for f in args.foreign.split(",")]
    idle = next((r for r in rows if r["foreign"] == 0), None)
    print(f"\n{args.canaries:.0f} canaries/s over {PARTITIONS} partitions, output = input topic; "
          f"warm-up {args.warmup:.0f} s, measured {args.seconds:.0f} s; latency over slaprobe's last minute")
    print("\n| foreign written/s | foreign read/s | canaries/s | CPU (cores) | CPU µs per 1,000 foreign | "
          "RSS MB | e2e p50 ms | e2e p99 ms | p50 vs idle | p99 vs idle | lost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_k = "–"
        p50x = p99x = "–"
        if idle is not None and r is not idle:
            extra = r["cpu_core"] - idle["cpu_core"]
            if r["read"] > 0:
                per_k = f"{extra / r['read'] * 1e9:.0f}" if extra > 0 else "≈ 0 (noise)"
            if idle["p50"] > 0 and idle["p99"] > 0:
                p50x = f"{r['p50'] / idle['p50']:.2f}×"
                p99x = f"{r['p99'] / idle['p99']:.2f}×"
        print(f"| {r['foreign']:,} | {r['read']:,.0f} | {r['canaries']:.0f} | {r['cpu_core']:.3f} | "
              f"{per_k} | {r['rss_mb']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {p50x} | {p99x} | "
              f"{r['lost']:.0f} |")


if __name__ == "__main__":
    main()
