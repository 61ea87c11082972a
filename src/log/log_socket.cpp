#include <axds/log/log_socket.hpp>

#include <axds/core/console.hpp>
#include <axds/error.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_package.hpp>

#include "detail/asio_compat.hpp"
#include "detail/iovec.hpp"
#include "sys/aligned_buffer.hpp"
#include "sys/endian.hpp"
#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/buffer.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

namespace axds {

namespace {

using stream = asio::local::stream_protocol;
constexpr std::size_t entry_prefix = 9;  // source id + acquisition time (spec §6.1)

/// The sockaddr for `path`, or value_error when it does not fit (the kernel's limit is 107 bytes plus NUL).
sockaddr_un socket_address(const std::filesystem::path& path, const char* role) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string& text = path.native();
    if (text.empty() || text.size() >= sizeof address.sun_path) {
        throw value_error(
            fmt::format("Unable to use '{}' as the {} log socket: expected a path of 1 to {} bytes, got {}.", text,
                        role, sizeof address.sun_path - 1, text.size()));
    }
    std::memcpy(address.sun_path, text.data(), text.size());
    return address;
}

/// Connects a blocking stream socket to `address`; on failure returns no descriptor and sets `error`.
sys::unique_fd connect_to(const sockaddr_un& address, std::error_code& error) {
    sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API takes sockaddr*.
    if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        error = sys::last_error();
        return {};
    }
    error.clear();
    return fd;
}

