#!/usr/bin/env python3
"""Cost per probe count: `slaprobe run` with 1, 10, 50, 200 and 300
heartbeat probes at one fixed total canary rate against one broker, each
setup run in turn (interleaved over the repeats).

For each: threads (most seen), RSS (most seen), CPU per canary and as a
share of a core, fetch requests per second per broker (the prober's own
consumer, from slaprobe_kafka_requests_total), delivered rate, lost.

Usage: probes.py --bootstrap HOST:PORT --slaprobe PATH [--seconds N]
       [--repeats N] [--setups 1x300,10x30,50x6,200x3,1x600,300x1] [--rate 300]
       [--statistics-ms 10000] [--fresh-tansu]
Prints a Markdown table; asserts nothing. Every other repeat runs the
setups in reverse order.

--fresh-tansu: every run on a new tansu broker of its own (memory
storage), started and stopped here (--bootstrap is then not used): one
tansu slows as its storage grows, so runs one after the other on one are
not alike.
--statistics-ms: the cluster's statistics.interval.ms, from which the
fetch counts are read (default 10000, slaprobe's own; the tables before
2026-12-07 used 1000, when the statistics still had a block per topic).
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def metric_sum(text, name, **labels):
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
            found = True
    return total if found else None


def proc(pid):
    """(cpu seconds, rss kB, threads) of process pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return cpu, rss, threads


