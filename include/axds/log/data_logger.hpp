#pragma once

#include <axds/log/log_archive.hpp>
#include <axds/log/log_package.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace axds {

namespace detail {
struct data_logger_test_access;  // fault injection for tests (src/detail/fault_hooks.hpp); not API
}  // namespace detail

/// Where a data_logger puts what it is given (see data_logger_options::layout and README "Data logger").
enum class log_layout {
    /// One `.npy` entry file per package (the Python DataLogger's files); async_assemble_log_archives packs them.
    entry_files,
    /// Streaming archives: every package is appended as a stored member to one open working file per source,
    /// `.{source}_log.npz.working` in the logger directory; async_stop() writes the central directory and renames it
    /// to `{source}_log.npz`. After a crash, async_assemble_log_archives (or a later logger that logs the
    /// same source into the directory) recovers every complete member (docs/SAFETY.md).
    archives,
};

/// Tuning of a data_logger (spec §6.3).
struct data_logger_options {
    /// Entry writes in flight at once (the Python `thread_count`, which clamps 0 and negatives to 1): 0 = automatic
    /// (all cores but two, resolve_workers_option), at most 256, negative refused (value_error) before the directory
    /// is created. The plain writer runs min(workers, cores) threads on a large batch; the io_uring writer keeps this
    /// many chains.
    int workers = 5;
    /// Upper bound of the bytes held by queued and in-flight entries (payload + 201 bytes of bookkeeping each).
    /// try_log() refuses and async_log()/log() wait while a package would exceed it; a single package larger than
    /// the bound is still accepted when the queue is empty. Clamped to at least 4 KiB. The queue's nodes (64 bytes
    /// each, part of the 201) come from a pool that the writer pre-faults and grows up to bound / 201 + 1 nodes and
    /// keeps until the logger is destroyed (1 MiB at construction, at most ~85 MB for the default bound).
    std::size_t queue_capacity_bytes = std::size_t{256} << 20;
    /// Write through io_uring (linked openat/writev/close chains, `workers` in flight; the executor thread only
    /// submits and reaps). Off by default: creating a file is work the kernel hands to io_uring's worker threads,
    /// and that hand-off is slower than plain open/write/close (batches split over the CPU pool, the default); the
    /// figures are in bench/README.md. Where this kernel refuses io_uring the plain writer is used either way.
    bool use_io_uring = false;
    /// entry_files (the default) or archives (streaming into `{source}_log.npz`; no assembly needed).
    log_layout layout = log_layout::entry_files;
    /// archives layout only: fdatasync a working file once this many bytes were appended to it since its last sync
    /// (0 = never by size). See docs/SAFETY.md for what each setting promises after a power loss.
    std::uint64_t sync_every_bytes = 0;
    /// archives layout only: fdatasync a working file holding unsynced bytes once its last sync is this old (0 = never
    /// by time). Checked after each batch write and, while the logger is idle, by a timer of the writer: data written
    /// just before the logger falls silent is synced about this long after, not only at the next batch or the stop.
    std::chrono::milliseconds sync_every{0};
};

