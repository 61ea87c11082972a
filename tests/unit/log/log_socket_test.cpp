#include <axds/log/log_socket.hpp>

#include "support/child_process.hpp"
#include "support/descriptors.hpp"
#include "support/io_thread.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/console.hpp>
#include <axds/error.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_package.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::data_logger;
using axds::log_package;
using axds::log_socket_options;
using axds::log_socket_producer;
using axds::log_socket_report;
using axds::log_socket_server;
using axds::test::child_process;
using axds::test::io_thread;
using axds::test::message_contains;
using axds::test::temp_dir;
using Catch::Matchers::Contains;

namespace {

/// The payload the helper producer (tests/helpers/log_producer.cpp) sends as package `i` of `source`.
log_package expected_package(std::uint8_t source, std::uint64_t i, std::size_t size) {
    log_package package{.source_id = source, .acquisition_time = i};
    package.payload.resize(size);
    for (std::size_t j = 0; j < size; ++j) {
        package.payload[j] = static_cast<std::uint8_t>((i * 31 + j * 7 + source) & 0xFFU);
    }
    return package;
}

/// Every entry of a helper producer is on disk, byte for byte as np.save would write it, and its onset exists.
void check_entries(const fs::path& dir, std::uint8_t source, std::uint64_t count, std::size_t size) {
    const fs::path onset = dir / axds::log_entry_file_name(source, 0);
    REQUIRE(fs::exists(onset));
    CHECK(fs::file_size(onset) == 128 + 9 + 8);
    std::size_t mismatched = 0;
    for (std::uint64_t i = 1; i <= count; ++i) {
        const log_package package = expected_package(source, i, size);
        const std::vector<std::uint8_t> bytes = package.npy_file_bytes();
        if (axds::test::read_file(dir / package.file_name()) != std::string(bytes.begin(), bytes.end())) {
            ++mismatched;
        }
    }
    CHECK(mismatched == 0);
}

std::future<log_socket_report> run_server(io_thread& io, log_socket_server& server) {
    return asio::co_spawn(io.executor(), server.async_run(), asio::use_future);
}

/// A raw client for malformed traffic: connects to `path` and returns the descriptor.
int raw_connect(const fs::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    return fd;
}

void send_all(int fd, const std::vector<std::uint8_t>& bytes) {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

/// One frame of the wire format: [n u32 LE][source][time u64 LE][payload].
std::vector<std::uint8_t> frame(std::uint8_t source, std::uint64_t time, std::size_t payload_size) {
    const auto n = static_cast<std::uint32_t>(9 + payload_size);
    std::vector<std::uint8_t> bytes{static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8U),
                                    static_cast<std::uint8_t>(n >> 16U), static_cast<std::uint8_t>(n >> 24U), source};
    for (int b = 0; b < 8; ++b) {
        bytes.push_back(static_cast<std::uint8_t>(time >> (8 * b)));
    }
    bytes.resize(bytes.size() + payload_size, 0xAB);
    return bytes;
}

/// Half-closes a raw client and reads what the server answers until it closes (the 8-byte count, or nothing).
std::size_t answer_size(int fd) {
    ::shutdown(fd, SHUT_WR);
    char buffer[64];
    std::size_t total = 0;
    for (ssize_t n = 0; (n = ::read(fd, buffer, sizeof buffer)) > 0;) {
        total += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return total;
}

constexpr const char* python_producer = R"(
import socket, struct, sys
path, source, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
for i in range(1, count + 1):
    payload = bytes(((i * 31 + j * 7 + source) & 0xFF) for j in range(40))
    s.sendall(struct.pack('<IBQ', 9 + len(payload), source, i) + payload)
s.shutdown(socket.SHUT_WR)
answer = b''
while len(answer) < 8:
    chunk = s.recv(8 - len(answer))
    if not chunk:
        break
    answer += chunk
print('confirmed', struct.unpack('<Q', answer)[0])
)";

/// A started data logger named `name` in a temporary directory, and the path for its socket there.
struct started_logger {
    explicit started_logger(const std::string& name)
        : logger(io.executor(), tmp.path(), name), socket_path(tmp.path() / (name + ".sock")) {
        logger.start();
    }

