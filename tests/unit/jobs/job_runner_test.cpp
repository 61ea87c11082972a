#include <axds/jobs/job_runner.hpp>

#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <axds/log/log_package.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::executor_liveness;
using axds::job_context;
using axds::job_state;
using axds::processing_status;
using axds::processing_tracker;
using axds::test::message_contains;
using axds::test::temp_dir;
using Catch::Matchers::Contains;

namespace {

std::vector<axds::job_key> numbered_jobs(std::string_view name, int count) {
    std::vector<axds::job_key> jobs;
    for (int i = 0; i < count; ++i) {
        jobs.emplace_back(std::string(name), std::to_string(i));
    }
    return jobs;
}

std::string host_name() {
    std::array<char, 256> name{};
    ::gethostname(name.data(), name.size() - 1);
    return name.data();
}

/// Sets one job RUNNING with this executor and start time (as a worker that vanished would have left it).
void set_running(processing_tracker& tracker, const std::string& job_id, std::string executor, std::uint64_t started) {
    tracker.update_jobs([&](axds::job_registry& jobs) {
        for (auto& [id, job] : jobs) {
            if (id == job_id) {
                job.status = processing_status::running;
                job.executor_id = executor;
                job.started_at = started;
            }
        }
    });
}

/// A pid that belonged to a process that has exited (and was reaped).
pid_t dead_pid() {
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
    return pid;
}

}  // namespace

