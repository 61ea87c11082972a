"""Data safety through the `axds` binary: every way a wrong path or a rerun used to destroy data (ctest:
cli_data_safety). Usage: cli_safety_test.py /path/to/axds

Each check names the case it guards. The cases are the data-loss reports of issue 14; each one lost data on the code
before the fix. Nothing here ever runs `axds delete /` (the library test does that inside a chroot)."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
import time

import numpy as np

AXDS = os.path.abspath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))
from axds_log_socket import LogSocketProducer  # noqa: E402

failures = []
checks = 0


def run(*args, timeout=60, cwd=None):
    if cwd is not None and not os.path.isdir(cwd):
        return -1, "", f"the working directory {cwd} is gone"
    try:
        result = subprocess.run([AXDS, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return -9, "", f"axds {' '.join(args)} did not finish within {timeout} s (killed)"
    return result.returncode, result.stdout, result.stderr


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        failures.append(what)
        print("FAILED:", what)


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w" if isinstance(content, str) else "wb") as f:
        f.write(content)


def snapshot(root):
    """relative path -> sha256 of every regular file under root (symlinks not followed)."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def make_tree(root):
    for i in range(20):
        write(os.path.join(root, "d%d" % (i % 4), "f%02d.bin" % i), os.urandom(1000 + i))
    write(os.path.join(root, "top.txt"), "top")
    return snapshot(root)


