// block_on_interruptible's signal handling (include/axds/core/runtime.hpp): in a file of its own because the
// signal_set's descriptor reactor needs the -Wnull-dereference exception of CMakeLists.txt.

#include <axds/core/runtime.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/signal_set.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <memory>

namespace axds {

asio::awaitable<void> detail::cancel_on_interrupt(asio::awaitable<void> op, std::function<void()> on_interrupt,
                                                  std::function<void()> on_quit) {
    const auto executor = co_await asio::this_coro::executor;
    asio::signal_set signals(executor, SIGINT, SIGTERM);
    asio::cancellation_signal cancel;
    // Shared with the signal handler, which may run after this frame is gone (then it only sees that it is done).
    const auto done = std::make_shared<bool>(false);
    signals.async_wait([&signals, &cancel, &on_interrupt, &on_quit, done](const std::error_code& ec, int) {
        if (ec || *done) {
            return;
        }
        if (on_interrupt) {
            on_interrupt();
        }
        cancel.emit(asio::cancellation_type::terminal);
        signals.async_wait([&on_quit](const std::error_code& second, int) {
            if (!second) {
                if (on_quit) {
                    on_quit();
                }
                std::_Exit(130);
            }
        });
    });
    std::exception_ptr error;
    try {
        co_await asio::co_spawn(executor, std::move(op),
                                asio::bind_cancellation_slot(cancel.slot(), asio::use_awaitable));
    } catch (...) {
        error = std::current_exception();
    }
    *done = true;
    signals.cancel();
    if (error) {
        std::rethrow_exception(error);
    }
}

}  // namespace axds
