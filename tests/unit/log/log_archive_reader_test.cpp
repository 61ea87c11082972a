#include <axds/log/log_archive_reader.hpp>

#include "support/log_entries.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"
#include "unit/npy/hostile_zip.hpp"

#include <axds/core/runtime.hpp>
#include <axds/core/workers.hpp>
#include <axds/error.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/npy/npz_archive.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using axds::test::fixture_payload;
using axds::test::message_contains;
using axds::test::temp_dir;
namespace hostile = axds::test::hostile;

namespace {

constexpr std::uint64_t onset = 1700000000000000ULL;

/// The spec §8.6 fixture: onset member then `count` messages; returns the archive path.
fs::path make_archive(const fs::path& directory, std::size_t count, std::size_t payload_size = 4,
                      std::uint8_t source = 1) {
    axds::test::write_fixture_entries(directory, source, count, payload_size, onset);
    axds::block_on(axds::async_assemble_log_archives(directory));
    return directory / (std::to_string(source) + "_log.npz");
}

}  // namespace

// upstream: log_archive_reader_test.py::test_log_message_creation
TEST_CASE("log_message holds a timestamp and an owned payload and compares by value", "[log]") {
    const axds::log_message a{.timestamp_us = 5, .payload = {1, 2}};
    axds::log_message b = a;
    CHECK(a == b);
    b.payload[0] = 9;
    CHECK_FALSE(a == b);
    CHECK(a.payload[0] == 1);
}

// upstream: log_archive_reader_test.py::test_init_valid_path
// upstream: log_archive_reader_test.py::test_init_with_onset
// upstream: log_archive_reader_test.py::test_init_missing_path
// upstream: log_archive_reader_test.py::test_repr
TEST_CASE("log_archive_reader checks the path exists and shows its constructor onset", "[log]") {
    temp_dir tmp;
    const auto path = make_archive(tmp.path(), 3);
    const axds::log_archive_reader reader(path);
    CHECK(reader.archive_path() == path);
    CHECK(reader.repr() == "LogArchiveReader(archive_path=" + path.string() + ", onset_us=not discovered)");
    CHECK(reader.onset_timestamp_us() == onset);
    CHECK(reader.repr() == "LogArchiveReader(archive_path=" + path.string() + ", onset_us=not discovered)");
    const axds::log_archive_reader with_onset(path, 9999999999ULL);
    CHECK(with_onset.repr() == "LogArchiveReader(archive_path=" + path.string() + ", onset_us=9999999999)");
    CHECK(with_onset.onset_timestamp_us() == 9999999999ULL);
    CHECK_THROWS_MATCHES(axds::log_archive_reader(tmp.path() / "absent.npz"), axds::file_not_found_error,
                         Catch::Matchers::Message("Unable to open log archive. The file does not exist at the expected "
                                                  "path: " +
                                                  (tmp.path() / "absent.npz").string() + "."));
}

// upstream: log_archive_reader_test.py::test_onset_discovery_caches_keys
// upstream: log_archive_reader_test.py::test_onset_missing_raises
TEST_CASE("onset discovery reads the zero-time member and caches the message keys after it", "[log]") {
    temp_dir tmp;
    const axds::log_archive_reader reader(make_archive(tmp.path(), 10));
    CHECK(reader.onset_timestamp_us() == onset);
    CHECK(reader.message_count() == 10);
    CHECK(reader.message_keys().front() == "001_00000000000000001000");
    CHECK(reader.message_keys().back() == "001_00000000000000010000");

    const fs::path no_onset = tmp.path() / "no_onset";
    axds::test::write_entry(no_onset, 1, 1000, {1});
    axds::test::write_entry(no_onset, 1, 2000, {2});
    axds::block_on(axds::async_assemble_log_archives(no_onset));
    const axds::log_archive_reader missing(no_onset / "1_log.npz");
    CHECK_THROWS_MATCHES(missing.onset_timestamp_us(), axds::value_error,
                         message_contains("Unable to discover onset timestamp"));
    CHECK_THROWS_MATCHES(missing.message_count(), axds::value_error,
                         message_contains("Unable to discover onset timestamp"));
}

TEST_CASE("an onset payload that is not 8 bytes is an error", "[log]") {
    temp_dir tmp;
    axds::test::write_entry(tmp.path(), 1, 0, {1, 2, 3});
    axds::test::write_entry(tmp.path(), 1, 10, {4});
    axds::block_on(axds::async_assemble_log_archives(tmp.path()));
    const axds::log_archive_reader reader(tmp.path() / "1_log.npz");
    CHECK_THROWS_MATCHES(reader.onset_timestamp_us(), axds::value_error, message_contains("holds 3 bytes"));
}

