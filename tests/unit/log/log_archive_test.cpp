#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>

#include "detail/fault_hooks.hpp"
#include "support/log_entries.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/console.hpp>
#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/npy/npy_format.hpp>
#include <axds/npy/npz_archive.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using axds::test::message_contains;
using axds::test::temp_dir;
using axds::test::write_entry;

namespace {

std::size_t count_with_extension(const fs::path& directory, const char* extension) {
    std::size_t count = 0;
    for (const auto& item : fs::directory_iterator(directory)) {
        if (item.path().extension() == extension && item.is_regular_file()) {
            ++count;
        }
    }
    return count;
}

axds::assemble_report assemble(const fs::path& directory, axds::assemble_options options = {}) {
    return axds::block_on(axds::async_assemble_log_archives(directory, std::move(options)));
}

/// A log directory of `sources` sources with `count` entries of 64 bytes each (and their onsets), whose assembly a
/// test cancels through `cancel` while `io` runs it.
struct cancelled_run {
    temp_dir tmp;
    asio::io_context io;
    asio::cancellation_signal cancel;

    cancelled_run(std::uint8_t sources, std::size_t count) {
        for (std::uint8_t source = 1; source <= sources; ++source) {
            axds::test::write_fixture_entries(tmp.path(), source, count, 64);
        }
    }
};

/// `error` is what a cancelled assembly throws: operation_aborted, saying that no entry was removed (and not asio's
/// bare "co_await: Operation aborted", which is no axds::os_error); with `directory`, also how many archives it
/// finished (those there now), in words that fit that count.
void check_cancelled(const std::exception_ptr& error, const fs::path& directory = {}) {
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const axds::os_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
        CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("was cancelled; no entry was removed"));
        if (directory.empty()) {
            return;
        }
        const std::size_t finished = count_with_extension(directory, ".npz");
        CAPTURE(finished);
        CHECK_THAT(std::string(e.what()),
                   Catch::Matchers::Contains(finished == 0   ? "No archive was finished before the cancellation"
                                             : finished == 1 ? "The 1 archive finished before the cancellation holds"
                                                             : fmt::format("The {} archives finished", finished)));
    }
}

}  // namespace

// upstream: assemble_log_archives_test.py::test_assemble_log_archives_basic
TEST_CASE("assembly packs entries of each source into one archive and removes the sources", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 1, 100, {1});
    write_entry(tmp.path(), 1, 200, {2});
    write_entry(tmp.path(), 2, 100, {3});
    write_entry(tmp.path(), 2, 300, {4});
    std::vector<axds::assemble_progress> updates;
    const auto report = assemble(tmp.path(), {.progress = [&](const axds::assemble_progress& p) {
                                     updates.push_back(p);
                                 }});
    CHECK(report.archives == std::vector<fs::path>{tmp.path() / "1_log.npz", tmp.path() / "2_log.npz"});
    CHECK(report.entries == 4);
    CHECK(report.removed == 4);
    CHECK(count_with_extension(tmp.path(), ".npy") == 0);
    CHECK(count_with_extension(tmp.path(), ".npz") == 2);
    REQUIRE_FALSE(updates.empty());
    CHECK(updates.back().entries_done == 4);
    CHECK(updates.back().entries_total == 4);
    CHECK(updates.back().archives_done == 2);
    CHECK(updates.back().bytes_done == 4 * 138);
}

TEST_CASE("a cancelled assembly removes no entry and leaves only complete archives behind", "[log]") {
    cancelled_run run(6, 400);
    auto& [tmp, io, cancel] = run;
    std::size_t updates = 0;
    axds::assemble_options options{.workers = 1, .verify_integrity = true};
    options.progress = [&](const axds::assemble_progress&) {
        if (++updates == 2) {
            cancel.emit(asio::cancellation_type::terminal);  // after the first window of entries
        }
    };
    check_cancelled(axds::test::run_cancellable(io, axds::async_assemble_log_archives(tmp.path(), options), cancel),
                    tmp.path());
    CHECK(count_with_extension(tmp.path(), ".npy") == 6 * 401);
    // Archives finished before the cancellation stay (each complete); no hidden temporary file does.
    for (const auto& item : fs::directory_iterator(tmp.path())) {
        const std::string name = item.path().filename().string();
        CHECK_FALSE(name.ends_with(".partial"));
        if (name.ends_with(".npz")) {
            CHECK(axds::npz_reader(item.path()).members().size() == 401);
        }
    }
    // A second, uncancelled run merges: every entry archived once, none lost.
    const auto report = assemble(tmp.path());
    CHECK(report.entries == 6 * 401);
    CHECK(count_with_extension(tmp.path(), ".npy") == 0);
    for (std::uint8_t source = 1; source <= 6; ++source) {
        CHECK(axds::npz_reader(tmp.path() / fmt::format("{}_log.npz", source)).members().size() == 401);
    }
}

