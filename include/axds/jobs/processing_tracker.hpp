#pragma once

#include <asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace axds {

/// A job's processing status; the integer is what the tracker file stores (spec §4.1).
enum class processing_status : int { scheduled = 0, running = 1, succeeded = 2, failed = 3 };

/// "SCHEDULED", "RUNNING", "SUCCEEDED" or "FAILED" (the Python member name).
[[nodiscard]] std::string_view processing_status_name(processing_status status) noexcept;
/// The status named `name` (case-sensitive member name). @throws key_error for any other name.
[[nodiscard]] processing_status parse_processing_status(std::string_view name);

/// The state of a whole tracker (spec §4.1: a string enum).
enum class tracker_status { not_started, in_progress, processing, completed, failed };
/// "not_started", "in_progress", "processing", "completed" or "failed".
[[nodiscard]] std::string_view tracker_status_value(tracker_status status) noexcept;

/// One job's record, fields in the file's key order (spec §4.1). Absent values are std::nullopt (YAML null).
struct job_state {
    std::string job_name;
    std::string specifier;
    processing_status status = processing_status::scheduled;
    std::optional<std::string> executor_id;
    std::optional<std::string> error_message;
    std::optional<std::uint64_t> started_at;    ///< µs since the Unix epoch, UTC
    std::optional<std::uint64_t> completed_at;  ///< µs since the Unix epoch, UTC

    friend bool operator==(const job_state&, const job_state&) = default;
};

/// A (job_name, specifier) pair as callers name jobs.
using job_key = std::pair<std::string, std::string>;
/// Jobs in registry (file) order, keyed by job ID.
using job_registry = std::vector<std::pair<std::string, job_state>>;

/// Job counts by status.
struct job_counts {
    std::size_t total = 0;
    std::size_t succeeded = 0;
    std::size_t failed = 0;
    std::size_t running = 0;
    std::size_t scheduled = 0;

    friend bool operator==(const job_counts&, const job_counts&) = default;
};

/// What summarize() returns (spec §4.7): every job in registry order, the counts and the tracker status.
struct tracker_summary {
    job_registry jobs;
    job_counts summary;
    tracker_status status = tracker_status::in_progress;
};

/// Settings of a processing_tracker.
struct tracker_options {
    /// How long a locked operation waits for `<file>.lock` before timeout_error (spec §4.2: 10 s).
    std::chrono::milliseconds lock_timeout{10'000};
};

/// The job registry of spec §4: a YAML file (`jobs:` mapping, §4.4) guarded by a BSD flock on `<file>.lock`, the same
/// files the Python ProcessingTracker reads and writes, so Python and C++ workers on several hosts can share one
/// tracker at the same time. Every locked operation reads the file, changes it and replaces it atomically (temp file +
/// fsync + rename, mode 0600) before releasing the lock.
///
/// Read-only methods (queries, summaries, complete(), encountered_error()) take no lock: the file is only ever
/// replaced atomically, so they see one whole version without waiting behind busy workers, and they work for a user
/// who may read the tracker but not create its lock file. (The Python library locks reads too; the data is the same.)
///
/// Each synchronous method blocks its thread while it waits for the lock (polling, up to lock_timeout); each `async_`
/// form waits with a timer instead, so the executor keeps running other work, and does the file I/O on the CPU pool.
///
/// Errors: value_error for unknown job IDs (anchor "not configured to track") and invalid arguments, timeout_error
/// when the lock cannot be acquired, yaml_error / value_error / missing_value_error naming the file for a corrupt or
/// foreign tracker file (the file is left untouched), os_error family for I/O failures.
///
/// Thread safety: distinct objects may be used from any threads (the file lock serializes them, also within one
/// process); one object needs external synchronisation.
class processing_tracker {
public:
    explicit processing_tracker(std::filesystem::path file_path, tracker_options options = {});

    /// The tracker file; for a path that is a symbolic link, the file it points to (resolved at construction).
    [[nodiscard]] const std::filesystem::path& file_path() const noexcept { return file_path_; }

    /// `<file_path>.lock` (spec §4.2).
    [[nodiscard]] const std::filesystem::path& lock_path() const noexcept { return lock_path_; }

    /// The jobs as of the last operation (not re-read).
    [[nodiscard]] const job_registry& jobs() const noexcept { return jobs_; }

    /// XXH64 (seed 0) of `name` or `name:specifier`, as 16 lowercase hex digits (spec §4.5).
    /// @throws value_error if either contains ':'.
    [[nodiscard]] static std::string generate_job_id(std::string_view job_name, std::string_view specifier = "");
    /// Trackers named `tracker_name` anywhere under `root_directory`, sorted by path, jobs not loaded (spec §4.7).
    [[nodiscard]] static std::vector<processing_tracker> discover(const std::filesystem::path& root_directory,
                                                                  std::string_view tracker_name);
    /// The tracker status for these counts (spec §4.7 resolve_status).
    [[nodiscard]] static tracker_status resolve_status(const job_counts& counts) noexcept;
    /// The executor ID recorded by start_job when none is given: `{scheduler}:{job id}` or `pid:{pid}` (spec §4.6).
    [[nodiscard]] static std::string resolve_executor_id();

