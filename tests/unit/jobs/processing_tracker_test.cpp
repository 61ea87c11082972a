#include <axds/jobs/processing_tracker.hpp>

#include "support/child_process.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <axds/config/yaml_value.hpp>
#include <axds/core/console.hpp>
#include <axds/error.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::job_key;
using axds::job_state;
using axds::processing_status;
using axds::processing_tracker;
using axds::tracker_status;
using axds::test::message_contains;
using axds::test::temp_dir;
using Catch::Matchers::Contains;

namespace {

/// Clears the scheduler variables of spec §4.6 for the test's duration and restores them afterwards.
class scheduler_environment {
public:
    scheduler_environment() {
        for (const char* name : names) {
            if (const char* value = std::getenv(name)) {  // NOLINT(concurrency-mt-unsafe)
                saved_.emplace_back(name, value);
            }
            ::unsetenv(name);
        }
    }

    scheduler_environment(const scheduler_environment&) = delete;
    scheduler_environment& operator=(const scheduler_environment&) = delete;

    ~scheduler_environment() {
        for (const char* name : names) {
            ::unsetenv(name);
        }
        for (const auto& [name, value] : saved_) {
            ::setenv(name.c_str(), value.c_str(), 1);
        }
    }

    static void set(const char* name, const char* value) { ::setenv(name, value, 1); }

private:
    static constexpr const char* names[] = {"SLURM_JOB_ID",    "SLURM_JOBID",     "PBS_JOBID", "LSB_JOBID",
                                            "OAR_JOB_ID",      "JOB_ID",          "SGE_ROOT",  "CCP_JOBID",
                                            "AZ_BATCH_JOB_ID", "AWS_BATCH_JOB_ID"};
    std::vector<std::pair<std::string, std::string>> saved_;
};

std::string id_of(const std::string& name, const std::string& spec = "") {
    return processing_tracker::generate_job_id(name, spec);
}

asio::awaitable<int> seven() {
    co_return 7;
}

asio::awaitable<void> failing_job() {
    throw std::runtime_error("simulated job failure");
    co_return;
}

// GCC 12 pairs Asio's awaitable frame operator new (recycling allocator) with the wrong delete for this coroutine
// and warns -Wmismatched-new-delete; Asio allocates and frees frames consistently, the warning is false.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

/// Every async_ form once.
asio::awaitable<void> exercise_async_tracker(processing_tracker& tracker) {
    // GCC 12: no braced init-list inside a co_await expression: named locals.
    std::vector<job_key> jobs{{"a", ""}, {"b", ""}};
    const auto ids = co_await tracker.async_initialize_jobs(std::move(jobs));
    const int value = co_await tracker.async_run_job(ids[0], seven(), "exec");
    CHECK(value == 7);
    bool threw = false;
    try {
        co_await tracker.async_run_job(ids[1], failing_job());
    } catch (const std::runtime_error&) {
        threw = true;
    }
    CHECK(threw);
    const job_state b = co_await tracker.async_get_job_info(ids[1]);
    CHECK(b.error_message == "simulated job failure");
    const processing_status a_status = co_await tracker.async_get_job_status(ids[0]);
    CHECK(a_status == processing_status::succeeded);
    const auto summary = co_await tracker.async_summarize();
    CHECK(summary.status == tracker_status::failed);
    const bool has_error = co_await tracker.async_encountered_error();
    CHECK(has_error);
    const bool all_done = co_await tracker.async_complete();
    CHECK_FALSE(all_done);
    const auto failed_ids = co_await tracker.async_get_jobs_by_status(processing_status::failed);
    CHECK(failed_ids == std::vector<std::string>{ids[1]});
    const auto counts = co_await tracker.async_get_summary();
    CHECK(counts.at(3).second == 1);
    std::optional<std::string> name_filter = "a";
    const auto found = co_await tracker.async_find_jobs(std::move(name_filter));
    CHECK(found.size() == 1);
    const auto retried = co_await tracker.async_retry_failed_jobs();
    CHECK(retried.size() == 1);
    CHECK(retried.at(0) == ids[1]);
    std::vector<std::string> first{ids[0]};
    const auto reset_ids = co_await tracker.async_reset_jobs(first);
    CHECK(reset_ids == first);
    std::vector<job_key> only_a{{"a", ""}};
    co_await tracker.async_align_jobs(std::move(only_a));
    const auto aligned = co_await tracker.async_snapshot();
    CHECK(aligned.size() == 1);
    co_await tracker.async_start_job(ids[0]);
    co_await tracker.async_fail_job(ids[0], "x");
    co_await tracker.async_complete_job(ids[0]);
    co_await tracker.async_reset();
    const auto emptied = co_await tracker.async_snapshot();
    CHECK(emptied.empty());
}

#pragma GCC diagnostic pop

}  // namespace

// upstream: processing_tracker_test.py::test_tracker_initialization
TEST_CASE("processing tracker binds its file and lock path and starts empty", "[jobs]") {
    const temp_dir tmp;
    const processing_tracker tracker(tmp.path() / "tracker.yaml");
    CHECK(tracker.file_path() == tmp.path() / "tracker.yaml");
    CHECK(tracker.lock_path() == tmp.path() / "tracker.yaml.lock");
    CHECK(tracker.jobs().empty());
}

