// `axds jobs ...`: running a processing tracker's jobs locally (worker processes) or as a SLURM job array, the
// scheduler's view of them, and the stale-job rule. See cmd_jobs.hpp for the commands.

#include "cli/cmd_jobs.hpp"
#include "cli/command.hpp"
#include "cli/json_writer.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/jobs/job_runner.hpp>
#include <axds/jobs/processing_tracker.hpp>

#include "jobs/subprocess.hpp"
#include "sys/error.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <fmt/format.h>

#include <axds/core/workers.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

constexpr std::string_view usage_text = R"(usage:
  axds jobs run TRACKER [--workers N] [--json] [-q] -- CMD [ARGS...]
      Run every SCHEDULED job of TRACKER on this machine: N worker processes (default: the number of cores; at
      most 1024, and never more than the SCHEDULED jobs) each claim a job, run CMD for it and record SUCCEEDED or
      FAILED, until no job is left. CMD gets AXDS_JOB_ID, AXDS_JOB_NAME, AXDS_JOB_SPECIFIER, AXDS_TRACKER and
      AXDS_EXECUTOR_ID in its environment, and {job_id}, {job_name}, {specifier}, {tracker} and {executor_id} in CMD
      and ARGS are replaced by the job's values; any other brace must be doubled ({{ for {, }} for }).
  axds jobs submit TRACKER --array-size K [--workers-per-task N] [--json] [SBATCH OPTIONS...] -- CMD [ARGS...]
      Submit one SLURM job array of K tasks (sbatch --array=0-K-1), each running `axds jobs run TRACKER --workers N
      -- CMD ARGS...`; prints the array's job ID. Options this command does not know go to sbatch (use the
      --option=value form). TRACKER, this axds binary and CMD must be on a filesystem every node sees.
  axds jobs status TRACKER [--json] [--local-pids]
      The tracker's counts, every RUNNING job with what its executor's scheduler (or /proc) says about it, and the
      arrays submitted for this tracker as squeue sees them.
  axds jobs reclaim TRACKER [--json] [--local-pids] [--gone EXECUTOR_ID]...
      Make the RUNNING jobs of executors that are gone SCHEDULED again (SLURM jobs that ended, dead processes of this
      host); jobs whose executor may be alive are never touched. --local-pids: 'pid:N' IDs without a host are
      processes of this host. --gone ID: you checked that this executor is gone (any scheduler).
  Failed jobs: `axds tracker retry TRACKER`, then run or submit again.
)";

/// A worker's exit status when it recorded FAILED jobs (the runner itself worked).
constexpr int failed_jobs_exit = 3;

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct jobs_args {
    std::string command;  // run, submit, status, reclaim
    fs::path tracker;
    std::size_t workers = 0;
    std::size_t array_size = 0;
    std::size_t workers_per_task = 1;
    bool json = false;
    bool quiet = false;
    axds::reclaim_options reclaim;
    std::vector<std::string> sbatch_options;
    std::vector<std::string> cmd;
};

/// The most worker processes one `jobs run` starts (--workers, --workers-per-task): each is a process with its own
/// tracker reads, and far more than the cores only contend for the tracker lock.
constexpr std::size_t max_workers = 1024;

std::size_t parse_count(const std::string& text, std::string_view option, std::size_t minimum,
                        std::size_t maximum = 100'000) {
    std::size_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < minimum || value > maximum) {
        throw usage_error(
            fmt::format("{} expects a whole number from {} to {}, not '{}'", option, minimum, maximum, text));
    }
    return value;
}

/// One option of `args` at `i` (advances i past a separate value); false when it is not a known option.
bool parse_option(jobs_args& args, const std::vector<std::string>& words, std::size_t& i) {
    const std::string& word = words[i];
    const auto value = [&](std::string_view option) -> std::string {
        if (word.size() > option.size() && word[option.size()] == '=') {
            return word.substr(option.size() + 1);
        }
        if (i + 1 >= words.size()) {
            throw usage_error(fmt::format("{} needs a value", option));
        }
        return words[++i];
    };
    const auto is = [&](std::string_view option) {
        return word == option ||
               (word.starts_with(option) && word.size() > option.size() && word[option.size()] == '=');
    };
    if (word == "--json") {
        args.json = true;
    } else if (word == "-q" || word == "--quiet") {
        args.quiet = true;
    } else if (word == "--local-pids" && (args.command == "status" || args.command == "reclaim")) {
        args.reclaim.bare_pids_are_local = true;
    } else if (is("--gone") && args.command == "reclaim") {
        args.reclaim.gone_executors.push_back(value("--gone"));
    } else if (is("--workers") && args.command == "run") {
        args.workers = parse_count(value("--workers"), "--workers", 1, max_workers);
    } else if (is("--array-size") && args.command == "submit") {
        args.array_size = parse_count(value("--array-size"), "--array-size", 1);
    } else if (is("--workers-per-task") && args.command == "submit") {
        args.workers_per_task = parse_count(value("--workers-per-task"), "--workers-per-task", 1, max_workers);
    } else {
        return false;
    }
    return true;
}

