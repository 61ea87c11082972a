// The main end-to-end example: acquisition → log entries → archives → reading, all on one event loop.
//
//   1. A data_logger runs on the program's executor. Three producers feed it at once: a "camera" coroutine
//      (source 1, 1 KiB frames), an "encoder" thread (source 2, 16-byte samples, blocking log()) and a "lick sensor"
//      coroutine (source 3, try_log with async_log as the fallback). Each first logs its onset (spec §7.3).
//   2. async_stop() drains the queue and reports what reached the disk.
//   3. async_assemble_log_archives packs the entries into 1_log.npz, 2_log.npz, 3_log.npz (numpy opens them),
//      verifying every member before removing the entries.
//   4. log_archive_reader reads each archive back zero-copy and checks every message against what was sent.
//
//   ads_example_acquisition_pipeline [--archives] [work-directory]
//
// --archives: the logger streams straight into 1_log.npz, 2_log.npz, 3_log.npz (log_layout::archives), so step 3
// has nothing to assemble (it would recover the archives of a killed run).
//
// Without an argument it works in a fresh temporary directory and removes it afterwards. Exit code 0 means every
// message came back intact.

#include <axds/core/runtime.hpp>
#include <axds/log/data_logger.hpp>
#include <axds/log/log_archive.hpp>
#include <axds/log/log_archive_reader.hpp>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

constexpr std::size_t camera_frames = 2000;
constexpr std::size_t encoder_samples = 5000;
constexpr std::size_t lick_events = 300;

/// The payload every producer sends for message `i` of `source`, so the reader can check each one.
std::vector<std::uint8_t> payload_for(std::uint8_t source, std::uint64_t i, std::size_t size) {
    std::vector<std::uint8_t> payload(size);
    for (std::size_t b = 0; b < size; ++b) {
        payload[b] = static_cast<std::uint8_t>(source * 101 + i * 7 + b);
    }
    return payload;
}

/// Elapsed µs since onset for message i. Real producers use a clock; the only rule is that times of one source
/// are unique (a repeated time would overwrite the earlier entry, as in the Python library).
std::uint64_t time_for(std::uint64_t i, std::uint64_t period_us) {
    return (i + 1) * period_us;
}

