#include "detail/batch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using axds::detail::batch_plan;
using axds::detail::batch_result;

namespace {

/// Runs one batch on `io` with `cancel` bound to it; returns its result (or rethrows its error).
batch_result run_batch(asio::io_context& io, asio::cancellation_signal& cancel, std::size_t count, batch_plan plan,
                       axds::detail::item_work work, axds::detail::round_done after_round = {}) {
    batch_result result;
    std::exception_ptr error;
    auto batch = [&]() -> asio::awaitable<void> {
        result = co_await axds::detail::async_for_each_item(count, plan, std::move(work), std::move(after_round));
    };
    asio::co_spawn(io, batch(),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) { error = std::move(e); }));
    io.run();
    if (error) {
        std::rethrow_exception(error);
    }
    return result;
}

}  // namespace

TEST_CASE("the batch runner does every item once and reports each round on the caller's thread", "[core][batch]") {
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::vector<std::atomic<int>> runs(100);
    std::vector<std::pair<std::size_t, std::size_t>> rounds;
    bool reported_on_caller = true;
    const auto caller = std::this_thread::get_id();
    const batch_result result = run_batch(
        io, cancel, runs.size(), {.workers = 3, .round = 30},
        [&](std::size_t i, const std::atomic<bool>&) { ++runs[i]; },
        [&](std::size_t first, std::size_t last) {
            reported_on_caller = reported_on_caller && std::this_thread::get_id() == caller;
            rounds.emplace_back(first, last);
        });
    CHECK(result.done == 100);
    CHECK_FALSE(result.stopped);
    for (const auto& count : runs) {
        CHECK(count.load() == 1);
    }
    std::string seen;
    for (const auto& [first, last] : rounds) {
        seen += "[" + std::to_string(first) + "," + std::to_string(last) + ")";
    }
    CHECK(seen == "[0,30)[30,60)[60,90)[90,100)");
    CHECK(reported_on_caller);
}

TEST_CASE("the batch runner rethrows the error of the lowest failed item and reports no failed round",
          "[core][batch]") {
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::size_t rounds = 0;
    const auto work = [](std::size_t i, const std::atomic<bool>&) {
        if (i == 7 || i == 20) {
            throw std::runtime_error("item " + std::to_string(i));
        }
    };
    CHECK_THROWS_WITH(
        run_batch(io, cancel, 50, {.workers = 2, .round = 25}, work, [&](std::size_t, std::size_t) { ++rounds; }),
        "item 7");
    CHECK(rounds == 0);
}

TEST_CASE("a cancellation between rounds stops the batch before the next round unless it is not cancellable",
          "[core][batch]") {
    const bool cancellable = GENERATE(true, false);
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::atomic<std::size_t> ran{0};
    const batch_result result = run_batch(
        io, cancel, 40, {.workers = 1, .round = 10, .cancellable = cancellable},
        [&](std::size_t, const std::atomic<bool>&) { ++ran; },
        [&](std::size_t, std::size_t) { cancel.emit(asio::cancellation_type::terminal); });
    CHECK(result.stopped == cancellable);
    CHECK(result.done == (cancellable ? 10 : 40));
    CHECK(ran.load() == result.done);
}

TEST_CASE("a cancellation during a round raises stop and no new item starts", "[core][batch]") {
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::atomic<std::size_t> ran{0};
    const auto work = [&](std::size_t i, const std::atomic<bool>& stop) {
        ++ran;
        if (i == 0) {  // on the pool: the signal is emitted on the caller's (idle) thread
            asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (!stop.load() && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
    };
    const batch_result result = run_batch(io, cancel, 1000, {.workers = 1}, work);
    CHECK(result.stopped);
    CHECK(result.done == 1);
    CHECK(ran.load() == 1);
}
