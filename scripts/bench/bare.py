#!/usr/bin/env python3
"""slaprobe against a bare rdkafka round trip (examples/bare.rs) at the
same rate and partitions, against the same broker, interleaved: the bare
program with librdkafka's default client settings (`defaults`: what a
user's own client has), with slaprobe's client settings (`settings`), and
slaprobe itself, in reverse order every other repeat. `split` is the bare
program with slaprobe's settings reading as slaprobe's consumer does (a
queue per partition, one thread draining those signalled), to tell that
way of reading from the rest of slaprobe.

For each: delivered rate, CPU µs per canary, e2e p50/p99/p999, RSS, and
slaprobe's ratios to both bare programs (median over the repeats, with
min..max): against `settings` it is slaprobe's code, against `defaults`
everything a user would see.

Usage: bare.py --bootstrap HOST:PORT --slaprobe PATH --bare PATH
       [--setups 100x6,100x60,1000x6,1000x60,10000x6,10000x60]
       [--warmup 30] [--seconds 50] [--repeats 3]
       [--fetch-wait MS] [--replication N]
       [--kinds defaults,settings,split,slaprobe] [--defaults-with KEY=VALUE,...]
       [--fresh-tansu]

--fresh-tansu: every run on a new tansu broker of its own (memory storage),
started and stopped here: one tansu slows as its storage grows (its
latency at 1,000/s x 60 rises from ~29 ms p99 to over 100 ms within
150 s), so consecutive runs on one are not alike.
--defaults-with: librdkafka options added to the `defaults` program (to
find which of slaprobe's settings costs what).

--fetch-wait: both clients' fetch.wait.max.ms (default 10, for brokers that
hold a fetch until the wait expires, such as tansu; 0 leaves librdkafka's
500, right for Kafka, which answers as soon as data arrives).
--replication: the topics' replication factor (default 1; -1: the broker's
default).
Prints a Markdown table; asserts nothing.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from probes import FreshTansu, Slaprobe, metric_sum, proc, quantile_ms  # noqa: E402

def create_topic(bootstrap, topic, partitions, replication=1):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, replication)]).values():
        f.result(30)
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.2)
    sys.exit(f"topic {topic} did not appear")


def run_bare(args, rate, partitions, topic, defaults, split=False):
    options = [f"fetch.wait.max.ms={args.fetch_wait}"] if args.fetch_wait else []
    if defaults:
        options += [o for o in args.defaults_with.split(",") if o]
    p = subprocess.Popen(
        [args.bare, "--bootstrap", args.bootstrap, "--topic", topic,
         "--partitions", str(partitions), "--rate", str(rate),
         "--warmup", str(args.warmup), "--seconds", str(args.seconds),
         "--client-defaults", "true" if defaults else "false",
         "--split-queues", "true" if split else "false"]
        + [x for o in options for x in ("--librdkafka", o)],
        stdout=subprocess.PIPE, text=True,
    )
    cpu0 = t0 = None
    rss = 0
    result = None
    for line in p.stdout:
        line = line.strip()
        if line == "measuring":
            cpu0, rss, _ = proc(p.pid)
            t0 = time.time()
        elif line.startswith("{"):
            result = json.loads(line)
            break
    # The window's end: the program stops sending one second after it.
    cpu1, rss1, _ = proc(p.pid)
    p.wait(30)
    if result is None or cpu0 is None:
        sys.exit(f"bare {rate}/s x {partitions}: no result")
    elapsed = time.time() - t0
    delivered = result["delivered"]
    return {
        "rate": delivered / args.seconds,
        "cpu_us": (cpu1 - cpu0) / max(delivered, 1) * 1e6 * args.seconds / elapsed,
        "p50": result["p50_us"] / 1000,
        "p99": result["p99_us"] / 1000,
        "p999": result["p999_us"] / 1000,
        "rss_mb": max(rss, rss1) / 1024,
    }


CANARY = re.compile(r"^(\S+)Z DEBUG slaprobe::canary: latency ([0-9.]+)(ns|µs|ms|s) .*outcome=\"delivered")
UNIT_US = {"ns": 1e-3, "µs": 1.0, "ms": 1e3, "s": 1e6}


def canary_latencies(log, t0, t1):
    """The latencies (µs, sorted) of the canaries slaprobe's log says were
    delivered and that were sent between t0 and t1 (wall clock)."""
    out = []
    for line in log:
        m = CANARY.match(line)
        if not m:
            continue
        arrived = datetime.datetime.fromisoformat(m.group(1)).replace(
            tzinfo=datetime.timezone.utc).timestamp()
        us = float(m.group(2)) * UNIT_US[m.group(3)]
        if t0 <= arrived - us / 1e6 < t1:
            out.append(us)
    return sorted(out)


def run_slaprobe(args, rate, partitions, topic):
    interval_us = round(partitions * 1e6 / rate)
    yaml = (
        "clusters:\n"
        f"  b: {{ bootstrap: '{args.bootstrap}'"
        + (f", librdkafka: {{ fetch.wait.max.ms: '{args.fetch_wait}' }}" if args.fetch_wait else "")
        + " }\n"
        "probes:\n"
        f"  - {{ name: bench, type: heartbeat, cluster: b, topic: {topic}, "
        f"interval: {interval_us}us, deadline: 5s }}\n"
    )
    # Every canary's outcome and latency in the log, so that its quantiles
    # are taken over the bare program's window (canaries sent in it) and
    # the same way; the exposition's cover its last minute.
    with Slaprobe(args.slaprobe, yaml, rust_log="warn,slaprobe::canary=debug") as s:
        ready = s.wait_ready(60)
        m = s.measure(args.warmup, args.seconds)
        time.sleep(2)  # those sent at the window's end arrive
        s.log.flush()
        with open(s.log.name, errors="replace") as f:
            latencies = canary_latencies(f, m["t0"], m["t1"])
    before, after, elapsed = m["before"], m["after"], m["elapsed"]
    delivered = metric_sum(after, "slaprobe_canaries_delivered_total") - metric_sum(
        before, "slaprobe_canaries_delivered_total")

    def q(quantile):
        if not latencies:
            return quantile_ms(after, quantile)
        return latencies[min(len(latencies) - 1, int(float(quantile) * len(latencies)))] / 1000

    return {
        "rate": delivered / elapsed,
        "cpu_us": m["cpu"] / max(delivered, 1) * 1e6,
        "p50": q("0.5"),
        "p99": q("0.99"),
        "p999": q("0.999"),
        "p50_1m": quantile_ms(after, "0.5"),
        "p99_1m": quantile_ms(after, "0.99"),
        "rss_mb": m["rss_kb"] / 1024,
        "ready_s": ready,
        "lost": (metric_sum(after, "slaprobe_canaries_lost_total") or 0)
        - (metric_sum(before, "slaprobe_canaries_lost_total") or 0),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--slaprobe", required=True)
    ap.add_argument("--bare", required=True)
    ap.add_argument("--setups", default="100x6,100x60,1000x6,1000x60,10000x6,10000x60")
    # 30 s: slaprobe's quantiles cover its last minute, which must not hold
    # the first seconds after start (fetch sessions being set up).
    ap.add_argument("--warmup", type=float, default=30)
    ap.add_argument("--seconds", type=float, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fetch-wait", type=int, default=10)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--kinds", default="defaults,settings,slaprobe")
    ap.add_argument("--defaults-with", default="")
    ap.add_argument("--fresh-tansu", action="store_true",
                    help="each run on a tansu of its own (started here; --bootstrap unused)")
    args = ap.parse_args()
    setups = [tuple(int(x) for x in s.split("x")) for s in args.setups.split(",")]
    programs = {
        "defaults": lambda a, r, p, t: run_bare(a, r, p, t, True),
        "settings": lambda a, r, p, t: run_bare(a, r, p, t, False),
        "split": lambda a, r, p, t: run_bare(a, r, p, t, False, split=True),
        "slaprobe": run_slaprobe,
    }
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in programs:
            sys.exit(f"--kinds: unknown {k} (defaults, settings, split, slaprobe)")
    runs = {s: {k: [] for k in kinds} for s in setups}
    stamp = int(time.time())
    for rate, partitions in setups:
        for repeat in range(args.repeats):
            # The broker drifts (tansu slows as its memory storage grows,
            # and a run's tail follows the one before it): every other
            # repeat runs the programs in reverse order, so that no program
            # is always the later one of its pair.
            for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
                topic = f"bench.{kind}.{rate}x{partitions}.{repeat}.{stamp}"
                if args.fresh_tansu:
                    with FreshTansu() as broker:
                        run_args = argparse.Namespace(**{**vars(args), "bootstrap": broker.bootstrap})
                        create_topic(broker.bootstrap, topic, partitions, args.replication)
                        r = programs[kind](run_args, rate, partitions, topic)
                else:
                    create_topic(args.bootstrap, topic, partitions, args.replication)
                    r = programs[kind](args, rate, partitions, topic)
                print(f"# {rate}/s x {partitions} {kind} #{repeat}: {r}", file=sys.stderr, flush=True)
                runs[(rate, partitions)][kind].append(r)

    if args.warmup + args.seconds < 60:
        print("\nNote: slaprobe's quantiles cover its last minute, bare's only the measured "
              f"{args.seconds:g} s: below 60 s of warm-up and measurement the latencies "
              "are not comparable.")
    extra = f" (defaults with {args.defaults_with})" if args.defaults_with else ""
    print(f"\nslaprobe against a bare round trip{extra}, {args.seconds:g} s each after "
          f"{args.warmup:g} s warm-up; median of {args.repeats} interleaved runs "
          "(ratio: median, min..max over the pairs):\n")
    print("| rate × partitions | program | delivered/s | CPU per canary | p50 | p99 | p99.9 | RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for rate, partitions in setups:
        r = runs[(rate, partitions)]
        for kind in kinds:
            med = lambda k: statistics.median(x[k] for x in r[kind])  # noqa: E731
            print(f"| {rate:,}/s × {partitions} | {kind} | {med('rate'):,.0f} | {med('cpu_us'):.1f} µs "
                  f"| {med('p50'):.2f} ms | {med('p99'):.2f} ms | {med('p999'):.2f} ms | {med('rss_mb'):.1f} MB |")
    if "slaprobe" in kinds:
        ready = [x["ready_s"] for r in runs.values() for x in r["slaprobe"]]
        print(f"\nslaprobe's start to its first canary matched (/readyz): median "
              f"{statistics.median(ready) * 1000:.0f} ms, at most {max(ready) * 1000:.0f} ms "
              f"over {len(ready)} starts.")
    for base in ("defaults", "settings"):
        if base not in kinds or "slaprobe" not in kinds:
            continue
        print(f"\nslaprobe against bare with {'librdkafka defaults' if base == 'defaults' else 'slaprobe settings'}:\n")
        print("| rate × partitions | p50 ratio | p50 difference | p99 ratio | CPU per canary ratio | delivered ratio | slaprobe lost |")
        print("|---|---|---|---|---|---|---|")
        for rate, partitions in setups:
            r = runs[(rate, partitions)]
            pairs = list(zip(r[base], r["slaprobe"]))

            def ratio(k):
                xs = [s[k] / b[k] for b, s in pairs if b[k]]
                return f"{statistics.median(xs):.2f}× ({min(xs):.2f}..{max(xs):.2f})" if xs else "n/a"

            def diff(k):
                xs = [s[k] - b[k] for b, s in pairs]
                return f"{statistics.median(xs):+.2f} ms"

            lost = sum(s.get("lost", 0) for _, s in pairs)
            print(f"| {rate:,}/s × {partitions} | {ratio('p50')} | {diff('p50')} | {ratio('p99')} "
                  f"| {ratio('cpu_us')} | {ratio('rate')} | {lost:.0f} |")


if __name__ == "__main__":
    main()
