// Embedding axds in an event-loop server: a small Asio TCP server that receives framed messages from any number of
// clients and logs them with a data_logger running on the same io_context, while it keeps answering other requests.
//
// Frames, in both directions: a 4-byte little-endian length, then that many bytes: one type byte and the body.
//   'L' log       body = [source id][payload]      no reply; the server stamps the time (µs since its start)
//   'P' ping      body = anything                  reply 'P' with the same body
//   'S' status    empty                            reply 'S' with JSON {"messages", "clients", "queued_bytes"}
//   'Q' shutdown  empty                            stop accepting, drain the logger, assemble verified archives,
//                                                  reply 'Q' with JSON {"written", "failed", "archives"}, exit
// A frame longer than 16 MiB or of an unknown type closes that client's connection; the others are unaffected.
// A log frame waits for queue space (async_log) on that client's coroutine only: backpressure never stalls the loop.
//
//   ads_example_logging_server                     self-demo: 4 clients on this loop, then checks every message
//   ads_example_logging_server --port P [--dir D]  serve on 127.0.0.1:P (0 = any free port; the port is printed)

#include <axds/core/runtime.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;
using asio::ip::tcp;

namespace {

constexpr std::uint32_t max_frame = 16U << 20U;

std::vector<std::uint8_t> make_frame(char type, const void* body, std::size_t size) {
    const auto length = static_cast<std::uint32_t>(size + 1);
    std::vector<std::uint8_t> frame(4 + length);
    for (int i = 0; i < 4; ++i) {
        frame[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(length >> (8 * i));
    }
    frame[4] = static_cast<std::uint8_t>(type);
    if (size != 0) {
        std::memcpy(frame.data() + 5, body, size);
    }
    return frame;
}

/// Reads one frame; returns false at a clean end of stream.
asio::awaitable<bool> read_frame(tcp::socket& socket, char& type, std::vector<std::uint8_t>& body) {
    std::array<std::uint8_t, 4> header{};
    asio::error_code ec;
    const std::size_t n =
        co_await asio::async_read(socket, asio::buffer(header), asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::eof && n == 0) {
        co_return false;
    }
    if (ec) {
        throw std::system_error(ec, "read");
    }
    const std::uint32_t length = std::uint32_t{header[0]} | (std::uint32_t{header[1]} << 8U) |
                                 (std::uint32_t{header[2]} << 16U) | (std::uint32_t{header[3]} << 24U);
    if (length == 0 || length > max_frame) {
        throw std::runtime_error(fmt::format("frame of {} bytes (expected 1 … {})", length, max_frame));
    }
    std::vector<std::uint8_t> frame(length);
    co_await asio::async_read(socket, asio::buffer(frame), asio::use_awaitable);
    type = static_cast<char>(frame[0]);
    body.assign(frame.begin() + 1, frame.end());
    co_return true;
}

class logging_server {
public:
    logging_server(asio::any_io_executor executor, tcp::endpoint endpoint, const fs::path& directory)
        : logger_(executor, directory, "server"), acceptor_(executor, endpoint) {}

    [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

    asio::awaitable<void> run() {
        co_await logger_.async_start();
        for (;;) {
            asio::error_code ec;
            tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                co_return;  // the acceptor was closed by a shutdown request
            }
            auto client = std::make_shared<tcp::socket>(std::move(socket));
            clients_.insert(client);
            asio::co_spawn(acceptor_.get_executor(), serve(client), asio::detached);
        }
    }

private:
    asio::awaitable<void> serve(std::shared_ptr<tcp::socket> socket) {
        try {
            char type = 0;
            std::vector<std::uint8_t> body;
            while (co_await read_frame(*socket, type, body)) {
                if (type == 'L' && !body.empty()) {
                    if (onset_logged_.insert(body[0]).second) {
                        co_await logger_.async_log_onset(body[0]);  // a source's first message: its onset (§7.3)
                    }
                    co_await logger_.async_log(stamp(body));
                } else if (type == 'P') {
                    co_await asio::async_write(*socket, asio::buffer(make_frame('P', body.data(), body.size())),
                                               asio::use_awaitable);
                } else if (type == 'S') {
                    const std::string status = fmt::format(R"({{"messages": {}, "clients": {}, "queued_bytes": {}}})",
                                                           messages_, clients_.size(), logger_.queued_bytes());
                    co_await asio::async_write(*socket, asio::buffer(make_frame('S', status.data(), status.size())),
                                               asio::use_awaitable);
                } else if (type == 'Q') {
                    co_await shutdown(*socket);
                    break;
                } else {
                    throw std::runtime_error(fmt::format("unknown frame type {:#04x}", static_cast<unsigned>(type)));
                }
            }
        } catch (const std::exception& e) {
            if (!stopping_) {
                std::fprintf(stderr, "client dropped: %s\n", e.what());
            }
        }
        clients_.erase(socket);
    }

    /// The package for a log frame: time = µs since the server started, unique per source.
    axds::log_package stamp(const std::vector<std::uint8_t>& body) {
        const std::uint8_t source = body[0];
        const auto now = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_).count());
        std::uint64_t& last = last_time_[source];
        last = std::max(now, last + 1);
        ++messages_;
        return {.source_id = source, .acquisition_time = last, .payload = {body.begin() + 1, body.end()}};
    }

