#!/usr/bin/env python3
"""The fuzz driver catches what it promises to: one huge allocation and unbounded growth (the memory cap), a hang
(the per-input timeout), a wild write (a crash or sanitizer report), a bare std:: exception (a property failure). Each
must fail the run, print why, and save the input for --replay.

usage: harness_test.py AXDS_FUZZ WORKDIR
"""

import os
import subprocess
import sys
import tempfile

driver, workdir = sys.argv[1], sys.argv[2]
os.makedirs(workdir, exist_ok=True)
failures = 0

# case, what the report must say (any of; plain build or AddressSanitizer build), timeout for the input
cases = (("huge", ["std::bad_alloc", "allocation-size-too-big", "exceeds maximum supported size"], 60),
         ("grow", ["std::bad_alloc", "hard rss limit exhausted"], 120),
         ("hang", ["ran past the timeout"], 2),
         ("wild", ["crashed on this input", "died on this input"], 60),
         ("bare", ["a bare std:: exception"], 60))
for case, expected, timeout in cases:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        seed = os.path.join(tmp, "input")
        with open(seed, "w") as f:
            f.write(case)
        artifacts = os.path.join(tmp, "artifacts")
        # --replay is last; --artifacts and --timeout come before it.
        run = subprocess.run([driver, "harness_selftest", "--artifacts", artifacts, "--timeout", str(timeout), "--replay", seed],
                             capture_output=True, text=True, timeout=300)
        saved_files = os.listdir(artifacts) if os.path.isdir(artifacts) else []
        saved = os.path.join(artifacts, saved_files[0]) if len(saved_files) == 1 else os.path.join(artifacts, "none")
        ok = run.returncode != 0 and os.path.exists(saved) and open(saved).read() == case and "saved as" in run.stderr
        ok = ok and any(e in run.stderr for e in expected)
        print(f"{case}: exit {run.returncode}, input saved: {os.path.exists(saved)} -> {'ok' if ok else 'FAILED'}")
        if not ok:
            failures += 1
            print(run.stderr[-3000:])

# A clean input passes.
with tempfile.TemporaryDirectory(dir=workdir) as tmp:
    seed = os.path.join(tmp, "input")
    with open(seed, "w") as f:
        f.write("fine")
    run = subprocess.run([driver, "harness_selftest", "--replay", seed], capture_output=True, text=True, timeout=60)
    print(f"fine: exit {run.returncode} -> {'ok' if run.returncode == 0 else 'FAILED'}")
    failures += run.returncode != 0

sys.exit(1 if failures else 0)
