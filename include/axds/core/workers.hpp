#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace axds {

/// The environment variables that cap the thread pools of numeric back-ends in worker processes (spec §9.5).
/// NUMBA_NUM_THREADS is deliberately absent (the Python library never sets it).
inline constexpr std::array<std::string_view, 8> worker_thread_variables = {
    "OMP_NUM_THREADS",        "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",       "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "POLARS_MAX_THREADS",   "OPENCV_FFMPEG_THREADS", "TIFFFILE_NUM_THREADS"};

/// The number of logical CPUs (online), or 0 when it cannot be determined. The library's only source of the core
/// count: the CPU pool, the worker-count rule and the data logger's writers all ask it.
[[nodiscard]] int logical_cpu_count() noexcept;

/// Resolves how many workers to use (spec §1.2): a positive request is honoured up to the logical core count; 0 or a
/// negative request means "all cores but `reserved_cores`", at least 1. Returns 1 when the core count is unknown.
/// @throws value_error if reserved_cores < 0.
[[nodiscard]] int resolve_worker_count(int requested_workers = 0, int reserved_cores = 2);

/// The worker-count rule of every `workers` option and argument of this library (checksum_options,
/// transfer_options, assemble_options, data_logger_options, job_runner_options, log_archive_reader::get_batches and
/// async_for_each_batch): 0 = automatic, i.e. resolve_worker_count() (all logical cores but two, at least 1); a
/// positive value asks for that many (capped at the logical core count where they are threads); a negative value is
/// refused. Each operation applies it before it touches any file, so a bad count never fails a long walk at its end.
/// Returns resolve_worker_count(workers).
/// @throws value_error naming `option` (e.g. "checksum_options::workers") if workers < 0.
[[nodiscard]] int resolve_workers_option(int workers, std::string_view option);

/// Scope guard that caps the thread pools of worker processes started while it lives (spec §9.5): sets each of
/// worker_thread_variables to `thread_count` in this process's environment (inherited by children) and, on
/// destruction (also during unwinding), restores previous values and removes variables that were absent.
/// It does not change this process's own thread pools.
///
/// Thread safety: changes the process environment; do not run concurrently with getenv/setenv elsewhere.
class limit_worker_threads {
public:
    /// @throws value_error if thread_count < 1 (anchor: "must be greater than or equal to 1").
    explicit limit_worker_threads(int thread_count = 1);
    limit_worker_threads(const limit_worker_threads&) = delete;
    limit_worker_threads& operator=(const limit_worker_threads&) = delete;
    ~limit_worker_threads();

private:
    std::array<std::optional<std::string>, worker_thread_variables.size()> saved_;
};

/// For use at the start of a worker process (spec §9.5): sets worker_thread_variables to `thread_count` without
/// restoring them, and returns the count the worker's own pools should use: min(thread_count, logical cores).
/// @throws value_error if thread_count < 1 (anchor: "must be greater than or equal to 1").
int initialize_worker_threads(int thread_count = 1);

}  // namespace axds
