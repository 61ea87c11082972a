#pragma once

#include <axds/error.hpp>

#include <asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace axds {

/// Settings for async_delete_directory. An aggregate: set only what you need.
struct delete_options {
    /// Unlink each directory's entries as io_uring unlinkat batches (64 in flight) instead of plain unlink() calls
    /// split over the CPU pool. Off by default: on local filesystems the kernel hands every io_uring unlinkat to a
    /// worker thread, which is slower (figures: bench/README.md); many requests in flight can pay off where each
    /// unlink is a network round trip (NFS, SMB).
    bool use_io_uring = false;
    /// Allow deleting a directory that is protected by default: the filesystem root, the current working directory
    /// or one of its ancestors, the home directory ($HOME) or one of its ancestors, or the root of a mounted
    /// filesystem. Off by default: these are almost always a typing mistake, and deleting them destroys far more than
    /// the caller meant to.
    bool force_root = false;
    /// Pause after each failed rmdir of a directory (spec §9.2: 5 attempts, 500 ms apart). Must be >= 0.
    std::chrono::milliseconds rmdir_retry_delay{500};
};

/// The value_error async_delete_directory throws for a protected directory (see delete_options::force_root): what()
/// names the directory, why it is protected and the option that forces it; reason() is the "why" alone, so that a
/// front end (the axds CLI) can name its own way to force it.
class protected_directory_error : public value_error {
public:
    protected_directory_error(const std::string& message, const std::string& reason)
        : value_error(message), reason_(reason) {}

    /// Why the directory is protected, e.g. "it is the root of the filesystem".
    [[nodiscard]] const char* reason() const noexcept { return reason_.what(); }

private:
    std::runtime_error reason_;  // nothrow-copyable string storage
};

/// Removes a directory tree (spec §9.2): a symlink target is never followed (the link itself is removed, also when
/// the path is written with a trailing slash, `LINK/`); a missing path is silently fine; an empty path, a path ending
/// in `.` or `..`, and the protected directories listed at delete_options::force_root are refused before anything is
/// removed (value_error naming the path and the reason), the latter unless force_root is set; the entries of each
/// directory are unlinked in parallel on the CPU pool and directories are removed bottom-up. A directory that cannot be
/// removed after 5 attempts rmdir_retry_delay (500 ms) apart is left in place with the §9.2 warning ("Unable to remove
/// the {path} directory after 5 attempts"); the call then returns normally.
/// @throws protected_directory_error (a value_error) for a protected directory; value_error for another refused path or
/// a negative rmdir_retry_delay; not_a_directory_error when the path is a
/// regular file; os_error family when an entry cannot be unlinked.
asio::awaitable<void> async_delete_directory(std::filesystem::path directory, delete_options options = {});

}  // namespace axds
