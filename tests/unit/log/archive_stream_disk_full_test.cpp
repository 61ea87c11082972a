// The streaming layout on a really full disk: a small tmpfs mounted for the test (root only; skipped otherwise).

#include <axds/log/data_logger.hpp>

#include "support/io_thread.hpp"
#include "support/log_entries.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <axds/core/console.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/npy/npz_archive.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

namespace fs = std::filesystem;
using axds::data_logger;
using axds::data_logger_options;
using axds::data_logger_report;
using axds::log_package;
using axds::test::io_thread;
using axds::test::make_package;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::tmpfs_mount;
using axds::test::write_file;
using Catch::Matchers::Contains;

namespace {

/// A tmpfs of `size` mounted in a temporary directory (when the test may mount: see `tmpfs_mount::mounted`).
struct small_disk {
    explicit small_disk(const std::string& size) : mount_point(tmp.path() / "disk"), disk(mount_point, size) {}

    temp_dir tmp;
    fs::path mount_point;
    tmpfs_mount disk;  // declared after tmp: unmounted before tmp is removed
};

}  // namespace

TEST_CASE("a streaming logger on a full disk counts what it lost and keeps what reached the disk recoverable",
          "[log][stream][disk_full]") {
    constexpr std::uint64_t packages = 300;
    small_disk small("256k");
    auto& [tmp, mount_point, disk] = small;
    AXDS_SKIP_IF(!disk.mounted(), "SKIPPED: the full-disk test needs to mount a tmpfs (root / CAP_SYS_ADMIN): mount "
                                      << mount_point << " failed: " << disk.why_not());
    std::map<std::string, log_package> sent;
    data_logger_report report;
    fs::path directory;
    {
        const axds::scoped_warning_capture warnings;
        io_thread loop;
        data_logger_options options;
        options.layout = axds::log_layout::archives;
        data_logger logger(loop.executor(), mount_point, "full_disk", options);
        directory = logger.output_directory();
        logger.start();
        for (std::uint64_t t = 1; t <= packages; ++t) {
            log_package package = make_package(static_cast<std::uint8_t>(1 + t % 2), t, t % 3 == 0 ? 3000 : 1500);
            sent.emplace(package.file_name(), package);
            logger.log(std::move(package));
        }
        report = logger.stop();
        CHECK(!warnings.messages().empty());
    }
    INFO("written " << report.entries_written << ", failed " << report.entries_failed << ", unfinished "
                    << report.unfinished_archives.size() << ", first error: " << report.first_error);
    CHECK(report.entries_written > 0);
    CHECK(report.entries_failed > 0);  // the disk really filled up
    CHECK(report.entries_written + report.entries_failed == packages);
    CHECK(report.failed_entries.size() == report.entries_failed);
    CHECK_THAT(report.first_error, Contains("No space left on device"));
    CHECK(!report.clean());

    // The user frees space; recovery finishes whatever the stop could not.
    REQUIRE(disk.resize("4m"));
    asio::io_context io;
    const axds::assemble_report assembled =
        axds::test::run_async(io, [&] { return axds::async_assemble_log_archives(directory); });
    CHECK(assembled.recovered.size() == report.unfinished_archives.size());
    const std::set<std::string> failed(report.failed_entries.begin(), report.failed_entries.end());
    std::size_t members = 0;
    for (const int source : {1, 2}) {
        const fs::path archive = directory / (std::to_string(source) + "_log.npz");
        if (!fs::exists(archive)) {
            continue;
        }
        const axds::npz_reader reader(archive);
        std::uint64_t previous_time = 0;
        for (const auto& m : reader.members()) {
            INFO(m.name);
            const auto it = sent.find(std::string(m.name));
            REQUIRE(it != sent.end());                           // nothing invented
            CHECK(failed.count(std::string(m.name)) == 0);       // nothing reported lost is there
            CHECK(it->second.acquisition_time > previous_time);  // in order
            previous_time = it->second.acquisition_time;
            const auto expected = it->second.npy_file_bytes();
            const auto data = reader.data(m);
            CHECK(std::equal(data.begin(), data.end(), expected.begin(), expected.end()));
            ++members;
        }
    }
    CHECK(members == report.entries_written);  // everything reported written is in the archives
}

// Found by review: a source whose every write failed had its working file removed at stop by name, so a file another
// process had put under that name meanwhile was deleted.
TEST_CASE("a streaming logger with nothing written removes its own working file but never another one of that name",
          "[log][stream][disk_full]") {
    const int meddling = GENERATE(0, 1, 2);  // none; the file replaced by another; bytes appended to it
    small_disk small("8k");
    auto& [tmp, mount_point, disk] = small;
    AXDS_SKIP_IF(!disk.mounted(), "SKIPPED: the full-disk test needs to mount a tmpfs (root / CAP_SYS_ADMIN): mount "
                                      << mount_point << " failed: " << disk.why_not());
    const axds::scoped_warning_capture warnings;
    io_thread loop;
    data_logger_options options;
    options.layout = axds::log_layout::archives;
    data_logger logger(loop.executor(), mount_point, "tiny", options);
    const fs::path working = logger.output_directory() / ".1_log.npz.working";
    logger.start();
    logger.log(make_package(1, 1, 64 * 1024));  // larger than the disk: its write fails
    for (int i = 0; i < 500 && warnings.messages().empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(fs::exists(working));
    REQUIRE(fs::file_size(working) == 0);
    if (meddling == 1) {
        fs::remove(working);
        write_file(working, "precious");  // another program's file under that name
    } else if (meddling == 2) {
        std::ofstream(working, std::ios::app) << "precious";  // another program's bytes in the logger's own file
    }
    const data_logger_report report = logger.stop();
    CHECK(report.entries_failed == 1);
    CHECK(report.entries_written == 0);
    if (meddling != 0) {
        REQUIRE(fs::exists(working));
        CHECK(read_file(working) == "precious");
    } else {
        CHECK_FALSE(fs::exists(working));
    }
}
