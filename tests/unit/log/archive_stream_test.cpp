// The data logger's streaming layout (log_layout::archives): byte identity with assembly, order, duplicates, merging
// with an existing archive, recovery of torn working files (exhaustive truncation), resuming a working file.

#include <axds/log/data_logger.hpp>

#include "detail/fault_hooks.hpp"
#include "log/archive_stream.hpp"
#include "support/io_thread.hpp"
#include "support/log_entries.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/console.hpp>
#include <axds/error.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/npy/npz_archive.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::data_logger;
using axds::data_logger_options;
using axds::data_logger_report;
using axds::log_layout;
using axds::log_package;
using axds::test::io_thread;
using axds::test::make_package;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;
using Catch::Matchers::Contains;

namespace {

data_logger_options streaming() {
    data_logger_options options;
    options.layout = log_layout::archives;
    return options;
}

/// Onset + messages of two sources, payload sizes 0..300 plus one 20 KiB payload (written from the package) and two
/// whose CRC-32 the producer computes (64 KiB exactly, and 1 MiB + 3 bytes; see detail::payload_crc_bytes).
std::vector<log_package> sample_packages(std::size_t per_source) {
    std::vector<log_package> out;
    for (const int id : {1, 7}) {
        const auto source = static_cast<std::uint8_t>(id);
        out.push_back(axds::make_onset_package(source, 1700000000000000ULL + source));
        for (std::size_t i = 1; i <= per_source; ++i) {
            const std::size_t size = i == per_source / 2   ? 20000
                                     : i == per_source / 3 ? std::size_t{64} << 10U
                                     : i == per_source / 4 ? (std::size_t{1} << 20U) + 3
                                                           : (i * 37) % 301;
            out.push_back(make_package(source, i * 1000 + source, size));
        }
    }
    return out;
}

data_logger_report log_all(const fs::path& root, const std::vector<log_package>& packages, data_logger_options options,
                           const std::string& name = "run") {
    io_thread loop;
    data_logger logger(loop.executor(), root, name, options);
    logger.start();
    for (const auto& p : packages) {
        logger.log(p);
    }
    return logger.stop();
}

axds::assemble_report assemble(const fs::path& directory) {
    asio::io_context io;
    return axds::test::run_async(io, [&] { return axds::async_assemble_log_archives(directory); });
}

/// The messages of an archive as (name, bytes), in central-directory order.
std::vector<std::pair<std::string, std::string>> members_of(const fs::path& archive) {
    const axds::npz_reader reader(archive);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& m : reader.members()) {
        const auto data = reader.data(m);
        out.emplace_back(m.name, std::string(data.begin(), data.end()));
    }
    return out;
}

/// /dev/shm/axds-torn-PID when /dev/shm exists (removed on destruction), else `fallback`.
struct scratch_dir {
    fs::path path;
    bool owned = false;

    explicit scratch_dir(const fs::path& fallback) : path(fallback) {
        std::error_code ec;
        if (fs::is_directory("/dev/shm", ec)) {
            path = fs::path("/dev/shm") / ("axds-torn-" + std::to_string(::getpid()));
            owned = fs::create_directories(path, ec);
            if (!owned) {
                path = fallback;
            }
        }
    }

    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;

    ~scratch_dir() {
        std::error_code ec;
        if (owned) {
            fs::remove_all(path, ec);
        }
    }
};

}  // namespace

TEST_CASE("streaming archives are byte-identical to assembled ones for in-order input", "[log][stream]") {
    const temp_dir tmp;
    const auto packages = sample_packages(120);
    const data_logger_report entries = log_all(tmp.path() / "a", packages, {});
    REQUIRE(entries.clean());
    const axds::assemble_report assembled = assemble(tmp.path() / "a" / "run_data_log");
    REQUIRE(assembled.archives.size() == 2);

    const data_logger_report streamed = log_all(tmp.path() / "b", packages, streaming());
    INFO(streamed.first_error);
    REQUIRE(streamed.clean());
    CHECK(streamed.entries_written == packages.size());
    REQUIRE(streamed.archives.size() == 2);
    for (const char* name : {"1_log.npz", "7_log.npz"}) {
        INFO(name);
        const std::string a = read_file(tmp.path() / "a" / "run_data_log" / name);
        const std::string b = read_file(tmp.path() / "b" / "run_data_log" / name);
        CHECK(a.size() == b.size());
        CHECK(a == b);
    }
    // Nothing else is left in the directory: no working file, no entry.
    std::size_t files = 0;
    for (const auto& item : fs::directory_iterator(tmp.path() / "b" / "run_data_log")) {
        (void)item;
        ++files;
    }
    CHECK(files == 2);
}