class FreshTansu:
    """A tansu broker of its own (memory storage) on a free loopback port
    for one run: tansu slows as its storage grows, so runs one after the
    other on one tansu are not alike (`--fresh-tansu`)."""

    def __enter__(self):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            ["tansu", "broker", "--storage-engine", "memory://tansu/",
             "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.bootstrap = f"127.0.0.1:{port}"
        from confluent_kafka.admin import AdminClient
        # log_level 0: no "Connection refused" lines while tansu starts.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                admin.list_topics(timeout=2)
                return self
            except Exception:
                time.sleep(0.5)
        self.process.kill()
        sys.exit(f"tansu did not answer on {self.bootstrap}")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Slaprobe:
    """`slaprobe run` on a configuration (YAML text) on a free loopback
    port, stopped (SIGTERM, then SIGKILL) when the `with` block ends."""

    def __init__(self, binary, config, rust_log="warn"):
        self.binary, self.config, self.rust_log = binary, config, rust_log

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "slaprobe.yaml")
        with open(path, "w") as f:
            f.write(self.config)
        self.log = open(os.path.join(self.dir.name, "log"), "w+")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.started = time.time()
        self.process = subprocess.Popen(
            [self.binary, "run", "-c", path, "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, "RUST_LOG": self.rust_log},
        )
        self.pid = self.process.pid
        return self

    def wait_ready(self, timeout=120):
        """Seconds from the start until /readyz answered 200 (every cluster
        answered, every probe matched a canary); exits when it does not."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if get(self.base + "/readyz", 1)[0] == 200:
                    return time.time() - self.started
            except Exception:
                pass
            time.sleep(0.02)
        self.log.seek(0)
        sys.exit(f"slaprobe not ready in {timeout} s; log:\n{self.log.read()[-3000:]}")

    def metrics(self):
        return get(self.base + "/metrics")[1]

    def measure(self, warmup, seconds):
        """After `warmup` seconds, `seconds` of it: /metrics before and
        after, CPU seconds used, the most RSS seen (kB), the window's
        length and its start and end (wall clock)."""
        time.sleep(warmup)
        before = self.metrics()
        cpu0, rss, _ = proc(self.pid)
        t0 = time.time()
        while time.time() - t0 < seconds:
            time.sleep(1)
            rss = max(rss, proc(self.pid)[1])
        cpu1, _, _ = proc(self.pid)
        t1 = time.time()
        return {"before": before, "after": self.metrics(), "cpu": cpu1 - cpu0,
                "rss_kb": rss, "elapsed": t1 - t0, "t0": t0, "t1": t1}

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        self.dir.cleanup()


def quantile_ms(metrics, quantile):
    """slaprobe's e2e latency quantile over its last minute, in ms."""
    v = metric_sum(metrics, "slaprobe_e2e_latency_quantile_seconds",
                   quantile=quantile, window="1m")
    return (v or 0.0) * 1000


def config(bootstrap, probes, partitions, interval_ms, tag, extra, replication=1, brokers=1,
           statistics_ms=10000):
    # `partitions` is the topic's total: topic_management creates brokers x
    # partitions_per_broker of them.
    per_broker = max(1, round(partitions / brokers))
    lines = [
        "clusters:",
        f"  b: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10', "
        f"statistics.interval.ms: '{statistics_ms}'{extra} }} }}",
        f"defaults: {{ interval: {interval_ms}ms, deadline: 5s }}",
        "probes:",
    ]
    for i in range(probes):
        lines.append(
            f"  - {{ name: p{i}, type: heartbeat, cluster: b, topic: bench.{tag}.{i}, "
            f"topic_management: {{ create: true, partitions_per_broker: {per_broker}"
            + (f", replication_factor: {replication}" if replication > 0 else "")
            + " } }"
        )
    return "\n".join(lines) + "\n"


def run_one(args, probes, partitions, repeat):
    if args.fresh_tansu:
        with FreshTansu() as broker:
            return run_on(args, broker.bootstrap, probes, partitions, repeat)
    return run_on(args, args.bootstrap, probes, partitions, repeat)


def run_on(args, bootstrap, probes, partitions, repeat):
    interval_ms = probes * partitions * 1000 / args.rate
    tag = f"{probes}x{partitions}.{repeat}.{int(time.time())}"
    extra = ", ".join([""] + [f"{k}: '{v}'" for k, v in args.librdkafka])
    yaml = config(bootstrap, probes, partitions, round(interval_ms), tag, extra,
                  args.replication, args.brokers, args.statistics_ms)
    with Slaprobe(args.slaprobe, yaml) as s:
        s.wait_ready()
        time.sleep(args.warmup)
        before = s.metrics()
        cpu0, _, _ = proc(s.pid)
        t0 = time.time()
        rss = threads = 0
        while time.time() - t0 < args.seconds:
            time.sleep(1)
            _, r, t = proc(s.pid)
            rss, threads = max(rss, r), max(threads, t)
        cpu1, _, _ = proc(s.pid)
        after = s.metrics()
        elapsed = time.time() - t0

    def delta(name, **labels):
        a, b = metric_sum(after, name, **labels), metric_sum(before, name, **labels)
        return None if a is None or b is None else a - b

    delivered = delta("slaprobe_canaries_delivered_total") or 0.0
    fetches = delta("slaprobe_kafka_requests_total", client="consumer", request="Fetch")
    brokers = {
        m.group(1)
        for m in re.finditer(r'client="consumer",broker="(\d+)",request="Fetch"', after)
    }
    return {
        "setup": f"{probes} × {partitions}",
        "threads": threads,
        "rss_mb": rss / 1024,
        "cpu_core": (cpu1 - cpu0) / elapsed,
        "cpu_us": (cpu1 - cpu0) / max(delivered, 1) * 1e6,
        "rate": delivered / elapsed,
        "lost": delta("slaprobe_canaries_lost_total") or 0.0,
        "produce_errors": delta("slaprobe_produce_errors_total") or 0.0,
        "fetch_per_s": None if fetches is None else fetches / elapsed / max(len(brokers), 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--brokers", type=int, default=1,
                    help="brokers in the cluster: each setup's partitions are a total")
    ap.add_argument("--slaprobe", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--setups", default="1x300,10x30,50x6,200x3,1x600,300x1")
    ap.add_argument("--label", default="")
    ap.add_argument("--statistics-ms", type=int, default=10000)
    ap.add_argument("--fresh-tansu", action="store_true",
                    help="every run on a tansu of its own (--bootstrap is not used)")
    ap.add_argument(
        "--librdkafka", action="append", default=[], type=lambda s: s.split("=", 1),
        help="extra librdkafka option KEY=VALUE for the cluster",
    )
    args = ap.parse_args()
    setups = [tuple(int(x) for x in s.split("x")) for s in args.setups.split(",")]
    results = {s: [] for s in setups}
    for repeat in range(args.repeats):
        # In reverse order every other repeat: no setup is always the one
        # run after another (the broker drifts, the machine's load too).
        for probes, partitions in setups if repeat % 2 == 0 else setups[::-1]:
            r = run_one(args, probes, partitions, repeat)
            print(f"# {args.label} {r}", file=sys.stderr, flush=True)
            results[(probes, partitions)].append(r)

    base = results[setups[0]]
    base_cpu = statistics.median(r["cpu_core"] for r in base)
    base_rss = statistics.median(r["rss_mb"] for r in base)
    title = f" ({args.label})" if args.label else ""
    print(f"\nProbes × partitions at {args.rate:g} canaries/s{title}, "
          f"{args.seconds:g} s each, median of {args.repeats}:\n")
    # What the probes themselves cost: against one probe with as many
    # partitions (librdkafka's work is per partition, however they are
    # grouped into topics), where that setup was run too.
    print("| probes × partitions | threads | RSS | CPU (share of a core) | CPU per canary "
          "| CPU vs first | RSS vs first | CPU, RSS vs 1 × same partitions "
          "| fetches/s per broker | delivered/s | lost | produce errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in setups:
        rs = results[s]
        med = lambda k, rs=rs: statistics.median(r[k] for r in rs)  # noqa: E731
        fetch = [r["fetch_per_s"] for r in rs if r["fetch_per_s"] is not None]
        fetch_s = f"{statistics.median(fetch):.0f}" if fetch else "n/a"
        same = results.get((1, s[0] * s[1]))
        if same and s[0] > 1:
            one = lambda k, same=same: statistics.median(r[k] for r in same)  # noqa: E731
            vs_same = f"{med('cpu_core') / one('cpu_core'):.2f}×, {med('rss_mb') / one('rss_mb'):.2f}×"
        else:
            vs_same = "–"
        print(
            f"| {rs[0]['setup']} | {max(r['threads'] for r in rs)} | {med('rss_mb'):.1f} MB "
            f"| {med('cpu_core') * 100:.1f} % | {med('cpu_us'):.0f} µs "
            f"| {med('cpu_core') / base_cpu:.2f}× | {med('rss_mb') / base_rss:.2f}× | {vs_same} "
            f"| {fetch_s} | {med('rate'):.0f} "
            f"| {sum(r['lost'] for r in rs):.0f} | {sum(r['produce_errors'] for r in rs):.0f} |"
        )


if __name__ == "__main__":
    main()