jobs_args parse_jobs(const std::vector<std::string>& words) {
    jobs_args args;
    if (words.empty()) {
        throw usage_error("axds jobs needs a command: run, submit, status or reclaim");
    }
    if (words[0] == "--help" || words[0] == "-h") {
        throw usage_error("");
    }
    args.command = words[0];
    if (args.command != "run" && args.command != "submit" && args.command != "status" && args.command != "reclaim") {
        throw usage_error(fmt::format("'{}' is not a jobs command; expected run, submit, status or reclaim", words[0]));
    }
    bool separator = false;
    for (std::size_t i = 1; i < words.size(); ++i) {
        if (words[i] == "--") {
            args.cmd.assign(words.begin() + static_cast<std::ptrdiff_t>(i) + 1, words.end());
            separator = true;
            break;
        }
        if (words[i] == "--help" || words[i] == "-h") {
            throw usage_error("");
        }
        if (parse_option(args, words, i)) {
            continue;
        }
        if (args.tracker.empty() && !words[i].starts_with("-")) {
            args.tracker = words[i];
        } else if (args.command == "submit" && words[i].starts_with("-")) {
            args.sbatch_options.push_back(words[i]);
        } else {
            throw usage_error(fmt::format("unexpected argument '{}' for axds jobs {}", words[i], args.command));
        }
    }
    if (args.tracker.empty()) {
        throw usage_error(fmt::format("axds jobs {} needs the TRACKER file", args.command));
    }
    const bool needs_cmd = args.command == "run" || args.command == "submit";
    if (needs_cmd && (!separator || args.cmd.empty())) {
        throw usage_error(fmt::format("axds jobs {} needs -- CMD [ARGS...] after its options", args.command));
    }
    if (needs_cmd) {
        try {
            axds::check_job_template(args.cmd);  // a misspelled placeholder is refused before anything starts
        } catch (const axds::value_error& e) {
            throw usage_error(e.what());
        }
    }
    if (!needs_cmd && separator) {
        throw usage_error(fmt::format("axds jobs {} takes no command", args.command));
    }
    if (args.command == "submit" && args.array_size == 0) {
        throw usage_error("axds jobs submit needs --array-size K");
    }
    for (const auto& option : args.sbatch_options) {
        if (option.starts_with("--array") || option == "-a" || option.starts_with("--wrap")) {
            throw usage_error(fmt::format("'{}' is set by axds jobs submit itself", option));
        }
    }
    return args;
}

/// The tracker must exist and parse (a corrupt file is reported by name before any worker starts).
axds::processing_tracker open_jobs_tracker(const fs::path& path) {
    if (!axds::cli::check_tracker_file(path, false, false)) {
        throw axds::file_not_found_error(
            std::make_error_code(std::errc::no_such_file_or_directory),
            fmt::format("The processing tracker file '{}' does not exist.", path.string()));
    }
    axds::processing_tracker tracker(fs::absolute(path).lexically_normal());
    (void)tracker.snapshot();
    return tracker;
}

// ---------------------------------------------------------------------------------------------------------------
// jobs run