    temp_dir tmp;
    io_thread io;
    data_logger logger;
    fs::path socket_path;
};

}  // namespace

TEST_CASE("log socket takes packages from producer processes and a python3 producer, every entry byte-checked",
          "[log][socket]") {
    started_logger rig("rig");
    auto& [tmp, io, logger, socket_path] = rig;
    log_socket_server server(io.executor(), logger, socket_path);
    REQUIRE(fs::is_socket(socket_path));
    auto done = run_server(io, server);

    std::vector<child_process> producers;
    for (int source = 1; source <= 3; ++source) {
        producers.emplace_back(
            std::vector<std::string>{AXDS_LOG_PRODUCER, socket_path.string(), std::to_string(source), "2000", "100"});
    }
    child_process python({AXDS_PYTHON3, "-c", python_producer, socket_path.string(), "9", "500"});
    for (auto& producer : producers) {
        CHECK(producer.read_line() == "confirmed 2001");
        CHECK(producer.wait() == 0);
    }
    CHECK(python.read_line() == "confirmed 500");
    CHECK(python.wait() == 0);

    server.close();
    const log_socket_report report = done.get();
    CHECK(report.connections == 4);
    CHECK(report.packages == 3 * 2001 + 500);
    CHECK(report.clean());
    CHECK_FALSE(fs::exists(socket_path));
    const auto written = logger.stop();
    CHECK(written.entries_written == 3 * 2001 + 500);
    for (std::uint8_t source = 1; source <= 3; ++source) {
        check_entries(logger.output_directory(), source, 2000, 100);
    }
    std::size_t python_mismatched = 0;
    for (std::uint64_t i = 1; i <= 500; ++i) {
        const log_package package = expected_package(9, i, 40);
        const auto bytes = package.npy_file_bytes();
        python_mismatched += axds::test::read_file(logger.output_directory() / package.file_name()) !=
                             std::string(bytes.begin(), bytes.end());
    }
    CHECK(python_mismatched == 0);
}

TEST_CASE("log socket backpressure: a full queue blocks the producer process, which finishes once the logger runs",
          "[log][socket]") {
    temp_dir tmp;
    io_thread io;
    data_logger logger(io.executor(), tmp.path(), "slow", {.queue_capacity_bytes = 4096});
    log_socket_server server(io.executor(), logger, tmp.path() / "slow.sock");
    auto done = run_server(io, server);
    // 1,000 x 1 KiB: more than the queue (3 packages) and the socket's buffers hold while the logger is stopped.
    child_process producer({AXDS_LOG_PRODUCER, (tmp.path() / "slow.sock").string(), "4", "1000", "1024"});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    CHECK(producer.running());  // blocked in send, not failed
    CHECK(logger.queued_bytes() <= 4096);
    logger.start();
    CHECK(producer.read_line() == "confirmed 1001");
    CHECK(producer.wait() == 0);
    server.close();
    CHECK(done.get().packages == 1001);
    CHECK(logger.stop().entries_written == 1001);
    check_entries(logger.output_directory(), 4, 1000, 1024);
}