    asio::awaitable<void> shutdown(tcp::socket& requester) {
        stopping_ = true;
        acceptor_.close();
        for (const auto& client : clients_) {
            if (client.get() != &requester) {
                asio::error_code ignored;
                client->shutdown(tcp::socket::shutdown_receive, ignored);  // ends their read loops
            }
        }
        const axds::data_logger_report report = co_await logger_.async_stop();
        const axds::assemble_options verified{.verify_integrity = true};  // (GCC 12: no braces inside co_await)
        const axds::assemble_report assembled =
            co_await axds::async_assemble_log_archives(logger_.output_directory(), verified);
        std::string archives;
        for (const auto& archive : assembled.archives) {
            archives += fmt::format("{}\"{}\"", archives.empty() ? "" : ", ", archive.string());
        }
        const std::string reply = fmt::format(R"({{"written": {}, "failed": {}, "archives": [{}]}})",
                                              report.entries_written, report.entries_failed, archives);
        co_await asio::async_write(requester, asio::buffer(make_frame('Q', reply.data(), reply.size())),
                                   asio::use_awaitable);
    }

    axds::data_logger logger_;
    tcp::acceptor acceptor_;
    std::set<std::shared_ptr<tcp::socket>> clients_;
    std::set<std::uint8_t> onset_logged_;
    std::map<std::uint8_t, std::uint64_t> last_time_;
    std::size_t messages_ = 0;
    bool stopping_ = false;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// ---- self-demo clients (real sockets on 127.0.0.1, same io_context) ----

constexpr std::size_t demo_messages = 500;

std::vector<std::uint8_t> demo_payload(std::uint8_t source, std::size_t i) {
    std::vector<std::uint8_t> payload(1 + (i * 37 + source) % 300);
    for (std::size_t b = 0; b < payload.size(); ++b) {
        payload[b] = static_cast<std::uint8_t>(source * 31 + i + b);
    }
    return payload;
}

asio::awaitable<std::string> request(tcp::socket& socket, char type, const std::string& body = {}) {
    co_await asio::async_write(socket, asio::buffer(make_frame(type, body.data(), body.size())), asio::use_awaitable);
    char reply_type = 0;
    std::vector<std::uint8_t> reply;
    if (!co_await read_frame(socket, reply_type, reply) || reply_type != type) {
        throw std::runtime_error("no reply");
    }
    co_return std::string(reply.begin(), reply.end());
}

asio::awaitable<void> demo_client(std::uint16_t port, std::uint8_t source) {
    tcp::socket socket(co_await asio::this_coro::executor);
    const tcp::endpoint server(asio::ip::address_v4::loopback(), port);
    co_await socket.async_connect(server, asio::use_awaitable);
    for (std::size_t i = 0; i < demo_messages; ++i) {
        std::vector<std::uint8_t> body{source};
        const auto payload = demo_payload(source, i);
        body.insert(body.end(), payload.begin(), payload.end());
        co_await asio::async_write(socket, asio::buffer(make_frame('L', body.data(), body.size())),
                                   asio::use_awaitable);
        if (i == demo_messages / 2) {  // other requests are answered while logging goes on
            if (co_await request(socket, 'P', "ping") != "ping") {
                throw std::runtime_error("bad ping reply");
            }
        }
    }
    (void)co_await request(socket, 'S');  // a reply means the server has taken every earlier frame of ours
}

asio::awaitable<int> self_demo(std::uint16_t port, fs::path directory) {
    const auto executor = co_await asio::this_coro::executor;
    std::vector<std::unique_ptr<std::exception_ptr>> outcomes;
    std::size_t finished = 0;
    for (std::uint8_t source = 1; source <= 4; ++source) {
        auto& outcome = *outcomes.emplace_back(std::make_unique<std::exception_ptr>());
        asio::co_spawn(executor, demo_client(port, source), [&outcome, &finished](std::exception_ptr e) {
            outcome = std::move(e);
            ++finished;
        });
    }
    asio::steady_timer poll(executor);
    while (finished < 4) {
        poll.expires_after(std::chrono::milliseconds(1));
        co_await poll.async_wait(asio::use_awaitable);
    }
    for (const auto& outcome : outcomes) {
        if (*outcome) {
            std::rethrow_exception(*outcome);
        }
    }
    tcp::socket control(executor);
    const tcp::endpoint server(asio::ip::address_v4::loopback(), port);
    co_await control.async_connect(server, asio::use_awaitable);
    fmt::print("status: {}\n", co_await request(control, 'S'));
    fmt::print("shutdown: {}\n", co_await request(control, 'Q'));

    std::size_t bad = 0;
    for (std::uint8_t source = 1; source <= 4; ++source) {
        const axds::log_archive_reader reader(directory / "server_data_log" / fmt::format("{}_log.npz", source));
        std::size_t i = 0;
        for (const auto message : reader.messages()) {
            const auto expected = demo_payload(source, i++);
            bad +=
                std::equal(expected.begin(), expected.end(), message.payload.begin(), message.payload.end()) ? 0U : 1U;
        }
        bad += i == demo_messages ? 0U : 1U;
    }
    fmt::print("{}\n", bad == 0 ? "every message of the 4 clients is in the archives, in order" : "MISMATCHES");
    co_return bad == 0 ? 0 : 1;
}

int serve(int port, const fs::path& directory, bool demo) {
    asio::io_context io;
    logging_server server(io.get_executor(), {asio::ip::address_v4::loopback(), static_cast<std::uint16_t>(port)},
                          directory);
    fmt::print("listening on 127.0.0.1:{}\n", server.port());
    std::fflush(stdout);
    int status = 0;
    std::exception_ptr failure;
    asio::co_spawn(io, server.run(), [&failure](std::exception_ptr e) {
        if (e) {
            failure = e;
        }
    });
    if (demo) {
        asio::co_spawn(io, self_demo(server.port(), directory), [&](std::exception_ptr e, int result) {
            if (e) {
                failure = e;
            }
            status = result;
        });
    }
    io.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        int port = -1;
        fs::path directory;
        for (int i = 1; i + 1 < argc; i += 2) {
            const std::string flag = argv[i];
            if (flag == "--port") {
                port = std::stoi(argv[i + 1]);
            } else if (flag == "--dir") {
                directory = argv[i + 1];
            } else {
                std::fprintf(stderr, "usage: %s [--port P] [--dir D]\n", argv[0]);
                return 2;
            }
        }
        if (argc % 2 == 0) {
            std::fprintf(stderr, "usage: %s [--port P] [--dir D]\n", argv[0]);
            return 2;
        }
        const bool demo = port < 0;
        std::optional<axds_examples::scratch_directory> scratch;
        if (directory.empty()) {
            scratch.emplace("axds-server-");
            directory = scratch->path();
            if (!demo) {
                scratch->keep();  // a real server's logs stay for the user
            }
        }
        fs::create_directories(directory);
        return serve(demo ? 0 : port, directory, demo);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "logging_server failed: %s\n", e.what());
        return 1;
    }
}