asio::awaitable<void> camera(axds::data_logger& logger) {
    co_await logger.async_log_onset(1);
    asio::steady_timer frame_clock(co_await asio::this_coro::executor);
    for (std::uint64_t i = 0; i < camera_frames; ++i) {
        co_await logger.async_log(1, time_for(i, 33'333), payload_for(1, i, 1024));  // source, time, payload
        if (i % 200 == 199) {  // let the loop breathe, as a real frame grabber would between frames
            frame_clock.expires_after(std::chrono::milliseconds(1));
            co_await frame_clock.async_wait(asio::use_awaitable);
        }
    }
}

asio::awaitable<void> lick_sensor(axds::data_logger& logger) {
    co_await logger.async_log_onset(3);
    for (std::uint64_t i = 0; i < lick_events; ++i) {
        axds::log_package lick{.source_id = 3, .acquisition_time = time_for(i, 1'000'003)};
        lick.payload = payload_for(3, i, 4);
        if (!logger.try_log(std::move(lick))) {  // full queue: the package is still ours, wait for space
            co_await logger.async_log(std::move(lick));
        }
    }
}

/// Checks every message of one archive against what its producer sent; returns the number of mismatches.
std::size_t check_archive(const fs::path& archive, std::uint8_t source, std::size_t count, std::uint64_t period_us,
                          std::size_t payload_size) {
    const axds::log_archive_reader reader(archive);
    std::size_t bad = reader.message_count() == count ? 0 : 1;
    std::uint64_t i = 0;
    std::uint64_t bytes = 0;
    for (const auto message : reader.messages()) {
        const auto expected = payload_for(source, i, payload_size);
        const bool same_payload = message.payload.size() == expected.size() &&
                                  std::equal(expected.begin(), expected.end(), message.payload.begin());
        if (message.timestamp_us != reader.onset_timestamp_us() + time_for(i, period_us) || !same_payload) {
            ++bad;
        }
        bytes += message.payload.size();
        ++i;
    }
    fmt::print("  {}: onset {}, {} messages, {} payload bytes, {}\n", archive.filename().string(),
               axds::utc_iso8601(reader.onset_timestamp_us()), reader.message_count(), bytes,
               bad == 0 ? "every message intact" : fmt::format("{} MISMATCHES", bad));
    return bad;
}

asio::awaitable<int> run(fs::path work, bool archives) {
    const auto executor = co_await asio::this_coro::executor;
    axds::data_logger_options logger_options;
    logger_options.layout = archives ? axds::log_layout::archives : axds::log_layout::entry_files;
    axds::data_logger logger(executor, work, "rig", logger_options);
    fmt::print("1. logging into {}\n", logger.output_directory().string());
    co_await logger.async_start();

    // A plain thread producer: blocking log() waits for space instead of dropping.
    std::thread encoder([&logger] {
        logger.log_onset(2);
        for (std::uint64_t i = 0; i < encoder_samples; ++i) {
            logger.log({.source_id = 2, .acquisition_time = time_for(i, 1'000), .payload = payload_for(2, i, 16)});
        }
    });
    // Coroutine producers on this executor, interleaved with the logger's own writer.
    using namespace asio::experimental::awaitable_operators;
    co_await (camera(logger) && lick_sensor(logger));
    encoder.join();

    const axds::data_logger_report written = co_await logger.async_stop();
    fmt::print("2. logger stopped: {} entries written ({}), {} failed\n", written.entries_written,
               written.used_io_uring ? "io_uring" : "plain syscalls", written.entries_failed);
    if (!written.clean()) {
        co_return 1;
    }

    axds::assemble_options options;
    options.verify_integrity = true;
    std::size_t last_percent = 0;
    options.progress = [&last_percent](const axds::assemble_progress& p) {
        const std::size_t percent = p.entries_total == 0 ? 100 : p.entries_done * 100 / p.entries_total;
        if (percent >= last_percent + 25) {
            last_percent = percent;
            fmt::print("   assembling: {}%\n", percent);
        }
    };
    const axds::assemble_report assembled =
        co_await axds::async_assemble_log_archives(logger.output_directory(), std::move(options));
    fmt::print("3. assembled {} entries ({} bytes) into {} verified archives; {} entry files removed\n",
               assembled.entries, assembled.bytes, assembled.archives.size(), assembled.removed);

    fmt::print("4. reading the archives back:\n");
    const fs::path dir = logger.output_directory();
    std::size_t bad = 0;
    bad += check_archive(dir / "1_log.npz", 1, camera_frames, 33'333, 1024);
    bad += check_archive(dir / "2_log.npz", 2, encoder_samples, 1'000, 16);
    bad += check_archive(dir / "3_log.npz", 3, lick_events, 1'000'003, 4);
    fmt::print("{}\n", bad == 0 ? "done: every message came back intact" : "FAILED: some messages differ");
    co_return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    // [--archives] [work-directory], in either order; anything else starting with '-' is refused, not taken as a
    // directory name (`--help` used to create a directory called "--help").
    bool archives = false;
    std::optional<fs::path> directory;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--archives") {
            archives = true;
        } else if (arg == "-h" || arg == "--help") {
            std::printf("usage: %s [--archives] [work-directory]\n", argv[0]);
            return 0;
        } else if (arg.starts_with('-') || directory) {
            std::fprintf(stderr, "usage: %s [--archives] [work-directory] (unexpected argument '%s')\n", argv[0],
                         argv[i]);
            return 2;
        } else {
            directory = fs::path(arg);
        }
    }
    try {
        if (directory) {
            fs::create_directories(*directory);
            return axds::block_on(run(*directory, archives));
        }
        const axds_examples::scratch_directory scratch("axds-pipeline-");
        return axds::block_on(run(scratch.path() / "work", archives));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "acquisition_pipeline failed: %s\n", e.what());
        return 1;
    }
}
