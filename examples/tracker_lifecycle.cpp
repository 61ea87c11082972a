// The Python README's ProcessingTracker sections in C++: initializing jobs, the job lifecycle, querying the
// pipeline state and retrying failed jobs — with several workers sharing one tracker file at once.
//
//   ads_example_tracker_lifecycle
//
// The tracker file is the Python library's (same YAML, same job IDs, same lock file), so Python workers could take
// part in the same run.

#include <axds/core/runtime.hpp>
#include <axds/jobs/processing_tracker.hpp>
#include <axds/log/log_package.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

/// A coroutine "job": waits a little without blocking the executor.
asio::awaitable<int> render_report() {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable);
    co_return 42;
}

asio::awaitable<int> run(fs::path tracker_path) {
    // Creating and initializing the tracker.
    axds::processing_tracker tracker(tracker_path);
    const auto job_ids = tracker.initialize_jobs({
        {"process_video", "session_001"},
        {"process_video", "session_002"},
        {"extract_frames", "session_001"},
        {"extract_frames", "session_002"},
        {"generate_report", ""},  // an empty specifier for jobs without batches
    });
    fmt::print("Initialized {} jobs in {}\n", job_ids.size(), tracker_path.string());

    // Managing the job lifecycle: the ID comes from the same (name, specifier) as at initialization.
    const std::string job_id = axds::processing_tracker::generate_job_id("process_video", "session_001");
    tracker.start_job(job_id, "slurm_12345");
    fmt::print("Job status: {}\n", axds::processing_status_name(tracker.get_job_status(job_id)));
    tracker.complete_job(job_id);

    // Other workers — here threads, each with its own tracker object, as separate processes would — take the
    // remaining video and frame jobs; one of them fails.
    std::vector<std::thread> workers;
    for (const auto& [name, specifier] : std::vector<axds::job_key>{
             {"process_video", "session_002"}, {"extract_frames", "session_001"}, {"extract_frames", "session_002"}}) {
        workers.emplace_back([&tracker_path, name = name, specifier = specifier] {
            axds::processing_tracker mine(tracker_path);
            const auto id = axds::processing_tracker::generate_job_id(name, specifier);
            try {
                mine.run_job(id, [&] {
                    if (specifier == "session_002" && name == "extract_frames") {
                        throw std::runtime_error("Out of memory");
                    }
                });
            } catch (const std::exception&) {
                // run_job already marked the job failed with the message.
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    // A coroutine job: the tracker's lock waits and file I/O never block this executor.
    const int pages =
        co_await tracker.async_run_job(axds::processing_tracker::generate_job_id("generate_report"), render_report());
    fmt::print("report job returned {}\n", pages);

    // Querying the pipeline state.
    if (tracker.complete()) {
        fmt::print("Pipeline completed successfully!\n");
    }
    if (tracker.encountered_error()) {
        fmt::print("Pipeline encountered errors!\n");
    }
    for (const auto& [status, count] : tracker.get_summary()) {
        fmt::print("{}: {}\n", axds::processing_status_name(status), count);
    }
    const auto failed_jobs = tracker.get_jobs_by_status(axds::processing_status::failed);
    const auto scheduled_jobs = tracker.get_jobs_by_status("SCHEDULED");  // names work too
    for (const auto& [id, key] : tracker.find_jobs("process", "session_001")) {
        fmt::print("Found job: {} ({}) = {}\n", key.first, key.second, id);
    }
    const axds::job_state info = tracker.get_job_info(failed_jobs.at(0));
    fmt::print("Job: {}, Status: {}, error: {}\n", info.job_name, axds::processing_status_name(info.status),
               info.error_message.value_or(""));
    fmt::print("Started at: {}, Completed at: {}\n", axds::utc_iso8601(info.started_at.value_or(0)),
               axds::utc_iso8601(info.completed_at.value_or(0)));

    // Retrying failed jobs, then resetting the whole tracker.
    const auto retried = tracker.retry_failed_jobs();
    fmt::print("Reset {} failed jobs for retry; scheduled now: {}\n", retried.size(),
               tracker.get_jobs_by_status("SCHEDULED").size());
    tracker.reset();
    const bool ok = failed_jobs.size() == 1 && scheduled_jobs.empty() && retried == failed_jobs && pages == 42 &&
                    tracker.summarize().summary.total == 0;
    co_return ok ? 0 : 1;
}

}  // namespace

int main() {
    try {
        const axds_examples::scratch_directory scratch("axds-tracker-");
        return axds::block_on(run(scratch.path() / "tracker.yaml"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tracker_lifecycle failed: %s\n", e.what());
        return 1;
    }
}
