#include <axds/core/runtime.hpp>

#include "detail/cpu_work.hpp"
#include "support/run_async.hpp"

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

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

/// Raises SIGINT at once, then waits 30 s on a timer (cancellable only if `cancellable`).
asio::awaitable<int> interrupted_wait(bool cancellable) {
    auto executor = co_await asio::this_coro::executor;
    if (!cancellable) {
        co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
    }
    std::raise(SIGINT);
    asio::steady_timer timer(executor, std::chrono::seconds(30));
    co_await timer.async_wait(asio::use_awaitable);
    co_return 1;
}

/// Runs `fn` in a forked child (signals raised there reach only the child) and returns its exit status, or -1 if
/// it died of a signal or ran past 20 s (then it is killed).
int child_exit_status(const std::function<int()>& fn) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        int code = 98;
        try {
            code = fn();
        } catch (...) {
            code = 99;
        }
        ::_exit(code);
    }
    int status = 0;
    for (int i = 0; i < 2000; ++i) {
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
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

TEST_CASE("block_on_interruptible returns the result of an operation no signal interrupts", "[core]") {
    int interrupts = 0;
    CHECK(axds::block_on_interruptible(answer_after_timer(), [&] { ++interrupts; }) == 42);
    CHECK(interrupts == 0);
}

TEST_CASE("block_on_interruptible cancels the operation on the first SIGINT and rethrows how it ended", "[core]") {
    const int status = child_exit_status([] {
        int interrupts = 0;
        const auto start = std::chrono::steady_clock::now();
        try {
            (void)axds::block_on_interruptible(interrupted_wait(true), [&] { ++interrupts; });
            return 10;  // not cancelled
        } catch (const std::system_error& e) {
            const bool quick = std::chrono::steady_clock::now() - start < std::chrono::seconds(10);
            return e.code() == asio::error::operation_aborted && interrupts == 1 && quick ? 0 : 11;
        }
    });
    CHECK(status == 0);
}

TEST_CASE("block_on_interruptible ends the process with status 130 on a second SIGINT, after on_quit", "[core]") {
    // The operation ignores cancellation; the second signal is raised from the first one's callback. on_quit writes
    // into a pipe the test reads once the child is gone (the CLI says there what quitting may leave behind).
    std::array<int, 2> quit_pipe{};
    REQUIRE(::pipe(quit_pipe.data()) == 0);
    const int status = child_exit_status([&quit_pipe] {
        (void)axds::block_on_interruptible(
            interrupted_wait(false), [] { std::raise(SIGINT); },
            [&quit_pipe] { (void)!::write(quit_pipe[1], "quit", 4); });
        return 10;
    });
    ::close(quit_pipe[1]);
    std::array<char, 8> said{};
    const ssize_t n = ::read(quit_pipe[0], said.data(), said.size());
    ::close(quit_pipe[0]);
    CHECK(status == 130);
    CHECK(std::string(said.data(), static_cast<std::size_t>(std::max<ssize_t>(n, 0))) == "quit");
}
