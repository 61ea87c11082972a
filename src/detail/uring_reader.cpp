#include "detail/uring_reader.hpp"

#include <axds/core/runtime.hpp>

#include "detail/uring_sqe.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include <liburing.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds::detail {

namespace {

constexpr unsigned in_flight = 64;  // files at once; 3 SQEs each

std::int64_t read_one(int dirfd, const char* path, std::span<std::uint8_t> buffer) {
    const sys::unique_fd fd(::openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK));  // a FIFO never blocks
    if (!fd) {
        return -errno;
    }
    const sys::io_result read = sys::pread_full(fd.get(), buffer.data(), buffer.size(), 0);
    return read.error ? -read.error.value() : static_cast<std::int64_t>(read.bytes);
}

void read_plain(std::span<prefix_read> reads) {
    for (auto& r : reads) {
        r.result = read_one(r.dirfd, r.path, r.buffer);
    }
}

/// Returns false if direct descriptors turned out to be unsupported (nothing was read then).
bool read_uring(std::span<prefix_read> reads) {
    io_uring ring{};
    if (io_uring_queue_init(in_flight * 4, &ring, 0) != 0) {
        return false;
    }
    if (io_uring_register_files_sparse(&ring, in_flight) != 0) {
        io_uring_queue_exit(&ring);
        return false;
    }
    std::vector<unsigned> free_slots;
    for (unsigned slot = in_flight; slot-- > 0;) {
        free_slots.push_back(slot);
    }
    std::vector<unsigned> slot_of(reads.size());
    std::vector<int> pending_ops(reads.size(), 0);
    std::size_t next = 0;
    std::size_t completed = 0;
    bool unsupported = false;
    // user_data = index * 4 + op (0 open, 1 read, 2 close)
    while (completed < reads.size()) {
        while (next < reads.size() && !free_slots.empty()) {
            const unsigned slot = free_slots.back();
            free_slots.pop_back();
            slot_of[next] = slot;
            auto& r = reads[next];
            io_uring_sqe* open_sqe = next_sqe(ring);
            // No O_CLOEXEC: the kernel rejects it (EINVAL) for a direct descriptor, which never reaches exec anyway.
            io_uring_prep_openat_direct(open_sqe, r.dirfd, r.path, O_RDONLY, 0, slot);
            open_sqe->flags |= IOSQE_IO_LINK;
            io_uring_sqe_set_data64(open_sqe, next * 4);
            io_uring_sqe* read_sqe = next_sqe(ring);
            io_uring_prep_read(read_sqe, static_cast<int>(slot), r.buffer.data(),
                               static_cast<unsigned>(r.buffer.size()), 0);
            read_sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;  // close even if the read fails
            io_uring_sqe_set_data64(read_sqe, next * 4 + 1);
            io_uring_sqe* close_sqe = next_sqe(ring);
            io_uring_prep_close_direct(close_sqe, slot);
            io_uring_sqe_set_data64(close_sqe, next * 4 + 2);
            pending_ops[next] = 3;
            ++next;
        }
        const int submitted = io_uring_submit_and_wait(&ring, 1);
        if (submitted < 0 && submitted != -EINTR) {
            io_uring_queue_exit(&ring);
            return false;
        }
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            ++seen;
            const std::uint64_t data = io_uring_cqe_get_data64(cqe);
            const std::size_t index = data / 4;
            const auto op = static_cast<int>(data % 4);
            auto& r = reads[index];
            if (op == 0 && cqe->res < 0) {
                if (cqe->res == -EINVAL || cqe->res == -EBADF) {
                    unsupported = true;  // kernel without direct descriptors
                }
                r.result = cqe->res;
            } else if (op == 1) {
                if (r.result >= 0) {
                    // A partial read (signal, page-cache hole) is completed synchronously below.
                    r.result = cqe->res;
                }
            }
            if (--pending_ops[index] == 0) {
                free_slots.push_back(slot_of[index]);
                ++completed;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
    io_uring_queue_exit(&ring);
    return !unsupported;
}

}  // namespace

bool read_file_prefixes(std::span<prefix_read> reads, bool prefer_io_uring) {
    // AXDS_NO_IO_URING=1 forces the plain path (for comparisons and for sandboxes that break io_uring).
    static const bool uring_allowed = io_uring_available() && std::getenv("AXDS_NO_IO_URING") == nullptr;  // NOLINT
    const bool use_uring = prefer_io_uring && uring_allowed;
    if (reads.empty()) {
        return use_uring;
    }
    if (!use_uring || !read_uring(reads)) {
        read_plain(reads);
        return false;
    }
    // A read of fewer bytes than requested is normal at end of file; -ECANCELED means its open failed first.
    for (auto& r : reads) {
        if (r.result == -ECANCELED) {
            r.result = read_one(r.dirfd, r.path, r.buffer);  // recover the open's own errno
        }
    }
    return true;
}

std::int64_t read_whole_file(const char* path, sys::aligned_buffer& out) {
    const sys::unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
        return -errno;
    }

    struct stat st {};

    if (::fstat(fd.get(), &st) != 0) {
        return -errno;
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    out.reserve_discarding(size);
    const sys::io_result read = sys::pread_full(fd.get(), out.data(), size, 0);
    if (read.error) {
        return -read.error.value();
    }
    if (read.bytes < size) {
        return -EIO;  // shrank while reading
    }
    return static_cast<std::int64_t>(size);
}

}  // namespace axds::detail
