"""`axds jobs run`: 8 worker processes over 200 jobs (argv[2]; fewer in the sanitizer builds); one worker is killed with SIGKILL in the middle of a job, its job
is reclaimed by the pid rule and rerun; every job ends SUCCEEDED and ran to success exactly once. Also the usage
errors and `jobs status`/`jobs reclaim` on a local tracker."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "slurm"))
from jobs_common import axds, check, job_id, markers, read_tracker, write_tracker  # noqa: E402

AXDS = sys.argv[1]
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 200  # the sanitizer builds (several times slower) run fewer

# One job ("slow") sleeps on its first run until its worker is killed (the sleep is the worker's direct child, so
# PR_SET_PDEATHSIG ends it with the worker: a grandchild would keep our stdout pipe open); every run that reaches the end appends a line
# to markers/<job id>, so a job that ran twice to success would show two lines.
SCRIPT = r"""
if [ "$AXDS_JOB_SPECIFIER" = slow ] && [ ! -e "$1/slow.started" ]; then
  touch "$1/slow.started"; exec sleep 60
fi
[ "$2" = "$AXDS_JOB_ID" ] || exit 9
echo "$AXDS_EXECUTOR_ID" >> "$1/markers/$AXDS_JOB_ID"
"""


def no_worker_started(tmp):
    """A run that can fork no worker (a process limit) exits 1 and says so: it exited 0 with every job still SCHEDULED,
    so a batch task reported success having run nothing (found by a hostile-user run). RLIMIT_NPROC does not bind
    root: the run is made as nobody, where the test runs as root (CI); skipped otherwise."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("prlimit"):
        print("no worker started: SKIPPED (needs root, setpriv and prlimit)")
        return
    if JOBS < 200:  # the sanitizer builds: LeakSanitizer needs a thread of its own at exit, which the limit refuses
        print("no worker started: SKIPPED (sanitizer build)")
        return
    os.chmod(tmp, 0o711)  # nobody reaches the tracker through it
    limited = os.path.join(tmp, "nproc")
    os.mkdir(limited)
    os.chmod(limited, 0o777)
    tracker = os.path.join(limited, "t.yaml")
    write_tracker(tracker, [("session", "a"), ("session", "b")])
    os.chmod(tracker, 0o666)
    result = subprocess.run(["prlimit", "--nproc=1", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             AXDS, "jobs", "run", tracker, "--workers", "1", "--", "true"],
                            capture_output=True, text=True, timeout=60)
    states = [job["status"] for job in read_tracker(tracker).values()]
    check(result.returncode == 1 and "no worker process could be started" in result.stderr
          and states == [0, 0], f"jobs run with no worker forked: {result} {states}")


