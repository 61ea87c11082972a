"""Crash consistency of the `axds` CLI under SIGKILL (ctest: crash_consistency, label crash).

Usage: crash_consistency_test.py /path/to/axds [--rounds N] [--seed S] [--only NAME,...] [--workdir DIR]
                                               [--budget SECONDS] [--keep-failed]

Each scenario first runs its operation once unkilled (it must work; it is timed, and the moment its inputs start to
vanish is noted), then N rounds (default 20): fresh data, start the real `axds` process, SIGKILL it at a random
moment, check the invariant, rerun the same command to completion (exit 0), check the invariant and the final state.
The moment: a delay drawn uniformly from the timed run (most kills land mid-operation); for assemble and transfer,
half the rounds instead kill at a random point of the round's own removal phase (short, and where a kill hurts most).

  assemble  `axds assemble LOGDIR`: every entry is an unchanged entry file or a member of a valid `{source}_log.npz`
            (CRC checked); after the rerun every entry is archived (ascending, onset first), no entry and no
            `.*.partial` temporary file is left.
  transfer  `axds transfer SRC DST --verify --remove-source`: every source file is in SRC or DST with its content,
            including one that appears in SRC while the transfer runs (renamed in whole, as an acquisition would);
            a refused rerun is finished the way a careful user would (the files only DST holds are moved aside and
            back afterwards; a stale ax_checksum.txt is removed as the message advises), and counted.
  delete    `axds delete DIR`: nothing outside DIR (a sibling, targets of symlinks and a hard link in DIR) changes.
  log       `axds log serve` fed by examples/python/axds_log_socket.py (in a child process), killed while it writes:
            every entry is complete and equal to what the producer sent, or a short file being written at the kill;
            `axds assemble` then archives every complete entry, and names (and keeps) the short ones, exiting non-zero.

assemble, delete and log work on disk (--workdir, default the tempfile default; on disk a kill leaves short entries
far more often than on tmpfs), transfer (90 MB a round) in /dev/shm. The seed is printed first; `--seed S --only NAME`
replays a scenario's data and kill plans (the moments are timings, so a replay is close, not exact). Prints one
summary line per scenario and `crash consistency: N passed, M failed` (scenarios); exits 1 if an invariant failed
anywhere, naming the lost files or entries and the seed. Every child process dies with the harness
(PR_SET_PDEATHSIG), every wait has a timeout, temporary trees are removed; --budget caps the whole run (rounds past a
scenario's share of it are skipped and reported).
"""

import argparse
import collections
import ctypes
import hashlib
import io
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PRODUCER_MODULE_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "examples", "python"))
PYTHON = sys.executable or "/usr/bin/python3"

COMMAND_TIMEOUT = 120  # seconds: any single axds run or helper process
MAX_PARTIAL_ENTRIES = 64  # "a few": the plain writer has one write per core in flight, io_uring a ring's worth
SHOWN = 5  # problems listed per check

# ---------------------------------------------------------------------------------------------------------------------
# child processes: every one dies with the harness (PR_SET_PDEATHSIG) and is killed in `finally` blocks

_libc = ctypes.CDLL(None, use_errno=True)
_children = set()


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(args, pipes=False):
    """Starts a child. Its output goes to pipes (`pipes`: the caller reads lines while it runs) or to anonymous
    files (nothing can block on a full pipe while the harness sleeps or polls)."""
    if pipes:
        out = err = subprocess.PIPE
    else:
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=_die_with_parent)
    proc.output_files = None if pipes else (out, err)
    _children.add(proc)
    return proc


def reap(proc, timeout=COMMAND_TIMEOUT):
    """Waits for `proc` (bounded); kills it on timeout. Returns (returncode, stdout, stderr, timed_out)."""
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        out, err = proc.communicate(timeout=30)
    _children.discard(proc)
    if proc.output_files is not None:
        texts = []
        for f in proc.output_files:
            f.seek(0)
            texts.append(f.read())
            f.close()
        out, err = texts
        proc.output_files = None
    decode = (lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or ""))
    return proc.returncode, decode(out), decode(err), timed_out


def kill_all_children():
    for proc in list(_children):
        try:
            if proc.poll() is None:
                proc.kill()
            reap(proc, 10)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
        _children.discard(proc)


