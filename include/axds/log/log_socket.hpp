#pragma once
// Producers in other processes: a Unix-socket front door to a data_logger (the C++ side of what the Python library's
// shared input queue gives its producers, spec §6.3).
//
// Wire format (stream socket; any language can speak it, see README "Producers in other processes"):
//   producer → logger, per package: [n: u32 LE][n bytes = the §6.1 entry: source u8, time u64 LE, payload],
//                                   9 ≤ n ≤ log_socket_options::max_message_bytes;
//   producer, when done:            shutdown(SHUT_WR);
//   logger → producer, then:        [u64 LE: packages of this connection the logger accepted], and it closes.
// A connection whose count never arrives was cut off: only the packages the count confirms were accepted.

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace axds {

class data_logger;
struct log_package;

/// Tuning of a log_socket_server.
struct log_socket_options {
    /// Longest entry accepted (payload + 9 bytes); a longer frame closes that connection. At least 9.
    std::size_t max_message_bytes = std::size_t{64} << 20;
    /// After close(): how long connected producers may keep sending before they are cut off.
    std::chrono::milliseconds shutdown_grace{5000};
    /// Bytes of large messages (those that do not fit one connection's 64 KiB read buffer) being received at once,
    /// over all connections together; at least max_message_bytes. A message's bytes are reserved when its header
    /// arrives and released once the logger has taken the package; while the budget is spent, further large
    /// messages wait (their producers' sends block). Memory is allocated as bytes arrive, never as a header claims.
    std::size_t receive_budget_bytes = std::size_t{256} << 20;
    /// Producers connected at once; more are refused (closed at once, with a warning) until some leave. With the
    /// budget this bounds the server's memory: receive_budget_bytes + max_connections × ~128 KiB (plus the
    /// logger's own queue_capacity_bytes). Capped at half the descriptors the process may open (RLIMIT_NOFILE)
    /// minus 16, so that the logger can still create entry files with every producer connected.
    std::size_t max_connections = 256;
};

/// What one async_run() of a log_socket_server did.
struct log_socket_report {
    std::uint64_t connections = 0;          ///< producers that connected
    std::uint64_t packages = 0;             ///< packages handed to the logger (each confirmed to its producer)
    std::uint64_t dropped_connections = 0;  ///< closed for a malformed frame, an early end, or the shutdown grace
    std::uint64_t refused_connections = 0;  ///< closed at once: max_connections were connected already
    std::string first_error;                ///< what ended the first dropped connection

    [[nodiscard]] bool clean() const noexcept { return dropped_connections == 0; }
};

/// Listens on a Unix stream socket and hands every package producers send there to `logger` (async_log: a full
/// queue stops reading, which blocks the producers' sends — backpressure, never drops).
///
/// The socket is bound by the constructor, so producers may connect as soon as it returns (their packages wait in
/// the socket until async_run() serves them). The logger must outlive async_run(); it may be stopped or running:
/// packages accepted while it is stopped are written by its next start.
class log_socket_server {
public:
    /// Binds `socket_path` (at most 107 bytes). A stale socket left by a dead server is replaced. Throws
    /// value_error for a path that is too long or names something other than a socket, and os_error when another
    /// server answers on the path or the socket cannot be bound.
    log_socket_server(asio::any_io_executor executor, data_logger& logger, std::filesystem::path socket_path,
                      log_socket_options options = {});
    /// Closes (as close()) and removes the socket file.
    ~log_socket_server();
    log_socket_server(const log_socket_server&) = delete;
    log_socket_server& operator=(const log_socket_server&) = delete;

    /// Serves until close() or a cancellation signal on the awaiting coroutine's slot: then stops accepting, lets
    /// connected producers finish (each gets its count) for up to shutdown_grace, cuts off the rest, removes the
    /// socket file and returns the report. A dropped connection prints a warning naming the producer and why.
    asio::awaitable<log_socket_report> async_run();

    /// Requests the end of async_run() (any thread; idempotent).
    void close();

    /// The socket's path.
    [[nodiscard]] const std::filesystem::path& path() const noexcept;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

/// A producer's end of a log_socket_server connection: plain blocking calls, for other processes (or threads).
/// One connection keeps its packages in order; use it from one thread at a time (or one producer per thread).
class log_socket_producer {
public:
    /// Connects to the server at `socket_path`. Throws value_error for a path over 107 bytes and os_error naming
    /// the path when no server listens there.
    explicit log_socket_producer(const std::filesystem::path& socket_path);
    /// close() if it was not called; a failure there prints a warning (destructors do not throw).
    ~log_socket_producer();
    log_socket_producer(log_socket_producer&& other) noexcept;
    log_socket_producer& operator=(log_socket_producer&& other) noexcept;
    log_socket_producer(const log_socket_producer&) = delete;
    log_socket_producer& operator=(const log_socket_producer&) = delete;

    /// Sends one package; blocks while the logger's queue (and then the socket) is full. Throws os_error when the
    /// server has closed the connection, and value_error after close().
    void log(const log_package& package);
    /// Sends the §7.3 onset entry of `source_id` (time 0, payload = current UTC µs).
    void log_onset(std::uint8_t source_id);

    /// Ends the connection and waits for the server's count. Returns the packages it accepted; throws os_error,
    /// naming the socket and both counts, when it confirms fewer than were sent or does not answer.
    std::uint64_t close();

    /// Packages sent so far on this connection.
    [[nodiscard]] std::uint64_t sent() const noexcept { return sent_; }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::uint64_t sent_ = 0;
};

}  // namespace axds
