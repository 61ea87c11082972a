#pragma once
// The only file that may name asio::experimental or branch on ASIO_VERSION.
// Debian 12 ships Asio 1.22.1; as_tuple left `experimental` in 1.24.

#include <asio/use_awaitable.hpp>
#include <asio/version.hpp>

#if ASIO_VERSION >= 102400
#include <asio/as_tuple.hpp>
#else
#include <asio/experimental/as_tuple.hpp>
#endif
#include <asio/experimental/concurrent_channel.hpp>

namespace axds::detail {

#if ASIO_VERSION >= 102400
using asio::as_tuple;
#else
using asio::experimental::as_tuple;
#endif

/// Token for internal awaits that must branch on failure: `auto [ec, n] = co_await op(nothrow)`.
inline constexpr auto nothrow = as_tuple(asio::use_awaitable);

/// Thread-safe awaitable queue. Asio 1.22 rejects `void(error_code)`: carry a value.
template <typename... Ts>
using channel = asio::experimental::concurrent_channel<void(asio::error_code, Ts...)>;

}  // namespace axds::detail
