#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace axds {

namespace detail {

/// Runs `op` to completion on a private io_context on the calling thread; rethrows its exception.
void block_on_void(asio::awaitable<void> op);

template <typename T>
asio::awaitable<void> store_result(asio::awaitable<T> op, std::optional<T>& out) {
    out.emplace(co_await std::move(op));
}

}  // namespace detail

/// The one blocking entry point (DESIGN.md): runs `op` to completion on a private io_context on the calling thread
/// and returns its result, rethrowing any exception it ends with. For plain programs, the CLI and examples; code
/// that already runs an io_context should `co_await` the operation instead.
template <typename T>
T block_on(asio::awaitable<T> op) {
    if constexpr (std::is_void_v<T>) {
        detail::block_on_void(std::move(op));
    } else {
        std::optional<T> result;
        detail::block_on_void(detail::store_result(std::move(op), result));
        return std::move(*result);
    }
}

/// The executor of the process-wide CPU thread pool that library operations use for CPU-heavy work (hashing,
/// CRC-32, interpolation of large arrays). Created on first use with one thread per logical core.
/// Thread safety: may be called from any thread.
[[nodiscard]] asio::any_io_executor cpu_executor();

/// True if this kernel and process may create an io_uring (probed once: io_uring_queue_init on a tiny ring).
/// Old kernels and seccomp-restricted containers answer false.
[[nodiscard]] bool io_uring_available() noexcept;

}  // namespace axds
