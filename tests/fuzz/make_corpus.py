#!/usr/bin/env python3
"""Writes the fuzz harness's seed corpus (tests/fuzz/corpus/<target>/), the checked-in files the mutator starts from.

Seeds are small valid inputs of every shape each parser meets: what numpy, Python's zipfile, PyYAML and the axds tools
write. Run from the repository root after a build (it uses build/axds to assemble a log archive):

    /usr/bin/python3 tests/fuzz/make_corpus.py build
"""

import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy_bytes(array, version=None):
    out = io.BytesIO()
    if version is None:
        np.save(out, array)
    else:
        np.lib.format.write_array(out, array, version=version)
    return out.getvalue()


def entry(source, time, payload):
    return np.concatenate([np.array([source], np.uint8), np.array([time], np.uint64).view(np.uint8),
                           np.frombuffer(payload, np.uint8)])


def npy_seeds():
    put("npy_header", "log_entry", npy_bytes(entry(1, 42, b"payload")))
    put("npy_header", "onset_entry", npy_bytes(entry(3, 0, struct.pack("<Q", 1_700_000_000_000_000))))
    put("npy_header", "empty_u1", npy_bytes(np.zeros(0, np.uint8)))
    put("npy_header", "scalar_u8", npy_bytes(np.uint64(7)))
    put("npy_header", "f8_2d_fortran", npy_bytes(np.asfortranarray(np.arange(6, dtype="<f8").reshape(2, 3))))
    put("npy_header", "i4_3d", npy_bytes(np.zeros((2, 1, 2), ">i4")))
    put("npy_header", "version2", npy_bytes(np.arange(5, dtype=np.uint8), version=(2, 0)))
    put("npy_header", "version3", npy_bytes(np.arange(3, dtype=np.uint8), version=(3, 0)))
    put("npy_header", "structured", npy_bytes(np.zeros(2, [("a", "<i4"), ("b", "u1")])))


def zip_with(members, compression=zipfile.ZIP_STORED, force_zip64=False):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as z:
        for name, data in members:
            with z.open(name, "w", force_zip64=force_zip64) as f:
                f.write(data)
    return out.getvalue()


