// Producers in other processes: a data_logger behind a log_socket_server, fed by child processes (this program run
// again with --produce) through plain blocking log_socket_producer calls; then the archives are assembled and every
// message is checked. Any language can produce the same way: the wire format is in <axds/log/log_socket.hpp>.
//
//   ads_example_process_producers [--dir D]        (default: a fresh temporary directory, removed at the end)

#include <axds/core/runtime.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/log/log_socket.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "scratch_directory.hpp"
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;  // NOLINT

namespace fs = std::filesystem;

namespace {

constexpr int producer_count = 4;
constexpr std::uint64_t messages_per_producer = 5000;

/// The child: one source, `messages_per_producer` messages of 32 bytes whose first 8 bytes are the message number.
int produce(const char* socket_path, std::uint8_t source) {
    axds::log_socket_producer producer(socket_path);
    producer.log_onset(source);
    axds::log_package package{.source_id = source};
    package.payload.resize(32, source);
    for (std::uint64_t i = 1; i <= messages_per_producer; ++i) {
        package.acquisition_time = i * 100;  // µs since the onset
        for (int b = 0; b < 8; ++b) {
            package.payload[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(i >> (8 * b));
        }
        producer.log(package);  // blocks while the logger is behind: backpressure reaches this process
    }
    return producer.close() == messages_per_producer + 1 ? 0 : 1;  // the server's count confirms every message
}

pid_t spawn_producer(const std::string& self, const fs::path& socket_path, int source) {
    const std::string source_text = std::to_string(source);
    std::vector<char*> argv{const_cast<char*>(self.c_str()),         // NOLINT(cppcoreguidelines-pro-type-const-cast)
                            const_cast<char*>("--produce"),          // NOLINT(cppcoreguidelines-pro-type-const-cast)
                            const_cast<char*>(socket_path.c_str()),  // NOLINT(cppcoreguidelines-pro-type-const-cast)
                            const_cast<char*>(source_text.c_str()),  // NOLINT(cppcoreguidelines-pro-type-const-cast)
                            nullptr};
    pid_t pid = 0;
    if (::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
        throw std::runtime_error("cannot start a producer process");
    }
    return pid;
}

int run(const fs::path& dir) {
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::thread io_thread([&io] { io.run(); });

    axds::data_logger logger(io.get_executor(), dir, "rig");
    logger.start();
    const fs::path socket_path = dir / "rig.sock";
    axds::log_socket_server server(io.get_executor(), logger, socket_path);
    auto served = asio::co_spawn(io, server.async_run(), asio::use_future);
    fmt::print("logger {} serving producers on {}\n", logger.name(), socket_path.string());

    const std::string self = fs::read_symlink("/proc/self/exe").string();
    std::vector<pid_t> children;
    for (int source = 1; source <= producer_count; ++source) {
        children.push_back(spawn_producer(self, socket_path, source));
    }
    int failed = 0;
    for (const pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        failed += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    server.close();
    const axds::log_socket_report report = served.get();
    const axds::data_logger_report written = logger.stop();
    fmt::print("{} producer processes ({} failed): {} connections, {} messages accepted, {} dropped connections\n",
               producer_count, failed, report.connections, report.packages, report.dropped_connections);
    fmt::print("logger wrote {} entries ({} failed)\n", written.entries_written, written.entries_failed);

    const axds::assemble_report assembled =
        axds::block_on(axds::async_assemble_log_archives(logger.output_directory(), {.verify_integrity = true}));
    std::uint64_t checked = 0;
    int bad = 0;
    for (int source = 1; source <= producer_count; ++source) {
        const axds::log_archive_reader reader(logger.output_directory() / fmt::format("{}_log.npz", source));
        std::uint64_t expected = 1;
        for (const auto message : reader.messages()) {
            std::uint64_t number = 0;
            for (std::size_t b = 0; b < 8; ++b) {
                number |= std::uint64_t{message.payload[b]} << (8 * b);
            }
            bad += number == expected && message.timestamp_us == reader.onset_timestamp_us() + expected * 100 ? 0 : 1;
            ++expected;
            ++checked;
        }
        bad += expected == messages_per_producer + 1 ? 0 : 1;
    }
    fmt::print("assembled {} verified archives; read back {} messages, {} out of place\n", assembled.archives.size(),
               checked, bad);
    io.stop();
    guard.reset();
    io_thread.join();
    const bool ok = failed == 0 && report.clean() && written.clean() && bad == 0 &&
                    checked == producer_count * messages_per_producer;
    fmt::print("{}\n", ok ? "OK: every message of every producer process is in its archive, in order"
                          : "FAILED: see the counts above");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 4 && std::string(argv[1]) == "--produce") {
            return produce(argv[2], static_cast<std::uint8_t>(std::atoi(argv[3])));
        }
        if (argc == 3 && std::string(argv[1]) == "--dir") {
            return run(argv[2]);
        }
        const axds_examples::scratch_directory scratch("axds-process-producers-");
        return run(scratch.path());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
