// kill -9 of a real process running a streaming logger (log_layout::archives) at random moments, then recovery:
// every package the producer saw accepted and the writer had handed to the kernel is in the recovered archive, in
// order and byte-exact, and nothing follows that the producer did not send. AXDS_STREAM_CRASH_ROUNDS sets the number
// of kills (default 20).

#include "support/child_process.hpp"
#include "support/log_entries.hpp"
#include "support/temp_dir.hpp"

#include <axds/log/log_archive.hpp>
#include <axds/npy/npz_archive.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "support/run_async.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using axds::test::child_process;
using axds::test::make_package;
using axds::test::temp_dir;

namespace {

constexpr std::size_t producers = 3;
constexpr std::size_t payload_size = 200;

/// The per-producer counts of the last "written" line before the kill.
std::vector<std::uint64_t> parse_written(const std::string& line) {
    std::vector<std::uint64_t> out;
    std::istringstream in(line.substr(8));
    std::uint64_t n = 0;
    while (in >> n) {
        out.push_back(n);
    }
    return out;
}

/// Checks one recovered archive: onset, then packages 1..k of `source` byte-exact and in order. Returns k.
std::uint64_t check_archive(const fs::path& archive, std::uint8_t source) {
    const axds::npz_reader reader(archive);
    const auto& members = reader.members();
    REQUIRE(!members.empty());
    CHECK(members[0].name == fmt::format("{:03d}_{:020d}.npy", source, 0));
    for (std::size_t i = 1; i < members.size(); ++i) {
        const axds::log_package expected = make_package(source, i, payload_size);
        const auto bytes = expected.npy_file_bytes();
        const auto data = reader.data(members[i]);
        INFO("member " << i << " of " << archive);
        REQUIRE(members[i].name == expected.file_name());
        REQUIRE(std::equal(data.begin(), data.end(), bytes.begin(), bytes.end()));
    }
    return members.size() - 1;
}

}  // namespace

TEST_CASE("kill -9 of a streaming logger loses nothing it handed to the kernel", "[log][stream][crash]") {
    int rounds = 20;
    if (const char* env = std::getenv("AXDS_STREAM_CRASH_ROUNDS")) {  // NOLINT(concurrency-mt-unsafe)
        rounds = std::max(1, std::atoi(env));                         // NOLINT
    }
    const auto seed = static_cast<unsigned>(std::random_device{}());
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> delay_us(2000, 150000);
    const temp_dir tmp;
    int killed_mid_run = 0;
    for (int round = 0; round < rounds; ++round) {
        const fs::path output = tmp.path() / fmt::format("round{}", round);
        fs::create_directories(output);
        const int delay = delay_us(rng);
        INFO("round " << round << ", kill after " << delay << " us");
        child_process child(
            {AXDS_STREAM_LOGGER, output.string(), "20000", std::to_string(payload_size), std::to_string(producers)});
        std::thread killer([&child, delay] {
            std::this_thread::sleep_for(std::chrono::microseconds(delay));
            child.kill9();
        });
        std::string last_written;
        bool done = false;
        for (std::string line = child.read_line(); !line.empty(); line = child.read_line()) {
            if (line.starts_with("written")) {
                last_written = line;
            }
            done = done || line.starts_with("done");
        }
        killer.join();
        (void)child.wait();
        killed_mid_run += done ? 0 : 1;
        const fs::path directory = output / "crash_data_log";
        asio::io_context io;
        const axds::assemble_report report =
            axds::test::run_async(io, [&] { return axds::async_assemble_log_archives(directory); });
        CHECK(report.skipped.empty());
        // Idempotent: a second recovery finds nothing.
        const axds::assemble_report again =
            axds::test::run_async(io, [&] { return axds::async_assemble_log_archives(directory); });
        CHECK(again.recovered.empty());
        const std::vector<std::uint64_t> written =
            last_written.empty() ? std::vector<std::uint64_t>(producers, 0) : parse_written(last_written);
        REQUIRE(written.size() == producers);
        for (std::size_t p = 0; p < producers; ++p) {
            const auto source = static_cast<std::uint8_t>(p + 1);
            const fs::path archive = directory / fmt::format("{}_log.npz", source);
            const std::uint64_t kept = fs::exists(archive) ? check_archive(archive, source) : 0;
            INFO("source " << int{source} << ": " << kept << " recovered, " << written[p]
                           << " written before the kill");
            CHECK(kept >= written[p]);
        }
        if (fs::exists(directory)) {  // a kill before the logger made its directory leaves none
            for (const auto& item : fs::directory_iterator(directory)) {
                CHECK(!axds::is_working_archive_name(item.path().filename().string()));
            }
        }
    }
    CHECK(killed_mid_run > 0);
}
