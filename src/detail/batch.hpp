#pragma once
// The one batch runner: "for each item (a file, an archive): open it, work on it, report progress, honour
// cancellation", on the CPU pool. Used by the directory checksum, the transfer's copies and the log archive assembly
// (and through the checksum by the transfer's verification). Private to src/.

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <utility>

namespace axds::detail {

/// How one batch runs.
struct batch_plan {
    /// Tasks on the CPU pool, each taking the next item from a shared cursor (large and small items balance
    /// themselves). Already resolved by resolve_workers_option (src/core/workers.cpp), the one validation point of
    /// every `workers` option: the operation resolves it as its first step, before any walk. At least 1.
    std::size_t workers = 1;
    /// Items per round (0: all items in one round). Between rounds the runner looks at the caller's cancellation
    /// state and calls `after_round` on the caller's executor.
    std::size_t round = 0;
    /// False: a cancellation signal does not stop the batch (work past the point of no return).
    bool cancellable = true;
};

/// Items per round for a batch of `count` items: at least `minimum` (and 32), and enough that there are at most
/// ~100 rounds. Each round ends with every task done (a barrier) and a hop to the caller's executor: with rounds of
/// 32 small files, 20,000 files made 625 barriers, where the threads waited for each other and for the wake-ups
/// (~3% of a small-file transfer's time, measured). 100 progress reports are plenty; cancellation is noticed inside a
/// round.
[[nodiscard]] constexpr std::size_t round_size(std::size_t count, std::size_t minimum) noexcept {
    const std::size_t floor = minimum > 32 ? minimum : 32;
    const std::size_t hundredth = (count + 99) / 100;
    return hundredth > floor ? hundredth : floor;
}

/// What a batch got done.
struct batch_result {
    std::size_t done = 0;  ///< items whose work returned (all of them unless `stopped`)
    bool stopped = false;  ///< cancelled: later items were never started
};

/// The work of one item, on a CPU-pool thread. `stop` is raised on cancellation; long items poll it and return early
/// (the item still counts as done: the operation decides what its partial result means).
using item_work = std::function<void(std::size_t item, const std::atomic<bool>& stop)>;

/// Called on the caller's executor after each round that completed, with the round's items [first, last).
using round_done = std::function<void(std::size_t first, std::size_t last)>;

/// Runs work(0) … work(count - 1), `plan.workers` at a time, in rounds of `plan.round` items.
/// Cancellation (the awaiting coroutine's cancellation slot; Ctrl-C in the CLI) raises `stop`: no task takes a new
/// item, the items in progress finish (or return early), and the result says `stopped` with how many were done. A
/// signal that arrives between rounds (for example from `after_round`) stops the batch before the next round.
/// An item whose work throws ends its task (the other tasks finish the round); after the round, the error of the
/// lowest failed item is rethrown (its message names its file), before any cancellation is reported.
asio::awaitable<batch_result> async_for_each_item(std::size_t count, batch_plan plan, item_work work,
                                                  round_done after_round = {});

/// Progress reported from inside items (several updates per item, from CPU-pool threads): each update changes the
/// shared figures under a lock and posts a snapshot to the caller's executor, where the user's callback runs.
/// Does nothing without a callback.
template <typename Progress>
class posted_progress {
public:
    posted_progress(asio::any_io_executor executor, std::function<void(const Progress&)> callback, Progress initial)
        : executor_(std::move(executor)), callback_(std::move(callback)), current_(std::move(initial)) {}

    /// change(figures) under the lock, then the snapshot to the callback.
    template <typename Change>
    void update(Change&& change) {
        if (!callback_) {
            return;
        }
        Progress snapshot;
        {
            const std::lock_guard lock(mutex_);
            std::forward<Change>(change)(current_);
            snapshot = current_;
        }
        asio::post(executor_, [cb = callback_, snapshot] { cb(snapshot); });
    }

private:
    asio::any_io_executor executor_;
    std::function<void(const Progress&)> callback_;
    std::mutex mutex_;
    Progress current_;
};

}  // namespace axds::detail
