// A separate process for the shared memory array's multi-process tests (int64 arrays of shape {N}).
//
//   ads_test_shm_worker increment NAME N COUNT    COUNT times: lock, add 1 to every element, unlock
//   ads_test_shm_worker write NAME N INDEX VALUE  set one element
//   ads_test_shm_worker hold NAME N               lock, print "locked", sleep until killed
//   ads_test_shm_worker async-increment NAME N COUNT COROUTINES
//        COROUTINES coroutines on one io_context, each COUNT times: co_await async_lock(), read every element, let
//        the executor run the others (the lock held across the suspension), write each back plus 1, unlock
//   ads_test_shm_worker attach-wrong NAME         attach as float64 of shape {1}: prints the error
//   ads_test_shm_worker recreate-as UID NAME      as user UID (root only): create(exists_ok) over NAME, prints the
//   error
//
// Buffers made by Python (attach_python, guarded by the named semaphore SEM):
//   ads_test_shm_worker py-increment NAME N SEM COUNT GOFILE sync|async
//        waits for GOFILE to exist, then COUNT times: lock (lock() or co_await async_lock()), read every element,
//        yield the CPU, write each back plus 1, unlock. A lock that does not exclude the other processes loses counts.
//   ads_test_shm_worker py-hold NAME N SEM         lock the semaphore, print "locked", sleep until killed

#include <axds/core/runtime.hpp>
#include <axds/shm/shared_memory_array.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <unistd.h>

namespace {

using python_array = axds::shared_memory_array<std::int64_t>;

/// The read-modify-write the lock must protect, with the CPU yielded in the middle to widen any race.
void increment_all(python_array& array) {
    auto view = array.array(false);
    std::vector<std::int64_t> values(view.data().begin(), view.data().end());
    ::sched_yield();
    for (std::size_t i = 0; i < values.size(); ++i) {
        view[i] = values[i] + 1;
    }
}

asio::awaitable<void> increment_async(python_array& array, int count) {
    for (int k = 0; k < count; ++k) {
        const axds::shm_lock_guard guard = co_await array.async_lock();
        increment_all(array);
    }
}

/// One coroutine of async-increment: the lock is held across a suspension, so the others wait on it meanwhile.
asio::awaitable<void> increment_holding(python_array& array, int count) {
    const auto executor = co_await asio::this_coro::executor;
    for (int k = 0; k < count; ++k) {
        const axds::shm_lock_guard guard = co_await array.async_lock(std::chrono::seconds(30));
        auto view = array.array(false);
        std::vector<std::int64_t> values(view.data().begin(), view.data().end());
        co_await asio::post(executor, asio::use_awaitable);
        for (std::size_t i = 0; i < values.size(); ++i) {
            view[i] = values[i] + 1;
        }
    }
}

int async_increment(python_array& array, int count, int coroutines) {
    asio::io_context io;
    int failures = 0;
    for (int c = 0; c < coroutines; ++c) {
        asio::co_spawn(io, increment_holding(array, count), [&failures](std::exception_ptr error) {
            if (error) {
                ++failures;
                try {
                    std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "shm worker: async-increment failed: %s\n", e.what());
                }
            }
        });
    }
    io.run();
    return failures == 0 ? 0 : 1;
}

int python_mode(const std::string& mode, int argc, char** argv) {
    axds::shm_python_options options;
    options.semaphore = argv[4];
    auto array = python_array::attach_python(argv[2], {std::stoul(argv[3])}, options);
    if (mode == "py-hold") {
        const auto guard = array.lock();
        std::puts("locked");
        std::fflush(stdout);
        ::sleep(60);
        return 0;
    }
    if (mode != "py-increment" || argc != 8) {
        return 2;
    }
    const int count = std::atoi(argv[5]);
    const std::filesystem::path go = argv[6];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(go)) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "shm worker: %s never appeared\n", go.c_str());
            return 3;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (std::string(argv[7]) == "async") {
        axds::block_on(increment_async(array, count));
        return 0;
    }
    for (int k = 0; k < count; ++k) {
        const axds::shm_lock_guard guard = array.lock();
        increment_all(array);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "attach-wrong" && argc == 3) {
            try {
                auto wrong = axds::shared_memory_array<double>::attach(argv[2], {1});
            } catch (const axds::value_error& e) {
                std::printf("%s\n", e.what());
                return 0;
            }
            return 1;
        }
        if (mode == "recreate-as" && argc == 4) {
            const auto uid = static_cast<uid_t>(std::stoul(argv[2]));
            if (::setgid(uid) != 0 || ::setuid(uid) != 0) {
                std::printf("cannot become user %u\n", static_cast<unsigned>(uid));
                return 3;
            }
            try {
                auto replacement = axds::shared_memory_array<std::int64_t>::create(argv[3], {1}, 0, true);
            } catch (const std::exception& e) {
                std::printf("%s\n", e.what());
                return 0;
            }
            return 1;
        }
        if (mode.rfind("py-", 0) == 0 && argc >= 5) {
            return python_mode(mode, argc, argv);
        }
        if (argc < 4) {
            return 2;
        }
        auto array = axds::shared_memory_array<std::int64_t>::attach(argv[2], {std::stoul(argv[3])});
        if (mode == "increment" && argc == 5) {
            const int count = std::atoi(argv[4]);
            for (int k = 0; k < count; ++k) {
                auto view = array.array();
                for (auto& value : view.data()) {
                    ++value;
                }
            }
            return 0;
        }
        if (mode == "async-increment" && argc == 6) {
            return async_increment(array, std::atoi(argv[4]), std::atoi(argv[5]));
        }
        if (mode == "write" && argc == 6) {
            array.set(std::stol(argv[4]), std::stoll(argv[5]));
            return 0;
        }
        if (mode == "hold") {
            const auto guard = array.lock();
            array.array(false)[0] = 777;  // half-done update the next holder must be told about
            std::puts("locked");
            std::fflush(stdout);
            ::sleep(60);
            return 0;
        }
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shm worker failed: %s\n", e.what());
        return 1;
    }
}