// upstream: processing_tracker_test.py::test_generate_job_id_*
TEST_CASE("generate_job_id matches the Python library's golden IDs", "[jobs]") {
    CHECK(id_of("suite2p_processing", "plane_0") == "cd0547cf71e4ea30");
    CHECK(id_of("suite2p_processing") == "ced6b6029ca878f9");
    CHECK(id_of("process_data", "batch_101") == "e30d3e55fffe8b95");
    CHECK(id_of("job_a") == "5a6ab48314d28f6b");
    CHECK(id_of("") == "ef46db3751d8e999");
    CHECK(id_of("café", "β") == "47aad9824707362d");
    CHECK(id_of("job_39") == "6103369455687641");
    CHECK(id_of("a", "b") != id_of("a", "c"));
    CHECK(id_of("a") == processing_tracker::generate_job_id("a"));
    CHECK_THROWS_MATCHES(
        id_of("bad:name", "x"), axds::value_error,
        message_contains("Unable to generate the identifier for the job 'bad:name' with the specifier 'x'. The job "
                         "name and the specifier must not contain the ':' character, as it joins them inside the "
                         "hashed identifier string."));
    CHECK_THROWS_AS(id_of("name", "a:b"), axds::value_error);
}

// upstream: processing_tracker_test.py::test_tracker_yaml_format (spec §4.4 byte layout)
TEST_CASE("processing tracker writes the Python library's YAML byte for byte", "[jobs][python]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker tracker(file);
    tracker.reset();
    CHECK(axds::test::read_file(file) == "---\njobs: {}\n...\n");
    CHECK(fs::exists(tmp.path() / "tracker.yaml.lock"));
    tracker.initialize_jobs({{"job_39", ""}, {"process_plane", "plane_0"}});
    tracker.start_job(id_of("process_plane", "plane_0"), "pid:8747");
    tracker.fail_job(id_of("process_plane", "plane_0"), "CUDA out of memory: line1\nline2");
    const std::string text = axds::test::read_file(file);
    const job_state failed = tracker.get_job_info(id_of("process_plane", "plane_0"));
    const std::string expected = fmt::format(
        "---\n"
        "jobs:\n"
        "  '6103369455687641':\n"
        "    job_name: job_39\n"
        "    specifier: ''\n"
        "    status: 0\n"
        "    executor_id: null\n"
        "    error_message: null\n"
        "    started_at: null\n"
        "    completed_at: null\n"
        "  {}:\n"
        "    job_name: process_plane\n"
        "    specifier: plane_0\n"
        "    status: 3\n"
        "    executor_id: pid:8747\n"
        "    error_message: 'CUDA out of memory: line1\n"
        "\n"
        "      line2'\n"
        "    started_at: {}\n"
        "    completed_at: {}\n"
        "...\n",
        id_of("process_plane", "plane_0"), *failed.started_at, *failed.completed_at);
    CHECK(text == expected);
    CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    // PyYAML reads the same values and re-dumps the same bytes.
    const auto result = axds::test::run_python(
        "import sys, yaml\n"
        "text = open(sys.argv[1]).read()\n"
        "data = yaml.safe_load(text)\n"
        "assert list(data) == ['jobs']\n"
        "job = data['jobs']['6103369455687641']\n"
        "assert job['status'] == 0 and job['specifier'] == '' and job['executor_id'] is None\n"
        "again = yaml.dump(data, Dumper=yaml.CDumper, sort_keys=False, explicit_start=True, explicit_end=True,"
        " allow_unicode=False, width=200, indent=2, default_flow_style=False)\n"
        "print('same' if again == text else 'different:\\n' + again, end='')\n",
        {file.string()});
    CHECK(result.output == "same");
}

// upstream: processing_tracker_test.py::test_initialize_jobs / test_reinitialize_preserves_state
TEST_CASE("initialize_jobs registers SCHEDULED jobs and keeps existing state", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const axds::scoped_warning_capture warnings;
    const auto ids = tracker.initialize_jobs({{"a", ""}, {"b", "1"}});
    CHECK(ids == std::vector<std::string>{id_of("a"), id_of("b", "1")});
    CHECK(tracker.get_job_status(ids[0]) == processing_status::scheduled);
    CHECK_FALSE(tracker.get_job_info(ids[0]).executor_id.has_value());
    tracker.start_job(ids[0], "w");
    const auto again = tracker.initialize_jobs({{"a", ""}, {"c", ""}, {"c", ""}});
    CHECK(again == std::vector<std::string>{id_of("a"), id_of("c"), id_of("c")});
    CHECK(tracker.get_job_status(ids[0]) == processing_status::running);
    REQUIRE(warnings.messages().size() == 2);
    CHECK_THAT(warnings.messages()[0],
               Contains(fmt::format("Job 'a' with specifier '' (ID: {}) already exists in the tracker. "
                                    "Skipping duplicate entry.",
                                    id_of("a"))));
    // A colon fails inside the lock and nothing of that call is saved.
    CHECK_THROWS_AS(tracker.initialize_jobs({{"d", ""}, {"e:f", ""}}), axds::value_error);
    CHECK(processing_tracker(tmp.path() / "tracker.yaml").find_jobs("d").empty());
}

