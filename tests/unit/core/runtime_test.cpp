#include <axds/core/runtime.hpp>

#include "detail/cpu_work.hpp"
#include "support/run_async.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

asio::awaitable<int> answer_after_timer() {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable);
    co_return 42;
}

asio::awaitable<void> fail_after_suspending() {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor, std::chrono::milliseconds(1));
    co_await timer.async_wait(asio::use_awaitable);
    throw std::runtime_error("operation failed");
}

asio::awaitable<std::string> move_only_result() {
    co_return std::string(1000, 'x');
}

}  // namespace

TEST_CASE("block_on runs an awaitable to completion and returns its value", "[core]") {
    CHECK(axds::block_on(answer_after_timer()) == 42);
    CHECK(axds::block_on(move_only_result()).size() == 1000);
}

TEST_CASE("block_on rethrows the exception the awaitable ends with", "[core]") {
    CHECK_THROWS_WITH(axds::block_on(fail_after_suspending()), "operation failed");
}

TEST_CASE("async_run_cpu runs work on the CPU pool and resumes on the caller's executor", "[core]") {
    asio::io_context io;
    const auto caller = std::this_thread::get_id();
    std::thread::id worker;
    const int result = axds::test::run_async(io, [&]() -> asio::awaitable<int> {
        auto work = [&worker] {
            worker = std::this_thread::get_id();
            return 7 * 6;
        };
        const int value = co_await axds::detail::async_run_cpu(work);
        CHECK(std::this_thread::get_id() == caller);
        co_return value;
    });
    CHECK(result == 42);
    CHECK(worker != caller);
}

TEST_CASE("async_run_cpu carries an exception from the pool back to the caller", "[core]") {
    asio::io_context io;
    CHECK_THROWS_WITH(axds::test::run_async(io,
                                            []() -> asio::awaitable<void> {
                                                auto work = []() -> int {
                                                    throw std::runtime_error("cpu failed");
                                                };
                                                co_await axds::detail::async_run_cpu(work);
                                            }),
                      "cpu failed");
}

TEST_CASE("io_uring_available answers consistently", "[core]") {
    const bool first = axds::io_uring_available();
    CHECK(axds::io_uring_available() == first);
    if (!first) {
        WARN("io_uring is unavailable on this machine");
    }
}
