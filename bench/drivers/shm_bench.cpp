// Benchmarks of shared_memory_array (issue: SharedMemoryArray), each with its baseline measured in the same run:
//   1. uncontended locked element read and write: ns/op   vs  a bare robust process-shared pthread mutex lock+unlock
//   2. two processes handing the lock back and forth (a turn flag in the array): round-trip p50/p99, once with
//      lock() on both sides and once with the child waiting through co_await async_lock() on an io_context.
//   3. wake-up latency (issue 21): the parent holds the lock for 100 us, longer than async_lock's spin, so the
//      child is asleep in lock() or co_await async_lock() when the parent unlocks; p50/p99 of unlock → child holds it.
//
//   ads_bench_shm [--ops N] [--round-trips R] [--wake-ups W]

#include <axds/core/runtime.hpp>
#include <axds/shm/shared_memory_array.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

using clock_type = std::chrono::steady_clock;

namespace {

double ns_per_op(clock_type::time_point start, std::size_t ops) {
    return std::chrono::duration<double, std::nano>(clock_type::now() - start).count() / static_cast<double>(ops);
}

/// Turn flag at index 0: 0 = parent's turn, 1 = child's. The child flips 1 → 0 until told to stop (-1).
void child_with_lock(const std::string& name) {
    auto array = axds::shared_memory_array<std::int64_t>::attach(name, {2});
    for (;;) {
        auto view = array.array();
        if (view[0] == -1) {
            return;
        }
        if (view[0] == 1) {
            view[0] = 0;
        }
    }
}

asio::awaitable<void> child_async(axds::shared_memory_array<std::int64_t>& array) {
    for (;;) {
        const axds::shm_lock_guard guard = co_await array.async_lock();
        auto view = array.array(false);
        if (view[0] == -1) {
            co_return;
        }
        if (view[0] == 1) {
            view[0] = 0;
        }
    }
}

void round_trips(const std::string& name, std::size_t count, bool child_uses_async) {
    auto array = axds::shared_memory_array<std::int64_t>::create(name, {2}, std::int64_t{0}, true);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (child_uses_async) {
            auto mine = axds::shared_memory_array<std::int64_t>::attach(name, {2});
            asio::io_context io;
            asio::co_spawn(io, child_async(mine), asio::detached);
            io.run();
        } else {
            child_with_lock(name);
        }
        ::_exit(0);
    }
    std::vector<double> samples;
    samples.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto start = clock_type::now();
        {
            auto view = array.array();
            view[0] = 1;
        }
        for (;;) {
            auto view = array.array();
            if (view[0] == 0) {
                break;
            }
        }
        samples.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
    }
    {
        auto view = array.array();
        view[0] = -1;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::sort(samples.begin(), samples.end());
    fmt::print("lock hand-over round trip, child {}: p50 {:.2f} us, p99 {:.2f} us over {} round trips\n",
               child_uses_async ? "co_await async_lock()" : "lock()", samples[samples.size() / 2],
               samples[samples.size() * 99 / 100], count);
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

/// Wake-up: [0] = phase (1: the parent holds the lock and will release it, 2: the child took it, -1: stop), [1] = the
/// parent's release time, [2] = the child's acquisition time (steady_clock ns, one clock for both processes).
void take_turn(std::span<std::int64_t> view) {
    std::atomic_ref<std::int64_t> phase(view[0]);  // the parent polls it without the lock
    if (phase.load(std::memory_order_relaxed) == 1) {
        view[2] = now_ns();
        phase.store(2, std::memory_order_release);
    }
}

asio::awaitable<void> child_wake_async(axds::shared_memory_array<std::int64_t>& array) {
    for (;;) {
        const axds::shm_lock_guard guard = co_await array.async_lock();
        auto view = array.array(false);
        if (view[0] == -1) {
            co_return;
        }
        take_turn(view.data());
    }
}

void wake_ups(const std::string& name, std::size_t count, bool child_uses_async) {
    using array_type = axds::shared_memory_array<std::int64_t>;
    auto array = array_type::create(name, {3}, std::int64_t{0}, true);
    const pid_t pid = ::fork();
    if (pid == 0) {
        auto mine = array_type::attach(name, {3});
        if (child_uses_async) {
            asio::io_context io;
            asio::co_spawn(io, child_wake_async(mine), asio::detached);
            io.run();
        } else {
            for (;;) {
                const axds::shm_lock_guard guard = mine.lock();
                auto view = mine.array(false);
                if (view[0] == -1) {
                    break;
                }
                take_turn(view.data());
            }
        }
        ::_exit(0);
    }
    std::vector<double> samples;
    samples.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        {
            const axds::shm_lock_guard guard = array.lock();
            auto view = array.array(false);
            view[0] = 1;
            std::this_thread::sleep_for(std::chrono::microseconds(100));  // the child tries, spins, and sleeps
            view[1] = now_ns();
        }
        // Waits without the lock: taking it here would race the child woken for it (a robust mutex hands nothing
        // over), and this measures the wake-up, not that race.
        auto view = array.array(false);
        const std::atomic_ref<std::int64_t> phase(view[0]);
        while (phase.load(std::memory_order_acquire) != 2) {
        }
        const axds::shm_lock_guard guard = array.lock();
        samples.push_back(static_cast<double>(view[2] - view[1]) / 1e3);
        view[0] = 0;
    }
    {
        auto view = array.array();
        view[0] = -1;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::sort(samples.begin(), samples.end());
    fmt::print(
        "wake-up, unlock to the sleeping child holding the lock, child {}: p50 {:.2f} us, p99 {:.2f} us over {}\n",
        child_uses_async ? "co_await async_lock()" : "lock()", samples[samples.size() / 2],
        samples[samples.size() * 99 / 100], count);
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t ops = 10'000'000;
    std::size_t trips = 20'000;
    std::size_t wakes = 5'000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--ops") {
            ops = std::stoul(argv[i + 1]);
        } else if (flag == "--round-trips") {
            trips = std::stoul(argv[i + 1]);
        } else if (flag == "--wake-ups") {
            wakes = std::stoul(argv[i + 1]);
        } else {
            std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    const std::string name = fmt::format("axds_bench_{}", ::getpid());

    // Baseline: a bare robust process-shared mutex, lock + unlock.
    pthread_mutex_t mutex;
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&mutex, &attributes);
    volatile std::int64_t sink = 0;
    auto start = clock_type::now();
    for (std::size_t i = 0; i < ops; ++i) {
        pthread_mutex_lock(&mutex);
        sink = sink + 1;
        pthread_mutex_unlock(&mutex);
    }
    const double bare = ns_per_op(start, ops);

    {
        auto array = axds::shared_memory_array<std::int64_t>::create(name, {16}, std::int64_t{0}, true);
        start = clock_type::now();
        std::int64_t sum = 0;
        for (std::size_t i = 0; i < ops; ++i) {
            sum += array.get(static_cast<std::ptrdiff_t>(i & 15U));
        }
        const double read = ns_per_op(start, ops);
        start = clock_type::now();
        for (std::size_t i = 0; i < ops; ++i) {
            array.set(static_cast<std::ptrdiff_t>(i & 15U), static_cast<std::int64_t>(i));
        }
        const double write = ns_per_op(start, ops);
        fmt::print("uncontended locked element access over {} ops (checksum {}):\n", ops, sum + sink);
        fmt::print("  baseline bare robust pshared mutex lock+unlock: {:.1f} ns/op\n", bare);
        fmt::print("  get(i): {:.1f} ns/op = {:.2f}x baseline; set(i, v): {:.1f} ns/op = {:.2f}x baseline\n", read,
                   read / bare, write, write / bare);
    }
    round_trips(name, trips, false);
    round_trips(name, trips, true);
    wake_ups(name, wakes, false);
    wake_ups(name, wakes, true);
    return 0;
}
