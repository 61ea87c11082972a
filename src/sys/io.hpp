#pragma once
// One set of EINTR / partial-transfer helpers for blocking descriptors. Private to src/.
//
// retry_eintr(f) repeats one system call while it fails with EINTR. The *_full functions loop over EINTR and over
// short counts: a read stops early only at end of file (io_result::bytes < size says so; `error` stays clear), a
// write never stops early without an error (a write that makes no progress is reported as ENOSPC). Errors come back as
// std::error_code in std::system_category(); the caller names the file in the exception it throws.

#include <cerrno>
#include <cstddef>
#include <system_error>
#include <type_traits>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

namespace axds::sys {

/// Whether two stat results are of the same file (device and inode): e.g. a name still holds the file opened earlier.
[[nodiscard]] inline bool same_file(const struct stat& a, const struct stat& b) noexcept {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/// Calls `call()` again while it returns -1 with errno EINTR; returns its last result (errno intact).
template <class Call>
auto retry_eintr(Call&& call) -> decltype(call()) {
    for (;;) {
        auto result = call();
        if (!(result == -1 && errno == EINTR)) {
            return result;
        }
    }
}

/// What a *_full transfer did: `bytes` moved before it stopped, and the error that stopped it (if any).
struct io_result {
    std::size_t bytes = 0;
    std::error_code error;

    /// True when a read stopped at end of file before `size` bytes (and without an error).
    [[nodiscard]] bool eof_before(std::size_t size) const noexcept { return !error && bytes < size; }
};

/// Reads until `size` bytes are in `buffer`, end of file, or an error.
io_result read_full(int fd, void* buffer, std::size_t size) noexcept;

/// pread until `size` bytes from `offset` are in `buffer`, end of file, or an error.
io_result pread_full(int fd, void* buffer, std::size_t size, off_t offset) noexcept;

/// Writes all `size` bytes of `data`, or stops at the first error.
io_result write_full(int fd, const void* data, std::size_t size) noexcept;

/// pwrite all `size` bytes of `data` at `offset`, or stops at the first error.
io_result pwrite_full(int fd, const void* data, std::size_t size, off_t offset) noexcept;

}  // namespace axds::sys