// Found by a hostile-user run: a Ctrl-C in the first milliseconds of `axds assemble`, while the directory was
// scanned, ended with asio's bare "co_await: Operation aborted.".
TEST_CASE("a cancellation while the log directory is scanned says the assembly was cancelled", "[log]") {
    cancelled_run run(2, 50);
    auto& [tmp, io, cancel] = run;
    axds::detail::assembly_hooks hooks{.after_discovery = [&] {  // on the pool: the emit goes to the idle io thread
        asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }};
    const std::exception_ptr error = axds::test::run_cancellable(
        io, axds::detail::async_assemble_log_archives(tmp.path(), {.remove_sources = true}, std::move(hooks)), cancel);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const axds::os_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
        CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("was cancelled while the directory was scanned") &&
                                              Catch::Matchers::Contains("no entry was removed"));
    }
    CHECK(count_with_extension(tmp.path(), ".npy") == 2 * 51);
    CHECK(count_with_extension(tmp.path(), ".npz") == 0);
}

// Found by a hostile-user run: an archive that another process rewrote after the assembly verified it still had
// its entries removed (their data may then be in no file at all). Its entries now stay.
TEST_CASE("entries stay when their archive changed after it was written and verified", "[log]") {
    temp_dir tmp;
    for (std::uint8_t source = 1; source <= 2; ++source) {
        axds::test::write_fixture_entries(tmp.path(), source, 30, 64);
    }
    const bool verify = GENERATE(false, true);
    const std::string change = GENERATE("truncated", "touched", "removed");
    CAPTURE(verify, change);
    const fs::path archive = tmp.path() / "1_log.npz";
    axds::detail::assembly_hooks hooks{.before_remove = [&] {
        if (change == "truncated") {
            fs::resize_file(archive, fs::file_size(archive) / 2);
        } else if (change == "touched") {
            fs::last_write_time(archive, fs::last_write_time(archive));  // the same mtime, a new ctime
        } else {
            fs::remove(archive);
        }
    }};
    CHECK_THROWS_MATCHES(axds::block_on(axds::detail::async_assemble_log_archives(
                             tmp.path(), {.remove_sources = true, .verify_integrity = verify}, std::move(hooks))),
                         axds::runtime_error,
                         message_contains(archive.string() + " changed after this assembly wrote or verified them") &&
                             message_contains("their entries were kept from then on (31 entries were removed in all"));
    std::size_t left_of_1 = 0;
    for (const auto& item : fs::directory_iterator(tmp.path())) {
        const std::string name = item.path().filename().string();
        CHECK_FALSE(name.starts_with("002_"));
        left_of_1 += name.starts_with("001_") && name.ends_with(".npy") ? 1U : 0U;
    }
    CHECK(left_of_1 == 31);
}