TEST_CASE("log socket drops a malformed or truncated producer alone and keeps what it accepted", "[log][socket]") {
    started_logger rig("mixed");
    auto& [tmp, io, logger, socket_path] = rig;
    log_socket_server server(io.executor(), logger, socket_path, {.max_message_bytes = 4096});
    const axds::scoped_warning_capture warnings;
    auto done = run_server(io, server);

    log_socket_producer good(socket_path);
    good.log(expected_package(1, 1, 10));

    SECTION("a frame shorter than source id + time") {
        const int bad = raw_connect(socket_path);
        send_all(bad, frame(2, 1, 0));
        send_all(bad, {3, 0, 0, 0, 2, 0, 0});  // n = 3
        CHECK(answer_size(bad) == 0);          // no count: the producer learns it was dropped
        good.log(expected_package(1, 2, 10));
        CHECK(good.close() == 2);
        server.close();
        const log_socket_report report = done.get();
        CHECK(report.dropped_connections == 1);
        CHECK(report.packages == 3);
        CHECK_THAT(report.first_error, Contains("a message of 3 bytes; expected 9 to 4096 bytes"));
    }
    SECTION("a frame over max_message_bytes") {
        const int bad = raw_connect(socket_path);
        send_all(bad, frame(2, 1, 5000));
        CHECK(answer_size(bad) == 0);
        CHECK(good.close() == 1);
        server.close();
        const log_socket_report report = done.get();
        CHECK(report.dropped_connections == 1);
        CHECK(report.packages == 1);
        CHECK_THAT(report.first_error, Contains("a message of 5009 bytes; expected 9 to 4096 bytes"));
    }
    SECTION("a connection that ends inside a message") {
        const int bad = raw_connect(socket_path);
        send_all(bad, frame(2, 1, 0));
        std::vector<std::uint8_t> partial = frame(2, 2, 100);
        partial.resize(4 + 50);
        send_all(bad, partial);
        CHECK(answer_size(bad) == 0);
        CHECK(good.close() == 1);
        server.close();
        const log_socket_report report = done.get();
        CHECK(report.dropped_connections == 1);
        CHECK(report.packages == 2);
        CHECK_THAT(report.first_error, Contains("ended inside a message (50 of 109 bytes)"));
    }
    // Exactly one warning, naming the socket and the accepted count; the good producer and the accepted frame of the
    // bad one were written.
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages()[0], Contains(socket_path.string()) && Contains("dropped producer"));
    const auto written = logger.stop();
    CHECK(written.entries_written >= 1);
    CHECK(fs::exists(logger.output_directory() / axds::log_entry_file_name(1, 1)));
}

TEST_CASE("log socket cuts off a producer still connected after the shutdown grace, and its close() says so",
          "[log][socket]") {
    started_logger rig("grace");
    auto& [tmp, io, logger, socket_path] = rig;
    log_socket_server server(io.executor(), logger, socket_path, {.shutdown_grace = std::chrono::milliseconds(200)});
    const axds::scoped_warning_capture warnings;
    auto done = run_server(io, server);
    log_socket_producer idle(socket_path);
    for (std::uint64_t i = 1; i <= 5; ++i) {
        idle.log(expected_package(3, i, 8));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the server has read the five
    const auto start = std::chrono::steady_clock::now();
    server.close();
    const log_socket_report report = done.get();
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(150));
    CHECK(report.connections == 1);
    CHECK(report.packages == 5);
    CHECK(report.dropped_connections == 1);
    CHECK_THAT(report.first_error, Contains("cut off when the server closed (shutdown grace 200 ms)"));
    CHECK(warnings.messages().size() == 1);
    CHECK_THROWS_MATCHES(idle.close(), axds::os_error,
                         message_contains("closed the connection without confirming the 5 packages"));
    CHECK(logger.stop().entries_written == 5);
}

TEST_CASE("log socket refuses producers beyond max_connections and serves the others", "[log][socket]") {
    started_logger rig("crowd");
    auto& [tmp, io, logger, socket_path] = rig;
    log_socket_server server(io.executor(), logger, socket_path, {.max_connections = 1});
    const axds::scoped_warning_capture warnings;
    auto done = run_server(io, server);
    log_socket_producer first(socket_path);
    first.log(expected_package(4, 1, 8));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the server has taken the first connection
    log_socket_producer second(socket_path);                      // accepted by the kernel, closed by the server
    CHECK_THROWS_AS(
        [&] {
            second.log(expected_package(4, 2, 8));
            (void)second.close();
        }(),
        axds::os_error);
    CHECK(first.close() == 1);
    server.close();
    const log_socket_report report = done.get();
    CHECK(report.connections == 1);
    CHECK(report.refused_connections == 1);
    CHECK(report.packages == 1);
    REQUIRE_FALSE(warnings.messages().empty());
    CHECK_THAT(warnings.messages().front(), Contains("refused a producer") && Contains("max_connections"));
    CHECK(logger.stop().entries_written == 1);
}

