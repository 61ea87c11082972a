#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <functional>
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

/// Awaits `op` with a terminal cancellation emitted to it on the first SIGINT/SIGTERM (after `on_interrupt`), and
/// ends the process with status 130 on a second one (after `on_quit`).
asio::awaitable<void> cancel_on_interrupt(asio::awaitable<void> op, std::function<void()> on_interrupt,
                                          std::function<void()> on_quit);

}  // namespace detail

/// The one blocking entry point: runs `op` to completion on a private io_context on the calling thread
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

/// block_on for programs that Ctrl-C may stop: while `op` runs, the first SIGINT or SIGTERM calls `on_interrupt` (if
/// any) and emits a terminal cancellation to `op`, which stops at its next safe point and ends as it documents for
/// cancellation (its exception is rethrown here); a second one calls `on_quit` (if any: e.g. to say what may be left
/// unfinished) and ends the process at once with status 130. The signal handlers are the process's only while the
/// call lasts. For the CLI and plain programs, like block_on.
template <typename T>
T block_on_interruptible(asio::awaitable<T> op, std::function<void()> on_interrupt = {},
                         std::function<void()> on_quit = {}) {
    if constexpr (std::is_void_v<T>) {
        block_on(detail::cancel_on_interrupt(std::move(op), std::move(on_interrupt), std::move(on_quit)));
    } else {
        std::optional<T> result;
        block_on(detail::cancel_on_interrupt(detail::store_result(std::move(op), result), std::move(on_interrupt),
                                             std::move(on_quit)));
        return std::move(*result);
    }
}

/// The executor of the process-wide CPU thread pool that library operations use for CPU-heavy work (hashing,
/// CRC-32, interpolation of large arrays). Created on first use with one thread per logical core, or as many as can
/// be started (a limit on processes or memory); throws os_error when not even one can.
/// Thread safety: may be called from any thread.
[[nodiscard]] asio::any_io_executor cpu_executor();

/// True if this kernel and process may create an io_uring (probed once: io_uring_queue_init on a tiny ring).
/// Old kernels and seccomp-restricted containers answer false.
[[nodiscard]] bool io_uring_available() noexcept;

}  // namespace axds