TEST_CASE("streaming archives of 70,000 members are byte-identical to assembled ones", "[log][stream]") {
    // Past the sizes the small test reaches: the central directory (~6 MB) is written in several 1 MiB pieces, and
    // the member table grows past its first huge-page allocation (65,536 members) into a second one.
    const temp_dir tmp;
    const scratch_dir scratch(tmp.path());
    std::vector<log_package> packages{axds::make_onset_package(3, 1700000000000000ULL)};
    for (std::uint64_t i = 1; i <= 70000; ++i) {
        packages.push_back(make_package(3, i, i % 5));
    }
    REQUIRE(log_all(scratch.path / "a", packages, {}).clean());
    const axds::assemble_report assembled = assemble(scratch.path / "a" / "run_data_log");
    REQUIRE(assembled.archives.size() == 1);
    const data_logger_report streamed = log_all(scratch.path / "b", packages, streaming());
    INFO(streamed.first_error);
    REQUIRE(streamed.clean());
    CHECK(streamed.entries_written == packages.size());
    const std::string a = read_file(scratch.path / "a" / "run_data_log" / "3_log.npz");
    const std::string b = read_file(scratch.path / "b" / "run_data_log" / "3_log.npz");
    CHECK(a.size() == b.size());
    CHECK(a == b);
}

TEST_CASE("streaming archives sort out-of-order input as assembly does", "[log][stream]") {
    const temp_dir tmp;
    auto packages = sample_packages(80);
    std::mt19937 rng(19);
    std::shuffle(packages.begin(), packages.end(), rng);  // the onsets land anywhere too
    REQUIRE(log_all(tmp.path() / "a", packages, {}).clean());
    (void)assemble(tmp.path() / "a" / "run_data_log");
    const data_logger_report streamed = log_all(tmp.path() / "b", packages, streaming());
    REQUIRE(streamed.clean());
    for (const char* name : {"1_log.npz", "7_log.npz"}) {
        INFO(name);
        const auto a = members_of(tmp.path() / "a" / "run_data_log" / name);
        const auto b = members_of(tmp.path() / "b" / "run_data_log" / name);
        CHECK(a == b);  // same names, same bytes, same (sorted) order
        REQUIRE(!b.empty());
        CHECK(b.front().first.ends_with("_00000000000000000000.npy"));  // onset first
    }
}

TEST_CASE("a streaming logger refuses a second package with the same source and time", "[log][stream]") {
    const temp_dir tmp;
    std::vector<log_package> packages{make_package(1, 5, 10), make_package(1, 6, 10), make_package(1, 5, 12)};
    const axds::scoped_warning_capture warnings;
    const data_logger_report report = log_all(tmp.path(), packages, streaming());
    CHECK(report.entries_written == 2);
    CHECK(report.entries_failed == 1);
    REQUIRE(report.failed_entries.size() == 1);
    CHECK(report.failed_entries[0] == packages[2].file_name());
    CHECK_THAT(report.first_error, Contains("already holds a member with this name"));
    const auto members = members_of(tmp.path() / "run_data_log" / "1_log.npz");
    REQUIRE(members.size() == 2);
    const auto expected = packages[0].npy_file_bytes();
    CHECK(members[0].second == std::string(expected.begin(), expected.end()));  // the first one was kept
}

TEST_CASE("a streaming logger merges into an existing archive and never shrinks it", "[log][stream]") {
    const temp_dir tmp;
    const fs::path archive = tmp.path() / "run_data_log" / "1_log.npz";
    std::vector<log_package> first{axds::make_onset_package(1, 77)};
    for (std::uint64_t t = 1; t <= 10; ++t) {
        first.push_back(make_package(1, t * 2, 50));
    }
    REQUIRE(log_all(tmp.path(), first, streaming()).clean());
    std::vector<log_package> second{make_package(1, 3, 50), make_package(1, 5, 50), make_package(1, 40, 50)};

    SECTION("new keys and identical duplicates") {
        second.push_back(first[5]);  // identical bytes under a key already archived: kept once
        const data_logger_report report = log_all(tmp.path(), second, streaming());
        INFO(report.first_error);
        REQUIRE(report.clean());
        // The same content as assembling every entry at once.
        std::vector<log_package> all = first;
        all.insert(all.end(), second.begin(), second.end() - 1);
        REQUIRE(log_all(tmp.path() / "ref", all, {}).clean());
        (void)assemble(tmp.path() / "ref" / "run_data_log");
        CHECK(read_file(archive) == read_file(tmp.path() / "ref" / "run_data_log" / "1_log.npz"));
        CHECK(!fs::exists(tmp.path() / "run_data_log" / ".1_log.npz.working"));
    }
    SECTION("one key with different bytes: nothing is replaced and the working file keeps its members") {
        const std::string before = read_file(archive);
        second.push_back(make_package(1, 4 * 2, 51));  // the key of first[4], other bytes
        const axds::scoped_warning_capture warnings;
        const data_logger_report report = log_all(tmp.path(), second, streaming());
        CHECK(!report.clean());
        CHECK(report.entries_written == 4);
        REQUIRE(report.unfinished_archives.size() == 1);
        CHECK_THAT(report.first_error, Contains("hold different data"));
        CHECK(read_file(archive) == before);
        const fs::path working = tmp.path() / "run_data_log" / ".1_log.npz.working";
        REQUIRE(fs::exists(working));
        const axds::working_archive_info info = axds::inspect_working_archive(working);
        CHECK(info.recoverable_members == 4);
        CHECK_THAT(info.stop_reason, Contains("central directory"));
    }
}