    /// The (name, specifier) in `universe` whose ID is `job_id`. No file access.
    [[nodiscard]] job_key resolve_job(std::string_view job_id, const std::vector<job_key>& universe) const;

    /// Registers missing jobs as SCHEDULED (warning once per already-present job); returns their IDs in input order.
    std::vector<std::string> initialize_jobs(const std::vector<job_key>& jobs);
    /// Makes the registry hold exactly the jobs of `universe` that were ever requested: discards foreign entries
    /// (with a warning), adds missing requested jobs; returns the requested IDs. `universe` defaults to `jobs`.
    std::vector<std::string> align_jobs(const std::vector<job_key>& jobs,
                                        const std::optional<std::vector<job_key>>& universe = std::nullopt);
    void start_job(std::string_view job_id, std::optional<std::string> executor_id = std::nullopt);
    void complete_job(std::string_view job_id);
    void fail_job(std::string_view job_id, std::optional<std::string> error_message = std::nullopt);

    [[nodiscard]] processing_status get_job_status(std::string_view job_id);
    [[nodiscard]] job_state get_job_info(std::string_view job_id);
    /// Copies of every job; empty (and no lock taken) when the file does not exist.
    [[nodiscard]] job_registry snapshot();
    [[nodiscard]] tracker_summary summarize();
    /// Jobs whose name and specifier contain the given substrings (all jobs without criteria).
    [[nodiscard]] std::vector<std::pair<std::string, job_key>> find_jobs(
        const std::optional<std::string>& job_name = std::nullopt,
        const std::optional<std::string>& specifier = std::nullopt);
    [[nodiscard]] std::vector<std::string> get_jobs_by_status(processing_status status);
    /// @throws key_error for a name that is not a processing_status member name.
    [[nodiscard]] std::vector<std::string> get_jobs_by_status(std::string_view status_name);
    /// Counts for all four statuses, in the order SCHEDULED, RUNNING, SUCCEEDED, FAILED.
    [[nodiscard]] std::vector<std::pair<processing_status, std::size_t>> get_summary();
    /// At least one job and every job SUCCEEDED.
    [[nodiscard]] bool complete();
    /// Some job FAILED.
    [[nodiscard]] bool encountered_error();
    /// Back to SCHEDULED with executor, error and times cleared; returns the reset IDs in registry order.
    /// @throws value_error naming the unknown IDs (nothing is modified then).
    std::vector<std::string> reset_jobs(const std::vector<std::string>& job_ids);
    std::vector<std::string> retry_failed_jobs();
    /// Removes every job.
    void reset();
    /// Removes every job unless one is RUNNING (its executor could then never record its end), all under the lock;
    /// `even_running` removes those too, as reset() does. Returns how many jobs were removed.
    /// @throws value_error naming the RUNNING jobs and their executors (nothing is modified then).
    std::size_t remove_all_jobs(bool even_running);

    /// start_job, then `work()`, then complete_job. If work (or complete_job) throws a std::exception, the job is
    /// marked failed with its what() and the exception propagates unchanged; any other throw leaves it RUNNING.
    template <typename Work>
    std::invoke_result_t<Work&> run_job(std::string_view job_id, Work&& work,
                                        std::optional<std::string> executor_id = std::nullopt) {
        start_job(job_id, std::move(executor_id));
        try {
            if constexpr (std::is_void_v<std::invoke_result_t<Work&>>) {
                work();
                complete_job(job_id);
            } else {
                auto result = work();
                complete_job(job_id);
                return result;
            }
        } catch (const std::exception& e) {
            fail_job(job_id, std::string(e.what()));
            throw;
        }
    }