def read_line(proc, timeout):
    """One line of `proc`'s stdout within `timeout` seconds (b'' on EOF or timeout)."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b""
        chunk = os.read(fd, 1)  # byte by byte: nothing after the line may be swallowed into a buffer
        if not chunk:
            return line
        line += chunk
    return line


class Axds:
    def __init__(self, binary):
        self.binary = binary

    def run(self, *args, timeout=COMMAND_TIMEOUT):
        return reap(spawn([self.binary, *args]), timeout)

    def run_killed(self, args, plan, during=None):
        """Starts axds and SIGKILLs it as `plan` says: ("time", seconds after the start) or ("removal", watch, extra):
        `extra` seconds after `watch()` first returned True (polled every half millisecond; the removal phase began).
        `during`: (seconds, action) run before the kill while axds still runs. Returns (killed, returncode, stderr)."""
        start = time.monotonic()
        proc = spawn([self.binary, *args])
        kill_at = start + plan[1] if plan[0] == "time" else None
        deadline = start + COMMAND_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            now = time.monotonic()
            if during is not None and now - start >= during[0]:
                during[1]()
                during = None
                continue
            if kill_at is None and plan[1]():
                kill_at = now + plan[2]
            if kill_at is not None and now >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
            if kill_at is not None:  # nothing left to watch: sleep to the next moment
                next_moment = kill_at if during is None else min(kill_at, start + during[0])
                sleep_until(next_moment)
            else:
                time.sleep(0.0005)
        code, _, err, _ = reap(proc)
        return code == -signal.SIGKILL, code, err

    def timed(self, *args, during=None, watch=None):
        """Runs axds to completion; returns (seconds, (code, out, err, timed_out), phase): `watch()` is polled every
        millisecond until it first returns True, `phase` is when that was (None if never)."""
        start = time.monotonic()
        proc = spawn([self.binary, *args])
        phase = None
        deadline = start + COMMAND_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            now = time.monotonic() - start
            if during is not None and now >= during[0]:
                during[1]()
                during = None
            if watch is not None and phase is None and watch():
                phase = now
            time.sleep(0.001)
        result = reap(proc, max(1.0, deadline - time.monotonic()))
        return time.monotonic() - start, result, phase


def sleep_until(moment):
    left = moment - time.monotonic()
    if left > 0:
        time.sleep(left)


# ---------------------------------------------------------------------------------------------------------------------
# bookkeeping


def brief(problems):
    shown = "; ".join(problems[:SHOWN])
    return shown + (f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else "")


class Scenario:
    name = ""

    def __init__(self, axds, seed, rounds, workdir, shmdir, keep_failed):
        self.axds = axds
        self.seed = seed
        self.rounds = rounds
        self.workdir = workdir
        self.shmdir = shmdir
        self.keep_failed = keep_failed
        self.rng = random.Random(f"{seed}:{self.name}")
        self.kills = 0  # SIGKILL landed while axds ran
        self.completed_before_kill = 0
        self.checks = 0
        self.refused = 0
        self.failures = []  # (round, message)
        self.failed_rounds = set()
        self.phases = collections.Counter()  # state found after each kill
        self.notes = collections.Counter()
        self.calibration = 0.0
        self.removal_start = None  # seconds into the timing run when the first input vanished
        self.elapsed = 0.0
        self.round_no = 0
        self.skipped = 0

    # --- helpers
    def check(self, problems, what):
        """Records one invariant check; `problems` lists what was lost or wrong."""
        self.checks += 1
        if problems:
            self.fail(f"{what}: {brief(problems)}")
            return False
        return True

    def fail(self, message):
        label = "calibration" if self.round_no == 0 else f"round {self.round_no}"
        self.failures.append((self.round_no, message))
        self.failed_rounds.add(self.round_no)
        print(f"  FAILED {self.name} {label} (seed {self.seed}): {message}", flush=True)

    def delay(self):
        # Uniform over the timed run: most kills land mid-operation, a few after it finished.
        return self.rng.uniform(0.03, 0.95) * self.calibration

    def plan(self, watch=None):
        """When to kill. Half the rounds: a delay drawn from the timed run. The other half, when the timing run saw
        inputs vanish (the removal phase: short, and where a kill hurts most): a random moment within that phase,
        measured from when the round's own removal begins (a delay alone would mostly miss a window this short)."""
        if watch is not None and self.removal_start is not None and self.rng.random() < 0.5:
            removal = max(0.002, self.calibration - self.removal_start)
            return ("removal", watch, self.rng.uniform(0.0, 0.8 * removal))
        return ("time", self.delay())

    def round_dir(self, base):
        return tempfile.mkdtemp(prefix=f"{self.name}-r{self.round_no:02d}-", dir=base)

    def cleanup(self, path):
        if self.keep_failed and self.round_no in self.failed_rounds:
            print(f"  kept {path}", flush=True)
            return
        shutil.rmtree(path, ignore_errors=True)

    def run(self, deadline):
        started = time.monotonic()
        print(f"[{self.name}] calibrating", flush=True)
        self.round_no = 0
        self.guarded(self.calibrate)
        removal = "" if self.removal_start is None else f" (inputs removed from {self.removal_start * 1000:.1f} ms)"
        print(f"[{self.name}] unkilled run {self.calibration * 1000:.1f} ms{removal}; {self.rounds} rounds", flush=True)
        for n in range(1, self.rounds + 1):
            if time.monotonic() > deadline:
                self.skipped = self.rounds - n + 1
                print(f"[{self.name}] time budget used up: {self.skipped} rounds skipped", flush=True)
                break
            self.round_no = n
            self.guarded(self.one_round)
        self.elapsed = time.monotonic() - started

    def guarded(self, step):
        """A harness error fails the round (and the scenario); the next round still runs."""
        try:
            step()
        except Exception as error:  # noqa: BLE001
            self.fail(f"harness error: {type(error).__name__}: {error}")
        finally:
            kill_all_children()

    def summary(self):
        phases = ", ".join(f"{k} {v}" for k, v in sorted(self.phases.items()))
        notes = "".join(f"; {k} {v}" for k, v in sorted(self.notes.items()))
        failed = len(self.failed_rounds - {0})
        status = "passed" if not self.failures else (
            f"FAILED ({failed} rounds{' and the unkilled run' if 0 in self.failed_rounds else ''})")
        skipped = f" ({self.skipped} skipped: time budget)" if self.skipped else ""
        return (f"{self.name}: {self.rounds - self.skipped} rounds{skipped}, {self.kills} kills landed mid-operation, "
                f"{self.completed_before_kill} completed before kill, {self.checks} invariant checks, "
                f"{self.refused} refused reruns, {self.elapsed:.1f} s (unkilled run {self.calibration * 1000:.0f} ms"
                f"{'' if self.removal_start is None else f', removal from {self.removal_start * 1000:.0f} ms'})"
                f" - {status}\n    states after kill: {phases or '-'}{notes}")


