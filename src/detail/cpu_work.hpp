#pragma once
// Runs CPU-heavy work on axds::cpu_executor() and resumes the awaiting coroutine on its own executor
// (STYLE.md C7). Private to src/.

#include <axds/core/runtime.hpp>

#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>

#include <type_traits>
#include <utility>

namespace axds::detail {

template <typename F>
asio::awaitable<void> run_cpu_body(F f, std::optional<std::invoke_result_t<F&>>* out) {
    out->emplace(f());
    co_return;
}

/// co_await async_run_cpu(f): f() runs on the CPU pool; its result (or exception) comes back to the caller.
template <typename F>
asio::awaitable<std::invoke_result_t<F&>> async_run_cpu(F f) {
    using result_type = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<result_type>) {
        auto body = [](F g) -> asio::awaitable<void> {
            g();
            co_return;
        };
        co_await asio::co_spawn(cpu_executor(), body(std::move(f)), asio::use_awaitable);
    } else {
        std::optional<result_type> out;
        auto work = run_cpu_body(std::move(f), &out);
        co_await asio::co_spawn(cpu_executor(), std::move(work), asio::use_awaitable);
        co_return std::move(*out);
    }
}

}  // namespace axds::detail