// Found by a hostile-user run: the archives were checked once, before the first removal, so an archive removed by
// another process while other sources' entries were being removed still had all its entries deleted.
TEST_CASE("entries stay when their archive changes while entries are being removed", "[log]") {
    temp_dir tmp;
    for (std::uint8_t source = 1; source <= 2; ++source) {
        axds::test::write_fixture_entries(tmp.path(), source, 200, 16);
    }
    // Both while source 1's entries are removed: source 2's archive (checked again before its entries go), or its
    // own (checked again every 64 removals, and before its onset).
    const std::string gone = GENERATE(std::string("2_log.npz"), std::string("1_log.npz"));
    CAPTURE(gone);
    axds::detail::assembly_hooks hooks{.entry_removed = [&](std::size_t removed) {
        if (removed == 100) {
            fs::remove(tmp.path() / gone);
        }
    }};
    CHECK_THROWS_MATCHES(axds::block_on(axds::detail::async_assemble_log_archives(tmp.path(), {}, std::move(hooks))),
                         axds::runtime_error, message_contains("changed after this assembly wrote or verified them"));
    std::array<std::size_t, 3> left{};
    for (const auto& item : fs::directory_iterator(tmp.path())) {
        const std::string name = item.path().filename().string();
        if (name.ends_with(".npy")) {
            ++left.at(name.starts_with("001_") ? 1 : 2);
        }
    }
    if (gone == "2_log.npz") {  // source 1's archive stayed: all its entries went; source 2 keeps all of its own
        CHECK(left[1] == 0);
        CHECK(left[2] == 201);
    } else {  // the rest of source 1's entries stay (removed up to the next check: 128), its onset with them
        CHECK(left[1] == 201 - 128);
        CHECK(fs::exists(tmp.path() / "001_00000000000000000000.npy"));
        CHECK(left[2] == 0);
    }
}

TEST_CASE("a cancellation during the verification removes no entry and says the assembly was cancelled", "[log]") {
    cancelled_run run(2, 50);
    auto& [tmp, io, cancel] = run;
    std::atomic<int> verified{0};
    axds::detail::assembly_hooks hooks{.before_verify = [&](const fs::path&) {
        if (verified++ == 0) {
            // The signal belongs to the io_context's thread: emitted there, and waited for, before verifying on.
            std::promise<void> emitted;
            asio::post(io, [&] {
                cancel.emit(asio::cancellation_type::terminal);
                emitted.set_value();
            });
            emitted.get_future().wait();
        }
    }};
    const axds::assemble_options options{.workers = 1, .verify_integrity = true};
    // It was asio's bare "co_await: Operation aborted", thrown by the removal's co_await.
    check_cancelled(axds::test::run_cancellable(
                        io, axds::detail::async_assemble_log_archives(tmp.path(), options, std::move(hooks)), cancel),
                    tmp.path());
    CHECK(verified == 2);  // the verification itself ran to its end
    CHECK(count_with_extension(tmp.path(), ".npy") == 2 * 51);
    for (std::uint8_t source = 1; source <= 2; ++source) {
        CHECK(axds::npz_reader(tmp.path() / fmt::format("{}_log.npz", source)).members().size() == 51);
    }
}

// upstream: assemble_log_archives_test.py::test_assemble_log_archives_no_memory_mapping
TEST_CASE("assembly of 20 entries without memory mapping, through io_uring batches or plain reads", "[log][io_uring]") {
    temp_dir tmp;
    axds::test::write_fixture_entries(tmp.path(), 5, 19, 20000);  // larger than one prefix read: exercises both paths
    const bool uring = GENERATE(true, false);
    const auto report =
        assemble(tmp.path(), {.memory_mapping = false, .verify_integrity = true, .use_io_uring = uring});
    CHECK(report.entries == 20);
    CHECK(count_with_extension(tmp.path(), ".npy") == 0);
    const axds::npz_reader archive(tmp.path() / "5_log.npz");
    CHECK(archive.members().size() == 20);
}

// upstream: assemble_log_archives_test.py::test_assemble_log_archives_integrity_check
TEST_CASE("assembly with verification and remove_sources=false keeps the entries", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 1, 1000, {1, 2});
    write_entry(tmp.path(), 1, 2000, {3});
    write_entry(tmp.path(), 1, 3000, {});
    const auto report = assemble(tmp.path(), {.remove_sources = false, .verify_integrity = true});
    CHECK(report.removed == 0);
    CHECK(count_with_extension(tmp.path(), ".npy") == 3);
    CHECK(count_with_extension(tmp.path(), ".npz") == 1);
}