// upstream: log_archive_reader_test.py::test_keys_nonstandard_onset_key
TEST_CASE("with a pre-provided onset, keys follow the standard onset key, or are all keys", "[log]") {
    temp_dir tmp;
    {
        axds::npz_writer writer(tmp.path() / "custom.npz");
        for (const char* key : {"onset_message", "a", "b", "c"}) {
            const axds::log_package package{.source_id = 1, .acquisition_time = 5, .payload = {1}};
            writer.add(std::string(key) + ".npy", package.npy_file_bytes());
        }
        writer.finish();
    }
    const axds::log_archive_reader reader(tmp.path() / "custom.npz", 123);
    CHECK(reader.message_keys() == std::vector<std::string>{"onset_message", "a", "b", "c"});
    CHECK(reader.read_message("b").timestamp_us == 128);
    const axds::log_archive_reader standard(make_archive(tmp.path() / "std", 4), 123);
    CHECK(standard.message_count() == 4);
}

// upstream: log_archive_reader_test.py::test_get_batches_small
// upstream: log_archive_reader_test.py::test_get_batches_empty
// upstream: log_archive_reader_test.py::test_get_batches_large
// upstream: log_archive_reader_test.py::test_get_batches_worker_scaling
// upstream: log_archive_reader_test.py::test_get_batches_default_workers
TEST_CASE("get_batches follows the spec's batching rule", "[log]") {
    temp_dir tmp;
    const axds::log_archive_reader small(make_archive(tmp.path() / "small", 10));
    const auto one = small.get_batches(4);
    REQUIRE(one.size() == 1);
    CHECK(one[0].size() == 10);
    const axds::log_archive_reader empty(make_archive(tmp.path() / "empty", 0));
    CHECK(empty.get_batches(4).empty());

    const axds::log_archive_reader large(make_archive(tmp.path() / "large", 2500, 1));
    const auto batches = large.get_batches(4, 4);
    const auto w = static_cast<std::size_t>(axds::resolve_worker_count(4));
    const std::size_t size = (2500 + w * 4 - 1) / (w * 4);
    CHECK(batches.size() == (2500 + size - 1) / size);
    CHECK(batches.size() > 1);
    std::size_t covered = 0;
    for (const auto& batch : batches) {
        covered += batch.size();
    }
    CHECK(covered == 2500);
    CHECK(large.get_batches(4, 1).size() >= large.get_batches(2, 1).size());
    std::size_t default_covered = 0;
    for (const auto& batch : large.get_batches()) {
        default_covered += batch.size();
    }
    CHECK(default_covered == 2500);
    CHECK_THROWS_MATCHES(large.get_batches(4, 0), axds::value_error, message_contains("'batch_multiplier'"));
    // The library's worker rule: 0 = automatic (the Python default -1 meant the same), negative refused.
    CHECK(large.get_batches(0, 1).size() == large.get_batches(axds::resolve_worker_count(), 1).size());
    CHECK_THROWS_MATCHES(large.get_batches(-1), axds::value_error, message_contains("'workers'"));
}

// upstream: log_archive_reader_test.py::test_iter_messages_all
// upstream: log_archive_reader_test.py::test_iter_messages_subset
// upstream: log_archive_reader_test.py::test_iter_messages_with_onset
TEST_CASE("iteration yields absolute timestamps and zero-copy payloads in key order", "[log]") {
    temp_dir tmp;
    const axds::log_archive_reader reader(make_archive(tmp.path(), 10, 6));
    std::size_t i = 0;
    for (const auto message : reader.messages()) {
        CHECK(message.timestamp_us == onset + (i + 1) * 1000);
        const auto expected = fixture_payload(i, 6);
        CHECK(std::vector<std::uint8_t>(message.payload.begin(), message.payload.end()) == expected);
        ++i;
    }
    CHECK(i == 10);
    const std::vector<std::string> subset(reader.message_keys().begin(), reader.message_keys().begin() + 3);
    const auto range = reader.messages(subset);
    CHECK(range.size() == 3);
    CHECK((*range.begin()).timestamp_us == onset + 1000);
    const std::vector<std::string> unknown{"001_99999999999999999999"};
    CHECK_THROWS_AS(reader.messages(unknown), axds::key_error);
    CHECK_THROWS_AS(reader.read_message("nope"), axds::key_error);

    const axds::log_archive_reader shifted(reader.archive_path(), 5);
    CHECK((*shifted.messages().begin()).timestamp_us == 5 + 1000);
}

