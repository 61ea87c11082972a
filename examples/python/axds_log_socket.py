"""A Python producer for an axds data logger served on a Unix socket (axds::log_socket_server, `axds log serve`).

Standard library only; copy it next to your acquisition code. The entries the logger writes are the ones the Python
library's DataLogger writes (`SSS_TTTTTTTTTTTTTTTTTTTT.npy`), so its archives and LogArchiveReader work unchanged.

    from axds_log_socket import LogSocketProducer

    with LogSocketProducer("/run/rig/logger.sock") as producer:
        producer.log_onset(1)
        producer.log(1, elapsed_us, frame_bytes)   # bytes, bytearray, memoryview or a uint8 numpy array
    # leaving the block confirms: it raises if the logger accepted fewer packages than were sent

Wire format (see include/axds/log/log_socket.hpp): per package [n: u32 LE][source: u8][time: u64 LE][payload] with
n = 9 + len(payload); when done, shutdown(SHUT_WR) and read [u64 LE], the packages the logger accepted.
"""

import socket
import struct
import time

_HEADER = struct.Struct("<IBQ")


class LogSocketProducer:
    """One connection to the logger; packages of one connection keep their order."""

    def __init__(self, socket_path):
        self._path = str(socket_path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._socket.connect(self._path)
        except OSError as error:
            self._socket.close()
            raise ConnectionError(
                f"Unable to connect to the data logger socket at '{self._path}': {error.strerror}. "
                "Expected `axds log serve` or a log_socket_server listening there.") from error
        self.sent = 0

    def log(self, source_id, acquisition_time, payload):
        """Sends one package; blocks while the logger is behind (backpressure, never drops)."""
        if self._socket is None:
            raise ValueError(f"Unable to log to the data logger socket at '{self._path}': this producer was closed.")
        if not 0 <= source_id <= 255 or not 0 <= acquisition_time < 2**64:
            raise OverflowError(f"source_id must fit uint8 and acquisition_time uint64, got {source_id}, "
                                f"{acquisition_time}.")
        data = memoryview(payload).cast("B")
        header = _HEADER.pack(9 + data.nbytes, source_id, acquisition_time)
        done = self._socket.sendmsg([header, data])  # one system call for header and payload
        if done < len(header):
            self._socket.sendall(header[done:])
            done = len(header)
        if done - len(header) < data.nbytes:
            self._socket.sendall(data[done - len(header):])
        self.sent += 1

    def log_onset(self, source_id):
        """The onset entry of a source: time 0, payload = the current UTC time in microseconds."""
        self.log(source_id, 0, struct.pack("<Q", time.time_ns() // 1000))

    def close(self):
        """Ends the connection; returns the packages the logger accepted, raises if that is fewer than were sent."""
        if self._socket is None:
            raise ValueError(f"The producer for '{self._path}' is already closed.")
        connection, self._socket = self._socket, None
        answer = b""
        try:
            connection.shutdown(socket.SHUT_WR)
            while len(answer) < 8:
                chunk = connection.recv(8 - len(answer))
                if not chunk:
                    break
                answer += chunk
        finally:
            connection.close()
        if len(answer) < 8:
            raise ConnectionError(f"The data logger socket at '{self._path}' closed the connection without "
                                  f"confirming the {self.sent} packages sent.")
        accepted = struct.unpack("<Q", answer)[0]
        if accepted != self.sent:
            raise ConnectionError(f"The data logger socket at '{self._path}' confirmed {accepted} of the "
                                  f"{self.sent} packages sent.")
        return accepted

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._socket is not None:
            self.close()
        return False