/// Makes `path` free for a new server: a stale socket (nobody answers) is removed; a live one, or anything that
/// is not a socket, is an error.
void claim_socket_path(const std::filesystem::path& path, const sockaddr_un& address) {
    struct stat info {};

    if (::lstat(path.c_str(), &info) != 0) {
        return;  // free (a missing parent directory is reported by bind)
    }
    if (!S_ISSOCK(info.st_mode)) {
        throw value_error(
            fmt::format("Unable to serve the data logger socket at '{}': a file that is not a socket is "
                        "already there. Expected a free path or the stale socket of an ended server.",
                        path.string()));
    }
    std::error_code error;
    if (connect_to(address, error)) {
        throw_errno(EADDRINUSE, fmt::format("Unable to serve the data logger socket at '{}': another server is "
                                            "accepting connections there.",
                                            path.string()));
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        throw_errno(errno, fmt::format("Unable to remove the stale data logger socket at '{}'.", path.string()));
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Server

struct log_socket_server::impl : std::enable_shared_from_this<log_socket_server::impl> {
    struct session {
        std::shared_ptr<stream::socket> socket;
        std::shared_ptr<asio::cancellation_signal> cancel;
    };

    impl(asio::any_io_executor executor, data_logger& target, std::filesystem::path socket_path,
         log_socket_options opts)
        : strand(asio::make_strand(executor)),
          logger(target),
          path(std::move(socket_path)),
          options(opts),
          acceptor(strand),
          all_ended(strand),
          grace(strand),
          budget_freed(strand) {
        options.max_message_bytes = std::max(options.max_message_bytes, entry_prefix);
        options.receive_budget_bytes = std::max(options.receive_budget_bytes, options.max_message_bytes);
        requested_connections = options.max_connections;
        options.max_connections = std::clamp<std::size_t>(options.max_connections, 1, connections_within_fd_limit());
        budget_left = options.receive_budget_bytes;
        budget_freed.expires_at(asio::steady_timer::time_point::max());
    }

    /// Producers may hold at most half of the descriptors this process may open (RLIMIT_NOFILE) minus 16: the
    /// logger's writer must still be able to create entry files when they are all connected (an entry it cannot
    /// create is lost). 256 connections need a limit of 544 (the usual 1024 leaves max_connections as set).
    static std::size_t connections_within_fd_limit() {
        struct rlimit limit {};

        if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
            return std::numeric_limits<std::size_t>::max();
        }
        const auto half = static_cast<std::size_t>(limit.rlim_cur / 2);
        return half > 17 ? half - 16 : 1;
    }

    /// Why no more producers are accepted: max_connections, or the descriptor limit that lowered it.
    [[nodiscard]] std::string connection_limit_reason() const {
        if (options.max_connections >= requested_connections) {
            return "log_socket_options::max_connections";
        }

        struct rlimit limit {};

        (void)::getrlimit(RLIMIT_NOFILE, &limit);
        return fmt::format(
            "max_connections {} was lowered to {} by this process's limit of {} open files, as the "
            "logger needs descriptors for its entry files too: raise it with `ulimit -n`",
            requested_connections, options.max_connections, static_cast<std::uint64_t>(limit.rlim_cur));
    }

    asio::strand<asio::any_io_executor> strand;
    data_logger& logger;
    std::filesystem::path path;
    log_socket_options options;
    stream::acceptor acceptor;
    asio::steady_timer all_ended;  // cancelled when the last session ends after closing began
    asio::steady_timer grace;
    asio::steady_timer budget_freed;            // cancelled whenever reserved bytes come back
    std::size_t budget_left = 0;                // of options.receive_budget_bytes
    std::size_t requested_connections = 0;      // max_connections as asked (before connections_within_fd_limit)
    std::map<std::uint64_t, session> sessions;  // by producer number (report.connections when it connected)
    bool closing = false;
    std::chrono::milliseconds accept_pause{0};  // while accepts fail for want of a resource (pause_accepting)
    bool cut_off = false;                       // the grace ran out (or a second cancellation came)
    std::atomic<bool> bound = false;            // the socket file is ours to remove (strand or the server's destructor)
    log_socket_report report;

    // Everything below runs on the strand.

    void begin_close() {
        if (closing) {
            return;
        }
        closing = true;
        asio::error_code ignored;
        acceptor.close(ignored);
        if (sessions.empty()) {
            all_ended.cancel();
            return;
        }
        grace.expires_after(options.shutdown_grace);
        grace.async_wait([self = shared_from_this()](asio::error_code ec) {
            if (!ec) {
                self->cut_off_all();
            }
        });
    }

    void cut_off_all() {
        cut_off = true;
        const auto victims = sessions;  // a copy: nothing a cancellation completes may change what is iterated
        for (const auto& [id, s] : victims) {
            asio::error_code ignored;
            s.socket->close(ignored);
            s.cancel->emit(asio::cancellation_type::terminal);
        }
    }

    void session_ended(std::uint64_t id, std::uint64_t accepted, const std::string& error) {
        sessions.erase(id);
        report.packages += accepted;
        if (!error.empty()) {
            ++report.dropped_connections;
            if (report.first_error.empty()) {
                report.first_error = error;
            }
            warn(
                fmt::format("The data logger socket at '{}' dropped producer #{}: {} The {} packages accepted from it "
                            "before that stay in the log; the producer gets no count, so its close() reports the drop.",
                            path.string(), id, error, accepted));
        }
        if (closing && sessions.empty()) {
            grace.cancel();
            all_ended.cancel();
        }
    }

    void unlink_socket() {
        if (bound.exchange(false)) {
            (void)::unlink(path.c_str());
        }
    }

    /// Reserves `bytes` of the receive budget, waiting while other connections hold it. False when the session was
    /// cancelled (cut off) meanwhile.
    static asio::awaitable<bool> reserve(std::shared_ptr<impl> self, std::size_t bytes) {
        while (self->budget_left < bytes) {
            if (self->cut_off) {
                co_return false;
            }
            // Every waiter waits on the one timer, armed forever in the constructor: release() wakes them all
            // (re-arming it here would cancel the other waiters, which would re-arm it in turn).
            auto [ec] = co_await self->budget_freed.async_wait(detail::nothrow);
            (void)ec;  // aborted is the wake-up; anything else is checked through the loop condition
            if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
                co_return false;
            }
        }
        self->budget_left -= bytes;
        co_return true;
    }

    void release(std::size_t bytes) {
        if (bytes != 0) {
            budget_left += bytes;
            budget_freed.cancel();
        }
    }

    /// Bytes read from one connection and not parsed yet: small frames are parsed straight from it, so one read
    /// serves many of them.
    struct read_buffer {
        sys::aligned_buffer storage{std::size_t{64} << 10};  // page-aligned: the kernel copies into it
        std::span<std::uint8_t> bytes = storage.as<std::uint8_t>();
        std::size_t begin = 0;
        std::size_t end = 0;

        [[nodiscard]] std::size_t size() const noexcept { return end - begin; }

        [[nodiscard]] const std::uint8_t* data() const noexcept { return bytes.data() + begin; }

        void consume(std::size_t n) noexcept {
            begin += n;
            if (begin == end) {
                begin = end = 0;
            }
        }
    };

    /// Reads until `in` holds at least `need` (≤ its capacity) bytes; the error that stopped it, if any.
    static asio::awaitable<asio::error_code> fill(stream::socket& socket, read_buffer& in, std::size_t need) {
        while (in.size() < need) {
            if (in.bytes.size() - in.begin < need) {
                std::memmove(in.bytes.data(), in.data(), in.size());
                in.end -= in.begin;
                in.begin = 0;
            }
            auto [ec, n] = co_await socket.async_read_some(
                asio::buffer(in.bytes.data() + in.end, in.bytes.size() - in.end), detail::nothrow);
            in.end += n;
            if (ec) {
                co_return ec;
            }
        }
        co_return asio::error_code{};
    }

    /// One producer connection: frames in, async_log each, the count out at the producer's end of stream.
    /// Receives the rest of a payload of `payload_size` bytes (of a `length`-byte message) into `payload`, in 1 MiB
    /// steps: memory grows only as bytes arrive. Empty on success, else what went wrong.
    static asio::awaitable<std::string> read_payload_rest(stream::socket& socket, std::vector<std::uint8_t>& payload,
                                                          std::size_t payload_size, std::uint64_t length) {
        while (payload.size() < payload_size) {
            const std::size_t at = payload.size();
            const std::size_t step = std::min<std::size_t>(payload_size - at, std::size_t{1} << 20);
            payload.resize(at + step);
            auto [ec, got] =
                co_await asio::async_read(socket, asio::buffer(payload.data() + at, step), detail::nothrow);
            if (ec) {
                co_return fmt::format("the connection ended inside a message ({} of {} bytes).",
                                      entry_prefix + at + got, length);
            }
        }
        co_return std::string();
    }

    /// Confirms the session: the number of messages accepted, 8 bytes little-endian. Empty on success.
    static asio::awaitable<std::string> send_count(stream::socket& socket, std::uint64_t accepted) {
        std::array<std::uint8_t, 8> count{};
        sys::store_le64(count.data(), accepted);
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(count), detail::nothrow);
        (void)n;
        if (ec) {
            co_return fmt::format("sending the count failed ({}).", ec.message());
        }
        co_return std::string();
    }

    /// Sends the count at the producer's end of stream. A producer that left before reading it is no drop: every
    /// package it sent was accepted and stays in the log. With none, it was a connection opened and closed (a
    /// liveness probe, a second server checking whether this one runs): not worth a word either.
    static asio::awaitable<void> confirm(impl& self, stream::socket& socket, std::uint64_t id, std::uint64_t accepted) {
        const std::string unsent = co_await send_count(socket, accepted);
        if (!unsent.empty() && accepted > 0) {
            warn(
                fmt::format("The data logger socket at '{}': producer #{} closed before it read its count; the {} "
                            "packages it sent were accepted and stay in the log.",
                            self.path.string(), id, accepted));
        }
    }

    static asio::awaitable<void> serve_one(std::shared_ptr<impl> self, std::uint64_t id,
                                           std::shared_ptr<stream::socket> socket) {
        std::uint64_t accepted = 0;
        std::string error;
        std::size_t held = 0;  // receive budget reserved by the message being read
        try {
            read_buffer in;
            for (;;) {
                if (const asio::error_code ec = co_await fill(*socket, in, 4)) {
                    if (ec == asio::error::eof && in.size() == 0) {
                        break;  // the producer is done: confirm
                    }
                    error =
                        ec == asio::error::eof
                            ? fmt::format("the connection ended inside a message header ({} of 4 bytes).", in.size())
                            : fmt::format("reading failed ({}).", ec.message());
                    break;
                }
                const std::uint64_t length = sys::load_le32(in.data());
                if (length < entry_prefix || length > self->options.max_message_bytes) {
                    error = fmt::format("a message of {} bytes; expected {} to {} bytes (source id, time, payload).",
                                        length, entry_prefix, self->options.max_message_bytes);
                    break;
                }
                if (const asio::error_code ec = co_await fill(*socket, in, 4 + entry_prefix)) {
                    error =
                        fmt::format("the connection ended inside a message ({} of {} bytes).", in.size() - 4, length);
                    break;
                }
                log_package package;
                package.source_id = in.data()[4];
                package.acquisition_time = sys::load_le64(in.data() + 5);
                in.consume(4 + entry_prefix);
                const std::size_t payload_size = static_cast<std::size_t>(length) - entry_prefix;
                const std::size_t have = std::min(in.size(), payload_size);
                // A payload that has not arrived whole is received against the shared budget, and allocated only
                // as its bytes arrive: a header alone never costs more than the read buffer it sits in.
                const std::size_t reserved = have < payload_size ? payload_size : 0;
                if (reserved != 0) {
                    const bool granted = co_await reserve(self, reserved);
                    if (!granted) {
                        error = "cut off while waiting for the receive budget.";
                        break;
                    }
                    held = reserved;
                }
                package.payload.resize(have);
                if (have > 0) {  // an empty payload's data() may be null, which memcpy must not see
                    std::memcpy(package.payload.data(), in.data(), have);
                    in.consume(have);
                }
                error = co_await read_payload_rest(*socket, package.payload, payload_size, length);
                if (!error.empty()) {
                    break;
                }
                co_await self->logger.async_log(std::move(package));
                self->release(std::exchange(held, 0));
                ++accepted;
            }
            if (error.empty()) {
                co_await confirm(*self, *socket, id, accepted);
            }
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (self->cut_off && !error.empty()) {
            error = fmt::format("cut off when the server closed (shutdown grace {} ms).",
                                self->options.shutdown_grace.count());
        }
        self->release(held);
        asio::error_code ignored;
        socket->close(ignored);
        self->session_ended(id, accepted, error);
    }

    /// An accept that failed for want of a resource that comes back (descriptors, kernel memory) or for a protocol
    /// hiccup: the server keeps its socket and tries again (the producers wait in the listen backlog meanwhile).
    static bool transient_accept_error(const asio::error_code& ec) {
        if (ec.category() != asio::error::get_system_category()) {
            return false;
        }
        switch (ec.value()) {
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
            case EPROTO:
            case EINTR: return true;
            default: return false;
        }
    }

    /// Waits before the next accept after a transient failure: 10 ms, doubling to 1 s while it lasts; the first
    /// failure of a run of them is warned about. False when the server was closed or cancelled meanwhile.
    static asio::awaitable<bool> pause_accepting(impl& self, const asio::error_code& ec) {
        if (self.accept_pause.count() == 0) {
            warn(
                fmt::format("The data logger socket at '{}' cannot accept producers for now ({}); it tries again "
                            "until it can, and waiting producers stay queued meanwhile.",
                            self.path.string(), ec.message()));
        }
        self.accept_pause =
            std::clamp(self.accept_pause * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
        asio::steady_timer pause(self.strand);
        pause.expires_after(self.accept_pause);
        auto [waited] = co_await pause.async_wait(detail::nothrow);
        co_return !waited && !self.closing;
    }

    static asio::awaitable<log_socket_report> run(std::shared_ptr<impl> self) {
        while (!self->closing) {
            auto socket = std::make_shared<stream::socket>(self->strand);
            auto [ec] = co_await self->acceptor.async_accept(*socket, detail::nothrow);
            if (ec == asio::error::connection_aborted) {
                continue;  // a producer that left before it was accepted
            }
            if (ec && !self->closing && transient_accept_error(ec)) {
                const bool go_on = co_await pause_accepting(*self, ec);
                if (go_on) {
                    continue;
                }
                break;
            }
            if (ec) {
                if (!self->closing && ec != asio::error::operation_aborted) {
                    warn(fmt::format("The data logger socket at '{}' stopped accepting producers: {}.",
                                     self->path.string(), ec.message()));
                }
                break;
            }
            if (self->accept_pause.count() != 0) {
                self->accept_pause = std::chrono::milliseconds(0);
                warn(fmt::format("The data logger socket at '{}' accepts producers again.", self->path.string()));
            }
            if (self->sessions.size() >= self->options.max_connections) {
                asio::error_code ignored;
                socket->close(ignored);
                ++self->report.refused_connections;
                warn(
                    fmt::format("The data logger socket at '{}' refused a producer: {} are connected already "
                                "({}). Nothing was received from it.",
                                self->path.string(), self->sessions.size(), self->connection_limit_reason()));
                continue;
            }
            const std::uint64_t id = ++self->report.connections;
            auto cancel = std::make_shared<asio::cancellation_signal>();
            self->sessions.emplace(id, session{socket, cancel});
            asio::co_spawn(self->strand, serve_one(self, id, socket),
                           asio::bind_cancellation_slot(cancel->slot(), asio::detached));
        }
        // Cancelled, closed or failed: let connected producers finish within the grace, then report.
        co_await asio::this_coro::reset_cancellation_state();
        self->begin_close();
        while (!self->sessions.empty()) {
            self->all_ended.expires_at(asio::steady_timer::time_point::max());
            auto [ec] = co_await self->all_ended.async_wait(detail::nothrow);
            if (ec != asio::error::operation_aborted) {
                break;
            }
            if (!self->sessions.empty() &&
                (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
                self->cut_off_all();  // a second cancellation: do not wait for the grace
                co_await asio::this_coro::reset_cancellation_state();
            }
        }
        self->unlink_socket();
        co_return self->report;
    }
};

log_socket_server::log_socket_server(asio::any_io_executor executor, data_logger& logger,
                                     std::filesystem::path socket_path, log_socket_options options)
    : impl_(std::make_shared<impl>(std::move(executor), logger, std::move(socket_path), options)) {
    const sockaddr_un address = socket_address(impl_->path, "server's");
    claim_socket_path(impl_->path, address);
    asio::error_code ec;
    impl_->acceptor.open(stream(), ec);
    if (!ec) {
        impl_->acceptor.bind(stream::endpoint(impl_->path.native()), ec);
    }
    if (ec) {
        throw_os_error(
            ec, fmt::format("Unable to bind the data logger socket at '{}': {}.", impl_->path.string(), ec.message()));
    }
    impl_->bound = true;
    impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        impl_->unlink_socket();
        throw_os_error(ec, fmt::format("Unable to listen on the data logger socket at '{}': {}.", impl_->path.string(),
                                       ec.message()));
    }
}

log_socket_server::~log_socket_server() {
    close();
    // The socket file goes now; a running async_run() keeps the rest alive until its producers are done.
    impl_->unlink_socket();
}

asio::awaitable<log_socket_report> log_socket_server::async_run() {
    co_return co_await asio::co_spawn(impl_->strand, impl::run(impl_), asio::use_awaitable);
}

void log_socket_server::close() {
    asio::post(impl_->strand, [self = impl_] { self->begin_close(); });
}

const std::filesystem::path& log_socket_server::path() const noexcept {
    return impl_->path;
}

// ---------------------------------------------------------------------------------------------------------------
// Producer

log_socket_producer::log_socket_producer(const std::filesystem::path& socket_path) : path_(socket_path) {
    std::error_code error;
    sys::unique_fd fd = connect_to(socket_address(path_, "producer's"), error);
    if (!fd) {
        throw_os_error(error, fmt::format("Unable to connect to the data logger socket at '{}': {}. Expected a "
                                          "log_socket_server listening there.",
                                          path_.string(), sys::errno_message(error.value())));
    }
    fd_ = fd.release();
}

log_socket_producer::~log_socket_producer() {
    if (fd_ >= 0) {
        try {
            (void)close();
        } catch (const std::exception& e) {
            warn(e.what());
        }
    }
}

log_socket_producer::log_socket_producer(log_socket_producer&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), sent_(other.sent_) {}

log_socket_producer& log_socket_producer::operator=(log_socket_producer&& other) noexcept {
    if (this != &other) {
        sys::unique_fd(fd_).reset();  // the connection this producer held
        path_ = std::move(other.path_);
        fd_ = std::exchange(other.fd_, -1);
        sent_ = other.sent_;
    }
    return *this;
}

void log_socket_producer::log(const log_package& package) {
    if (fd_ < 0) {
        throw value_error(
            fmt::format("Unable to log to the data logger socket at '{}': this producer was closed.", path_.string()));
    }
    const std::size_t length = entry_prefix + package.payload.size();
    if (length > 0xFFFFFFFFULL) {
        throw value_error(
            fmt::format("Unable to log a payload of {} bytes through the data logger socket: the "
                        "frame length is 32 bits.",
                        package.payload.size()));
    }
    std::array<std::uint8_t, 4 + entry_prefix> head{};
    sys::store_le32(head.data(), static_cast<std::uint32_t>(length));
    head[4] = package.source_id;
    sys::store_le64(head.data() + 5, package.acquisition_time);
    std::array<iovec, 2> parts{iovec{head.data(), head.size()},
                               // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): iovec is not const-correct.
                               iovec{const_cast<std::uint8_t*>(package.payload.data()), package.payload.size()}};
    iovec* first = parts.data();
    std::size_t count = parts[1].iov_len == 0 ? 1 : 2;
    while (count > 0) {
        msghdr message{};
        message.msg_iov = first;
        message.msg_iovlen = count;
        const ssize_t n = sys::retry_eintr([&] { return ::sendmsg(fd_, &message, MSG_NOSIGNAL); });
        if (n < 0) {
            const int error = errno;
            throw_errno(error, fmt::format("Unable to log to the data logger socket at '{}': {} ({} packages were "
                                           "sent before; call close() to learn how many the logger accepted).",
                                           path_.string(), sys::errno_message(error), sent_));
        }
        detail::advance_iovecs(first, count, static_cast<std::size_t>(n));
    }
    ++sent_;
}

void log_socket_producer::log_onset(std::uint8_t source_id) {
    log(make_onset_package(source_id, utc_now_us()));
}

std::uint64_t log_socket_producer::close() {
    if (fd_ < 0) {
        throw value_error(fmt::format("Unable to close the data logger socket producer for '{}': it is already closed.",
                                      path_.string()));
    }
    const sys::unique_fd fd(std::exchange(fd_, -1));
    std::array<std::uint8_t, 8> count{};
    std::size_t got = 0;
    int error = EPIPE;  // what a missing count means unless the kernel says more
    if (::shutdown(fd.get(), SHUT_WR) != 0) {
        error = errno;
    } else {
        const sys::io_result read = sys::read_full(fd.get(), count.data(), count.size());
        got = read.bytes;
        if (read.error) {
            error = read.error.value();
        }
    }
    if (got < count.size()) {
        throw_errno(error,
                    fmt::format("The data logger socket at '{}' closed the connection without confirming the {} "
                                "packages sent (a malformed message, or the server's shutdown grace ran out): treat "
                                "them as not logged.",
                                path_.string(), sent_));
    }
    const std::uint64_t accepted = sys::load_le64(count.data());
    if (accepted != sent_) {
        throw_errno(EIO, fmt::format("The data logger socket at '{}' confirmed {} of the {} packages sent.",
                                     path_.string(), accepted, sent_));
    }
    return accepted;
}

}  // namespace axds
