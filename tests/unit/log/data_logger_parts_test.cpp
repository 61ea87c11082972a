// data_logger::async_log(source_id, acquisition_time, payload): the one-line forms for coroutines. GCC 12 frees the
// payload of `co_await logger.async_log(axds::log_package{...})` twice; these forms build the package outside the
// co_await expression. The test suite runs under ASan+UBSan in CI, where a double free or a use after free in any
// of these lines aborts the run.
#include <axds/log/data_logger.hpp>

#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include <axds/log/log_package.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using axds::data_logger;
using axds::log_package;

namespace {

std::vector<std::uint8_t> make_frame(std::uint8_t seed, std::size_t size) {
    std::vector<std::uint8_t> frame(size);
    for (std::size_t i = 0; i < size; ++i) {
        frame[i] = static_cast<std::uint8_t>(seed + i * 3);
    }
    return frame;
}

std::vector<std::uint16_t> make_samples() {
    return {258, 7, 65535, 256};
}

/// The entry file of `package` exists and holds exactly what np.save would write for it.
bool entry_on_disk_matches(const fs::path& directory, const log_package& package) {
    const fs::path path = directory / package.file_name();
    if (!fs::exists(path)) {
        return false;
    }
    const std::string content = axds::test::read_file(path);
    const std::vector<std::uint8_t> expected = package.npy_file_bytes();
    return content.size() == expected.size() && std::memcmp(content.data(), expected.data(), expected.size()) == 0;
}

template <typename T>
constexpr bool async_log_accepts_span = requires(data_logger& logger, std::span<const T> values) {
    logger.async_log(1, 2, values);
};

template <typename T>
constexpr bool async_log_accepts_vector = requires(data_logger& logger, std::vector<T> values) {
    logger.async_log(1, 2, std::move(values));
};

}  // namespace

TEST_CASE("data logger async_log one-line forms write every entry without a double free", "[log]") {
    const axds::test::temp_dir tmp;
    asio::io_context io;
    data_logger logger(io.get_executor(), tmp.path(), "one_line");
    const std::vector<std::uint8_t> kept = make_frame(1, 300);
    std::vector<std::uint8_t> moved = make_frame(2, 40);
    const std::vector<std::uint16_t> samples = make_samples();
    const std::array<std::uint32_t, 3> words{0x1FF, 0x12345678, 7};
    const std::vector<bool> flags{true, false, true};
    const std::uint64_t wide[] = {0xFFFFFFFFFFFFFFFFULL, 256};

    constexpr std::uint64_t rounds = 50;  // several rounds: each frees and reuses heap blocks the earlier ones left
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        co_await logger.async_start();
        for (std::uint64_t round = 0; round < rounds; ++round) {
            const std::uint64_t t = round * 100;
            std::vector<std::uint8_t> fresh = moved;
            // One-line forms, each exactly as a user writes it: no named package, the payload in the call.
            co_await logger.async_log(1, t + 1, kept);                                   // an lvalue: copied
            co_await logger.async_log(1, t + 2, std::move(fresh));                       // moved
            co_await logger.async_log(1, t + 3, make_frame(3, 17));                      // a returned vector
            co_await logger.async_log(1, t + 4, std::vector<std::uint8_t>());            // an empty temporary
            co_await logger.async_log(2, t + 5, samples);                                // typed: uint16, narrowed
            co_await logger.async_log(2, t + 6, make_samples());                         // typed temporary
            co_await logger.async_log(2, t + 7, std::span<const std::uint32_t>(words));  // a span
            co_await logger.async_log(3, t + 8, flags);                                  // std::vector<bool>
            co_await logger.async_log(3, t + 9, wide);                                   // a C array
        }
        const axds::data_logger_report report = co_await logger.async_stop();
        CHECK(report.clean());
        CHECK(report.entries_written == 9 * rounds);
    });

    CHECK(kept == make_frame(1, 300));  // the copied form left the caller's vector alone
    std::size_t files = 0;
    for (const auto& item : fs::directory_iterator(logger.output_directory())) {
        files += item.path().extension() == ".npy" ? 1U : 0U;
    }
    CHECK(files == 9 * rounds);
    for (std::uint64_t round = 0; round < rounds; ++round) {
        const std::uint64_t t = round * 100;
        const std::vector<log_package> expected{
            {.source_id = 1, .acquisition_time = t + 1, .payload = make_frame(1, 300)},
            {.source_id = 1, .acquisition_time = t + 2, .payload = make_frame(2, 40)},
            {.source_id = 1, .acquisition_time = t + 3, .payload = make_frame(3, 17)},
            {.source_id = 1, .acquisition_time = t + 4, .payload = {}},
            {.source_id = 2, .acquisition_time = t + 5, .payload = {2, 7, 255, 0}},
            {.source_id = 2, .acquisition_time = t + 6, .payload = {2, 7, 255, 0}},
            {.source_id = 2, .acquisition_time = t + 7, .payload = {0xFF, 0x78, 7}},
            {.source_id = 3, .acquisition_time = t + 8, .payload = {1, 0, 1}},
            {.source_id = 3, .acquisition_time = t + 9, .payload = {0xFF, 0}},
        };
        for (const auto& package : expected) {
            INFO(package.file_name());
            CHECK(entry_on_disk_matches(logger.output_directory(), package));
        }
    }
}

TEST_CASE("data logger async_log parts overloads refuse payloads numpy would refuse at compile time", "[log]") {
    static_assert(async_log_accepts_span<std::uint8_t> && async_log_accepts_span<std::uint64_t>);
    static_assert(async_log_accepts_span<bool> && async_log_accepts_vector<std::uint8_t>);
    static_assert(async_log_accepts_vector<std::uint16_t> && async_log_accepts_vector<bool>);
    static_assert(!async_log_accepts_span<std::int8_t> && !async_log_accepts_span<std::int32_t>);
    static_assert(!async_log_accepts_span<std::int64_t> && !async_log_accepts_span<char>);
    static_assert(!async_log_accepts_span<float> && !async_log_accepts_span<double>);
    static_assert(!async_log_accepts_vector<std::int16_t> && !async_log_accepts_vector<float>);
    static_assert(!async_log_accepts_vector<char> && !async_log_accepts_vector<std::byte>);
    SUCCEED("checked at compile time");
}
