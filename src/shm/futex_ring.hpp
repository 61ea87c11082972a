#pragma once
// io_uring futex waits on a shared_memory_array's robust mutex word, for async_lock (issue 21). Private to src/.

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "sys/unique_fd.hpp"
#include "sys/uring.hpp"

#include <optional>
#include <unistd.h>

namespace axds::detail {

/// The io_uring of one mapped array object, on which its async_lock waits sleep in the kernel on the mutex's futex
/// word. Lifetime: one ring per mapped object (made on its first wait), shut down before the mapping goes, because
/// its futex waits point into that mapping; pending waits keep the object (not the mapping) alive. Its eventfd is
/// registered with the ring; every waiting operation watches a dup of it on its own executor (Asio's reactor), so a
/// completion costs one wake-up of that executor's thread. Thread-safe.
class futex_ring {
public:
    /// What became of one wait.
    struct outcome {
        bool done = false;       ///< false: still queued in the kernel
        bool cancelled = false;  ///< cancel() was called for it: the awaiting operation ends with operation_aborted
    };

    explicit futex_ring(int* word) noexcept : word_(word) {}

    futex_ring(const futex_ring&) = delete;
    futex_ring& operator=(const futex_ring&) = delete;

    ~futex_ring();

    /// False once io_uring refused something (then async_lock uses the helper thread) or after shutdown().
    [[nodiscard]] bool usable();
    /// Makes the ring on first use; a new descriptor watching its eventfd, or -1 (then the ring is not usable).
    [[nodiscard]] int watch_descriptor();
    /// Queues a futex wait on the word for `expected` (ending at `deadline`): its id, or 0 if io_uring refused.
    [[nodiscard]] std::uint64_t submit(std::uint32_t expected, std::chrono::steady_clock::time_point deadline);
    /// True when wait `id` has completed (or the ring was shut down): take() then reports it done.
    [[nodiscard]] bool ready(std::uint64_t id);
    /// The outcome of wait `id`; once done, its record is gone. A cancelled wait that consumed a wake passes it on.
    [[nodiscard]] outcome take(std::uint64_t id);
    /// Cancels wait `id` (from any thread): its completion still arrives, then take() reports it cancelled.
    void cancel(std::uint64_t id);
    /// Cancels wait `id` whose operation is gone without completing (its io_context destroyed): its record goes
    /// when its completion arrives, and a wake it consumed is passed on.
    void abandon(std::uint64_t id) noexcept;
    /// Before the mapping goes: cancels every queued wait (none stays in the kernel), passes on a wake they may have
    /// consumed, and wakes the watching operations (they complete and their retry sees the disconnect).
    void shutdown() noexcept;

private:
    struct wait_record {
        bool done = false;
        int result = 0;
        bool cancelled = false;
        bool abandoned = false;
    };

    bool initialize_locked() noexcept;
    void cancel_locked(std::uint64_t id, wait_record& record) noexcept;
    void reap_locked();
    io_uring_sqe* sqe_locked(unsigned needed);

    int* word_;
    std::mutex mutex_;
    sys::unique_fd event_fd_;         ///< declared first: closes after the ring is gone
    std::optional<sys::uring> ring_;  ///< made on the first wait; the kernel cancels what is queued when it goes
    bool broken_ = false;
    bool stopped_ = false;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, wait_record> waits_;
};

/// One awaiting operation: watches the ring's eventfd on the handler's executor until its wait completes.
template <typename Handler>
class futex_wait_op : public std::enable_shared_from_this<futex_wait_op<Handler>> {
public:
    futex_wait_op(Handler handler, std::shared_ptr<futex_ring> ring)
        : handler_(std::move(handler)), ring_(std::move(ring)), descriptor_(asio::get_associated_executor(handler_)) {}

    futex_wait_op(const futex_wait_op&) = delete;
    futex_wait_op& operator=(const futex_wait_op&) = delete;

    ~futex_wait_op() {
        if (id_ != 0 && !finished_) {
            ring_->abandon(id_);  // destroyed unfinished (its io_context went): no waiter may stay in the kernel
        }
    }

    /// Watches the ring, then queues the wait; completes at once (posted, never inline) if either is refused: the
    /// retry then sees the ring unusable and takes the helper thread.
    void start(std::uint32_t expected, std::chrono::steady_clock::time_point deadline) {
        sys::unique_fd fd(ring_->watch_descriptor());
        if (fd) {
            std::error_code error;
            descriptor_.assign(fd.get(), error);
            if (!error) {
                (void)fd.release();  // the descriptor object owns it now
            }
        }
        if (descriptor_.is_open()) {
            id_ = ring_->submit(expected, deadline);
        }
        if (id_ == 0) {
            asio::post(descriptor_.get_executor(), [self = this->shared_from_this()] { self->finish({}); });
            return;
        }
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) {
            slot.assign([ring = ring_, id = id_](asio::cancellation_type type) {
                if (type != asio::cancellation_type::none) {
                    ring->cancel(id);  // the completion of the cancelled wait then ends the operation
                }
            });
        }
        arm();
    }

private:
    void arm() {
        descriptor_.async_wait(asio::posix::descriptor_base::wait_read,
                               [self = this->shared_from_this()](std::error_code) { self->on_ready(); });
        // The reactor watches edges: a completion that came before the wait was queued may have left none to see.
        if (ring_->ready(id_)) {
            descriptor_.cancel();
        }
    }

    void on_ready() {
        const futex_ring::outcome result = ring_->take(id_);
        if (!result.done) {
            arm();  // another operation's completion
            return;
        }
        finish(result.cancelled ? std::error_code(asio::error::operation_aborted) : std::error_code());
    }

    void finish(std::error_code error) {
        finished_ = true;
        asio::get_associated_cancellation_slot(handler_).clear();
        std::error_code ignored;
        descriptor_.close(ignored);
        Handler handler = std::move(handler_);
        std::move(handler)(error);  // on the handler's executor already
    }

    Handler handler_;
    std::shared_ptr<futex_ring> ring_;
    asio::posix::stream_descriptor descriptor_;
    std::uint64_t id_ = 0;
    bool finished_ = false;
};

/// co_await-able: completes when the word no longer holds `expected` (the holder unlocked or died, or it had changed
/// already), at `deadline`, or when io_uring refused the wait (all with success: the caller retries), or with
/// operation_aborted when cancelled (then no wait is left in the kernel).
template <typename Token>
auto async_futex_wait(const std::shared_ptr<futex_ring>& ring, std::uint32_t expected,
                      std::chrono::steady_clock::time_point deadline, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [](auto handler, std::shared_ptr<futex_ring> r, std::uint32_t value,
           std::chrono::steady_clock::time_point until) {
            using op_type = futex_wait_op<std::decay_t<decltype(handler)>>;
            std::make_shared<op_type>(std::move(handler), std::move(r))->start(value, until);
        },
        token, ring, expected, deadline);
}

}  // namespace axds::detail
