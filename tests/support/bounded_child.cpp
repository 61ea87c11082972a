#include "support/bounded_child.hpp"

#include <axds/error.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AXDS_BOUNDED_CHILD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define AXDS_BOUNDED_CHILD_SANITIZED 1
#endif
#endif

namespace axds::test {
namespace {

constexpr auto child_time_limit = std::chrono::seconds(60);

/// One line of /proc/self/statm, in pages: field 0 is the address space, field 1 the resident set.
unsigned long statm_pages(int field) {
    unsigned long values[2] = {0, 0};
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%lu %lu", &values[0], &values[1]) != 2) {
            values[0] = values[1] = 0;
        }
        std::fclose(f);
    }
    return values[field];
}

long page_kib() {
    return ::sysconf(_SC_PAGESIZE) / 1024;
}

/// "kind\nmessage": what `fn` threw, classified most specific first.
std::string run_and_classify(const std::function<void()>& fn) {
    try {
        fn();
        return "no error\n";
    } catch (const axds::yaml_error& e) {
        return std::string("yaml_error\n") + e.what();
    } catch (const axds::overflow_error& e) {
        return std::string("overflow_error\n") + e.what();
    } catch (const axds::value_error& e) {
        return std::string("value_error\n") + e.what();
    } catch (const std::bad_alloc& e) {
        return std::string("bad_alloc\n") + e.what();
    } catch (const std::exception& e) {
        return std::string("other\n") + e.what();
    } catch (...) {
        return "other\n(not a std::exception)";
    }
}

[[noreturn]] void child_main(int out_fd, const std::function<void()>& fn, std::uint64_t extra_address_space) {
    for (const int signal : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) {
        ::signal(signal, SIG_DFL);  // no Catch2 report from the child: the parent reports the signal
    }
#ifndef AXDS_BOUNDED_CHILD_SANITIZED
    const rlim_t limit = static_cast<rlim_t>(statm_pages(0)) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) +
                         extra_address_space + (1ULL << 30U);
    const rlimit bound{limit, limit};
    ::setrlimit(RLIMIT_AS, &bound);
#else
    (void)extra_address_space;
#endif
    const std::string result = run_and_classify(fn);
    std::size_t done = 0;
    while (done < result.size()) {
        const ssize_t n = ::write(out_fd, result.data() + done, result.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    ::_exit(0);
}

/// Everything the child writes until it closes the pipe or the deadline passes (then it is killed).
std::string read_until_eof(int fd, pid_t child, std::chrono::steady_clock::time_point deadline, bool& timed_out) {
    std::string result;
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            ::kill(child, SIGKILL);
            return result;
        }
        pollfd watch{fd, POLLIN, 0};
        if (::poll(&watch, 1, static_cast<int>(left.count())) <= 0) {
            continue;  // EINTR or timeout: the deadline check above decides
        }
        char buffer[4096];
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return result;
        }
        result.append(buffer, static_cast<std::size_t>(n));
    }
}

}  // namespace

bounded_outcome run_bounded(const std::function<void()>& fn, std::uint64_t extra_address_space) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error("run_bounded: pipe2 failed");
    }
    const long parent_rss_kib = static_cast<long>(statm_pages(1)) * page_kib();
    const auto start = std::chrono::steady_clock::now();
    const pid_t child = ::fork();
    if (child < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw std::runtime_error("run_bounded: fork failed");
    }
    if (child == 0) {
        ::close(fds[0]);
        child_main(fds[1], fn, extra_address_space);
    }
    ::close(fds[1]);
    bool timed_out = false;
    const std::string result = read_until_eof(fds[0], child, start + child_time_limit, timed_out);
    ::close(fds[0]);
    int status = 0;
    rusage usage{};
    while (::wait4(child, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    bounded_outcome out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.exited_normally = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    out.rss_growth_kib = usage.ru_maxrss - parent_rss_kib;
    if (const auto newline = result.find('\n'); newline != std::string::npos) {
        out.kind = result.substr(0, newline);
        out.message = result.substr(newline + 1);
    } else if (timed_out) {
        out.message = "timed out after 60 s";
    } else {
        out.message =
            WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) : "exited abnormally";
    }
    return out;
}

}  // namespace axds::test