/// One worker process: the library runner with one worker, cancelled (its job put back) on SIGINT/SIGTERM/SIGHUP.
int worker_process(const fs::path& tracker, const std::vector<std::string>& cmd) {
    asio::io_context io;
    asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
    sigset_t mask;
    ::sigemptyset(&mask);
    ::sigaddset(&mask, SIGINT);
    ::sigaddset(&mask, SIGTERM);
    ::sigaddset(&mask, SIGHUP);
    ::sigprocmask(SIG_UNBLOCK, &mask, nullptr);  // the parent blocks them (it waits for them with sigtimedwait)
    asio::cancellation_signal cancel;
    signals.async_wait([&](const std::error_code& ec, int) {
        if (!ec) {
            cancel.emit(asio::cancellation_type::terminal);
        }
    });
    std::exception_ptr error;
    std::size_t failed = 0;
    asio::co_spawn(io, axds::async_run_tracker_jobs(tracker, axds::command_job_handler(cmd)),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, axds::job_runner_report r) {
                       error = std::move(e);
                       failed = r.failed;
                       signals.cancel();
                   }));
    io.run();
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::system_error& e) {
            if (e.code() == asio::error::operation_aborted) {
                return 130;
            }
            std::fprintf(stderr, "axds: worker %d: %s\n", static_cast<int>(::getpid()), e.what());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "axds: worker %d: %s\n", static_cast<int>(::getpid()), e.what());
        }
        return 1;
    }
    return failed > 0 ? failed_jobs_exit : 0;
}

struct run_round {
    std::size_t started = 0;          // worker processes forked (fewer than asked at a process limit)
    std::size_t workers_failed = 0;   // exited 1: the runner itself failed (a tracker error)
    std::size_t jobs_failed = 0;      // workers that recorded at least one FAILED job
    std::vector<std::string> killed;  // "worker 123 was killed by signal 9"
    bool interrupted = false;
};

void draw_progress(bool enabled, axds::processing_tracker& tracker) {
    if (!enabled) {
        return;
    }
    const auto summary = tracker.summarize().summary;
    std::fprintf(stderr, "\rjobs: %zu/%zu done (%zu failed), %zu running, %zu scheduled\x1b[K",
                 summary.succeeded + summary.failed, summary.total, summary.failed, summary.running, summary.scheduled);
}

/// Forks `workers` worker processes and waits for them (SIGINT/SIGTERM/SIGHUP: each worker gets SIGTERM).
run_round run_workers(const jobs_args& args, std::size_t workers, axds::processing_tracker& tracker, bool progress) {
    std::fflush(stdout);
    std::fflush(stderr);
    std::vector<pid_t> children;
    for (std::size_t i = 0; i < workers; ++i) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (args.json) {  // stdout holds only the run's JSON result: the commands' output goes to stderr
                ::dup2(STDERR_FILENO, STDOUT_FILENO);
            }
            std::_Exit(worker_process(tracker.file_path(), args.cmd));
        }
        if (pid < 0) {
            std::fprintf(stderr, "axds: could not start worker %zu: %s\n", i, axds::sys::errno_message(errno).c_str());
            break;
        }
        children.push_back(pid);
    }
    run_round round;
    round.started = children.size();
    sigset_t waited;
    ::sigemptyset(&waited);
    ::sigaddset(&waited, SIGINT);
    ::sigaddset(&waited, SIGTERM);
    ::sigaddset(&waited, SIGHUP);  // a closed terminal or a dropped ssh session stops the run the same way
    const timespec tick{0, 200'000'000};
    while (!children.empty()) {
        int status = 0;
        const pid_t done = ::waitpid(-1, &status, WNOHANG);
        if (done > 0) {
            std::erase(children, done);
            if (WIFSIGNALED(status)) {
                round.killed.push_back(fmt::format("worker {} {}", done, axds::detail::describe_wait_status(status)));
            } else if (WEXITSTATUS(status) == 130) {
                round.interrupted = true;
            } else if (WEXITSTATUS(status) == failed_jobs_exit) {
                ++round.jobs_failed;
            } else if (WEXITSTATUS(status) != 0) {
                ++round.workers_failed;
            }
            continue;
        }
        draw_progress(progress, tracker);
        const int signal = ::sigtimedwait(&waited, nullptr, &tick);
        if (signal == SIGINT || signal == SIGTERM || signal == SIGHUP) {
            round.interrupted = true;
            for (const pid_t child : children) {
                ::kill(child, SIGTERM);
            }
        }
    }
    return round;
}

/// What the rounds of one `jobs run` did.
struct run_totals {
    std::vector<std::string> killed;
    std::vector<axds::stale_job> reclaimed;
    std::size_t workers_failed = 0;
    std::size_t jobs_failed = 0;
    std::size_t started_workers = 0;
    bool none_started = false;  // a round wanted workers and could fork none: its jobs stayed SCHEDULED
    bool interrupted = false;
};

