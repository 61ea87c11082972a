#pragma once
// Running a processing tracker's jobs: a worker loop that claims the next SCHEDULED job under the tracker lock, runs a
// handler (a C++ coroutine or an external command) and records SUCCEEDED or FAILED, until no job is left; and the
// stale-job rule that makes the jobs of a vanished executor claimable again. The tracker file keeps the Python
// library's format: a Python worker sees every claim as an ordinary start_job.

#include <axds/jobs/processing_tracker.hpp>

#include <asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace axds {

/// What a handler gets for one claimed job.
struct job_context {
    std::string job_id;
    std::string job_name;
    std::string specifier;
    std::filesystem::path tracker_path;
    std::string executor_id;  ///< the ID the job was claimed with
};

/// Runs one job; returning marks it SUCCEEDED, throwing a std::exception marks it FAILED with what().
using job_handler = std::function<asio::awaitable<void>(job_context)>;

/// One finished job, as reported to job_runner_options::on_job_done.
struct job_outcome {
    std::string job_id;
    std::string job_name;
    std::string specifier;
    bool succeeded = false;
    std::string error;  ///< the FAILED message (empty on success)
};

struct job_runner_options {
    /// Jobs run at once in this process (coroutines on the caller's executor): 0 = automatic (all cores but two), a
    /// positive count is capped at the cores, negative is refused before the tracker is read (resolve_workers_option).
    int workers = 1;
    /// The executor ID claims are recorded with; default runner_executor_id().
    std::optional<std::string> executor_id;
    /// How long one tracker operation waits for the lock (many workers on one tracker contend for it).
    std::chrono::milliseconds lock_timeout{60'000};
    /// Called on the caller's executor after each job is recorded.
    std::function<void(const job_outcome&)> on_job_done;
};

struct job_runner_report {
    std::size_t succeeded = 0;
    std::size_t failed = 0;
    std::vector<job_outcome> failures;  ///< in completion order
};

/// The executor ID a runner records: processing_tracker::resolve_executor_id() (`slurm:<job id>` inside a SLURM job,
/// as the Python library writes), except that the `pid:<pid>` fallback gets the host: `pid:<pid>@<host>`, so that
/// the stale-job rule can tell a process on this host from one elsewhere on a shared filesystem.
[[nodiscard]] std::string runner_executor_id();

/// Claims and runs jobs of the tracker at `tracker_path` until none is SCHEDULED, with `options.workers` claims in
/// flight. Each worker uses a tracker object of its own. A job whose handler throws is marked FAILED and the worker
/// goes on. When the runner is cancelled (terminal cancellation, e.g. Ctrl-C in the CLI), a job in progress is put
/// back to SCHEDULED with the error message "interrupted: ..." and the cancellation propagates.
/// @throws what the tracker throws (timeout_error, a corrupt file's error): the runner stops at the first such error.
asio::awaitable<job_runner_report> async_run_tracker_jobs(std::filesystem::path tracker_path, job_handler handler,
                                                          job_runner_options options = {});

/// `args` with `{job_id}`, `{job_name}`, `{specifier}`, `{tracker}` and `{executor_id}` replaced by the job's values
/// (anywhere inside an argument). A literal brace is written twice: `{{` stands for `{` and `}}` for `}` (as in
/// Python's str.format), so `awk '{{print $1}}'` passes `awk '{print $1}'`.
/// @throws value_error for any other brace: an unknown placeholder (`{specfier}`), a `{` never closed, a single `}`
/// (the message names it and lists the placeholders).
[[nodiscard]] std::vector<std::string> expand_job_placeholders(const std::vector<std::string>& args,
                                                               const job_context& job);

/// Checks a command template as expand_job_placeholders would, without a job.
/// @throws value_error as expand_job_placeholders does.
void check_job_template(const std::vector<std::string>& args);

struct command_options {
    /// The FAILED message keeps at most this many trailing bytes of the command's stderr.
    std::size_t stderr_tail_bytes = 2000;
    /// Copy the command's stderr to this process's stderr as it arrives (besides keeping the tail).
    bool forward_stderr = true;
};

/// A handler that runs an external command for each job: `argv` after expand_job_placeholders, found on PATH when
/// argv[0] has no '/', with the environment plus AXDS_JOB_ID, AXDS_JOB_NAME, AXDS_JOB_SPECIFIER, AXDS_TRACKER and
/// AXDS_EXECUTOR_ID; stdin is /dev/null, stdout is inherited. Exit status 0 succeeds; otherwise the job fails with
/// child_process_error "... exited with status N" or "... was killed by signal N", followed by the stderr tail. The
/// command gets SIGKILL if the thread that started it dies (PR_SET_PDEATHSIG), so a killed worker leaves no command
/// running behind it (the command's own children are its business). Cancellation kills it (SIGTERM, then SIGKILL).
/// The stderr tail kept in the tracker is made valid UTF-8 (bytes that are not, and NUL, become U+FFFD).
/// The command's status is recorded as soon as it exits: what its stderr pipe holds then is read without waiting for
/// end of file, so a background process it left holding its stderr does not keep the job (that process later gets
/// EPIPE/SIGPIPE if it writes to stderr). A program that cannot be executed fails its job with "Unable to execute the
/// command 'PROGRAM': REASON." (errno's text: "No such file or directory", "Permission denied", ...).
/// @throws value_error for an empty command or a bad template (check_job_template); child_process_error when argv[0]
/// holds no placeholder and is not found on PATH, or names a path that is missing or not executable (so a typo fails
/// before any job is claimed; a program named by a placeholder is looked up per job).
[[nodiscard]] job_handler command_job_handler(std::vector<std::string> argv, command_options options = {});

// ---------------------------------------------------------------------------------------------------------------
// Stale jobs.

enum class executor_liveness { alive, gone, unknown };

struct executor_verdict {
    executor_liveness state = executor_liveness::unknown;
    std::string reason;  ///< why (names the executor and what was checked)
};

struct reclaim_options {
    /// Treat `pid:<pid>` IDs without a host (written by the Python library or by start_job without an ID) as
    /// processes of this host. Only true when every worker of the tracker ran on this host.
    bool bare_pids_are_local = false;
    /// Executors the user declares gone (e.g. `pbs:123` after checking `qstat`): their RUNNING jobs are reclaimed.
    std::vector<std::string> gone_executors;
    /// The SLURM commands (tests point them at fakes).
    std::string squeue = "squeue";
    std::string sacct = "sacct";
};

/// The stale-job rule for one RUNNING job's executor, `started_at` the job's start (µs since the epoch):
/// - `slurm:<job id>`: squeue (all states, the job's own ID) says RUNNING/PENDING/COMPLETING/... -> alive; a final
///   state (COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE, OUT_OF_MEMORY) -> gone;
///   "Invalid job id" (purged from slurmctld) -> sacct's state, or gone when accounting has no record; squeue
///   missing or failing otherwise (controller unreachable) -> unknown.
/// - `pid:<pid>@<host>` on this host, or `pid:<pid>` with bare_pids_are_local: no such process, or a zombie -> gone;
///   a process that started more than 2 s after the job (the pid was reused) -> gone; otherwise alive.
/// - anything else (other hosts, other schedulers, custom IDs): unknown unless listed in gone_executors.
[[nodiscard]] executor_verdict probe_executor(std::string_view executor_id, std::optional<std::uint64_t> started_at,
                                              const reclaim_options& options = {});

struct stale_job {
    std::string job_id;
    std::string executor_id;
    std::optional<std::uint64_t> started_at;
    executor_verdict verdict;
};

struct reclaim_report {
    std::vector<stale_job> reclaimed;  ///< made SCHEDULED again
    std::vector<stale_job> kept;       ///< RUNNING jobs left alone (executor alive or unknown), with the reason
};

/// Probes the executor of every RUNNING job (outside the lock), then, under the lock, puts back to SCHEDULED each job
/// whose executor is gone and that still holds the probed executor and start time; the reason is recorded in its
/// error_message ("reclaimed: ..."), which the next start clears. A job whose executor may be alive is never touched.
reclaim_report reclaim_stale_jobs(processing_tracker& tracker, const reclaim_options& options = {});

/// probe_executor for every RUNNING job, without changing anything (what `axds jobs status` shows).
[[nodiscard]] std::vector<stale_job> probe_running_jobs(processing_tracker& tracker,
                                                        const reclaim_options& options = {});

}  // namespace axds
