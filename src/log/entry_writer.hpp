#pragma once
// The data logger's entry writers (private to src/): io_uring chains of openat/writev/close with several entries in
// flight, or plain syscalls on the CPU pool where io_uring is unavailable.

#include <axds/log/log_package.hpp>

#include "log/entry_pool.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace axds::detail {

/// Bytes charged per entry on top of its payload: 128-byte npy header + 9-byte prefix + the node itself.
inline constexpr std::size_t entry_bookkeeping_bytes = 201;

/// Owning FIFO of queued entries (from `pool`, which outlives the list). Destroying a non-empty list (the executor was
/// torn down under the writer) warns how many entries were lost.
class entry_list {
public:
    explicit entry_list(entry_pool& pool) noexcept : pool_(&pool) {}

    entry_list(const entry_list&) = delete;
    entry_list& operator=(const entry_list&) = delete;
    ~entry_list();

    [[nodiscard]] bool empty() const noexcept { return front_ == nullptr; }

    /// Appends a chain linked through `next` from `first` to `last`, in chain order.
    void append_chain(queued_entry* first, queued_entry* last) noexcept;
    /// Removes and returns the oldest entry (the caller owns it). Precondition: !empty().
    [[nodiscard]] queued_entry* pop_front() noexcept;

private:
    entry_pool* pool_;
    queued_entry* front_ = nullptr;
    queued_entry* back_ = nullptr;
};

/// Writes entries as `.npy` files relative to a directory descriptor. Entries come from, and go back to, the pool
/// given at construction (the logger's, which outlives the writer).
class entry_writer {
public:
    /// Called once per finished entry; `error` is empty on success, else "<step> failed: <reason>". A file that a
    /// failed write or close left behind is unlinked before the call, and `error` ends with "; the partial file was
    /// removed" (or says that the unlink failed too).
    using completion_fn = std::function<void(queued_entry& entry, const std::string& error)>;

    explicit entry_writer(entry_pool& pool) noexcept : pool_(&pool) {}

    entry_writer(const entry_writer&) = delete;
    entry_writer& operator=(const entry_writer&) = delete;
    virtual ~entry_writer() = default;

    /// How many more entries add() accepts before some must complete.
    [[nodiscard]] virtual std::size_t capacity_left() const noexcept = 0;
    /// Takes ownership of `entry` and starts (or schedules) its write.
    virtual void add(queued_entry* entry) = 0;
    /// True for the io_uring writer.
    [[nodiscard]] virtual bool uses_io_uring() const noexcept = 0;
    /// Entries added and not yet completed.
    [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;
    /// Waits until at least one entry finished, reports every finished one to `done`, frees them and returns the
    /// sum of their charges. `done` must stay valid until the returned awaitable completes.
    virtual asio::awaitable<std::size_t> async_complete_some(const completion_fn& done) = 0;
    /// Cancels and frees whatever is still in flight (after a failure of the writer itself); returns how many.
    virtual std::uint64_t abandon() noexcept = 0;

    /// When the writer wants to be called while idle (a time-based sync of data already written), or none.
    [[nodiscard]] virtual std::optional<std::chrono::steady_clock::time_point> idle_deadline() const {
        return std::nullopt;
    }

    /// Called by the logger's loop, with nothing in flight, once idle_deadline() has passed.
    virtual asio::awaitable<void> async_on_idle_deadline() { co_return; }

protected:
    /// Frees a finished entry: its payload, and its node back to the pool.
    void release(queued_entry* entry) const noexcept { pool_->release(entry); }

    [[nodiscard]] entry_pool& pool() const noexcept { return *pool_; }

private:
    entry_pool* pool_;
};

/// Tests only: asked for each entry's file name; true makes that entry's open fail (see detail/fault_hooks.hpp).
using entry_fault_fn = std::function<bool(std::string_view file_name)>;

/// An io_uring writer when `use_io_uring` and the kernel supports direct-descriptor chains, else the plain one.
/// `directory_fd` and `pool` stay owned by the caller and must outlive the writer. `fail_entry` is usually empty.
[[nodiscard]] std::unique_ptr<entry_writer> make_entry_writer(const asio::strand<asio::any_io_executor>& executor,
                                                              int directory_fd, std::size_t concurrency,
                                                              bool use_io_uring, entry_pool& pool,
                                                              entry_fault_fn fail_entry = {});

}  // namespace axds::detail