/// Rounds of workers: a worker killed mid-job leaves its job RUNNING under its pid; the pid rule reclaims it (the
/// process is gone) and another round runs it. At most 3 rounds: a job that kills its worker every time stays for the
/// user.
run_totals run_rounds(jobs_args& args, axds::processing_tracker& tracker, bool progress) {
    run_totals totals;
    for (int attempt = 0; attempt < 3 && !totals.interrupted; ++attempt) {
        // Never more workers than jobs to claim: a worker beyond them would only fork, read the tracker and exit.
        const std::size_t workers = std::min(args.workers, tracker.summarize().summary.scheduled);
        const run_round round = run_workers(args, workers, tracker, progress);
        totals.started_workers = std::max(totals.started_workers, round.started);
        if (workers > 0 && round.started == 0) {
            totals.none_started = true;
            break;
        }
        totals.killed.insert(totals.killed.end(), round.killed.begin(), round.killed.end());
        totals.workers_failed += round.workers_failed;
        totals.jobs_failed += round.jobs_failed;
        totals.interrupted = round.interrupted;
        if (round.killed.empty() || totals.interrupted) {
            break;
        }
        const auto report = axds::reclaim_stale_jobs(tracker);
        totals.reclaimed.insert(totals.reclaimed.end(), report.reclaimed.begin(), report.reclaimed.end());
        if (report.reclaimed.empty()) {
            break;
        }
    }
    return totals;
}

/// The run's summary line, or its JSON object with --json.
void print_run_summary(const jobs_args& args, axds::processing_tracker& tracker, const run_totals& totals,
                       double seconds) {
    const auto summary = tracker.summarize();
    const auto& c = summary.summary;
    if (args.json) {
        axds::cli::json_writer json;
        json.begin_object()
            .field("tracker", tracker.file_path())
            .field("workers", totals.started_workers)
            .field("total", c.total)
            .field("succeeded", c.succeeded)
            .field("failed", c.failed)
            .field("running", c.running)
            .field("scheduled", c.scheduled)
            .field("workers_killed", totals.killed.size())
            .key("reclaimed")
            .begin_array();
        for (const auto& job : totals.reclaimed) {
            json.value(job.job_id);
        }
        json.end_array().field("interrupted", totals.interrupted).key("seconds").fixed(seconds, 3).end_object();
        fmt::print("{}\n", json.str());
    } else if (!args.quiet) {
        fmt::print("{} jobs: {} succeeded, {} failed, {} running, {} scheduled ({} workers, {:.1f} s){}\n", c.total,
                   c.succeeded, c.failed, c.running, c.scheduled, totals.started_workers, seconds,
                   c.failed > 0 ? "; see `axds tracker show` for the errors, `axds tracker retry` to rerun" : "");
    } else if (c.failed > 0) {  // --quiet drops the summary, not the news that jobs failed (the exit status is 1)
        std::fprintf(stderr, "axds: %zu of %zu jobs failed; see `axds tracker show %s` for the errors\n",
                     static_cast<std::size_t>(c.failed), static_cast<std::size_t>(c.total),
                     tracker.file_path().c_str());
    }
}

/// True (and says which on stderr) when a reclaimed job is still unfinished: it killed its worker in every round.
bool reclaimed_unfinished(axds::processing_tracker& tracker, const std::vector<axds::stale_job>& reclaimed) {
    bool unfinished = false;
    std::set<std::string> checked;
    for (const auto& job : reclaimed) {
        if (!checked.insert(job.job_id).second) {
            continue;
        }
        const auto status = tracker.get_job_info(job.job_id).status;
        if (status == axds::processing_status::scheduled || status == axds::processing_status::running) {
            std::fprintf(stderr, "axds: job %s is unfinished: its worker died in every round (see above)\n",
                         job.job_id.c_str());
            unfinished = true;
        }
    }
    return unfinished;
}

