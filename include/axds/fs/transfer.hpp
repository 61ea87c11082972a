#pragma once

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>

namespace axds {

/// Progress of async_transfer_directory, reported on the caller's executor.
struct transfer_progress {
    std::size_t files_done = 0;
    std::size_t files_total = 0;
    std::uint64_t bytes_done = 0;
};

/// Settings for async_transfer_directory (spec §9.3). An aggregate: set only what you need.
struct transfer_options {
    int num_threads = 1;                   ///< parallel copies; < 1 = all cores but two (resolve_worker_count)
    bool verify_integrity = false;         ///< compare the destination's checksum with the source's (§9.1)
    bool remove_source = false;            ///< delete the source after a successful transfer (and verification)
    bool reset_dirty_destination = false;  ///< remove destination files the source does not account for
    std::function<void(const transfer_progress&)> progress;  ///< called on the caller's executor; may be empty
};

/// Copies a directory tree (spec §9.3, every rule in order): refuses a missing or symlinked source and symlinks
/// inside it, refuses (or with reset_dirty_destination removes) destination files the source does not account for,
/// reproduces empty directories, copies file contents in-kernel (copy_file_range) with permission bits and
/// atime/mtime, optionally verifies with the §9.1 checksum (reusing `source/ax_checksum.txt` if present) and removes
/// the source only after everything succeeded. Cancellation (a terminal signal on the awaiting operation's slot) is
/// honoured between batches of copies and ends with os_error(operation_aborted); the source is never touched then.
/// @throws file_not_found_error (missing source), runtime_error with the §9.3 anchor phrases ("symbolic link rather
/// than a real directory", "Resolve the following link", "holds no file the checksum can cover", "does not account
/// for", "corrupted in transmission" / "predates the current contents of the source"), os_error family for I/O.
asio::awaitable<void> async_transfer_directory(std::filesystem::path source, std::filesystem::path destination,
                                               transfer_options options = {});

}  // namespace axds