    // Coroutine forms: the lock wait never blocks the executor; file I/O runs on the CPU pool. Arguments are taken
    // by value (they must outlive suspensions). The object must outlive the returned awaitable.
    asio::awaitable<std::vector<std::string>> async_initialize_jobs(std::vector<job_key> jobs);
    asio::awaitable<std::vector<std::string>> async_align_jobs(std::vector<job_key> jobs,
                                                               std::optional<std::vector<job_key>> universe = {});
    asio::awaitable<void> async_start_job(std::string job_id, std::optional<std::string> executor_id = {});
    asio::awaitable<void> async_complete_job(std::string job_id);
    asio::awaitable<void> async_fail_job(std::string job_id, std::optional<std::string> error_message = {});
    asio::awaitable<processing_status> async_get_job_status(std::string job_id);
    asio::awaitable<job_state> async_get_job_info(std::string job_id);
    asio::awaitable<job_registry> async_snapshot();
    asio::awaitable<tracker_summary> async_summarize();
    asio::awaitable<std::vector<std::pair<std::string, job_key>>> async_find_jobs(
        std::optional<std::string> job_name = {}, std::optional<std::string> specifier = {});
    asio::awaitable<std::vector<std::string>> async_get_jobs_by_status(processing_status status);
    asio::awaitable<std::vector<std::pair<processing_status, std::size_t>>> async_get_summary();
    asio::awaitable<bool> async_complete();
    asio::awaitable<bool> async_encountered_error();
    asio::awaitable<std::vector<std::string>> async_reset_jobs(std::vector<std::string> job_ids);
    asio::awaitable<std::vector<std::string>> async_retry_failed_jobs();
    asio::awaitable<void> async_reset();

    /// async_start_job, then `co_await work`, then async_complete_job; on a std::exception the job is marked failed
    /// with its what() and the exception is rethrown.
    template <typename T>
    asio::awaitable<T> async_run_job(std::string job_id, asio::awaitable<T> work,
                                     std::optional<std::string> executor_id = {}) {
        co_await async_start_job(job_id, std::move(executor_id));
        std::exception_ptr failure;
        std::string reason;
        try {
            if constexpr (std::is_void_v<T>) {
                co_await std::move(work);
                co_await async_complete_job(job_id);
                co_return;
            } else {
                T result = co_await std::move(work);
                co_await async_complete_job(job_id);
                co_return result;
            }
        } catch (const std::exception& e) {
            failure = std::current_exception();
            reason = e.what();
        }
        co_await async_fail_job(job_id, std::move(reason));
        std::rethrow_exception(failure);
    }

    // ---- Job runner support (job_runner.hpp) ----
    /// Atomically (one locked read-modify-write) starts the first SCHEDULED job in registry order with
    /// `executor_id` (as start_job would: RUNNING, started_at now, error and completion cleared); returns its ID and
    /// new state, or std::nullopt (nothing written) when no job is SCHEDULED. Two claimers never get the same job.
    std::optional<std::pair<std::string, job_state>> claim_next_job(std::string executor_id);
    asio::awaitable<std::optional<std::pair<std::string, job_state>>> async_claim_next_job(std::string executor_id);
    /// Runs `op` on the jobs under the lock and saves the result: the general locked read-modify-write (the job
    /// runner's reclaim and interruption use it). `op` may change states but should not add or remove jobs.
    void update_jobs(const std::function<void(job_registry& jobs)>& op);
    asio::awaitable<void> async_update_jobs(std::function<void(job_registry& jobs)> op);

private:
    enum class load_mode { create, no_create };
    using operation = std::function<void(job_registry& jobs)>;

    /// Lock, load (per mode), run `op` on the jobs, save if `save`, unlock. Blocking.
    void locked(load_mode mode, bool save, const operation& op);
    /// Acquires the lock with an awaitable wait, then runs `call` (a synchronous method) on the CPU pool while the
    /// lock is held; locked() inside it sees lock_held_ and does not lock again.
    asio::awaitable<void> async_with_lock(std::function<void()> call);
    /// Every async_ method: async_with_lock for `call` (a synchronous method of this object bound to its arguments),
    /// returning what it returns. Defined (and only used) in processing_tracker.cpp.
    template <typename Call>
    asio::awaitable<std::invoke_result_t<Call&>> async_locked(Call& call);
    /// Load + op + save, with the lock already held.
    void transact(load_mode mode, bool save, const operation& op);
    /// Writes jobs_: the touched job's block patched into the text last written when the file still holds it
    /// (`unchanged`), else the whole document.
    void save_jobs(bool unchanged);
    /// Replaces the file with `text` (atomic, fsynced; the directory fsynced unless it lives on tmpfs/ramfs).
    void write_text(const std::string& text);

    std::filesystem::path file_path_;
    std::filesystem::path lock_path_;
    tracker_options options_;
    job_registry jobs_;
    /// The text this object last wrote, when jobs_ is exactly what it parses to (set after a fast-path save): a
    /// transition that reads the same bytes back skips the parse.
    std::string written_text_;
    std::vector<std::size_t> written_starts_;  ///< where each job's block starts in written_text_ (and their end)
    bool written_text_current_ = false;
    /// Set by an operation that changed only this job (a transition): its save re-emits that job's block alone.
    std::optional<std::size_t> touched_;
    bool lock_held_ = false;
    std::string read_buffer_;             ///< the file's text as the last transition read it (reused, not reallocated)
    std::optional<bool> sync_directory_;  ///< sys::directory_needs_sync for the file, asked at the first write
};

}  // namespace axds