int jobs_run(jobs_args& args) {
    auto tracker = open_jobs_tracker(args.tracker);
    if (args.workers == 0) {
        args.workers = std::min(max_workers, static_cast<std::size_t>(std::max(1, axds::logical_cpu_count())));
    }
    (void)axds::command_job_handler(args.cmd);  // validates the command before anything starts
    const bool progress = !args.quiet && !args.json && ::isatty(STDERR_FILENO) != 0;
    const auto started = std::chrono::steady_clock::now();
    sigset_t mask;
    ::sigemptyset(&mask);
    ::sigaddset(&mask, SIGINT);
    ::sigaddset(&mask, SIGTERM);
    ::sigaddset(&mask, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    const run_totals totals = run_rounds(args, tracker, progress);
    if (progress) {
        draw_progress(true, tracker);
        std::fputc('\n', stderr);
    }
    for (const auto& line : totals.killed) {
        std::fprintf(stderr, "axds: %s\n", line.c_str());
    }
    for (const auto& job : totals.reclaimed) {
        std::fprintf(stderr, "axds: reclaimed job %s (%s)\n", axds::cli::printable(job.job_id).c_str(),
                     axds::cli::printable(job.verdict.reason).c_str());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    print_run_summary(args, tracker, totals, seconds);
    // 1 when a job of this run failed, a worker failed, a killed worker's job could not be reclaimed, or a reclaimed
    // job is still unfinished (it killed its worker in every round); jobs that other runners (other hosts, other array
    // tasks) hold or failed do not count.
    const bool unreclaimed = totals.killed.size() > totals.reclaimed.size();
    const bool unfinished = reclaimed_unfinished(tracker, totals.reclaimed);
    if (totals.interrupted) {
        return 130;
    }
    if (totals.none_started) {  // a batch task must not report success having run nothing
        std::fprintf(stderr, "axds: no worker process could be started (see above): no job was run\n");
    }
    return (totals.workers_failed > 0 || totals.jobs_failed > 0 || unreclaimed || unfinished || totals.none_started)
               ? 1
               : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// jobs submit / status / reclaim

std::string shell_quote(std::string_view word) {
    std::string out = "'";
    for (const char c : word) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

fs::path arrays_file(const axds::processing_tracker& tracker) {
    fs::path path = tracker.file_path();
    path += ".slurm-arrays";
    return path;
}

int jobs_submit(const jobs_args& args) {
    auto tracker = open_jobs_tracker(args.tracker);
    const fs::path self = fs::read_symlink("/proc/self/exe");
    std::string script = fmt::format("exec {} jobs run {} --workers {} --quiet --", shell_quote(self.string()),
                                     shell_quote(tracker.file_path().string()), args.workers_per_task);
    for (const auto& word : args.cmd) {
        script += " " + shell_quote(word);
    }
    std::vector<std::string> sbatch{"sbatch", "--parsable", fmt::format("--array=0-{}", args.array_size - 1),
                                    "--job-name=axds-jobs", fmt::format("--cpus-per-task={}", args.workers_per_task)};
    sbatch.insert(sbatch.end(), args.sbatch_options.begin(), args.sbatch_options.end());
    sbatch.push_back("--wrap=" + script);
    const auto result = axds::detail::run_capture(sbatch, false);
    if (!result.ran) {
        throw axds::child_process_error("sbatch was not found on PATH: axds jobs submit needs a SLURM client.");
    }
    std::string id = result.output.substr(0, result.output.find_first_of(";\n"));
    if (!WIFEXITED(result.status) || WEXITSTATUS(result.status) != 0 || id.empty()) {
        throw axds::child_process_error(fmt::format("sbatch {} (the array was not submitted): {}",
                                                    axds::detail::describe_wait_status(result.status), result.output));
    }
    std::ofstream(arrays_file(tracker), std::ios::app) << id << '\n';
    if (args.json) {
        axds::cli::json_writer json;
        json.begin_object()
            .field("array_id", id)
            .field("tasks", args.array_size)
            .field("tracker", tracker.file_path())
            .end_object();
        fmt::print("{}\n", json.str());
    } else {
        fmt::print("{}\n", id);
    }
    return 0;
}

std::string_view liveness_name(axds::executor_liveness state) {
    switch (state) {
        case axds::executor_liveness::alive: return "alive";
        case axds::executor_liveness::gone: return "gone";
        case axds::executor_liveness::unknown: return "unknown";
    }
    return "unknown";
}

/// squeue's view of the arrays submitted for this tracker: "<task> <state>" lines (empty when none or no squeue).
std::vector<std::pair<std::string, std::string>> scheduler_view(const axds::processing_tracker& tracker,
                                                                std::string& note) {
    std::ifstream in(arrays_file(tracker));
    std::vector<std::string> arrays;
    for (std::string id; std::getline(in, id);) {
        if (!id.empty()) {
            arrays.push_back(id);
        }
    }
    std::vector<std::pair<std::string, std::string>> tasks;
    for (const auto& id : arrays) {
        const auto result = axds::detail::run_capture({"squeue", "-h", "-t", "all", "-j", id, "-o", "%i %T"}, true);
        if (!result.ran || !WIFEXITED(result.status) || WEXITSTATUS(result.status) != 0) {
            note += fmt::format("array {}: squeue: {}; ", id, result.ran ? result.output : "not installed");
            continue;
        }
        std::istringstream lines(result.output);
        std::string task;
        std::string state;
        while (lines >> task >> state) {
            tasks.emplace_back(task, state);
        }
    }
    return tasks;
}

/// `key`: an array of {job_id, executor_id, executor, reason} objects.
void stale_json(axds::cli::json_writer& json, std::string_view key, const std::vector<axds::stale_job>& jobs) {
    json.key(key).begin_array();
    for (const auto& job : jobs) {
        json.begin_object()
            .field("job_id", job.job_id)
            .field("executor_id", job.executor_id)
            .field("executor", liveness_name(job.verdict.state))
            .field("reason", job.verdict.reason)
            .end_object();
    }
    json.end_array();
}

int jobs_status(const jobs_args& args) {
    auto tracker = open_jobs_tracker(args.tracker);
    const auto summary = tracker.summarize();
    const auto running = axds::probe_running_jobs(tracker, args.reclaim);
    std::string note;
    const auto tasks = scheduler_view(tracker, note);
    if (args.json) {
        axds::cli::json_writer json;
        json.begin_object();
        axds::cli::tracker_counts_json(json, summary);
        stale_json(json, "running", running);
        json.key("scheduler").begin_array();
        for (const auto& [task, state] : tasks) {
            json.begin_object().field("task", task).field("state", state).end_object();
        }
        json.end_array().end_object();
        fmt::print("{}\n", json.str());
        return 0;
    }
    fmt::print("{}\n", axds::cli::tracker_counts_line(summary));
    for (const auto& job : running) {
        fmt::print(
            "  running {}: executor {} ({})\n", axds::cli::printable(job.job_id),
            job.verdict.state == axds::executor_liveness::gone ? "GONE, reclaimable" : liveness_name(job.verdict.state),
            axds::cli::printable(job.verdict.reason));
    }
    for (const auto& [task, state] : tasks) {
        fmt::print("  slurm {}: {}\n", task, state);
    }
    if (!note.empty()) {
        fmt::print("  {}\n", note);
    }
    return 0;
}

int jobs_reclaim(const jobs_args& args) {
    auto tracker = open_jobs_tracker(args.tracker);
    const auto report = axds::reclaim_stale_jobs(tracker, args.reclaim);
    if (args.json) {
        axds::cli::json_writer json;
        json.begin_object();
        stale_json(json, "reclaimed", report.reclaimed);
        stale_json(json, "kept", report.kept);
        json.end_object();
        fmt::print("{}\n", json.str());
        return 0;
    }
    for (const auto& job : report.reclaimed) {
        fmt::print("reclaimed {}: {}\n", axds::cli::printable(job.job_id), axds::cli::printable(job.verdict.reason));
    }
    for (const auto& job : report.kept) {
        fmt::print("kept {} ({}): {}\n", axds::cli::printable(job.job_id), liveness_name(job.verdict.state),
                   axds::cli::printable(job.verdict.reason));
    }
    fmt::print("{} jobs reclaimed, {} running jobs kept\n", report.reclaimed.size(), report.kept.size());
    return 0;
}

}  // namespace

int axds::cli::run_jobs(int argc, char** argv, const run_options& options) {
    const std::vector<std::string> words(argv + 1, argv + argc);
    jobs_args args;
    try {
        args = parse_jobs(words);
    } catch (const usage_error& e) {
        if (std::string_view(e.what()).empty()) {
            *options.out << usage_text;
            return 0;
        }
        *options.err << "axds jobs: " << e.what() << "\n" << usage_text;
        return 2;
    }
    if (options.parse_only) {
        return 0;
    }
    try {
        if (args.command == "run") {
            return jobs_run(args);
        }
        if (args.command == "submit") {
            return jobs_submit(args);
        }
        if (args.command == "status") {
            return jobs_status(args);
        }
        return jobs_reclaim(args);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "axds: %s\n", e.what());
        return 1;
    }
}
