#!/usr/bin/env python3
"""The chaos run: slaprobe under a randomized, seeded fault schedule against
a 3-node Apache Kafka cluster, compared canary by canary with an
independent truth. Run it through scripts/chaos.sh, which builds slaprobe,
starts the cluster and stops it again.

What runs:
- slaprobe (with state_dir) with a heartbeat probe on chaos.hb and a
  pipeline probe from chaos.in through an independent stage
  (tests/clients/chaos_stage.py) to chaos.out; mid-run, an output reading
  chaos.out2 is added to the pipeline probe (a config change and restart);
- the truth (tests/clients/chaos_truth.py): every canary record of every
  topic, read from the beginning without a group;
- the faults, one every 6-16 s, drawn from the seed: a broker killed
  (SIGKILL) and restarted, a preferred-leader election, slaprobe killed
  (SIGKILL) or stopped (SIGTERM) and restarted, the stage stalled (some
  stalls longer than the deadline), killed and restarted, made to drop,
  duplicate or reorder canaries.

At the end every canary that slaprobe sent and the cluster wrote is judged
from the truth (delivered within the deadline, lost, late, duplicates, out
of order at each output) and compared with the outcome slaprobe logged for
it (`RUST_LOG=slaprobe::canary=debug`: one line per canary and outcome).
Canaries the truth cannot judge exactly are counted apart, never compared:
those whose first arrival came within UNCERTAIN of the deadline
(UNCERTAIN_MOVING while partition leaders move), those sent
too near the end to be settled, and those slaprobe documents as abandoned
across a restart. Any other difference fails the run (exit 1).

Usage: chaos.py --bootstrap B --kafka-dir D --slaprobe BIN --out DIR
                [--seed N] [--seconds S]
"""
import argparse
import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLIENTS = os.path.join(ROOT, "tests", "clients")
CLUSTER = os.path.join(HERE, "kafka", "cluster.sh")

DEADLINE = 10.0
INTERVAL = "500ms"
# A first arrival this close to the deadline (either side) is not judged:
# slaprobe and the truth each time an arrival when they read it, in their
# own processes.
UNCERTAIN = 1.5
# ... and this close while partition leaders move (a broker killed, until
# MOVE_SETTLE after its restart; a preferred-leader election, for as
# long): a consumer finds a partition's new leader by asking for metadata
# once a second while the old leader is down (librdkafka's topic scan),
# and the broker it asks may not know the move yet, so two independent
# consumers read the same record up to two of those rounds apart
# (measured: slaprobe 1.0 s before to 1.66 s after the truth).
UNCERTAIN_MOVING = 2.5
MOVE_SETTLE = 15.0
# An arrival written this close to slaprobe's final stop (either side) is
# not judged: slaprobe may or may not have read it.
CUT_MARGIN = 2.0
# slaprobe saves its canaries in flight every second: a canary sent this
# long before a kill -9 may be unknown to the next process.
SAVE_PERIOD = 2.0
TOPICS = {"chaos.hb": 6, "chaos.in": 3, "chaos.out": 3, "chaos.out2": 3}


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(bootstrap, out, listen, with_out2):
    outputs = "      - { name: out, cluster: k, topic: chaos.out, match: { header: slaprobe-id } }\n"
    if with_out2:
        outputs += "      - { name: out2, cluster: k, topic: chaos.out2, match: { header: slaprobe-id } }\n"
    return f"""state_dir: {out}/state
server:
  listen: {listen}
clusters:
  k:
    bootstrap: {bootstrap}
    librdkafka: {{ fetch.wait.max.ms: '10' }}
probes:
  - name: hb
    type: heartbeat
    cluster: k
    topic: chaos.hb
    interval: {INTERVAL}
    deadline: {int(DEADLINE)}s
  - name: pipe
    type: pipeline
    interval: {INTERVAL}
    deadline: {int(DEADLINE)}s
    input:
      cluster: k
      topic: chaos.in
      payload: '{{"id":"{{{{id}}}}"}}'
    outputs:
{outputs}"""