// upstream: log_archive_reader_test.py::test_read_all_messages
TEST_CASE("read_all_messages returns timestamps and owned payload copies", "[log]") {
    temp_dir tmp;
    const axds::log_archive_reader reader(make_archive(tmp.path(), 5, 3));
    const auto [timestamps, payloads] = reader.read_all_messages();
    REQUIRE(timestamps.size() == 5);
    REQUIRE(payloads.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(timestamps[i] == onset + (i + 1) * 1000);
        CHECK(payloads[i] == fixture_payload(i, 3));
    }
}

TEST_CASE("messages can be read from a coroutine and batches processed in parallel", "[log]") {
    temp_dir tmp;
    const axds::log_archive_reader reader(make_archive(tmp.path(), 2500, 2));
    asio::io_context io;
    const auto views = axds::test::run_async(io, [&]() -> asio::awaitable<std::vector<axds::log_message_view>> {
        co_return co_await reader.async_read_messages();
    });
    REQUIRE(views.size() == 2500);
    CHECK(views[2499].timestamp_us == onset + 2500 * 1000);

    std::mutex mutex;
    std::set<std::size_t> seen_batches;
    std::atomic<std::uint64_t> total_bytes{0};
    std::atomic<std::size_t> total_messages{0};
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        co_await axds::async_for_each_batch(
            reader,
            [&](std::size_t index, std::span<const axds::log_message_view> batch) {
                for (const auto& message : batch) {
                    total_bytes += message.payload.size();
                }
                total_messages += batch.size();
                const std::lock_guard lock(mutex);
                seen_batches.insert(index);
            },
            2);
    });
    CHECK(total_messages == 2500);
    CHECK(total_bytes == 5000);
    CHECK(seen_batches.size() == reader.get_batches(2).size());

    CHECK_THROWS_WITH(axds::test::run_async(io,
                                            [&]() -> asio::awaitable<void> {
                                                co_await axds::async_for_each_batch(
                                                    reader,
                                                    [](std::size_t index, std::span<const axds::log_message_view>) {
                                                        if (index == 1) {
                                                            throw std::runtime_error("batch failed");
                                                        }
                                                    },
                                                    2);
                                            }),
                      "batch failed");
}

// upstream: log_archive_reader_test.py::test_naming_constants
TEST_CASE("archives are discovered with the naming constants", "[log]") {
    temp_dir tmp;
    const fs::path logs = tmp.path() / (std::string("behavior") + axds::log_directory_suffix);
    axds::test::write_fixture_entries(logs, 4, 1);
    axds::block_on(axds::async_assemble_log_archives(logs));
    const auto found = axds::discover_log_archives(logs);
    REQUIRE(found.size() == 1);
    CHECK(found.at("4") == logs / "4_log.npz");
    CHECK(axds::log_archive_reader(found.at("4")).message_count() == 1);
}

TEST_CASE("the reader reads archives written by np.savez and np.savez_compressed identically", "[log][python]") {
    temp_dir tmp;
    const auto result = axds::test::run_python(
        "import sys, numpy as np\n"
        "def entry(t, payload):\n"
        "    return np.concatenate([np.array([3], np.uint8), np.frombuffer(np.uint64(t).tobytes(), np.uint8),"
        " np.array(payload, np.uint8)])\n"
        "arrays = {'003_%020d' % 0: entry(0, list(np.uint64(1700000000000000).tobytes()))}\n"
        "for i in range(50):\n"
        "    arrays['003_%020d' % ((i + 1) * 1000)] = entry((i + 1) * 1000, [(i + j) % 256 for j in range(i % 9)])\n"
        "np.savez(sys.argv[1] + '/plain.npz', **arrays)\n"
        "np.savez_compressed(sys.argv[1] + '/compressed.npz', **arrays)\n",
        {tmp.path().string()});
    REQUIRE(result.exit_code == 0);
    const axds::log_archive_reader plain(tmp.path() / "plain.npz");
    const axds::log_archive_reader compressed(tmp.path() / "compressed.npz");
    CHECK(plain.onset_timestamp_us() == onset);
    CHECK(compressed.onset_timestamp_us() == onset);
    CHECK(plain.message_keys() == compressed.message_keys());
    CHECK(plain.message_count() == 50);
    CHECK(plain.read_all_messages() == compressed.read_all_messages());
    const auto [timestamps, payloads] = plain.read_all_messages();
    for (std::size_t i = 0; i < 50; ++i) {
        CHECK(timestamps[i] == onset + (i + 1) * 1000);
        CHECK(payloads[i] == fixture_payload(i, i % 9));
    }
    CHECK(axds::read_archive_message_count(tmp.path() / "plain.npz") == 50);
}

