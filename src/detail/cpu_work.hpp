#pragma once
// Runs CPU-heavy work on axds::cpu_executor() and resumes the awaiting coroutine on its own executor. Private to
// src/.

#include "detail/parallel.hpp"

#include <asio/error.hpp>
#include <asio/this_coro.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace axds::detail {

/// co_await async_run_cpu(f): f() runs on the CPU pool; its result (or exception) comes back to the caller.
/// Built on async_parallel_for, whose completion is safe against the caller's io_context ending right after it.
template <typename F>
asio::awaitable<std::invoke_result_t<F&>> async_run_cpu(F f) {
    using result_type = std::invoke_result_t<F&>;
    auto work = std::make_shared<F>(std::move(f));
    if constexpr (std::is_void_v<result_type>) {
        // GCC 12: never a capturing lambda inside the co_await expression.
        std::function<void(std::size_t)> task = [work](std::size_t) {
            (*work)();
        };
        co_await async_parallel_for(1, std::move(task));
    } else {
        auto out = std::make_shared<std::optional<result_type>>();
        std::function<void(std::size_t)> task = [work, out](std::size_t) {
            out->emplace((*work)());
        };
        co_await async_parallel_for(1, std::move(task));
        co_return std::move(**out);
    }
}

/// async_run_cpu for void work that is not interrupted once started (a walk, a plan): true when the caller was
/// cancelled meanwhile, so that it ends with its own message ("cancelled after 0 of N files; ...") instead of the bare
/// operation_aborted ("co_await: Operation aborted") a cancelled coroutine's next co_await throws.
template <typename F>
asio::awaitable<bool> async_run_cpu_cancellable(F f) {
    bool aborted = false;
    try {
        co_await async_run_cpu(std::move(f));
    } catch (const std::system_error& e) {
        if (e.code() != asio::error::operation_aborted) {
            throw;
        }
        aborted = true;
    }
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    co_return aborted || cancelled(state);
}

}  // namespace axds::detail