TEST_CASE("recovery of a working file torn at every offset of its last two members", "[log][stream][recovery]") {
    const temp_dir tmp;
    // A small finished archive: onset + 4 messages; its bytes before the central directory are a working file.
    std::vector<log_package> packages{axds::make_onset_package(3, 1234)};
    for (std::uint64_t t = 1; t <= 4; ++t) {
        packages.push_back(make_package(3, t * 10, 20 + t * 3));
    }
    REQUIRE(log_all(tmp.path() / "src", packages, streaming()).clean());
    const fs::path finished = tmp.path() / "src" / "run_data_log" / "3_log.npz";
    const axds::npz_reader reader(finished);
    const auto& members = reader.members();
    REQUIRE(members.size() == 5);
    std::vector<std::uint64_t> ends;  // where each member ends
    for (const auto& m : members) {
        ends.push_back(reader.data_offset(m) + m.compressed_size);
    }
    const std::string full = read_file(finished).substr(0, ends.back());
    // ~600 recoveries, each with its fsyncs: on tmpfs where there is one (fsync is free there), else under TMPDIR.
    const scratch_dir scratch(tmp.path());
    const fs::path dir = scratch.path / "torn";
    const fs::path working = dir / ".3_log.npz.working";
    const fs::path archive = dir / "3_log.npz";
    std::size_t checked = 0;
    for (std::uint64_t cut = members[3].local_header_offset; cut <= full.size(); ++cut) {
        fs::remove_all(dir);
        fs::create_directories(dir);
        write_file(working, full.substr(0, cut));
        const auto kept = static_cast<std::size_t>(
            std::count_if(ends.begin(), ends.end(), [&](std::uint64_t end) { return end <= cut; }));
        INFO("cut at " << cut << ", intact members " << kept);
        CHECK(axds::inspect_working_archive(working).recoverable_members == kept);
        const auto recovered = axds::detail::recover_working_files(dir);
        REQUIRE(recovered.size() == 1);
        CHECK(recovered[0].members == kept);
        CHECK(recovered[0].bytes_cut == cut - ends[kept - 1]);
        CHECK(!fs::exists(working));
        const auto got = members_of(archive);
        REQUIRE(got.size() == kept);
        for (std::size_t i = 0; i < kept; ++i) {
            const auto expected = packages[i].npy_file_bytes();
            CHECK(got[i].first == packages[i].file_name());
            CHECK(got[i].second == std::string(expected.begin(), expected.end()));
        }
        // Recovery is idempotent: a second run finds nothing to do and changes nothing.
        const std::string once = read_file(archive);
        CHECK(axds::detail::recover_working_files(dir).empty());
        CHECK(read_file(archive) == once);
        if (cut == full.size()) {
            CHECK(once == read_file(finished));  // nothing torn: exactly the archive the stop would have written
        }
        ++checked;
    }
    CHECK(checked > 300);
}

namespace {

/// A finished streaming archive of source 2 (onset + 6 messages of 40 B) turned back into its working file: the
/// bytes before its central directory, with `damage` applied, under run_data_log/.2_log.npz.working.
struct damaged_working_file {
    std::vector<log_package> packages{axds::make_onset_package(2, 99)};
    fs::path dir;
    std::vector<std::uint64_t> starts;  ///< local header offset of each member
    std::string bytes;                  ///< of the working file as written

    damaged_working_file(const fs::path& root, const std::function<void(std::string&, damaged_working_file&)>& damage) {
        for (std::uint64_t t = 1; t <= 6; ++t) {
            packages.push_back(make_package(2, t, 40));
        }
        REQUIRE(log_all(root, packages, streaming()).clean());
        dir = root / "run_data_log";
        const axds::npz_reader reader(dir / "2_log.npz");
        for (const auto& m : reader.members()) {
            starts.push_back(m.local_header_offset);
        }
        const auto& last = reader.members().back();
        starts.push_back(reader.data_offset(last) + last.compressed_size);  // the end of the last member
        bytes = read_file(dir / "2_log.npz").substr(0, starts.back());
        damage(bytes, *this);
        fs::remove(dir / "2_log.npz");
        write_file(dir / ".2_log.npz.working", bytes);
    }