// Found by a hostile-user run: one accept that failed for want of a descriptor (EMFILE) stopped `axds log serve`
// from accepting producers for the rest of the session. Such failures are now waited out.
TEST_CASE("log socket keeps accepting producers after the process ran out of descriptors for a while",
          "[log][socket]") {
    AXDS_SKIP_IF(axds::test::sanitized_build, axds::test::sanitized_skip_reason);
    started_logger rig("scarce");
    auto& [tmp, io, logger, socket_path] = rig;
    log_socket_server server(io.executor(), logger, socket_path);
    const axds::scoped_warning_capture warnings;
    auto done = run_server(io, server);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the server waits for producers

    // Every descriptor taken (the limit lowered to what is open now plus a few, the rest filled), but one for the
    // producer's socket: the server's accept of it fails with EMFILE.
    axds::test::scoped_descriptor_limit scarce(8);
    REQUIRE(scarce.ok());
    axds::test::descriptor_fillers fillers;
    fillers.release_one();
    const int producer = raw_connect(socket_path);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few failed accepts
    fillers.release();
    scarce.restore();
    CHECK(fillers.exhausted() == EMFILE);
    send_all(producer, frame(6, 1, 8));
    CHECK(answer_size(producer) == 8);  // served: its count came back
    {
        log_socket_producer later(socket_path);
        later.log(expected_package(6, 2, 8));
        CHECK(later.close() == 1);
    }
    server.close();
    const log_socket_report report = done.get();
    CHECK(report.connections == 2);
    CHECK(report.packages == 2);
    const auto& said = warnings.messages();
    CHECK(std::any_of(said.begin(), said.end(), [](const std::string& m) {
        return m.find("cannot accept producers for now") != std::string::npos;
    }));
    CHECK(std::any_of(said.begin(), said.end(),
                      [](const std::string& m) { return m.find("accepts producers again") != std::string::npos; }));
    CHECK(logger.stop().entries_written == 2);
}

