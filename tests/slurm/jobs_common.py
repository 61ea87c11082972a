"""Helpers for the `axds jobs` tests: trackers written and read by the original library's format rules (PyYAML)."""
import os
import subprocess
import sys

import xxhash
import yaml


def job_id(name, specifier=""):
    text = f"{name}:{specifier}" if specifier else name
    return f"{xxhash.xxh64(text.encode(), seed=0).intdigest():016x}"


def write_tracker(path, jobs):
    """A tracker with every (name, specifier) SCHEDULED, as the Python ProcessingTracker writes it."""
    registry = {}
    for name, specifier in jobs:
        registry[job_id(name, specifier)] = {
            "job_name": name, "specifier": specifier, "status": 0, "executor_id": None,
            "error_message": None, "started_at": None, "completed_at": None}
    with open(path, "w") as f:
        yaml.dump({"jobs": registry}, f, Dumper=yaml.SafeDumper, explicit_start=True, explicit_end=True,
                  sort_keys=False, width=200)


def read_tracker(path):
    """The jobs mapping, checked against the original format's field rules."""
    with open(path) as f:
        document = yaml.safe_load(f)
    jobs = document["jobs"]
    for jid, job in jobs.items():
        assert len(jid) == 16 and jid == job_id(job["job_name"], job["specifier"]), jid
        assert list(job) == ["job_name", "specifier", "status", "executor_id", "error_message", "started_at",
                             "completed_at"], list(job)
        assert job["status"] in (0, 1, 2, 3), job
        for key in ("started_at", "completed_at"):
            assert job[key] is None or isinstance(job[key], int), job
    return jobs


def check(condition, what):
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def markers(directory):
    """job id -> number of successful runs (one line per run in markers/<id>)."""
    counts = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as f:
            counts[name] = len(f.read().splitlines())
    return counts


def axds(binary, *args, **kwargs):
    return subprocess.run([binary, *args], capture_output=True, text=True, **kwargs)
