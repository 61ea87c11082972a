#pragma once

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace axds {

/// Progress of async_transfer_directory, reported on the caller's executor.
struct transfer_progress {
    std::size_t files_done = 0;
    std::size_t files_total = 0;
    std::uint64_t bytes_done = 0;
};

/// Settings for async_transfer_directory (spec §9.3). An aggregate: set only what you need.
struct transfer_options {
    /// Parallel copies (the Python `num_threads`, whose values < 1 mean automatic): 0 = automatic (all cores but
    /// two), a positive count is capped at the cores, negative is refused before anything is read
    /// (resolve_workers_option).
    int workers = 1;
    bool verify_integrity = false;         ///< compare the destination's checksum with the source's (§9.1)
    bool remove_source = false;            ///< delete the source after a successful transfer (and verification)
    bool reset_dirty_destination = false;  ///< remove destination files the source does not account for
    std::function<void(const transfer_progress&)> progress;  ///< called on the caller's executor; may be empty
};

/// What async_transfer_directory did.
struct transfer_report {
    std::size_t files_copied = 0;
    std::uint64_t bytes_copied = 0;
    bool verified = false;                 ///< the destination's checksum matched the source's
    std::size_t source_files_removed = 0;  ///< with remove_source: source files deleted (each one copied and verified)
    /// With remove_source: source files left in place because the transfer did not copy them as they are now (they
    /// appeared, or changed, while it ran), relative to the source. Empty when the source was removed entirely.
    std::vector<std::string> source_files_kept;
    std::vector<std::string> strays_removed;  ///< with reset_dirty_destination: destination files deleted
    /// With remove_source: the source carries the marker of an earlier move into the destination that did not end,
    /// or the destination held files the source no longer has and is a complete copy (it verifies against its
    /// ax_checksum.txt, or the source carries the marker). The move was finished: the source files still present
    /// that grew since their copy or appeared meanwhile were copied again (files_copied counts them; only where that
    /// loses no byte -- no copy, or one they extend -- else the run is refused, naming them), then the source files
    /// still present were removed (source_files_removed counts them).
    bool resumed_move = false;
};

/// Copies a directory tree (spec §9.3, every rule in order): refuses a missing or symlinked source and symlinks
/// inside it, refuses (or with reset_dirty_destination removes) destination files the source does not account for,
/// unless they may be the only copy of their data (see resumed_move and docs/SAFETY.md: a move interrupted during its
/// source removal is finished by running it again; reset_dirty_destination is refused then),
/// reproduces empty directories, copies file contents in-kernel (copy_file_range) with permission bits and
/// atime/mtime (each file written as `.NAME.axds-partial` and renamed into place when complete), optionally verifies
/// with the §9.1 checksum (reusing `source/ax_checksum.txt` if present) and removes the source only after everything
/// succeeded.
///
/// Safety beyond the Python library: the two roots are compared on disk (device and inode of every directory on the
/// way, so symlinks, `D/.` and bind mounts count) and a transfer into the same tree, into a directory inside the
/// source, or out of a directory inside the destination is refused before anything is written. With remove_source
/// the copied files are flushed to disk (syncfs) first, then exactly the files that were copied (and verified) are
/// removed, one by one, each only if it is still the file that was copied (same inode, size, mtime and ctime); files
/// that appeared or changed meanwhile stay, with the directories that hold them, and are listed in the report (and in
/// a warning). A trailing slash never lets a symlinked source past the symlink check. Cancellation (a terminal signal
/// on the awaiting operation's slot) is honoured between batches of copies and ends with os_error(operation_aborted);
/// the source is never touched then.
/// @throws file_not_found_error (missing source), value_error for roots that are the same tree or nested,
/// runtime_error with the §9.3 anchor phrases ("symbolic link rather
/// than a real directory", "Resolve the following link", "holds no file the checksum can cover", "does not account
/// for", "corrupted in transmission" / "predates the current contents of the source"), os_error family for I/O.
asio::awaitable<transfer_report> async_transfer_directory(std::filesystem::path source,
                                                          std::filesystem::path destination,
                                                          transfer_options options = {});

}  // namespace axds