def sha(data):
    return hashlib.blake2b(data, digest_size=16).digest()


def file_sha(path):
    with open(path, "rb") as f:
        return sha(f.read())


def npy_bytes(payload):
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(payload, dtype=np.uint8))
    return buffer.getvalue()


def read_archive(path):
    """{member: bytes} and the member order of a valid archive, or raises with the reason."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        members = {name: z.read(name) for name in names}  # read() checks each member's CRC (BadZipFile if bad)
    with np.load(path, allow_pickle=False) as npz:  # numpy opens it too
        keys = npz.files
        if keys:
            npz[keys[0]]
            npz[keys[-1]]
    return members, names


# ---------------------------------------------------------------------------------------------------------------------
# 1. axds assemble LOGDIR


class AssembleScenario(Scenario):
    name = "assemble"

    def make(self, logdir):
        os.makedirs(logdir)
        sources = sorted(self.rng.sample(range(1, 256), 3))
        originals = {}  # stem -> (source, timestamp, npy bytes)
        for source in sources:
            count = self.rng.randint(2800, 3200)
            onset = int(time.time() * 1e6) - self.rng.randint(0, 10**9)
            timestamps = [0]
            t = 0
            for _ in range(count - 1):
                t += self.rng.randint(1, 5000)
                timestamps.append(t)
            big = set(self.rng.sample(timestamps[1:], 2))  # a few entries past the 16 KiB read-ahead
            for ts in timestamps:
                if ts == 0:
                    message = struct.pack("<Q", onset)
                else:
                    message = self.rng.randbytes(self.rng.randint(20_000, 90_000) if ts in big
                                                 else self.rng.randint(1, 240))
                stem = f"{source:03d}_{ts:020d}"
                # np.save's exact bytes (into memory first: np.save(path) costs twice the time of the write itself)
                data = npy_bytes(bytes([source]) + ts.to_bytes(8, "little") + message)
                with open(os.path.join(logdir, stem + ".npy"), "wb") as f:
                    f.write(data)
                originals[stem] = (source, ts, data)
        return originals

    def inspect(self, logdir, originals):
        """(invariant problems, final-state problems, state). Invariant: every original entry is an unchanged entry
        file or an equal member of a valid `{source}_log.npz`. Final state: every entry archived, in ascending
        timestamp order (onset first), no entry file and no `.*.partial` temporary file left."""
        problems, final = [], []
        names = set(os.listdir(logdir))
        sources = sorted({s for s, _, _ in originals.values()})
        archives = {}
        for source in sources:
            name = f"{source}_log.npz"
            if name in names:
                try:
                    archives[source] = read_archive(os.path.join(logdir, name))
                except Exception as error:  # noqa: BLE001
                    problems.append(f"archive {name} is not a valid archive: {error}")
                    archives[source] = ({}, [])
            else:
                final.append(f"archive {name} missing")
        present = 0
        lost = collections.defaultdict(list)
        for stem, (source, ts, data) in originals.items():
            entry = stem + ".npy"
            if entry in names:
                with open(os.path.join(logdir, entry), "rb") as f:
                    if f.read() != data:
                        problems.append(f"entry file {entry} changed")
                        continue
                present += 1
                continue
            member = archives.get(source, ({}, []))[0].get(entry)
            if member is None:
                lost[source].append(entry)
            elif member != data:
                problems.append(f"archive {source}_log.npz member {entry} differs from the original entry")
        for source, entries in sorted(lost.items()):
            total = sum(1 for s, _, _ in originals.values() if s == source)
            problems.insert(0, f"{len(entries)} of {total} entries of source {source} lost (no entry file and not in "
                               f"{source}_log.npz): {', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}")
        if present:
            final.append(f"{present} entry files left in the directory")
        for source, (members, order) in archives.items():
            strays = [m for m in order if m[:-4] not in originals]
            if strays:
                problems.append(f"archive {source}_log.npz holds members no entry had: {strays[:3]}")
            expected = [stem + ".npy" for stem, _ in
                        sorted(((k, v) for k, v in originals.items() if v[0] == source), key=lambda kv: kv[1][1])]
            if order != expected:
                final.append(f"archive {source}_log.npz holds {len(order)} members, expected all {len(expected)} in "
                             f"ascending timestamp order (onset first)")
        partial = sorted(n for n in names if n.startswith(".") and n.endswith(".partial"))
        if partial:
            final.append(f"temporary file(s) left: {partial}")
        if present == len(originals):
            state = "entries kept, archives written" if archives else "entries kept, no archive"
        elif present == 0:
            state = "all entries removed"
        else:
            state = "entries partially removed"
        if partial:
            state += " (+ .partial temp file)"
        return problems, final, state

    @staticmethod
    def samples(logdir, originals):
        return [os.path.join(logdir, stem + ".npy") for stem in list(originals)[::max(1, len(originals) // 40)]]

    def calibrate(self):
        logdir = os.path.join(self.round_dir(self.workdir), "rig_data_log")
        try:
            originals = self.make(logdir)
            samples = self.samples(logdir, originals)
            seconds, (code, _, err, _), self.removal_start = self.axds.timed(
                "assemble", logdir, watch=lambda: not all(os.path.exists(p) for p in samples))
            self.calibration = seconds
            if code != 0:
                self.fail(f"unkilled `axds assemble` exited {code}: {err.strip()}")
            problems, final, _ = self.inspect(logdir, originals)
            self.check(problems + final, "unkilled run")
        finally:
            self.cleanup(os.path.dirname(logdir))

    def one_round(self):
        base = self.round_dir(self.workdir)
        logdir = os.path.join(base, "rig_data_log")
        try:
            originals = self.make(logdir)
            samples = self.samples(logdir, originals)
            plan = self.plan(lambda: not all(os.path.exists(p) for p in samples))
            killed, code, err = self.axds.run_killed(["assemble", logdir], plan)
            self.notes[f"kill plan: {plan[0]}"] += 1
            if killed:
                self.kills += 1
            else:
                self.completed_before_kill += 1
                if code != 0:
                    self.fail(f"`axds assemble` exited {code} before the kill: {err.strip()}")
            problems, _, state = self.inspect(logdir, originals)
            self.phases[state if killed else "completed before kill"] += 1
            self.check(problems, "after the kill")
            code, _, err, timed_out = self.axds.run("assemble", logdir)
            if code != 0:
                self.fail(f"rerun of `axds assemble {logdir}` exited {code}{' (timeout)' if timed_out else ''}: "
                          f"{err.strip()}")
            problems, final, _ = self.inspect(logdir, originals)
            self.check(problems, "after the rerun (invariant)")
            self.check(final, "after the rerun (final state)")
        finally:
            self.cleanup(base)


# ---------------------------------------------------------------------------------------------------------------------
# 2. axds transfer SRC DST --verify --remove-source


class TransferScenario(Scenario):
    name = "transfer"
    CHECKSUM = "ax_checksum.txt"
    LATE = "late/added_during_transfer.bin"

    def make(self, src):
        nprng = np.random.default_rng(self.rng.getrandbits(64))
        originals = {}  # relative path -> digest
        folders = [f"d{i:02d}" for i in range(40)]
        for folder in folders:
            os.makedirs(os.path.join(src, folder))
            for j in range(self.rng.randint(45, 55)):
                originals[f"{folder}/f{j:03d}.bin"] = self.rng.randint(1024, 65536)
        for k in range(3):
            originals[f"{self.rng.choice(folders)}/big{k}.bin"] = 8 << 20
        for rel, size in originals.items():
            data = rel.encode() + nprng.bytes(size - len(rel))
            with open(os.path.join(src, rel), "wb") as f:
                f.write(data)
            originals[rel] = sha(data)
        os.makedirs(os.path.join(src, os.path.dirname(self.LATE)))  # empty until a file appears in it mid-run
        return originals

    def late_writer(self, base, src, originals):
        """An action that makes a file appear in SRC while the transfer runs (renamed in whole, as an acquisition
        process would finish a file): it must survive too, in SRC or in DST."""
        def action():
            data = self.rng.randbytes(4096)
            temp = os.path.join(base, "late.tmp")
            with open(temp, "wb") as f:
                f.write(data)
            try:
                os.replace(temp, os.path.join(src, self.LATE))
            except OSError:  # the transfer already removed late/: nothing appeared
                os.unlink(temp)
                return
            originals[self.LATE] = sha(data)
            self.notes["rounds with a file added mid-run"] += 1
        return action

    @staticmethod
    def files_under(root):
        out = set()
        for directory, _, files in os.walk(root):
            for name in files:
                out.add(os.path.relpath(os.path.join(directory, name), root))
        return out

    def inspect(self, src, dst, hold, originals):
        """(invariant problems, final-state problems, files still in SRC). Invariant: every file is in SRC, DST or
        (moved aside by the harness) HOLD with its original content. Final state: all in DST, SRC gone."""
        problems, final, lost = [], [], []
        in_src = 0
        for rel, digest in originals.items():
            s = os.path.join(src, rel)
            d = os.path.join(dst, rel)
            h = os.path.join(hold, rel)
            in_src += os.path.isfile(s)
            if os.path.isfile(d) and file_sha(d) == digest:
                continue
            late = " (it appeared in SRC while the transfer ran)" if rel == self.LATE else ""
            final.append(f"file {rel}{late} is not in DST with its original content")
            if os.path.isfile(s):
                if file_sha(s) == digest:
                    continue
                problems.append(f"source file {rel} changed")
            if os.path.isfile(h) and file_sha(h) == digest:
                continue
            lost.append(rel + late)
        if lost:
            problems.insert(0, f"{len(lost)} of {len(originals)} files lost (neither SRC nor DST holds them with "
                               f"their original content): {', '.join(lost[:3])}{', ...' if len(lost) > 3 else ''}")
        if os.path.exists(src):
            final.append(f"SRC still exists holding {len(self.files_under(src))} files")
        extra = self.files_under(dst) - set(originals) - {self.CHECKSUM} if os.path.isdir(dst) else set()
        if extra:
            final.append(f"DST holds files the source never had: {sorted(extra)[:3]}")
        return problems, final, in_src

    def command(self, src, dst):
        return ["transfer", src, dst, "--verify", "--remove-source"]

    def calibrate(self):
        base = self.round_dir(self.shmdir)
        src, dst, hold = (os.path.join(base, n) for n in ("src", "dst", "hold"))
        try:
            originals = self.make(src)
            samples = [os.path.join(src, rel) for rel in list(originals)[::max(1, len(originals) // 40)]]
            seconds, (code, _, err, _), self.removal_start = self.axds.timed(
                *self.command(src, dst), during=(0.05, self.late_writer(base, src, originals)),
                watch=lambda: not all(os.path.exists(p) for p in samples))
            self.calibration = seconds
            if code != 0 and not self.kept_late_file(code, err, src):
                self.fail(f"unkilled transfer exited {code}: {err.strip()}")
            problems, final, _ = self.inspect(src, dst, hold, originals)
            if self.check(problems, "unkilled run") and os.path.exists(src):
                # The file that appeared mid-run may be kept in SRC (it was not copied): move it as a user would.
                self.notes["unkilled run kept files in SRC"] += 1
                self.rerun_and_check(src, dst, hold, originals)
            else:
                self.check(final, "unkilled run (final state)")
        finally:
            self.cleanup(base)

    def finish_like_a_user(self, src, dst, hold, originals, first_error):
        """The rerun was refused: move DST files the remaining source lacks aside (into `hold`, part of the checked
        set), transfer the rest, move them back. Returns False if the move could not be completed."""
        error = first_error
        for attempt in range(3):
            self.notes[f"refusal: {refusal_kind(error)}"] += 1
            remaining = self.files_under(src) if os.path.isdir(src) else set()
            data_left = remaining - {self.CHECKSUM}
            for rel in sorted(self.files_under(dst) - remaining - {self.CHECKSUM}):
                target = os.path.join(hold, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(os.path.join(dst, rel), target)
            if "predates" in error and self.CHECKSUM in remaining:
                os.unlink(os.path.join(src, self.CHECKSUM))  # as the message advises
            self.check(self.inspect(src, dst, hold, originals)[0], "after moving transferred files aside")
            if not data_left:
                # Nothing of the source is left to move: the user removes the empty husk.
                if os.path.isdir(src):
                    shutil.rmtree(src)
                break
            code, _, err, timed_out = self.axds.run(*self.command(src, dst))
            if code == 0:
                break
            error = err.strip() + (" (timeout)" if timed_out else "")
            if code != 1:
                self.fail(f"transfer after moving files aside exited {code}: {error}")
                return False
        else:
            self.fail(f"transfer still refused after moving transferred files aside: {error}")
            return False
        for rel in sorted(self.files_under(hold)) if os.path.isdir(hold) else []:
            target = os.path.join(dst, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(hold, rel), target)
        return True

    def one_round(self):
        base = self.round_dir(self.shmdir)
        src, dst, hold = (os.path.join(base, n) for n in ("src", "dst", "hold"))
        try:
            originals = self.make(src)
            samples = [os.path.join(src, rel) for rel in list(originals)[::max(1, len(originals) // 40)]]
            plan = self.plan(lambda: not all(os.path.exists(p) for p in samples))
            # The file appears mid-copy: halfway to a timed kill, or halfway to where the removal began last time.
            appear = plan[1] / 2 if plan[0] == "time" else self.removal_start / 2
            killed, code, err = self.axds.run_killed(self.command(src, dst), plan,
                                                     during=(appear, self.late_writer(base, src, originals)))
            self.notes[f"kill plan: {plan[0]}"] += 1
            if killed:
                self.kills += 1
            else:
                self.completed_before_kill += 1
                if code != 0 and not self.kept_late_file(code, err, src):
                    self.fail(f"transfer exited {code} before the kill: {err.strip()}")
            problems, _, left = self.inspect(src, dst, hold, originals)
            if killed:
                if not os.path.isdir(dst):
                    state = "nothing copied"
                elif left == len(originals):
                    state = "copying/verifying (source intact)"
                elif left == 0:
                    state = "source removed"
                else:
                    state = "source partially removed"
                self.phases[state] += 1
            else:
                self.phases["completed before kill"] += 1
            if self.check(problems, "after the kill"):
                self.rerun_and_check(src, dst, hold, originals)
        finally:
            self.cleanup(base)

    def kept_late_file(self, code, err, src):
        """Whether a move's exit 1 only says that it kept the file that appeared mid-run (it was not copied), as it
        must: the source is still there holding it."""
        return code == 1 and "is not complete" in err and self.LATE in err and os.path.exists(os.path.join(src,
                                                                                                      self.LATE))

    def rerun_and_check(self, src, dst, hold, originals):
        code, _, err, timed_out = self.axds.run(*self.command(src, dst))
        if code == 1 and not timed_out:
            self.refused += 1
            if not self.finish_like_a_user(src, dst, hold, originals, err.strip()):
                self.check(self.inspect(src, dst, hold, originals)[0], "after the refused rerun")
                return
        elif code != 0:
            self.fail(f"rerun of the transfer exited {code}{' (timeout)' if timed_out else ''}: {err.strip()}")
        problems, final, _ = self.inspect(src, dst, hold, originals)
        self.check(problems, "after the rerun (invariant)")
        self.check(final, "after the rerun (final state)")


def refusal_kind(message):
    for key in ("does not account for", "no file the checksum can cover", "does not exist", "predates"):
        if key in message:
            return key
    return message[:60]


# ---------------------------------------------------------------------------------------------------------------------
# 3. axds delete DIR


class DeleteScenario(Scenario):
    name = "delete"

    def make(self, base):
        victim = os.path.join(base, "victim")
        n = 0
        for a in range(20):
            for b in range(5):
                d = os.path.join(victim, f"a{a:02d}", f"b{b}")
                os.makedirs(d)
                for c in range(50):
                    with open(os.path.join(d, f"f{c:02d}"), "wb") as f:
                        f.write(self.rng.randbytes(self.rng.randint(0, 512)))
                    n += 1
        # Outside the tree: a sibling whose name extends DIR's, and a directory reached only through symlinks.
        for name in ("victim_sibling", "outside"):
            for sub in ("", "inner"):
                os.makedirs(os.path.join(base, name, sub), exist_ok=True)
                for c in range(15):
                    with open(os.path.join(base, name, sub, f"keep{c:02d}"), "wb") as f:
                        f.write(self.rng.randbytes(self.rng.randint(1, 4096)))
        os.symlink(os.path.join(base, "outside"), os.path.join(victim, "link_to_outside"))
        os.symlink(os.path.join("..", "..", "..", "outside", "keep00"), os.path.join(victim, "a03", "b1", "link_file"))
        os.symlink("..", os.path.join(victim, "a07", "link_to_parent"))
        os.symlink(os.path.join("..", "victim_sibling"), os.path.join(victim, "link_to_sibling"))
        os.link(os.path.join(base, "outside", "keep01"), os.path.join(victim, "a11", "hardlink"))
        return victim, self.snapshot(base, victim)

    @staticmethod
    def snapshot(base, victim):
        """Everything under `base` except `victim`: relative path -> content digest, link target or 'dir'."""
        out = {}
        for directory, dirs, files in os.walk(base):
            if directory == base:
                dirs[:] = [d for d in dirs if os.path.join(base, d) != victim]
            for name in dirs + files:
                p = os.path.join(directory, name)
                rel = os.path.relpath(p, base)
                if rel == "victim":
                    continue
                if os.path.islink(p):
                    out[rel] = "link:" + os.readlink(p)
                elif os.path.isdir(p):
                    out[rel] = "dir"
                else:
                    out[rel] = file_sha(p)
        return out

    def inspect(self, base, victim, before, final):
        after = self.snapshot(base, victim)
        problems = []
        for rel, value in before.items():
            if rel not in after:
                problems.append(f"{rel} outside DIR was deleted")
            elif after[rel] != value:
                problems.append(f"{rel} outside DIR was changed")
        for rel in sorted(set(after) - set(before)):
            problems.append(f"{rel} appeared outside DIR")
        if final and os.path.lexists(victim):
            problems.append("DIR still exists")
        return problems

    def remaining(self, victim):
        return sum(len(files) for _, _, files in os.walk(victim)) if os.path.isdir(victim) else 0

    def calibrate(self):
        base = self.round_dir(self.workdir)
        try:
            victim, before = self.make(base)
            seconds, (code, _, err, _), _ = self.axds.timed("delete", victim)
            self.calibration = seconds
            if code != 0:
                self.fail(f"unkilled delete exited {code}: {err.strip()}")
            self.check(self.inspect(base, victim, before, final=True), "unkilled run final state")
        finally:
            self.cleanup(base)

    def one_round(self):
        base = self.round_dir(self.workdir)
        try:
            victim, before = self.make(base)
            total = self.remaining(victim)
            killed, code, err = self.axds.run_killed(["delete", victim], ("time", self.delay()))
            if killed:
                self.kills += 1
                left = self.remaining(victim)
                self.phases["nothing deleted" if left == total else "DIR gone" if not os.path.lexists(victim)
                            else "partially deleted"] += 1
            else:
                self.completed_before_kill += 1
                self.phases["completed before kill"] += 1
                if code != 0:
                    self.fail(f"delete exited {code} before the kill: {err.strip()}")
            self.check(self.inspect(base, victim, before, final=False), "after the kill")
            gone = not os.path.lexists(victim)
            code, _, err, timed_out = self.axds.run("delete", victim)
            if gone and code == 1 and "does not exist" in err:
                # Nothing was left to delete, and the CLI reports a path the user typed that does not exist (its
                # documented behaviour since the data-safety changes; before, it exited 0): a refusal, not a failure.
                self.refused += 1
                self.notes["refusal: DIR already gone"] += 1
            elif code != 0:
                self.fail(f"rerun of `axds delete` exited {code}{' (timeout)' if timed_out else ''}: {err.strip()}")
            self.check(self.inspect(base, victim, before, final=True), "after the rerun")
        finally:
            self.cleanup(base)


# ---------------------------------------------------------------------------------------------------------------------
# 4. axds log serve, SIGKILLed while a producer logs; then axds assemble

PRODUCER = r"""
import struct, sys
import numpy as np
sock, seed, count, size, onset, first, step, module_dir = sys.argv[1:]
count, size, first, step = int(count), int(size), int(first), int(step)
sys.path.insert(0, module_dir)
from axds_log_socket import LogSocketProducer
payloads = np.random.default_rng(int(seed)).integers(0, 256, (count, size), dtype=np.uint8)
producer = LogSocketProducer(sock)
print("ready", flush=True)
try:
    producer.log(1, 0, struct.pack("<Q", int(onset)))
    for i in range(count):
        producer.log(1, first + i * step, payloads[i])
    print("confirmed", producer.close(), flush=True)
