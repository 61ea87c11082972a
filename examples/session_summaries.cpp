// Batch post-processing of recording sessions through a processing tracker: one job per session reads every log
// archive of the session with the archive reader and writes the session's summary (summary.txt: one line per archive
// with its message count, time span and payload bytes).
//
//   ads_example_session_summaries                      self-contained demo: 3 sessions, run in-process (C++ handler)
//   ads_example_session_summaries setup ROOT N         makes N sessions under ROOT and ROOT/tracker.yaml (one job each)
//   ads_example_session_summaries process SESSION_DIR  the per-job program that `axds jobs` runs
//
// On one machine (a worker process per core):
//   axds jobs run ROOT/tracker.yaml -- ads_example_session_summaries process ROOT/{specifier}
// On a SLURM cluster (ROOT, axds and this program on the shared filesystem), 8 array tasks:
//   axds jobs submit ROOT/tracker.yaml --array-size 8 --time=00:30:00 --
//       ads_example_session_summaries process ROOT/{specifier}      (one command line)
//   axds jobs status ROOT/tracker.yaml        # progress, and squeue's view of the array

#include <axds/core/runtime.hpp>
#include <axds/jobs/job_runner.hpp>
#include <axds/jobs/processing_tracker.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>

#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

/// Logs 2 sources x `messages` messages into SESSION/rig_data_log and assembles them into per-source archives.
asio::awaitable<void> record_session(fs::path session, std::uint64_t messages) {
    fs::create_directories(session);
    axds::data_logger logger(co_await asio::this_coro::executor, session, "rig");
    co_await logger.async_start();
    co_await logger.async_log_onset(1);  // each source's archive starts with its onset (UTC epoch reference)
    co_await logger.async_log_onset(2);
    for (std::uint64_t i = 0; i < messages; ++i) {
        for (std::uint8_t source = 1; source <= 2; ++source) {
            std::vector<std::uint8_t> payload(1 + (i % 16) * source, static_cast<std::uint8_t>(i));
            co_await logger.async_log(source, (i + 1) * 1000, std::move(payload));
        }
    }
    (void)co_await logger.async_stop();
    (void)co_await axds::async_assemble_log_archives(logger.output_directory());
}

/// The job: every archive (*.npz) under the session, read with log_archive_reader, summarised into summary.txt.
/// Written to a temporary name and renamed, so a summary is never half there.
std::size_t summarize_session(const fs::path& session) {
    std::vector<fs::path> archives;
    for (const auto& entry : fs::recursive_directory_iterator(session)) {
        if (entry.is_regular_file() && entry.path().extension() == ".npz") {
            archives.push_back(entry.path());
        }
    }
    if (archives.empty()) {
        throw std::runtime_error(fmt::format("The session '{}' holds no log archive.", session.string()));
    }
    std::sort(archives.begin(), archives.end());
    std::string text;
    for (const auto& path : archives) {
        const axds::log_archive_reader reader(path);
        std::uint64_t first = UINT64_MAX;
        std::uint64_t last = 0;
        std::uint64_t bytes = 0;
        for (const auto message : reader.messages()) {
            first = std::min(first, message.timestamp_us);
            last = std::max(last, message.timestamp_us);
            bytes += message.payload.size();
        }
        text += fmt::format("{} messages={} span_us={} payload_bytes={}\n", path.filename().string(),
                            reader.message_count(), reader.message_count() == 0 ? 0 : last - first, bytes);
    }
    const fs::path summary = session / "summary.txt";
    const fs::path temporary = session / ".summary.txt.tmp";
    std::ofstream(temporary) << text;
    fs::rename(temporary, summary);
    return archives.size();
}

/// ROOT/session-<i> for i < count, recorded, and ROOT/tracker.yaml with one job per session.
asio::awaitable<void> setup(fs::path root, int count) {
    std::vector<axds::job_key> jobs;
    for (int i = 0; i < count; ++i) {
        const std::string name = fmt::format("session-{}", i);
        co_await record_session(root / name, 200);
        jobs.emplace_back("summarize", name);
    }
    axds::processing_tracker(root / "tracker.yaml").initialize_jobs(jobs);
}

/// The demo: set up 3 sessions, run their jobs with a C++ handler (2 at once), check every summary.
asio::awaitable<int> demo(fs::path root) {
    co_await setup(root, 3);
    axds::job_handler handler = [root](axds::job_context job) -> asio::awaitable<void> {
        const std::size_t archives = summarize_session(root / job.specifier);
        fmt::print("{}: {} archives summarised by {}\n", job.specifier, archives, job.executor_id);
        co_return;
    };
    const auto report = co_await axds::async_run_tracker_jobs(root / "tracker.yaml", handler, {.workers = 2});
    const bool all =
        report.succeeded == 3 && report.failed == 0 && axds::processing_tracker(root / "tracker.yaml").complete();
    for (int i = 0; i < 3; ++i) {
        std::ifstream summary(root / fmt::format("session-{}", i) / "summary.txt");
        std::string line;
        std::getline(summary, line);
        fmt::print("session-{}: {}\n", i, line);
    }
    for (const auto& failure : report.failures) {
        fmt::print("{} failed: {}\n", failure.specifier, failure.error);
    }
    fmt::print("{} jobs succeeded, {} failed: {}\n", report.succeeded, report.failed, all ? "complete" : "INCOMPLETE");
    co_return all ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "setup" && argc == 4) {
            axds::block_on(setup(argv[2], std::atoi(argv[3])));
            fmt::print("{} sessions and {}/tracker.yaml ready\n", argv[3], argv[2]);
            return 0;
        }
        if (mode == "process" && argc == 3) {
            fmt::print("{}: {} archives summarised\n", argv[2], summarize_session(argv[2]));
            return 0;
        }
        if (argc != 1) {
            std::fprintf(stderr, "usage: %s [setup ROOT N | process SESSION_DIR]\n", argv[0]);
            return 2;
        }
        const axds_examples::scratch_directory scratch("axds-sessions-");
        return axds::block_on(demo(scratch.path() / "sessions"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "session_summaries failed: %s\n", e.what());
        return 1;
    }
}