class Proc:
    """A child process, its output appended to a log file."""

    def __init__(self, name, argv, logfile, env=None):
        self.name, self.argv, self.logfile, self.env = name, argv, logfile, env
        self.p = None

    def start(self):
        f = open(self.logfile, "a")
        self.p = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT,
                                  env=self.env, start_new_session=True)

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig, wait=30):
        if not self.alive():
            return
        self.p.send_signal(sig)
        try:
            self.p.wait(wait)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Chaos:
    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.rng = random.Random(args.seed)
        self.bootstrap = args.bootstrap
        self.listen = f"127.0.0.1:{free_port()}"
        self.cfg = os.path.join(self.out, "slaprobe.yaml")
        self.control = os.path.join(self.out, "stage-control.json")
        self.control_seq = 0
        self.injected = collections.Counter()
        self.pending = []  # (when, what, arg): undo actions
        self.broker_down = None
        self.with_out2 = False
        self.out2_added_at = None
        env = dict(os.environ, RUST_LOG="info,slaprobe::canary=debug", NO_COLOR="1")
        self.slaprobe = Proc("slaprobe", [args.slaprobe, "run", "-c", self.cfg],
                             os.path.join(self.out, "slaprobe.log"), env)
        self.stage = Proc("stage", [sys.executable, os.path.join(CLIENTS, "chaos_stage.py"),
                                    self.bootstrap, "chaos.in", "chaos.out,chaos.out2",
                                    self.control, os.path.join(self.out, "stage.jsonl"),
                                    "slaprobe-chaos-stage"],
                          os.path.join(self.out, "stage.log"))
        self.stop_file = os.path.join(self.out, "truth.stop")
        self.truth = Proc("truth", [sys.executable, os.path.join(CLIENTS, "chaos_truth.py"),
                                    self.bootstrap, ",".join(TOPICS), self.stop_file,
                                    os.path.join(self.out, "truth.jsonl")],
                          os.path.join(self.out, "truth.log"))
        self.faults = []  # (t, what) as injected, for the table
        self.kills = []  # when slaprobe was killed (SIGKILL)
        self.moves = []  # [from, to] while partition leaders moved (to: None until known)

    # -- set-up ---------------------------------------------------------

    def create_topics(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        fs = admin.create_topics([NewTopic(t, n, 3) for t, n in TOPICS.items()])
        for t, f in fs.items():
            try:
                f.result(60)
            except Exception as e:  # already there from an earlier try
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise

    def write_config(self):
        with open(self.cfg + ".tmp", "w") as f:
            f.write(config(self.bootstrap, self.out, self.listen, self.with_out2))
        os.rename(self.cfg + ".tmp", self.cfg)

    def set_control(self, **kw):
        self.control_seq += 1
        kw["seq"] = self.control_seq
        with open(self.control + ".tmp", "w") as f:
            json.dump(kw, f)
        os.rename(self.control + ".tmp", self.control)

    # -- faults -----------------------------------------------------------

    def note(self, what):
        self.injected[what.split(" ")[0]] += 1
        self.faults.append((time.time(), what))
        log(what)

    def cluster(self, *args):
        subprocess.run(["bash", CLUSTER, args[0], self.args.kafka_dir, *map(str, args[1:])],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def later(self, seconds, what, arg=None):
        self.pending.append((time.time() + seconds, what, arg))

    def undo_due(self, force=False):
        now = time.time()
        keep = []
        for when, what, arg in self.pending:
            if not force and when > now:
                keep.append((when, what, arg))
                continue
            if what == "broker_up":
                self.cluster("node", arg)
                self.broker_down = None
                self.moves[-1][1] = time.time() + MOVE_SETTLE
                log(f"broker {arg} restarted")
            elif what == "slaprobe_up":
                self.slaprobe.start()
                log("slaprobe started")
            elif what == "stage_up":
                self.stage.start()
                log("stage started")
            elif what == "unstall":
                self.set_control(stall=False)
                log("stage resumed")
        self.pending = keep

    def busy(self, what):
        return any(w == what for _, w, _ in self.pending)

    def inject(self):
        r = self.rng
        choices = ["broker_kill", "election", "slaprobe_kill", "slaprobe_term",
                   "stage_stall", "stage_kill", "stage_drop", "stage_dup", "stage_reorder"]
        what = r.choice(choices)
        if what == "broker_kill" and self.broker_down is None:
            n = r.randint(1, 3)
            self.cluster("kill", n)
            self.broker_down = n
            self.moves.append([time.time(), None])
            self.note(f"broker_kill node {n} (SIGKILL)")
            self.later(r.uniform(3, 15), "broker_up", n)
        elif what == "election" and self.broker_down is None:
            subprocess.run([sys.executable, os.path.join(CLIENTS, "kafka_admin.py"),
                            self.bootstrap, "elect", r.choice(list(TOPICS))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.moves.append([time.time(), time.time() + MOVE_SETTLE])
            self.note("election (preferred leaders)")
        elif what in ("slaprobe_kill", "slaprobe_term") and not self.busy("slaprobe_up"):
            sig = signal.SIGKILL if what == "slaprobe_kill" else signal.SIGTERM
            if sig == signal.SIGKILL:
                self.kills.append(time.time())
            self.slaprobe.signal(sig)
            down = r.uniform(1, 5)
            self.note(f"{what} ({sig.name}), down {down:.1f} s")
            self.later(down, "slaprobe_up")
        elif what == "stage_stall" and not self.busy("unstall"):
            stall = r.uniform(2, 20)
            self.set_control(stall=True)
            self.note(f"stage_stall {stall:.1f} s (deadline {DEADLINE:.0f} s)")
            self.later(stall, "unstall")
        elif what == "stage_kill" and not self.busy("stage_up"):
            self.stage.signal(signal.SIGKILL)
            down = r.uniform(1, 8)
            self.note(f"stage_kill (SIGKILL), down {down:.1f} s")
            self.later(down, "stage_up")
        elif what in ("stage_drop", "stage_dup", "stage_reorder"):
            n = r.randint(1, 4)
            self.set_control(stall=self.busy("unstall"), **{what.split("_")[1]: n})
            self.note(f"{what} {n} canaries")

    def add_output(self):
        self.with_out2 = True
        self.write_config()
        self.slaprobe.signal(signal.SIGTERM)
        self.slaprobe.start()
        self.out2_added_at = time.time()
        self.note("output_added out2 (config change, SIGTERM and restart)")

    # -- the run ----------------------------------------------------------

    def run(self):
        log(f"seed {self.args.seed}, {self.args.seconds} s of faults; "
            f"replay: scripts/chaos.sh --seed {self.args.seed} --seconds {self.args.seconds}")
        self.create_topics()
        self.write_config()
        self.set_control(stall=False)
        self.truth.start()
        self.stage.start()
        self.slaprobe.start()
        time.sleep(15)  # everything running, canaries flowing
        start = time.time()
        end = start + self.args.seconds
        next_fault = start + self.rng.uniform(6, 16)
        added = False
        while time.time() < end:
            self.undo_due()
            now = time.time()
            if not added and now >= start + self.args.seconds / 2 and not self.busy("slaprobe_up"):
                self.add_output()
                added = True
            elif now >= next_fault:
                self.inject()
                next_fault = now + self.rng.uniform(6, 16)
            for p in (self.slaprobe, self.stage):
                if not p.alive() and not self.busy(p.name + "_up"):
                    raise SystemExit(f"{p.name} exited on its own: see {p.logfile}")
            time.sleep(0.2)
        log("faults over; everything back, settling")
        self.undo_due(force=True)
        time.sleep(DEADLINE * 2 + 10)
        self.cut = time.time()
        self.slaprobe.signal(signal.SIGTERM)
        open(self.stop_file, "w").close()
        self.truth.p.wait(300)
        self.stage.signal(signal.SIGTERM, wait=10)
        with open(os.path.join(self.out, "meta.json"), "w") as f:
            json.dump({"seed": self.args.seed, "seconds": self.args.seconds, "cut": self.cut,
                       "out2_added_at": self.out2_added_at, "kills": self.kills, "moves": self.moves,
                       "injected": dict(self.injected)}, f)
        return self.compare()

    # -- the comparison ---------------------------------------------------

    def reported(self):
        """(probe, output, id) -> Counter of outcomes from slaprobe's log.

        Each process (from its "slaprobe listening" line) reports on its
        own; a canary's count of an outcome is the most any one process
        reported. After a kill -9 the next process resumes from the last
        save (every second) and reads again what the killed one read after
        it: it judges those canaries again, from scratch, and its judgement
        stands (the killed process's counters went with it)."""
        line = re.compile(r"slaprobe::canary.*?probe=(\S+) output=(\S+) id=(\S+) outcome=\"?(\w+)")
        per_process = []
        with open(self.slaprobe.logfile, errors="replace") as f:
            for l in f:
                if "slaprobe listening on" in l or not per_process:
                    per_process.append(collections.defaultdict(collections.Counter))
                m = line.search(l)
                if m:
                    per_process[-1][(m.group(1), m.group(2), m.group(3))][m.group(4)] += 1
        got = collections.defaultdict(collections.Counter)
        for process in per_process:
            for key, outcomes in process.items():
                got[key] |= outcomes  # the larger count of each
        return got

    def compare(self):
        records = collections.defaultdict(list)  # topic -> [record]
        with open(os.path.join(self.out, "truth.jsonl")) as f:
            for l in f:
                r = json.loads(l)
                records[r["topic"]].append(r)
        reported = self.reported()
        sent = {}  # (probe, id) -> sent ms, from the input topics
        for topic, probe in (("chaos.hb", "hb"), ("chaos.in", "pipe")):
            for r in records[topic]:
                if r["sent_ns"]:
                    sent.setdefault((probe, r["id"]), r["sent_ns"] / 1e6)
        outputs = [("hb", "heartbeat", "chaos.hb", None), ("pipe", "out", "chaos.out", None)]
        if self.out2_added_at:
            outputs.append(("pipe", "out2", "chaos.out2", self.out2_added_at))
        cut_ms = (self.cut - DEADLINE - 3) * 1000
        # Arrivals written after slaprobe stopped are the truth's alone;
        # those within CUT_MARGIN of its stop are not judged.
        stop_ms = self.cut * 1000
        fields = ["delivered", "lost", "late", "duplicate", "out_of_order", "abandoned",
                  "failed_arrived", "uncertain", "unsaved", "unsettled"]
        # Sent in the last save period before a kill -9: the next process
        # cannot know whether they were sent (README, "Restarts"), so one
        # that never arrives has no outcome; they are counted apart.
        unsaved_window = [(k * 1000 - SAVE_PERIOD * 1000, k * 1000) for k in self.kills]
        moving = [(a * 1000, (b or self.cut) * 1000) for a, b in self.moves]
        table, mismatches = [], []
        for probe, output, topic, since in outputs:
            truth_n = collections.Counter()
            rep_n = collections.Counter()
            by_id = collections.defaultdict(list)
            for r in records[topic]:
                if r["id"].startswith(probe + "/"):
                    by_id[r["id"]].append(r)
            # Out of order, the way slaprobe judges it: per output partition
            # in offset order, a first arrival with a lower seq than an
            # earlier first arrival of the same run and input partition.
            ooo = set()
            highest = {}
            firsts = set()
            for r in sorted(records[topic], key=lambda r: (r["partition"], r["offset"])):
                cid = r["id"]
                if not cid.startswith(probe + "/") or cid in firsts:
                    continue
                firsts.add(cid)
                _, run, part, seq = cid.rsplit("/", 3)
                key = (r["partition"], run, part)
                if highest.get(key, -1) > int(seq):
                    ooo.add(cid)
                highest[key] = max(highest.get(key, -1), int(seq))
            for (p, cid), sent_ms in sent.items():
                if p != probe:
                    continue
                if since is not None and sent_ms < since * 1000 + 2000:
                    continue  # sent before the output existed
                outs = reported.get((probe, output, cid), collections.Counter())
                if sent_ms > cut_ms:
                    truth_n["unsettled"] += 1
                    continue
                if "abandoned" in outs:
                    truth_n["abandoned"] += 1
                    rep_n["abandoned"] += 1
                    continue
                arrivals = sorted(by_id.get(cid, []), key=lambda r: r["read_ms"])
                if any(abs(a["read_ms"] - stop_ms) < CUT_MARGIN * 1000 for a in arrivals):
                    truth_n["uncertain"] += 1
                    continue
                arrivals = [a for a in arrivals if a["read_ms"] < stop_ms]
                if not arrivals and not +outs and any(lo <= sent_ms <= hi for lo, hi in unsaved_window):
                    truth_n["unsaved"] += 1
                    continue
                if outs["produce_failed"] or outs["unacknowledged"]:
                    # Its produce failed (or was never reported), yet the
                    # cluster wrote it: each arrival is counted as such,
                    # never as a delivery, loss or duplicate.
                    t = collections.Counter(failed_arrived=len(arrivals))
                    r = collections.Counter(failed_arrived=outs["failed_but_arrived"])
                    truth_n.update(t)
                    rep_n.update(r)
                    if +t != +r:
                        mismatches.append((probe, output, cid, dict(+t), dict(outs)))
                    continue
                # When it became readable: the truth's read time (a record
                # appended is readable once its partition's replicas have it,
                # which a dead replica delays for seconds).
                latency = (arrivals[0]["read_ms"] - sent_ms) / 1000 if arrivals else None
                band = UNCERTAIN
                if arrivals and any(lo <= arrivals[0]["read_ms"] <= hi for lo, hi in moving):
                    band = UNCERTAIN_MOVING
                if latency is not None and abs(latency - DEADLINE) < band:
                    truth_n["uncertain"] += 1
                    continue
                t = collections.Counter()
                if latency is None:
                    t["lost"] = 1
                elif latency < DEADLINE:
                    t["delivered"] = 1
                else:
                    t["lost"] = t["late"] = 1
                t["duplicate"] = max(0, len(arrivals) - 1)
                t["out_of_order"] = int(cid in ooo and t["delivered"] == 1)
                r = collections.Counter()
                for o, n in outs.items():
                    if o == "delivered":
                        r["delivered"] += n
                    elif o == "delivered_out_of_order":
                        r["delivered"] += n
                        r["out_of_order"] += n
                    elif o in ("lost", "late", "duplicate"):
                        r[o] += n
                truth_n.update(t)
                rep_n.update(r)
                if +t != +r:
                    mismatches.append((probe, output, cid, dict(+t), dict(outs)))
            table.append((f"{probe}/{output}", truth_n, rep_n))
        self.print_table(table, fields)
        kinds = collections.Counter((f"{m[0]}/{m[1]}", str(m[3]), str(m[4])) for m in mismatches)
        for (output, t, r), n in kinds.most_common():
            print(f"  {n} x {output}: truth {t}, slaprobe said {r}")
        with open(os.path.join(self.out, "mismatches.txt"), "w") as f:
            for m in mismatches:
                f.write(f"{m[0]}/{m[1]} {m[2]}: truth {m[3]}, slaprobe said {m[4]}\n")
        for m in mismatches[:10]:
            print(f"  MISMATCH {m[0]}/{m[1]} {m[2]}: truth {m[3]}, slaprobe said {m[4]}")
        if mismatches:
            print(f"  (all {len(mismatches)} in {self.out}/mismatches.txt)")
        print(f"result: {len(mismatches)} canaries where slaprobe and the truth differ "
              f"(seed {self.args.seed})")
        return 1 if mismatches else 0

    def print_table(self, table, fields):
        print("\nfaults injected:")
        for what, n in sorted(self.injected.items()):
            print(f"  {what:16} {n}")
        actions = collections.Counter()
        try:
            with open(os.path.join(self.out, "stage.jsonl")) as f:
                for l in f:
                    actions[json.loads(l)["action"]] += 1
        except (OSError, ValueError):
            pass
        print("\nthe stage's own log (canaries): " + ", ".join(
            f"{a} {actions[a]}" for a in ("forward", "drop", "dup", "reorder")))
        print("\ntruth vs slaprobe, per output:")
        print(f"  {'output':14}" + "".join(f"{f:>15}" for f in fields))
        for name, t, r in table:
            print(f"  {name:14}" + "".join(
                f"{(str(t[f]) + ('/' + str(r[f]) if f not in ('uncertain', 'unsaved', 'unsettled') else '')):>15}"
                for f in fields))
        print("  (each cell: truth/slaprobe; uncertain, unsaved and unsettled are not compared)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap")
    p.add_argument("--kafka-dir")
    p.add_argument("--slaprobe")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--seconds", type=int, default=180)
    p.add_argument("--compare-only", action="store_true",
                   help="judge the run already in --out again (after a change to the comparison)")
    args = p.parse_args()
    if args.compare_only:
        with open(os.path.join(args.out, "meta.json")) as f:
            meta = json.load(f)
        args.seed, args.seconds = meta["seed"], meta["seconds"]
        c = Chaos(args)
        c.cut, c.out2_added_at = meta["cut"], meta["out2_added_at"]
        c.kills = meta.get("kills", [])
        c.injected.update(meta["injected"])
        sys.exit(c.compare())
    missing = [a for a in ("bootstrap", "kafka_dir", "slaprobe") if getattr(args, a) is None]
    if missing:
        p.error("a run needs --" + ", --".join(m.replace("_", "-") for m in missing))
    if args.seed is None:
        args.seed = random.SystemRandom().randint(1, 2**31)
    c = Chaos(args)
    try:
        code = c.run()
    finally:
        for proc in (c.slaprobe, c.stage, c.truth):
            proc.signal(signal.SIGKILL, wait=10)
    sys.exit(code)


if __name__ == "__main__":
    main()
