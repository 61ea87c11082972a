// Benchmarks of the processing tracker (issue: ProcessingTracker), each with its baseline measured in the same run:
//   1. start_job + complete_job on a J-job tracker (default 100; run with --jobs 10000 too), one process: time per
//      transition   vs  a bare loop of flock + read + write temp + fsync + rename + unlock of a file of the same size,
//      alternating in R rounds (default 5), the median of the rounds after the first
//   2. 4 processes (fork) contending on one tracker: total transitions/s
// Files live under --dir (default: the current directory); every write is fsynced, as the Python library does.
//
//   ads_bench_tracker [--dir D] [--transitions N] [--processes P] [--jobs J] [--rounds R]

#include <axds/jobs/processing_tracker.hpp>

#include <fmt/format.h>

#include "bench_support.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::bench::clock_type;
using axds::bench::seconds_since;

namespace {

struct settings {
    fs::path dir = fs::current_path();
    int transitions = 1000;
    int processes = 4;
    int jobs = 100;
    int rounds = 5;
};

std::vector<std::string> make_tracker(const fs::path& file, int count) {
    std::vector<axds::job_key> jobs;
    for (int i = 0; i < count; ++i) {
        jobs.emplace_back("suite2p_processing", fmt::format("plane_{}", i));
    }
    axds::processing_tracker tracker(file);
    return tracker.initialize_jobs(jobs);
}

/// `count` transitions alternating start and complete over the jobs.
void run_transitions(const fs::path& file, const std::vector<std::string>& ids, int count, int offset) {
    axds::processing_tracker tracker(file, {.lock_timeout = std::chrono::minutes(5)});
    for (int i = 0; i < count; ++i) {
        const std::string& id = ids[static_cast<std::size_t>((i / 2 + offset) % static_cast<int>(ids.size()))];
        if (i % 2 == 0) {
            tracker.start_job(id, "bench");
        } else {
            tracker.complete_job(id);
        }
    }
}

/// The baseline: what every transition must do at least, without YAML.
double bare_loop(const fs::path& file, int count) {
    const std::string lock_path = file.string() + ".lock";
    const std::string temp = file.string() + ".tmp";
    std::vector<char> buffer(fs::file_size(file) + 65536);  // one read takes the whole file
    const auto start = clock_type::now();
    for (int i = 0; i < count; ++i) {
        const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        ::flock(lock, LOCK_EX);
        const int in = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        const ssize_t n = ::read(in, buffer.data(), buffer.size());
        ::close(in);
        const int out = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (n <= 0 || ::write(out, buffer.data(), static_cast<std::size_t>(n)) != n || ::fsync(out) != 0) {
            std::perror("baseline");
            std::exit(1);
        }
        ::close(out);
        ::rename(temp.c_str(), file.c_str());
        ::flock(lock, LOCK_UN);
        ::close(lock);
    }
    return seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    const bool parsed = axds::bench::parse_flags(argc, argv,
                                                 {{"--dir", &s.dir},
                                                  {"--transitions", &s.transitions},
                                                  {"--processes", &s.processes},
                                                  {"--jobs", &s.jobs},
                                                  {"--rounds", &s.rounds}});
    if (!parsed) {
        return 2;
    }
    s.dir /= fmt::format("axds-bench-{}", ::getpid());
    fs::create_directories(s.dir);
    const fs::path file = s.dir / "tracker.yaml";
    const std::vector<std::string> ids = make_tracker(file, s.jobs);
    run_transitions(file, ids, 2 * static_cast<int>(ids.size()), 0);  // every job has times and an executor
    const auto size = fs::file_size(file);
    const fs::path copy = s.dir / "baseline.yaml";
    fs::copy_file(file, copy);

    std::vector<double> ours_runs;
    std::vector<double> bare_runs;
    for (int round = 0; round < s.rounds; ++round) {
        auto t = clock_type::now();
        run_transitions(file, ids, s.transitions, round * s.transitions / 2);
        ours_runs.push_back(seconds_since(t) / s.transitions * 1e6);
        bare_runs.push_back(bare_loop(copy, s.transitions) / s.transitions * 1e6);
    }
    const double per_ours = axds::bench::median_after_warmup(ours_runs);
    const double per_bare = axds::bench::median_after_warmup(bare_runs);
    fmt::print("tracker benchmarks in {} ({}-job tracker, {} bytes, fsync on every write)\n", s.dir.string(),
               ids.size(), size);
    fmt::print(
        "single process: {} transitions per round, {} rounds: median {:.1f} us per transition ({:.0f}/s), "
        "{:.3f} us per job\n",
        s.transitions, s.rounds, per_ours, 1e6 / per_ours, per_ours / static_cast<double>(ids.size()));
    fmt::print("  baseline flock+read+write temp+fsync+rename+unlock: median {:.1f} us; axds takes {:.2f}x the time\n",
               per_bare, per_ours / per_bare);

    auto start = clock_type::now();
    std::vector<pid_t> children;
    for (int p = 0; p < s.processes; ++p) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            run_transitions(file, ids, s.transitions, p * 25);
            ::_exit(0);
        }
        children.push_back(pid);
    }
    bool ok = true;
    for (const pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    const double contended = seconds_since(start);
    const int total = s.transitions * s.processes;
    fmt::print("{} processes contending: {} transitions in {:.3f} s = {:.0f} transitions/s{}\n", s.processes, total,
               contended, total / contended, ok ? "" : " (A CHILD FAILED)");
    fs::remove_all(s.dir);
    return ok ? 0 : 1;
}
