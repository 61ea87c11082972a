#include "detail/parallel.hpp"

#include <axds/core/runtime.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

namespace axds::detail {

namespace {

/// Shared by the tasks of one async_parallel_for. It holds no I/O object, so the last task may release it after the
/// caller's io_context is gone: the completion handler is moved out and posted before that.
template <typename Handler>
struct parallel_state {
    std::atomic<std::size_t> remaining;
    std::vector<std::exception_ptr> errors;
    std::function<void(std::size_t)> body;
    std::optional<Handler> handler;

    parallel_state(std::size_t tasks, std::function<void(std::size_t)> fn, Handler h)
        : remaining(tasks), errors(tasks), body(std::move(fn)), handler(std::move(h)) {}

    void finish_one() {
        if (--remaining != 0) {
            return;
        }
        // Moved, not copied: the caller's thread must hold the only reference to the exception it receives.
        std::exception_ptr first;
        for (auto& error : errors) {
            if (error && !first) {
                first = std::move(error);
            }
        }
        errors.clear();
        Handler h = std::move(*handler);
        handler.reset();
        // Keep the caller's execution context counted as busy until post() has fully returned: post() may still
        // signal the context's scheduler after queueing, and the completion may otherwise run, finish the caller's
        // io_context and destroy it in the meantime (a data race TSan reports). Every other copy of the executor
        // must be gone before `busy` is: a strand copy released after the context ended would touch its freed
        // strand service (ASan).
        auto busy = post_tracked(std::move(h), std::move(first));
        (void)busy;
    }

    template <typename H>
    static auto post_tracked(H h, std::exception_ptr first) {
        const auto executor = asio::get_associated_executor(h);
        auto busy = asio::prefer(executor, asio::execution::outstanding_work.tracked);
        asio::post(executor, [h = std::move(h), e = std::move(first)]() mutable { std::move(h)(std::move(e)); });
        return busy;  // `executor` is destroyed first, on return
    }
};

}  // namespace

asio::awaitable<void> async_parallel_for(std::size_t tasks, std::function<void(std::size_t)> fn) {
    co_await async_parallel_for(tasks, std::move(fn), nullptr);
}

asio::awaitable<void> async_parallel_for(std::size_t tasks, std::function<void(std::size_t)> fn,
                                         std::shared_ptr<std::atomic<bool>> stop) {
    if (tasks == 0) {
        co_return;
    }
    // Got here, not in `initiate`: an exception thrown while an operation is initiated ends the process (asio calls
    // std::terminate), and starting the pool can fail (no thread to be had: a limit on processes or memory).
    const asio::any_io_executor pool = cpu_executor();
    auto initiate = [tasks, fn = std::move(fn), stop = std::move(stop), pool](auto handler) mutable {
        // The slot handler runs on the caller's thread; use_awaitable clears it there when the operation completes.
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (stop && slot.is_connected()) {
            slot.assign([stop](asio::cancellation_type type) {
                if (type != asio::cancellation_type::none) {
                    stop->store(true, std::memory_order_relaxed);
                }
            });
        }
        using state_type = parallel_state<decltype(handler)>;
        auto state = std::make_shared<state_type>(tasks, std::move(fn), std::move(handler));
        for (std::size_t i = 0; i < tasks; ++i) {
            asio::post(pool, [state, i] {
                try {
                    state->body(i);
                } catch (...) {
                    state->errors[i] = std::current_exception();
                }
                state->finish_one();
            });
        }
    };
    // use_awaitable rethrows a non-null exception_ptr passed as the first completion argument.
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(std::move(initiate),
                                                                                            asio::use_awaitable);
}

}  // namespace axds::detail