    /// The archive holds exactly the packages at `kept` (indices), as logged.
    void check_archive(const std::vector<std::size_t>& kept) const {
        const auto got = members_of(dir / "2_log.npz");
        REQUIRE(got.size() == kept.size());
        for (std::size_t i = 0; i < kept.size(); ++i) {
            const auto expected = packages[kept[i]].npy_file_bytes();
            CHECK(got[i].first == packages[kept[i]].file_name());
            CHECK(got[i].second == std::string(expected.begin(), expected.end()));
        }
    }

    /// The damaged range `d` covers bytes [from, to) of the working file and was saved unchanged.
    void check_saved(const axds::damaged_bytes& d, std::uint64_t from, std::uint64_t to) const {
        CHECK(d.offset == from);
        CHECK(d.length == to - from);
        CHECK(d.saved_to == dir / ("2_log.npz.damaged-at-" + std::to_string(from)));
        CHECK(read_file(d.saved_to) == bytes.substr(from, to - from));
    }
};

}  // namespace

TEST_CASE("recovery keeps the intact members after a damaged one and saves the damaged bytes",
          "[log][stream][recovery]") {
    const temp_dir tmp;
    const damaged_working_file w(tmp.path(), [](std::string& bytes, damaged_working_file& f) {
        bytes[f.starts[5] - 1] ^= 0x01;  // the last payload bit of the 5th member (the 4th message)
    });
    const axds::assemble_report report = assemble(w.dir);
    REQUIRE(report.recovered.size() == 1);
    const auto& r = report.recovered[0];
    CHECK(r.members == 6);
    CHECK(r.bytes_cut == 0);
    REQUIRE(r.damaged.size() == 1);
    CHECK_THAT(r.damaged[0].reason, Contains("CRC-32"));
    w.check_saved(r.damaged[0], w.starts[4], w.starts[5]);
    CHECK_FALSE(report.clean());
    CHECK(report.found_damage());
    CHECK(!fs::exists(w.dir / ".2_log.npz.working"));
    w.check_archive({0, 1, 2, 3, 5, 6});
    // A second assembly finds nothing more to do and leaves the saved bytes alone.
    CHECK(assemble(w.dir).clean());
    CHECK(read_file(r.damaged[0].saved_to) == w.bytes.substr(w.starts[4], w.starts[5] - w.starts[4]));
}

TEST_CASE("recovery finds the members that bytes inserted before them moved off their 64-byte alignment",
          "[log][stream][recovery]") {
    const temp_dir tmp;
    const damaged_working_file w(tmp.path(), [](std::string& bytes, damaged_working_file& f) {
        bytes.insert(f.starts[3], 1, '\x5a');  // every member from the 4th on is one byte later than written
    });
    const axds::assemble_report report = assemble(w.dir);
    REQUIRE(report.recovered.size() == 1);
    CHECK(report.recovered[0].members == 7);
    CHECK(report.recovered[0].bytes_cut == 0);
    REQUIRE(report.recovered[0].damaged.size() == 1);
    w.check_saved(report.recovered[0].damaged[0], w.starts[3], w.starts[3] + 1);
    w.check_archive({0, 1, 2, 3, 4, 5, 6});
    CHECK(assemble(w.dir).clean());  // and a second recovery finds nothing to do
}

TEST_CASE("saving damaged bytes never overwrites a file that holds other bytes under the name",
          "[log][stream][recovery]") {
    const temp_dir tmp;
    const damaged_working_file w(tmp.path(),
                                 [](std::string& bytes, damaged_working_file& f) { bytes[f.starts[5] - 1] ^= 0x01; });
    const fs::path taken = w.dir / ("2_log.npz.damaged-at-" + std::to_string(w.starts[4]));
    write_file(taken, "a file of the user's");
    fs::create_directory(w.dir / (taken.filename().string() + ".2"));
    const axds::assemble_report report = assemble(w.dir);
    REQUIRE(report.recovered.size() == 1);
    REQUIRE(report.recovered[0].damaged.size() == 1);
    CHECK(report.recovered[0].damaged[0].saved_to == w.dir / (taken.filename().string() + ".3"));
    CHECK(read_file(report.recovered[0].damaged[0].saved_to) == w.bytes.substr(w.starts[4], w.starts[5] - w.starts[4]));
    CHECK(read_file(taken) == "a file of the user's");
    CHECK(fs::is_directory(w.dir / (taken.filename().string() + ".2")));
    w.check_archive({0, 1, 2, 3, 5, 6});
}