TEST_CASE("claim_next_job hands each job to exactly one of several concurrent claimers", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs(numbered_jobs("claim", 60));
    std::array<std::vector<std::string>, 4> claimed;
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < claimed.size(); ++t) {
        threads.emplace_back([&, t] {
            processing_tracker mine(file);
            while (auto job = mine.claim_next_job(fmt::format("test:{}", t))) {
                claimed[t].push_back(job->first);
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    std::set<std::string> all;
    std::size_t total = 0;
    for (std::size_t t = 0; t < claimed.size(); ++t) {
        total += claimed[t].size();
        for (const auto& id : claimed[t]) {
            all.insert(id);
            CHECK(processing_tracker(file).get_job_info(id).executor_id == fmt::format("test:{}", t));
        }
    }
    CHECK(total == 60);
    CHECK(all.size() == 60);
    CHECK(processing_tracker(file).get_jobs_by_status(processing_status::running).size() == 60);
    CHECK_FALSE(processing_tracker(file).claim_next_job("late").has_value());
}

TEST_CASE("the job runner runs every job once on several workers and records failures", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    auto jobs = numbered_jobs("ok", 40);
    jobs.emplace_back("bad", "x");
    processing_tracker(file).initialize_jobs(jobs);
    std::mutex mutex;
    std::map<std::string, int> runs;
    std::size_t done_callbacks = 0;
    axds::job_handler handler = [&](job_context job) -> asio::awaitable<void> {
        {
            const std::lock_guard lock(mutex);
            ++runs[job.job_id];
        }
        asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
        co_await timer.async_wait(asio::use_awaitable);
        if (job.job_name == "bad") {
            throw axds::value_error("bad input in " + job.specifier);
        }
    };
    axds::job_runner_options options{.workers = 4, .executor_id = "test:runner"};
    options.on_job_done = [&](const axds::job_outcome&) {
        ++done_callbacks;
    };
    asio::io_context io;
    std::exception_ptr error;
    std::optional<axds::job_runner_report> report;
    asio::co_spawn(io, axds::async_run_tracker_jobs(file, handler, options),
                   [&](std::exception_ptr e, axds::job_runner_report r) {
                       error = e;
                       report = std::move(r);
                   });
    // Two threads run the caller's executor: the runner keeps its workers on one strand.
    std::thread second([&] { io.run(); });
    io.run();
    second.join();
    REQUIRE_FALSE(error);
    CHECK(report->succeeded == 40);
    CHECK(report->failed == 1);
    CHECK(done_callbacks == 41);
    REQUIRE(report->failures.size() == 1);
    CHECK_THAT(report->failures[0].error, Contains("bad input in x"));
    CHECK(runs.size() == 41);
    for (const auto& [id, count] : runs) {
        CHECK(count == 1);
    }
    processing_tracker tracker(file);
    const auto summary = tracker.summarize();
    CHECK(summary.summary.succeeded == 40);
    CHECK(summary.summary.failed == 1);
    const auto bad = tracker.get_job_info(processing_tracker::generate_job_id("bad", "x"));
    CHECK(bad.error_message == "bad input in x");
    CHECK(bad.executor_id == "test:runner");
}

TEST_CASE("a command job gets the job in its environment and arguments and fails with its exit status and stderr",
          "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"good", "s1"}, {"bad", "s2"}});
    const std::string script = fmt::format(
        "printf '%s %s %s %s\\n' \"$AXDS_JOB_ID\" \"$AXDS_JOB_NAME\" \"$AXDS_JOB_SPECIFIER\" \"$AXDS_TRACKER\" > "
        "{}/$1.out; [ \"$AXDS_JOB_NAME\" = good ] && exit 0; for i in 1 2 3 4 5 6 7 8 9; do echo filler-$i >&2; "
        "done; echo the-last-words >&2; exit 3",
        tmp.path().string());
    auto handler = axds::command_job_handler({"sh", "-c", script, "sh", "{job_name}-{specifier}"},
                                             {.stderr_tail_bytes = 40, .forward_stderr = false});
    asio::io_context io;
    const auto report = axds::test::run_async(
        io, [&] { return axds::async_run_tracker_jobs(file, handler, {.workers = 2, .executor_id = "test:cmd"}); });
    CHECK(report.succeeded == 1);
    CHECK(report.failed == 1);
    const std::string good_id = processing_tracker::generate_job_id("good", "s1");
    std::ifstream out(tmp.path() / "good-s1.out");
    std::string line;
    std::getline(out, line);
    CHECK(line == fmt::format("{} good s1 {}", good_id, file.string()));
    const auto bad = processing_tracker(file).get_job_info(processing_tracker::generate_job_id("bad", "s2"));
    REQUIRE(bad.status == processing_status::failed);
    CHECK_THAT(*bad.error_message, Contains("exited with status 3") && Contains("the-last-words") &&
                                       !Contains("filler-1") && Contains("..."));
    CHECK_THROWS_AS(axds::command_job_handler({}), axds::value_error);
}

TEST_CASE("a command that is not on PATH or dies by a signal fails its job with the reason", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"missing", ""}});
    // A program that cannot be found is refused before any job is claimed (a typo must not fail every job)...
    CHECK_THROWS_MATCHES(axds::command_job_handler({"axds-no-such-program-here"}), axds::child_process_error,
                         message_contains("'axds-no-such-program-here' was not found on PATH"));
    CHECK(processing_tracker(file).get_job_info(processing_tracker::generate_job_id("missing")).status ==
          processing_status::scheduled);
    // ...and one named by a placeholder is looked up per job: that job fails with the reason.
    processing_tracker(file).initialize_jobs({{"axds-no-such-program-here", ""}});
    asio::io_context io;
    auto missing = axds::command_job_handler({"{job_name}"}, {.forward_stderr = false});
    axds::test::run_async(io, [&] { return axds::async_run_tracker_jobs(file, missing, {.executor_id = "t"}); });
    CHECK_THAT(processing_tracker(file)
                   .get_job_info(processing_tracker::generate_job_id("axds-no-such-program-here"))
                   .error_message.value_or(""),
               Contains("not found on PATH"));
    processing_tracker(file).initialize_jobs({{"killed", ""}});
    auto killed = axds::command_job_handler({"sh", "-c", "kill -9 $$"}, {.forward_stderr = false});
    axds::test::run_async(io, [&] { return axds::async_run_tracker_jobs(file, killed, {.executor_id = "t"}); });
    CHECK_THAT(
        processing_tracker(file).get_job_info(processing_tracker::generate_job_id("killed")).error_message.value_or(""),
        Contains("killed by signal 9"));
}

