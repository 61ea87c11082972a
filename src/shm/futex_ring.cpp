#include "shm/futex_ring.hpp"

#include <cerrno>

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace axds::detail {

namespace {

// Linux 6.7 uapi, absent from liburing 2.3's headers (io_uring/futex.c: io_futex_prep reads the futex2 flags from
// sqe->fd, the expected value from sqe->addr2 and the bitset from sqe->addr3; sqe->futex_flags must be 0).
constexpr int futex2_size_u32 = 0x02;                    // FUTEX2_SIZE_U32; not FUTEX2_PRIVATE: the word is shared
constexpr std::uint64_t futex_bitset_any = 0xffffffffU;  // FUTEX_BITSET_MATCH_ANY
constexpr unsigned ring_entries = 32;                    // waits in flight are not bounded by it (CQ overflow is kept)

/// A wait ended by the word (0: woken; -EAGAIN: it had changed), a timeout or a cancel; anything else (-EINVAL from
/// a kernel that parses the SQE differently, -EFAULT) means this ring must not be used for waiting.
bool expected_result(int result) noexcept {
    return result == 0 || result == -EAGAIN || result == -ECANCELED || result == -ETIME || result == -EINTR;
}

void futex_wake_one(int* word) noexcept {
    (void)::syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

}  // namespace

futex_ring::~futex_ring() = default;

bool futex_ring::initialize_locked() noexcept {
    if (ring_ || broken_) {
        return ring_.has_value();
    }
    ring_.emplace(ring_entries);
    if (!ring_->ready()) {
        ring_.reset();  // ring_ holds only a ring that exists
        broken_ = true;
        return false;
    }
    event_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!event_fd_ || io_uring_register_eventfd(&ring_->get(), event_fd_.get()) != 0) {
        broken_ = true;
        return false;
    }
    return true;
}

bool futex_ring::usable() {
    const std::lock_guard lock(mutex_);
    return !broken_ && !stopped_;
}

int futex_ring::watch_descriptor() {
    const std::lock_guard lock(mutex_);
    if (stopped_ || !initialize_locked()) {
        return -1;
    }
    const int fd = ::fcntl(event_fd_.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        broken_ = true;
    }
    return fd;
}

io_uring_sqe* futex_ring::sqe_locked(unsigned needed) {
    if (io_uring_sq_space_left(&ring_->get()) < needed) {
        (void)ring_->submit();
    }
    return io_uring_get_sqe(&ring_->get());
}

std::uint64_t futex_ring::submit(std::uint32_t expected, std::chrono::steady_clock::time_point deadline) {
    const std::lock_guard lock(mutex_);
    if (stopped_ || broken_ || !initialize_locked()) {
        return 0;
    }
    const bool bounded = deadline != std::chrono::steady_clock::time_point::max();
    io_uring_sqe* sqe = sqe_locked(bounded ? 2 : 1);
    if (sqe == nullptr) {
        return 0;
    }
    const std::uint64_t id = next_id_++;
    io_uring_prep_rw(sys::opcode_futex_wait, sqe, futex2_size_u32, word_, 0, expected);
    sqe->rw_flags = 0;  // sqe->futex_flags in newer headers: must be 0
    sqe->addr3 = futex_bitset_any;
    sys::set_tag(sqe, id, sys::op::futex_wait);
    __kernel_timespec until{};  // read while submitting, below
    if (bounded) {
        // steady_clock is CLOCK_MONOTONIC, the clock of an IORING_TIMEOUT_ABS timeout.
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
        until.tv_sec = ns / 1'000'000'000;
        until.tv_nsec = ns % 1'000'000'000;
        io_uring_sqe* timeout = io_uring_get_sqe(&ring_->get());  // there is room: sqe_locked(2)
        if (timeout == nullptr) {
            io_uring_prep_nop(sqe);  // cannot happen; a wait without its deadline must not be queued
            sys::set_tag(sqe, id, sys::op::aux);
            (void)ring_->submit();
            broken_ = true;
            return 0;
        }
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_prep_link_timeout(timeout, &until, IORING_TIMEOUT_ABS);
        sys::set_tag(timeout, id, sys::op::aux);
    }
    waits_.emplace(id, wait_record{});
    if (ring_->submit()) {
        broken_ = true;  // what stays queued is never submitted; the ring is closed with the object
        waits_.erase(id);
        return 0;
    }
    return id;
}

void futex_ring::reap_locked() {
    if (!ring_) {
        return;
    }
    ring_->reap([this](const sys::completion& c) {
        if (c.kind != sys::op::futex_wait) {
            return;  // a linked timeout or a cancel request
        }
        const auto it = waits_.find(c.index);
        if (it != waits_.end()) {
            it->second.done = true;
            it->second.result = c.res;
            if (it->second.abandoned) {
                if (c.res == 0 && !stopped_) {
                    futex_wake_one(word_);  // nobody will retry: pass the wake on
                }
                waits_.erase(it);
            }
        }
        if (!expected_result(c.res)) {
            broken_ = true;
        }
    });
}

bool futex_ring::ready(std::uint64_t id) {
    const std::lock_guard lock(mutex_);
    reap_locked();
    const auto it = waits_.find(id);
    return stopped_ || it == waits_.end() || it->second.done;
}

futex_ring::outcome futex_ring::take(std::uint64_t id) {
    const std::lock_guard lock(mutex_);
    reap_locked();
    const auto it = waits_.find(id);
    if (it == waits_.end()) {
        return {true, false};
    }
    const wait_record record = it->second;
    if (!record.done && !stopped_) {
        return {false, record.cancelled};
    }
    waits_.erase(it);
    if (record.cancelled && record.done && record.result == 0 && !stopped_) {
        futex_wake_one(word_);  // it consumed a wake meant for a waiter that is still there (under mutex_: mapped)
    }
    return {true, record.cancelled};
}

void futex_ring::cancel_locked(std::uint64_t id, wait_record& record) noexcept {
    record.cancelled = true;
    if (record.done || stopped_) {
        return;
    }
    io_uring_sqe* sqe = sqe_locked(1);
    if (sqe != nullptr) {
        io_uring_prep_cancel64(sqe, sys::pack_tag(id, sys::op::futex_wait), 0);
        sys::set_tag(sqe, id, sys::op::aux);
    }
    if (sqe == nullptr || ring_->submit()) {
        // Cannot happen with a healthy ring; if it does, end the operation now and pass on any wake it gets.
        record.done = true;
        record.result = 0;
    }
    // The eventfd gets the cancelled wait's completion and wakes the operation, which then ends.
}

void futex_ring::cancel(std::uint64_t id) {
    const std::lock_guard lock(mutex_);
    const auto it = waits_.find(id);
    if (it != waits_.end()) {  // else already taken: the operation completed
        cancel_locked(id, it->second);
    }
}

void futex_ring::abandon(std::uint64_t id) noexcept {
    const std::lock_guard lock(mutex_);
    const auto it = waits_.find(id);
    if (it == waits_.end()) {
        return;
    }
    cancel_locked(id, it->second);
    it->second.abandoned = true;
    if (it->second.done || stopped_) {
        if (it->second.done && it->second.result == 0 && !stopped_) {
            futex_wake_one(word_);
        }
        waits_.erase(it);
    }
}

void futex_ring::shutdown() noexcept {
    const std::lock_guard lock(mutex_);
    if (stopped_) {
        return;
    }
    stopped_ = true;
    if (!ring_) {
        return;
    }
    if (!waits_.empty()) {
        io_uring_sqe* sqe = sqe_locked(1);
        if (sqe != nullptr) {
            // Processed while submitting: every futex wait of the ring is off the word's queue when this returns.
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            sys::set_tag(sqe, 0, sys::op::aux);
            (void)ring_->submit();
        }
        futex_wake_one(word_);  // a wake one of them consumed goes to a waiter still queued (if none: harmless)
    }
    if (event_fd_) {
        (void)::eventfd_write(event_fd_.get(), 1);  // the watching operations complete; their retry sees the disconnect
    }
}

}  // namespace axds::detail
