#pragma once
// Bounded parallelism on the CPU pool for coroutines (STYLE.md C7/C8). Private to src/.

#include <asio/awaitable.hpp>

#include <cstddef>
#include <functional>

namespace axds::detail {

/// Runs fn(0) … fn(tasks - 1) concurrently on axds::cpu_executor() and completes, on the caller's executor, when all
/// have returned. Every task runs even if another fails; the first exception (in task order) is rethrown.
/// fn must stay valid until completion (it is shared by the tasks, not copied per task).
asio::awaitable<void> async_parallel_for(std::size_t tasks, std::function<void(std::size_t)> fn);

}  // namespace axds::detail