// upstream: assemble_log_archives_test.py::test_compare_arrays_mismatch
// upstream: assemble_log_archives_test.py::test_verification_failure_keeps_sources
TEST_CASE("a failed verification names the source and entry and removes nothing", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 1, 0, {9, 9, 9, 9, 9, 9, 9, 9});
    write_entry(tmp.path(), 1, 1000, {1, 2, 3});
    write_entry(tmp.path(), 1, 2000, {4});
    axds::detail::assembly_hooks damage{.after_archive_written = [](const fs::path& archive) {
        // Damage the member of entry 001_…1000 after it is written, before verification reads it back.
        const axds::npz_reader reader(archive);
        const auto offset = reader.data_offset(*reader.find("001_00000000000000001000.npy")) + 130;
        std::string bytes = axds::test::read_file(archive);
        bytes[offset] ^= 0x01;
        axds::test::write_file(archive, bytes);
    }};
    CHECK_THROWS_MATCHES(
        axds::block_on(
            axds::detail::async_assemble_log_archives(tmp.path(), {.verify_integrity = true}, std::move(damage))),
        axds::value_error,
        Catch::Matchers::Message("Unable to verify the integrity of the assembled log archive for source 1. The "
                                 "archived data for entry 001_00000000000000001000 must exactly match the data of the "
                                 "original .npy log entry, but the two differ."));
    CHECK(count_with_extension(tmp.path(), ".npy") == 3);
}

// upstream: assemble_log_archives_test.py::test_nested_logger_directories_untouched
TEST_CASE("assembly ignores nested directories, even with colliding entry names", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 1, 100, {1});
    write_entry(tmp.path(), 1, 200, {2});
    const fs::path nested = tmp.path() / "other_data_log";
    write_entry(nested, 1, 100, {7});
    write_entry(nested, 1, 200, {8});
    assemble(tmp.path());
    CHECK(count_with_extension(tmp.path(), ".npz") == 1);
    CHECK(count_with_extension(nested, ".npy") == 2);
    CHECK(count_with_extension(nested, ".npz") == 0);
}

TEST_CASE("assembly rejects a non-conforming entry name before writing anything", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 1, 100, {1});
    axds::test::write_file(tmp.path() / "notes.npy", "x");
    CHECK_THROWS_MATCHES(assemble(tmp.path()), axds::value_error,
                         message_contains("notes.npy") && message_contains("{source_id}_{timestamp}.npy"));
    axds::test::write_file(tmp.path() / "notes.npy", "x");
    fs::rename(tmp.path() / "notes.npy", tmp.path() / "001_12x.npy");
    CHECK_THROWS_AS(assemble(tmp.path()), axds::value_error);
    CHECK(count_with_extension(tmp.path(), ".npz") == 0);
    CHECK(count_with_extension(tmp.path(), ".npy") == 2);
}

TEST_CASE("assembly archives everything else, and leaves a damaged entry on disk and names it", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 3, 100, {1});
    write_entry(tmp.path(), 3, 300, {3});
    axds::test::write_file(tmp.path() / "003_00000000000000000200.npy", "not an npy file at all");
    axds::test::write_file(tmp.path() / "003_00000000000000000250.npy", "");  // 0 bytes: a crash or a full disk
    const axds::scoped_warning_capture warnings;
    const auto report = assemble(tmp.path());
    CHECK_FALSE(report.clean());
    REQUIRE(report.skipped.size() == 2);
    CHECK(report.entries == 2);
    CHECK(report.removed == 2);
    const axds::npz_reader archive(tmp.path() / "3_log.npz");
    CHECK(archive.members().size() == 2);
    CHECK(fs::exists(tmp.path() / "003_00000000000000000200.npy"));
    CHECK(fs::file_size(tmp.path() / "003_00000000000000000250.npy") == 0);
    const std::string warned = fmt::format("{}", fmt::join(warnings.messages(), "\n"));
    CHECK_THAT(warned, Catch::Matchers::Contains("003_00000000000000000200.npy") &&
                           Catch::Matchers::Contains("magic") &&
                           Catch::Matchers::Contains("003_00000000000000000250.npy"));
    for (const auto& item : fs::directory_iterator(tmp.path())) {
        CHECK(item.path().extension() != ".partial");
    }
}

