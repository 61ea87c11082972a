// The Python README's LogArchiveReader sections in C++: basic reading, batch processing in parallel (the
// ProcessPoolExecutor example) and reading everything at once.
//
//   ads_example_archive_batch_processing
//
// It first logs 20,000 messages of one source with a data_logger and assembles them into 1_log.npz, then:
//   1. reads the onset and message count and iterates the messages (zero-copy views into the archive's map);
//   2. splits the keys into batches (get_batches) and processes them in parallel two ways: with
//      async_for_each_batch on the library's CPU pool, and with plain worker threads that each open a lightweight
//      reader with the pre-discovered onset (the exact shape of the Python worker function);
//   3. reads all messages at once (owned copies).
// Every way must see the same messages and the same payload sum.

#include <axds/core/runtime.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>

#include <asio/this_coro.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <numeric>
#include <string>
#include <vector>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t message_total = 20'000;

/// Worker function: a lightweight reader with the pre-discovered onset (no onset scan) processes its keys.
std::uint64_t process_batch(const fs::path& archive_path, std::uint64_t onset_us,
                            const std::vector<std::string>& keys) {
    const axds::log_archive_reader reader(archive_path, onset_us);
    std::uint64_t sum = 0;
    for (const auto message : reader.messages(keys)) {
        sum += std::accumulate(message.payload.begin(), message.payload.end(), std::uint64_t{0});
    }
    return sum;
}

asio::awaitable<int> run(fs::path work) {
    // Produce an archive to read: one source, 20,000 messages of 1..64 bytes.
    axds::data_logger logger(co_await asio::this_coro::executor, work, "rig");
    co_await logger.async_start();
    co_await logger.async_log_onset(1);
    for (std::uint64_t i = 0; i < message_total; ++i) {
        std::vector<std::uint8_t> payload(1 + i % 64, static_cast<std::uint8_t>(i));
        co_await logger.async_log(1, (i + 1) * 1000, std::move(payload));  // source, time, payload
    }
    (void)co_await logger.async_stop();
    (void)co_await axds::async_assemble_log_archives(logger.output_directory());
    const fs::path archive_path = axds::find_log_archive(logger.output_directory(), "1");

    // 1. Basic usage.
    const axds::log_archive_reader reader(archive_path);
    fmt::print("Onset timestamp: {} ({})\n", reader.onset_timestamp_us(),
               axds::utc_iso8601(reader.onset_timestamp_us()));
    fmt::print("Message count: {}\n", reader.message_count());
    std::uint64_t sequential = 0;
    std::size_t shown = 0;
    for (const auto message : reader.messages()) {
        if (shown++ < 3) {
            fmt::print("Timestamp: {}, Payload size: {}\n", message.timestamp_us, message.payload.size());
        }
        sequential += std::accumulate(message.payload.begin(), message.payload.end(), std::uint64_t{0});
    }

    // 2a. Batches on the library's CPU pool, awaited without blocking this executor.
    std::atomic<std::uint64_t> pooled{0};
    std::atomic<std::size_t> processed{0};
    std::function<void(std::size_t, std::span<const axds::log_message_view>)> per_batch =
        [&](std::size_t, std::span<const axds::log_message_view> batch) {
            std::uint64_t sum = 0;
            for (const auto& message : batch) {
                sum += std::accumulate(message.payload.begin(), message.payload.end(), std::uint64_t{0});
            }
            pooled += sum;
            processed += batch.size();
        };
    co_await axds::async_for_each_batch(reader, std::move(per_batch), 4, 4);
    fmt::print("Processed {} messages in batches on the CPU pool\n", processed.load());

    // 2b. The README's shape: the main side discovers the onset and makes batches; workers get (path, onset, keys).
    const std::uint64_t onset_us = reader.onset_timestamp_us();
    const auto batches = reader.get_batches(4, 4);
    std::vector<std::future<std::uint64_t>> futures;
    for (const auto& batch : batches) {
        futures.push_back(std::async(std::launch::async, process_batch, archive_path, onset_us, batch));
    }
    std::uint64_t threaded = 0;
    for (auto& future : futures) {
        threaded += future.get();
    }
    fmt::print("Processed {} batches on worker threads\n", batches.size());

    // 3. Everything at once, as owned copies.
    const auto [timestamps, payloads] = reader.read_all_messages();
    std::uint64_t all = 0;
    for (const auto& payload : payloads) {
        all += std::accumulate(payload.begin(), payload.end(), std::uint64_t{0});
    }
    fmt::print("Read {} messages\n", timestamps.size());

    const bool same = reader.message_count() == message_total && processed == message_total &&
                      timestamps.size() == message_total && sequential == pooled && sequential == threaded &&
                      sequential == all;
    fmt::print("payload sum {} — {}\n", sequential, same ? "identical in every mode" : "MISMATCH");
    co_return same ? 0 : 1;
}

}  // namespace

int main() {
    try {
        const axds_examples::scratch_directory scratch("axds-batches-");
        return axds::block_on(run(scratch.path() / "work"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "archive_batch_processing failed: %s\n", e.what());
        return 1;
    }
}
