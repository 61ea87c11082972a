#pragma once
// Bounded parallelism on the CPU pool for coroutines. Private to src/.

#include <asio/awaitable.hpp>
#include <asio/cancellation_state.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

namespace axds::detail {

/// Runs fn(0) … fn(tasks - 1) concurrently on axds::cpu_executor() and completes, on the caller's executor, when all
/// have returned. Every task runs even if another fails; the first exception (in task order) is rethrown.
/// fn must stay valid until completion (it is shared by the tasks, not copied per task).
asio::awaitable<void> async_parallel_for(std::size_t tasks, std::function<void(std::size_t)> fn);

/// As above, and a cancellation signal on the awaiting coroutine's slot sets `*stop`, which the tasks
/// poll to end early; the caller then decides what a partial run means. Completion still waits for every task.
asio::awaitable<void> async_parallel_for(std::size_t tasks, std::function<void(std::size_t)> fn,
                                         std::shared_ptr<std::atomic<bool>> stop);

/// True once the coroutine's cancellation slot received a signal; use as
/// `cancelled(co_await asio::this_coro::cancellation_state)` at the safe points of long work. (Not a coroutine of
/// its own: co_await of a nested awaitable already throws "co_await: Operation aborted" once cancelled.)
inline bool cancelled(const asio::cancellation_state& state) {
    return state.cancelled() != asio::cancellation_type::none;
}

}  // namespace axds::detail
