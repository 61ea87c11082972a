#pragma once

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace axds {

/// Progress of async_assemble_log_archives, reported on the caller's executor.
struct assemble_progress {
    std::size_t entries_done = 0;
    std::size_t entries_total = 0;
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;  ///< known once entries are read; grows as they are
    std::size_t archives_done = 0;
    std::size_t archives_total = 0;
};

/// Settings for async_assemble_log_archives (spec §7.1). An aggregate: set only what you need.
struct assemble_options {
    /// Sources processed at once (the Python `max_workers`, whose None and values <= 0 mean automatic): 0 =
    /// automatic (all cores but two), a positive count is capped at the cores, negative is refused before the
    /// directory is read (resolve_workers_option).
    int workers = 0;
    /// delete the `.npy` entries once every archive is written (and verified); archives are fsynced first, so a crash
    /// never loses an entry (without removal, the entries stay the durable copy and archives are not fsynced)
    bool remove_sources = true;
    bool memory_mapping = true;     ///< map entries over 16 KiB instead of reading them into a buffer
    bool verify_integrity = false;  ///< re-read every archive and compare each member with its source entry
    /// Read entries through batched io_uring chains (openat → read → close, 64 in flight per reader) instead of
    /// open/pread/close. Off by default: for log-entry-sized files it is slower on tmpfs (the kernel hands such opens
    /// and reads to its worker threads) and no faster on ext4 than plain syscalls (figures: bench/README.md).
    bool use_io_uring = false;
    std::function<void(const assemble_progress&)> progress;  ///< called on the caller's executor; may be empty
};

/// A `.npy` file that assembly left on disk, and why.
struct assemble_issue {
    std::filesystem::path path;
    std::string reason;
};

/// Bytes of a streaming logger's working file that are neither an intact member nor the torn end a crash leaves
/// (e.g. a member damaged on disk, with intact members after it). They are never thrown away: before the working file
/// is cut, finished or removed, they are copied as they are to a read-only file of their own beside it.
struct damaged_bytes {
    std::uint64_t offset = 0;  ///< in the working file
    std::uint64_t length = 0;
    std::string reason;              ///< why the bytes at `offset` are not an intact member
    std::filesystem::path saved_to;  ///< `{source}_log.npz.damaged-at-{offset}` in the log directory
};

/// A streaming logger's working file (`.{source}_log.npz.working`) that assembly turned into `{source}_log.npz`.
struct recovered_archive {
    std::filesystem::path working_file;
    std::filesystem::path archive;  ///< empty when the working file held no intact member (it was removed)
    std::size_t members = 0;        ///< intact members kept (header, size, CRC-32 and .npy checked)
    std::uint64_t bytes_cut = 0;    ///< torn bytes cut after the last intact member (not saved: see damaged)
    std::vector<damaged_bytes>
        damaged;  ///< damaged ranges, each saved to a file of its own (bytes_cut counts the last)
};

/// What async_assemble_log_archives did.
struct assemble_report {
    std::vector<std::filesystem::path> archives;  ///< one per source, in ascending source order
    std::size_t entries = 0;                      ///< entries archived (including those already archived)
    std::uint64_t bytes = 0;                      ///< bytes of entry files archived
    std::size_t removed = 0;                      ///< entry files deleted
    std::size_t merged = 0;      ///< members carried over from archives that were already in the directory
    std::size_t duplicates = 0;  ///< entries already archived with identical bytes (kept once, removed as archived)
    std::size_t stale_temp_files_removed = 0;  ///< unfinished archives of earlier, killed runs that were deleted
    /// Entries left on disk and in no archive: damaged ones (short or 0-byte files, e.g. from a crash or a full disk)
    /// and `.npy` names that are not regular files (FIFOs, sockets, dangling links). Each was also warned about.
    std::vector<assemble_issue> skipped;
    /// Working files of streaming loggers (log_layout::archives) that were killed before their stop, recovered first.
    std::vector<recovered_archive> recovered;

    /// True when a recovered working file held damaged bytes (each saved to a file of its own and warned about).
    [[nodiscard]] bool found_damage() const noexcept {
        for (const auto& r : recovered) {
            if (!r.damaged.empty()) {
                return true;
            }
        }
        return false;
    }

    /// True when every `.npy` entry found was archived and no recovered working file held damaged bytes.
    [[nodiscard]] bool clean() const noexcept { return skipped.empty() && !found_damage(); }
};

/// Packs the `*.npy` log entries directly inside `log_directory` into one `{source}_log.npz` per source (spec §7):
/// members named after the entries, in ascending timestamp order, byte-identical to the entry files, 64-byte
/// aligned.
///
/// Assembly is idempotent and never shrinks an archive (where the Python library overwrites it): an existing
/// `{source}_log.npz` is merged with the new entries (the union in timestamp order; an entry already archived with
/// identical bytes is kept once; different bytes under one key are an error naming both, and nothing is written). An
/// archive that cannot be read is never replaced (error naming it). Archives that replace or hold the only copy of
/// data are fsynced, renamed into place and the directory fsynced before any entry is removed; onset entries (time 0)
/// are removed last. A rerun after a crash at any point completes the archives with every entry. One assembly runs
/// per directory at a time (a BSD lock on the directory; a second one fails at once); unfinished temporary archives of
/// killed runs (`.{source}_log.npz.*.partial`) are removed first. A damaged entry (not a valid 1-D uint8 `.npy`) or a
/// `.npy` that is not a regular file is left on disk, warned about and listed in assemble_report::skipped; everything
/// else is archived. Nested directories are untouched. Sources are assembled in parallel on the CPU pool (each archive
/// is written to a temporary file and renamed into place); small entries are read by two threads per window (plain
/// syscalls, or io_uring chains with use_io_uring), larger ones memory-mapped (or read whole). With verify_integrity
/// every archive is re-read and compared with its sources before anything is removed; a failure removes nothing. A
/// directory without entries (or a missing one) does nothing.
/// @throws value_error for a `.npy` name that is not `SSS_TTTT….npy` (before anything is written), for an existing
/// archive that cannot be merged (naming it), for one key with two different payloads, or when verification finds a
/// mismatch (spec §7.2 step 7 message); runtime_error when another assembly holds the directory; os_error family for
/// I/O failures. An error before the removal phase leaves every entry in place.
asio::awaitable<assemble_report> async_assemble_log_archives(std::filesystem::path log_directory,
                                                             assemble_options options = {});

/// What a streaming logger's working file holds (see inspect_working_archive).
struct working_archive_info {
    std::uint64_t source = 0;
    std::size_t recoverable_members = 0;  ///< intact members a recovery keeps
    std::uint64_t recoverable_bytes = 0;  ///< where the last intact member ends
    std::uint64_t file_size = 0;
    std::string stop_reason;  ///< why the bytes after recoverable_bytes are not a member (empty when there are none)
    /// Damaged ranges a recovery would save to files of their own (saved_to empty: inspecting writes nothing).
    std::vector<damaged_bytes> damaged;
};

/// True for a name of the form `.{source}_log.npz.working` (an unfinished streaming archive).
[[nodiscard]] bool is_working_archive_name(std::string_view file_name);

/// Scans an unfinished streaming archive read-only: how many members a recovery would keep.
/// @throws value_error if the name is not a working file's; os_error family if it cannot be read.
[[nodiscard]] working_archive_info inspect_working_archive(const std::filesystem::path& working_file);

/// The single file named `{source_id}_log.npz` anywhere under `log_directory` (spec §8.2).
/// @throws file_not_found_error if the directory is missing or no such file exists; value_error if more than one
/// exists (anchor: "but 2 were found").
[[nodiscard]] std::filesystem::path find_log_archive(const std::filesystem::path& log_directory,
                                                     std::string_view source_id);

/// Archives directly inside `log_directory` (not recursive), keyed by the name before `_log.npz` (spec §8.3).
/// @throws file_not_found_error if the directory is missing.
[[nodiscard]] std::map<std::string, std::filesystem::path> discover_log_archives(
    const std::filesystem::path& log_directory);

/// The number of non-onset messages in an archive, from its zip directory alone (spec §8.4).
/// @throws file_not_found_error if `archive_path` is not a regular file; value_error if it is not a zip archive.
[[nodiscard]] std::size_t read_archive_message_count(const std::filesystem::path& archive_path);

}  // namespace axds
