// The data logger on a really full disk: a small tmpfs mounted for the test (root only; skipped otherwise).

#include <axds/log/data_logger.hpp>

#include "support/io_thread.hpp"
#include "support/log_entries.hpp"
#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/npy/npy_format.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <sys/mount.h>

namespace fs = std::filesystem;
using axds::data_logger;
using axds::data_logger_options;
using axds::data_logger_report;
using axds::log_package;
using axds::test::io_thread;
using axds::test::make_package;
using axds::test::temp_dir;
using axds::test::tmpfs_mount;
using Catch::Matchers::Contains;

namespace {}  // namespace

TEST_CASE("data logger on a full disk removes every partial entry and keeps every complete one",
          "[log][disk_full][io_uring]") {
    const bool use_io_uring = GENERATE(false, true);
    constexpr std::size_t entries = 400;
    // 4 KiB and 8 KiB payloads: files of 2 and 3 tmpfs pages, so the 64 pages of the disk run out inside a file
    // too (a short write), not only at a file boundary (an empty file).
    const auto payload_size = [](std::uint64_t t) -> std::size_t {
        return t % 2 == 0 ? 4096 : 8192;
    };
    const temp_dir tmp;
    const fs::path mount_point = tmp.path() / "small_disk";
    fs::create_directory(mount_point);
    const tmpfs_mount disk(mount_point, "256k");  // declared after tmp: unmounted before tmp is removed
    AXDS_SKIP_IF(!disk.mounted(), "SKIPPED: the full-disk test needs to mount a tmpfs (root / CAP_SYS_ADMIN): mount "
                                      << mount_point << " failed: " << disk.why_not());
    INFO("backend: " << (use_io_uring ? "io_uring" : "plain"));

    std::map<std::string, log_package> sent;
    data_logger_report report;
    fs::path directory;
    {
        const axds::scoped_warning_capture warnings;
        io_thread loop;
        data_logger_options options;
        options.use_io_uring = use_io_uring;
        data_logger logger(loop.executor(), mount_point, "full_disk", options);
        directory = logger.output_directory();
        logger.start();
        for (std::uint64_t t = 1; t <= entries; ++t) {
            log_package package = make_package(static_cast<std::uint8_t>(1 + t % 3), t, payload_size(t));
            sent.emplace(package.file_name(), package);
            logger.log(std::move(package));
        }
        report = logger.stop();
        CHECK(report.used_io_uring == (use_io_uring && axds::io_uring_available()));
        // The first failure at once (a full disk must not look fine until the stop), then the §6.5 warning.
        REQUIRE(warnings.messages().size() == 2);
        CHECK_THAT(warnings.messages()[0], Catch::Matchers::Contains("could not write the log entry"));
        CHECK_THAT(warnings.messages()[1], Catch::Matchers::Contains("Unable to confirm"));
    }
    REQUIRE(sent.size() == entries);

    INFO("written " << report.entries_written << ", failed " << report.entries_failed
                    << ", first error: " << report.first_error);
    CHECK(report.entries_written > 0);
    CHECK(report.entries_failed > 0);  // the disk really filled up
    CHECK(report.entries_written + report.entries_failed == entries);
    CHECK(report.entries_left_queued == 0);
    CHECK(report.failed_entries.size() == report.entries_failed);
    // Failed after a successful open (ENOSPC or a short write), not at the open, and the partial file is gone.
    CHECK_THAT(report.first_error, Contains("write failed") || Contains("close failed"));
    CHECK_THAT(report.first_error, Contains("the partial file was removed"));

    const std::set<std::string> failed(report.failed_entries.begin(), report.failed_entries.end());
    CHECK(failed.size() == report.failed_entries.size());
    CHECK(std::all_of(failed.begin(), failed.end(), [&](const std::string& name) { return sent.count(name) == 1; }));

    // Every file left must be a complete, valid entry of a package reported written; summarize what is not.
    std::size_t files = 0;
    std::size_t intact = 0;
    std::size_t empty_files = 0;
    std::size_t short_files = 0;
    std::size_t failed_left = 0;  // files of entries the report names as failed
    std::size_t unknown = 0;      // files that are no entry of this test
    std::map<std::uintmax_t, std::size_t> bad_sizes;
    std::vector<std::string> examples;
    for (const auto& item : fs::directory_iterator(directory)) {
        ++files;
        const std::string name = item.path().filename().string();
        const std::uintmax_t size = item.file_size();
        const auto it = sent.find(name);
        const bool reported_failed = failed.count(name) != 0;
        const std::size_t entry_size = it == sent.end() ? 0 : 128 + 9 + it->second.payload.size();
        bool good = false;
        if (it != sent.end() && !reported_failed && size == entry_size) {
            const std::string content = axds::test::read_file(item.path());
            const std::vector<std::uint8_t> expected = it->second.npy_file_bytes();
            const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(content.data()),  // NOLINT
                                                      content.size());
            good = content.size() == expected.size() &&
                   std::memcmp(content.data(), expected.data(), expected.size()) == 0 &&
                   axds::npy_u1_payload(bytes, name).size() == 9 + it->second.payload.size();
        }
        intact += good ? 1U : 0U;
        empty_files += size == 0 ? 1U : 0U;
        short_files += size < entry_size ? 1U : 0U;
        failed_left += reported_failed ? 1U : 0U;
        unknown += it == sent.end() ? 1U : 0U;
        if (!good) {
            ++bad_sizes[size];
            if (examples.size() < 5) {
                examples.push_back(
                    fmt::format("{} ({} bytes{})", name, size, reported_failed ? ", reported failed" : ""));
            }
        }
    }
    std::string summary;
    for (const auto& [size, count] : bad_sizes) {
        summary += fmt::format("{} x {} bytes; ", count, size);
    }
    INFO(files << " files on disk, " << intact << " intact; bad files by size: " << summary << "e.g. "
               << fmt::format("{}", fmt::join(examples, ", ")));
    CHECK(failed_left == 0);  // no leftover of a failed entry
    CHECK(empty_files == 0);
    CHECK(short_files == 0);
    CHECK(unknown == 0);
    CHECK(intact == files);
    CHECK(files == report.entries_written);
}