def npz_seeds(axds):
    out = io.BytesIO()
    np.savez(out, a=np.arange(4, dtype=np.uint8), b=entry(1, 5, b"xy"))
    put("npz_archive", "savez", out.getvalue())
    out = io.BytesIO()
    np.savez_compressed(out, a=np.arange(40, dtype=np.uint8) % 3, b=np.zeros(30, np.uint8))
    put("npz_archive", "savez_compressed", out.getvalue())
    members = [("001_00000000000000000000.npy", npy_bytes(entry(1, 0, struct.pack("<Q", 1_700_000_000_000_000)))),
               ("001_00000000000000000010.npy", npy_bytes(entry(1, 10, b"abcd")))]
    put("npz_archive", "zip64_stored", zip_with(members, force_zip64=True))
    put("npz_archive", "zip64_deflated", zip_with(members, zipfile.ZIP_DEFLATED, force_zip64=True))
    put("npz_archive", "empty_zip", zip_with([]))
    # A real log archive, assembled by axds from entries numpy wrote.
    with tempfile.TemporaryDirectory() as tmp:
        logs = os.path.join(tmp, "rig_data_log")
        os.makedirs(logs)
        np.save(os.path.join(logs, "002_00000000000000000000.npy"),
                entry(2, 0, struct.pack("<Q", 1_700_000_000_000_000)))
        for t, size in ((10, 4), (25, 6), (40, 0)):
            np.save(os.path.join(logs, "002_%020d.npy" % t), entry(2, t, bytes([7]) * size))
        subprocess.run([axds, "assemble", logs, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(logs, "2_log.npz"), "rb") as f:
            put("npz_archive", "axds_log_archive", f.read())


def yaml_seeds():
    put("yaml", "config", yaml.dump({"name": "café ü", "count": 3, "ratio": 0.5, "flag": True, "maybe": None,
                                     "paths": ["/a", "b/c"], "inner": {"path": "/default", "color": "red"},
                                     "em": {}, "el": [], "multiline": "line1\nline2\n"},
                                    explicit_start=True, explicit_end=True, sort_keys=False, width=200))
    put("yaml", "scalars", "---\nint: 0x1F\noct: 0o17\nsexa: 190:20:30\nbig: 18446744073709551616\nneg: -5\n"
                           "inf: .inf\nnan: .NaN\nyes: yes\noff: OFF\ntilde: ~\nfloat: 6.8523015e+5\n"
                           "date: 2001-12-14t21:59:43.10-05:00\nbin: !!binary aGVsbG8=\nstr: !!str 12\n...\n")
    put("yaml", "anchors", "base: &b {x: 1, y: [1, 2, &c 3]}\nmerged:\n  <<: *b\n  z: *c\nlist: [*b, *b]\n")
    put("yaml", "nested", "a: [[[[{b: [[{c: d}]]}]]]]\n")
    put("yaml", "block_scalars", "lit: |\n  one\n  two\nfold: >-\n  a\n  b\nquoted: \"tab\\there \\u00e9\"\n"
                                 "single: 'it''s'\n? complex key\n: value\n")
    put("yaml", "flow_sequence", "- 1\n- [2, 3]\n- {4: 5}\n- !!set {a, b}\n")


def tracker_seeds():
    # The layout axds and PyYAML's CDumper write (the fast path reads exactly this).
    put("tracker", "fast_layout", "---\njobs:\n"
        "  84b734cebb28a28f:\n    job_name: job\n    specifier: '0'\n    status: 2\n    executor_id: node-1\n"
        "    error_message: null\n    started_at: 1700000000000000\n    completed_at: 1700000000250000\n"
        "  5a6ab48314d28f6b:\n    job_name: job_b\n    specifier: ''\n    status: 0\n    executor_id: null\n"
        "    error_message: null\n    started_at: null\n    completed_at: null\n...\n")
    doc = {"jobs": {
        "5a6ab48314d28f6b": {"job_name": "sort cells", "specifier": "session 1", "status": 3,
                             "executor_id": "node-7", "error_message": "ValueError: bad frame\nline 2",
                             "started_at": 1_700_000_000_000_000, "completed_at": 1_700_000_000_500_000},
        "0000000000000001": {"job_name": "café", "specifier": "", "status": 0, "executor_id": None,
                             "error_message": None, "started_at": None, "completed_at": None}}}
    put("tracker", "pyyaml_dump", yaml.dump(doc, explicit_start=True, explicit_end=True, sort_keys=False, width=200))
    put("tracker", "empty", "---\njobs: {}\n...\n")
    put("tracker", "minimal", "jobs:\n  a1:\n    job_name: j\n    status: 1\n")


def frame(source, time, payload):
    body = bytes([source]) + struct.pack("<Q", time) + payload
    return struct.pack("<I", len(body)) + body


def frame_seeds():
    put("log_frames", "one_frame", frame(1, 42, b"hello"))
    put("log_frames", "onset_and_two", frame(2, 0, struct.pack("<Q", 1_700_000_000_000_000)) + frame(2, 5, b"")
        + frame(2, 6, bytes(range(200))))
    put("log_frames", "largest", frame(3, 7, bytes(1024 - 9)))
    put("log_frames", "too_long", frame(4, 8, bytes(1024 - 8)))
    put("log_frames", "empty_stream", b"")


def cli_seeds():
    commands = [["checksum", "/tmp/data", "--workers", "2", "--no-save", "--json"],
                ["transfer", "a", "b", "--verify", "--remove-source", "--threads", "4"],
                ["delete", "/tmp/x", "--force-root"],
                ["assemble", "logs", "--workers", "0", "--keep-sources", "--verify", "--json"],
                ["archive", "info", "a.npz", "--json"],
                ["archive", "dump", "a.npz", "--keys", "001_00000000000000000042", "--limit", "3"],
                ["tracker", "retry", "t.yaml", "--create"],
                ["log", "serve", "out", "rig", "--socket", "/tmp/s", "--assemble", "--quiet"],
                ["--help"]]
    for i, words in enumerate(commands):
        put("cli_args", f"command_{i}", "\0".join(words))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    npy_seeds()
    npz_seeds(os.path.join(build, "axds"))
    yaml_seeds()
    tracker_seeds()
    frame_seeds()
    cli_seeds()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
