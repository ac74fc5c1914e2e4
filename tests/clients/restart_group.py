#!/usr/bin/env python3
"""A remediation command for slaprobe's `actions:` (tests/lag.rs): records
each run as a line `<group> <status> <attempt>` in RUNS, then "restarts" the
group's consumer: for a group whose name ends in `-revive` it starts
`lag_group.py keepup` for it in a session of its own (its pid appended to
RUNS.pids, for the test to kill); for any other group it does nothing (a
restart that does not help). The incident comes from slaprobe's
environment: SLAPROBE_GROUP, SLAPROBE_STATUS, SLAPROBE_ATTEMPT.
Usage: restart_group.py BOOTSTRAP TOPIC RUNS"""
import os
import subprocess
import sys


def main():
    bootstrap, topic, runs = sys.argv[1:4]
    group = os.environ["SLAPROBE_GROUP"]
    with open(runs, "a") as f:
        f.write("%s %s %s\n" % (group, os.environ["SLAPROBE_STATUS"], os.environ["SLAPROBE_ATTEMPT"]))
    if group.endswith("-revive"):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lag_group.py")
        child = subprocess.Popen(
            [sys.executable, script, bootstrap, "keepup", topic, group],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with open(runs + ".pids", "a") as f:
            f.write("%d\n" % child.pid)
    print("restarted" if group.endswith("-revive") else "nothing to restart", group)


if __name__ == "__main__":
    main()
