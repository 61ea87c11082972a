#include "detail/uring_reader.hpp"

#include "sys/error.hpp"
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"
#include "sys/uring.hpp"

#include <cerrno>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace axds::detail {

namespace {

constexpr unsigned in_flight = 64;  // files at once; 3 SQEs each

void read_one(prefix_read& r) {
    const sys::unique_fd fd(::openat(r.dirfd, r.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK));  // a FIFO never blocks
    if (!fd) {
        r.bytes = 0;
        r.error = sys::errno_code(errno);
        return;
    }
    // One read, as the io_uring chain does: fewer bytes than asked is the end of a regular file (a second read only
    // to be told so was a fifth of an assembly of small entries). The caller parses what was read, so a read cut
    // short for another reason shows as a damaged entry, never as a shorter message.
    const ssize_t n = sys::retry_eintr([&] { return ::pread(fd.get(), r.buffer.data(), r.buffer.size(), 0); });
    r.bytes = n < 0 ? 0 : static_cast<std::size_t>(n);
    r.error = n < 0 ? sys::errno_code(errno) : std::error_code();
}

void read_plain(std::span<prefix_read> reads) {
    for (auto& r : reads) {
        read_one(r);
    }
}

/// One file's chain on `ring`: OPENAT into direct `slot` -> READ -> CLOSE, the close hard-linked so that it runs
/// even after a failed read.
void queue_chain(sys::uring& ring, std::size_t index, const prefix_read& r, unsigned slot) {
    io_uring_sqe* open_sqe = ring.sqe();
    // No O_CLOEXEC: the kernel rejects it (EINVAL) for a direct descriptor, which never reaches exec anyway.
    io_uring_prep_openat_direct(open_sqe, r.dirfd, r.path, O_RDONLY, 0, slot);
    open_sqe->flags |= IOSQE_IO_LINK;
    sys::set_tag(open_sqe, index, sys::op::open);
    io_uring_sqe* read_sqe = ring.sqe();
    io_uring_prep_read(read_sqe, static_cast<int>(slot), r.buffer.data(), static_cast<unsigned>(r.buffer.size()), 0);
    read_sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    sys::set_tag(read_sqe, index, sys::op::read);
    io_uring_sqe* close_sqe = ring.sqe();
    io_uring_prep_close_direct(close_sqe, slot);
    sys::set_tag(close_sqe, index, sys::op::close);
}

/// Returns false if the ring failed (the caller then reads every file plainly).
bool read_uring(sys::uring& ring, std::span<prefix_read> reads) {
    std::vector<unsigned> free_slots;
    for (unsigned slot = sys::thread_ring_files; slot-- > 0;) {
        free_slots.push_back(slot);
    }
    std::vector<unsigned> slot_of(reads.size());
    std::vector<int> pending_ops(reads.size(), 0);
    std::size_t next = 0;
    std::size_t completed = 0;
    const auto handle = [&](const sys::completion& c) {
        auto& r = reads[c.index];
        if (c.kind == sys::op::open && c.error()) {
            r.error = c.error();
        } else if (c.kind == sys::op::read && !r.error) {
            r.error = c.error();  // a partial read (signal, page-cache hole) is normal at end of file
            r.bytes = r.error ? 0 : static_cast<std::size_t>(c.res);
        }
        if (--pending_ops[c.index] == 0) {
            free_slots.push_back(slot_of[c.index]);
            ++completed;
        }
    };
    while (completed < reads.size()) {
        for (; next < reads.size() && !free_slots.empty(); ++next) {
            slot_of[next] = free_slots.back();
            free_slots.pop_back();
            queue_chain(ring, next, reads[next], slot_of[next]);
            pending_ops[next] = 3;
        }
        if (ring.submit_and_reap(handle)) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool read_file_prefixes(std::span<prefix_read> reads, bool prefer_io_uring) {
    sys::uring* ring =
        prefer_io_uring && sys::uring_enabled(sys::uring_feature::direct_descriptors) ? sys::thread_ring() : nullptr;
    if (reads.empty()) {
        return ring != nullptr;
    }
    if (ring == nullptr || !read_uring(*ring, reads)) {
        read_plain(reads);
        return false;
    }
    // ECANCELED means the file's open failed first.
    for (auto& r : reads) {
        if (r.error == std::errc::operation_canceled) {
            read_one(r);  // recover the open's own errno
        }
    }
    return true;
}

sys::io_result read_whole_file(const char* path, sys::aligned_buffer& out) {
    const sys::unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
        return {.bytes = 0, .error = sys::errno_code(errno)};
    }

    struct stat st {};

    if (::fstat(fd.get(), &st) != 0) {
        return {.bytes = 0, .error = sys::errno_code(errno)};
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    out.reserve_discarding(size);
    sys::io_result read = sys::pread_full(fd.get(), out.data(), size, 0);
    if (!read.error && read.bytes < size) {
        read.error = sys::errno_code(EIO);  // shrank while reading
    }
    return read;
}

}  // namespace axds::detail