/// What one run of a data_logger (async_start() … async_stop()) did.
struct data_logger_report {
    std::uint64_t entries_written = 0;  ///< entry files completely written
    /// Entries that did not reach the disk. A file that such an entry's failed write or close left behind (a full
    /// disk leaves empty or short ones) is removed, so every entry file on disk is complete; should the removal fail
    /// too, that entry's error says so.
    std::uint64_t entries_failed = 0;
    std::vector<std::string> failed_entries;  ///< their file names, in completion order
    std::string first_error;                  ///< "<file>: <what failed>" of the first failure; empty if none
    std::uint64_t entries_left_queued = 0;    ///< submitted after the stop began; kept for the next start
    bool used_io_uring = false;               ///< entries went through io_uring (else plain syscalls)
    /// archives layout: the `{source}_log.npz` archives this stop finished (renamed or merged into place).
    std::vector<std::filesystem::path> archives;
    /// archives layout: members of working files left by an earlier, killed run that this run found intact on disk
    /// and carried on from (a torn last member is cut off: see bytes_cut).
    std::uint64_t members_recovered = 0;
    std::uint64_t bytes_cut = 0;  ///< archives layout: bytes of torn members cut from such working files
    /// archives layout: damaged ranges found in such working files (not a torn end: e.g. a member damaged on disk with
    /// intact members after it); each was saved to a file of its own before anything was cut, and warned about.
    std::vector<damaged_bytes> damaged;
    std::uint64_t syncs = 0;         ///< archives layout: fdatasync calls made because of sync_every(_bytes)
    std::uint64_t bytes_synced = 0;  ///< archives layout: appended bytes those syncs made durable
    /// archives layout: syncs that failed (the file's fdatasync, or the fsync of a directory that makes a name
    /// durable: the log directory, or the parent of a log directory the logger created); first_error names the
    /// first. Until a later sync succeeds, a power loss may take what they covered. Not part of clean(): entries
    /// are failed only by a failed fdatasync or log-directory fsync of their batch; a parent that still could not
    /// be synced at the stop leaves the finished archives in place but the new log directory's name not durable.
    std::uint64_t syncs_failed = 0;
    /// archives layout: working files the stop could not finish (first_error says why); every member they hold is
    /// on disk and async_assemble_log_archives finishes them once the cause is removed.
    std::vector<std::filesystem::path> unfinished_archives;

    /// True when every entry this run took from the queue reached the disk (and, with the archives layout, every
    /// archive was finished).
    [[nodiscard]] bool clean() const noexcept { return entries_failed == 0 && unfinished_archives.empty(); }
};

/// Persists log_packages as `.npy` entry files in `{output_directory}/{instance_name}_data_log` (spec §6), the files
/// the Python DataLogger writes, ready for async_assemble_log_archives.
///
/// Producers (threads or coroutines) hand packages to an in-memory queue bounded in bytes; a writer coroutine on the
/// logger's executor takes them in batches and writes them with plain open/write/close on the CPU pool (one thread
/// per core, up to `workers`) or, with `use_io_uring`, as io_uring chains with `workers` in flight. The
/// executor thread never blocks: it only hands batches out, submits and reaps. Nothing is dropped silently: a full
/// queue makes try_log() return false (the package stays with the caller) and async_log()/log() wait for space; a
/// failed write is counted, named in the stop report and announced by the §6.5 warning, and the partial file it left
/// (e.g. on a full disk) is removed.
///
/// Producers in other processes (or other languages) reach a logger through a log_socket_server
/// (<axds/log/log_socket.hpp>), which feeds this queue with the same backpressure.
///
/// Packages submitted while the logger is stopped (before the first start or after a stop) stay queued and are
/// written by the next start. Destroying a running logger requests a stop without waiting; the writer keeps the
/// logger's state alive until it has drained, provided the executor keeps running.
///
/// Thread safety: try_log, log, async_log, log_onset, async_log_onset, alive, name, output_directory and
/// queued_bytes may be called from any thread or coroutine at once; start/stop calls are serialized internally.
class data_logger {
public:
    /// Creates `{output_directory}/{instance_name}_data_log` (like mkdir -p). Throws value_error for an empty
    /// instance name or one containing '/' or NUL, and os_error when the directory cannot be created.
    data_logger(asio::any_io_executor executor, std::filesystem::path output_directory, std::string instance_name,
                data_logger_options options = {});
    ~data_logger();
    data_logger(const data_logger&) = delete;
    data_logger& operator=(const data_logger&) = delete;

    /// Starts the writer (no-op if it is running). Entries queued earlier are written first.
    /// Throws os_error if the output directory is gone.
    void start();
    /// start() from a coroutine.
    asio::awaitable<void> async_start();

