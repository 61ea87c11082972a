"""Drives the built `axds` binary on temporary trees (ctest: cli_tool). Usage: cli_test.py /path/to/axds"""
import json
import os
import pty
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

AXDS = sys.argv[1]
failures = []


def run(*args):
    result = subprocess.run([AXDS, *args], capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAILED:", what)


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w" if isinstance(content, str) else "wb") as f:
        f.write(content)


with tempfile.TemporaryDirectory() as tmp:
    # checksum: the Python library's golden digest (spec §9.1), saved unless --no-save
    flat = os.path.join(tmp, "flat")
    write(os.path.join(flat, "data.txt"), "payload")
    write(os.path.join(flat, ".gitignore"), "ignored")
    write(os.path.join(flat, "archive.tar.gz"), "compressed")
    code, out, _ = run("checksum", flat, "--no-save")
    check(code == 0 and out == "697ab93b2e5603ddc5ba5556a7f3954c\n", f"checksum --no-save: {code} {out!r}")
    check(not os.path.exists(os.path.join(flat, "ax_checksum.txt")), "--no-save wrote ax_checksum.txt")
    code, out, _ = run("checksum", flat, "--workers", "2")
    check(open(os.path.join(flat, "ax_checksum.txt")).read() == out.strip(), "checksum saved")
    code, out, _ = run("checksum", flat, "--no-save", "--json")
    result = json.loads(out) if code == 0 else {}
    check(result.get("checksum") == "697ab93b2e5603ddc5ba5556a7f3954c" and result.get("files") == 3
          and result.get("saved") is False, f"checksum --json: {out!r}")
    code, out, _ = run("checksum", flat, "--no-save", "--exclude", "data.txt")
    check(code == 0 and out.strip() != "697ab93b2e5603ddc5ba5556a7f3954c", "checksum --exclude")

    # progress: a bar with percentage, rate and timing on a terminal; nothing with --quiet or when not a terminal
    def run_on_tty(*args):
        master, slave = pty.openpty()
        proc = subprocess.Popen([AXDS, *args], stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            drawn += chunk
        os.close(master)
        return proc.wait(), proc.stdout.read().decode(), drawn.decode(errors="replace")

    code, out, drawn = run_on_tty("checksum", flat, "--no-save")
    check(code == 0 and "hashing [" in drawn and "100%" in drawn and "MB/s" in drawn and "files" in drawn,
          f"progress bar on a terminal: {drawn!r}")
    check(out.strip() == "697ab93b2e5603ddc5ba5556a7f3954c", "progress goes to stderr only")
    code, _, drawn = run_on_tty("checksum", flat, "--no-save", "--quiet")
    check(code == 0 and drawn == "", f"--quiet after the subcommand: {drawn!r}")
    code, _, drawn = run_on_tty("--quiet", "checksum", flat, "--no-save")
    check(code == 0 and drawn == "", f"--quiet before the subcommand: {drawn!r}")
    code, _, err = run("checksum", flat, "--no-save")
    check(code == 0 and err == "", f"no progress when stderr is not a terminal: {err!r}")

    # usage errors exit 2, operation failures exit 1 with a message
    check(run()[0] == 2, "no subcommand -> 2")
    check(run("checksum")[0] == 2, "missing DIR -> 2")
    check(run("bogus")[0] == 2, "unknown subcommand -> 2")
    check(run("checksum", flat, "--workers", "x")[0] == 2, "bad number -> 2")
    code, _, err = run("checksum", os.path.join(tmp, "missing"))
    check(code == 1 and err.startswith("axds: "), f"missing dir -> 1: {code} {err!r}")
    check(run("--help")[0] == 0, "--help -> 0")
    # `axds jobs` (handed to its own parser) is listed with the others, and a global -q before it reaches it.
    code, out, _ = run("--help")
    check(code == 0 and "\n  jobs " in out, f"--help lists jobs: {out}")
    code, _, err = run("bogus")
    check(code == 2 and ", jobs." in err, f"unknown subcommand lists jobs: {err!r}")

    # transfer (verified) and delete
    dest = os.path.join(tmp, "copy")
    code, _, err = run("transfer", flat, dest, "--verify", "--threads", "2")
    check(code == 0, f"transfer: {err}")
    check(run("checksum", dest, "--no-save")[1] == run("checksum", flat, "--no-save")[1], "transfer content")
    write(os.path.join(dest, "stray.txt"), "x")
    code, _, err = run("transfer", flat, dest)
    check(code == 1 and "does not account for" in err, "dirty destination -> 1")
    code, out, err = run("transfer", flat, dest, "--reset-dirty-destination")
    check(code == 0 and "deleted 1 destination files the source lacks" in out and "stray.txt" in out,
          f"reset dirty destination names what it deleted: {code} {out!r} {err!r}")
    write(os.path.join(dest, "stray2.txt"), "x")
    code, out, _ = run("transfer", flat, dest, "--reset-dirty-destination", "--json")
    strays = json.loads(out).get("strays_removed") if code == 0 else None
    check(strays is not None and len(strays) == 1 and strays[0].endswith("stray2.txt"),
          f"transfer --json lists strays_removed: {out!r}")
    dest2 = os.path.join(tmp, "copy2")
    code, out, err = run("transfer", flat, dest2, "--json")
    result = json.loads(out) if code == 0 else {}
    flat_sizes = [os.path.getsize(os.path.join(flat, n)) for n in os.listdir(flat)]
    check(result.get("files") == len(flat_sizes) and result.get("bytes") == sum(flat_sizes)
          and result.get("verified") is False and result.get("source_removed") is False, f"transfer --json: {out!r}")
    code, out, _ = run("delete", dest2, "--json")
    check(code == 0 and json.loads(out).get("deleted") == dest2 and not os.path.exists(dest2), f"delete --json: {out}")
    check(run("delete", dest)[0] == 0 and not os.path.exists(dest), "delete")
    # With --json a failure is a JSON object on stdout too (stdout was empty: a script's json.loads failed on it).
    missing = os.path.join(tmp, "no_such_dir")
    for args in (["transfer", missing, dest2, "--json"], ["checksum", missing, "--json"], ["delete", missing, "--json"],
                 ["assemble", missing, "--json"]):
        code, out, err = run(*args)
        try:
            failure = json.loads(out)
        except ValueError:
            failure = {}
        check(code == 1 and missing in failure.get("error", "") and failure.get("cancelled") is False
              and missing in err, f"{args[0]} --json failure: {code} {out!r} {err!r}")
    check(run("delete", dest)[0] == 1, "delete of a missing path is an error in the CLI")

    # assemble + archive info on entries written by numpy's np.save
    logs = os.path.join(tmp, "rig_data_log")
    os.makedirs(logs)
    onset = 1_700_000_000_000_000
    np.save(os.path.join(logs, "001_00000000000000000000.npy"),
            np.concatenate([np.array([1, 0, 0, 0, 0, 0, 0, 0, 0], np.uint8),
                            np.array([onset], np.uint64).view(np.uint8)]))
    for t, size in ((10, 4), (25, 6), (40, 2)):
        data = np.concatenate([np.array([1], np.uint8), np.array([t], np.uint64).view(np.uint8),
                               np.full(size, 7, np.uint8)])
        np.save(os.path.join(logs, "001_%020d.npy" % t), data)
    logs2 = os.path.join(tmp, "second_data_log")
    os.makedirs(logs2)
    for name in os.listdir(logs):
        if name.endswith(".npy"):
            with open(os.path.join(logs, name), "rb") as src, open(os.path.join(logs2, name), "wb") as dst:
                dst.write(src.read())
    code, out, err = run("assemble", logs, "--verify")
    check(code == 0 and "4 entries" in out, f"assemble: {out} {err}")
    code, out, err = run("assemble", logs2, "--keep-sources", "-q")
    check(code == 0 and out == "" and os.path.exists(os.path.join(logs2, "1_log.npz")),
          f"assemble -q prints no summary: {out!r} {err!r}")
    code, out, err = run("assemble", logs2, "--keep-sources", "--json")
    result = json.loads(out) if code == 0 else {}
    check(result.get("archives") == [os.path.join(logs2, "1_log.npz")] and result.get("entries") == 4
          and result.get("removed") == 0 and len([n for n in os.listdir(logs2) if n.endswith(".npy")]) == 4,
          f"assemble --json: {out} {err}")
    archive = os.path.join(logs, "1_log.npz")
    code, out, err = run("archive", "info", archive, "--json")
    info = json.loads(out) if code == 0 else {}
    check(info.get("message_count") == 3 and info.get("onset_us") == onset and info.get("payload_bytes") == 12
          and info.get("first_us") == onset + 10 and info.get("last_us") == onset + 40,
          f"archive info --json: {out} {err}")
    code, out, _ = run("archive", "info", archive)
    check(code == 0 and "3 messages" in out and "2023-11-14T22:13:20" in out, f"archive info: {out}")
    check(run("archive", "info", os.path.join(tmp, "nope.npz"))[0] == 1, "missing archive -> 1")
    code, out, _ = run("archive", "dump", archive, "--json", "--limit", "2")
    rows = [json.loads(line) for line in out.splitlines()] if code == 0 else []
    check(len(rows) == 2 and rows[0] == {"timestamp_us": onset + 10, "size": 4, "payload_hex": "07070707"},
          f"archive dump --json: {out}")
    code, out, _ = run("archive", "dump", archive, "--keys", "001_00000000000000000040")
    check(code == 0 and out.split() == [str(onset + 40), "2", "B", "0707"], f"archive dump --keys: {out!r}")
    check(run("archive", "dump", archive, "--keys", "001_99")[0] == 1, "unknown key -> 1")

    # tracker show/summary/retry/reset on a file in the Python library's layout
    tracker = os.path.join(tmp, "tracker.yaml")
    write(tracker, "---\njobs:\n"
                   "  5a6ab48314d28f6b:\n    job_name: job_a\n    specifier: ''\n    status: 2\n"
                   "    executor_id: slurm:123\n    error_message: null\n    started_at: 1\n    completed_at: 2\n"
                   "  8a5429c706c96313:\n    job_name: process_plane\n    specifier: plane_0\n    status: 3\n"
                   "    executor_id: pid:8747\n    error_message: boom\n    started_at: 3\n    completed_at: 4\n...\n")
    code, out, err = run("tracker", "show", tracker, "--json")
    shown = json.loads(out) if code == 0 else {}
    check(len(shown.get("jobs", [])) == 2 and shown["status"] == "failed" and shown["summary"]["failed"] == 1
          and shown["jobs"][1]["error_message"] == "boom", f"tracker show --json: {out} {err}")
    code, out, _ = run("tracker", "summary", tracker)
    check(code == 0 and "2 jobs: 1 succeeded, 1 failed" in out, f"tracker summary: {out}")
    code, out, _ = run("-q", "jobs", "status", tracker)  # as `axds jobs status -q TRACKER`
    check(code == 0 and out.startswith("2 jobs: 1 succeeded, 1 failed"), f"-q jobs status: {code} {out}")
    code, out, _ = run("tracker", "retry", tracker)
    check(code == 0 and out.startswith("1 failed"), f"tracker retry: {out}")
    # reset is refused while a job is RUNNING (its worker could not record its end), unless --force
    running = os.path.join(tmp, "running.yaml")
    write(running, "---\njobs:\n  5a6ab48314d28f6b:\n    job_name: job_a\n    specifier: ''\n    status: 1\n"
                   "    executor_id: pid:4242@elsewhere\n    error_message: null\n    started_at: 1\n"
                   "    completed_at: null\n...\n")
    before = open(running).read()
    code, out, err = run("tracker", "reset", running)
    check(code == 1 and "RUNNING" in err and "pid:4242@elsewhere" in err and "--force" in err
          and open(running).read() == before, f"reset with a RUNNING job: {code} {out!r} {err!r}")
    code, out, err = run("tracker", "reset", running, "--force")
    check(code == 0 and out == "1 jobs removed\n" and open(running).read() == "---\njobs: {}\n...\n",
          f"reset --force: {code} {out!r} {err!r}")
    code, out, _ = run("tracker", "reset", tracker)
    check(code == 0 and out == "2 jobs removed\n" and open(tracker).read() == "---\njobs: {}\n...\n", "reset")
    check(run("tracker", "show", os.path.join(tmp, "none.yaml"))[0] == 1, "missing tracker -> 1")

    # Ctrl-C during a transfer that would remove its source: cancelled cleanly, exit 1, source intact.
    big = os.path.join(tmp, "big")
    count = 4000
    for i in range(count):
        write(os.path.join(big, "d%02d" % (i % 40), "f%05d.bin" % i), os.urandom(16384))
    target = os.path.join(tmp, "big_copy")
    proc = subprocess.Popen([AXDS, "transfer", big, target, "--verify", "--remove-source"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not (os.path.isdir(target) and any(os.scandir(target))):
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    left = sum(len([f for f in files if f != "ax_checksum.txt"]) for _, _, files in os.walk(big))
    copied = sum(len(files) for _, _, files in os.walk(target)) if os.path.isdir(target) else 0
    check(proc.returncode == 1 and "cancelled" in err and "the source is intact" in err,
          f"Ctrl-C transfer: {proc.returncode} {err!r}")
    check(left == count, f"Ctrl-C transfer left {left} of {count} source files")
    check(copied < count, f"Ctrl-C transfer did not stop early ({copied} copied)")

    # log serve: producer processes (here Python, through examples/python/axds_log_socket.py) log through the socket
    # until SIGINT; the logger drains, assembles verified archives, and numpy reads every message back.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python"))
    from axds_log_socket import LogSocketProducer

    served_dir = os.path.join(tmp, "served")
    os.makedirs(served_dir)
    proc = subprocess.Popen([AXDS, "log", "serve", served_dir, "rig", "--assemble", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = proc.stderr.readline()  # with --json the ready line goes to stderr: stdout is only the JSON result
    socket_path = os.path.join(served_dir, "rig.sock")
    check(ready.startswith("serving " + socket_path), f"log serve ready line: {ready!r}")
    producer_script = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from axds_log_socket import LogSocketProducer\n"
        "source = int(sys.argv[2])\n"
        "with LogSocketProducer(sys.argv[1]) as p:\n"
        "    p.log_onset(source)\n"
        "    for i in range(1, 3001):\n"
        "        p.log(source, i * 1000, np.full(24, (i + source) % 256, dtype=np.uint8))\n"
        "    print(p.close())\n")
    module_dir = sys.path[0]
    producers = [subprocess.Popen([sys.executable, "-c", producer_script, socket_path, str(source), module_dir],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for source in (1, 2)]
    results = [p.communicate(timeout=60) for p in producers]
    check(all(p.returncode == 0 and out.strip() == "3001" for p, (out, _) in zip(producers, results)),
          f"log serve producers: {results}")
    try:
        LogSocketProducer(os.path.join(served_dir, "nobody.sock"))
        check(False, "a producer connected to a missing socket")
    except ConnectionError as error:
        check("Expected `axds log serve`" in str(error), f"missing socket message: {error}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    result = json.loads(out) if proc.returncode == 0 else {}
    check(result.get("connections") == 2 and result.get("packages") == 6002 and result.get("entries_written") == 6002
          and result.get("dropped_connections") == 0 and len(result.get("archives", [])) == 2,
          f"log serve result: {proc.returncode} {out!r} {err!r}")
    check(not os.path.exists(socket_path), "log serve left its socket file")
    # Ctrl-C is how log serve ends: it says it is writing what it received, not that it is cancelling.
    check("everything received is being written" in err and "cancelling" not in err,
          f"log serve Ctrl-C notice: {err!r}")
    for source in (1, 2):
        archive = os.path.join(served_dir, "rig_data_log", f"{source}_log.npz")
        with np.load(archive) as z:
            keys = sorted(z.files)
            check(len(keys) == 3001, f"archive {source}: {len(keys)} members")
            good = all(
                z[key].tobytes() == bytes([source]) + (i * 1000).to_bytes(8, "little") + bytes([(i + source) % 256]) * 24
                for i, key in enumerate(keys[1:], start=1))
            check(good, f"archive {source}: messages differ from what the producer sent")
    not_a_socket = os.path.join(served_dir, "taken")
    write(not_a_socket, "mine")
    code, _, err = run("log", "serve", served_dir, "other", "--socket", not_a_socket)
    check(code == 1 and "a file that is not a socket is already there" in err and open(not_a_socket).read() == "mine",
          f"log serve on a regular file: {code} {err!r}")

print("failures:", len(failures))
sys.exit(1 if failures else 0)