TEST_CASE("a command whose stderr is not UTF-8 fails its job with a readable message and the other jobs run",
          "[jobs]") {
    // Before: the stderr tail went into the tracker as it was; invalid UTF-8 (or a tail cut inside a character) made
    // the tracker write throw, the worker died and left the job RUNNING and every other job unrun.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"accents", ""}, {"bytes", ""}, {"fine", ""}});
    const std::string script =
        "case $AXDS_JOB_NAME in "
        "accents) python3 -c 'import sys; sys.stderr.write(\"\\u00e9\" * 1500 + \"x\")'; exit 1;; "
        "bytes) printf 'a\\377b\\000c' >&2; exit 2;; "
        "esac";
    auto handler = axds::command_job_handler({"sh", "-c", script}, {.forward_stderr = false});
    asio::io_context io;
    const auto report = axds::test::run_async(
        io, [&] { return axds::async_run_tracker_jobs(file, handler, {.workers = 1, .executor_id = "t"}); });
    CHECK(report.succeeded == 1);
    CHECK(report.failed == 2);
    processing_tracker tracker(file);
    const auto accents = tracker.get_job_info(processing_tracker::generate_job_id("accents"));
    REQUIRE(accents.status == processing_status::failed);
    CHECK_THAT(accents.error_message.value_or(""), Contains("exited with status 1") && Contains("\xC3\xA9x"));
    const auto bytes = tracker.get_job_info(processing_tracker::generate_job_id("bytes"));
    REQUIRE(bytes.status == processing_status::failed);
    CHECK_THAT(bytes.error_message.value_or(""), Contains("a\xEF\xBF\xBD"
                                                          "b\xEF\xBF\xBD"
                                                          "c"));
    CHECK(tracker.get_job_info(processing_tracker::generate_job_id("fine")).status == processing_status::succeeded);
}

TEST_CASE("a program that cannot be executed fails its job with the program and the reason", "[jobs]") {
    // Before: every such job failed with "exited with status 127; stderr: axds: exec failed", no program, no reason.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    const fs::path missing = tmp.path() / "no-such-program";
    const fs::path plain = tmp.path() / "not-executable";
    const fs::path garbage = tmp.path() / "garbage";
    std::ofstream(plain) << "#!/bin/sh\nexit 0\n";
    fs::permissions(plain, fs::perms::owner_read | fs::perms::owner_write);
    std::ofstream(garbage) << "\x01\x02 not a program\n";
    fs::permissions(garbage, fs::perms::owner_all);
    fs::create_directory(tmp.path() / "dir");
    const std::map<fs::path, std::string> reasons{{missing, "No such file or directory"},
                                                  {plain, "Permission denied"},
                                                  {tmp.path() / "dir", "Permission denied"},
                                                  {garbage, "Exec format error"}};
    std::vector<axds::job_key> jobs;
    for (const auto& [path, reason] : reasons) {
        jobs.emplace_back("exec", path.string());
    }
    processing_tracker(file).initialize_jobs(jobs);
    // Named directly, a missing or non-executable path is refused before any job is claimed...
    CHECK_THROWS_MATCHES(axds::command_job_handler({missing.string()}), axds::child_process_error,
                         message_contains(missing.string()) && message_contains("No such file or directory"));
    CHECK_THROWS_MATCHES(axds::command_job_handler({plain.string()}), axds::child_process_error,
                         message_contains(plain.string()) && message_contains("Permission denied"));
    // ...and named by a placeholder, each job fails with its program and errno's text.
    auto handler = axds::command_job_handler({"{specifier}", "arg"}, {.forward_stderr = false});
    asio::io_context io;
    const auto report = axds::test::run_async(
        io, [&] { return axds::async_run_tracker_jobs(file, handler, {.executor_id = "test:exec"}); });
    CHECK(report.failed == reasons.size());
    for (const auto& [path, reason] : reasons) {
        const auto job =
            processing_tracker(file).get_job_info(processing_tracker::generate_job_id("exec", path.string()));
        CHECK(job.status == processing_status::failed);
        CHECK_THAT(job.error_message.value_or(""),
                   Contains(fmt::format("Unable to execute the command '{}': {}", path.string(), reason)));
    }
}

