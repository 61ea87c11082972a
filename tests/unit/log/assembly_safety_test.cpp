// Assembly never loses what was archived before: reruns merge, crashes are completed, damage is left in place.
#include <axds/log/log_archive.hpp>

#include "support/log_entries.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/log/log_archive_reader.hpp>
#include <axds/npy/npz_archive.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_entry;

namespace {

axds::assemble_report assemble(const fs::path& directory, axds::assemble_options options = {}) {
    return axds::block_on(axds::async_assemble_log_archives(directory, std::move(options)));
}

/// Every entry file in `directory`: name → bytes.
std::map<std::string, std::string> entry_files(const fs::path& directory) {
    std::map<std::string, std::string> out;
    for (const auto& item : fs::directory_iterator(directory)) {
        if (item.path().extension() == ".npy") {
            out[item.path().filename().string()] = read_file(item.path());
        }
    }
    return out;
}

/// Every member of an archive: name → bytes, plus the names in archive order.
std::map<std::string, std::string> members(const fs::path& archive, std::vector<std::string>* order = nullptr) {
    const axds::npz_reader reader(archive);
    std::map<std::string, std::string> out;
    for (const auto& member : reader.members()) {
        reader.verify_crc(member);
        const auto data = reader.data(member);
        out[std::string(member.name)] = std::string(data.begin(), data.end());
        if (order != nullptr) {
            order->emplace_back(member.name);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("assembling again after more entries were logged keeps the archived ones (the archive never shrinks)",
          "[log][safety]") {
    const temp_dir tmp;
    axds::test::write_fixture_entries(tmp.path(), 1, 100, 16);  // onset + 100 entries
    const auto first_entries = entry_files(tmp.path());
    REQUIRE(assemble(tmp.path()).entries == 101);
    for (std::size_t i = 0; i < 10; ++i) {  // the logger goes on in the same directory
        write_entry(tmp.path(), 1, 200000 + i, axds::test::fixture_payload(i, 8));
    }
    const auto second_entries = entry_files(tmp.path());
    const auto report = assemble(tmp.path(), {.verify_integrity = true});
    CHECK(report.entries == 10);
    CHECK(report.merged == 101);
    std::vector<std::string> order;
    const auto archived = members(tmp.path() / "1_log.npz", &order);
    REQUIRE(archived.size() == 111);
    for (const auto& [name, bytes] : first_entries) {
        CHECK(archived.at(name) == bytes);
    }
    for (const auto& [name, bytes] : second_entries) {
        CHECK(archived.at(name) == bytes);
    }
    CHECK(std::is_sorted(order.begin(), order.end()));  // zero-padded names: name order is time order
    CHECK(order.front() == "001_00000000000000000000.npy");
    const axds::log_archive_reader reader(tmp.path() / "1_log.npz");
    CHECK(reader.onset_timestamp_us() == 1700000000000000ULL);
    CHECK(reader.message_count() == 110);
}

TEST_CASE("a rerun after a crash in the removal phase completes the archive with every entry", "[log][safety]") {
    const temp_dir tmp;
    axds::test::write_fixture_entries(tmp.path(), 2, 300, 32);
    const auto originals = entry_files(tmp.path());
    // The state a kill -9 in the removal phase leaves: the archive complete, part of the entries still on disk.
    REQUIRE(assemble(tmp.path(), {.remove_sources = false}).entries == 301);
    std::size_t kept = 0;
    for (const auto& [name, bytes] : originals) {
        if (kept++ % 3 != 0) {
            fs::remove(tmp.path() / name);
        }
    }
    const auto report = assemble(tmp.path(), {.verify_integrity = true});
    CHECK(report.duplicates == 101);
    CHECK(members(tmp.path() / "2_log.npz") == originals);
    CHECK(entry_files(tmp.path()).empty());
    // ... and a third run with nothing left to do keeps the archive as it is.
    const auto again = assemble(tmp.path());
    CHECK(again.entries == 0);
    CHECK(again.archives.empty());
    CHECK(members(tmp.path() / "2_log.npz") == originals);
}

TEST_CASE("the onset entry of each source is removed last", "[log][safety]") {
    const temp_dir tmp;
    axds::test::write_fixture_entries(tmp.path(), 4, 50, 8);
    axds::test::write_fixture_entries(tmp.path(), 5, 50, 8);
    // Watch the removals as they happen: the kernel reports every unlink in order.
    const int watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(watch >= 0);
    REQUIRE(::inotify_add_watch(watch, tmp.path().c_str(), IN_DELETE) >= 0);
    REQUIRE(assemble(tmp.path()).removed == 102);
    std::vector<std::string> removed;
    alignas(inotify_event) char buffer[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(watch, buffer, sizeof buffer);
        if (n <= 0) {
            break;
        }
        for (ssize_t at = 0; at < n;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);  // NOLINT
            if (event->len > 0) {
                removed.emplace_back(event->name);
            }
            at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
    }
    ::close(watch);
    REQUIRE(removed.size() == 102);
    const std::vector<std::string> last_two(removed.end() - 2, removed.end());
    CHECK_THAT(last_two, Catch::Matchers::UnorderedEquals(
                             std::vector<std::string>{"004_00000000000000000000.npy", "005_00000000000000000000.npy"}));
}

TEST_CASE("one key with two different payloads is an error naming both, and nothing changes", "[log][safety]") {
    const temp_dir tmp;
    write_entry(tmp.path(), 1, 0, axds::make_onset_package(1, 1700000000000000ULL).payload);
    write_entry(tmp.path(), 1, 500, {1, 2, 3});
    REQUIRE(assemble(tmp.path()).entries == 2);
    const std::string archive_before = read_file(tmp.path() / "1_log.npz");
    write_entry(tmp.path(), 1, 500, {9, 9, 9});  // same key, other data
    write_entry(tmp.path(), 1, 600, {4});
    CHECK_THROWS_MATCHES(assemble(tmp.path()), axds::value_error,
                         message_contains("001_00000000000000000500.npy") && message_contains("1_log.npz") &&
                             message_contains("different data"));
    CHECK(read_file(tmp.path() / "1_log.npz") == archive_before);
    CHECK(entry_files(tmp.path()).size() == 2);
}

TEST_CASE("an existing archive that cannot be read is never replaced", "[log][safety]") {
    const temp_dir tmp;
    write_entry(tmp.path(), 7, 100, {1});
    SECTION("not an archive") {
        axds::test::write_file(tmp.path() / "7_log.npz", "this is not a zip file");
    }
    SECTION("a damaged member (CRC mismatch)") {
        const temp_dir other;
        write_entry(other.path(), 7, 50, {5, 5, 5, 5});
        assemble(other.path());
        std::string bytes = read_file(other.path() / "7_log.npz");
        const axds::npz_reader reader(other.path() / "7_log.npz");
        bytes[reader.data_offset(reader.members().front()) + 130] ^= 0x20;
        axds::test::write_file(tmp.path() / "7_log.npz", bytes);
    }
    SECTION("a damaged local header (read only when the member is read, and checked before anything is written)") {
        const temp_dir other;
        write_entry(other.path(), 7, 50, {5, 5, 5, 5});
        write_entry(other.path(), 7, 60, {6});
        assemble(other.path());
        std::string bytes = read_file(other.path() / "7_log.npz");
        const axds::npz_reader reader(other.path() / "7_log.npz");
        bytes[reader.members()[1].local_header_offset + 2] ^= 0x01;
        axds::test::write_file(tmp.path() / "7_log.npz", bytes);
    }
    SECTION("an archive of another source") {
        const temp_dir other;
        write_entry(other.path(), 8, 50, {5});
        assemble(other.path());
        fs::copy_file(other.path() / "8_log.npz", tmp.path() / "7_log.npz");
    }
    const std::string before = read_file(tmp.path() / "7_log.npz");
    CHECK_THROWS_MATCHES(assemble(tmp.path()), axds::value_error,
                         message_contains("7_log.npz") && message_contains("left untouched"));
    CHECK(read_file(tmp.path() / "7_log.npz") == before);
    CHECK(entry_files(tmp.path()).size() == 1);
}

TEST_CASE("unfinished archives of killed runs are removed by the next run", "[log][safety]") {
    const temp_dir tmp;
    write_entry(tmp.path(), 1, 100, {1});
    axds::test::write_file(tmp.path() / ".1_log.npz.0badf00d.partial", "half an archive");
    axds::test::write_file(tmp.path() / ".12_log.npz.12345678.partial", "");
    axds::test::write_file(tmp.path() / ".notes.partial", "not ours");
    const auto report = assemble(tmp.path());
    CHECK(report.stale_temp_files_removed == 2);
    CHECK_FALSE(fs::exists(tmp.path() / ".1_log.npz.0badf00d.partial"));
    CHECK_FALSE(fs::exists(tmp.path() / ".12_log.npz.12345678.partial"));
    CHECK(fs::exists(tmp.path() / ".notes.partial"));
}

TEST_CASE("a second assembly of the same directory is refused while one runs", "[log][safety]") {
    const temp_dir tmp;
    write_entry(tmp.path(), 1, 100, {1});
    const int fd = ::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);  // as a running assembly holds it
    CHECK_THROWS_MATCHES(assemble(tmp.path()), axds::runtime_error, message_contains("another assembly"));
    ::close(fd);
    CHECK(assemble(tmp.path()).entries == 1);
}

TEST_CASE("a .npy that is a FIFO, or a link to one, is skipped with a warning instead of hanging", "[log][safety]") {
    const temp_dir tmp;
    write_entry(tmp.path(), 1, 100, {1});
    REQUIRE(::mkfifo((tmp.path() / "001_00000000000000000200.npy").c_str(), 0600) == 0);
    REQUIRE(::mkfifo((tmp.path() / "elsewhere").c_str(), 0600) == 0);
    fs::create_symlink(tmp.path() / "elsewhere", tmp.path() / "001_00000000000000000300.npy");
    fs::create_symlink(tmp.path() / "missing", tmp.path() / "001_00000000000000000400.npy");
    const axds::scoped_warning_capture warnings;
    const auto report = assemble(tmp.path());
    CHECK(report.entries == 1);
    REQUIRE(report.skipped.size() == 3);
    const std::string warned = fmt::format("{}", fmt::join(warnings.messages(), "\n"));
    CHECK_THAT(warned, Catch::Matchers::Contains("001_00000000000000000200.npy") &&
                           Catch::Matchers::Contains("named pipe") &&
                           Catch::Matchers::Contains("001_00000000000000000300.npy") &&
                           Catch::Matchers::Contains("001_00000000000000000400.npy"));
    CHECK(fs::is_fifo(fs::symlink_status(tmp.path() / "001_00000000000000000200.npy")));
}