// upstream: processing_tracker_test.py::test_find_jobs_*
TEST_CASE("find_jobs matches substrings of name and specifier", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    tracker.initialize_jobs({{"suite2p", "plane_0"}, {"suite2p", "plane_1"}, {"deeplabcut", "cam_0"}});
    CHECK(tracker.find_jobs("suite").size() == 2);
    CHECK(tracker.find_jobs(std::nullopt, std::string("plane_1")).size() == 1);
    CHECK(tracker.find_jobs("suite2p", std::string("0")).at(0).second == job_key{"suite2p", "plane_0"});
    CHECK(tracker.find_jobs().size() == 3);
    CHECK(tracker.find_jobs("nothing").empty());
}

// upstream: processing_tracker_test.py::test_snapshot_*
TEST_CASE("snapshot returns detached copies and never creates the tracker", "[jobs]") {
    const temp_dir tmp;
    processing_tracker absent(tmp.path() / "absent.yaml");
    CHECK(absent.snapshot().empty());
    CHECK_FALSE(fs::exists(tmp.path() / "absent.yaml"));
    CHECK_FALSE(fs::exists(tmp.path() / "absent.yaml.lock"));
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const std::string id = tracker.initialize_jobs({{"job", ""}}).at(0);
    tracker.start_job(id, "executor-1");
    tracker.complete_job(id);
    auto copy = tracker.snapshot();
    REQUIRE(copy.size() == 1);
    CHECK(copy[0].second.status == processing_status::succeeded);
    CHECK(copy[0].second.executor_id == "executor-1");
    CHECK(copy[0].second.started_at.has_value());
    CHECK(copy[0].second.completed_at >= copy[0].second.started_at);
    copy[0].second.status = processing_status::failed;
    CHECK(tracker.snapshot()[0].second.status == processing_status::succeeded);
}

// upstream: processing_tracker_test.py::test_reset_jobs_*
TEST_CASE("reset_jobs resets only the targeted jobs and rejects unknown IDs untouched", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const auto ids = tracker.initialize_jobs({{"a", ""}, {"b", ""}});
    for (const auto& id : ids) {
        tracker.start_job(id, "x");
        tracker.fail_job(id, "boom");
    }
    const job_state sibling = tracker.get_job_info(ids[1]);
    CHECK(tracker.reset_jobs({ids[0]}) == std::vector<std::string>{ids[0]});
    const job_state reset = tracker.get_job_info(ids[0]);
    CHECK(reset == job_state{.job_name = "a"});
    CHECK(tracker.get_job_info(ids[1]) == sibling);
    const std::string before = axds::test::read_file(tmp.path() / "tracker.yaml");
    CHECK_THROWS_MATCHES(tracker.reset_jobs({"0000000000000000"}), axds::value_error,
                         message_contains("0000000000000000"));
    CHECK(axds::test::read_file(tmp.path() / "tracker.yaml") == before);
    CHECK(tracker.retry_failed_jobs() == std::vector<std::string>{ids[1]});
    CHECK(tracker.get_job_info(ids[1]) == job_state{.job_name = "b"});
}

// Found by a hostile-user run: `axds tracker reset` during `axds jobs run` removed the RUNNING jobs, whose workers
// then failed to record their end ("cannot be marked as complete"). remove_all_jobs (what the CLI's reset calls)
// refuses while a job runs, under the lock, naming the jobs; forced, it removes them as reset() does.
TEST_CASE("remove_all_jobs refuses while a job is RUNNING unless forced", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const auto ids = tracker.initialize_jobs({{"a", ""}, {"b", ""}, {"c", ""}});
    tracker.start_job(ids[1], "slurm:77");
    const std::string before = axds::test::read_file(tmp.path() / "tracker.yaml");
    CHECK_THROWS_MATCHES(tracker.remove_all_jobs(false), axds::value_error,
                         message_contains((tmp.path() / "tracker.yaml").string()) &&
                             message_contains("1 job(s) are RUNNING") &&
                             message_contains(fmt::format("{} (slurm:77)", ids[1])));
    CHECK(axds::test::read_file(tmp.path() / "tracker.yaml") == before);
    tracker.complete_job(ids[1]);
    CHECK(tracker.remove_all_jobs(false) == 3);
    CHECK(tracker.snapshot().empty());
    tracker.initialize_jobs({{"d", ""}});
    tracker.start_job(id_of("d", ""), "x");
    CHECK(tracker.remove_all_jobs(true) == 1);
    CHECK(tracker.snapshot().empty());
}