def move_until_removal(src, dst):
    """Starts `axds transfer SRC DST --remove-source` and returns it once its removal of the source has begun (the
    move's marker appears in the source as it begins) or it has ended."""
    proc = subprocess.Popen([AXDS, "transfer", src, dst, "--remove-source"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    marker = os.path.join(src, ".axds-move-in-progress")
    deadline = time.time() + 120
    while not os.path.exists(marker) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.0005)
    return proc


def entry_bytes(source, timestamp, message):
    data = np.frombuffer(bytes([source]) + timestamp.to_bytes(8, "little") + message, dtype=np.uint8)
    return data


def save_entry(directory, source, timestamp, message):
    np.save(os.path.join(directory, "%03d_%020d.npy" % (source, timestamp)), entry_bytes(source, timestamp, message))


def archive_messages(path):
    with np.load(path) as z:
        return {key: z[key].tobytes() for key in z.files}


with tempfile.TemporaryDirectory() as tmp:
    # 1. transfer D D (also D/. and a symlink to D): refused, nothing truncated, nothing deleted.
    d = os.path.join(tmp, "D")
    before = make_tree(d)
    os.symlink(d, os.path.join(tmp, "link_to_D"))
    for same in (d, d + "/.", d + "/", os.path.join(tmp, "link_to_D")):
        for extra in ([], ["--verify"], ["--verify", "--remove-source"]):
            code, out, err = run("transfer", d, same, *extra)
            check(code == 1 and "same directory" in err, f"case 1: transfer D {same} {extra}: {code} {out!r} {err!r}")
            check(snapshot(d) == before, f"case 1: transfer D {same} {extra} changed D")

    # 2. destination inside the source / source inside the destination: refused before anything is written.
    code, out, err = run("transfer", d, os.path.join(d, "backup"), "--verify", "--remove-source")
    check(code == 1 and "inside the source" in err, f"case 2: transfer D D/backup: {code} {err!r}")
    check(os.path.isdir(d) and snapshot(d) == before and not os.path.exists(os.path.join(d, "backup")),
          "case 2: transfer D D/backup changed D")
    data = os.path.join(tmp, "data")
    session = os.path.join(data, "session1")
    session_before = make_tree(session)
    code, out, err = run("transfer", session, data, "--reset-dirty-destination")
    check(code == 1 and "inside the destination" in err, f"case 2: transfer data/session1 data: {code} {err!r}")
    check(snapshot(session) == session_before, "case 2: the source's own files were deleted as strays")

    # 3. assembly never shrinks an archive: assemble 101, log 10 more, assemble again -> 111.
    logs = os.path.join(tmp, "rig_data_log")
    os.makedirs(logs)
    save_entry(logs, 1, 0, (1_700_000_000_000_000).to_bytes(8, "little"))
    for t in range(1, 101):
        save_entry(logs, 1, t * 10, os.urandom(16))
    first = {name: open(os.path.join(logs, name), "rb").read() for name in os.listdir(logs)}
    code, out, err = run("assemble", logs)
    check(code == 0, f"case 3: first assembly: {code} {err!r}")
    for t in range(101, 111):
        save_entry(logs, 1, t * 10, os.urandom(16))
    second = {name: open(os.path.join(logs, name), "rb").read() for name in os.listdir(logs) if name.endswith(".npy")}
    code, out, err = run("assemble", logs, "--verify", "--json")
    check(code == 0 and json.loads(out).get("merged") == 101, f"case 3: second assembly: {code} {out!r} {err!r}")
    archived = archive_messages(os.path.join(logs, "1_log.npz"))
    check(len(archived) == 111, f"case 3: the archive holds {len(archived)} of 111 messages after a rerun")
    expected = {**first, **second}
    for name, raw in expected.items():
        key = name[:-4]
        with open(os.path.join(tmp, "entry.npy"), "wb") as f:
            f.write(raw)
        if key not in archived or archived[key] != np.load(os.path.join(tmp, "entry.npy")).tobytes():
            check(False, f"case 3: {key} missing or different after the rerun")
            break

    # 3. two `axds log serve --assemble` runs under one name (the second with --append, which continues the first
    #    run's time base: no new onset): the first run's messages stay.
    served = os.path.join(tmp, "served")
    os.makedirs(served)
    sent = {}
    for run_index in range(2):
        proc = subprocess.Popen([AXDS, "log", "serve", served, "rig", "--assemble"] + ["--append"] * run_index,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = proc.stdout.readline()
        if not ready.startswith("serving "):
            check(False, f"case 3: log serve run {run_index} ready line: {ready!r} {proc.communicate(timeout=60)!r}")
            continue
        with LogSocketProducer(os.path.join(served, "rig.sock")) as producer:
            if run_index == 0:
                producer.log_onset(1)
            for i in range(1, 501):
                timestamp = run_index * 1_000_000 + i
                message = os.urandom(12)
                producer.log(1, timestamp, np.frombuffer(message, dtype=np.uint8))
                sent["001_%020d" % timestamp] = bytes([1]) + timestamp.to_bytes(8, "little") + message
            producer.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        check(proc.returncode == 0, f"case 3: log serve run {run_index}: {proc.returncode} {err!r}")
    archived = archive_messages(os.path.join(served, "rig_data_log", "1_log.npz"))
    kept = sum(1 for key, payload in sent.items() if archived.get(key) == payload)
    check(kept == 1000, f"case 3: two log serve runs under one name kept {kept} of 1000 messages")

    # 4. a move interrupted during its source removal: --reset-dirty-destination used to delete the only copies;
    #    now it is refused, and rerunning the move finishes it. The stray-files message never recommends the option
    #    that deletes destination-only files, and lists at most 20 of them.
    src = os.path.join(tmp, "move_src")
    src_before = make_tree(src)
    dst = os.path.join(tmp, "move_dst")
    check(run("transfer", src, dst, "--verify")[0] == 0, "case 4: first transfer")
    for name in os.listdir(os.path.join(src, "d0")):
        os.remove(os.path.join(src, "d0", name))  # as a move interrupted during its source removal leaves it
    for name in os.listdir(os.path.join(src, "d1")):
        os.remove(os.path.join(src, "d1", name))
    dst_before = snapshot(dst)
    left = snapshot(src)
    for extra in (["--remove-source"], ["--verify"], []):
        code, out, err = run("transfer", src, dst, "--reset-dirty-destination", *extra)
        check(code == 1 and "only copy" in err, f"case 4: --reset-dirty-destination {extra}: {code} {err!r}")
    check(snapshot(dst) == dst_before and snapshot(src) == left, "case 4: a refused reset deleted files")
    write(os.path.join(dst, "d0", "notes.txt"), "added later")  # the destination no longer verifies
    code, out, err = run("transfer", src, dst, "--verify", "--remove-source")
    check(code == 1 and "does not account for" in err and "reset" not in err.lower()
          and len(err) < 4000, f"case 4: the rerun message recommends deleting, or is unbounded: {err!r}")
    check(snapshot(src) == left, "case 4: a refused move deleted source files")
    os.remove(os.path.join(dst, "d0", "notes.txt"))
    code, out, err = run("transfer", src, dst, "--remove-source")
    check(code == 0 and "resumed an interrupted move" in out and f"removed {len(left)} source files" in out,
          f"case 4: the rerun did not finish the move: {code} {out!r} {err!r}")
    after = snapshot(dst)
    after.pop("ax_checksum.txt", None)
    check(not os.path.exists(src) and after == src_before, "case 4: the finished move lost or duplicated files")

    # 4b. a destination that is a file is named as not a directory (it said "Unable to list the directory").
    afile = os.path.join(tmp, "afile")
    write(afile, "data")
    code, out, err = run("transfer", os.path.join(tmp, "move_dst"), afile)
    check(code == 1 and f"{afile} is not a directory" in err and open(afile).read() == "data",
          f"case 4b: transfer SRC FILE: {code} {err!r}")

    # 5. a symlink with a trailing slash: delete removes only the link; transfer refuses it as a source.
    target = os.path.join(tmp, "target")
    target_before = make_tree(target)
    os.symlink(target, os.path.join(tmp, "LINK"))
    code, out, err = run("transfer", os.path.join(tmp, "LINK") + "/", os.path.join(tmp, "elsewhere"),
                         "--remove-source")
    check(code == 1 and "symbolic link" in err and snapshot(target) == target_before,
          f"case 5: transfer LINK/ --remove-source: {code} {err!r}")
    code, out, err = run("delete", os.path.join(tmp, "LINK") + "/")
    check(code == 0 and not os.path.lexists(os.path.join(tmp, "LINK")), f"case 5: delete LINK/: {code} {err!r}")
    check(snapshot(target) == target_before, "case 5: delete LINK/ emptied the link's target")

    # 7. delete refuses '.', '', the working directory and its ancestors ('/' is tested in a chroot by the library
    #    tests: a regression here must not be able to wipe the machine).
    work = os.path.join(tmp, "work")
    work_before = make_tree(work)
    for path, cwd in ((".", work), ("", work), (work, work), (tmp, work), ("..", os.path.join(work, "d0"))):
        code, out, err = run("delete", path, cwd=cwd)
        check(code == 1 and err.startswith("axds: "), f"case 7: delete {path!r} in {cwd}: {code} {err!r}")
        if path in (work, tmp):  # protected: the CLI names its flag, not the library's C++ option
            check("add --force-root" in err and "delete_options" not in err and path in err,
                  f"case 7: delete {path!r} names the CLI flag: {err!r}")
    check(snapshot(work) == work_before, "case 7: a refused delete removed files")
    code, out, err = run("delete", os.path.join(work, "d1"), "--force-root", cwd=os.path.join(work, "d1"))
    check(code == 0 and not os.path.exists(os.path.join(work, "d1")), f"case 7: --force-root: {code} {err!r}")

    # 8. a 0-byte entry (a crash, a full disk): named, left on disk, everything else archived, exit 1.
    broken = os.path.join(tmp, "broken_data_log")
    os.makedirs(broken)
    for t in (0, 10, 20, 30):
        save_entry(broken, 2, t, b"\x01\x02")
    open(os.path.join(broken, "002_00000000000000000015.npy"), "wb").close()
    code, out, err = run("assemble", broken)
    check(code == 1 and "002_00000000000000000015.npy" in err, f"case 8: damaged entry: {code} {out!r} {err!r}")
    check(os.path.exists(os.path.join(broken, "002_00000000000000000015.npy")), "case 8: damaged entry removed")
    check(len(archive_messages(os.path.join(broken, "2_log.npz"))) == 4
          if os.path.exists(os.path.join(broken, "2_log.npz")) else False, "case 8: the good entries were held back")

    # 9. unfinished archives of killed runs are removed by the next run.
    stale = os.path.join(logs, ".1_log.npz.0badf00d.partial")
    write(stale, b"half an archive")
    save_entry(logs, 1, 5000, b"late")
    code, out, err = run("assemble", logs)
    check(code == 0 and not os.path.exists(stale), f"case 9: stale temp file: {code} {err!r}")

    # 10. typed paths that do not exist are errors; only --create makes a tracker.
    missing_tracker = os.path.join(tmp, "nowhere", "tracker.yaml")
    for sub in ("retry", "reset", "show", "summary"):
        code, out, err = run("tracker", sub, missing_tracker)
        check(code == 1 and missing_tracker in err and not os.path.exists(os.path.dirname(missing_tracker)),
              f"case 10: tracker {sub} MISSING: {code} {err!r}")
    # A link to a tracker that is not there (a share not mounted yet) was read as an empty tracker, and reset/retry
    # created its target (found by a hostile-user run); a link loop read as an empty tracker too.
    unmounted = os.path.join(tmp, "share", "tracker.yaml")
    dangling = os.path.join(tmp, "linked_tracker.yaml")
    os.symlink(unmounted, dangling)
    loop = os.path.join(tmp, "loop.yaml")
    os.symlink(loop, loop)
    for sub in ("retry", "reset", "show", "summary"):
        code, out, err = run("tracker", sub, dangling)
        check(code == 1 and dangling in err and "does not exist" in err and out == ""
              and not os.path.exists(os.path.dirname(unmounted)) and os.path.islink(dangling),
              f"case 10: tracker {sub} DANGLING_LINK: {code} {out!r} {err!r}")
        code, out, err = run("tracker", sub, loop)
        check(code == 1 and "symbolic links" in err and out == "", f"case 10: tracker {sub} LOOP: {code} {err!r}")
    code, out, err = run("tracker", "reset", missing_tracker, "--create")
    check(code == 0 and os.path.exists(missing_tracker), f"case 10: tracker reset --create: {code} {err!r}")
    for args in (["assemble", "/nonexistent"], ["delete", os.path.join(tmp, "nothing")],
                 ["checksum", os.path.join(tmp, "nothing")], ["transfer", os.path.join(tmp, "nothing"), dst],
                 ["log", "serve", os.path.join(tmp, "nothing"), "rig"],
                 ["archive", "info", os.path.join(tmp, "nothing.npz")]):
        code, out, err = run(*args, timeout=10)
        check(code == 1 and err.startswith("axds: "), f"case 10: {args}: {code} {out!r} {err!r}")
    check(not os.path.exists(os.path.join(tmp, "nothing")), "case 10: a missing path was created")

    # 10. a YAML file that is not a tracker is never replaced by `tracker reset|retry`, nor shown as one.
    config = os.path.join(tmp, "experiment.yaml")
    write(config, "experiment:\n  subject: mouse7\n")
    for sub in ("retry", "reset", "show", "summary"):
        code, out, err = run("tracker", sub, config)
        check(code == 1 and "not a processing tracker" in err, f"case 10: tracker {sub} on a config: {code} {err!r}")
    check(open(config).read() == "experiment:\n  subject: mouse7\n", "case 10: a config file was overwritten")
    code, out, err = run("tracker", "show", tmp)
    check(code == 1 and "not a regular file" in err, f"case 10: tracker show DIR: {code} {err!r}")

    # 11. a .npy that is a FIFO (or a link to one): skipped with a named warning, no hang.
    fifo_logs = os.path.join(tmp, "fifo_data_log")
    os.makedirs(fifo_logs)
    save_entry(fifo_logs, 3, 0, b"\x00" * 8)
    os.mkfifo(os.path.join(fifo_logs, "003_00000000000000000010.npy"))
    os.mkfifo(os.path.join(tmp, "pipe"))
    os.symlink(os.path.join(tmp, "pipe"), os.path.join(fifo_logs, "003_00000000000000000020.npy"))
    code, out, err = run("assemble", fifo_logs, timeout=20)
    check(code == 1 and "003_00000000000000000010.npy" in err and "003_00000000000000000020.npy" in err,
          f"case 11: FIFO entries (a hang shows as -9): {code} {err!r}")
    fifo_archive = os.path.join(fifo_logs, "3_log.npz")
    check(os.path.exists(fifo_archive) and len(archive_messages(fifo_archive)) == 1, "case 11: the real entry")

    # 12. an unfinished streaming archive damaged in the middle (a flipped byte): every intact member after the
    #     damage is archived too, the damaged bytes are saved to a file of their own, and the run exits 1 saying so.
    stream_logs = os.path.join(tmp, "stream_data_log")
    os.makedirs(stream_logs)
    for t in range(0, 50):
        save_entry(stream_logs, 4, t * 10, bytes([t]) * 64)
    code, out, err = run("assemble", stream_logs, timeout=20)
    check(code == 0, f"case 12: setup assemble: {code} {err!r}")
    finished = os.path.join(stream_logs, "4_log.npz")
    with zipfile.ZipFile(finished) as z:
        starts = [info.header_offset for info in z.infolist()]
        cd = z.start_dir
    raw = bytearray(open(finished, "rb").read()[:cd])  # a streaming archive's working file is this prefix
    raw[starts[20] + 120] ^= 0x01
    os.remove(finished)
    with open(os.path.join(stream_logs, ".4_log.npz.working"), "wb") as f:
        f.write(raw)
    code, out, err = run("assemble", stream_logs, timeout=20)
    saved = os.path.join(stream_logs, "4_log.npz.damaged-at-%d" % starts[20])
    check(code == 1 and "damaged" in err and saved in out + err, f"case 12: exit and message: {code} {out!r} {err!r}")
    check(os.path.exists(saved) and open(saved, "rb").read() == bytes(raw[starts[20]:starts[21]]),
          "case 12: the damaged bytes were saved unchanged")
    kept = archive_messages(finished)
    check(len(kept) == 49 and "004_00000000000000000200" not in kept and "004_00000000000000000490" in kept,
          f"case 12: every intact member kept: {len(kept)}")

    # 13. a Ctrl-C during a move's removal of its source (which, once begun, is finished): the command said
    #     "cancelling", then completed with exit 0 without a word. It now says that it completed. The signal is sent
    #     once the move's marker appears in the source (written as the removal begins); a removal that ends before
    #     the signal lands is retried with more files.
    for attempt, count in enumerate((20000, 60000)):
        src = os.path.join(tmp, f"late_src{attempt}")
        for i in range(count):
            if i % 500 == 0:
                os.makedirs(os.path.join(src, "d%03d" % (i // 500)))
            with open(os.path.join(src, "d%03d" % (i // 500), "f%05d" % i), "wb") as f:
                f.write(b"x")
        if attempt == 0:  # first a Ctrl-C during the copies: with --json, the cancellation is a JSON object too
            early = subprocess.Popen([AXDS, "transfer", src, os.path.join(tmp, "early_dst"), "--json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while not os.path.exists(os.path.join(tmp, "early_dst", "d001")) and early.poll() is None:
                time.sleep(0.0005)
            early.send_signal(signal.SIGINT)
            out, err = early.communicate(timeout=120)
            try:
                result = json.loads(out)
            except ValueError:
                result = {}
            check(early.returncode == 1 and result.get("cancelled") is True and "cancelled after" in result["error"]
                  and len(os.listdir(os.path.join(src, "d000"))) == 500,
                  f"case 13: a Ctrl-C during the copies with --json: {early.returncode} {out!r} {err!r}")
        proc = move_until_removal(src, os.path.join(tmp, f"late_dst{attempt}"))
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if "interrupted; cancelling" not in err:
            continue  # the removal ended first
        check(proc.returncode == 0 and "too late to stop it" in err and "completed" in err
              and not os.path.exists(src), f"case 13: a late Ctrl-C: {proc.returncode} {out!r} {err!r}")
        break
    else:
        check(False, "case 13: no Ctrl-C landed during the removal")

    # 14. a move while another process keeps appending to a source file: that file is kept in the source (its new
    #     bytes are not in the destination) and the command exits 1 naming it. It exited 0, so a script took the
    #     move for complete (and could delete what it thought was an empty leftover).
    src = os.path.join(tmp, "live_src")
    for i in range(2000):
        write(os.path.join(src, "d%02d" % (i % 20), "f%04d.bin" % i), b"x" * 4096)
    live = os.path.join(src, "d00", "a_live.log")  # copied first in its folder: appended to long after its copy
    write(live, b"start\n")
    writer = subprocess.Popen([sys.executable, "-c", "import sys, time\nwith open(sys.argv[1], 'ab', buffering=0) as f:"
                               "\n    while True:\n        f.write(b'x')\n        time.sleep(0.0002)", live])
    try:
        while os.path.getsize(live) < 100:
            time.sleep(0.001)
        code, out, err = run("transfer", src, os.path.join(tmp, "live_dst"), "--remove-source", "--json")
    finally:
        writer.kill()
        writer.wait()
    try:
        result = json.loads(out)
    except ValueError:
        result = {}
    check(code == 1 and "d00/a_live.log" in result.get("source_files_kept", []) and result.get("source_removed") is False
          and os.path.exists(live) and "is not complete" in err and "d00/a_live.log" in err,
          f"case 14: a move with a live writer: {code} {out[:300]!r} {err!r}")
    # Once the writer is gone, the same command finishes the move, the log's later bytes included: it refused, as
    # the log no longer matched its copy, and the user had to move it by hand.
    with open(live, "rb") as f:
        final = f.read()
    code, out, err = run("transfer", src, os.path.join(tmp, "live_dst"), "--remove-source")
    with open(os.path.join(tmp, "live_dst", "d00", "a_live.log"), "rb") as f:
        moved = f.read()
    check(code == 0 and "resumed an interrupted move" in out and "copied 1 files" in out and not os.path.exists(src)
          and moved == final, f"case 14: the same move once the writer is gone: {code} {out!r} {err!r}")

    # 15. a second Ctrl-C during a move's removal of its source quits at once (exit 130): it did so without a word.
    #     It now says what that leaves behind, and running the same command again finishes the move. A removal that
    #     ends before the signals land is retried with more files.
    for attempt, count in enumerate((20000, 60000)):
        src = os.path.join(tmp, f"quit_src{attempt}")
        for i in range(count):
            write(os.path.join(src, "d%03d" % (i // 500), "f%05d" % i), b"q%d" % i)
        before = snapshot(src)
        dst = os.path.join(tmp, f"quit_dst{attempt}")
        proc = move_until_removal(src, dst)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 130:
            continue  # the removal ended first
        check("quitting at once" in err and "running the same command again" in err,
              f"case 15: a second Ctrl-C during the removal: {proc.returncode} {err!r}")
        code, out, err = run("transfer", src, dst, "--remove-source", timeout=300)
        check(code == 0 and not os.path.exists(src) and snapshot(dst) == before,
              f"case 15: the same command again finishes the move: {code} {out!r} {err!r}")
        break
    else:
        check(False, "case 15: no second Ctrl-C landed during the removal")

    # 16. the same move run again after it finished: the source is gone, and the error said only that. It now also
    #     says the destination exists and that a finished move leaves nothing to do (no hint without a destination).
    src = os.path.join(tmp, "again_src")
    dst = os.path.join(tmp, "again_dst")
    before = make_tree(src)
    code, out, err = run("transfer", src, dst, "--remove-source", "--verify")
    check(code == 0 and not os.path.exists(src), f"case 16: the first move: {code} {out!r} {err!r}")
    code, out, err = run("transfer", src, dst, "--remove-source", "--verify")
    check(code == 1 and "does not exist" in err and "nothing is left to do" in err and dst in err
          and snapshot(dst) == {**before, "ax_checksum.txt": snapshot(dst).get("ax_checksum.txt")},
          f"case 16: the same move again: {code} {out!r} {err!r}")
    code, out, err = run("transfer", src, os.path.join(tmp, "again_nowhere"))
    check(code == 1 and "does not exist" in err and "nothing is left to do" not in err,
          f"case 16: a missing source and no destination: {code} {out!r} {err!r}")

print(f"cli data safety: {checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
