#pragma once

#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace axds::test {

/// Runs the coroutine made by `make_op()` to completion on `io` and returns its result.
///
/// Blocks until the coroutine finishes, so `make_op` may capture locals by reference.
/// Exceptions (including failed REQUIREs) are rethrown here, on the test thread:
/// Catch2 v2 assertions are not thread-safe.
template <typename MakeOp>
auto run_async(asio::io_context& io, MakeOp&& make_op) {
    using value_type = typename std::invoke_result_t<MakeOp&>::value_type;
    using stored_type = std::conditional_t<std::is_void_v<value_type>, bool, value_type>;

    std::exception_ptr error;
    std::optional<stored_type> result;
    asio::co_spawn(io, make_op(), [&](std::exception_ptr e, auto... value) {
        error = std::move(e);
        if constexpr (sizeof...(value) == 1) {
            result.emplace(std::move(value)...);
        }
    });
    io.restart();
    io.run();
    if (error) {
        std::rethrow_exception(error);
    }
    if constexpr (!std::is_void_v<value_type>) {
        return std::move(*result);
    }
}

/// Runs `op` on `io` with its cancellation slot bound to `signal` (the test emits on it, e.g. from a progress
/// callback) and returns the exception it ended with (null when it completed).
template <typename T>
std::exception_ptr run_cancellable(asio::io_context& io, asio::awaitable<T> op, asio::cancellation_signal& signal) {
    std::exception_ptr error;
    asio::co_spawn(io, std::move(op), asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, auto...) {
                       error = std::move(e);
                   }));
    io.restart();
    io.run();
    return error;
}

}  // namespace axds::test