// upstream: processing_tracker_test.py::test_align_jobs_*
TEST_CASE("align_jobs adds requested jobs, discards foreign ones and validates the request", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const std::vector<job_key> universe{{"a", ""}, {"b", "1"}, {"c", ""}};
    CHECK(tracker.align_jobs({{"a", ""}}, universe) == std::vector<std::string>{id_of("a")});
    tracker.start_job(id_of("a"), "w");
    tracker.complete_job(id_of("a"));
    CHECK(tracker.align_jobs({{"b", "1"}, {"a", ""}}, universe) ==
          std::vector<std::string>{id_of("b", "1"), id_of("a")});
    CHECK(tracker.get_job_status(id_of("a")) == processing_status::succeeded);
    CHECK(tracker.snapshot().size() == 2);
    const std::string aligned = axds::test::read_file(tmp.path() / "tracker.yaml");
    tracker.align_jobs({{"b", "1"}, {"a", ""}}, universe);
    CHECK(axds::test::read_file(tmp.path() / "tracker.yaml") == aligned);  // idempotent

    const axds::scoped_warning_capture warnings;
    tracker.initialize_jobs({{"legacy", ""}});
    tracker.align_jobs({{"a", ""}});  // default universe = jobs: b and legacy are foreign
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages()[0],
               Contains("contains 2 job entries that are not part of the current job universe") &&
                   Contains("Discarded job IDs: ['"));
    CHECK(tracker.snapshot().size() == 1);
    CHECK(tracker.get_job_status(id_of("a")) == processing_status::succeeded);

    const std::string before = axds::test::read_file(tmp.path() / "tracker.yaml");
    CHECK_THROWS_MATCHES(tracker.align_jobs({{"typo_job", "999"}, {"a", ""}}, universe), axds::value_error,
                         message_contains("absent from it: typo_job (999)"));
    CHECK_THROWS_MATCHES(tracker.align_jobs({}, universe), axds::value_error,
                         message_contains("The 'jobs' argument must name at least one job, but an empty list was "
                                          "provided."));
    CHECK(axds::test::read_file(tmp.path() / "tracker.yaml") == before);
}

// upstream: processing_tracker_test.py::test_start_job_executor_*
TEST_CASE("start_job records the scheduler's executor ID or the pid", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const std::string id = tracker.initialize_jobs({{"job", ""}}).at(0);
    const scheduler_environment environment;
    const auto executor_after_start = [&] {
        tracker.start_job(id);
        return tracker.get_job_info(id).executor_id.value_or("<none>");
    };
    CHECK(executor_after_start() == fmt::format("pid:{}", ::getpid()));
    scheduler_environment::set("SLURM_JOB_ID", "987654");
    CHECK(executor_after_start() == "slurm:987654");
    ::unsetenv("SLURM_JOB_ID");
    scheduler_environment::set("SLURM_JOBID", "555");
    CHECK(executor_after_start() == "slurm:555");
    ::unsetenv("SLURM_JOBID");
    scheduler_environment::set("PBS_JOBID", "42.headnode");
    CHECK(executor_after_start() == "pbs:42.headnode");
    ::unsetenv("PBS_JOBID");
    scheduler_environment::set("JOB_ID", "not-a-scheduler");
    CHECK(executor_after_start() == fmt::format("pid:{}", ::getpid()));
    scheduler_environment::set("SGE_ROOT", "/opt/sge");
    CHECK(executor_after_start() == "sge:not-a-scheduler");
    tracker.start_job(id, "explicit");
    CHECK(tracker.get_job_info(id).executor_id == "explicit");
    tracker.start_job(id, "");
    CHECK(tracker.get_job_info(id).executor_id == "");
    CHECK_THROWS_MATCHES(tracker.start_job("ffffffffffffffff"), axds::value_error,
                         message_contains("not configured to track") && message_contains(id));
}

// upstream: processing_tracker_test.py::test_job_timestamps / test_status_transitions
TEST_CASE("job transitions set and clear timestamps and errors", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const std::string id = tracker.initialize_jobs({{"job", ""}}).at(0);
    CHECK_FALSE(tracker.complete());
    tracker.start_job(id, "w");
    job_state state = tracker.get_job_info(id);
    CHECK(state.status == processing_status::running);
    CHECK(state.started_at.has_value());
    CHECK_FALSE(state.completed_at.has_value());
    tracker.fail_job(id, "boom");
    state = tracker.get_job_info(id);
    CHECK(state.error_message == "boom");
    CHECK(state.completed_at >= state.started_at);
    CHECK(tracker.encountered_error());
    tracker.start_job(id, "w");
    state = tracker.get_job_info(id);
    CHECK_FALSE(state.error_message.has_value());
    CHECK_FALSE(state.completed_at.has_value());
    tracker.fail_job(id);
    CHECK_FALSE(tracker.get_job_info(id).error_message.has_value());
    tracker.complete_job(id);  // no transition validation
    CHECK(tracker.get_job_status(id) == processing_status::succeeded);
    CHECK_FALSE(tracker.get_job_info(id).error_message.has_value());
    CHECK(tracker.complete());
    CHECK_FALSE(tracker.encountered_error());
    for (const char* action : {"marked as complete", "marked as failed", "queried (status)", "queried (state)"}) {
        INFO(action);
        const std::string unknown = "0123456789abcdef";
        const auto call = [&] {
            const std::string_view a = action;
            if (a == "marked as complete") {
                tracker.complete_job(unknown);
            } else if (a == "marked as failed") {
                tracker.fail_job(unknown);
            } else if (a == "queried (status)") {
                (void)tracker.get_job_status(unknown);
            } else {
                (void)tracker.get_job_info(unknown);
            }
        };
        CHECK_THROWS_MATCHES(call(), axds::value_error,
                             message_contains(action) && message_contains("not configured to track"));
    }
    tracker.reset();
    CHECK(tracker.snapshot().empty());
}

