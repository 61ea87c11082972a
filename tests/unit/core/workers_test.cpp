#include <axds/core/workers.hpp>

#include "support/log_entries.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <axds/fs/transfer.hpp>
#include <axds/jobs/job_runner.hpp>
#include <axds/log/log_archive.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

using axds::test::message_contains;
namespace fs = std::filesystem;

namespace {

std::optional<std::string> env(std::string_view name) {
    const char* value = std::getenv(std::string(name).c_str());  // NOLINT(concurrency-mt-unsafe)
    return value == nullptr ? std::nullopt : std::optional<std::string>(value);
}

void clear_all() {
    for (const auto name : axds::worker_thread_variables) {
        ::unsetenv(std::string(name).c_str());  // NOLINT(concurrency-mt-unsafe)
    }
}

}  // namespace

TEST_CASE("resolve_worker_count follows the base-utilities v7 rule", "[core]") {
    const int cores = axds::logical_cpu_count();
    REQUIRE(cores > 0);
    CHECK(axds::resolve_worker_count(1) == 1);
    CHECK(axds::resolve_worker_count(cores + 10) == cores);  // capped at the core count, no reserve
    CHECK(axds::resolve_worker_count(0) == std::max(1, cores - 2));
    CHECK(axds::resolve_worker_count(-3) == std::max(1, cores - 2));
    CHECK(axds::resolve_worker_count(0, 0) == cores);
    CHECK(axds::resolve_worker_count(0, 1000) == 1);
    CHECK_THROWS_MATCHES(axds::resolve_worker_count(0, -1), axds::value_error,
                         message_contains("'reserved_cores' argument must be greater than or equal to 0"));
}

// upstream: worker_threads_test.py::test_limit_worker_threads_sets_and_removes_variables
TEST_CASE("limit_worker_threads sets every variable and removes the ones that were absent", "[core]") {
    clear_all();
    {
        const axds::limit_worker_threads guard;
        for (const auto name : axds::worker_thread_variables) {
            CHECK(env(name) == "1");
        }
    }
    for (const auto name : axds::worker_thread_variables) {
        CHECK_FALSE(env(name).has_value());
    }
}

// upstream: worker_threads_test.py::test_limit_worker_threads_restores_preexisting_values
TEST_CASE("limit_worker_threads restores preexisting values", "[core]") {
    clear_all();
    ::setenv("OMP_NUM_THREADS", "7", 1);  // NOLINT(concurrency-mt-unsafe)
    {
        const axds::limit_worker_threads guard(2);
        CHECK(env("OMP_NUM_THREADS") == "2");
        CHECK(env("MKL_NUM_THREADS") == "2");
    }
    CHECK(env("OMP_NUM_THREADS") == "7");
    CHECK_FALSE(env("MKL_NUM_THREADS").has_value());
    clear_all();
}

// upstream: worker_threads_test.py::test_limit_worker_threads_restores_on_exception
TEST_CASE("limit_worker_threads restores values when the scope exits by exception", "[core]") {
    clear_all();
    ::setenv("OPENBLAS_NUM_THREADS", "5", 1);  // NOLINT(concurrency-mt-unsafe)
    try {
        const axds::limit_worker_threads guard(3);
        throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
    }
    CHECK(env("OPENBLAS_NUM_THREADS") == "5");
    CHECK_FALSE(env("OMP_NUM_THREADS").has_value());
    clear_all();
}

// upstream: worker_threads_test.py::test_limit_worker_threads_rejects_invalid_count
TEST_CASE("limit_worker_threads rejects a count below 1 with the exact message", "[core]") {
    CHECK_THROWS_WITH(axds::limit_worker_threads(0),
                      "Unable to limit the thread count used by the worker processes. The 'thread_count' argument "
                      "must be greater than or equal to 1, but got 0.");
}

// upstream: worker_threads_test.py::test_limit_worker_threads_covers_lazily_read_backends
TEST_CASE("limit_worker_threads covers lazily read back-ends and never sets NUMBA_NUM_THREADS", "[core]") {
    clear_all();
    ::unsetenv("NUMBA_NUM_THREADS");  // NOLINT(concurrency-mt-unsafe)
    {
        const axds::limit_worker_threads guard(4);
        CHECK(env("POLARS_MAX_THREADS") == "4");
        CHECK(env("OPENCV_FFMPEG_THREADS") == "4");
        CHECK(env("TIFFFILE_NUM_THREADS") == "4");
        CHECK(env("VECLIB_MAXIMUM_THREADS") == "4");
        CHECK(env("NUMEXPR_NUM_THREADS") == "4");
        CHECK_FALSE(env("NUMBA_NUM_THREADS").has_value());
    }
    for (const auto name : axds::worker_thread_variables) {
        CHECK(name != "NUMBA_NUM_THREADS");
    }
}

// upstream: worker_threads_test.py::test_initialize_worker_threads_sets_all_variables
// upstream: worker_threads_test.py::test_initialize_worker_threads_overwrites_inherited_values
TEST_CASE("initialize_worker_threads sets every variable, overwriting inherited values, without restoring", "[core]") {
    clear_all();
    ::setenv("OMP_NUM_THREADS", "12", 1);  // NOLINT(concurrency-mt-unsafe)
    CHECK(axds::initialize_worker_threads(3) == std::min(3, axds::logical_cpu_count()));
    for (const auto name : axds::worker_thread_variables) {
        CHECK(env(name) == "3");
    }
    axds::initialize_worker_threads(1);
    CHECK(env("OMP_NUM_THREADS") == "1");
    clear_all();
}

