#include "sys/io.hpp"

namespace axds::sys {

namespace {

/// The one loop behind the four *_full functions: `step(done)` transfers from position `done` and returns the
/// system call's result.
template <class Step>
io_result transfer_full(std::size_t size, bool writing, Step step) noexcept {
    io_result result;
    while (result.bytes < size) {
        const ssize_t n = retry_eintr([&] { return step(result.bytes); });
        if (n < 0) {
            result.error = {errno, std::system_category()};
            break;
        }
        if (n == 0) {
            if (writing) {  // no progress: the device takes no more (files never do this; say "full")
                result.error = {ENOSPC, std::system_category()};
            }
            break;  // a read: end of file
        }
        result.bytes += static_cast<std::size_t>(n);
    }
    return result;
}

}  // namespace

io_result read_full(int fd, void* buffer, std::size_t size) noexcept {
    auto* out = static_cast<char*>(buffer);
    return transfer_full(size, false, [&](std::size_t done) { return ::read(fd, out + done, size - done); });
}

io_result pread_full(int fd, void* buffer, std::size_t size, off_t offset) noexcept {
    auto* out = static_cast<char*>(buffer);
    return transfer_full(size, false, [&](std::size_t done) {
        return ::pread(fd, out + done, size - done, offset + static_cast<off_t>(done));
    });
}

io_result write_full(int fd, const void* data, std::size_t size) noexcept {
    const auto* in = static_cast<const char*>(data);
    return transfer_full(size, true, [&](std::size_t done) { return ::write(fd, in + done, size - done); });
}

io_result pwrite_full(int fd, const void* data, std::size_t size, off_t offset) noexcept {
    const auto* in = static_cast<const char*>(data);
    return transfer_full(size, true, [&](std::size_t done) {
        return ::pwrite(fd, in + done, size - done, offset + static_cast<off_t>(done));
    });
}

}  // namespace axds::sys