// upstream: processing_tracker_test.py::test_get_summary / test_get_jobs_by_status / test_summarize_*
TEST_CASE("summaries count every status and resolve the tracker status", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    CHECK(tracker.summarize().status == tracker_status::in_progress);
    CHECK(tracker.summarize().jobs.empty());
    const auto ids = tracker.initialize_jobs({{"a", ""}, {"b", ""}, {"c", ""}});
    CHECK(tracker.summarize().status == tracker_status::not_started);
    tracker.start_job(ids[0], "w");
    auto summary = tracker.summarize();
    CHECK(summary.status == tracker_status::processing);
    CHECK(summary.summary == axds::job_counts{.total = 3, .succeeded = 0, .failed = 0, .running = 1, .scheduled = 2});
    tracker.complete_job(ids[0]);
    CHECK(tracker.summarize().status == tracker_status::in_progress);
    tracker.fail_job(ids[1], "reason");
    CHECK(tracker.summarize().status == tracker_status::failed);
    CHECK(tracker.get_summary() ==
          std::vector<std::pair<processing_status, std::size_t>>{{processing_status::scheduled, 1},
                                                                 {processing_status::running, 0},
                                                                 {processing_status::succeeded, 1},
                                                                 {processing_status::failed, 1}});
    CHECK(tracker.get_jobs_by_status(processing_status::scheduled) == std::vector<std::string>{ids[2]});
    CHECK(tracker.get_jobs_by_status("FAILED") == std::vector<std::string>{ids[1]});
    CHECK_THROWS_AS(tracker.get_jobs_by_status("failed"), axds::key_error);
    using counts = axds::job_counts;
    CHECK(processing_tracker::resolve_status(counts{}) == tracker_status::in_progress);
    CHECK(processing_tracker::resolve_status(counts{.total = 2, .succeeded = 2}) == tracker_status::completed);
    CHECK(processing_tracker::resolve_status(counts{.total = 2, .failed = 1, .running = 1}) == tracker_status::failed);
    CHECK(axds::tracker_status_value(tracker_status::not_started) == "not_started");
    CHECK(axds::processing_status_name(processing_status::running) == "RUNNING");
    CHECK(static_cast<int>(processing_status::failed) == 3);
}

// upstream: processing_tracker_test.py::test_read_only_accessors_do_not_create_file
TEST_CASE("read-only accessors never create the tracker file", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker tracker(file);
    (void)tracker.snapshot();
    (void)tracker.summarize();
    (void)tracker.complete();
    (void)tracker.encountered_error();
    (void)tracker.find_jobs();
    (void)tracker.get_jobs_by_status("SCHEDULED");
    (void)tracker.get_summary();
    CHECK_THROWS_AS(tracker.get_job_status("unknown"), axds::value_error);
    CHECK_THROWS_AS(tracker.get_job_info("unknown"), axds::value_error);
    CHECK_FALSE(fs::exists(file));
    const auto universe = std::vector<job_key>{{"a", ""}};
    CHECK(tracker.resolve_job(id_of("a"), universe) == job_key{"a", ""});
    CHECK_THROWS_MATCHES(tracker.resolve_job(id_of("a"), {}), axds::value_error,
                         message_contains("The 'universe' argument must name at least one job"));
    CHECK_THROWS_MATCHES(tracker.resolve_job("0000000000000000", universe), axds::value_error,
                         message_contains("the universe holds only the jobs with IDs: " + id_of("a")));
    CHECK_FALSE(fs::exists(file));
}

// upstream: processing_tracker_test.py::test_two_instances_share_state
TEST_CASE("two tracker instances on one file see each other's updates", "[jobs]") {
    const temp_dir tmp;
    processing_tracker first(tmp.path() / "tracker.yaml");
    processing_tracker second(tmp.path() / "tracker.yaml");
    const std::string id = first.initialize_jobs({{"job", "s"}}).at(0);
    second.start_job(id, "w2");
    second.fail_job(id, "boom");
    CHECK(first.get_job_status(id) == processing_status::failed);
    CHECK(first.get_job_info(id).error_message == "boom");
    CHECK(first.encountered_error());
    CHECK(first.get_jobs_by_status("FAILED") == std::vector<std::string>{id});
}

// upstream: processing_tracker_test.py::test_run_job_*
TEST_CASE("run_job completes, fails with the exception's message, or stays running", "[jobs]") {
    const temp_dir tmp;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    const auto ids = tracker.initialize_jobs({{"ok", ""}, {"bad", ""}, {"interrupted", ""}});
    CHECK(tracker.run_job(
              ids[0], [] { return 42; }, "exec") == 42);
    CHECK(tracker.get_job_info(ids[0]).status == processing_status::succeeded);
    CHECK(tracker.get_job_info(ids[0]).executor_id == "exec");
    CHECK_THROWS_MATCHES(tracker.run_job(ids[1], [] { throw std::runtime_error("simulated job failure"); }),
                         std::runtime_error, message_contains("simulated job failure"));
    CHECK(tracker.get_job_info(ids[1]).status == processing_status::failed);
    CHECK(tracker.get_job_info(ids[1]).error_message == "simulated job failure");

    struct interrupt {};  // not a std::exception: the Python KeyboardInterrupt analogue

    CHECK_THROWS_AS(tracker.run_job(ids[2], [] { throw interrupt{}; }), interrupt);
    CHECK(tracker.get_job_status(ids[2]) == processing_status::running);
}