// upstream: worker_threads_test.py::test_initialize_worker_threads_narrows_to_ceiling
// (numba's ceiling becomes the logical core count: the count the worker's own pools should use)
TEST_CASE("initialize_worker_threads narrows a request above the core count to the core count", "[core]") {
    const int cores = axds::logical_cpu_count();
    CHECK(axds::initialize_worker_threads(cores + 5) == cores);
    CHECK(axds::initialize_worker_threads(1) == 1);
    clear_all();
}

// upstream: worker_threads_test.py::test_initialize_worker_threads_rejects_invalid_count
TEST_CASE("initialize_worker_threads rejects a count below 1 with the exact message", "[core]") {
    CHECK_THROWS_WITH(axds::initialize_worker_threads(0),
                      "Unable to initialize the thread count used by the worker process. The 'thread_count' "
                      "argument must be greater than or equal to 1, but got 0.");
}

TEST_CASE("processes started inside a limit_worker_threads scope inherit the limits", "[core][python]") {
    clear_all();
    std::string inside;
    {
        const axds::limit_worker_threads guard(3);
        const auto result = axds::test::run_python(
            "import os\nprint(','.join(os.environ.get(n, '-') for n in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS',"
            " 'TIFFFILE_NUM_THREADS', 'NUMBA_NUM_THREADS')), end='')");
        REQUIRE(result.exit_code == 0);
        inside = result.output;
    }
    CHECK(inside == "3,3,3,-");
    const auto after = axds::test::run_python("import os\nprint(os.environ.get('OMP_NUM_THREADS', '-'), end='')");
    CHECK(after.output == "-");
}

// issue 16: one worker-count rule, applied before any file is touched.
TEST_CASE("resolve_workers_option: 0 is automatic and a negative count names the option", "[core]") {
    CHECK(axds::resolve_workers_option(0, "x::workers") == axds::resolve_worker_count());
    CHECK(axds::resolve_workers_option(1, "x::workers") == 1);
    CHECK(axds::resolve_workers_option(100000, "x::workers") == axds::logical_cpu_count());
    CHECK_THROWS_MATCHES(
        axds::resolve_workers_option(-1, "x::workers"), axds::value_error,
        message_contains("The 'x::workers' option must be 0 (automatic") && message_contains("but got -1"));
}

TEST_CASE("a negative worker count is refused before any file is read or written", "[core][fs][log]") {
    const axds::test::temp_dir tmp;
    const fs::path tree = tmp.path() / "tree";
    axds::test::write_file(tree / "a.txt", "a");
    // A missing directory would fail the walk: the worker count is reported first (it used to fail after the walk).
    CHECK_THROWS_MATCHES(
        axds::block_on(axds::async_calculate_directory_checksum(tmp.path() / "missing", {.workers = -2})),
        axds::value_error, message_contains("'checksum_options::workers'"));
    CHECK_THROWS_AS(axds::block_on(axds::async_calculate_directory_checksum(tree, {.workers = -1})), axds::value_error);
    CHECK_FALSE(fs::exists(tree / axds::checksum_file_name));  // nothing saved
    // Transfer: the Python library read num_threads < 1 as automatic; here nothing is created.
    CHECK_THROWS_MATCHES(axds::block_on(axds::async_transfer_directory(tree, tmp.path() / "copy", {.workers = -1})),
                         axds::value_error, message_contains("'transfer_options::workers'"));
    CHECK_FALSE(fs::exists(tmp.path() / "copy"));
    // Assembly: no lock file, no archive, every entry in place.
    const fs::path logs = tmp.path() / "logs";
    axds::test::write_entry(logs, 1, 10, {1, 2});
    const auto before = axds::test::snapshot(logs);
    CHECK_THROWS_MATCHES(axds::block_on(axds::async_assemble_log_archives(logs, {.workers = -1})), axds::value_error,
                         message_contains("'assemble_options::workers'"));
    CHECK(axds::test::snapshot(logs) == before);
    // The job runner: the tracker file is not created.
    const fs::path tracker = tmp.path() / "tracker.yaml";
    auto handler = [](axds::job_context) -> asio::awaitable<void> {
        co_return;
    };
    CHECK_THROWS_MATCHES(axds::block_on(axds::async_run_tracker_jobs(tracker, handler, {.workers = -1})),
                         axds::value_error, message_contains("'job_runner_options::workers'"));
    CHECK_FALSE(fs::exists(tracker));
}

TEST_CASE("workers = 0 runs with the automatic count", "[core][fs]") {
    const axds::test::temp_dir tmp;
    axds::test::write_file(tmp.path() / "tree" / "a.txt", "a");
    axds::test::write_file(tmp.path() / "tree" / "sub" / "b.txt", "b");
    const std::string digest = axds::block_on(
        axds::async_calculate_directory_checksum(tmp.path() / "tree", {.workers = 0, .save_checksum = false}));
    CHECK(digest == axds::block_on(axds::async_calculate_directory_checksum(tmp.path() / "tree",
                                                                            {.workers = 1, .save_checksum = false})));
    const auto report = axds::block_on(axds::async_transfer_directory(tmp.path() / "tree", tmp.path() / "copy",
                                                                      {.workers = 0, .verify_integrity = true}));
    CHECK(report.verified);
    CHECK(report.files_copied == 2);
}
