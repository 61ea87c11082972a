#pragma once
// sys::unique_fd: the owner of a file descriptor (closes it exactly once). Private to src/.
//
// The destructor and reset() close without looking at the result: after close() the descriptor is gone whatever it
// returns (Linux frees it even on EINTR), and for a descriptor that was only read, a failure says nothing about the
// data. After WRITING a file, close can report a deferred write error (NFS, quotas): call close_checked() there and
// act on its error_code before renaming the file into place or reporting success.

#include <system_error>
#include <utility>

#include <cerrno>

#include <unistd.h>

namespace axds::sys {

class unique_fd {
public:
    unique_fd() noexcept = default;

    /// Takes ownership of `fd` (a negative value means "none").
    explicit unique_fd(int fd) noexcept : fd_(fd) {}

    ~unique_fd() { reset(); }

    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}

    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }

    [[nodiscard]] int get() const noexcept { return fd_; }

    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }

    explicit operator bool() const noexcept { return valid(); }

    /// Gives the descriptor up without closing it; this object holds none afterwards.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    /// Closes the descriptor held (result ignored, see above) and takes `fd`.
    void reset(int fd = -1) noexcept {
        const int old = std::exchange(fd_, fd);
        if (old >= 0 && old != fd) {
            (void)::close(old);
        }
    }

    /// Closes the descriptor now and returns close's error (none when nothing was held). The descriptor is released
    /// either way.
    [[nodiscard]] std::error_code close_checked() noexcept {
        const int old = std::exchange(fd_, -1);
        if (old >= 0 && ::close(old) != 0) {
            return {errno, std::system_category()};
        }
        return {};
    }

private:
    int fd_ = -1;
};

}  // namespace axds::sys