namespace {

/// A log entry's .npy bytes (the archive member's data) for source 1.
std::string entry_npy(std::uint64_t time, const std::vector<std::uint8_t>& payload) {
    const axds::log_package package{.source_id = 1, .acquisition_time = time, .payload = payload};
    const auto bytes = package.npy_file_bytes();
    return {bytes.begin(), bytes.end()};
}

std::string onset_npy() {
    const auto bytes = axds::make_onset_package(1, onset).npy_file_bytes();
    return {bytes.begin(), bytes.end()};
}

/// Counts and iterates the messages as `axds archive info` does, in a bounded child.
hostile::outcome info_in_child(const fs::path& path) {
    return hostile::run_bounded([&] {
        const axds::log_archive_reader reader(path);
        std::uint64_t total = reader.message_count();
        for (const auto message : reader.messages()) {
            total += message.payload.size();
        }
        (void)total;
    });
}

void check_rejected(const hostile::outcome& out, const std::vector<std::string>& fragments) {
    INFO(out.describe());
    INFO("seconds: " << out.seconds << ", peak RSS growth: " << out.rss_growth_kib << " KiB");
    CHECK(out.exited_normally);
    CHECK(out.kind == "value_error");
    for (const auto& fragment : fragments) {
        INFO("expected fragment: " << fragment);
        CHECK(out.describe().find(fragment) != std::string::npos);
    }
    CHECK(out.seconds < 10.0);
    CHECK(out.rss_growth_kib < 256 * 1024);
}

}  // namespace

TEST_CASE("a log archive whose records all share one deflated 64 MiB message is rejected at open", "[log][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "1_log.npz";
    hostile::zip_builder zip;
    std::vector<hostile::record> records{zip.add_stored(axds::log_entry_file_name(1, 0), onset_npy())};
    const auto big = zip.add_deflated(axds::log_entry_file_name(1, 1000),
                                      entry_npy(1000, std::vector<std::uint8_t>(64U << 20U, 0)), 6);
    for (std::uint64_t i = 1; i <= 24; ++i) {
        auto r = big;
        r.name = axds::log_entry_file_name(1, i * 1000);
        records.push_back(r);
    }
    zip.finish(records);
    zip.write(path);
    check_rejected(info_in_child(path), {path.string(), "overlap", std::to_string(big.local_header_offset)});
}

TEST_CASE("a flipped payload byte in a stored log message fails its read with a CRC-32 error", "[log][hostile]") {
    temp_dir tmp;
    const fs::path path = make_archive(tmp.path(), 5, 16);
    std::string bytes = axds::test::read_file(path);
    std::string victim;
    {
        const axds::npz_reader archive(path);
        const auto& member = archive.members()[3];
        victim = member.name;
        bytes[archive.data_offset(member) + member.compressed_size - 1] ^= 0x01;  // the last payload byte
    }
    axds::test::write_file(path, bytes);
    const axds::log_archive_reader reader(path);
    CHECK(reader.message_count() == 5);  // counting reads no message
    CHECK_NOTHROW(reader.read_message(reader.message_keys()[0]));
    CHECK_THROWS_MATCHES(reader.read_message(std::string(axds::log_member_key(victim))), axds::value_error,
                         message_contains(path.string()) && message_contains(victim) && message_contains("CRC-32"));
    const auto iterate = [&] {
        for (const auto message : reader.messages()) {
            (void)message;
        }
    };
    CHECK_THROWS_MATCHES(iterate(), axds::value_error, message_contains(victim) && message_contains("CRC-32"));
    check_rejected(info_in_child(path), {path.string(), victim, "CRC-32"});
}

