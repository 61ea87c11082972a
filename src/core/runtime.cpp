#include <axds/core/runtime.hpp>
#include <axds/core/workers.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include "sys/uring.hpp"

#include <axds/error.hpp>
#include <fmt/format.h>

#include <exception>
#include <system_error>
#include <thread>
#include <vector>

namespace axds {

void detail::block_on_void(asio::awaitable<void> op) {
    asio::io_context io(1);
    std::exception_ptr error;
    bool done = false;
    asio::co_spawn(io, std::move(op), [&](const std::exception_ptr& e) {
        error = e;
        done = true;
    });
    io.run();
    if (error) {
        std::rethrow_exception(error);
    }
    if (!done) {
        throw std::logic_error("axds::block_on: the operation stopped without completing");
    }
}

namespace {

/// The CPU pool: an asio::thread_pool run by threads started here. Its own constructor, when a thread cannot be
/// created (a process, thread or memory limit), joins the threads it already started, which never stop: the
/// process hung, deaf to SIGTERM. Here whatever threads can be had run the pool; none at all is an error saying why.
class cpu_pool {
public:
    explicit cpu_pool(std::size_t wanted) : pool_(0) {
        threads_.reserve(wanted);
        for (std::size_t i = 0; i < wanted; ++i) {
            try {
                threads_.emplace_back([this] { pool_.attach(); });
            } catch (const std::exception& e) {  // std::system_error (no thread), std::bad_alloc (no memory)
                if (threads_.empty()) {
                    pool_.stop();
                    const auto* system = dynamic_cast<const std::system_error*>(&e);
                    throw os_error(
                        system != nullptr ? system->code() : std::make_error_code(std::errc::not_enough_memory),
                        fmt::format("Unable to start the CPU worker threads: {}. A limit on processes or "
                                    "memory (ulimit -u, ulimit -v) may be too low for this program.",
                                    system != nullptr ? system->code().message() : "out of memory"));
                }
                break;  // fewer threads than cores: slower, not wrong
            }
        }
    }

    cpu_pool(const cpu_pool&) = delete;
    cpu_pool& operator=(const cpu_pool&) = delete;

    ~cpu_pool() {
        pool_.stop();
        for (auto& thread : threads_) {
            if (thread.get_id() == std::this_thread::get_id()) {
                thread.detach();  // exit() called from a pool task: that thread cannot join itself
            } else {
                thread.join();
            }
        }
    }

    [[nodiscard]] asio::any_io_executor executor() { return pool_.get_executor(); }

private:
    asio::thread_pool pool_;
    std::vector<std::thread> threads_;
};

}  // namespace

asio::any_io_executor cpu_executor() {
    static cpu_pool pool(static_cast<std::size_t>(std::max(1, logical_cpu_count())));
    return pool.executor();
}

bool io_uring_available() noexcept {
    return sys::uring_supported();
}

}  // namespace axds
