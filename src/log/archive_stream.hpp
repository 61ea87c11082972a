#pragma once
// Streaming log archives (private to src/): the data logger's log_layout::archives writer, and the scan and recovery
// of its working files `.{source}_log.npz.working` (used by the logger's start and by async_assemble_log_archives).
// Every member is encoded by the zip record encoder npz_writer uses (npy/zip_records.hpp): in-order input gives
// byte-identical archives to assembly's.

#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>

#include "log/entry_writer.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace axds::detail {

/// Bytes of a log member's name, `SSS_TTTTTTTTTTTTTTTTTTTT.npy`.
inline constexpr std::size_t log_member_name_size = 28;

/// `.{source}_log.npz.working`.
[[nodiscard]] std::string working_file_name(std::uint64_t source);
/// True (and the source) for a working file name.
[[nodiscard]] bool parse_working_file_name(std::string_view name, std::uint64_t& source);

/// One member of a working file, as its local header describes it.
struct stream_member {
    std::uint64_t timestamp = 0;
    std::uint64_t offset = 0;  ///< of its local header
    std::uint64_t size = 0;    ///< of its data (the .npy bytes)
    std::uint32_t crc = 0;
    /// Bytes of its local header: zip_local_header_size(offset) for every member the writer put there; another
    /// padding for a member that bytes inserted or lost before it moved (its data is then not 64-byte aligned).
    std::uint32_t header = 0;
};

/// What a scan of a working file found: every intact member, and the bytes between and after them that are not.
struct working_scan {
    std::vector<stream_member> members;  ///< in file order
    std::uint64_t valid_end = 0;         ///< where the last intact member ends: the bytes after it are cut
    std::uint64_t file_size = 0;
    std::string stop_reason;  ///< why the bytes after valid_end are not a member; empty when there are none
    /// Byte ranges that are not intact members and not a torn end: damage followed by intact members, or an end
    /// that is whole but wrong (a bad CRC-32, a foreign name). scan_working_fd saves each to a file of its own.
    std::vector<damaged_bytes> damaged;

    /// Bytes after valid_end that are cut without being saved first: a torn end (0 when the end was damaged instead).
    [[nodiscard]] std::uint64_t torn_bytes() const noexcept {
        const bool saved_end = !damaged.empty() && damaged.back().offset + damaged.back().length == file_size &&
                               damaged.back().offset >= valid_end;
        return saved_end ? 0 : file_size - valid_end;
    }
};

/// Scans `bytes` (a working file of `source`): a member is kept when its local header is exactly the one the writer
/// encodes for its offset, name, CRC and size, its name is a key of `source` not seen before, its data lies inside the
/// file, hashes to the CRC-32 and is a 1-D uint8 .npy whose 9-byte prefix repeats the source and timestamp. After
/// bytes that are not such a member the scan looks for the next one (a header signature the writer's checks accept
/// for its offset) and goes on from there, so one damaged member never costs the members behind it.
[[nodiscard]] working_scan scan_working_bytes(std::span<const std::uint8_t> bytes, std::uint64_t source);
/// scan_working_bytes of an open file (mapped read-only). `path` names it in errors. With `save_damaged`, each damaged
/// range is copied to `{source}_log.npz.damaged-at-{offset}` beside it (save_damaged_range) before this returns, so a
/// caller that cuts or removes the working file afterwards loses none of its bytes.
[[nodiscard]] working_scan scan_working_fd(int fd, const std::filesystem::path& path, std::uint64_t source,
                                           bool save_damaged = true);
/// Writes `bytes` (found at `offset` of `working`) durably to `{source}_log.npz.damaged-at-{offset}` in the working
/// file's directory, or to `...{offset}.2` and on when that name holds other bytes; a file already holding exactly
/// these bytes (an earlier scan's) is reused. Returns its path. @throws os_error family when it cannot be written.
std::filesystem::path save_damaged_range(const std::filesystem::path& working, std::uint64_t source,
                                         std::uint64_t offset, std::span<const std::uint8_t> bytes);

/// Warns about each of `scan`'s damaged ranges (where it was, why, where its bytes were saved).
void warn_damage(const std::filesystem::path& working, const working_scan& scan);

/// Turns an open (O_RDWR) working file into `{source}_log.npz` in `directory`: truncates it after `valid_end`,
/// appends the central directory of `members` (stable-sorted by timestamp: onset first), fsyncs, and renames it into
/// place; when an archive of the source is already there, writes the union of both instead (assembly's rule: never
/// shrink, identical keys kept once, different bytes under one key an error naming both, nothing written) and
/// removes the working file. Fsyncs the directory. Returns the archive's path. Does not close `fd`.
/// @throws value_error for a conflict or an unreadable existing archive; os_error family on I/O failures. The working
/// file then stays on disk (complete up to valid_end), for a later recovery. `working_name`: the file's name in
/// `directory` when it is not the source's usual working name (a copy restored under another name).
std::filesystem::path publish_working_file(const std::filesystem::path& directory, int directory_fd,
                                           std::uint64_t source, int fd, std::vector<stream_member> members,
                                           std::uint64_t valid_end, const std::string& working_name = {});