TEST_CASE("a damaged local header of one message is refused when that message is read", "[log][hostile]") {
    temp_dir tmp;
    const fs::path path = make_archive(tmp.path(), 5, 16);
    std::string bytes = axds::test::read_file(path);
    std::string victim;
    {
        const axds::npz_reader archive(path);
        const auto& member = archive.members()[3];
        victim = member.name;
        bytes[member.local_header_offset] ^= 0x01;  // its signature
    }
    axds::test::write_file(path, bytes);
    const axds::log_archive_reader reader(path);
    CHECK(reader.message_count() == 5);  // opening and counting read the central directory only
    CHECK_NOTHROW(reader.read_message(reader.message_keys()[0]));
    const auto refused = [&](const std::function<void()>& read) {
        CHECK_THROWS_MATCHES(read(), axds::value_error,
                             message_contains(path.string()) && message_contains(victim) &&
                                 message_contains("local header") && message_contains("bad signature"));
    };
    refused([&] { (void)reader.read_message(std::string(axds::log_member_key(victim))); });
    refused([&] {
        for (const auto message : reader.messages()) {
            (void)message;
        }
    });
    refused([&] { (void)reader.read_all_messages(); });
    check_rejected(info_in_child(path), {path.string(), victim, "bad signature"});
}

TEST_CASE("a flipped payload byte in a deflated log message fails its read with a CRC-32 error", "[log][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "1_log.npz";
    hostile::zip_builder zip;
    std::vector<hostile::record> records{zip.add_deflated(axds::log_entry_file_name(1, 0), onset_npy(), 0)};
    for (std::uint64_t i = 1; i <= 3; ++i) {
        records.push_back(
            zip.add_deflated(axds::log_entry_file_name(1, i * 1000), entry_npy(i * 1000, fixture_payload(i, 50)), 0));
    }
    zip.finish(records);
    std::string bytes;
    zip.write(path);
    bytes = axds::test::read_file(path);
    bytes[records[2].data_offset + records[2].compressed_size - 10] ^= 0x08;
    axds::test::write_file(path, bytes);
    const axds::log_archive_reader reader(path);
    CHECK(reader.message_count() == 3);
    CHECK(reader.read_message(reader.message_keys()[0]).payload.size() == 50);
    CHECK_THROWS_MATCHES(
        reader.read_message(reader.message_keys()[1]), axds::value_error,
        message_contains(path.string()) && message_contains(records[2].name) && message_contains("CRC-32"));
}

TEST_CASE("onset discovery and message keys read no member but the onset's", "[log][hostile]") {
    temp_dir tmp;
    const fs::path path = tmp.path() / "1_log.npz";
    hostile::zip_builder zip;
    // A damaged deflated message stored before the onset (an archive written out of order): discovery must not read it
    // (its name says it is not the onset), nor must counting read the damaged message after the onset.
    auto early = zip.add_deflated(axds::log_entry_file_name(1, 5000), entry_npy(5000, {1, 2, 3}));
    early.uncompressed_size += 100;  // inflating it fails
    const auto onset_member = zip.add_stored(axds::log_entry_file_name(1, 0), onset_npy());
    const auto good = zip.add_stored(axds::log_entry_file_name(1, 6000), entry_npy(6000, {4, 5}));
    auto late = zip.add_deflated(axds::log_entry_file_name(1, 7000), entry_npy(7000, {6}));
    late.uncompressed_size += 100;
    zip.finish({early, onset_member, good, late});
    zip.write(path);
    const axds::log_archive_reader reader(path);
    CHECK(reader.onset_timestamp_us() == onset);
    CHECK(reader.message_count() == 2);
    CHECK(reader.message_keys() == std::vector<std::string>{"001_00000000000000006000", "001_00000000000000007000"});
    CHECK(reader.read_message("001_00000000000000006000").timestamp_us == onset + 6000);
    CHECK_THROWS_MATCHES(reader.read_message("001_00000000000000007000"), axds::value_error,
                         message_contains(path.string()) && message_contains("001_00000000000000007000.npy"));
}

TEST_CASE("a log reader can skip the CRC-32 check for trusted archives", "[log][hostile]") {
    temp_dir tmp;
    const fs::path path = make_archive(tmp.path(), 3, 8);
    std::string bytes = axds::test::read_file(path);
    {
        const axds::npz_reader archive(path);
        const auto& member = archive.members()[2];
        bytes[archive.data_offset(member) + member.compressed_size - 1] ^= 0x01;
    }
    axds::test::write_file(path, bytes);
    const axds::log_archive_reader checking(path);
    CHECK_THROWS_MATCHES(checking.read_all_messages(), axds::value_error, message_contains("CRC-32"));
    const axds::log_archive_reader trusting(path, {}, {.verify_crc = false});
    const auto [timestamps, payloads] = trusting.read_all_messages();
    REQUIRE(payloads.size() == 3);
    CHECK(payloads[0] == fixture_payload(0, 8));
    CHECK(payloads[1] != fixture_payload(1, 8));  // the damaged message, served unchecked
    CHECK(payloads[2] == fixture_payload(2, 8));
}
