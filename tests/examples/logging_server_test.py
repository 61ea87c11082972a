"""Drives ads_example_logging_server with real client sockets on 127.0.0.1 (ctest: example_logging_server_clients).

Usage: logging_server_test.py /path/to/ads_example_logging_server

Six client threads stream framed log messages concurrently while another client keeps pinging and asking for the
status (the server must answer while it logs); one client sends a malformed frame and is dropped without affecting
the others. After a shutdown request the archives are read back with numpy and every payload is checked."""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

import numpy as np

SERVER = sys.argv[1]
SOURCES = 6
MESSAGES = 700
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAILED:", what)


def frame(kind, body=b""):
    return struct.pack("<I", len(body) + 1) + kind + body


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def request(sock, kind, body=b""):
    sock.sendall(frame(kind, body))
    length = struct.unpack("<I", recv_exact(sock, 4))[0]
    reply = recv_exact(sock, length)
    assert reply[:1] == kind, reply[:1]
    return reply[1:]


def payload(source, i):
    return bytes((source * 13 + i + b) % 256 for b in range(1 + (i * 53 + source) % 900))


def producer(port, source, errors):
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for i in range(MESSAGES):
                sock.sendall(frame(b"L", bytes([source]) + payload(source, i)))
            request(sock, b"S")  # every earlier frame of this connection has been taken
    except Exception as e:  # noqa: BLE001 - reported as a test failure
        errors.append(f"producer {source}: {e!r}")


with tempfile.TemporaryDirectory() as tmp:
    proc = subprocess.Popen([SERVER, "--port", "0", "--dir", tmp], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        check(line.startswith("listening on 127.0.0.1:"), f"banner: {line!r}")
        port = int(line.rsplit(":", 1)[1])

        # A bad client: a frame claiming 1 GiB is refused and that connection closed; the server keeps serving.
        bad = socket.create_connection(("127.0.0.1", port))
        bad.sendall(struct.pack("<I", 1 << 30) + b"L")
        bad.settimeout(10)
        try:
            closed = bad.recv(1) == b""
        except ConnectionResetError:  # unread bytes make the close a reset
            closed = True
        check(closed, "oversized frame closes the connection")
        bad.close()

        errors = []
        threads = [threading.Thread(target=producer, args=(port, s, errors)) for s in range(1, SOURCES + 1)]
        for t in threads:
            t.start()
        # Meanwhile, another client is answered promptly and repeatedly.
        with socket.create_connection(("127.0.0.1", port)) as control:
            control.settimeout(10)
            answered = 0
            while any(t.is_alive() for t in threads):
                check(request(control, b"P", b"hello %d" % answered) == b"hello %d" % answered, "ping echo")
                status = json.loads(request(control, b"S"))
                check(status["clients"] >= 1, f"status: {status}")
                answered += 1
            for t in threads:
                t.join()
            check(not errors, f"producers: {errors}")
            check(answered > 0, "control client answered while producers ran")
            status = json.loads(request(control, b"S"))
            check(status["messages"] == SOURCES * MESSAGES, f"messages counted: {status}")
            result = json.loads(request(control, b"Q"))
        check(result["written"] == SOURCES * (MESSAGES + 1) and result["failed"] == 0, f"shutdown: {result}")
        check(len(result["archives"]) == SOURCES, f"archives: {result['archives']}")
        check(proc.wait(timeout=30) == 0, f"server exit code {proc.returncode}")

        # numpy reads every message back, in the order each client sent them.
        log_dir = os.path.join(tmp, "server_data_log")
        for source in range(1, SOURCES + 1):
            with np.load(os.path.join(log_dir, f"{source}_log.npz"), allow_pickle=False) as archive:
                keys = sorted(archive.files, key=lambda k: int(k.split("_")[1]))
                check(len(keys) == MESSAGES + 1, f"source {source}: {len(keys)} members")
                onset = archive[keys[0]]
                check(int.from_bytes(onset[1:9].tobytes(), "little") == 0 and onset.size == 17,
                      f"source {source}: onset entry")
                for i, key in enumerate(keys[1:]):
                    data = archive[key]
                    if data[0] != source or data[9:].tobytes() != payload(source, i):
                        check(False, f"source {source} message {i} differs")
                        break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

print("failures:", len(failures))
sys.exit(1 if failures else 0)
