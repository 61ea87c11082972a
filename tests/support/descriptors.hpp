#pragma once
// Descriptor shortage for tests (EMFILE): the process's soft RLIMIT_NOFILE lowered, the rest filled with /dev/null.

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AXDS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define AXDS_TEST_SANITIZED 1
#endif
#endif

namespace axds::test {

/// True in a sanitizer build, whose runtime needs descriptors of its own (UBSan's vptr check opens a pipe to test
/// memory): a test that takes every descriptor makes it report false errors there, so such tests skip themselves.
#if defined(AXDS_TEST_SANITIZED)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif

/// The reason given when a descriptor-shortage test skips itself.
inline constexpr const char* sanitized_skip_reason =
    "SKIPPED: a sanitizer runtime needs descriptors of its own, so it cannot run out of them with the test";

/// The highest descriptor this process has open.
inline int highest_open_descriptor() {
    int highest = 0;
    for (const auto& item : std::filesystem::directory_iterator("/proc/self/fd")) {
        highest = std::max(highest, std::stoi(item.path().filename().string()));
    }
    return highest;
}

/// Lowers the soft RLIMIT_NOFILE to `headroom` above the highest open descriptor for its lifetime (restored by
/// restore() or the destructor). ok() is false when the limit could not be changed.
class scoped_descriptor_limit {
public:
    explicit scoped_descriptor_limit(int headroom) {
        if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) {
            return;
        }
        struct rlimit low = saved_;

        low.rlim_cur = static_cast<rlim_t>(highest_open_descriptor() + headroom);
        ok_ = low.rlim_cur <= saved_.rlim_max && ::setrlimit(RLIMIT_NOFILE, &low) == 0;
        limit_ = low.rlim_cur;
    }

    scoped_descriptor_limit(const scoped_descriptor_limit&) = delete;
    scoped_descriptor_limit& operator=(const scoped_descriptor_limit&) = delete;

    ~scoped_descriptor_limit() { restore(); }

    void restore() {
        if (ok_) {
            (void)::setrlimit(RLIMIT_NOFILE, &saved_);
            ok_ = false;
        }
    }

    [[nodiscard]] bool ok() const noexcept { return ok_; }

    [[nodiscard]] rlim_t limit() const noexcept { return limit_; }

private:
    struct rlimit saved_ {};

    rlim_t limit_ = 0;
    bool ok_ = false;
};

/// Every descriptor the limit allows taken (by /dev/null), until release() or destruction. exhausted() is the errno
/// of the open that failed (EMFILE when the limit was reached).
class descriptor_fillers {
public:
    descriptor_fillers() {
        for (int fd = 0; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) {
            fds_.push_back(fd);
        }
        exhausted_ = errno;
    }

    descriptor_fillers(const descriptor_fillers&) = delete;
    descriptor_fillers& operator=(const descriptor_fillers&) = delete;

    ~descriptor_fillers() { release(); }

    /// Frees one descriptor (for the caller's next open).
    void release_one() {
        if (!fds_.empty()) {
            ::close(fds_.back());
            fds_.pop_back();
        }
    }

    void release() {
        for (const int fd : fds_) {
            ::close(fd);
        }
        fds_.clear();
    }

    [[nodiscard]] int exhausted() const noexcept { return exhausted_; }

private:
    std::vector<int> fds_;
    int exhausted_ = 0;
};

}  // namespace axds::test
