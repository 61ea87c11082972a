#include <axds/core/runtime.hpp>
#include <axds/core/workers.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include "sys/uring.hpp"

#include <exception>
#include <thread>

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

asio::any_io_executor cpu_executor() {
    static asio::thread_pool pool(static_cast<std::size_t>(std::max(1, logical_cpu_count())));
    return pool.get_executor();
}

bool io_uring_available() noexcept {
    return sys::uring_supported();
}

}  // namespace axds
