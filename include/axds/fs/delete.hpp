#pragma once

#include <asio/awaitable.hpp>

#include <filesystem>

namespace axds {

/// Settings for async_delete_directory. An aggregate: set only what you need.
struct delete_options {
    /// Unlink each directory's entries as io_uring unlinkat batches (64 in flight) instead of plain unlink() calls
    /// split over the CPU pool. Off by default: on local filesystems the kernel hands every io_uring unlinkat to a
    /// worker thread, which measured 1.5-1.8x slower on tmpfs; many requests in flight can pay off where each unlink
    /// is a network round trip (NFS, SMB).
    bool use_io_uring = false;
};

/// Removes a directory tree (spec §9.2): a symlink target is never followed (the link itself is removed); a missing
/// path is silently fine; the entries of each directory are unlinked in parallel on the CPU pool and directories are
/// removed bottom-up. A directory that cannot be removed after 5 attempts 500 ms apart is left in place with the
/// §9.2 warning ("Unable to remove the {path} directory after 5 attempts"); the call then returns normally.
/// @throws not_a_directory_error when the path is a regular file; os_error family when an entry cannot be unlinked.
asio::awaitable<void> async_delete_directory(std::filesystem::path directory, delete_options options = {});

}  // namespace axds
