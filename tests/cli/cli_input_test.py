"""Hostile and odd input through the `axds` binary (ctest: cli_input): --json output always parses, whatever the
paths; human lines never reach stdout with --json; clear usage errors (naming the option name typed); archive info on
members out of time order and on a damaged local header; log serve run again under one name, and with a socket path
that cannot be served; a tracker whose job texts hold terminal escape sequences.
Usage: cli_input_test.py /path/to/axds"""
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

AXDS = os.path.abspath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))
from axds_log_socket import LogSocketProducer  # noqa: E402

failures = []
checks = 0


def run(*args, timeout=60):
    try:
        result = subprocess.run([AXDS, *args], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -9, b"", b"timed out"
    return result.returncode, result.stdout, result.stderr


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print("FAILED:", what)


def read_line(stream, timeout=15):
    """One line from a pipe, or what arrived before `timeout` seconds (never blocks forever)."""
    import select
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            break
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            break
        line += chunk
    return line.decode(errors="replace")


def parses(out):
    try:
        return json.loads(out.decode("utf-8"))  # strict: what Python's json accepts
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return error


with tempfile.TemporaryDirectory() as tmp:
    # 7. a path that is not valid UTF-8: --json still parses, and surrogateescape gives the bytes back.
    raw = os.fsencode(tmp) + b"/bad-\xff\xfe-name-\xc3(-\xed\xa0\x80"
    os.makedirs(raw)
    with open(raw + b"/data.bin", "wb") as f:
        f.write(b"payload")
    code, out, err = run(b"checksum", raw, b"--no-save", b"--json")
    result = parses(out)
    check(code == 0 and isinstance(result, dict), f"checksum --json on a non-UTF-8 path: {code} {out!r} {err!r}")
    if isinstance(result, dict):
        check(os.fsencode(result["directory"]) == raw, f"surrogateescape round trip: {result['directory']!r}")
    good = os.path.join(tmp, "ünïcödé ✓")
    os.makedirs(good)
    with open(os.path.join(good, "data.bin"), "wb") as f:
        f.write(b"payload")
    code, out, err = run("checksum", good, "--no-save", "--json")
    result = parses(out)
    check(isinstance(result, dict) and result.get("directory") == good, f"UTF-8 path kept as text: {out!r}")

    # 7. log serve --json: stdout is exactly one JSON object (the ready line goes to stderr).
    served = os.path.join(tmp, "served")
    os.makedirs(served)
    proc = subprocess.Popen([AXDS, "log", "serve", served, "rig", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    ready = read_line(proc.stderr)
    check(ready.startswith("serving "), f"log serve --json ready line on stderr: {ready!r}")
    if ready.startswith("serving "):
        with LogSocketProducer(os.path.join(served, "rig.sock")) as producer:
            producer.log_onset(1)
            producer.log(1, 5, np.arange(4, dtype=np.uint8))
            producer.close()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    result = parses(out)
    check(proc.returncode == 0 and isinstance(result, dict) and result.get("entries_written") == 2,
          f"log serve --json stdout: {out!r} {err!r}")

    # 4. log serve: headers that claim huge messages do not make the server allocate what they claim.
    import socket as socketlib
    import threading
    served = os.path.join(tmp, "budget")
    os.makedirs(served)
    proc = subprocess.Popen([AXDS, "log", "serve", served, "rig"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = read_line(proc.stdout)
    check(ready.startswith("serving "), f"log serve ready line: {ready!r}")
    sock_path = os.path.join(served, "rig.sock")
    claimed = 64 << 20
    clients = []
    for _ in range(50):
        c = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        c.connect(sock_path)
        c.sendall(claimed.to_bytes(4, "little") + bytes([1]) + (7).to_bytes(8, "little") + b"x" * 1000)
        clients.append(c)
    mapped_kib = resident_kib = 0
    for _ in range(10):  # a server that allocates what headers claim grows for seconds (zero-filling 64 MiB each)
        time.sleep(0.5)
        with open(f"/proc/{proc.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        mapped_kib = max(mapped_kib, int(status["VmSize"].split()[0]))
        resident_kib = max(resident_kib, int(status["VmHWM"].split()[0]))
    check(resident_kib < 400 * 1024,
          f"case 4: 50 headers claiming 64 MiB each: log serve peaked at {resident_kib // 1024} MiB resident")
    if mapped_kib < 1 << 30:  # sanitizer builds map terabytes of shadow memory: the mapped size says nothing there
        check(mapped_kib < 400 * 1024, f"case 4: 50 headers claiming 64 MiB each: log serve maps {mapped_kib // 1024} MiB")
    for c in clients:
        c.close()
    # Real large messages from several producers at once still all arrive (they queue for the budget).
    def produce(index, results):
        try:
            with LogSocketProducer(sock_path) as producer:
                for k in range(2):
                    producer.log(2, index * 10 + k + 1, np.full(48 << 20, index, dtype=np.uint8))
                results[index] = producer.close()
        except Exception as error:  # noqa: BLE001 - reported below
            results[index] = error
    results = {}
    threads = [threading.Thread(target=produce, args=(i, results)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    check(all(results.get(i) == 2 for i in range(6)), f"case 4: large messages under the budget: {results}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    check(b"12 entries written" in out, f"case 4: log serve summary: {out!r}")
    written = [n for n in os.listdir(os.path.join(served, "rig_data_log")) if n.endswith(".npy")]
    check(len(written) == 12, f"case 4: {len(written)} of 12 large entries on disk")

    # 6. archive info on an archive whose members are not in time order: a real span, no unsigned wrap.
    onset = 1_700_000_000_000_000
    members = {"001_%020d" % 0: np.frombuffer(bytes([1]) + bytes(8) + onset.to_bytes(8, "little"), dtype=np.uint8)}
    for t in (3_000_000, 1_000_000, 2_000_000):  # after the onset (the reader's rule), out of time order
        members["001_%020d" % t] = np.frombuffer(bytes([1]) + t.to_bytes(8, "little") + b"\x07", dtype=np.uint8)
    archive = os.path.join(tmp, "1_log.npz")
    np.savez(archive, **members)  # written in this (unsorted) order
    code, out, err = run("archive", "info", archive, "--json")
    result = parses(out)
    check(isinstance(result, dict) and result.get("first_us") == onset + 1_000_000
          and result.get("last_us") == onset + 3_000_000, f"archive info --json out of order: {out!r} {err!r}")
    code, out, err = run("archive", "info", archive)
    check(code == 0 and b"spanning 2.000000 s" in out, f"archive info span out of order: {out!r}")

    # 6b. archive info on an archive with one damaged local header: local headers are read when their member is read
    # (not at open), and info reads every message, so it still refuses the archive naming it and the member.
    with open(archive, "rb") as f:
        damaged_bytes = bytearray(f.read())
    victim = b"001_%020d.npy" % 2_000_000
    at = damaged_bytes.find(victim) - 30  # the first copy of the name follows its local header
    check(damaged_bytes[at:at + 4] == b"PK\x03\x04", "case 6b: found the local header")
    damaged_bytes[at + 3] ^= 0x01
    damaged = os.path.join(tmp, "damaged_log.npz")
    with open(damaged, "wb") as f:
        f.write(damaged_bytes)
    for extra in ([], ["--json"]):
        code, out, err = run("archive", "info", damaged, *extra)
        check(code == 1 and damaged.encode() in err and victim in err and b"local header" in err,
              f"archive info {extra} on a damaged local header: {code} {out!r} {err!r}")

    # 3. Out of memory says what ran out (it printed only "axds: std::bad_alloc"): a small archive of highly
    # compressed members, read under an address-space limit. Plain builds only (sanitizers reserve terabytes).
    members = {"001_%020d" % 0: np.frombuffer(bytes([1]) + bytes(8) + (1_700_000_000_000_000).to_bytes(8, "little"),
                                              dtype=np.uint8)}
    for t in range(1, 13):
        members["001_%020d" % t] = np.zeros(64 << 20, dtype=np.uint8)
    bomb = os.path.join(tmp, "bomb_log.npz")
    np.savez_compressed(bomb, **members)
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20))

    result = subprocess.run([AXDS, "archive", "info", bomb], capture_output=True, timeout=120, preexec_fn=limited)
    if b"Sanitizer" in result.stderr:
        print("skipped the out-of-memory message check: sanitizer build")
    else:
        check(result.returncode == 1 and b"out of memory running 'axds archive info" in result.stderr
              and bomb.encode() in result.stderr, f"archive info out of memory: {result.returncode} {result.stderr!r}")

    # 11. log serve --layout archives run again under the same name. Each new run's producer logs a new onset, which
    #     cannot share the earlier run's archive: the rerun is refused up front, naming the directory and what to do
    #     (it used to serve, fail to finish its archive and say "0 of the submitted entries did not reach the disk"
    #     with exit 1). --append continues the earlier run; a new onset there is reported truthfully, exit 1.
    rerun = os.path.join(tmp, "rerun")
    os.makedirs(rerun)
    rerun_log = os.path.join(rerun, "rig_data_log")

    def serve_archives(*extra, onset=True, t=5):
        proc = subprocess.Popen([AXDS, "log", "serve", rerun, "rig", "--layout", "archives", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready = read_line(proc.stdout, timeout=10)
        if ready.startswith("serving "):
            with LogSocketProducer(os.path.join(rerun, "rig.sock")) as producer:
                if onset:
                    producer.log_onset(1)
                producer.log(1, t, np.arange(4, dtype=np.uint8))
                producer.close()
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, ready, err.decode(errors="replace")

    def archive_state():
        with open(os.path.join(rerun_log, "1_log.npz"), "rb") as f:
            return f.read(), sorted(os.listdir(rerun_log))

    code, ready, err = serve_archives()
    check(code == 0 and ready.startswith("serving "), f"case 11: first archives run: {code} {ready!r} {err!r}")
    first = archive_state()
    code, ready, err = serve_archives()
    check(code == 1 and not ready.startswith("serving ") and rerun_log in err and "earlier run" in err
          and "1_log.npz" in err and "--append" in err and "0 of the submitted" not in err,
          f"case 11: rerun under the same name: {code} {ready!r} {err!r}")
    check(archive_state() == first and not os.path.exists(os.path.join(rerun, "rig.sock")),
          "case 11: the refused rerun changed the log directory or left its socket")
    code, ready, err = serve_archives("--append", onset=False, t=7)
    with np.load(os.path.join(rerun_log, "1_log.npz")) as z:
        keys = sorted(z.files)
    check(code == 0 and keys == ["001_%020d" % t for t in (0, 5, 7)], f"case 11: --append: {code} {keys} {err!r}")
    continued = archive_state()
    code, ready, err = serve_archives("--append", t=9)  # a new onset: the archive cannot take this run's members
    check(code == 1 and "archive not finished" in err and "could not be finished" in err
          and "hold different data" in err and "0 of the submitted" not in err,
          f"case 11: --append with a new onset: {code} {err!r}")
    check(archive_state()[0] == continued[0] and ".1_log.npz.working" in os.listdir(rerun_log),
          "case 11: --append with a new onset changed the archive or lost the working file")

    # 12. a --socket that cannot be served (missing directory, longer than sun_path, a regular file) leaves no empty
    #     NAME_data_log behind; a log directory that was there before stays.
    sockets = os.path.join(tmp, "sockets")
    os.makedirs(sockets)
    regular = os.path.join(sockets, "regular")
    with open(regular, "w") as f:
        f.write("mine")
    bad_sockets = {"missing": os.path.join(sockets, "no", "such", "s.sock"),
                   "long": os.path.join(sockets, "x" * 120 + ".sock"), "regular": regular}
    for name, path in bad_sockets.items():
        code, out, err = run("log", "serve", sockets, name, "--socket", path, timeout=20)
        check(code == 1 and err.startswith(b"axds: ") and not os.path.exists(os.path.join(sockets, name + "_data_log")),
              f"case 12: --socket {name}: {code} {err!r} {sorted(os.listdir(sockets))}")
    os.makedirs(os.path.join(sockets, "kept_data_log"))
    code, out, err = run("log", "serve", sockets, "kept", "--socket", regular, timeout=20)
    check(code == 1 and os.path.isdir(os.path.join(sockets, "kept_data_log")) and open(regular).read() == "mine",
          f"case 12: a failed --socket removed a log directory that was there before: {code} {err!r}")

    # 10. usage errors say what is wrong, briefly.
    code, out, err = run("bogus")
    check(code == 2 and b"'bogus' is not a subcommand" in err and b"checksum" in err, f"axds bogus: {err!r}")
    for args in (["checksum", tmp, "--workers", "-1"], ["assemble", tmp, "--workers", "-2"]):
        code, out, err = run(*args)
        check(code == 2 and b"0 (automatic) or a positive" in err and len(err) < 300, f"{args}: {err!r}")
    # A worker count given under its other name (--threads) is reported under the name the user typed.
    for args in (["transfer", tmp, os.path.join(tmp, "t_dst"), "--threads", "abc"],
                 ["log", "serve", tmp, "rig", "--threads=abc"]):
        code, out, err = run(*args)
        check(code == 2 and err.startswith(b"--threads: 'abc' is not a worker count") and b"--workers" not in err
              and b"0 (automatic) or a positive" in err, f"{args}: {err!r}")
    code, out, err = run("transfer", tmp, os.path.join(tmp, "t_dst"), "--workers", "abc")
    check(code == 2 and err.startswith(b"--workers: 'abc' is not a worker count"), f"transfer --workers abc: {err!r}")

    # 13. a path through a file (`data.bin/`) is said to be one, not "does not exist" (found by a hostile-user run).
    a_file = os.path.join(tmp, "a_file.bin")
    with open(a_file, "w") as f:
        f.write("x")
    for args in (["delete", a_file + "/"], ["checksum", a_file + "/"], ["checksum", os.path.join(a_file, "x")]):
        code, out, err = run(*args)
        check(code == 1 and b"a component of the path is a file, not a directory" in err and os.path.isfile(a_file),
              f"case 13: {args}: {code} {err!r}")

    # 14. a tracker path without .yaml/.yml is refused before anything is created (a stray .lock was left).
    code, out, err = run("tracker", "reset", "--create", os.path.join(tmp, "jobs.txt"))
    check(code == 1 and b"must end in .yaml or .yml" in err and not os.path.exists(os.path.join(tmp, "jobs.txt.lock"))
          and not os.path.exists(os.path.join(tmp, "jobs.txt")), f"case 14: {code} {err!r}")

    # 15. a file size limit (`ulimit -f 0`) makes the checksum save fail with a message, not a SIGXFSZ death that
    # left its temporary file in the directory (which then changed the directory's checksum).
    limited = os.path.join(tmp, "limited")
    os.makedirs(limited)
    with open(os.path.join(limited, "a.bin"), "w") as f:
        f.write("data")
    code, out, err = run("checksum", limited)
    saved = open(os.path.join(limited, "ax_checksum.txt")).read()
    result = subprocess.run(["sh", "-c", 'ulimit -f 0; exec "$0" checksum "$1"', AXDS, limited], capture_output=True,
                            timeout=60)
    check(result.returncode == 1 and b"File too large" in result.stderr and saved.encode() in result.stderr
          and sorted(os.listdir(limited)) == ["a.bin", "ax_checksum.txt"]
          and open(os.path.join(limited, "ax_checksum.txt")).read() == saved,
          f"case 15: {result.returncode} {result.stderr!r} {sorted(os.listdir(limited))}")

    # 16. a checksum save where /proc/self/fd cannot be used (a minimal container or chroot) falls back to a named
    # temporary file instead of failing, and a temporary name left by an earlier process with the same PID (PID 1 in
    # a container) is skipped, never removed. Root only (unshare + mount).
    def can(*probe):
        try:
            return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    if os.geteuid() != 0 or not shutil.which("unshare") or not can("unshare", "-m", "sh", "-c",
                                                                    "mount -t tmpfs none /proc"):
        print("case 16 SKIPPED: needs root and unshare with mount namespaces")
    else:
        masked = os.path.join(tmp, "masked")
        os.makedirs(masked)
        with open(os.path.join(masked, "a.bin"), "w") as f:
            f.write("data")
        code, expected, err = run("checksum", "--no-save", masked)
        result = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc && exec "$0" checksum "$1"',
                                 AXDS, masked], capture_output=True, timeout=60)
        # An ASan build (CI) cannot read its options without /proc, and its leak check at exit then fails for want
        # of /proc: the exit code says nothing there, the saved file below does.
        exited_well = result.returncode == 0 or b"LeakSanitizer has encountered a fatal error" in result.stderr
        saved = open(os.path.join(masked, "ax_checksum.txt")).read() if os.path.exists(
            os.path.join(masked, "ax_checksum.txt")) else ""
        check(exited_well and saved.strip() == expected.decode().strip()
              and sorted(os.listdir(masked)) == ["a.bin", "ax_checksum.txt"],
              f"case 16: without /proc: {result.returncode} {result.stderr!r} {sorted(os.listdir(masked))}")
        stale = os.path.join(masked, ".ax_checksum.txt.axds-1-0")
        with open(stale, "w") as f:
            f.write("someone else's")
        if can("unshare", "-pf", "--mount-proc", "true"):
            result = subprocess.run(["unshare", "-pf", "--mount-proc", AXDS, "checksum", masked], capture_output=True,
                                    timeout=60)
            check(result.returncode == 0 and open(stale).read() == "someone else's",
                  f"case 16: a taken temporary name: {result.returncode} {result.stderr!r} {sorted(os.listdir(masked))}")

# 17. too few threads or too little memory to start every CPU worker thread: the command runs on the threads it got,
#     or says why it cannot run; it never hangs (asio::thread_pool's constructor joined the threads it had started,
#     which never stop: the process hung, deaf to SIGTERM) and never aborts ("terminate called without an active
#     exception" when the failure came while an operation was being started). An address-space limit is swept from
#     where the program cannot even load to where it has every thread. Plain builds only (sanitizers reserve
#     terabytes of address space).
limits_dir = tempfile.mkdtemp()
limited = os.path.join(limits_dir, "data")
os.makedirs(limited)
with open(os.path.join(limited, "a.bin"), "w") as f:
    f.write("data")
probe = subprocess.run(["sh", "-c", 'ulimit -v 65536; exec "$0" checksum --no-save "$1"', AXDS, limited],
                       capture_output=True, timeout=60)
if b"Sanitizer" in probe.stderr or b"Sanitizer" in subprocess.run([AXDS, "--version"], capture_output=True,
                                                                 env=dict(os.environ, ASAN_OPTIONS="help=1")).stderr:
    print("case 17 SKIPPED: sanitizer build")
else:
    expected = run("checksum", "--no-save", limited)[1]
    outcomes = []
    for mib in range(12, 49):
        try:
            result = subprocess.run(["sh", "-c", 'ulimit -v "$2"; exec "$0" checksum --no-save "$1"', AXDS, limited,
                                     str(mib << 10)], capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            outcomes.append((mib, "hung"))
            break  # one is enough (and each costs the whole timeout)
        fine = (result.returncode == 0 and result.stdout == expected) or (
            result.returncode == 1 and b"Unable to start the CPU worker threads" in result.stderr) or (
            result.returncode == 127 and b"error while loading shared libraries" in result.stderr) or (
            result.returncode == 1 and b"out of memory" in result.stderr) or (
            result.returncode == 1 and b"Cannot allocate memory" in result.stderr and limited.encode() in result.stderr)
        if not fine:
            outcomes.append((mib, result.returncode, result.stderr[-200:]))
    check(not outcomes and probe.returncode == 0, f"case 17: address-space limits (MiB) that went wrong: {outcomes}")
shutil.rmtree(limits_dir)

# 18. a tracker's job names, specifiers and error messages are written by other programs: `tracker show` printed them
#     raw, so an escape sequence in one (clear the screen, set the title, hide text) acted on the user's terminal. They
#     are shown escaped; --json still gives them exactly.
import yaml  # noqa: E402
tracker_dir = tempfile.mkdtemp()
tracker = os.path.join(tracker_dir, "tracker.yaml")
hostile_specifier = "evil\x1b[2J\x1b]0;pwned\x07name\u009b31m\u202etxt.exe\u2066"
hostile_message = "line1\nline2\x1b[31mred\x7f"
with open(tracker, "w") as f:
    yaml.safe_dump({"jobs": {"1c163db0db3fbfe3": {
        "job_name": "summarize", "specifier": hostile_specifier, "status": 3, "executor_id": None,
        "error_message": hostile_message, "started_at": None, "completed_at": None}}}, f)
code, out, err = run("tracker", "show", tracker)
controls = [c for c in out.decode("utf-8") if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F
            or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069]
check(code == 0 and not controls and out.count(b"\n") == 2
      and b"evil\\x1b[2J\\x1b]0;pwned\\x07name\\u009b31m\\u202etxt.exe\\u2066" in out and b"line1\\nline2\\x1b[31mred\\x7f" in out,
      f"case 18: tracker show: {code} {out!r} {err!r}")
code, out, err = run("tracker", "show", "--json", tracker)
shown = parses(out)
jobs = shown.get("jobs") if isinstance(shown, dict) else None
check(code == 0 and jobs and jobs[0]["specifier"] == hostile_specifier and jobs[0]["error_message"] == hostile_message,
      f"case 18: tracker show --json: {code} {out!r}")
shutil.rmtree(tracker_dir)

# 19. a destination that is a dangling symbolic link (a share not mounted yet) says so; it said only "Unable to create
#     the destination directory" (found by a hostile-user run). Nothing is created through it.
link_dir = tempfile.mkdtemp()
source = os.path.join(link_dir, "source")
os.makedirs(source)
with open(os.path.join(source, "a.bin"), "w") as f:
    f.write("data")
dangling = os.path.join(link_dir, "dest")
os.symlink(os.path.join(link_dir, "unmounted", "dest"), dangling)
code, out, err = run("transfer", source, dangling)
check(code == 1 and b"is a symbolic link to something that does not exist" in err
      and not os.path.exists(os.path.join(link_dir, "unmounted")), f"case 19: {code} {err!r}")
shutil.rmtree(link_dir)

# 20. a result printed to a full disk or a closed descriptor is lost: the command says so and fails (exit 0 before:
#     `axds checksum DIR > /dev/full` reported success with the digest gone; found by a hostile-user run).
out_dir = tempfile.mkdtemp()
with open(os.path.join(out_dir, "a.bin"), "w") as f:
    f.write("data")
with open(os.path.join(out_dir, "t.yaml"), "w") as f:
    f.write("jobs: {}\n")
for label, target in (("/dev/full", "> /dev/full"), ("a closed stdout", ">&-")):
    for args in ('checksum --no-save "$1"', 'checksum --no-save --json "$1"', 'tracker show "$1/t.yaml"'):
        result = subprocess.run(["sh", "-c", f'"$0" {args} {target}', AXDS, out_dir], capture_output=True, timeout=60)
        check(result.returncode == 1 and b"writing the result to the standard output failed" in result.stderr,
              f"case 20: {args} {label}: {result.returncode} {result.stderr!r}")
result = subprocess.run(["sh", "-c", '"$0" -q checksum --no-save "$1" > /dev/full', AXDS, out_dir], capture_output=True,
                        timeout=60)
check(result.returncode == 1 and b"No space left on device" in result.stderr, f"case 20: -q: {result.stderr!r}")
shutil.rmtree(out_dir)

# 21. too few descriptors (`ulimit -n 5` to 15; a sanitizer build cannot even load its runtime under 4): the command says which limit and how to raise it (found by a
#     hostile-user run: asio's own setup failed with "signal_set_service pipe: Too many open files" and such).
import resource  # noqa: E402

with tempfile.TemporaryDirectory() as tmp21:
    os.makedirs(os.path.join(tmp21, "d"))
    with open(os.path.join(tmp21, "d", "x"), "w") as f:
        f.write("data")
    for limit in (5, 6, 8, 15):
        def few_descriptors(limit=limit):
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        for args in (["checksum", os.path.join(tmp21, "d")],
                     ["transfer", os.path.join(tmp21, "d"), os.path.join(tmp21, "out"), "--verify"]):
            result = subprocess.run([AXDS, *args], capture_output=True, timeout=60, preexec_fn=few_descriptors)
            check(result.returncode == 1 and b"ulimit -n" in result.stderr and b"needs at least 16" in result.stderr
                  and not os.path.exists(os.path.join(tmp21, "out")),
                  f"case 21: {args[0]} with {limit} descriptors: {result.returncode} {result.stderr!r}")
    result = subprocess.run([AXDS, "checksum", os.path.join(tmp21, "d"), "--no-save"], capture_output=True,
                            timeout=60, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    check(result.returncode == 0, f"case 21: 64 descriptors are enough: {result.returncode} {result.stderr!r}")

print(f"cli input: {checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