TEST_CASE("recovery of a working file whose first member name is damaged keeps the rest", "[log][stream][recovery]") {
    const temp_dir tmp;
    const damaged_working_file w(tmp.path(), [](std::string& bytes, damaged_working_file& f) {
        bytes[f.starts[0] + 31] ^= 0x01;  // a digit of the onset's name
    });
    const axds::assemble_report report = assemble(w.dir);
    REQUIRE(report.recovered.size() == 1);
    CHECK(report.recovered[0].members == 6);
    REQUIRE(report.recovered[0].damaged.size() == 1);
    w.check_saved(report.recovered[0].damaged[0], 0, w.starts[1]);
    w.check_archive({1, 2, 3, 4, 5, 6});
}

TEST_CASE("recovery cuts a torn end silently but saves a whole last member that is damaged",
          "[log][stream][recovery]") {
    const temp_dir tmp;
    SECTION("a whole last member with a bad CRC-32 is saved before it is cut") {
        const damaged_working_file w(tmp.path(), [](std::string& bytes, damaged_working_file& f) {
            bytes[f.starts[7] - 1] ^= 0x01;  // the last payload byte
        });
        const axds::assemble_report report = assemble(w.dir);
        REQUIRE(report.recovered.size() == 1);
        CHECK(report.recovered[0].members == 6);
        CHECK(report.recovered[0].bytes_cut == 0);  // saved, not torn
        REQUIRE(report.recovered[0].damaged.size() == 1);
        w.check_saved(report.recovered[0].damaged[0], w.starts[6], w.starts[7]);
        w.check_archive({0, 1, 2, 3, 4, 5});
    }
    SECTION("a last member cut short is a crash's torn end: cut, nothing saved") {
        const damaged_working_file w(
            tmp.path(), [](std::string& bytes, damaged_working_file& f) { bytes.resize(f.starts[6] + 50); });
        const axds::assemble_report report = assemble(w.dir);
        REQUIRE(report.recovered.size() == 1);
        CHECK(report.recovered[0].members == 6);
        CHECK(report.recovered[0].damaged.empty());
        CHECK(report.clean());
        w.check_archive({0, 1, 2, 3, 4, 5});
    }
}

TEST_CASE("a streaming logger resuming a damaged working file keeps the members after the damage",
          "[log][stream][recovery]") {
    const temp_dir tmp;
    const damaged_working_file w(tmp.path(),
                                 [](std::string& bytes, damaged_working_file& f) { bytes[f.starts[2] + 100] ^= 0x40; });
    axds::scoped_warning_capture warnings;
    const data_logger_report report = log_all(tmp.path(), {make_package(2, 9, 40)}, streaming());
    INFO(report.first_error);
    REQUIRE(report.clean());
    CHECK(report.members_recovered == 6);
    REQUIRE(report.damaged.size() == 1);
    w.check_saved(report.damaged[0], w.starts[2], w.starts[3]);
    const auto messages = warnings.messages();
    REQUIRE(messages.size() == 1);
    CHECK_THAT(messages[0], Contains("damaged") && Contains(w.dir.string()));
    const auto got = members_of(w.dir / "2_log.npz");
    REQUIRE(got.size() == 7);
    std::size_t i = 0;
    for (const std::size_t kept : {0U, 1U, 3U, 4U, 5U, 6U}) {
        CHECK(got[i++].first == w.packages[kept].file_name());
    }
    CHECK(got.back().first == make_package(2, 9, 40).file_name());
}

TEST_CASE("a streaming logger resumes the working file a killed run left", "[log][stream][recovery]") {
    const temp_dir tmp;
    std::vector<log_package> packages{axds::make_onset_package(1, 5)};
    for (std::uint64_t t = 1; t <= 5; ++t) {
        packages.push_back(make_package(1, t, 30));
    }
    REQUIRE(log_all(tmp.path() / "src", packages, streaming()).clean());
    const axds::npz_reader reader(tmp.path() / "src" / "run_data_log" / "1_log.npz");
    const auto& last = reader.members().back();
    // The killed run: every member but the last, and half of the last.
    const std::string torn = read_file(tmp.path() / "src" / "run_data_log" / "1_log.npz")
                                 .substr(0, reader.data_offset(last) + last.compressed_size / 2);
    fs::create_directories(tmp.path() / "run_data_log");
    write_file(tmp.path() / "run_data_log" / ".1_log.npz.working", torn);
    const std::vector<log_package> more{packages.back(), make_package(1, 9, 30)};
    const data_logger_report report = log_all(tmp.path(), more, streaming());
    INFO(report.first_error);
    REQUIRE(report.clean());
    CHECK(report.members_recovered == 5);
    CHECK(report.bytes_cut == torn.size() - last.local_header_offset);
    const auto got = members_of(tmp.path() / "run_data_log" / "1_log.npz");
    REQUIRE(got.size() == 7);
    CHECK(got.back().first == make_package(1, 9, 30).file_name());
}

