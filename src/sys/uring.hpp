#pragma once
// The io_uring engine of src/: one availability rule, one ring wrapper, typed completion tags and one completion
// loop, used by every io_uring user (file copies, batched prefix reads, unlink batches, the data logger's writer,
// async_lock's futex waits). Private to src/.
//
// Adding an operation: pick (or add) an `op` below, queue it with `uring::sqe()` + `set_tag`, and handle it in the
// user's completion handler; see docs/ARCHITECTURE.md.

#include <liburing.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace axds::sys {

/// What a user needs from the kernel beyond a ring.
enum class uring_feature : std::uint8_t {
    ring,                ///< io_uring_queue_init works (not refused by the kernel or a seccomp filter)
    direct_descriptors,  ///< OPENAT/CLOSE into registered file slots (Linux 5.15)
    futex_wait,          ///< IORING_OP_FUTEX_WAIT (Linux 6.7)
};

/// The one availability rule: the kernel has `feature` (probed once per process) and AXDS_NO_IO_URING is not set
/// (read on each call, so that a user created after setting it takes the plain path).
[[nodiscard]] bool uring_enabled(uring_feature feature = uring_feature::ring) noexcept;
/// The kernel part of the rule alone, without AXDS_NO_IO_URING (axds::io_uring_available()).
[[nodiscard]] bool uring_supported(uring_feature feature = uring_feature::ring) noexcept;

/// IORING_OP_FUTEX_WAIT (Linux 6.7 uapi, absent from liburing 2.3's headers).
inline constexpr std::uint8_t opcode_futex_wait = 51;

/// The kind of a queued operation, packed with an index (slot, chunk, file or wait id) into the SQE's user_data.
enum class op : std::uint8_t { read, write, open, close, unlink, futex_wait, aux };

/// A completion's unpacked user_data and result.
struct completion {
    std::uint64_t index = 0;
    op kind = op::aux;
    int res = 0;  ///< the kernel's result: a count, or -errno

    /// The failure, or an empty code when the operation succeeded.
    [[nodiscard]] std::error_code error() const noexcept {
        return res < 0 ? std::error_code(-res, std::system_category()) : std::error_code();
    }

    /// The byte count of a successful read or write (0 after a failure).
    [[nodiscard]] std::size_t bytes() const noexcept { return res < 0 ? 0 : static_cast<std::size_t>(res); }
};

inline constexpr unsigned tag_op_bits = 3;
static_assert(static_cast<unsigned>(op::aux) < (1U << tag_op_bits));

[[nodiscard]] constexpr std::uint64_t pack_tag(std::uint64_t index, op kind) noexcept {
    return (index << tag_op_bits) | static_cast<std::uint64_t>(kind);
}

[[nodiscard]] constexpr completion unpack_tag(std::uint64_t data, int res = 0) noexcept {
    return {data >> tag_op_bits, static_cast<op>(data & ((1U << tag_op_bits) - 1)), res};
}

inline void set_tag(io_uring_sqe* sqe, std::uint64_t index, op kind) noexcept {
    io_uring_sqe_set_data64(sqe, pack_tag(index, kind));
}

/// One io_uring (RAII: io_uring_queue_init in the constructor, io_uring_queue_exit once, by retire() or the
/// destructor). Not thread-safe: one thread at a time (the futex ring holds its mutex).
class uring {
public:
    /// A ring of `entries` submission entries; ready() is false if the kernel refused it.
    explicit uring(unsigned entries) noexcept;
    ~uring();

    uring(const uring&) = delete;
    uring& operator=(const uring&) = delete;

    [[nodiscard]] bool ready() const noexcept { return ready_; }

    [[nodiscard]] io_uring& get() noexcept { return ring_; }

    /// Tears the ring down now (the kernel cancels what is in flight); ready() is false from then on. For a ring
    /// that failed: what is queued must never run later.
    void retire() noexcept;

    /// The next free submission entry; when the queue is full, what is queued is submitted first to make room.
    /// @throws std::logic_error if there is still none (a caller queued more than the ring holds: a bug).
    [[nodiscard]] io_uring_sqe* sqe();
    /// Submits what is queued, retrying EINTR/EAGAIN.
    std::error_code submit() noexcept;

    /// Calls `handle(completion)` for every completion already in the queue, then marks them seen. Returns their
    /// number. Completions the kernel kept while the queue was full are flushed first.
    template <class Handler>
    unsigned reap(Handler&& handle) {
        flush_overflow();
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            handle(unpack_tag(io_uring_cqe_get_data64(cqe), cqe->res));
        }
        io_uring_cq_advance(&ring_, seen);
        return seen;
    }

    /// The blocking completion loop's step: submits what is queued, waits for at least one completion and reaps
    /// every ready one. A failure of the ring itself retires it and is returned (the caller falls back to plain
    /// syscalls); EINTR is not a failure.
    template <class Handler>
    std::error_code submit_and_reap(Handler&& handle) {
        const int rc = io_uring_submit_and_wait(&ring_, 1);
        if (rc < 0 && rc != -EINTR) {
            retire();
            return {-rc, std::system_category()};
        }
        reap(handle);
        return {};
    }

private:
    void flush_overflow() noexcept;

    io_uring ring_{};
    bool ready_ = false;
};

/// Slots registered for direct descriptors on every thread ring (read_file_prefixes' files in flight).
inline constexpr unsigned thread_ring_files = 64;

/// This thread's ring for the blocking users (CPU-pool threads): made on first use with 256 entries and
/// `thread_ring_files` sparse file slots, reused by every later call on the thread, gone with the thread. nullptr
/// when io_uring is not enabled (uring_enabled()) or the ring failed on this thread: the caller uses plain syscalls.
[[nodiscard]] uring* thread_ring() noexcept;

}  // namespace axds::sys
