// sys::unique_fd owns a descriptor: it closes it exactly once (on destruction or reset), never after a move or a
// release, and close_checked() reports close's error.
#include "sys/unique_fd.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cerrno>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

using axds::sys::unique_fd;

namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

/// A fresh descriptor (a pipe's read end; the write end is closed).
int new_fd() {
    std::array<int, 2> ends{};
    REQUIRE(::pipe2(ends.data(), O_CLOEXEC) == 0);
    ::close(ends[1]);
    return ends[0];
}

}  // namespace

TEST_CASE("unique_fd closes its descriptor once when destroyed", "[sys][unique_fd]") {
    const int raw = new_fd();
    {
        const unique_fd fd(raw);
        CHECK(fd.get() == raw);
        CHECK(fd.valid());
        CHECK(is_open(raw));
    }
    CHECK_FALSE(is_open(raw));
    const unique_fd none;
    CHECK_FALSE(none.valid());
    CHECK(none.get() == -1);
}

TEST_CASE("unique_fd moved from closes nothing: the number reused by a later open survives", "[sys][unique_fd]") {
    const int raw = new_fd();
    unique_fd second;
    {
        unique_fd first(raw);
        unique_fd moved(std::move(first));
        CHECK(first.get() == -1);  // NOLINT(bugprone-use-after-move): the moved-from state is what is tested
        CHECK(moved.get() == raw);
        second = std::move(moved);
        CHECK(moved.get() == -1);  // NOLINT(bugprone-use-after-move)
    }                              // first and moved go: neither may close `raw`
    CHECK(is_open(raw));
    second.reset();
    CHECK_FALSE(is_open(raw));
    // A second close of the same number would hit whatever reuses it now.
    const int reused = new_fd();
    second.reset();
    { const unique_fd gone(std::move(second)); }
    CHECK(is_open(reused));
    ::close(reused);
}

TEST_CASE("unique_fd move assignment closes the descriptor it held", "[sys][unique_fd]") {
    const int a = new_fd();
    const int b = new_fd();
    unique_fd held(a);
    held = unique_fd(b);
    CHECK_FALSE(is_open(a));
    CHECK(is_open(b));
    CHECK(held.get() == b);
}

TEST_CASE("unique_fd release gives the descriptor up and reset takes a new one", "[sys][unique_fd]") {
    const int a = new_fd();
    int released = -1;
    {
        unique_fd fd(a);
        released = fd.release();
        CHECK(fd.get() == -1);
    }
    CHECK(released == a);
    CHECK(is_open(a));
    const int b = new_fd();
    {
        unique_fd fd(a);
        fd.reset(b);  // closes a, owns b
        CHECK_FALSE(is_open(a));
        CHECK(is_open(b));
        fd.reset(b);  // the same number again: kept, not closed
        CHECK(is_open(b));
    }
    CHECK_FALSE(is_open(b));
}

TEST_CASE("unique_fd close_checked reports close's error and closes once", "[sys][unique_fd]") {
    const int raw = new_fd();
    unique_fd fd(raw);
    CHECK_FALSE(fd.close_checked());
    CHECK_FALSE(is_open(raw));
    CHECK(fd.get() == -1);
    CHECK_FALSE(fd.close_checked());  // nothing held: nothing closed, no error

    unique_fd bad(1 << 20);  // a number no descriptor has: close fails with EBADF
    const std::error_code error = bad.close_checked();
    CHECK(error.value() == EBADF);
    CHECK(bad.get() == -1);
}