// upstream: processing_tracker_test.py::test_discover_trackers
TEST_CASE("discover finds trackers at any depth sorted by path", "[jobs]") {
    const temp_dir tmp;
    CHECK(processing_tracker::discover(tmp.path(), "tracker.yaml").empty());
    processing_tracker(tmp.path() / "b" / "deep" / "tracker.yaml").initialize_jobs({{"x", ""}});
    processing_tracker(tmp.path() / "a" / "tracker.yaml").initialize_jobs({{"x", ""}, {"y", ""}});
    processing_tracker(tmp.path() / "a" / "other.yaml").initialize_jobs({{"x", ""}});
    auto found = processing_tracker::discover(tmp.path(), "tracker.yaml");
    REQUIRE(found.size() == 2);
    CHECK(found[0].file_path() == tmp.path() / "a" / "tracker.yaml");
    CHECK(found[0].jobs().empty());
    CHECK(found[0].snapshot().size() == 2);
    CHECK(found[1].snapshot().size() == 1);
    CHECK_THROWS_AS(processing_tracker::discover(tmp.path() / "missing", "tracker.yaml"), axds::os_error);
}

TEST_CASE("a corrupt or foreign tracker file is reported by name and left untouched", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker tracker(file);
    const auto check_untouched = [&](const std::string& content, const std::string& anchor) {
        axds::test::write_file(file, content);
        INFO(content);
        CHECK_THROWS_WITH(tracker.start_job("5a6ab48314d28f6b"), Contains(file.string()) && Contains(anchor));
        CHECK_THROWS_WITH(tracker.snapshot(), Contains(file.string()));
        CHECK(axds::test::read_file(file) == content);
    };
    check_untouched("jobs: [unclosed\n", "");
    check_untouched("jobs:\n  5a6ab48314d28f6b:\n    job_name: job_a\n    status: 7\n", "not a valid ProcessingStatus");
    check_untouched("jobs:\n  5a6ab48314d28f6b:\n    specifier: x\n", "no 'job_name' field");
    check_untouched("jobs: 3\n", "must be a mapping");
    CHECK_THROWS_AS(tracker.get_job_info("x"), axds::value_error);
    // Found by a hostile-user run: a second document (two trackers concatenated, text after `...`) was ignored, and
    // the next rewrite dropped its jobs. PyYAML's safe_load refuses both.
    const std::string job =
        "    job_name: n\n    specifier: s\n    status: 3\n    executor_id: null\n"
        "    error_message: null\n    started_at: null\n    completed_at: null\n";
    check_untouched("---\njobs:\n  a:\n" + job + "---\njobs:\n  b:\n" + job, "expected a single document");
    check_untouched("---\njobs:\n  a:\n" + job + "...\n[[[ garbage: {\n", "");
    check_untouched("---\n...\n---\njobs: {}\n", "expected a single document");
    processing_tracker wrong_suffix(tmp.path() / "tracker.txt");
    CHECK_THROWS_AS(wrong_suffix.reset(), axds::value_error);
}

TEST_CASE("a lock held elsewhere makes operations wait, then time out with the filelock message", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker(file).reset();
    axds::test::child_process holder({AXDS_TRACKER_WORKER, "hold", file.string() + ".lock"});
    REQUIRE(holder.read_line() == "locked");
    processing_tracker tracker(file, {.lock_timeout = std::chrono::milliseconds(300)});
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_MATCHES(
        tracker.reset(), axds::timeout_error,
        message_contains(fmt::format("The file lock '{}.lock' could not be acquired.", file.string())) &&
            message_contains("Another process held it for the whole 0.3 s"));
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
    // The async form waits on a timer: the executor keeps running other handlers meanwhile.
    asio::io_context io;
    int ticks = 0;
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        auto ticker = [](int& count) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            for (int i = 0; i < 5; ++i) {
                timer.expires_after(std::chrono::milliseconds(20));
                co_await timer.async_wait(asio::use_awaitable);
                ++count;
            }
        };
        asio::co_spawn(co_await asio::this_coro::executor, ticker(ticks), asio::detached);
        bool timed_out = false;
        try {
            co_await tracker.async_reset();
        } catch (const axds::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(ticks >= 5);
    });
    // kill -9 of the holder: the kernel drops its flock and the next operation proceeds at once.
    holder.kill9();
    CHECK(holder.wait() == 128 + 9);
    const auto after_kill = std::chrono::steady_clock::now();
    tracker.initialize_jobs({{"after", "kill"}});
    CHECK(std::chrono::steady_clock::now() - after_kill < std::chrono::milliseconds(250));
    CHECK(tracker.get_job_status(id_of("after", "kill")) == processing_status::scheduled);
}

TEST_CASE("async tracker operations and async_run_job", "[jobs]") {
    const temp_dir tmp;
    asio::io_context io;
    processing_tracker tracker(tmp.path() / "tracker.yaml");
    axds::test::run_async(io, [&] { return exercise_async_tracker(tracker); });
}