def main():
    # tmpfs when there is one: the test is about the runner, not about fsync latency on a loaded disk.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        tracker = os.path.join(tmp, "tracker.yaml")
        jobs = [("session", "slow")] + [("session", str(i)) for i in range(JOBS - 1)]  # slow is claimed first
        write_tracker(tracker, jobs)
        os.mkdir(os.path.join(tmp, "markers"))

        for bad in (["jobs"], ["jobs", "--bogus"], ["jobs", "run", tracker], ["jobs", "run", tracker, "--"], ["jobs", "frob", tracker],
                    ["jobs", "run", tracker, "--workers", "0", "--", "true"], ["jobs", "submit", tracker, "--", "x"],
                    ["jobs", "status"]):
            result = axds(AXDS, *bad)
            check(result.returncode == 2 and "usage" in result.stderr, f"usage error for {bad}: {result}")
        # --workers is bounded (it forked up to 100000 processes), and a misspelled placeholder is refused up front
        # (it was passed to every job as it was): both before the tracker is touched.
        before = read_tracker(tracker)
        for bad, named in ((["--", "echo", "ROOT/{specfier}"], "unknown placeholder '{specfier}'"),
                           (["--", "awk", "{print $1}"], "'{{' for '{'"),
                           (["--workers", "1025", "--", "true"], "from 1 to 1024"),
                           (["--workers", "100000", "--", "true"], "from 1 to 1024")):
            result = axds(AXDS, "jobs", "run", tracker, "-q", *bad, timeout=60)
            check(result.returncode == 2 and named in result.stderr, f"refused {bad}: {result}")
        result = axds(AXDS, "jobs", "submit", tracker, "--array-size", "2", "--workers-per-task", "5000", "--", "true")
        check(result.returncode == 2 and "from 1 to 1024" in result.stderr, f"--workers-per-task bound: {result}")
        result = axds(AXDS, "jobs", "submit", tracker, "--array-size", "2", "--", "x", "{job}")
        check(result.returncode == 2 and "unknown placeholder '{job}'" in result.stderr, f"submit template: {result}")
        # a directory as the command is refused before any job is claimed (each job failed "Permission denied")
        result = axds(AXDS, "jobs", "run", tracker, "--", tmp)
        check(result.returncode == 1 and "it is a directory" in result.stderr, f"a directory as the command: {result}")
        check(read_tracker(tracker) == before, "nothing claimed by a refused run")
        missing = axds(AXDS, "jobs", "status", os.path.join(tmp, "none.yaml"))
        check(missing.returncode == 1 and "does not exist" in missing.stderr, f"missing tracker: {missing}")
        # a directory or a FIFO is said to be what it is, not "does not exist" (found by a hostile-user run)
        os.mkdir(os.path.join(tmp, "dir.yaml"))
        os.mkfifo(os.path.join(tmp, "fifo.yaml"))
        for odd in ("dir.yaml", "fifo.yaml"):
            for sub in ("status", "reclaim"):
                result = axds(AXDS, "jobs", sub, os.path.join(tmp, odd), timeout=30)
                check(result.returncode == 1 and "not a regular file" in result.stderr, f"jobs {sub} {odd}: {result}")
        # a dangling link (a share not mounted yet) is said to be one; jobs has no --create to offer
        os.symlink(os.path.join(tmp, "unmounted", "t.yaml"), os.path.join(tmp, "link.yaml"))
        result = axds(AXDS, "jobs", "status", os.path.join(tmp, "link.yaml"))
        check(result.returncode == 1 and "a symbolic link to a file that does not exist" in result.stderr
              and "--create" not in result.stderr and not os.path.exists(os.path.join(tmp, "unmounted")),
              f"jobs status on a dangling link: {result}")
        check(axds(AXDS, "jobs", "--help").returncode == 0, "jobs --help")
        no_worker_started(tmp)

        start = time.monotonic()
        proc = subprocess.Popen([AXDS, "jobs", "run", tracker, "--workers", "8", "--json", "--", "sh", "-c", SCRIPT,
                                 "sh", tmp, "{job_id}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        slow = job_id("session", "slow")
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(tmp, "slow.started")):
            check(time.monotonic() < deadline and proc.poll() is None, "the slow job never started")
            time.sleep(0.01)
        executor = read_tracker(tracker)[slow]["executor_id"]
        check(executor.startswith("pid:") and "@" in executor, f"worker executor id {executor}")
        worker = int(executor[4:executor.index("@")])
        check(worker != proc.pid, "the job runs in a worker process, not the parent")
        os.kill(worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=150)
        elapsed = time.monotonic() - start
        check(proc.returncode == 0, f"jobs run exit {proc.returncode}: {err}")
        report = json.loads(out)
        check(report["workers_killed"] == 1 and report["reclaimed"] == [slow], f"report {report}")
        check(report["succeeded"] == JOBS and report["failed"] == 0, f"report {report}")
        check("reclaimed job " + slow in err and "killed by signal 9" in err, f"stderr {err}")

        final = read_tracker(tracker)
        check(all(job["status"] == 2 for job in final.values()), "every job SUCCEEDED")
        check(all(job["error_message"] is None and job["completed_at"] >= job["started_at"] for job in final.values()),
              "clean records")
        counts = markers(os.path.join(tmp, "markers"))
        check(len(counts) == JOBS and set(counts.values()) == {1}, f"exactly once: {sorted(counts.values())[-3:]}")
        check(final[slow]["executor_id"] != executor, "the slow job reran under another worker")

        # A failing command: the job is FAILED with the exit status; status and reclaim on a local tracker.
        write_tracker(tracker, [("fails", "x")])
        result = axds(AXDS, "jobs", "run", tracker, "-q", "--", "sh", "-c", "echo broken input >&2; exit 4")
        check(result.returncode == 1, f"a failed job makes jobs run exit 1: {result}")
        # -q drops the summary but still says that jobs failed (it exited 1 in silence)
        check("1 of 1 jobs failed" in result.stderr and result.stdout == "", f"-q with a failed job: {result}")
        job = read_tracker(tracker)[job_id("fails", "x")]
        check(job["status"] == 3 and "exited with status 4" in job["error_message"] and
              "broken input" in job["error_message"], f"failed job {job}")
        status = json.loads(axds(AXDS, "jobs", "status", tracker, "--json").stdout)
        check(status["summary"]["failed"] == 1 and status["running"] == [], f"status {status}")
        reclaim = json.loads(axds(AXDS, "jobs", "reclaim", tracker, "--json").stdout)
        check(reclaim == {"reclaimed": [], "kept": []}, f"reclaim {reclaim}")

        # --json: stdout is the result alone, the commands' own output goes to stderr (it was mixed into stdout).
        # Never more workers than SCHEDULED jobs (8 asked, 1 job: 1 worker; it forked all 8).
        write_tracker(tracker, [("talks", "x")])
        result = axds(AXDS, "jobs", "run", tracker, "--json", "--workers", "8", "--", "sh", "-c",
                      "echo hello from {job_name}")
        check(result.returncode == 0 and json.loads(result.stdout)["succeeded"] == 1, f"--json result: {result}")
        check(json.loads(result.stdout)["workers"] == 1, f"one worker for one job: {result.stdout}")
        check("hello from talks" in result.stderr, f"the command's output on stderr: {result}")

        # A job that kills its worker in every round stays SCHEDULED: the run must say so and exit 1 (it exited 0).
        write_tracker(tracker, [("deadly", "s1"), ("fine", "s2")])
        result = axds(AXDS, "jobs", "run", tracker, "-q", "--workers", "2", "--", "sh", "-c",
                      "[ {specifier} = s1 ] && kill -9 $PPID; true")
        check(result.returncode == 1, f"a job that kills every worker makes jobs run exit 1: {result}")
        check(f"job {job_id('deadly', 's1')} is unfinished" in result.stderr, f"named: {result.stderr}")
        final = read_tracker(tracker)
        check(final[job_id("deadly", "s1")]["status"] == 0 and final[job_id("fine", "s2")]["status"] == 2,
              f"states {final}")
        print(f"jobs run: {JOBS} jobs on 8 workers with one worker killed: {elapsed:.1f} s")


main()
