// The data logger with its node pool (issue 21): try_log without page faults, and no loss when the pool is far
// smaller than the traffic. The pool itself is tested in entry_pool_test.cpp.
#include <axds/log/data_logger.hpp>

#include "detail/fault_hooks.hpp"
#include "support/io_thread.hpp"
#include "support/log_entries.hpp"
#include "support/temp_dir.hpp"

#include <axds/log/log_package.hpp>
#include <axds/npy/npz_archive.hpp>
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/resource.h>

using axds::data_logger;
using axds::data_logger_options;
using axds::log_package;
using axds::test::io_thread;
using axds::test::make_package;
using axds::test::temp_dir;

namespace {

long minor_faults_of_this_thread() {
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    return usage.ru_minflt;
}

}  // namespace

TEST_CASE("data logger try_log takes its nodes from the pool and no page fault", "[log]") {
    // Regression test of issue 21: before the pool, every try_log allocated its node on the heap, and fresh heap
    // memory faulted inside the call (the p99.9 tail). A stopped logger queues what it is given, so the calls below
    // use only the nodes populated when the logger was made.
    const temp_dir tmp;
    io_thread loop;
    data_logger logger(loop.executor(), tmp.path(), "faults");
    constexpr std::size_t count = 4000;
    std::vector<log_package> packages;
    packages.reserve(count);
    for (std::uint64_t t = 1; t <= count; ++t) {
        packages.push_back(make_package(1, t, 8));
    }
    for (std::size_t i = 0; i < 100; ++i) {  // warm-up: this stack depth and the code's pages
        REQUIRE(logger.try_log(std::move(packages[i])));
    }
    const long before = minor_faults_of_this_thread();
    for (std::size_t i = 100; i < count; ++i) {
        REQUIRE(logger.try_log(std::move(packages[i])));
    }
    const long faults = minor_faults_of_this_thread() - before;
    const auto stats = axds::detail::data_logger_test_access::pool_stats(logger);
    CHECK(stats.heap_nodes == 0);
    CHECK(stats.populated >= count);
#if defined(__SANITIZE_THREAD__)
    WARN("page faults in " << count - 100 << " try_log calls (TSan's shadow memory faults too): " << faults);
#else
    INFO("page faults in " << count - 100 << " try_log calls");
    CHECK(faults == 0);
#endif
    logger.start();
    const axds::data_logger_report report = logger.stop();
    CHECK(report.entries_written == count);
}

TEST_CASE("data logger with a pool far smaller than its traffic keeps every entry from 4 producers", "[log]") {
    const temp_dir tmp;
    io_thread loop;
    data_logger_options options;
    options.workers = 2;
    options.queue_capacity_bytes = 32 * 1024;  // ~120 entries of 64 bytes: the pool's bound is hit all the time
    data_logger logger(loop.executor(), tmp.path(), "small_pool", options);
    logger.start();
    constexpr std::size_t producers = 4;
    constexpr std::size_t per_producer = 400;
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&logger, p] {
            for (std::uint64_t t = 1; t <= per_producer; ++t) {
                log_package package = make_package(static_cast<std::uint8_t>(p), t, 64);
                while (!logger.try_log(std::move(package))) {
                    std::this_thread::yield();
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    const axds::data_logger_report report = logger.stop();
    const auto stats = axds::detail::data_logger_test_access::pool_stats(logger);
    CHECK(report.clean());
    CHECK(report.entries_written == producers * per_producer);
    CHECK(stats.populated <= stats.max_nodes);
    CHECK(stats.max_nodes < 1024);
    CHECK(stats.free_nodes == stats.populated);  // every node came back
    std::size_t intact = 0;
    for (std::size_t p = 0; p < producers; ++p) {
        for (std::uint64_t t = 1; t <= per_producer; ++t) {
            const log_package expected = make_package(static_cast<std::uint8_t>(p), t, 64);
            const std::vector<std::uint8_t> bytes = expected.npy_file_bytes();
            intact += axds::test::read_file(logger.output_directory() / expected.file_name()) ==
                              std::string(bytes.begin(), bytes.end())
                          ? 1U
                          : 0U;
        }
    }
    CHECK(intact == producers * per_producer);
}

TEST_CASE("data logger gives a producer that refills one package the buffers of written messages back", "[log]") {
    // Issue 19: log(std::move(package)) leaves the package empty but holding the buffer of a message the writer has
    // finished with, so a producer refilling the same package allocates nothing. The recycled buffers must never
    // mix up message contents: every entry is checked byte for byte, in both layouts.
    for (const axds::log_layout layout : {axds::log_layout::entry_files, axds::log_layout::archives}) {
        const temp_dir tmp;
        io_thread loop;
        data_logger_options options;
        options.layout = layout;
        data_logger logger(loop.executor(), tmp.path(), "refill", options);
        constexpr std::uint64_t per_phase = 100;
        log_package package{.source_id = 3};
        const auto refill = [&package](std::uint64_t t) {
            const log_package expected = make_package(3, t, 200 + t % 7);
            package.acquisition_time = t;
            package.payload.assign(expected.payload.begin(), expected.payload.end());
        };
        logger.start();
        for (std::uint64_t t = 1; t <= per_phase; ++t) {
            refill(t);
            logger.log(std::move(package));
            CHECK(package.payload.empty());
        }
        REQUIRE(logger.stop().clean());
        // Stopped: every node is back in the pool with its buffer; the next 100 calls each hand one back.
        std::size_t recycled = 0;
        for (std::uint64_t t = per_phase + 1; t <= 2 * per_phase; ++t) {
            refill(t);
            logger.log(std::move(package));
            CHECK(package.payload.empty());
            recycled += package.payload.capacity() >= 200 ? 1U : 0U;
        }
        CHECK(recycled == per_phase);
        logger.start();
        const axds::data_logger_report report = logger.stop();
        REQUIRE(report.clean());
        CHECK(report.entries_written == per_phase);
        std::size_t intact = 0;
        if (layout == axds::log_layout::entry_files) {
            for (std::uint64_t t = 1; t <= 2 * per_phase; ++t) {
                const log_package expected = make_package(3, t, 200 + t % 7);
                const std::vector<std::uint8_t> bytes = expected.npy_file_bytes();
                intact += axds::test::read_file(logger.output_directory() / expected.file_name()) ==
                                  std::string(bytes.begin(), bytes.end())
                              ? 1U
                              : 0U;
            }
        } else {
            const axds::npz_reader reader(logger.output_directory() / "3_log.npz");
            REQUIRE(reader.members().size() == 2 * per_phase);
            std::uint64_t t = 0;
            for (const auto& member : reader.members()) {
                ++t;
                const log_package expected = make_package(3, t, 200 + t % 7);
                const std::vector<std::uint8_t> bytes = expected.npy_file_bytes();
                const auto data = reader.data(member);
                intact += member.name == expected.file_name() &&
                                  std::string(data.begin(), data.end()) == std::string(bytes.begin(), bytes.end())
                              ? 1U
                              : 0U;
            }
        }
        CHECK(intact == 2 * per_phase);
    }
}
