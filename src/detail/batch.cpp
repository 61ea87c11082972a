#include "detail/batch.hpp"

#include "detail/parallel.hpp"

#include <asio/this_coro.hpp>

#include <algorithm>
#include <exception>
#include <limits>
#include <memory>

namespace axds::detail {

namespace {

/// Shared by the tasks of one round.
struct round_state {
    std::atomic<std::size_t> next;
    std::size_t last;
    std::atomic<std::size_t> done{0};
    std::mutex mutex;
    std::size_t failed_item = std::numeric_limits<std::size_t>::max();
    std::exception_ptr error;  ///< of failed_item, the lowest item that failed

    round_state(std::size_t first, std::size_t end) : next(first), last(end) {}

    void fail(std::size_t item, std::exception_ptr e) {
        const std::lock_guard lock(mutex);
        if (item < failed_item) {
            failed_item = item;
            error = std::move(e);
        }
    }
};

/// One task: items from the shared cursor until the round ends, a cancellation, or an item of its own fails.
void run_items(round_state& round, const std::atomic<bool>& stop, const item_work& work) {
    for (std::size_t i = round.next.fetch_add(1); i < round.last && !stop.load(std::memory_order_relaxed);
         i = round.next.fetch_add(1)) {
        try {
            work(i, stop);
        } catch (...) {
            round.fail(i, std::current_exception());
            return;
        }
        round.done.fetch_add(1, std::memory_order_relaxed);
    }
}

/// The rounds of async_for_each_item.
asio::awaitable<batch_result> run_rounds(std::size_t count, const batch_plan& plan, const item_work& work,
                                         const round_done& after_round) {
    batch_result result;
    auto stop = std::make_shared<std::atomic<bool>>(false);
    const std::size_t round = plan.round == 0 ? count : plan.round;
    const std::size_t workers = std::max<std::size_t>(1, plan.workers);
    for (std::size_t first = 0; first < count; first += round) {
        if (plan.cancellable) {
            const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
            if (stop->load() || cancelled(state)) {
                result.stopped = true;
                co_return result;
            }
        }
        const std::size_t last = std::min(count, first + round);
        auto state = std::make_shared<round_state>(first, last);
        std::function<void(std::size_t)> task = [state, stop, &work](std::size_t) {
            run_items(*state, *stop, work);
        };
        // GCC 12: no temporary with a destructor inside the co_await expression (it was destroyed twice).
        std::shared_ptr<std::atomic<bool>> signalled = plan.cancellable ? stop : nullptr;
        co_await async_parallel_for(std::min(workers, last - first), std::move(task), std::move(signalled));
        result.done += state->done.load();
        // Moved out: the caller's thread must hold the only reference to the exception it receives (the round's
        // state may be released on a pool thread meanwhile).
        if (std::exception_ptr error = std::move(state->error)) {
            std::rethrow_exception(std::move(error));
        }
        if (stop->load()) {
            result.stopped = true;
            co_return result;
        }
        if (after_round) {
            after_round(first, last);
        }
    }
    co_return result;
}

}  // namespace

asio::awaitable<batch_result> async_for_each_item(std::size_t count, batch_plan plan, item_work work,
                                                  round_done after_round) {
    if (plan.cancellable) {
        co_return co_await run_rounds(count, plan, work, after_round);
    }
    // Not cancellable: a signal must not make the next round's co_await throw "co_await: Operation aborted" either.
    // That switch belongs to the caller's coroutine: restored before returning, on every path.
    const bool throws = co_await asio::this_coro::throw_if_cancelled();
    co_await asio::this_coro::throw_if_cancelled(false);
    batch_result result;
    std::exception_ptr error;
    try {
        result = co_await run_rounds(count, plan, work, after_round);
    } catch (...) {
        error = std::current_exception();
    }
    co_await asio::this_coro::throw_if_cancelled(throws);
    if (error) {
        std::rethrow_exception(std::move(error));
    }
    co_return result;
}

}  // namespace axds::detail