// np.save of an array shorter than a source id and a timestamp is a valid .npy but not a log entry: archived, it made
// the whole archive unreadable (the reader refuses members under 9 bytes). It stays on disk, named.
TEST_CASE("assembly leaves an entry shorter than its source id and timestamp on disk and names it", "[log]") {
    temp_dir tmp;
    write_entry(tmp.path(), 1, 5, {7, 7});
    for (const std::size_t size : {std::size_t{0}, std::size_t{3}, std::size_t{8}}) {
        const std::string header = axds::encode_npy_u1_header(size);
        axds::test::write_file(tmp.path() / fmt::format("001_0000000000000000000{}.npy", size),
                               header + std::string(size, '\x01'));
    }
    const axds::scoped_warning_capture warnings;
    const auto report = assemble(tmp.path());
    REQUIRE(report.skipped.size() == 3);
    CHECK(report.entries == 1);
    for (const std::size_t size : {std::size_t{0}, std::size_t{3}, std::size_t{8}}) {
        CHECK(fs::exists(tmp.path() / fmt::format("001_0000000000000000000{}.npy", size)));
    }
    const std::string warned = fmt::format("{}", fmt::join(warnings.messages(), "\n"));
    CHECK_THAT(warned, Catch::Matchers::Contains("001_00000000000000000003.npy holds 3 byte(s)") &&
                           Catch::Matchers::Contains("at least 9"));
    const axds::log_archive_reader reader(tmp.path() / "1_log.npz", 1000);  // readable: every member is an entry
    REQUIRE(reader.message_keys() == std::vector<std::string>{"001_00000000000000000005"});
    const auto message = reader.read_message("001_00000000000000000005");
    CHECK(message.timestamp_us == 1005);
    CHECK(std::vector<std::uint8_t>(message.payload.begin(), message.payload.end()) == std::vector<std::uint8_t>{7, 7});
}

TEST_CASE("assembly of an empty or missing directory does nothing", "[log]") {
    temp_dir tmp;
    CHECK(assemble(tmp.path()).archives.empty());
    CHECK(assemble(tmp.path() / "missing").archives.empty());
    CHECK(fs::is_empty(tmp.path()));
}

TEST_CASE("assembly orders members by integer timestamp and merges differently padded sources", "[log]") {
    temp_dir tmp;
    // spec §7.5 example
    write_entry(tmp.path(), 1, 0, axds::make_onset_package(1, 1700000000000000ULL).payload);
    write_entry(tmp.path(), 1, 1500, {1, 2, 3});
    write_entry(tmp.path(), 1, 200, {9});
    write_entry(tmp.path(), 12, 5, {7, 7});
    write_entry(tmp.path(), 1, 100000000000ULL, {});
    assemble(tmp.path(), {.workers = 4});
    const axds::npz_reader one(tmp.path() / "1_log.npz");
    REQUIRE(one.members().size() == 4);
    const std::vector<std::pair<std::string, std::uint64_t>> expected = {{"001_00000000000000000000.npy", 145},
                                                                         {"001_00000000000000000200.npy", 138},
                                                                         {"001_00000000000000001500.npy", 140},
                                                                         {"001_00000000100000000000.npy", 137}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CHECK(one.members()[i].name == expected[i].first);
        CHECK(one.members()[i].uncompressed_size == expected[i].second);
    }
    const axds::npz_reader twelve(tmp.path() / "12_log.npz");
    REQUIRE(twelve.members().size() == 1);
    CHECK(twelve.members()[0].name == "012_00000000000000000005.npy");
    CHECK(twelve.members()[0].uncompressed_size == 139);
}

TEST_CASE("numpy opens assembled archives and every member equals its original entry", "[log][python]") {
    temp_dir tmp;
    const fs::path originals = tmp.path() / "originals";
    const fs::path logs = tmp.path() / "logs";
    for (std::uint8_t source : {std::uint8_t{1}, std::uint8_t{7}, std::uint8_t{255}}) {
        axds::test::write_fixture_entries(logs, source, 300, source);
    }
    fs::copy(logs, originals);
    assemble(logs, {.workers = 3});
    const auto result = axds::test::run_python(
        "import sys, os, numpy as np\n"
        "logs, originals = sys.argv[1], sys.argv[2]\n"
        "checked = 0\n"
        "for source in (1, 7, 255):\n"
        "    with np.load(os.path.join(logs, '%d_log.npz' % source), allow_pickle=False) as z:\n"
        "        keys = list(z.keys())\n"
        "        assert keys == sorted(keys), 'members out of time order'\n"
        "        assert len(keys) == 301\n"
        "        for key in keys:\n"
        "            original = np.load(os.path.join(originals, key + '.npy'))\n"
        "            assert np.array_equal(z[key], original) and z[key].dtype == original.dtype, key\n"
        "            checked += 1\n"
        "print(checked, end='')\n",
        {logs.string(), originals.string()});
    INFO(result.output);
    CHECK(result.output == "903");
}