TEST_CASE("a command that leaves a background process holding its stderr is recorded when it exits", "[jobs]") {
    // Before: the runner read the command's stderr to end of file before waiting for its exit, so the job stayed
    // RUNNING (and its worker busy) until the background process ended, here 30 s.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"bg", "0"}, {"bg", "1"}});
    const fs::path pids = tmp.path() / "pids";
    auto handler = axds::command_job_handler(
        {"sh", "-c", fmt::format("sleep 30 & echo $! >> {}; echo last words >&2; exit $1", pids.string()), "sh",
         "{specifier}"},
        {.forward_stderr = false});
    asio::io_context io;
    asio::cancellation_signal cancel;
    asio::steady_timer watchdog(io, std::chrono::seconds(4));
    watchdog.async_wait([&](std::error_code ec) {
        if (!ec) {
            cancel.emit(asio::cancellation_type::terminal);  // still waiting: stop the runner to end the test
        }
    });
    std::exception_ptr error;
    const auto begin = std::chrono::steady_clock::now();
    asio::co_spawn(io, axds::async_run_tracker_jobs(file, handler, {.workers = 1, .executor_id = "test:bg"}),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, axds::job_runner_report) {
                       error = std::move(e);
                       watchdog.cancel();
                   }));
    io.run();
    const auto elapsed = std::chrono::steady_clock::now() - begin;
    std::ifstream lines(pids);
    for (long pid = 0; lines >> pid;) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    CHECK_FALSE(error);
    CHECK(elapsed < std::chrono::seconds(4));
    processing_tracker tracker(file);
    CHECK(tracker.get_job_info(processing_tracker::generate_job_id("bg", "1")).status == processing_status::failed);
    CHECK_THAT(tracker.get_job_info(processing_tracker::generate_job_id("bg", "1")).error_message.value_or(""),
               Contains("exited with status 1; stderr: last words"));
    CHECK(tracker.get_job_info(processing_tracker::generate_job_id("bg", "0")).status == processing_status::succeeded);
}

TEST_CASE("a command that writes a lot to stderr and exits non-zero keeps the end of its stderr", "[jobs]") {
    // The runner reads stderr while it waits for the exit (a full pipe would block the command forever) and reads
    // what is left once the command has exited: the last words are in the job's error message.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"loud", ""}});
    auto handler = axds::command_job_handler(
        {"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo >&2; echo the-last-words >&2; exit 5"},
        {.stderr_tail_bytes = 100, .forward_stderr = false});
    asio::io_context io;
    const auto report =
        axds::test::run_async(io, [&] { return axds::async_run_tracker_jobs(file, handler, {.executor_id = "t"}); });
    CHECK(report.failed == 1);
    const auto job = processing_tracker(file).get_job_info(processing_tracker::generate_job_id("loud"));
    CHECK_THAT(job.error_message.value_or(""), Contains("exited with status 5") && Contains("xxx\nthe-last-words"));
}

TEST_CASE("a tracker reached through a symbolic link is its target: one file and one lock for both names", "[jobs]") {
    // Before: the link was replaced by a regular file on the first write and each name had its own .lock, so two
    // runners given the two names ran every job twice.
    const temp_dir tmp;
    fs::create_directory(tmp.path() / "real");
    const fs::path real = tmp.path() / "real" / "tracker.yaml";
    const fs::path link = tmp.path() / "link.yaml";
    processing_tracker(real).initialize_jobs({{"a", ""}, {"b", ""}});
    fs::create_symlink(real, link);
    processing_tracker through_link(link);
    CHECK(through_link.file_path() == fs::canonical(real));
    const std::string a = processing_tracker::generate_job_id("a");
    through_link.start_job(a, "test:link");
    CHECK(fs::is_symlink(link));
    CHECK(processing_tracker(real).get_job_info(a).status == processing_status::running);
    CHECK(!fs::exists(tmp.path() / "link.yaml.lock"));
}

