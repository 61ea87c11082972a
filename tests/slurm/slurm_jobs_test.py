"""`axds jobs submit/status/reclaim` end to end on a real single-node SLURM cluster (tests/slurm/start-cluster.sh).

40 jobs over a 4-task array: one job fails on purpose (its first run only), one task is cancelled with scancel in the
middle of a job. `jobs status` shows that job's executor as gone (CANCELLED) and the task as CANCELLED; `jobs reclaim`
makes the job claimable; `axds tracker retry` and a second submit complete everything. The final tracker is read with
PyYAML by the original format's rules, and every job ran to success exactly once (marker files).

Exits 77 (ctest: skipped) with the reason when no cluster answers."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jobs_common import axds, check, job_id, markers, read_tracker, write_tracker  # noqa: E402

AXDS = sys.argv[1]

SCRIPT = r"""
case "$AXDS_JOB_SPECIFIER" in
  victim) if [ ! -e "$1/victim.started" ]; then touch "$1/victim.started"; sleep 120; fi;;
  bad) if [ ! -e "$1/bad.failed" ]; then touch "$1/bad.failed"; echo "bad input on purpose" >&2; exit 5; fi;;
esac
echo "$AXDS_EXECUTOR_ID" >> "$1/markers/$AXDS_JOB_ID"
"""


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def cluster_ready():
    if "SLURM_CONF" not in os.environ and os.path.exists("/tmp/axds-slurm/slurm.conf"):
        os.environ["SLURM_CONF"] = "/tmp/axds-slurm/slurm.conf"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        skip(f"no SLURM client or controller ({e}); start a cluster with tests/slurm/start-cluster.sh as root")
    if result.returncode != 0 or not result.stdout.strip():
        skip(f"no SLURM controller answers (sinfo: {result.stderr.strip()}); start tests/slurm/start-cluster.sh")


def wait_array_done(array, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = subprocess.run(["squeue", "-h", "-t", "all", "-j", array, "-o", "%T"], capture_output=True,
                                text=True).stdout.split()
        if states and all(s not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for s in states):
            return states
        time.sleep(0.2)
    check(False, f"array {array} still running after {seconds} s")


def submit(tracker, tmp, tasks):
    result = axds(AXDS, "jobs", "submit", tracker, "--array-size", str(tasks), "--json",
                  f"--output={tmp}/slurm-%A_%a.out", "--", "sh", "-c", SCRIPT, "sh", tmp)
    check(result.returncode == 0, f"jobs submit: {result}")
    return json.loads(result.stdout)["array_id"]


def main():
    cluster_ready()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=os.environ.get("AXDS_SLURM_WORKDIR")) as tmp:
        tracker = os.path.join(tmp, "tracker.yaml")
        jobs = [("session", str(i)) for i in range(38)] + [("session", "bad"), ("session", "victim")]
        write_tracker(tracker, jobs)
        os.mkdir(os.path.join(tmp, "markers"))
        victim, bad = job_id("session", "victim"), job_id("session", "bad")

        first = submit(tracker, tmp, 4)
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(tmp, "victim.started")):
            check(time.monotonic() < deadline, "the victim job never started")
            time.sleep(0.05)
        executor = read_tracker(tracker)[victim]["executor_id"]
        check(executor.startswith("slurm:"), f"executor {executor}")
        cancelled = executor[len("slurm:"):]
        subprocess.run(["scancel", "--signal=KILL", cancelled], check=True)
        wait_array_done(first, 90)

        status = json.loads(axds(AXDS, "jobs", "status", tracker, "--json").stdout)
        check(status["summary"] == {"total": 40, "succeeded": 38, "failed": 1, "running": 1, "scheduled": 0},
              f"summary after the first array: {status['summary']}")
        check([(r["job_id"], r["executor"]) for r in status["running"]] == [(victim, "gone")] and
              "CANCELLED" in status["running"][0]["reason"], f"running view {status['running']}")
        # The task that ran the failing job exits 1 (FAILED); the cancelled one is CANCELLED; the others COMPLETED.
        states = sorted(t["state"] for t in status["scheduler"])
        check(len(states) == 4 and states.count("CANCELLED") == 1 and states.count("FAILED") == 1 and
              states.count("COMPLETED") == 2, f"scheduler view {status['scheduler']}")
        text = axds(AXDS, "jobs", "status", tracker).stdout
        check("GONE" in text and "CANCELLED" in text, f"status text {text}")

        reclaim = json.loads(axds(AXDS, "jobs", "reclaim", tracker, "--json").stdout)
        check([r["job_id"] for r in reclaim["reclaimed"]] == [victim], f"reclaim {reclaim}")
        check(read_tracker(tracker)[victim]["status"] == 0, "the cancelled task's job is SCHEDULED again")
        check(read_tracker(tracker)[bad]["status"] == 3 and "exited with status 5" in
              read_tracker(tracker)[bad]["error_message"], "the failing job is FAILED with its exit status")
        check(axds(AXDS, "tracker", "retry", tracker).returncode == 0, "tracker retry")

        second = submit(tracker, tmp, 2)
        wait_array_done(second, 90)
        final = read_tracker(tracker)
        check(all(job["status"] == 2 for job in final.values()), f"every job SUCCEEDED: {final}")
        check(all(job["executor_id"].startswith("slurm:") for job in final.values()), "slurm executor ids")
        counts = markers(os.path.join(tmp, "markers"))
        check(len(counts) == 40 and set(counts.values()) == {1}, f"exactly once: {counts}")
        done = json.loads(axds(AXDS, "jobs", "status", tracker, "--json").stdout)
        check(done["status"] == "completed" and done["running"] == [], f"final status {done}")
        print(f"SLURM end-to-end: 40 jobs, 2 arrays, 1 cancelled task: {time.monotonic() - start:.1f} s")


main()