// upstream: log_archive_reader_test.py::test_find_log_archive_nested
// upstream: log_archive_reader_test.py::test_find_log_archive_missing_directory
// upstream: log_archive_reader_test.py::test_find_log_archive_no_match
// upstream: log_archive_reader_test.py::test_find_log_archive_ambiguous
TEST_CASE("find_log_archive finds exactly one archive anywhere under the directory", "[log]") {
    temp_dir tmp;
    axds::test::write_file(tmp.path() / "session" / "behavior_data_log" / "3_log.npz", "x");
    CHECK(axds::find_log_archive(tmp.path(), "3") == tmp.path() / "session" / "behavior_data_log" / "3_log.npz");
    CHECK_THROWS_MATCHES(axds::find_log_archive(tmp.path() / "missing", "3"), axds::file_not_found_error,
                         Catch::Matchers::Message("Unable to find the log archive of source '3' in '" +
                                                  (tmp.path() / "missing").string() +
                                                  "'. The path does not exist or is not a directory."));
    CHECK_THROWS_MATCHES(
        axds::find_log_archive(tmp.path(), "4"), axds::file_not_found_error,
        Catch::Matchers::Message("Unable to find the log archive of source '4' in '" + tmp.path().string() +
                                 "'. No file named '4_log.npz' was found anywhere under the "
                                 "directory."));
    axds::test::write_file(tmp.path() / "other" / "3_log.npz", "x");
    CHECK_THROWS_MATCHES(axds::find_log_archive(tmp.path(), "3"), axds::value_error,
                         message_contains("but 2 were found"));
}

// upstream: log_archive_reader_test.py::test_discover_log_archives
// upstream: log_archive_reader_test.py::test_discover_log_archives_skips_directories
// upstream: log_archive_reader_test.py::test_discover_log_archives_skips_bare_suffix
// upstream: log_archive_reader_test.py::test_discover_log_archives_missing_directory
TEST_CASE("discover_log_archives lists archives directly in the directory by source", "[log]") {
    temp_dir tmp;
    axds::test::write_file(tmp.path() / "3_log.npz", "x");
    axds::test::write_file(tmp.path() / "11_log.npz", "x");
    axds::test::write_file(tmp.path() / "nested" / "5_log.npz", "x");
    fs::create_directory(tmp.path() / "7_log.npz");
    axds::test::write_file(tmp.path() / "_log.npz", "x");
    const auto found = axds::discover_log_archives(tmp.path());
    CHECK(found == std::map<std::string, fs::path>{{"3", tmp.path() / "3_log.npz"}, {"11", tmp.path() / "11_log.npz"}});
    CHECK_THROWS_MATCHES(
        axds::discover_log_archives(tmp.path() / "missing"), axds::file_not_found_error,
        Catch::Matchers::Message("Unable to discover the log archives stored in '" + (tmp.path() / "missing").string() +
                                 "'. The path does not exist or is not a directory."));
}

// upstream: log_archive_reader_test.py::test_read_archive_message_count
// upstream: log_archive_reader_test.py::test_read_archive_message_count_missing
TEST_CASE("read_archive_message_count counts non-onset members from the directory alone", "[log]") {
    temp_dir tmp;
    for (const std::size_t count : {0U, 1U, 25U}) {
        const fs::path logs = tmp.path() / std::to_string(count);
        axds::test::write_fixture_entries(logs, 2, count);
        assemble(logs);
        CHECK(axds::read_archive_message_count(logs / "2_log.npz") == count);
    }
    CHECK_THROWS_MATCHES(
        axds::read_archive_message_count(tmp.path() / "none.npz"), axds::file_not_found_error,
        Catch::Matchers::Message("Unable to read the message count of the log archive at '" +
                                 (tmp.path() / "none.npz").string() + "'. The path does not exist or is not a file."));
}