except OSError as error:
    print("stopped after", producer.sent, "packages:", error, flush=True)
    sys.exit(3)
"""


def count_entries(directory):
    try:
        with os.scandir(directory) as items:
            return sum(1 for item in items if item.name.endswith(".npy"))
    except FileNotFoundError:
        return 0


class LogScenario(Scenario):
    name = "log"
    COUNT = 20_000
    SIZE = 256
    FIRST = 1_000
    STEP = 37

    def expected_entries(self, seed, onset):
        """timestamp -> the entry file bytes np.save writes for what the producer sends."""
        payloads = np.random.default_rng(seed).integers(0, 256, (self.COUNT, self.SIZE), dtype=np.uint8)
        source = bytes([1])
        header = npy_bytes(bytes(9 + self.SIZE))[:-(9 + self.SIZE)]
        expected = {0: npy_bytes(source + (0).to_bytes(8, "little") + struct.pack("<Q", onset))}
        for i in range(self.COUNT):
            ts = self.FIRST + i * self.STEP
            expected[ts] = header + source + ts.to_bytes(8, "little") + payloads[i].tobytes()
        return expected

    def serve(self, base):
        """Starts `axds log serve` and its producer. Returns (server, producer, logdir, seed, onset, t_started)."""
        out = os.path.join(base, "out")
        sock = os.path.join(base, "l.sock")
        os.makedirs(out)
        server = spawn([self.axds.binary, "log", "serve", out, "rig", "--socket", sock], pipes=True)
        ready = read_line(server, 30)
        if not ready.startswith(b"serving "):
            raise RuntimeError(f"`axds log serve` did not print its ready line: {ready!r}")
        seed = self.rng.getrandbits(63)
        onset = int(time.time() * 1e6)
        producer = spawn([PYTHON, "-c", PRODUCER, sock, str(seed), str(self.COUNT), str(self.SIZE), str(onset),
                          str(self.FIRST), str(self.STEP), PRODUCER_MODULE_DIR], pipes=True)
        line = read_line(producer, 60)
        started = time.monotonic()
        if line != b"ready\n":
            raise RuntimeError(f"the producer did not start: {line!r}")
        return server, producer, os.path.join(out, "rig_data_log"), seed, onset, started

    def classify(self, logdir, expected):
        """(complete {name: bytes}, partial {name: bytes}, problems)."""
        complete, partial, problems = {}, {}, []
        if not os.path.isdir(logdir):
            return complete, partial, problems
        for name in sorted(os.listdir(logdir)):
            if not name.endswith(".npy"):
                continue
            with open(os.path.join(logdir, name), "rb") as f:
                data = f.read()
            stem = name[:-4]
            try:
                source, ts = (int(x) for x in stem.split("_"))
            except ValueError:
                problems.append(f"unexpected file {name}")
                continue
            want = expected.get(ts) if source == 1 else None
            if want is None:
                problems.append(f"entry {name}: the producer never sent this timestamp")
            elif data == want:
                complete[name] = data
            elif len(data) < len(want) and want.startswith(data):
                partial[name] = data
            else:
                problems.append(f"entry {name} ({len(data)} bytes) differs from what the producer sent "
                                f"({len(want)} bytes)")
        if len(partial) > MAX_PARTIAL_ENTRIES:
            problems.append(f"{len(partial)} short entry files, more than the {MAX_PARTIAL_ENTRIES} writes that can be "
                            f"in flight")
        return complete, partial, problems

    def check_assembled(self, logdir, complete, partial, code, err, what):
        problems = []
        names = set(os.listdir(logdir))
        members = {}
        if "1_log.npz" in names:
            try:
                members = read_archive(os.path.join(logdir, "1_log.npz"))[0]
            except Exception as error:  # noqa: BLE001
                problems.append(f"1_log.npz is not a valid archive: {error}")
        missing = [n for n, data in complete.items() if members.get(n) != data]
        if missing:
            problems.append(f"{len(missing)} of {len(complete)} complete entries are not in 1_log.npz with their "
                            f"bytes, e.g. {missing[0]}")
        for name, data in complete.items():
            if name in names and open(os.path.join(logdir, name), "rb").read() != data:
                problems.append(f"complete entry {name} changed on disk")
        if partial:
            if code == 0:
                problems.append(f"`axds assemble` exited 0 although {len(partial)} short entries exist "
                                f"(e.g. {next(iter(partial))})")
            unnamed = [n for n in partial if n not in err and n[:-4] not in err]
            if unnamed:
                problems.append(f"stderr does not name the short entries {unnamed[:3]}: {err.strip()[:300]!r}")
            gone = [n for n, data in partial.items()
                    if n not in names or open(os.path.join(logdir, n), "rb").read() != data]
            if gone:
                problems.append(f"short entries removed or changed: {gone[:3]}")
            stray_members = [n for n in partial if n in members]
            if stray_members:
                problems.append(f"short entries archived: {stray_members[:3]}")
        else:
            if code != 0:
                problems.append(f"`axds assemble` exited {code}: {err.strip()}")
            left = sorted(n for n in names if n.endswith(".npy"))
            if left:
                problems.append(f"{len(left)} entry files left after a successful assembly, e.g. {left[0]}")
        temps = sorted(n for n in names if n.endswith(".partial"))
        if temps:
            problems.append(f"temporary file(s) left: {temps}")
        return self.check(problems, what)

    def calibrate(self):
        base = self.round_dir(self.workdir)
        server = producer = None
        try:
            server, producer, logdir, seed, onset, started = self.serve(base)
            code, out, err, _ = reap(producer, 120)
            if code != 0 or not out.startswith("confirmed"):
                self.fail(f"producer exited {code}: {out.strip()} {err.strip()}")
            # The logger writes behind the producer (its queue accepts packages before they reach the disk): the
            # kills are spread over the time until the last entry is on disk.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and count_entries(logdir) < self.COUNT + 1:
                time.sleep(0.005)
            self.calibration = time.monotonic() - started
            server.send_signal(signal.SIGINT)
            code, _, err, _ = reap(server, 60)
            if code != 0:
                self.fail(f"`axds log serve` exited {code} after SIGINT: {err.strip()}")
            expected = self.expected_entries(seed, onset)
            complete, partial, problems = self.classify(logdir, expected)
            if len(complete) != len(expected):
                problems.append(f"{len(complete)} of {len(expected)} entries complete after a clean stop")
            self.check(problems, "unkilled run entries")
            code, _, err, _ = self.axds.run("assemble", logdir)
            self.check_assembled(logdir, complete, partial, code, err, "unkilled run assembly")
        finally:
            for proc in (producer, server):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                if proc is not None and proc in _children:
                    reap(proc, 30)
            self.cleanup(base)

    def delay(self):
        return self.rng.uniform(0.05, 0.95) * self.calibration

    def one_round(self):
        base = self.round_dir(self.workdir)
        server = producer = None
        try:
            server, producer, logdir, seed, onset, started = self.serve(base)
            left = self.delay() - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)
            server.send_signal(signal.SIGKILL)
            code, _, _, _ = reap(server, 30)
            if code != -signal.SIGKILL:
                self.fail(f"`axds log serve` ended by itself with {code} before the kill")
            reap(producer, 60)
            expected = self.expected_entries(seed, onset)
            complete, partial, problems = self.classify(logdir, expected)
            if len(complete) < len(expected):
                self.kills += 1  # killed while it logged
            else:
                self.completed_before_kill += 1  # every entry was on disk already
            share = len(complete) / (self.COUNT + 1)
            self.phases[f"{'<25%' if share < 0.25 else '25-75%' if share < 0.75 else '>75%'} written, "
                        f"{min(len(partial), 3)}{'+' if len(partial) >= 3 else ''} short"] += 1
            self.notes["max short entries"] = max(self.notes["max short entries"], len(partial))
            self.check(problems, "after the kill")
            if not os.path.isdir(logdir):
                self.notes["killed before the log directory existed"] += 1
                return
            code, _, err, timed_out = self.axds.run("assemble", logdir)
            if timed_out:
                self.fail("`axds assemble` timed out")
            self.check_assembled(logdir, complete, partial, code, err,
                                 f"assembly after the kill ({len(complete)} complete, {len(partial)} short entries)")
        finally:
            for proc in (producer, server):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                if proc is not None and proc in _children:
                    reap(proc, 30)
            self.cleanup(base)


# ---------------------------------------------------------------------------------------------------------------------

SCENARIOS = [AssembleScenario, TransferScenario, DeleteScenario, LogScenario]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("axds", help="the axds binary")
    parser.add_argument("--rounds", type=int, default=20, help="kill rounds per scenario (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: chosen and printed)")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " +
                        ",".join(s.name for s in SCENARIOS))
    parser.add_argument("--keep-failed", action="store_true", help="keep the directories of failed rounds")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for all scenarios (default 480, under the ctest TIMEOUT of 600); rounds past a "
                             "scenario's share are skipped and reported")
    parser.add_argument("--workdir", default=None,
                        help="where the on-disk scenarios build their trees (default: the tempfile default)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only.split(",")]
    print(f"crash consistency: seed {seed} (replay: {os.path.basename(__file__)} AXDS --seed {seed}"
          f"{' --only ' + args.only if args.only else ''} --rounds {args.rounds})", flush=True)
    if not os.access(args.axds, os.X_OK):
        print(f"crash consistency: {args.axds} is not an executable")
        return 2
    shm_root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="axds-crash-", dir=args.workdir)
    shmdir = tempfile.mkdtemp(prefix="axds-crash-", dir=shm_root) if shm_root else workdir
    axds = Axds(os.path.abspath(args.axds))
    results = []
    previous_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        end = time.monotonic() + args.budget
        for index, cls in enumerate(chosen):
            scenario = cls(axds, seed, args.rounds, workdir, shmdir, args.keep_failed)
            share = (end - time.monotonic()) / (len(chosen) - index)
            scenario.run(time.monotonic() + share)
            results.append(scenario)
            print(scenario.summary(), flush=True)
    finally:
        kill_all_children()
        signal.signal(signal.SIGTERM, previous_term)
        if not args.keep_failed or all(not s.failures for s in results):
            shutil.rmtree(workdir, ignore_errors=True)
            if shmdir != workdir:
                shutil.rmtree(shmdir, ignore_errors=True)
    print()
    for scenario in results:
        print(scenario.summary())
    failed = [s for s in results if s.failures]
    for scenario in failed:
        rounds = sorted(scenario.failed_rounds)
        ran = scenario.rounds - scenario.skipped
        print(f"FAILED {scenario.name} (seed {seed}): {len(set(rounds) - {0})} of {ran} rounds"
              f"{' and the unkilled run' if 0 in rounds else ''}; replay with --seed {seed} --only {scenario.name}")
        kinds = collections.OrderedDict()  # the distinct failures, numbers and paths folded
        for round_no, message in scenario.failures:
            key = re.sub(r"\d+", "N", re.sub(r"'[^']*'|\S*/\S*", "X", message))[:160]
            kinds.setdefault(key, []).append((round_no, message))
        for occurrences in list(kinds.values())[:4]:
            round_no, message = occurrences[0]
            where = "the unkilled run" if round_no == 0 else f"round {round_no}"
            print(f"  {len(occurrences)}x, first in {where}: {message}")
    print(f"crash consistency: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