// Found by a hostile-user run: `axds tracker reset --create LINK` replaced a link to a tracker not yet created with a
// regular file, so workers given the link and workers given the real path used two different trackers.
TEST_CASE("a tracker created through a link to a file that does not exist yet is created at the link's target",
          "[jobs]") {
    const temp_dir tmp;
    fs::create_directory(tmp.path() / "shared");
    const fs::path link = tmp.path() / "t.yaml";
    fs::create_symlink("shared/tracker.yaml", link);  // relative, dangling until the tracker exists
    processing_tracker through_link(link);
    CHECK(through_link.file_path() == fs::weakly_canonical(tmp.path() / "shared" / "tracker.yaml"));
    through_link.initialize_jobs({{"a", ""}});
    CHECK(fs::is_symlink(link));
    CHECK(fs::is_regular_file(tmp.path() / "shared" / "tracker.yaml"));
    CHECK(processing_tracker(tmp.path() / "shared" / "tracker.yaml")
              .get_job_info(processing_tracker::generate_job_id("a"))
              .status == processing_status::scheduled);
}

TEST_CASE("a finished job waits for a busy tracker lock instead of losing its result", "[jobs]") {
    // Before: when the lock stayed busy past lock_timeout while the runner recorded a finished job, the runner failed
    // and the job stayed RUNNING under a live executor (never reclaimed) although it had run.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"held", ""}});
    std::thread releaser;
    const int lock_fd = ::open((file.string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(lock_fd >= 0);
    axds::job_handler handler = [&](axds::job_context) -> asio::awaitable<void> {
        REQUIRE(::flock(lock_fd, LOCK_EX) == 0);  // another writer takes the lock for 600 ms as the job ends
        releaser = std::thread([lock_fd] {
            std::this_thread::sleep_for(std::chrono::milliseconds(600));
            ::flock(lock_fd, LOCK_UN);
        });
        co_return;
    };
    asio::io_context io;
    axds::job_runner_report report;
    std::string error;
    try {
        report = axds::test::run_async(io, [&] {
            return axds::async_run_tracker_jobs(
                file, handler, {.executor_id = "test:busy", .lock_timeout = std::chrono::milliseconds(100)});
        });
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (releaser.joinable()) {
        releaser.join();
    }
    ::close(lock_fd);
    CHECK(error.empty());
    CHECK(report.succeeded == 1);
    CHECK(processing_tracker(file).get_job_info(processing_tracker::generate_job_id("held")).status ==
          processing_status::succeeded);
}

TEST_CASE("a cancelled runner puts its job in progress back to SCHEDULED and kills the command", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"long", ""}});
    const fs::path started = tmp.path() / "started";
    auto handler = axds::command_job_handler({"sh", "-c", fmt::format("touch {}; exec sleep 30", started.string())},
                                             {.forward_stderr = false});
    asio::io_context io;
    asio::cancellation_signal cancel;
    asio::steady_timer poll(io);
    std::function<void(std::error_code)> check = [&](std::error_code) {
        if (fs::exists(started)) {
            cancel.emit(asio::cancellation_type::terminal);
            return;
        }
        poll.expires_after(std::chrono::milliseconds(10));
        poll.async_wait(check);
    };
    check({});
    const auto begin = std::chrono::steady_clock::now();
    const auto error = axds::test::run_cancellable(
        io, axds::async_run_tracker_jobs(file, handler, {.executor_id = "test:cancel"}), cancel);
    CHECK(std::chrono::steady_clock::now() - begin < std::chrono::seconds(10));
    REQUIRE(error);
    const auto job = processing_tracker(file).get_job_info(processing_tracker::generate_job_id("long"));
    CHECK(job.status == processing_status::scheduled);
    CHECK_THAT(job.error_message.value_or(""), Contains("interrupted"));
    CHECK_FALSE(job.executor_id.has_value());
}

