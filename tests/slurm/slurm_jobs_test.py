"""`axds jobs submit/status/reclaim` end to end on a real single-node SLURM cluster (tests/slurm/start-cluster.sh).

40 jobs over a 4-task array. One job fails on purpose (its first run only). One task is cancelled with scancel in
the middle of a job: its worker gets SIGTERM, kills the command and puts the job back (SCHEDULED, "interrupted"), and
the other tasks run it. Another task dies outright in the middle of a job (all its processes SIGKILLed, as the OOM
killer or a node failure does): its job stays RUNNING, `jobs status` shows its executor gone, `jobs reclaim` makes it
claimable. `axds tracker retry` and a second submit complete everything. The final tracker is read with PyYAML by
the original format's rules, and every job ran to success exactly once (marker files).

The interrupted runs `exec sleep`: a stopped command must not go on to write its marker. (A shell that survives the
kill of its `sleep` and writes the marker while its runner is being stopped has done the job's work; the runner
records it SUCCEEDED if it exited 0 before the stop reached it, but one still writing when the stop arrives is put
back and run again: interrupted jobs are run at least once, see docs/SAFETY.md. That race made this test flaky.)

Exits 77 (ctest: skipped) with the reason when no cluster answers."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jobs_common import axds, check, job_id, markers, read_tracker, write_tracker  # noqa: E402

AXDS = sys.argv[1]

SCRIPT = r"""
case "$AXDS_JOB_SPECIFIER" in
  victim|crash) if [ ! -e "$1/$AXDS_JOB_SPECIFIER.started" ]; then touch "$1/$AXDS_JOB_SPECIFIER.started"; exec sleep 120; fi;;
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
    if not os.path.exists(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")):
        skip("no slurm.conf (SLURM_CONF or /etc/slurm/slurm.conf); start a cluster with tests/slurm/start-cluster.sh "
             "as root")
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


def task_state(job):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%A %T"], capture_output=True, text=True)
    return dict(line.split() for line in out.stdout.splitlines()).get(job)


def task_name(job):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%A %i"], capture_output=True, text=True)
    return dict(line.split() for line in out.stdout.splitlines())[job]


def kill_task(job):
    """Every process of SLURM job `job` stopped, then SIGKILLed: nothing of it can react (an OOM kill, a node loss)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"SLURM_JOB_ID={job}".encode() in f.read().split(b"\0"):
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    check(pids, f"no process of SLURM job {job}")
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


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
        jobs = [("session", "victim"), ("session", "crash")] + [("session", str(i)) for i in range(37)]
        jobs.append(("session", "bad"))
        write_tracker(tracker, jobs)
        os.mkdir(os.path.join(tmp, "markers"))
        victim, crash, bad = job_id("session", "victim"), job_id("session", "crash"), job_id("session", "bad")

        first = submit(tracker, tmp, 4)
        deadline = time.monotonic() + 60
        while not all(os.path.exists(os.path.join(tmp, f"{n}.started")) for n in ("victim", "crash")):
            check(time.monotonic() < deadline, "the victim and crash jobs never started")
            time.sleep(0.05)
        registry = read_tracker(tracker)
        cancelled = registry[victim]["executor_id"].removeprefix("slurm:")
        crashed = registry[crash]["executor_id"].removeprefix("slurm:")
        check(cancelled.isdigit() and crashed.isdigit() and cancelled != crashed, f"executors {registry}")
        # By its array task name: the last task's job ID is also the array's ID, and `scancel ID` would cancel all.
        subprocess.run(["scancel", task_name(cancelled)], check=True)
        kill_task(crashed)
        wait_array_done(first, 90)

        status = json.loads(axds(AXDS, "jobs", "status", tracker, "--json").stdout)
        summary = status["summary"]
        check(summary["total"] == 40 and summary["failed"] == 1 and summary["running"] == 1, f"summary {summary}")
        check([(r["job_id"], r["executor"]) for r in status["running"]] == [(crash, "gone")],
              f"running view {status['running']}")
        check(task_state(cancelled) == "CANCELLED" and task_state(crashed) in ("FAILED", "CANCELLED"),
              f"task states {task_state(cancelled)} {task_state(crashed)}")
        check(len(status["scheduler"]) == 4 and "CANCELLED" in [t["state"] for t in status["scheduler"]],
              f"scheduler view {status['scheduler']}")
        registry = read_tracker(tracker)
        check(registry[victim]["status"] == 2 or (registry[victim]["status"] == 0 and
                                                  "interrupted" in registry[victim]["error_message"]),
              f"the cancelled task's job was put back (and maybe rerun): {registry[victim]}")
        text = axds(AXDS, "jobs", "status", tracker).stdout
        check("GONE" in text and "CANCELLED" in text, f"status text {text}")

        reclaim = json.loads(axds(AXDS, "jobs", "reclaim", tracker, "--json").stdout)
        check([r["job_id"] for r in reclaim["reclaimed"]] == [crash], f"reclaim {reclaim}")
        registry = read_tracker(tracker)
        check(registry[crash]["status"] == 0 and registry[crash]["error_message"].startswith("reclaimed: "),
              f"the killed task's job is SCHEDULED again: {registry[crash]}")
        check(registry[bad]["status"] == 3 and "exited with status 5" in registry[bad]["error_message"],
              "the failing job is FAILED with its exit status")
        check(axds(AXDS, "tracker", "retry", tracker).returncode == 0, "tracker retry")

        second = submit(tracker, tmp, 2)
        wait_array_done(second, 90)
        final = read_tracker(tracker)
        check(all(job["status"] == 2 for job in final.values()), f"every job SUCCEEDED: {final}")
        check(all(job["executor_id"].startswith("slurm:") for job in final.values()), "slurm executor ids")
        counts = markers(os.path.join(tmp, "markers"))
        twice = {jid: open(os.path.join(tmp, "markers", jid)).read().split() for jid, n in counts.items() if n != 1}
        check(len(counts) == 40 and not twice, f"exactly once: {len(counts)} jobs ran, more than once: {twice}, "
              f"tracker: {[final.get(jid) for jid in twice]}")
        done = json.loads(axds(AXDS, "jobs", "status", tracker, "--json").stdout)
        check(done["status"] == "completed" and done["running"] == [], f"final status {done}")
        print(f"SLURM end-to-end: 40 jobs, 2 arrays, 1 task cancelled, 1 task killed: {time.monotonic() - start:.1f} s")


main()