/// Recovers every working file directly in `directory` (the caller holds the directory lock). `listed`: the names of
/// the directory's working files when the caller has just listed it (nullptr: the directory is listed here).
[[nodiscard]] std::vector<recovered_archive> recover_working_files(const std::filesystem::path& directory,
                                                                   const std::vector<std::string>* listed = nullptr);

/// The logger's writer for log_layout::archives (see data_logger_options::layout). Batches run on the CPU pool: each
/// package is encoded as a member (small payloads copied next to their headers, large ones written from the package)
/// and each source's part of a batch goes to its working file with one pwritev. A failed or short write cuts the
/// members it did not complete (ftruncate) and fails exactly those entries.
class archive_stream_writer final : public entry_writer {
public:
    /// Tests only (data_logger_test_access::fail_directory_syncs): true fails that directory's fsync with EIO.
    using directory_sync_fault_fn = std::function<bool(const std::filesystem::path& directory)>;

    /// `created`: the directories the logger created for this log (the log directory and any missing parent), whose
    /// names are made durable, by an fsync of each one's parent, with the first durable sync and at the stop.
    archive_stream_writer(std::filesystem::path directory, int directory_fd, const data_logger_options& options,
                          entry_pool& pool, const std::vector<std::filesystem::path>& created = {},
                          directory_sync_fault_fn fail_sync = {});
    ~archive_stream_writer() override;

    [[nodiscard]] std::size_t capacity_left() const noexcept override;
    void add(queued_entry* entry) override;

    [[nodiscard]] bool uses_io_uring() const noexcept override { return false; }

    [[nodiscard]] std::size_t in_flight() const noexcept override { return batch_.size(); }

    asio::awaitable<std::size_t> async_complete_some(const completion_fn& done) override;
    std::uint64_t abandon() noexcept override;

    /// With `sync_every` set: the time the oldest unsynced working file is due for its sync.
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> idle_deadline() const override;
    /// fdatasyncs (on the CPU pool) every working file whose time-based sync is due: what was written just before
    /// the logger fell idle does not wait for the next batch or the stop.
    asio::awaitable<void> async_on_idle_deadline() override;

    /// At stop, after the last batch: publishes every working file and fills the archives layout's report fields.
    asio::awaitable<void> async_finish(data_logger_report& report);

    struct source_file;
    struct piece;

private:
    /// Encodes the batch's entries of `source` (by_source_) and writes them to its working file; one CPU-pool task
    /// per source of the batch. `replenishes`: this task keeps the node pool filled (one task per batch does).
    void write_source(std::uint8_t source, bool replenishes);
    void encode(source_file& file, std::size_t index);
    void flush(source_file& file);
    void start_writeback(source_file& file);
    void maybe_sync(source_file& file);
    source_file& file_for(std::uint8_t source);
    /// Publishes (or removes, when empty) one source's working file; its outcome goes to `outcome`.
    struct finish_outcome;
    void finish_source(source_file& file, finish_outcome& outcome);
    /// fsync of `directory` (open as `fd`, or opened here when -1). Returns 0 or an errno.
    int fsync_directory(int fd, const std::filesystem::path& directory);
    /// fsyncs the parents of the directories the logger created, once (a failure is retried at the next call):
    /// until then a power loss may take the log directory's own name, and with it every file in it, however well
    /// those files were synced. Returns 0 or an errno.
    int sync_created_directories();
    /// sync_created_directories, its failure counted in syncs_failed_ and warned about once (parent_sync_error_).
    void sync_parents_or_warn();

    std::filesystem::path directory_;
    int directory_fd_;
    data_logger_options options_;
    std::array<std::unique_ptr<source_file>, 256> files_;
    std::vector<queued_entry*> batch_;
    std::array<std::vector<std::uint32_t>, 256> by_source_;  ///< batch_ indices of each source, in queue order
    std::vector<std::uint8_t> batch_sources_;                ///< sources with entries in batch_, first seen first
    std::size_t batch_bytes_ = 0;
    std::vector<std::string> errors_;
    std::uint64_t members_recovered_ = 0;
    std::uint64_t bytes_cut_ = 0;
    std::vector<damaged_bytes> damaged_;  ///< found in working files resumed by this run
    std::mutex shared_mutex_;  ///< guards the counters above and idle_sync_error_ against parallel source tasks
    std::atomic<std::uint64_t> syncs_{0};
    std::atomic<std::uint64_t> syncs_failed_{0};
    std::atomic<std::uint64_t> bytes_synced_{0};
    std::mutex parents_mutex_;                             ///< guards unsynced_parents_ (sources sync in parallel)
    std::vector<std::filesystem::path> unsynced_parents_;  ///< parents of created directories, not yet fsynced
    std::atomic<bool> parents_synced_{false};              ///< unsynced_parents_ is empty for good: no lock needed
    std::string parent_sync_error_;  ///< the first failure of sync_created_directories (guarded by shared_mutex_)
    directory_sync_fault_fn fail_sync_;
    std::string idle_sync_error_;  ///< the first failed fdatasync made while idle (no entry left to fail)
};

}  // namespace axds::detail
