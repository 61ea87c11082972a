// Log socket frames: each input is one producer connection's byte stream to a real log_socket_server feeding a real
// data_logger. A reference decoder says what the server must do with it: confirm the count of a stream of whole,
// well-formed frames; drop the connection (no count) at the first malformed length or a stream that ends inside a
// frame, keeping the frames before it. At the end the server's and the logger's totals must match the reference:
// nothing accepted is lost, nothing malformed is logged.

#include "fuzz_target.hpp"

#include "support/io_thread.hpp"

#include <axds/log/data_logger.hpp>
#include <axds/log/log_package.hpp>
#include <axds/log/log_socket.hpp>
#include <axds/npy/npy_format.hpp>
#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace axds::fuzz {
namespace {

constexpr std::size_t max_message = 1024;

struct server_state {
    std::filesystem::path socket_path;
    std::unique_ptr<test::io_thread> io;
    std::unique_ptr<data_logger> logger;
    std::unique_ptr<log_socket_server> server;
    std::future<log_socket_report> done;
    std::uint64_t connections = 0;
    std::uint64_t dropped = 0;
    std::uint64_t frames = 0;  // whole, well-formed frames sent: the server must log every one
    // Entry file name -> FNV-1a hashes of the entries sent under it (one name may come several times; the logger
    // writes one of them and counts the others as failed, never overwriting).
    std::unordered_map<std::string, std::vector<std::uint64_t>> sent;
};

std::uint64_t fnv1a(std::span<const std::uint8_t> bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const std::uint8_t b : bytes) {
        hash = (hash ^ b) * 0x100000001b3ULL;
    }
    return hash;
}

server_state* state = nullptr;

void set_up(const std::string& scratch) {
    state = new server_state;  // NOLINT: lives for the whole run
    state->io = std::make_unique<test::io_thread>();
    state->logger = std::make_unique<data_logger>(state->io->executor(), scratch, "fuzz");
    state->logger->start();
    state->socket_path = std::filesystem::path(scratch) / "fuzz.sock";
    state->server = std::make_unique<log_socket_server>(
        state->io->executor(), *state->logger, state->socket_path,
        log_socket_options{
            .max_message_bytes = max_message, .receive_budget_bytes = max_message, .max_connections = 4});
    state->done = asio::co_spawn(state->io->executor(), state->server->async_run(), asio::use_future);
}

std::uint64_t le(std::span<const std::uint8_t> bytes) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        value |= std::uint64_t{bytes[i]} << (8 * i);
    }
    return value;
}

outcome one_input(std::span<const std::uint8_t> input) {
    // The reference decoder.
    std::size_t at = 0;
    std::uint64_t whole = 0;
    bool clean = true;
    while (at < input.size()) {
        if (input.size() - at < 4) {
            clean = false;  // ends inside a header
            break;
        }
        const std::uint64_t length = le(input.subspan(at, 4));
        if (length < 9 || length > max_message || input.size() - at - 4 < length) {
            clean = false;  // malformed length, or ends inside the frame
            break;
        }
        const auto entry = input.subspan(at + 4, length);  // [source][time LE][payload]
        state->sent[log_entry_file_name(entry[0], le(entry.subspan(1, 8)))].push_back(fnv1a(entry));
        at += 4 + length;
        ++whole;
    }

    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", state->socket_path.c_str());
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        throw fuzz_failure(fmt::format("cannot connect to the server: {}", std::strerror(errno)));
    }
    // Sent in pieces (sizes derived from the input, so a run stays repeatable): frames split across reads take the
    // server's partial-payload path and its shared receive budget.
    const std::size_t piece = 1 + static_cast<std::size_t>(fnv1a(input) % 512);
    std::size_t sent = 0;
    while (sent < input.size()) {
        const ssize_t n = ::send(fd, input.data() + sent, std::min(piece, input.size() - sent), MSG_NOSIGNAL);
        if (n <= 0) {
            break;  // the server dropped the connection (a malformed frame): expected only when !clean
        }
        sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    std::array<std::uint8_t, 16> reply{};
    std::size_t got = 0;
    for (;;) {
        const ssize_t n = ::recv(fd, reply.data() + got, reply.size() - got, 0);
        if (n <= 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    ++state->connections;
    state->frames += whole;
    if (clean) {
        if (sent != input.size() || got != 8 || le({reply.data(), 8}) != whole) {
            throw fuzz_failure(
                fmt::format("a stream of {} whole frames was answered with {} bytes (count {}), "
                            "expected the 8-byte count {}",
                            whole, got, got >= 8 ? le({reply.data(), 8}) : 0, whole));
        }
        return outcome::accepted;
    }
    ++state->dropped;
    if (got != 0) {
        throw fuzz_failure(
            fmt::format("a malformed or cut-off stream (after {} whole frames) was confirmed with {} "
                        "bytes; the server must drop it without a count",
                        whole, got));
    }
    return outcome::refused;
}

void tear_down() {
    state->server->close();
    const log_socket_report report = state->done.get();
    const data_logger_report logged = state->logger->stop();
    const auto entries = static_cast<std::uint64_t>(std::distance(
        std::filesystem::directory_iterator(state->logger->output_directory()), std::filesystem::directory_iterator()));
    fmt::print(
        "log_frames: {} connections ({} dropped), {} frames; server: {} connections, {} packages, {} dropped; "
        "logger: {} written, {} failed (an entry name already taken), {} files\n",
        state->connections, state->dropped, state->frames, report.connections, report.packages,
        report.dropped_connections, logged.entries_written, logged.entries_failed, entries);
    if (report.connections != state->connections || report.dropped_connections != state->dropped ||
        report.packages != state->frames) {
        throw fuzz_failure("the server's report disagrees with the reference decoder");
    }
    if (logged.entries_written + logged.entries_failed != state->frames || entries != logged.entries_written) {
        throw fuzz_failure("the logger's entries disagree with the frames the server accepted");
    }
    // Every entry file holds exactly one of the entries sent under its name: nothing mangled, nothing mixed.
    for (const auto& file : std::filesystem::directory_iterator(state->logger->output_directory())) {
        std::ifstream in(file.path(), std::ios::binary);
        const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        const auto entry = npy_u1_payload(bytes, file.path().string());
        const auto it = state->sent.find(file.path().filename().string());
        if (it == state->sent.end() ||
            std::find(it->second.begin(), it->second.end(), fnv1a(entry)) == it->second.end()) {
            throw fuzz_failure(
                fmt::format("the entry file {} holds bytes no producer sent under that name", file.path().string()));
        }
    }
    state->server.reset();
    state->logger.reset();
    state->io.reset();
}

const registration frames{{
    .name = "log_frames",
    .about = "log socket frames through a real server and logger, checked against a reference decoder",
    .one_input = one_input,
    .set_up = set_up,
    .tear_down = tear_down,
    .dictionary = {std::string("\x09\x00\x00\x00", 4), std::string("\x0a\x00\x00\x00", 4),
                   std::string("\x00\x04\x00\x00", 4), std::string("\x01\x04\x00\x00", 4),
                   std::string("\x08\x00\x00\x00", 4), "\xff\xff\xff\xff", std::string("\x00\x00\x00\x00", 4)},
    .max_length = 4096,
}};

}  // namespace
}  // namespace axds::fuzz
