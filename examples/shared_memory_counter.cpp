// The Python README's SharedMemoryArray demo in C++: five child processes and the parent take turns incrementing
// five shared counters — children turn even values odd, the parent turns odd values even — until all reach 200.
// Only a working process-shared lock and shared data let this finish with every counter exactly at 200.
//
//   ads_example_shared_memory_counter

#include <axds/shm/shared_memory_array.hpp>

#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

constexpr std::int32_t target = 200;

/// Runs in a child process: increments the counter at `index` whenever it is even, until it reaches the target.
int worker(const std::string& name, std::ptrdiff_t index) {
    auto counters = axds::shared_memory_array<std::int32_t>::attach(name, {5});
    for (;;) {
        auto view = counters.array();  // locked while `view` lives
        const std::int32_t value = view[static_cast<std::size_t>(index)];
        if (value >= target) {
            return 0;
        }
        if (value % 2 == 0) {
            view[static_cast<std::size_t>(index)] = value + 1;
        }
    }
}

}  // namespace

int main() {
    try {
        const std::string name = fmt::format("axds_example_counter_{}", ::getpid());
        auto counters = axds::shared_memory_array<std::int32_t>::create(name, {5}, 0, true);
        fmt::print("{}\n", counters.describe());
        const auto start = std::chrono::steady_clock::now();
        std::vector<pid_t> children;
        for (std::ptrdiff_t i = 0; i < 5; ++i) {
            const pid_t pid = ::fork();
            if (pid == 0) {
                ::_exit(worker(name, i));  // no destructors: only the parent owns (and unlinks) the buffer
            }
            children.push_back(pid);
        }
        fmt::print("running the increment demo on {} processes...\n", children.size());
        std::fflush(stdout);
        int failures = 0;
        std::size_t ended = 0;
        // A child that ends (or is killed) before its counter is done would leave the parent waiting forever: each
        // pass also reaps ended children, and one that failed stops the demo.
        for (bool pending = true; pending && failures == 0;) {
            {
                auto view = counters.array();
                pending = false;
                for (auto& value : view.data()) {
                    if (value % 2 != 0 && value < target) {
                        ++value;  // the parent turns odd values even
                    }
                    pending = pending || value < target;
                }
            }
            int status = 0;
            if (const pid_t pid = ::waitpid(-1, &status, WNOHANG); pid > 0) {
                ++ended;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                    std::fprintf(stderr, "shared_memory_counter: worker process %d ended abnormally\n", pid);
                    ++failures;
                }
            }
        }
        for (; ended < children.size(); ++ended) {  // the rest finish once their counters are done (or are stopped)
            if (failures != 0) {
                for (const pid_t pid : children) {
                    ::kill(pid, SIGTERM);
                }
            }
            int status = 0;
            if (::waitpid(-1, &status, 0) > 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0) && failures == 0) {
                ++failures;
            }
        }
        const auto values = counters.read();
        const bool all_done = failures == 0 && values == std::vector<std::int32_t>(5, target);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        fmt::print("counters: {}; {} in {:.2f} s\n", fmt::join(values, ", "),
                   all_done ? "every counter reached 200" : "FAILED", seconds);
        return all_done ? 0 : 1;  // the buffer is unlinked when `counters` (its owner) goes away
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shared_memory_counter failed: %s\n", e.what());
        return 1;
    }
}