    /// Writes every package submitted before this call, stops the writer and returns what the run did. If any
    /// entry failed, prints the §6.5 warning once ("Unable to confirm that the {name} DataLogger saved all buffered
    /// data ... did not reach the disk"). Returns an empty report if the logger was not running.
    asio::awaitable<data_logger_report> async_stop();
    /// Blocking async_stop() for plain threads. Must not be called from a thread that runs the logger's executor
    /// (the writer could never finish): that throws runtime_error when detectable.
    data_logger_report stop();

    /// Queues `package` if it fits; never blocks. On false the package was not moved from. On true its payload is
    /// left empty, holding (when the logger kept one) the buffer of an earlier, already written message: a producer
    /// that refills the same package (`package.payload.assign(...)`, `resize`) then allocates nothing (the logger
    /// keeps such buffers up to min(queue_capacity_bytes, 1 GiB), until it stops: memory the queue held at its
    /// fullest stays with the logger). Takes its queue node from
    /// the logger's pre-faulted pool (no allocation, no page fault); only when the pool is momentarily empty (the
    /// writer grows it) does the node come from the heap, which changes nothing but the call's time.
    [[nodiscard]] bool try_log(log_package&& package);
    /// Queues `package`, waiting (without blocking the executor thread) while the queue is full.
    asio::awaitable<void> async_log(log_package package);
    /// async_log() of the package made of these parts: the one-line form for coroutines,
    /// `co_await logger.async_log(1, elapsed_us, frame);` (copies `frame`; pass `std::move(frame)` to move it).
    /// Prefer it to `co_await logger.async_log(axds::log_package{...});`: GCC 12 miscompiles a braced temporary
    /// inside a co_await expression (it frees the payload twice). GCC 12 refuses to compile a braced list as
    /// `payload` there ("array used as initializer"), so that form cannot slip in either.
    asio::awaitable<void> async_log(std::uint8_t source_id, std::uint64_t acquisition_time,
                                    std::vector<std::uint8_t> payload);

    /// async_log() of log_package::from_values(source_id, acquisition_time, values): a typed payload (bool or
    /// unsigned integers) cast into bytes as the Python LogPackage casts a numpy array (spec §6.1). The bytes are
    /// taken before this returns, so `values` need not outlive the call.
    template <log_payload_range Values>
    asio::awaitable<void> async_log(std::uint8_t source_id, std::uint64_t acquisition_time, Values&& values) {
        // Not a coroutine: the package is built here, outside any co_await expression, and owned by the awaitable.
        return async_log(log_package::from_values(source_id, acquisition_time, std::forward<Values>(values)));
    }

    /// Queues `package`, blocking the calling thread while the queue is full. Not for executor threads. Leaves the
    /// package as try_log() does on success: payload empty, possibly with a recycled buffer to refill.
    void log(log_package&& package);
    /// log() of a copy of `package`.
    void log(const log_package& package);

    /// Queues the onset entry of spec §7.3 for `source_id`: time 0, payload = the current UTC time in µs (8 bytes
    /// LE). Producers should call it once per source before their first message.
    void log_onset(std::uint8_t source_id);
    asio::awaitable<void> async_log_onset(std::uint8_t source_id);

    /// True between a successful start and a stop while no entry write has failed.
    [[nodiscard]] bool alive() const noexcept;
    /// The instance name.
    [[nodiscard]] const std::string& name() const noexcept;
    /// `{output_directory}/{instance_name}_data_log`.
    [[nodiscard]] const std::filesystem::path& output_directory() const noexcept;
    /// Bytes currently held by queued and in-flight entries.
    [[nodiscard]] std::size_t queued_bytes() const noexcept;
    /// The options in effect, after clamping (workers resolved: 0 became the automatic count).
    [[nodiscard]] const data_logger_options& options() const noexcept;

    /// `DataLogger(name=…, output_directory=…, thread_count=…, queue_capacity=… bytes, started=…)` (cf. §6.3 repr;
    /// thread_count is options().workers).
    [[nodiscard]] std::string describe() const;

    struct impl;

private:
    friend struct detail::data_logger_test_access;
    std::shared_ptr<impl> impl_;
};

}  // namespace axds
