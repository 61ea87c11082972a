#include "sys/uring.hpp"

#include <cstdlib>
#include <memory>
#include <stdexcept>

#include <fcntl.h>

namespace axds::sys {

namespace {

/// Kernels before 5.15 reject an openat into a direct slot (EINVAL): open and close "/" through slot 0 once.
bool probe_direct_descriptors() noexcept {
    uring ring(4);
    if (!ring.ready() || io_uring_register_files_sparse(&ring.get(), 1) != 0) {
        return false;
    }
    io_uring_sqe* open_sqe = ring.sqe();  // never full: 4 entries
    io_uring_prep_openat_direct(open_sqe, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0);
    open_sqe->flags |= IOSQE_IO_HARDLINK;
    io_uring_prep_close_direct(ring.sqe(), 0);
    if (io_uring_submit_and_wait(&ring.get(), 2) < 0) {
        return false;
    }
    bool ok = true;
    unsigned seen = 0;
    while (seen < 2) {
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring.get(), &cqe) != 0) {
            return false;
        }
        ok = ok && cqe->res >= 0;
        io_uring_cqe_seen(&ring.get(), cqe);
        ++seen;
    }
    return ok;
}

bool probe_futex_wait() noexcept {
    io_uring_probe* probe = io_uring_get_probe();
    if (probe == nullptr) {
        return false;  // io_uring refused (old kernel, seccomp)
    }
    const bool found = io_uring_opcode_supported(probe, opcode_futex_wait) != 0;
    io_uring_free_probe(probe);
    return found;
}

struct kernel_support {
    bool ring = false;
    bool direct_descriptors = false;
    bool futex_wait = false;
};

const kernel_support& probed() noexcept {
    static const kernel_support support = [] {
        kernel_support s;
        s.ring = uring(4).ready();
        s.direct_descriptors = s.ring && probe_direct_descriptors();
        s.futex_wait = s.ring && probe_futex_wait();
        return s;
    }();
    return support;
}

}  // namespace

bool uring_supported(uring_feature feature) noexcept {
    const kernel_support& s = probed();
    switch (feature) {
        case uring_feature::ring: return s.ring;
        case uring_feature::direct_descriptors: return s.direct_descriptors;
        case uring_feature::futex_wait: return s.futex_wait;
    }
    return false;
}

bool uring_enabled(uring_feature feature) noexcept {
    // AXDS_NO_IO_URING=1 forces the plain paths (for comparisons and for sandboxes that break io_uring).
    return std::getenv("AXDS_NO_IO_URING") == nullptr && uring_supported(feature);  // NOLINT(concurrency-mt-unsafe)
}

uring::uring(unsigned entries) noexcept : ready_(io_uring_queue_init(entries, &ring_, 0) == 0) {}

uring::~uring() {
    retire();
}

void uring::retire() noexcept {
    if (ready_) {
        io_uring_queue_exit(&ring_);
        ready_ = false;
    }
}

io_uring_sqe* uring::sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        (void)submit();
        sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe == nullptr) {
        throw std::logic_error("axds: io_uring submission queue exhausted");
    }
    return sqe;
}

std::error_code uring::submit() noexcept {
    for (;;) {
        const int rc = io_uring_submit(&ring_);
        if (rc >= 0) {
            return {};
        }
        if (rc != -EINTR && rc != -EAGAIN) {
            return {-rc, std::system_category()};
        }
    }
}

void uring::flush_overflow() noexcept {
    if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0) {
        (void)io_uring_get_events(&ring_);
    }
}

uring* thread_ring() noexcept {
    if (!uring_enabled()) {
        return nullptr;
    }
    thread_local std::unique_ptr<uring> ring = [] {
        auto made = std::make_unique<uring>(256);
        if (made->ready() && uring_supported(uring_feature::direct_descriptors) &&
            io_uring_register_files_sparse(&made->get(), thread_ring_files) != 0) {
            made->retire();
        }
        return made;
    }();
    return ring->ready() ? ring.get() : nullptr;
}

}  // namespace axds::sys
