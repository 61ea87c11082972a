#pragma once
// Submission-queue access shared by the private io_uring loops. Private to src/.

#include <liburing.h>

#include <stdexcept>

namespace axds::detail {

/// The next free submission entry of `ring`; when the queue is full, what is queued is submitted first to make room.
/// @throws std::logic_error if there is still none (a caller queued more than the ring holds: a bug).
inline io_uring_sqe* next_sqe(io_uring& ring) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {
        (void)io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    if (sqe == nullptr) {
        throw std::logic_error("axds: io_uring submission queue exhausted");
    }
    return sqe;
}

}  // namespace axds::detail