TEST_CASE("log socket leaves half the descriptors the process may open to the logger", "[log][socket]") {
    started_logger rig("capped");
    auto& [tmp, io, logger, socket_path] = rig;
    axds::test::scoped_descriptor_limit low(60);
    REQUIRE(low.ok());
    const auto cap = static_cast<std::size_t>(low.limit() / 2 - 16);  // max_connections asked: 256
    log_socket_server server(io.executor(), logger, socket_path, {.shutdown_grace = std::chrono::milliseconds(100)});
    const axds::scoped_warning_capture warnings;
    auto done = run_server(io, server);
    std::vector<int> clients;
    for (std::size_t i = 0; i <= cap; ++i) {
        clients.push_back(raw_connect(socket_path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    server.close();
    const log_socket_report report = done.get();
    for (const int fd : clients) {
        ::close(fd);
    }
    low.restore();
    CHECK(report.connections == cap);
    CHECK(report.refused_connections == 1);
    REQUIRE_FALSE(warnings.messages().empty());
    // It named max_connections only: the user raised that and nothing changed. It names the descriptor limit now.
    CHECK_THAT(warnings.messages().front(), Contains("refused a producer") &&
                                                Contains(fmt::format("max_connections 256 was lowered to {}", cap)) &&
                                                Contains("ulimit -n"));
    (void)logger.stop();
}

TEST_CASE("log socket server ends on a cancellation signal and removes its socket file", "[log][socket]") {
    temp_dir tmp;
    io_thread io;
    data_logger logger(io.executor(), tmp.path(), "cancel");
    const fs::path socket_path = tmp.path() / "cancel.sock";
    log_socket_server server(io.executor(), logger, socket_path);
    asio::cancellation_signal signal;
    auto done = asio::co_spawn(io.executor(), server.async_run(),
                               asio::bind_cancellation_slot(signal.slot(), asio::use_future));
    {
        log_socket_producer producer(socket_path);
        producer.log(expected_package(5, 1, 4));
        CHECK(producer.close() == 1);
    }
    asio::post(io.executor(), [&signal] { signal.emit(asio::cancellation_type::terminal); });
    REQUIRE(done.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    const log_socket_report report = done.get();
    CHECK(report.connections == 1);
    CHECK(report.packages == 1);
    CHECK_FALSE(fs::exists(socket_path));
    CHECK(logger.queued_bytes() > 0);  // accepted while the logger was stopped: written by its next start
    logger.start();
    CHECK(logger.stop().entries_written == 1);
}

TEST_CASE("log socket paths: clear errors for bad paths, live servers and missing servers, stale sockets replaced",
          "[log][socket]") {
    temp_dir tmp;
    io_thread io;
    data_logger logger(io.executor(), tmp.path(), "paths");

    SECTION("a path longer than a socket address holds") {
        const fs::path long_path = tmp.path() / std::string(120, 's');
        CHECK_THROWS_MATCHES(log_socket_server(io.executor(), logger, long_path), axds::value_error,
                             message_contains("expected a path of 1 to 107 bytes"));
        CHECK_THROWS_MATCHES(log_socket_producer(long_path), axds::value_error,
                             message_contains("expected a path of 1 to 107 bytes"));
    }
    SECTION("a regular file at the path is left alone") {
        const fs::path file = tmp.path() / "notes.txt";
        axds::test::write_file(file, "keep me");
        CHECK_THROWS_MATCHES(log_socket_server(io.executor(), logger, file), axds::value_error,
                             message_contains("a file that is not a socket is already there"));
        CHECK(axds::test::read_file(file) == "keep me");
    }
    SECTION("a second server on a live socket") {
        const fs::path path = tmp.path() / "live.sock";
        log_socket_server first(io.executor(), logger, path);
        try {
            log_socket_server second(io.executor(), logger, path);
            FAIL("a second server bound a live socket");
        } catch (const axds::os_error& e) {
            CHECK(e.code().value() == EADDRINUSE);
            CHECK_THAT(std::string(e.what()), Contains("another server is accepting connections there"));
        }
        CHECK(fs::is_socket(path));
    }
    SECTION("a stale socket of a dead server is replaced") {
        const fs::path path = tmp.path() / "stale.sock";
        {
            const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            sockaddr_un address{};
            address.sun_family = AF_UNIX;
            std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
            // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
            REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
            ::close(fd);  // the file stays, nobody listens
        }
        REQUIRE(fs::is_socket(path));
        log_socket_server server(io.executor(), logger, path);
        ::close(raw_connect(path));  // connects: the new server listens there
    }
    SECTION("a producer with no server, and a closed producer") {
        const fs::path missing = tmp.path() / "nobody.sock";
        try {
            log_socket_producer producer(missing);
            FAIL("connected to a missing socket");
        } catch (const axds::os_error& e) {
            CHECK(e.code().value() == ENOENT);
            CHECK_THAT(std::string(e.what()), Contains(missing.string()) && Contains("Expected a log_socket_server"));
        }
        const fs::path path = tmp.path() / "once.sock";
        log_socket_server server(io.executor(), logger, path);
        auto done = run_server(io, server);
        log_socket_producer producer(path);
        CHECK(producer.close() == 0);
        CHECK_THROWS_MATCHES(producer.log(expected_package(1, 1, 1)), axds::value_error,
                             message_contains("this producer was closed"));
        server.close();
        CHECK(done.get().clean());
    }
    SECTION("the server's destructor removes a socket it never served") {
        const fs::path path = tmp.path() / "unused.sock";
        { log_socket_server server(io.executor(), logger, path); }
        CHECK_FALSE(fs::exists(path));
    }
}

TEST_CASE("log socket producer errors: logging after the server dropped it, a short count, no directory to bind in",
          "[log][socket]") {
    temp_dir tmp;
    io_thread io;
    data_logger logger(io.executor(), tmp.path(), "errors");

    SECTION("a log after the server dropped this producer throws, naming the socket") {
        const axds::scoped_warning_capture warnings;
        const fs::path path = tmp.path() / "drop.sock";
        log_socket_server server(io.executor(), logger, path, {.max_message_bytes = 4096});
        auto done = run_server(io, server);
        log_socket_producer producer(path);
        producer.log(expected_package(1, 1, 5000));  // over the limit: the server drops this producer
        std::string error;
        for (int attempt = 0; attempt < 2000 && error.empty(); ++attempt) {
            try {
                producer.log(expected_package(1, 2, 8));
            } catch (const axds::os_error& e) {
                error = e.what();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        CHECK_THAT(error, Contains("Unable to log to the data logger socket at '" + path.string()) &&
                              Contains("call close() to learn how many the logger accepted"));
        server.close();
        CHECK(done.get().dropped_connections == 1);
    }
    SECTION("a server that confirms fewer packages than were sent") {
        // A stand-in server: reads everything, then answers a count of 1.
        const fs::path path = tmp.path() / "short.sock";
        const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
        REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(listener, 1) == 0);
        std::thread fake([listener] {
            const int peer = ::accept(listener, nullptr, nullptr);
            char sink[4096];
            while (::read(peer, sink, sizeof sink) > 0) {
            }
            const std::uint8_t one[8] = {1, 0, 0, 0, 0, 0, 0, 0};
            (void)::write(peer, one, sizeof one);
            ::close(peer);
        });
        log_socket_producer producer(path);
        producer.log(expected_package(1, 1, 8));
        producer.log(expected_package(1, 2, 8));
        try {
            (void)producer.close();
            FAIL("close() accepted a short count");
        } catch (const axds::os_error& e) {
            CHECK(e.code().value() == EIO);
            CHECK_THAT(std::string(e.what()), Contains("confirmed 1 of the 2 packages sent"));
        }
        fake.join();
        ::close(listener);
    }
    SECTION("a socket path whose directory does not exist") {
        const fs::path path = tmp.path() / "missing" / "rig.sock";
        try {
            log_socket_server server(io.executor(), logger, path);
            FAIL("bound a socket in a missing directory");
        } catch (const axds::os_error& e) {
            CHECK(e.code().value() == ENOENT);
            CHECK_THAT(std::string(e.what()), Contains("Unable to bind the data logger socket at '" + path.string()));
        }
    }
}

// Found by a hostile-user run: any connect-and-close (a health check, a second `axds log serve` probing the socket)
// counted as a dropped producer, and `log serve` then called a complete recording incomplete.
TEST_CASE("log socket: a connection opened and closed, or a producer leaving before its count, drops nothing",
          "[log][socket]") {
    started_logger rig("probe");
    auto& [tmp, io, logger, socket_path] = rig;
    log_socket_server server(io.executor(), logger, socket_path);
    const axds::scoped_warning_capture warnings;
    auto done = run_server(io, server);
    ::close(raw_connect(socket_path));  // a liveness probe
    const int hasty = raw_connect(socket_path);
    send_all(hasty, frame(2, 1, 10));
    ::close(hasty);  // gone before the count
    log_socket_producer good(socket_path);
    good.log(expected_package(1, 1, 10));
    CHECK(good.close() == 1);
    server.close();
    const log_socket_report report = done.get();
    CHECK(report.clean());
    CHECK(report.packages == 2);
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages()[0], Contains("closed before it read its count") && Contains("stay in the log"));
    CHECK(logger.stop().entries_written == 2);
}
