// A streaming data logger (log_layout::archives) in its own process, for the kill -9 tests.
//
//   ads_test_stream_logger OUTPUT COUNT PAYLOAD_SIZE PRODUCERS
//     starts a logger "crash" in OUTPUT with the archives layout; producer thread p (source p + 1) logs the onset of
//     its source, then COUNT packages at times 1..COUNT whose payload byte j of package i is
//     (i * 31 + j * 7 + source) & 0xFF (tests/support/log_entries.hpp make_package). Whenever the queue is empty the
//     main thread prints "written N1 N2 ...": the packages of each producer that were accepted before the queue was
//     seen empty, all of them handed to the kernel by then. Finally stops the logger and prints "done".

#include <axds/log/data_logger.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: ads_test_stream_logger OUTPUT COUNT PAYLOAD_SIZE PRODUCERS\n");
        return 2;
    }
    try {
        const std::uint64_t count = std::stoull(argv[2]);
        const std::size_t size = std::stoul(argv[3]);
        const std::size_t producers = std::stoul(argv[4]);
        asio::io_context io;
        auto guard = asio::make_work_guard(io);
        std::thread loop([&io] { io.run(); });

        struct join_on_exit {  // an exception below (e.g. a read-only OUTPUT) must not destroy a joinable thread
            asio::io_context& io;
            std::thread& thread;

            ~join_on_exit() {
                if (thread.joinable()) {
                    io.stop();
                    thread.join();
                }
            }
        } joiner{io, loop};

        axds::data_logger_options options;
        options.layout = axds::log_layout::archives;
        axds::data_logger logger(io.get_executor(), argv[1], "crash", options);
        logger.start();
        std::vector<std::atomic<std::uint64_t>> accepted(producers);
        std::atomic<std::size_t> finished{0};
        std::vector<std::thread> threads;
        for (std::size_t p = 0; p < producers; ++p) {
            threads.emplace_back([&, p] {
                const auto source = static_cast<std::uint8_t>(p + 1);
                logger.log_onset(source);
                for (std::uint64_t i = 1; i <= count; ++i) {
                    axds::log_package package{.source_id = source, .acquisition_time = i};
                    package.payload.resize(size);
                    for (std::size_t j = 0; j < size; ++j) {
                        package.payload[j] = static_cast<std::uint8_t>((i * 31 + j * 7 + source) & 0xFFU);
                    }
                    logger.log(std::move(package));
                    accepted[p].store(i);
                    if (i % 256 == 0) {
                        std::this_thread::sleep_for(std::chrono::microseconds(300));  // let the queue run empty
                    }
                }
                finished.fetch_add(1);
            });
        }
        while (finished.load() < producers) {
            std::string line = "written";
            for (auto& a : accepted) {
                line += " " + std::to_string(a.load());
            }
            if (logger.queued_bytes() == 0) {
                std::printf("%s\n", line.c_str());
                std::fflush(stdout);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        for (auto& t : threads) {
            t.join();
        }
        const axds::data_logger_report report = logger.stop();
        guard.reset();
        loop.join();
        std::printf("done %llu %s\n", static_cast<unsigned long long>(report.entries_written),
                    report.clean() ? "clean" : report.first_error.c_str());
        return report.clean() ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("error %s\n", e.what());
        return 1;
    }
}