TEST_CASE("8 processes x 200 transitions on one tracker lose no update", "[jobs][slow]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    constexpr int processes = 8;
    constexpr int jobs_each = 10;
    constexpr int rounds = 10;  // 10 jobs x 10 rounds x (start + complete) = 200 transitions per process
    std::vector<job_key> all;
    for (int p = 0; p < processes; ++p) {
        for (int k = 0; k < jobs_each; ++k) {
            all.emplace_back(fmt::format("worker{}", p), std::to_string(k));
        }
    }
    processing_tracker tracker(file);
    tracker.initialize_jobs(all);
    std::vector<axds::test::child_process> workers;
    for (int p = 0; p < processes; ++p) {
        workers.emplace_back(std::vector<std::string>{AXDS_TRACKER_WORKER, "rounds", file.string(),
                                                      fmt::format("worker{}", p), std::to_string(jobs_each),
                                                      std::to_string(rounds)});
    }
    // Meanwhile, readers that skip the lock must always find a complete document (writes are rename-based).
    std::size_t reads = 0;
    std::size_t unparseable = 0;
    bool running = true;
    while (running) {
        try {
            (void)axds::parse_yaml(axds::test::read_file(file), file.string());
        } catch (const std::exception&) {
            ++unparseable;
        }
        ++reads;
        running = false;
        for (auto& w : workers) {
            running = w.running() || running;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (auto& w : workers) {
        CHECK(w.wait() == 0);
    }
    CHECK(unparseable == 0);
    INFO("unlocked reads during the run: " << reads);
    const auto jobs = tracker.snapshot();
    REQUIRE(jobs.size() == all.size());
    std::size_t succeeded = 0;
    for (const auto& [id, job] : jobs) {
        succeeded += job.status == processing_status::succeeded &&
                             job.executor_id == fmt::format("{}-{}", job.job_name, rounds - 1) &&
                             job.completed_at >= job.started_at
                         ? 1U
                         : 0U;
    }
    CHECK(succeeded == all.size());
    std::size_t strays = 0;
    for (const auto& entry : fs::directory_iterator(tmp.path())) {
        strays += entry.path().extension() == ".tmp" ? 1U : 0U;
    }
    CHECK(strays == 0);
}

TEST_CASE("python and C++ processes share one tracker without losing updates", "[jobs][python][slow]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    constexpr int jobs_each = 25;
    const std::vector<std::string> python_workers{"py0", "py1"};
    const std::vector<std::string> cpp_workers{"cpp0", "cpp1"};
    std::vector<job_key> all;
    for (const auto& names : {python_workers, cpp_workers}) {
        for (const auto& name : names) {
            for (int k = 0; k < jobs_each; ++k) {
                all.emplace_back(name, std::to_string(k));
            }
        }
    }
    processing_tracker tracker(file);
    tracker.initialize_jobs(all);
    // The Python library's protocol by hand: flock on <file>.lock, safe_load, modify, dump to a temp file, fsync,
    // rename, unlock.
    const std::string python_worker =
        "import sys, os, fcntl, tempfile, time, yaml, xxhash\n"
        "path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "for k in range(count):\n"
        "    jid = xxhash.xxh64((prefix + ':' + str(k)).encode(), seed=0).hexdigest()\n"
        "    for status in (1, 2):\n"
        "        with open(path + '.lock', 'a') as lock:\n"
        "            fcntl.flock(lock, fcntl.LOCK_EX)\n"
        "            with open(path) as f:\n"
        "                data = yaml.safe_load(f)\n"
        "            job = data['jobs'][jid]\n"
        "            now = time.time_ns() // 1000\n"
        "            job['status'] = status\n"
        "            job['executor_id'] = prefix\n"
        "            if status == 1:\n"
        "                job['started_at'] = now\n"
        "                job['completed_at'] = None\n"
        "            else:\n"
        "                job['completed_at'] = now\n"
        "            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tracker.yaml.', suffix='.tmp')\n"
        "            with os.fdopen(fd, 'w') as out:\n"
        "                yaml.dump(data, out, Dumper=yaml.CDumper, sort_keys=False, explicit_start=True,\n"
        "                          explicit_end=True, allow_unicode=False, width=200, indent=2,\n"
        "                          default_flow_style=False)\n"
        "                out.flush()\n"
        "                os.fsync(out.fileno())\n"
        "            os.replace(tmp, path)\n"
        "            fcntl.flock(lock, fcntl.LOCK_UN)\n";
    std::vector<axds::test::child_process> workers;
    for (std::size_t i = 0; i < 2; ++i) {
        workers.emplace_back(std::vector<std::string>{AXDS_PYTHON3, "-c", python_worker, file.string(),
                                                      python_workers[i], std::to_string(jobs_each)});
        workers.emplace_back(std::vector<std::string>{AXDS_TRACKER_WORKER, "transitions", file.string(), cpp_workers[i],
                                                      std::to_string(jobs_each)});
    }
    for (auto& w : workers) {
        CHECK(w.wait() == 0);
    }
    const auto jobs = tracker.snapshot();
    REQUIRE(jobs.size() == all.size());
    std::string ours;
    for (const auto& [id, job] : jobs) {
        CHECK(job.status == processing_status::succeeded);
        CHECK(job.executor_id == job.job_name);
        CHECK(job.completed_at >= job.started_at);
        ours += fmt::format("{} {} {} {} {} {} {}\n", id, job.job_name, job.specifier, static_cast<int>(job.status),
                            job.executor_id.value_or("None"), job.started_at.value_or(0), job.completed_at.value_or(0));
    }
    // PyYAML reads the final document (written by whichever side went last) with the same values.
    const auto result = axds::test::run_python(
        "import sys, yaml\n"
        "data = yaml.safe_load(open(sys.argv[1]))\n"
        "for jid, j in data['jobs'].items():\n"
        "    print(jid, j['job_name'], j['specifier'], j['status'], j['executor_id'], j['started_at'] or 0,"
        " j['completed_at'] or 0)\n",
        {file.string()});
    CHECK(result.output == ours);
}

TEST_CASE("reading a tracker never waits for the lock and needs no lock file", "[jobs][hostile]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    {
        processing_tracker writer(file);
        (void)writer.initialize_jobs({{"a", "1"}, {"b", "2"}});
        writer.start_job(processing_tracker::generate_job_id("a", "1"), "pid:1");
    }
    processing_tracker reader(file, {.lock_timeout = std::chrono::milliseconds(300)});
    SECTION("a worker holds the lock for longer than the timeout") {
        const int fd = ::open((file.string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
        const auto started = std::chrono::steady_clock::now();
        const auto summary = reader.summarize();
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(250));
        CHECK(summary.summary.total == 2);
        CHECK(summary.summary.running == 1);
        CHECK(reader.get_jobs_by_status(processing_status::scheduled).size() == 1);
        CHECK_FALSE(reader.complete());
        CHECK_THROWS_AS(reader.reset(), axds::timeout_error);  // writers still wait for the lock
        ::close(fd);
    }
    SECTION("the lock file cannot be created (a read-only directory for this user)") {
        fs::remove(file.string() + ".lock");
        fs::create_directory(file.string() + ".lock");  // opening it as the lock file fails, as EACCES would
        CHECK(reader.summarize().summary.total == 2);
        CHECK(reader.get_job_status(processing_tracker::generate_job_id("a", "1")) == processing_status::running);
        CHECK_THROWS(reader.reset());
    }
}

// Issue 21: a tracker skips the parse only when the file holds exactly the text it wrote last.
TEST_CASE("a tracker that wrote the file last still sees every change made after it", "[jobs]") {
    const temp_dir tmp;
    const fs::path file = tmp.path() / "tracker.yaml";
    processing_tracker first(file);
    processing_tracker second(file);
    const auto ids = first.initialize_jobs({{"job", "a"}, {"job", "b"}});
    first.start_job(ids[0], "w1");   // first wrote the file last
    second.start_job(ids[1], "w2");  // another writer replaces it
    first.complete_job(ids[0]);      // must read second's change, not reuse its own text
    CHECK(second.get_job_status(ids[1]) == processing_status::running);
    CHECK(first.get_job_info(ids[1]).executor_id == "w2");
    // An in-place rewrite of the same size (no rename, same length) is seen as well.
    first.start_job(ids[0], "w1");
    std::string text = axds::test::read_file(file);
    const auto at = text.find("executor_id: w1");
    REQUIRE(at != std::string::npos);
    text.replace(at, 15, "executor_id: w9");
    {
        std::ofstream out(file, std::ios::in | std::ios::out);
        out << text;
    }
    first.complete_job(ids[0]);
    CHECK(first.get_job_info(ids[0]).executor_id == "w9");
    CHECK(second.get_job_info(ids[0]).executor_id == "w9");
}

TEST_CASE("a transition whose write fails leaves the file and the next transition right", "[jobs][disk_full]") {
    // The tracker patches the text it wrote last in place; a failed write must not let that unwritten text be
    // trusted by the next transition.
    const temp_dir tmp;
    const fs::path mount_point = tmp.path() / "small_disk";
    const axds::test::tmpfs_mount disk(mount_point, "64k");  // declared after tmp: unmounted before tmp is removed
    AXDS_SKIP_IF(!disk.mounted(),
                 "SKIPPED: the full-disk test needs to mount a tmpfs (root / CAP_SYS_ADMIN): " << disk.why_not());
    const fs::path file = mount_point / "tracker.yaml";
    processing_tracker tracker(file);
    const auto ids = tracker.initialize_jobs({{"job", "a"}, {"job", "b"}});
    tracker.start_job(ids[0], "w1");
    const std::string before = axds::test::read_file(file);
    {
        std::ofstream filler(mount_point / "filler", std::ios::binary);  // fill the disk
        const std::string block(4096, 'x');
        while (filler.write(block.data(), static_cast<std::streamsize>(block.size()))) {
            filler.flush();
        }
    }
    CHECK_THROWS(tracker.complete_job(ids[0]));
    CHECK(axds::test::read_file(file) == before);  // the old file, whole
    CHECK(tracker.get_job_status(ids[0]) == processing_status::running);
    fs::remove(mount_point / "filler");
    tracker.start_job(ids[1], "w2");  // must be written from the file's jobs, not from the failed text
    processing_tracker fresh(file);
    CHECK(fresh.get_job_status(ids[0]) == processing_status::running);
    CHECK(fresh.get_job_status(ids[1]) == processing_status::running);
    tracker.complete_job(ids[0]);
    CHECK(fresh.get_job_status(ids[0]) == processing_status::succeeded);
}