TEST_CASE("reclaim takes back jobs of dead or reused pids on this host and never touches a live one", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker tracker(file);
    const auto ids = tracker.initialize_jobs(numbered_jobs("pid", 8));
    const std::string host = host_name();
    const auto now = axds::utc_now_us();
    const pid_t gone = dead_pid();
    set_running(tracker, ids[0], fmt::format("pid:{}@{}", gone, host), now);
    set_running(tracker, ids[1], fmt::format("pid:{}@{}", ::getpid(), host), now);  // this process: alive
    set_running(tracker, ids[2], fmt::format("pid:{}@{}", ::getpid(), host), now - 3'600'000'000ULL);  // reused pid
    set_running(tracker, ids[3], fmt::format("pid:{}@some-other-host", gone), now);                    // other host
    set_running(tracker, ids[4], fmt::format("pid:{}", gone), now);  // no host recorded
    set_running(tracker, ids[5], "pbs:1234", now);                   // cannot check
    set_running(tracker, ids[6], "pbs:5678", now);
    const auto verdict = axds::probe_executor(fmt::format("pid:{}@{}", ::getpid(), host), now);
    CHECK(verdict.state == executor_liveness::alive);

    const auto report = axds::reclaim_stale_jobs(tracker, {.gone_executors = {"pbs:5678"}});
    std::set<std::string> reclaimed;
    for (const auto& job : report.reclaimed) {
        reclaimed.insert(job.job_id);
    }
    CHECK(reclaimed == std::set<std::string>{ids[0], ids[2], ids[6]});
    CHECK(report.kept.size() == 4);
    const auto first = tracker.get_job_info(ids[0]);
    CHECK(first.status == processing_status::scheduled);
    CHECK_THAT(first.error_message.value_or(""), Contains("reclaimed") && Contains("no longer exists"));
    CHECK_THAT(tracker.get_job_info(ids[2]).error_message.value_or(""), Contains("reused"));
    CHECK(tracker.get_job_info(ids[1]).status == processing_status::running);
    CHECK(tracker.get_job_info(ids[3]).status == processing_status::running);
    CHECK(tracker.get_job_info(ids[4]).status == processing_status::running);
    CHECK(tracker.get_job_info(ids[5]).status == processing_status::running);

    // --local-pids: a bare pid is a process of this host.
    const auto local = axds::reclaim_stale_jobs(tracker, {.bare_pids_are_local = true});
    REQUIRE(local.reclaimed.size() == 1);
    CHECK(local.reclaimed[0].job_id == ids[4]);
    // A reclaimed job is claimable again, and the claim clears the reason.
    const auto again = tracker.claim_next_job("test:again");
    REQUIRE(again.has_value());
    CHECK_FALSE(again->second.error_message.has_value());
}

TEST_CASE("reclaim asks squeue and sacct about slurm executors and keeps jobs it cannot decide", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    const fs::path squeue = tmp.path() / "squeue";
    std::ofstream(squeue) << "#!/bin/sh\n"
                             "while [ $# -gt 0 ]; do [ \"$1\" = -j ] && id=$2; shift; done\n"
                             "case $id in\n"
                             "11) echo '11 RUNNING';;\n"
                             "12) echo '12 CANCELLED'; echo '99 RUNNING';;\n"
                             "13) echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1;;\n"
                             "15) echo '15 COMPLETING';;\n"
                             "*) echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1;;\n"
                             "esac\n";
    fs::permissions(squeue, fs::perms::owner_all);
    processing_tracker tracker(file);
    const auto ids = tracker.initialize_jobs(numbered_jobs("slurm", 5));
    const auto now = axds::utc_now_us();
    set_running(tracker, ids[0], "slurm:11", now);
    set_running(tracker, ids[1], "slurm:12", now);
    set_running(tracker, ids[2], "slurm:13", now);
    set_running(tracker, ids[3], "slurm:14", now);
    set_running(tracker, ids[4], "slurm:15", now);
    const axds::reclaim_options options{.squeue = squeue.string(), .sacct = (tmp.path() / "no-sacct").string()};
    const auto report = axds::reclaim_stale_jobs(tracker, options);
    std::map<std::string, std::string> reasons;
    for (const auto& job : report.reclaimed) {
        reasons[job.job_id] = job.verdict.reason;
    }
    REQUIRE(reasons.size() == 2);
    CHECK_THAT(reasons[ids[1]], Contains("CANCELLED"));
    CHECK_THAT(reasons[ids[2]], Contains("unknown to slurmctld"));
    CHECK(tracker.get_job_info(ids[0]).status == processing_status::running);
    CHECK(tracker.get_job_info(ids[3]).status == processing_status::running);
    CHECK(tracker.get_job_info(ids[4]).status == processing_status::running);
    for (const auto& job : report.kept) {
        if (job.job_id == ids[3]) {
            CHECK(job.verdict.state == executor_liveness::unknown);
            CHECK_THAT(job.verdict.reason, Contains("Unable to contact"));
        }
    }
    // No squeue at all: nothing can be decided, nothing is touched.
    const auto none = axds::reclaim_stale_jobs(tracker, {.squeue = (tmp.path() / "none").string()});
    CHECK(none.reclaimed.empty());
    CHECK(none.kept.size() == 3);
}

TEST_CASE("job placeholders are replaced anywhere inside arguments", "[jobs]") {
    const job_context job{"abc", "name", "spec", "/t/tracker.yaml", "pid:1@h"};
    const auto out =
        axds::expand_job_placeholders({"{job_id}", "--in={specifier}/x", "{tracker}:{job_name}:{executor_id}",
                                       "{{other}}", "awk '{{print $1}}'", "{{{job_id}}}", "}}{{"},
                                      job);
    CHECK(out == std::vector<std::string>{"abc", "--in=spec/x", "/t/tracker.yaml:name:pid:1@h", "{other}",
                                          "awk '{print $1}'", "{abc}", "}{"});
    CHECK_THAT(axds::runner_executor_id(), Contains("@") || Contains("slurm:") || Contains("pbs:"));
}

TEST_CASE("a misspelled placeholder or a single brace in a command is refused before any job is claimed", "[jobs]") {
    // Before: `{specfier}` (and any other unknown `{...}`) was passed to the command as it was, for every job.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"a", "s"}});
    CHECK_THROWS_MATCHES(axds::command_job_handler({"echo", "--in=ROOT/{specfier}"}), axds::value_error,
                         message_contains("unknown placeholder '{specfier}'") &&
                             message_contains("'--in=ROOT/{specfier}'") &&
                             message_contains("{job_id}, {job_name}, {specifier}, {tracker} and {executor_id}") &&
                             message_contains("'{{' for '{'"));
    CHECK_THROWS_MATCHES(axds::command_job_handler({"awk", "{print $1}"}), axds::value_error,
                         message_contains("unknown placeholder '{print $1}'"));
    CHECK_THROWS_MATCHES(axds::command_job_handler({"echo", "x}"}), axds::value_error,
                         message_contains("a single '}'"));
    CHECK_THROWS_MATCHES(axds::command_job_handler({"echo", "{job_id"}), axds::value_error,
                         message_contains("no closing '}' ('{job_id')"));
    CHECK_THROWS_MATCHES(axds::command_job_handler({"{progam}"}), axds::value_error, message_contains("'{progam}'"));
    CHECK_THROWS_AS(axds::expand_job_placeholders({"{}"}, job_context{}), axds::value_error);
    CHECK_NOTHROW(axds::command_job_handler({"sh", "-c", "echo {{ok}}", "{specifier}"}));
    CHECK(processing_tracker(file).get_job_info(processing_tracker::generate_job_id("a", "s")).status ==
          processing_status::scheduled);
    // Doubled braces reach the command as single ones.
    const fs::path out = tmp.path() / "out";
    auto handler = axds::command_job_handler(
        {"sh", "-c", fmt::format("printf %s \"$1\" > {}", out.string()), "sh", "{{{job_name}}}-}}{{"},
        {.forward_stderr = false});
    asio::io_context io;
    const auto report = axds::test::run_async(
        io, [&] { return axds::async_run_tracker_jobs(file, handler, {.executor_id = "test:braces"}); });
    CHECK(report.succeeded == 1);
    std::ifstream in(out);
    std::string text;
    std::getline(in, text);
    CHECK(text == "{a}-}{");
}

TEST_CASE("a command that exited successfully before the runner was cancelled is recorded SUCCEEDED not rerun",
          "[jobs]") {
    // The command finishes its work and exits 0 (leaving a background process that holds its stderr), and the stop
    // arrives before the runner has seen the exit (as when scancel's SIGTERM reaches a task just as its command ends).
    // The test holds the runner's thread from before the exit until the command is a zombie, then stops the runner.
    // Putting the job back would run finished work a second time.
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"done", ""}});
    const fs::path runs = tmp.path() / "runs";
    const fs::path finished = tmp.path() / "finished";
    const fs::path go = tmp.path() / "go";
    auto handler = axds::command_job_handler(
        {"sh", "-c",
         fmt::format("echo run >> {}; echo $$ > {}; while [ ! -e {} ]; do sleep 0.01; done; sleep 2 & exit 0",
                     runs.string(), finished.string(), go.string())},
        {.forward_stderr = false});
    asio::io_context io;
    asio::cancellation_signal cancel;
    asio::steady_timer poll(io);
    std::function<void(std::error_code)> check = [&](std::error_code) {
        long pid = 0;
        if (std::ifstream(finished) >> pid) {
            std::ofstream(go).flush();
            std::string state;
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            while (state.find(") Z") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
                std::ifstream stat(fmt::format("/proc/{}/stat", pid));
                std::getline(stat, state);
            }
            cancel.emit(asio::cancellation_type::terminal);
            return;
        }
        poll.expires_after(std::chrono::milliseconds(10));
        poll.async_wait(check);
    };
    check({});
    const auto error = axds::test::run_cancellable(
        io, axds::async_run_tracker_jobs(file, handler, {.executor_id = "test:late-stop"}), cancel);
    REQUIRE(error);  // the runner itself was stopped
    const auto job = processing_tracker(file).get_job_info(processing_tracker::generate_job_id("done"));
    CHECK(job.status == processing_status::succeeded);
    std::ifstream lines(runs);
    std::string line;
    int count = 0;
    while (std::getline(lines, line)) {
        ++count;
    }
    CHECK(count == 1);
}

TEST_CASE("a handler that succeeds as the runner is cancelled is recorded SUCCEEDED and not left RUNNING", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).initialize_jobs({{"quick", ""}});
    asio::io_context io;
    asio::cancellation_signal cancel;
    axds::job_handler handler = [&](axds::job_context) -> asio::awaitable<void> {
        cancel.emit(asio::cancellation_type::terminal);  // the stop arrives while the job is finishing
        asio::steady_timer last_step(co_await asio::this_coro::executor, std::chrono::seconds(5));
        std::error_code ignored;  // cut short by the stop; the job's work is done anyway
        co_await last_step.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    };
    const auto error = axds::test::run_cancellable(
        io, axds::async_run_tracker_jobs(file, handler, {.executor_id = "test:stop-at-end"}), cancel);
    REQUIRE(error);
    const auto job = processing_tracker(file).get_job_info(processing_tracker::generate_job_id("quick"));
    CHECK(job.status == processing_status::succeeded);
}
