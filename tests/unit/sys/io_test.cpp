// The EINTR / short-count helpers: a signal delivered while a read or write blocks (handler installed without
// SA_RESTART, so the kernel returns EINTR) and data that arrives in pieces must not end or shorten a transfer; end of
// file is a short count without an error; real errors come back as error_code.
#include "sys/io.hpp"
#include "sys/unique_fd.hpp"

#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

using axds::sys::unique_fd;
using namespace std::chrono_literals;

namespace {

std::atomic<int> signals_seen{0};

extern "C" void count_signal(int /*signal*/) {
    signals_seen.fetch_add(1);
}

/// SIGUSR1 handled without SA_RESTART for the guard's lifetime: a blocked read or write returns EINTR.
class interrupting_handler {
public:
    interrupting_handler() {
        struct sigaction action {};

        action.sa_handler = count_signal;
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;  // no SA_RESTART
        REQUIRE(::sigaction(SIGUSR1, &action, &previous_) == 0);
    }

    interrupting_handler(const interrupting_handler&) = delete;
    interrupting_handler& operator=(const interrupting_handler&) = delete;

    ~interrupting_handler() { ::sigaction(SIGUSR1, &previous_, nullptr); }

private:
    struct sigaction previous_ {};
};

struct pipe_ends {
    unique_fd read;
    unique_fd write;
};

pipe_ends make_pipe() {
    std::array<int, 2> ends{};
    REQUIRE(::pipe2(ends.data(), O_CLOEXEC) == 0);
    return {unique_fd(ends[0]), unique_fd(ends[1])};
}

/// Interrupts `target` with SIGUSR1 until the signal was handled at least `count` times more.
void interrupt(pthread_t target, int count) {
    const int goal = signals_seen.load() + count;
    while (signals_seen.load() < goal) {
        ::pthread_kill(target, SIGUSR1);
        std::this_thread::sleep_for(5ms);
    }
}

}  // namespace

TEST_CASE("a plain read blocked on a pipe returns EINTR under this handler (the premise of the next test)",
          "[sys][io]") {
    const interrupting_handler handler;
    pipe_ends p = make_pipe();
    const pthread_t reader = ::pthread_self();
    std::thread signaller([reader] {
        std::this_thread::sleep_for(20ms);
        interrupt(reader, 1);
    });
    std::array<char, 4> buffer{};
    const ssize_t n = ::read(p.read.get(), buffer.data(), buffer.size());
    const int error = errno;
    signaller.join();
    CHECK(n == -1);
    CHECK(error == EINTR);
}

TEST_CASE("read_full carries on across EINTR and short reads until the buffer is full", "[sys][io]") {
    const interrupting_handler handler;
    pipe_ends p = make_pipe();
    const pthread_t reader = ::pthread_self();
    const int before = signals_seen.load();
    std::thread writer([reader, fd = p.write.get()] {
        std::this_thread::sleep_for(20ms);
        interrupt(reader, 1);  // while read_full waits for the first byte
        (void)::write(fd, "abc", 3);
        std::this_thread::sleep_for(20ms);
        interrupt(reader, 1);  // while it waits for the rest
        (void)::write(fd, "defgh", 5);
    });
    std::array<char, 8> buffer{};
    const axds::sys::io_result result = axds::sys::read_full(p.read.get(), buffer.data(), buffer.size());
    writer.join();
    CHECK_FALSE(result.error);
    CHECK(result.bytes == 8);
    CHECK(std::string(buffer.data(), buffer.size()) == "abcdefgh");
    CHECK(signals_seen.load() - before >= 2);
}

TEST_CASE("read_full reports end of file as a short count and errors as error_code", "[sys][io]") {
    pipe_ends p = make_pipe();
    REQUIRE(::write(p.write.get(), "xyz", 3) == 3);
    p.write.reset();
    std::array<char, 8> buffer{};
    const axds::sys::io_result result = axds::sys::read_full(p.read.get(), buffer.data(), buffer.size());
    CHECK_FALSE(result.error);
    CHECK(result.bytes == 3);
    CHECK(result.eof_before(buffer.size()));

    const axds::sys::io_result bad = axds::sys::read_full(-1, buffer.data(), buffer.size());
    CHECK(bad.error.value() == EBADF);
    CHECK(bad.bytes == 0);
    CHECK_FALSE(bad.eof_before(buffer.size()));
}

TEST_CASE("write_full writes everything through a pipe that takes it in pieces, across EINTR", "[sys][io]") {
    const interrupting_handler handler;
    pipe_ends p = make_pipe();
    std::vector<char> data(std::size_t{1} << 20);  // far more than a pipe holds: writes block and come back short
    std::iota(data.begin(), data.end(), char{0});
    std::vector<char> received;
    const pthread_t writer = ::pthread_self();
    std::thread reader([&received, writer, fd = p.read.get()] {
        std::array<char, 4096> chunk{};
        std::this_thread::sleep_for(20ms);
        interrupt(writer, 1);  // the writer is blocked on a full pipe
        for (;;) {
            const ssize_t n = ::read(fd, chunk.data(), chunk.size());
            if (n <= 0) {
                break;
            }
            received.insert(received.end(), chunk.data(), chunk.data() + n);
        }
    });
    const axds::sys::io_result result = axds::sys::write_full(p.write.get(), data.data(), data.size());
    p.write.reset();
    reader.join();
    CHECK_FALSE(result.error);
    CHECK(result.bytes == data.size());
    CHECK(received == data);
}

TEST_CASE("pread_full and pwrite_full work at offsets and report errors", "[sys][io]") {
    const axds::test::temp_dir tmp;
    const unique_fd fd(::open((tmp.path() / "f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(fd);
    CHECK(axds::sys::pwrite_full(fd.get(), "0123456789", 10, 0).bytes == 10);
    CHECK(axds::sys::pwrite_full(fd.get(), "AB", 2, 4).bytes == 2);
    std::array<char, 16> buffer{};
    const axds::sys::io_result tail = axds::sys::pread_full(fd.get(), buffer.data(), buffer.size(), 3);
    CHECK_FALSE(tail.error);
    CHECK(std::string(buffer.data(), tail.bytes) == "3AB6789");
    CHECK(tail.eof_before(buffer.size()));
    CHECK(axds::sys::pwrite_full(-1, "x", 1, 0).error.value() == EBADF);
    CHECK(axds::sys::write_full(-1, "x", 1).error.value() == EBADF);
}

TEST_CASE("retry_eintr repeats a call only while it fails with EINTR", "[sys][io]") {
    int calls = 0;
    const int result = axds::sys::retry_eintr([&calls] {
        ++calls;
        if (calls < 3) {
            errno = EINTR;
            return -1;
        }
        return 5;
    });
    CHECK(result == 5);
    CHECK(calls == 3);
    calls = 0;
    const long failed = axds::sys::retry_eintr([&calls] {
        ++calls;
        errno = EAGAIN;
        return -1L;
    });
    CHECK(failed == -1);
    CHECK(errno == EAGAIN);
    CHECK(calls == 1);
}
