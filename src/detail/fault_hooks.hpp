#pragma once
// Fault injection for tests, per call or per instance: no global state. Each hook struct below is empty in normal
// operation; the public functions run with empty hooks, and tests call the overloads declared here (private to src/
// and tests/) to corrupt a copy before verification, fail entry opens, race an rmdir or damage an archive before it
// is verified. An empty hook costs one test of an empty std::function where it would fire.

#include <axds/fs/delete.hpp>
#include <axds/fs/transfer.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>

#include <asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

namespace axds::detail {

/// async_transfer_directory's seams.
struct transfer_hooks {
    /// Called after every file is copied, before verification (corruption tests).
    std::function<void(const std::filesystem::path& destination)> after_copy;
    /// Called when the plan is made (steps 1-10: walks, checks, strays), on the thread that made it.
    std::function<void()> after_plan;
    /// Called on a CPU-pool thread when a file's content is copied to its temporary name, before its metadata and its
    /// rename into place (kill -9 tests).
    std::function<void(const std::filesystem::path& partial)> content_copied;
    /// Called on a CPU-pool thread as soon as a large verified copy's temporary has its name (anyone could open it
    /// from then on), before anything is written to it.
    std::function<void(const std::filesystem::path& partial)> temporary_named;
    /// Called on a CPU-pool thread when a verified copy was read back (renamed into place by then: its final name),
    /// before its identity is taken again and it is closed.
    std::function<void(const std::filesystem::path& copy)> copy_read_back;
    /// Called on a CPU-pool thread just before a verified copy's temporary is renamed into place (before its read-back
    /// unless it was read back during its copy).
    std::function<void(const std::filesystem::path& partial)> before_rename;
    /// Verified copies are flushed by closing a duplicate descriptor before their rename, as on a network filesystem.
    bool flush_before_rename = false;
    /// Called after each source file a move removes, with the count so far (interrupted-move tests).
    std::function<void(std::size_t removed)> source_file_removed;
};

/// async_transfer_directory with hooks; the public function calls this with none.
asio::awaitable<transfer_report> async_transfer_directory(std::filesystem::path source,
                                                          std::filesystem::path destination, transfer_options options,
                                                          transfer_hooks hooks);

/// async_delete_directory's seams.
struct delete_hooks {
    /// Called just before each (by then empty) directory is removed (rmdir race tests).
    std::function<void(const std::filesystem::path& directory)> before_rmdir;
    /// Called just before each directory below the named one is opened (swap and mount race tests).
    std::function<void(const std::filesystem::path& directory)> before_open;
    /// Called after each directory is listed, before its files are unlinked (an entry changing kind meanwhile).
    std::function<void(const std::filesystem::path& directory)> after_list;
};

/// async_delete_directory with hooks; the public function calls this with none.
asio::awaitable<void> async_delete_directory(std::filesystem::path directory, delete_options options,
                                             delete_hooks hooks);

/// async_assemble_log_archives's seams.
struct assembly_hooks {
    /// Called (on a CPU pool thread) when the log directory was scanned, before any archive is written.
    std::function<void()> after_discovery;
    /// Called (on a CPU pool thread) after an archive is written, before it is verified.
    std::function<void(const std::filesystem::path& archive)> after_archive_written;
    /// Called (on a CPU pool thread) before an archive is verified against its entries.
    std::function<void(const std::filesystem::path& archive)> before_verify;
    /// Called (on a CPU pool thread) after the archives are written and verified, before any entry is removed.
    std::function<void()> before_remove;
    /// Called (on a CPU pool thread) after each entry is removed, with the count so far.
    std::function<void(std::size_t removed)> entry_removed;
};

/// async_assemble_log_archives with hooks; the public function calls this with none.
asio::awaitable<assemble_report> async_assemble_log_archives(std::filesystem::path log_directory,
                                                             assemble_options options, assembly_hooks hooks);

/// The data logger's seam, set per instance.
struct data_logger_test_access {
    /// Asked by the logger's entry writers for each entry file name; true makes that entry's open really fail
    /// (ENOENT: the file is redirected into a directory that does not exist). Call before the logger starts (each
    /// start hands it to the writer it creates).
    static void fail_entries(data_logger& logger, std::function<bool(std::string_view file_name)> fail);

    /// Asked by the streaming writer (log_layout::archives) before each fsync of a directory (the log directory, and
    /// the parents of the directories the logger created); true makes that fsync fail with EIO. Tests also record
    /// which directories were synced with it. Call before the logger starts.
    static void fail_directory_syncs(data_logger& logger,
                                     std::function<bool(const std::filesystem::path& directory)> fail);

    /// The logger's node pool (issue 21): nodes populated, its bound, acquisitions that found it empty, and free
    /// nodes (exact only while no producer and no writer runs, e.g. after a stop).
    struct pool_counts {
        std::size_t populated = 0;
        std::size_t max_nodes = 0;
        std::uint64_t heap_nodes = 0;
        std::size_t free_nodes = 0;
    };

    static pool_counts pool_stats(data_logger& logger);
};

}  // namespace axds::detail
