#include <axds/core/workers.hpp>

#include <axds/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <unistd.h>

namespace axds {

namespace {

void set_all_variables(int thread_count) {
    const std::string value = std::to_string(thread_count);
    for (const auto name : worker_thread_variables) {
        ::setenv(std::string(name).c_str(), value.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    }
}

}  // namespace

int logical_cpu_count() noexcept {
    const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0) {
        return static_cast<int>(online);
    }
    return static_cast<int>(std::thread::hardware_concurrency());
}

int resolve_worker_count(int requested_workers, int reserved_cores) {
    if (reserved_cores < 0) {
        throw value_error(fmt::format(
            "Unable to resolve the worker count. The 'reserved_cores' argument must be greater than or equal to 0, "
            "but got {}.",
            reserved_cores));
    }
    const int cores = logical_cpu_count();
    if (cores <= 0) {
        return 1;
    }
    if (requested_workers > 0) {
        return std::min(requested_workers, cores);
    }
    return std::max(1, cores - reserved_cores);
}

int resolve_workers_option(int workers, std::string_view option) {
    if (workers < 0) {
        throw value_error(fmt::format(
            "Unable to resolve the worker count. The '{}' option must be 0 (automatic: all cores but two) or a "
            "positive number of workers, but got {}.",
            option, workers));
    }
    return resolve_worker_count(workers);
}

limit_worker_threads::limit_worker_threads(int thread_count) {
    if (thread_count < 1) {
        throw value_error(fmt::format(
            "Unable to limit the thread count used by the worker processes. The 'thread_count' argument must be "
            "greater than or equal to 1, but got {}.",
            thread_count));
    }
    for (std::size_t i = 0; i < worker_thread_variables.size(); ++i) {
        const char* old = std::getenv(std::string(worker_thread_variables[i]).c_str());  // NOLINT
        if (old != nullptr) {
            saved_[i] = std::string(old);
        }
    }
    set_all_variables(thread_count);
}

limit_worker_threads::~limit_worker_threads() {
    for (std::size_t i = 0; i < worker_thread_variables.size(); ++i) {
        const std::string name(worker_thread_variables[i]);
        if (saved_[i]) {
            ::setenv(name.c_str(), saved_[i]->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
        } else {
            ::unsetenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
        }
    }
}

int initialize_worker_threads(int thread_count) {
    if (thread_count < 1) {
        throw value_error(fmt::format(
            "Unable to initialize the thread count used by the worker process. The 'thread_count' argument must be "
            "greater than or equal to 1, but got {}.",
            thread_count));
    }
    set_all_variables(thread_count);
    const int cores = logical_cpu_count();
    return cores > 0 ? std::min(thread_count, cores) : thread_count;
}

}  // namespace axds
