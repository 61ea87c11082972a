#include "detail/parallel.hpp"

#include <axds/core/runtime.hpp>

#include "detail/asio_compat.hpp"

#include <asio/post.hpp>
#include <asio/this_coro.hpp>

#include <exception>
#include <memory>
#include <vector>

namespace axds::detail {

asio::awaitable<void> async_parallel_for(std::size_t tasks, std::function<void(std::size_t)> fn) {
    if (tasks == 0) {
        co_return;
    }
    auto executor = co_await asio::this_coro::executor;
    using done_channel = channel<std::size_t, std::exception_ptr>;
    auto done = std::make_shared<done_channel>(executor, tasks);  // capacity: every try_send succeeds
    auto body = std::make_shared<std::function<void(std::size_t)>>(std::move(fn));
    for (std::size_t i = 0; i < tasks; ++i) {
        asio::post(cpu_executor(), [done, body, i] {
            std::exception_ptr error;
            try {
                (*body)(i);
            } catch (...) {
                error = std::current_exception();
            }
            done->try_send(asio::error_code{}, i, error);
        });
    }
    std::vector<std::exception_ptr> errors(tasks);
    for (std::size_t received = 0; received < tasks; ++received) {
        auto [ec, index, error] = co_await done->async_receive(nothrow);
        if (ec) {
            throw std::system_error(ec, "axds: parallel task channel failed");
        }
        errors[index] = error;
    }
    for (const auto& error : errors) {
        if (error) {
            std::rethrow_exception(error);
        }
    }
}

}  // namespace axds::detail