TEST_CASE("streaming with sync_every_bytes reports what it synced", "[log][stream]") {
    const temp_dir tmp;
    data_logger_options options = streaming();
    options.sync_every_bytes = 1;
    std::vector<log_package> packages;
    for (std::uint64_t t = 1; t <= 50; ++t) {
        packages.push_back(make_package(4, t, 100));
    }
    const data_logger_report report = log_all(tmp.path(), packages, options);
    REQUIRE(report.clean());
    CHECK(report.syncs >= 1);
    const std::uint64_t size = fs::file_size(tmp.path() / "run_data_log" / "4_log.npz");
    const axds::npz_reader reader(tmp.path() / "run_data_log" / "4_log.npz");
    const auto& last = reader.members().back();
    CHECK(report.bytes_synced == reader.data_offset(last) + last.compressed_size);  // every member, before the stop
    CHECK(report.bytes_synced < size);
}

TEST_CASE("streaming with sync_every syncs what was written before the logger fell idle", "[log][stream]") {
    // The time-based sync used to run only after a batch: a logger that fell silent kept its last messages unsynced
    // until the stop. Now a timer wakes the idle writer when the oldest unsynced working file is due.
    const temp_dir tmp;
    data_logger_options options = streaming();
    options.sync_every = std::chrono::milliseconds(300);
    data_logger_report report;
    {
        io_thread loop;
        data_logger logger(loop.executor(), tmp.path(), "run", options);
        logger.start();
        for (std::uint64_t t = 1; t <= 20; ++t) {
            logger.log(make_package(4, t, 100));  // written within the first 300 ms: no batch sync is due yet
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // idle: only the timer can sync now
        report = logger.stop();
    }
    REQUIRE(report.clean());
    CHECK(report.syncs == 1);  // once: nothing is left unsynced after it, so the timer is not armed again
    const axds::npz_reader reader(tmp.path() / "run_data_log" / "4_log.npz");
    const auto& last = reader.members().back();
    CHECK(report.bytes_synced == reader.data_offset(last) + last.compressed_size);  // every member, before the stop
}

TEST_CASE("a streaming logger that created its log directory makes that directory's name durable", "[log][stream]") {
    // fsyncing the files and the log directory is not enough when the logger made the log directory (and parents)
    // itself: their own names live in their parents, which must be fsynced too, or a power loss may take the whole
    // directory however well its files were synced. The fault hook records every directory fsync the writer makes.
    const temp_dir tmp;
    const fs::path output = tmp.path() / "new" / "deeper";
    const bool by_size = GENERATE(true, false);  // with the first durable sync, or (no sync setting) at the stop
    INFO((by_size ? "sync_every_bytes" : "no sync setting"));
    data_logger_options options = streaming();
    options.sync_every_bytes = by_size ? 1 : 0;
    std::vector<fs::path> synced;
    std::mutex synced_mutex;
    const auto record = [&](const fs::path& directory) {  // every directory fsync the writer makes; none fails
        const std::lock_guard lock(synced_mutex);
        synced.push_back(directory);
        return false;
    };
    std::size_t synced_before_stop = 0;
    data_logger_report report;
    {
        io_thread loop;
        data_logger logger(loop.executor(), output, "run", options);
        axds::detail::data_logger_test_access::fail_directory_syncs(logger, record);
        logger.start();
        for (std::uint64_t t = 1; t <= 20; ++t) {
            logger.log(make_package(4, t, 100));
        }
        for (int i = 0; i < 500 && by_size && logger.queued_bytes() != 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the last batch's sync
        {
            const std::lock_guard lock(synced_mutex);
            synced_before_stop = synced.size();
        }
        report = logger.stop();
    }
    REQUIRE(report.clean());
    CHECK(report.syncs_failed == 0);
    const auto count = [&](const fs::path& directory) {
        return std::count(synced.begin(), synced.end(), directory);
    };
    // Each parent once: the log directory's, the created parent's, and the parent of the first created level.
    CHECK(count(output) == 1);
    CHECK(count(tmp.path() / "new") == 1);
    CHECK(count(tmp.path()) == 1);
    if (by_size) {
        CHECK(synced_before_stop >= 4);  // the log directory and the three parents, before the stop
    } else {
        CHECK(synced_before_stop == 0);
    }
    // A second logger in the directory that now exists creates nothing: no parent is synced.
    synced.clear();
    {
        io_thread loop;
        data_logger logger(loop.executor(), output, "run", options);
        axds::detail::data_logger_test_access::fail_directory_syncs(logger, record);
        logger.start();
        logger.log(make_package(4, 100, 100));
        REQUIRE(logger.stop().clean());
    }
    CHECK(count(output) == 0);
    CHECK(count(tmp.path() / "new") == 0);
}

TEST_CASE("a failed directory sync of a streaming logger is counted and named in its report", "[log][stream]") {
    const temp_dir tmp;
    data_logger_options options = streaming();
    options.sync_every_bytes = 1;
    data_logger_report report;
    {
        io_thread loop;
        data_logger logger(loop.executor(), tmp.path() / "fresh", "run", options);
        // Every fsync of the directory holding the new log directory fails (EIO), at each sync and at the stop.
        const fs::path parent = tmp.path() / "fresh";
        axds::detail::data_logger_test_access::fail_directory_syncs(
            logger, [parent](const fs::path& directory) { return directory == parent; });
        logger.start();
        for (std::uint64_t t = 1; t <= 5; ++t) {
            logger.log(make_package(4, t, 100));
        }
        report = logger.stop();
    }
    CHECK(report.syncs_failed >= 2);  // at least the first sync and the stop's
    CHECK_THAT(report.first_error, Catch::Contains("(which the logger created)"));
    CHECK_THAT(report.first_error, Catch::Contains("Input/output error"));
    // The data is all there (every fdatasync succeeded): no entry is failed for it, the archive was finished; only
    // the durability of the new directory's name is in doubt, which syncs_failed and first_error say.
    CHECK(report.clean());
    CHECK(report.entries_failed == 0);
    CHECK(members_of(tmp.path() / "fresh" / "run_data_log" / "4_log.npz").size() == 5);
}

TEST_CASE("numpy and the Python reader's procedure read streamed archives as assembled ones", "[log][stream][python]") {
    const temp_dir tmp;
    auto packages = sample_packages(60);
    std::mt19937 rng(7);
    std::shuffle(packages.begin() + 1, packages.end(), rng);  // out of order (the first onset stays first)
    REQUIRE(log_all(tmp.path() / "a", packages, {}).clean());
    (void)assemble(tmp.path() / "a" / "run_data_log");
    REQUIRE(log_all(tmp.path() / "b", packages, streaming()).clean());
    // LogArchiveReader (spec §8.5) in numpy: the onset is the first member whose bytes 1..8 are 0, the messages are
    // the members after it, each (onset + elapsed, bytes 9..).
    const auto result = axds::test::run_python(
        "import sys, os, numpy as np\n"
        "def read(path):\n"
        "    out = []\n"
        "    with np.load(path, allow_pickle=False) as z:\n"
        "        keys = [k for k in z.files]\n"
        "        onset, first = None, None\n"
        "        for i, k in enumerate(keys):\n"
        "            a = z[k]\n"
        "            assert a.dtype == np.uint8 and a.ndim == 1\n"
        "            if a[1:9].view(np.uint64)[0] == 0:\n"
        "                onset, first = int(a[9:].view(np.uint64)[0]), i\n"
        "                break\n"
        "        for k in keys[first + 1:]:\n"
        "            a = z[k]\n"
        "            out.append((k, onset + int(a[1:9].view(np.uint64)[0]), a[9:].tobytes()))\n"
        "    return out\n"
        "n = 0\n"
        "for source in (1, 7):\n"
        "    a = read(os.path.join(sys.argv[1], '%d_log.npz' % source))\n"
        "    b = read(os.path.join(sys.argv[2], '%d_log.npz' % source))\n"
        "    assert a == b, 'streamed and assembled archives differ for source %d' % source\n"
        "    assert [t for _, t, _ in b] == sorted(t for _, t, _ in b)\n"
        "    n += len(b)\n"
        "print(n, end='')\n",
        {(tmp.path() / "a" / "run_data_log").string(), (tmp.path() / "b" / "run_data_log").string()});
    INFO(result.output);
    CHECK(result.output == "120");
}

// Found by a hostile-user run: recovery opened a working file through a symbolic link and truncated and extended the
// file it pointed to, outside the log directory; a FIFO of a working file's name was removed as an empty one.
TEST_CASE("recovery never rewrites through a linked working file nor removes a FIFO of that name", "[log][stream]") {
    const temp_dir tmp;
    std::vector<log_package> packages;
    for (std::uint64_t t = 1; t <= 5; ++t) {
        packages.push_back(make_package(1, t, 30));
    }
    REQUIRE(log_all(tmp.path() / "src", packages, streaming()).clean());
    const std::string outside = read_file(tmp.path() / "src" / "run_data_log" / "1_log.npz") + "TRAILING";
    write_file(tmp.path() / "elsewhere.bin", outside);
    const fs::path linked = tmp.path() / "linked";
    fs::create_directories(linked);
    fs::create_symlink(tmp.path() / "elsewhere.bin", linked / ".1_log.npz.working");
    CHECK_THROWS_MATCHES(
        assemble(linked), axds::value_error,
        axds::test::message_contains("symbolic link") && axds::test::message_contains(".1_log.npz.working"));
    CHECK(read_file(tmp.path() / "elsewhere.bin") == outside);
    CHECK(fs::is_symlink(linked / ".1_log.npz.working"));
    CHECK_FALSE(fs::exists(linked / "1_log.npz"));

    const fs::path piped = tmp.path() / "piped";
    fs::create_directories(piped);
    REQUIRE(::mkfifo((piped / ".7_log.npz.working").c_str(), 0600) == 0);
    CHECK_THROWS_MATCHES(assemble(piped), axds::value_error, axds::test::message_contains("not a regular file"));
    CHECK(fs::is_fifo(piped / ".7_log.npz.working"));
    // Inspecting it, or any archive path that is a FIFO, is an error at once, never a wait for a writer.
    CHECK_THROWS_MATCHES(axds::inspect_working_archive(piped / ".7_log.npz.working"), axds::value_error,
                         axds::test::message_contains("not a regular file"));
    REQUIRE(::mkfifo((piped / "1_log.npz").c_str(), 0600) == 0);
    CHECK_THROWS(axds::npz_reader(piped / "1_log.npz"));
}

namespace {

/// Logs times 1 to 20 of source 1 to `logger` (a streaming logger named "run" in `root`) and waits until the writer
/// has put some of them in its working file, whose path it returns.
fs::path log_until_working_file(data_logger& logger, const fs::path& root) {
    for (std::uint64_t t = 1; t <= 20; ++t) {
        logger.log(make_package(1, t, 100));
    }
    const fs::path working = root / "run_data_log" / ".1_log.npz.working";
    for (int i = 0; i < 500 && !(fs::exists(working) && fs::file_size(working) > 0); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(fs::file_size(working) > 0);
    return working;
}

}  // namespace

// Found by hostile-user runs: a working file removed, moved away, replaced by another file or truncated while the
// logger wrote it was reported written and lost, or the foreign file was published as the archive.
TEST_CASE("a working file removed, moved or replaced by another process is restored from the open file",
          "[log][stream]") {
    const int action = GENERATE(0, 1, 2, 3);  // removed; moved away; replaced; moved away and replaced
    const temp_dir tmp;
    const axds::scoped_warning_capture warnings;
    io_thread loop;
    data_logger logger(loop.executor(), tmp.path(), "run", streaming());
    logger.start();
    const fs::path working = log_until_working_file(logger, tmp.path());
    if (action == 0 || action == 2) {
        fs::remove(working);  // a cleanup script deleting dot-files
    } else {
        fs::rename(working, tmp.path() / "aside.bin");
    }
    if (action >= 2) {
        write_file(working, "precious");  // another program's file under that name
    }
    for (std::uint64_t t = 21; t <= 40; ++t) {
        logger.log(make_package(1, t, 100));
    }
    const data_logger_report report = logger.stop();
    INFO("action " << action << ": " << report.first_error);
    CHECK(report.clean());
    CHECK(report.entries_written == 40);
    const auto got = members_of(tmp.path() / "run_data_log" / "1_log.npz");
    CHECK(got.size() == 40);
    if (action >= 2) {
        CHECK(read_file(working) == "precious");  // never touched
    }
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages()[0], Contains("by another process") && Contains(working.string()));
}

TEST_CASE("a working file truncated by another process is not published, and recovery keeps what is intact",
          "[log][stream]") {
    const temp_dir tmp;
    io_thread loop;
    data_logger logger(loop.executor(), tmp.path(), "run", streaming());
    logger.start();
    const fs::path working = log_until_working_file(logger, tmp.path());
    fs::resize_file(working, 0);
    for (std::uint64_t t = 21; t <= 40; ++t) {
        logger.log(make_package(1, t, 100));
    }
    const data_logger_report report = logger.stop();
    CHECK_FALSE(report.clean());
    CHECK_THAT(report.first_error, Contains("changed it while the logger wrote it"));
    CHECK_FALSE(fs::exists(tmp.path() / "run_data_log" / "1_log.npz"));  // never a zero-filled archive
    CHECK(fs::exists(working));
}

// Found by a hostile-user run: recovery removed a small file of another program that carried a working file's name
// ("9 torn bytes cut"); a torn first member of a killed logger still goes.
TEST_CASE("recovery leaves a file named like a working file that does not begin like a member", "[log][stream]") {
    const temp_dir tmp;
    write_file(tmp.path() / ".5_log.npz.working", "precious\n");
    write_file(tmp.path() / ".6_log.npz.working", std::string("PK\x03", 3));  // a logger killed in its first write
    const axds::scoped_warning_capture warnings;
    const axds::assemble_report report = assemble(tmp.path());
    CHECK(read_file(tmp.path() / ".5_log.npz.working") == "precious\n");
    CHECK_FALSE(fs::exists(tmp.path() / ".6_log.npz.working"));
    REQUIRE(warnings.messages().size() == 1);
    CHECK_THAT(warnings.messages()[0], Contains(".5_log.npz.working") && Contains("left untouched"));
    (void)report;
}
