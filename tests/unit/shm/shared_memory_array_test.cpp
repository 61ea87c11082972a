#include <axds/shm/shared_memory_array.hpp>

#include "support/child_process.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include "shm/futex_ring.hpp"
#include "shm/lock_spin.hpp"
#include <axds/error.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::shared_memory_array;
using axds::test::message_contains;

namespace {

/// A name unique to this process and test, removed from /dev/shm afterwards whatever happens.
class shm_name {
public:
    explicit shm_name(const std::string& what) : name_(fmt::format("axds_test_{}_{}", ::getpid(), what)) {
        ::shm_unlink(("/" + name_).c_str());
    }

    shm_name(const shm_name&) = delete;
    shm_name& operator=(const shm_name&) = delete;

    ~shm_name() { ::shm_unlink(("/" + name_).c_str()); }

    [[nodiscard]] const std::string& str() const { return name_; }

    operator std::string() const { return name_; }  // NOLINT(google-explicit-constructor)

private:
    std::string name_;
};

bool buffer_exists(const std::string& name) {
    return fs::exists("/dev/shm/" + name);
}

/// A POSIX named semaphore of value 1 (what Python's multiprocessing.Lock is), unlinked afterwards.
class named_semaphore {
public:
    explicit named_semaphore(const std::string& what) : name_(fmt::format("/axds_test_{}_{}", ::getpid(), what)) {
        ::sem_unlink(name_.c_str());
        sem_ = ::sem_open(name_.c_str(), O_CREAT | O_EXCL, 0600, 1);
        if (sem_ == SEM_FAILED) {
            throw std::runtime_error("sem_open failed for " + name_);
        }
    }

    named_semaphore(const named_semaphore&) = delete;
    named_semaphore& operator=(const named_semaphore&) = delete;

    ~named_semaphore() {
        ::sem_close(sem_);
        ::sem_unlink(name_.c_str());
    }

    [[nodiscard]] const std::string& name() const { return name_; }

    [[nodiscard]] int value() const {
        int v = -1;
        ::sem_getvalue(sem_, &v);
        return v;
    }

private:
    std::string name_;
    sem_t* sem_ = nullptr;
};

/// What Python's SharedMemory(create=True, size=nbytes) makes: exactly nbytes, mode 0600, no control block.
void make_python_style_buffer(const std::string& name, std::size_t nbytes) {
    const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(nbytes)) == 0);
    ::close(fd);
}

}  // namespace

// upstream: shared_memory_array_test.py::test_create_array / test_repr / test_2d_array
TEST_CASE("shared memory array creation copies the values and describes itself", "[shm]") {
    const shm_name name("create");
    const std::vector<std::int32_t> values{1, 2, 3, 4, 5, 6};
    {
        auto array = shared_memory_array<std::int32_t>::create(name, {2, 3}, values);
        CHECK(array.name() == name.str());
        CHECK(array.shape() == std::vector<std::size_t>{2, 3});
        CHECK(array.size() == 6);
        CHECK(array.is_connected());
        CHECK(array.owns_buffer());
        CHECK(array.read() == values);
        CHECK(array.get({1, 2}) == 6);
        CHECK(array.get({-1, 0}) == 4);
        CHECK(array.describe() ==
              fmt::format("SharedMemoryArray(name='{}', shape=(2, 3), datatype=int32, connected=True)", name.str()));
        // The data sits at offset 0 of /dev/shm/<name> in C order, mode 0600.
        CHECK((fs::status("/dev/shm/" + name.str()).permissions() & fs::perms::all) ==
              (fs::perms::owner_read | fs::perms::owner_write));
        const std::string raw = axds::test::read_file("/dev/shm/" + name.str()).substr(0, 24);
        CHECK(raw == std::string("\x01\0\0\0\x02\0\0\0\x03\0\0\0\x04\0\0\0\x05\0\0\0\x06\0\0\0", 24));
        auto one_d = shared_memory_array<std::int32_t>::attach(name, {2, 3});
        CHECK(one_d.describe().find("shape=(2, 3)") != std::string::npos);
    }
    CHECK_FALSE(buffer_exists(name));  // the owner unlinked it: the name is free again
    auto again = shared_memory_array<std::int32_t>::create(name, {5}, std::int32_t{0});
    CHECK(again.describe() ==
          fmt::format("SharedMemoryArray(name='{}', shape=(5,), datatype=int32, connected=True)", name.str()));
}

// upstream: shared_memory_array_test.py::test_getitem_* / test_setitem_*
TEST_CASE("shared memory array element and slice access for each element type", "[shm]") {
    const shm_name name("access");
    SECTION("float64") {
        auto a = shared_memory_array<double>::create(name, {5}, 1.5);
        a.set(-1, 2.25);
        CHECK(a.get(4) == 2.25);
        CHECK(a.read(0, 3) == std::vector<double>{1.5, 1.5, 1.5});
        CHECK(a.read(1) == std::vector<double>{1.5, 1.5, 1.5, 2.25});
        CHECK(a.read(-3, -1) == std::vector<double>{1.5, 1.5});
        const std::vector<double> two{7, 8};
        a.write(1, two);
        CHECK(a.read() == std::vector<double>{1.5, 7, 8, 1.5, 2.25});
        CHECK_THROWS_AS(a.write(4, two), axds::value_error);
    }
    SECTION("bool") {
        auto a = shared_memory_array<bool>::create(name, {3}, false);
        a.set(1, true);
        CHECK(a.read() == std::vector<bool>{false, true, false});
        CHECK(a.describe().find("datatype=bool") != std::string::npos);
    }
    SECTION("uint8 and out-of-range indices") {
        auto a = shared_memory_array<std::uint8_t>::create(name, {4}, std::uint8_t{9});
        CHECK_THROWS_MATCHES(a.get(4), axds::index_error, message_contains("index 4 is out of bounds"));
        CHECK_THROWS_AS(a.get(-5), axds::index_error);
        CHECK_THROWS_AS(a.set({0, 0}, 1), axds::index_error);
        CHECK(a.get(-4) == 9);
    }
}

// upstream: shared_memory_array_test.py::test_array_context_manager / test_disconnect_connect_cycle
TEST_CASE("shared memory array views, disconnect and reconnect keep the data", "[shm]") {
    const shm_name name("views");
    auto a = shared_memory_array<std::int64_t>::create(name, {4}, std::int64_t{0});
    {
        auto view = a.array();
        view[2] = 42;
        CHECK_FALSE(view.previous_owner_died());
        CHECK_FALSE(a.try_lock().has_value());  // the view holds the lock
        CHECK_THROWS_AS(a.disconnect(), axds::runtime_error);
    }
    CHECK(a.try_lock().has_value());
    a.array(false)[3] = 7;
    CHECK(a.get(2) == 42);
    auto second = shared_memory_array<std::int64_t>::attach(name, {4});
    a.disconnect();
    CHECK_FALSE(a.is_connected());
    CHECK_THROWS_MATCHES(a.get(0), axds::connection_error,
                         message_contains(fmt::format("Unable to access the data stored in the {} SharedMemoryArray "
                                                      "instance, as the instance is not connected to the shared memory "
                                                      "buffer. Call the connect() method prior to accessing the "
                                                      "array's data.",
                                                      name.str())));
    CHECK_THROWS_MATCHES(a.set(0, 1), axds::connection_error,
                         message_contains("Unable to modify the data stored in") &&
                             message_contains("prior to modifying the array's data."));
    CHECK_THROWS_MATCHES(a.array(), axds::connection_error,
                         message_contains("as it is not connected to the shared memory buffer. Call the connect() "
                                          "method prior to calling the array() method."));
    CHECK_THROWS_AS(a.lock(), axds::connection_error);
    a.connect();
    a.connect();  // idempotent
    CHECK(a.read() == std::vector<std::int64_t>{0, 0, 42, 7});
    CHECK(second.get(3) == 7);
    a.destroy();
    CHECK_FALSE(buffer_exists(name));
    CHECK_THROWS_AS(a.connect(), axds::file_not_found_error);
}

// upstream: shared_memory_array_test.py::test_create_existing_name / test_exists_ok_* / test_owner_*
TEST_CASE("shared memory array names: existing buffers, exists_ok and ownership", "[shm]") {
    const shm_name name("owners");
    auto first = shared_memory_array<std::int32_t>::create(name, {3}, 5);
    CHECK_THROWS_MATCHES(
        shared_memory_array<std::int32_t>::create(name, {3}, 1), axds::file_exists_error,
        message_contains(fmt::format("Unable to create the '{}' SharedMemoryArray object, as an object with this name "
                                     "already exists. If this method is called from a child process, use the "
                                     "connect() method instead to connect to the existing buffer. To clean-up the "
                                     "buffer left over from a previous runtime, run this method with the 'exists_ok' "
                                     "flag set to True.",
                                     name.str())));
    {
        // The replacement strips the first owner of its right to unlink: its teardown leaves the new buffer alone.
        auto replacement = shared_memory_array<std::int32_t>::create(name, {3}, 123, true);
        CHECK_FALSE(first.owns_buffer());
        { auto superseded = std::move(first); }
        CHECK(buffer_exists(name));
        auto reader = shared_memory_array<std::int32_t>::attach(name, {3});
        CHECK(reader.get(0) == 123);
        CHECK_FALSE(reader.owns_buffer());
        { auto attached = shared_memory_array<std::int32_t>::attach(name, {3}); }
        CHECK(buffer_exists(name));  // an attached object only disconnects on teardown
    }
    CHECK_FALSE(buffer_exists(name));
    // exists_ok reclaims a leftover made outside the class (here: a bare shm_open, as a crashed run leaves).
    const int fd = ::shm_open(("/" + name.str()).c_str(), O_CREAT | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 4096) == 0);
    ::close(fd);
    CHECK_THROWS_AS(shared_memory_array<std::int32_t>::attach(name, {3}), axds::value_error);  // no control block
    auto reclaimed = shared_memory_array<std::int32_t>::create(name, {3}, 9, true);
    CHECK(reclaimed.read() == std::vector<std::int32_t>{9, 9, 9});
}

TEST_CASE("shared memory array rejects bad shapes, names and a buffer of another type or shape", "[shm]") {
    const shm_name name("types");
    CHECK_THROWS_MATCHES(shared_memory_array<float>::create(name, {}, 1.0F), axds::value_error,
                         message_contains("'size' must be a positive number different from zero"));
    CHECK_THROWS_AS(shared_memory_array<float>::create(name, {3, 0}, 1.0F), axds::value_error);
    CHECK_FALSE(buffer_exists(name));  // nothing left behind
    CHECK_THROWS_AS(shared_memory_array<float>::create("a/b", {1}, 1.0F), axds::value_error);
    const std::vector<float> two{1, 2};
    CHECK_THROWS_AS(shared_memory_array<float>::create(name, {3}, two), axds::value_error);
    auto a = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{1});
    CHECK_THROWS_MATCHES(shared_memory_array<std::int64_t>::attach(name, {2}), axds::value_error,
                         message_contains("it holds a int64 array of shape (1,), not the requested int64 array of "
                                          "shape (2,)"));
    // Another process attaching with the wrong element type is refused too (the Python library cannot tell).
    axds::test::child_process wrong({AXDS_SHM_WORKER, "attach-wrong", name.str()});
    const std::string line = wrong.read_line();
    CHECK(wrong.wait() == 0);
    CHECK_THAT(line, Catch::Matchers::Contains("holds a int64 array of shape (1,), not the requested float64"));
    const shm_name missing("missing");
    CHECK_THROWS_AS(shared_memory_array<std::int64_t>::attach(missing, {1}), axds::file_not_found_error);
    auto lazy = shared_memory_array<std::int64_t>::attach(missing, {1}, false);
    CHECK_FALSE(lazy.is_connected());
}

TEST_CASE("shared memory array shapes whose size overflows are refused as too large, never wrapped", "[shm][hostile]") {
    const shm_name name("huge");
    const std::size_t two_62 = std::size_t{1} << 62U;
    const std::size_t two_40 = std::size_t{1} << 40U;
    // (2^62 + 1) x 4 elements wraps to 4 in 64 bits; 2^40 x 2^40 wraps to 0.
    CHECK_THROWS_MATCHES(shared_memory_array<std::int32_t>::create(name, {two_62 + 1, 4}, 0), axds::value_error,
                         message_contains("too large"));
    CHECK_THROWS_MATCHES(shared_memory_array<std::int32_t>::create(name, {two_40, two_40}, 0), axds::value_error,
                         message_contains("too large"));
    CHECK_THROWS_MATCHES(shared_memory_array<std::int64_t>::attach(name, {two_62, 2}), axds::value_error,
                         message_contains("too large"));
    // Fits in 64 bits as elements, not as bytes.
    CHECK_THROWS_MATCHES(shared_memory_array<double>::create(name, {std::size_t{1} << 61U}, 0.0), axds::value_error,
                         message_contains("too large"));
    CHECK_THROWS_MATCHES(shared_memory_array<double>::create(name, {4, 0, two_62}, 0.0), axds::value_error,
                         message_contains("holds no elements"));
    CHECK_FALSE(buffer_exists(name));
}

TEST_CASE("shared memory array create(exists_ok) over another user's buffer names the real cause", "[shm][hostile]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to act as a second user");
        return;
    }
    // Root's buffer in the sticky /dev/shm cannot be removed by user 65534 (nobody): the error must say so (EPERM or
    // EACCES) instead of blaming "an open handle", as it did.
    const shm_name name("foreign");
    auto owned = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{7});
    axds::test::child_process other({AXDS_SHM_WORKER, "recreate-as", "65534", name.str()});
    const std::string line = other.read_line();
    REQUIRE(other.wait() == 0);
    CHECK_THAT(line, Catch::Matchers::Contains(fmt::format("/dev/shm/{} cannot be removed", name.str())));
    CHECK_THAT(line, Catch::Matchers::Contains("not permitted") || Catch::Matchers::Contains("denied"));
    CHECK_THAT(line, !Catch::Matchers::Contains("open handle"));
    CHECK(owned.get(0) == 7);  // the owner's buffer is untouched
}

// upstream: shared_memory_array_test.py::test_cross_process_write / test_concurrent_increments
TEST_CASE("shared memory array: child processes write and 5 x 1000 locked increments are exact", "[shm][slow]") {
    const shm_name name("procs");
    auto a = shared_memory_array<std::int64_t>::create(name, {8}, std::int64_t{0});
    axds::test::child_process writer({AXDS_SHM_WORKER, "write", name.str(), "8", "2", "42"});
    REQUIRE(writer.wait() == 0);
    CHECK(a.get(2) == 42);
    a.set(2, 0);
    std::vector<axds::test::child_process> workers;
    for (int p = 0; p < 5; ++p) {
        workers.emplace_back(std::vector<std::string>{AXDS_SHM_WORKER, "increment", name.str(), "8", "1000"});
    }
    for (auto& w : workers) {
        CHECK(w.wait() == 0);
    }
    CHECK(a.read() == std::vector<std::int64_t>(8, 5000));
}

TEST_CASE("shared memory array: kill -9 of the lock holder hands the lock on with the dead-owner flag", "[shm]") {
    const shm_name name("killed");
    auto a = shared_memory_array<std::int64_t>::create(name, {2}, std::int64_t{0});
    axds::test::child_process holder({AXDS_SHM_WORKER, "hold", name.str(), "2"});
    REQUIRE(holder.read_line() == "locked");
    CHECK_FALSE(a.try_lock().has_value());
    CHECK_FALSE(a.lock_for(std::chrono::milliseconds(20)).has_value());
    holder.kill9();
    const auto killed = std::chrono::steady_clock::now();
    const auto guard = a.lock_for(std::chrono::seconds(5));
    const auto waited = std::chrono::steady_clock::now() - killed;
    REQUIRE(guard.has_value());
    CHECK(guard->previous_owner_died());
    CHECK(waited < std::chrono::milliseconds(100));
    CHECK(a.array(false)[0] == 777);  // the half-done update is visible; the flag says to check it
    CHECK(holder.wait() == 128 + 9);
}

TEST_CASE("shared memory array async_lock lets the executor run other handlers while it waits", "[shm][async_lock]") {
    const shm_name name("async");
    auto a = shared_memory_array<std::int32_t>::create(name, {1}, 0);
    asio::io_context io;
    int ticks = 0;
    std::optional<axds::shm_lock_guard> held = a.lock();
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        auto ticker = [](int& count, std::optional<axds::shm_lock_guard>& release) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            for (int i = 0; i < 5; ++i) {
                timer.expires_after(std::chrono::milliseconds(10));
                co_await timer.async_wait(asio::use_awaitable);
                ++count;
            }
            release.reset();  // let the waiting coroutine in
        };
        asio::co_spawn(co_await asio::this_coro::executor, ticker(ticks, held), asio::detached);
        auto guard = co_await a.async_lock();
        CHECK(ticks == 5);  // every tick ran before the lock came free
        CHECK_FALSE(guard.previous_owner_died());
        guard.unlock();
        auto other = a.lock();
        bool timed_out = false;
        try {
            auto never = co_await a.async_lock(std::chrono::milliseconds(30));
        } catch (const axds::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
    });
}

TEST_CASE("python3 + numpy attaches to a C++ array and both see each other's writes", "[shm][python]") {
    const shm_name name("numpy");
    const std::vector<double> values{0.5, 1.5, 2.5, 3.5, 4.5, 5.5};
    auto a = shared_memory_array<double>::create(name, {2, 3}, values);
    const auto result = axds::test::run_python(
        "import sys, numpy as np\n"
        "from multiprocessing import shared_memory, resource_tracker\n"
        "shm = shared_memory.SharedMemory(name=sys.argv[1])\n"
        "resource_tracker.unregister(shm._name, 'shared_memory')  # attach only: never unlink our buffer\n"
        "a = np.ndarray((2, 3), dtype=np.float64, buffer=shm.buf[:48])\n"
        "print(a.tolist())\n"
        "a[1, 2] = -7.25\n"
        "del a\n"
        "shm.close()\n",
        {name.str()});
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    CHECK(result.output == "[[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]]\n");
    CHECK(a.get({1, 2}) == -7.25);
    CHECK(buffer_exists(name));
}

// Issue 18 item 5: a buffer made by Python (exactly nbytes, no control block) is attached by name, shape and type.
TEST_CASE("attach_python attaches to a buffer numpy made and checks its size against the shape and type",
          "[shm][python]") {
    const shm_name name("pymade");
    const auto made = axds::test::run_python(
        "import sys, numpy as np\n"
        "from multiprocessing import shared_memory, resource_tracker\n"
        "shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=16)\n"
        "resource_tracker.unregister(shm._name, 'shared_memory')  # outlive this script: the test removes it\n"
        "a = np.ndarray((4,), dtype=np.int32, buffer=shm.buf)\n"
        "a[:] = [1, 2, 3, 4]\n"
        "del a\n"
        "shm.close()\n",
        {name.str()});
    INFO(made.output);
    REQUIRE(made.exit_code == 0);
    REQUIRE(fs::file_size("/dev/shm/" + name.str()) == 16);

    // attach() needs axds's control block and says what to use instead.
    CHECK_THROWS_MATCHES(shared_memory_array<std::int32_t>::attach(name, {4}), axds::value_error,
                         message_contains("holds 16 bytes") && message_contains("attach_python()"));
    // The lock must be chosen: a semaphore or explicitly none.
    CHECK_THROWS_MATCHES(shared_memory_array<std::int32_t>::attach_python(name, {4}, {}), axds::value_error,
                         message_contains(name.str()) && message_contains("no lock was chosen"));
    CHECK_THROWS_MATCHES(
        shared_memory_array<std::int32_t>::attach_python(name, {4}, {.semaphore = "/mp-x", .unlocked = true}),
        axds::value_error, message_contains("both a semaphore and 'unlocked' were given"));
    CHECK_THROWS_AS(shared_memory_array<std::int32_t>::attach_python(name, {4}, {.semaphore = "/a/b"}),
                    axds::value_error);
    // The size must be exactly the array's nbytes.
    CHECK_THROWS_MATCHES(
        shared_memory_array<std::int32_t>::attach_python(name, {5}, {.unlocked = true}), axds::value_error,
        message_contains(fmt::format("Unable to connect to the '{}' SharedMemoryArray buffer made by Python: it holds "
                                     "16 bytes, but a int32 array of shape (5,) holds exactly 20.",
                                     name.str())));
    CHECK_THROWS_MATCHES(shared_memory_array<std::int64_t>::attach_python(name, {4}, {.unlocked = true}),
                         axds::value_error, message_contains("a int64 array of shape (4,) holds exactly 32"));
    CHECK_THROWS_MATCHES(shared_memory_array<std::int32_t>::attach_python(name, {2, 1}, {.unlocked = true}),
                         axds::value_error, message_contains("holds exactly 8"));
    // A semaphore that does not exist (e.g. a 'fork' context Lock, unlinked at once) is named in the error.
    CHECK_THROWS_MATCHES(
        shared_memory_array<std::int32_t>::attach_python(name, {4}, {.semaphore = "axds_test_no_such_sem"}),
        axds::file_not_found_error,
        message_contains("/axds_test_no_such_sem (/dev/shm/sem.axds_test_no_such_sem)") &&
            message_contains(name.str()) && message_contains("'spawn'"));
    {
        auto a = shared_memory_array<std::int32_t>::attach_python(name, {4}, {.unlocked = true});
        CHECK(a.is_connected());
        CHECK_FALSE(a.owns_buffer());
        CHECK(a.lock_kind() == axds::shm_lock_kind::none);
        CHECK(a.read() == std::vector<std::int32_t>{1, 2, 3, 4});
        CHECK(a.get(-1) == 4);
        a.set(3, -9);
        a.array()[0] = 10;  // an unlocked array's views take no lock
        CHECK_THROWS_MATCHES(a.lock(), axds::runtime_error, message_contains("it has no lock"));
        CHECK_THROWS_AS(a.try_lock(), axds::runtime_error);
        CHECK_FALSE(a.break_lock());
        CHECK(a.describe() ==
              fmt::format("SharedMemoryArray(name='{}', shape=(4,), datatype=int32, connected=True)", name.str()));
    }
    CHECK(buffer_exists(name));  // never the owner: destruction only disconnects
    const auto seen = axds::test::run_python(
        "import sys, numpy as np\n"
        "from multiprocessing import shared_memory, resource_tracker\n"
        "shm = shared_memory.SharedMemory(name=sys.argv[1])\n"
        "resource_tracker.unregister(shm._name, 'shared_memory')\n"
        "a = np.ndarray((4,), dtype=np.int32, buffer=shm.buf)\n"
        "print(a.tolist())\n"
        "del a\n"
        "shm.close()\n",
        {name.str()});
    INFO(seen.output);
    REQUIRE(seen.exit_code == 0);
    CHECK(seen.output == "[10, 2, 3, -9]\n");

    // An axds buffer attached as a Python one is refused too: its size includes the control block.
    const shm_name ours("pyours");
    auto axds_made = shared_memory_array<std::int32_t>::create(ours, {4}, 0);
    CHECK_THROWS_MATCHES(shared_memory_array<std::int32_t>::attach_python(ours, {4}, {.unlocked = true}),
                         axds::value_error, message_contains("attach it with attach()"));
}

// Issue 18 item 6: C++ and Python lock the same object, Python's multiprocessing.Lock (a POSIX named semaphore).
TEST_CASE("python3 and two C++ processes do exact locked increments through Python's multiprocessing Lock",
          "[shm][python]") {
    const shm_name name("pylock");
    const axds::test::temp_dir tmp;
    const fs::path go = tmp.path() / "go";
    const fs::path finish = tmp.path() / "finish";
    constexpr int count = 1000;
    // Python makes the array and its Lock as SharedMemoryArray does (a 'spawn' context Lock keeps its name), prints
    // the semaphore's name, then increments under the Lock with the GIL released mid-update.
    axds::test::child_process python({AXDS_PYTHON3, "-c",
                                      "import sys, os, time, numpy as np, multiprocessing as mp\n"
                                      "from multiprocessing import shared_memory\n"
                                      "name, go, finish, count = sys.argv[1], sys.argv[2], sys.argv[3], "
                                      "int(sys.argv[4])\n"
                                      "shm = shared_memory.SharedMemory(name=name, create=True, size=3 * 8)\n"
                                      "a = np.ndarray((3,), dtype=np.int64, buffer=shm.buf)\n"
                                      "a[:] = 0\n"
                                      "lock = mp.get_context('spawn').Lock()\n"
                                      "print(lock._semlock.name, flush=True)\n"
                                      "def wait_for(path):\n"
                                      "    deadline = time.monotonic() + 60\n"
                                      "    while not os.path.exists(path):\n"
                                      "        if time.monotonic() > deadline: sys.exit(3)\n"
                                      "        time.sleep(0.0002)\n"
                                      "wait_for(go)\n"
                                      "for _ in range(count):\n"
                                      "    with lock:\n"
                                      "        v = a.copy()\n"
                                      "        time.sleep(0)\n"
                                      "        a[:] = v + 1\n"
                                      "print('done', flush=True)\n"
                                      "wait_for(finish)\n"
                                      "with lock:\n"
                                      "    print(a.tolist(), flush=True)\n"
                                      "del a\n"
                                      "shm.close()\n"
                                      "shm.unlink()\n",
                                      name.str(), go.string(), finish.string(), std::to_string(count)});
    const std::string semaphore = python.read_line();
    REQUIRE(semaphore.rfind("/mp-", 0) == 0);
    REQUIRE(fs::exists("/dev/shm/sem." + semaphore.substr(1)));
    std::vector<axds::test::child_process> workers;
    for (const char* how : {"sync", "async"}) {
        workers.emplace_back(std::vector<std::string>{AXDS_SHM_WORKER, "py-increment", name.str(), "3", semaphore,
                                                      std::to_string(count), go.string(), how});
    }
    std::ofstream{go} << "go";
    CHECK(python.read_line() == "done");
    for (auto& w : workers) {
        CHECK(w.wait() == 0);
    }
    {
        auto totals = shared_memory_array<std::int64_t>::attach_python(name, {3}, {.semaphore = semaphore});
        CHECK(totals.lock_kind() == axds::shm_lock_kind::named_semaphore);
        CHECK(totals.read() == std::vector<std::int64_t>(3, 3 * count));
    }
    std::ofstream{finish} << "finish";
    CHECK(python.read_line() == "[3000, 3000, 3000]");
    CHECK(python.wait() == 0);
}

// Issue 18 item 6: the limits of a semaphore, and how to recover.
TEST_CASE("a killed semaphore holder leaves the lock held until break_lock and the timeout says so", "[shm]") {
    const shm_name name("semkill");
    const named_semaphore sem("semkill");
    make_python_style_buffer(name, 2 * 8);
    auto a = shared_memory_array<std::int64_t>::attach_python(name, {2}, {.semaphore = sem.name()});
    axds::test::child_process holder({AXDS_SHM_WORKER, "py-hold", name.str(), "2", sem.name()});
    REQUIRE(holder.read_line() == "locked");
    holder.kill9();
    CHECK(holder.wait() == 128 + 9);
    // Unlike the robust mutex, nothing hands the lock on: it stays held.
    CHECK(sem.value() == 0);
    CHECK_FALSE(a.try_lock().has_value());
    CHECK_FALSE(a.lock_for(std::chrono::milliseconds(50)).has_value());
    asio::io_context io;
    bool timed_out = false;
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        try {
            auto never = co_await a.async_lock(std::chrono::milliseconds(50));
        } catch (const axds::timeout_error& e) {
            timed_out = true;
            const std::string message = e.what();
            CHECK_THAT(message,
                       Catch::Matchers::Contains(fmt::format("its semaphore {} (/dev/shm/sem.{}) is still held",
                                                             sem.name(), sem.name().substr(1))));
            CHECK_THAT(message, Catch::Matchers::Contains("not robust"));
            CHECK_THAT(message, Catch::Matchers::Contains("break_lock()"));
        }
    });
    CHECK(timed_out);
    CHECK(a.break_lock());  // recovery, once sure the holder is gone
    CHECK(sem.value() == 1);
    CHECK_FALSE(a.break_lock());  // not held: nothing to do
    {
        const auto guard = a.lock_for(std::chrono::seconds(1));
        REQUIRE(guard.has_value());
        CHECK_FALSE(guard->previous_owner_died());  // a semaphore cannot tell
        CHECK(sem.value() == 0);
    }
    CHECK(sem.value() == 1);
    a.set(1, 5);  // element access takes and releases the semaphore
    CHECK(a.get(1) == 5);
    CHECK(sem.value() == 1);
}

TEST_CASE("async_lock on a named semaphore waits without blocking the executor and can be cancelled", "[shm]") {
    const shm_name name("semasync");
    const named_semaphore sem("semasync");
    make_python_style_buffer(name, 8);
    auto holder = shared_memory_array<std::int64_t>::attach_python(name, {1}, {.semaphore = sem.name()});
    auto waiter = shared_memory_array<std::int64_t>::attach_python(name, {1}, {.semaphore = sem.name()});
    std::optional<axds::shm_lock_guard> held = holder.lock();
    CHECK(sem.value() == 0);

    asio::io_context io;
    asio::cancellation_signal cancel;
    int ticks = 0;
    bool locked = false;
    bool finished = false;
    std::exception_ptr error;
    auto attempt = [](shared_memory_array<std::int64_t>& array, bool& got) -> asio::awaitable<void> {
        // The timeout only bounds a broken cancellation: it would end in timeout_error, failing the test.
        auto guard = co_await array.async_lock(std::chrono::seconds(5));
        got = true;
    };
    auto ticker = [](int& count, asio::cancellation_signal& signal) -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (int i = 0; i < 5; ++i) {
            timer.expires_after(std::chrono::milliseconds(10));
            co_await timer.async_wait(asio::use_awaitable);
            ++count;
        }
        signal.emit(asio::cancellation_type::terminal);
    };
    asio::co_spawn(io, attempt(waiter, locked), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                       error = std::move(e);
                       finished = true;
                   }));
    asio::co_spawn(io, ticker(ticks, cancel), asio::detached);
    io.run();
    CHECK(ticks == 5);  // the executor ran other handlers while async_lock waited
    REQUIRE(finished);
    CHECK_FALSE(locked);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const std::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
    }
    CHECK(sem.value() == 0);  // the cancelled wait took nothing; the holder still has it
    held.reset();
    CHECK(sem.value() == 1);
    // Released, the lock is had at once.
    asio::io_context again;
    axds::test::run_async(again, [&]() -> asio::awaitable<void> {
        auto guard = co_await waiter.async_lock(std::chrono::seconds(1));
        CHECK(sem.value() == 0);
    });
    CHECK(sem.value() == 1);
}

// Issue 18 item 7: numpy's non-native arrays ('>u8') are converted, never read as native values.
TEST_CASE("big-endian numpy arrays are converted by element access and refused as live views", "[shm][python]") {
    const shm_name ints("bigints");
    const shm_name floats("bigfloats");
    const auto made = axds::test::run_python(
        "import sys, numpy as np\n"
        "from multiprocessing import shared_memory, resource_tracker\n"
        "u = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=24)\n"
        "resource_tracker.unregister(u._name, 'shared_memory')\n"
        "a = np.ndarray((3,), dtype='>u8', buffer=u.buf)\n"
        "a[:] = [1, 2**40 + 3, 2**64 - 2]\n"
        "f = shared_memory.SharedMemory(name=sys.argv[2], create=True, size=16)\n"
        "resource_tracker.unregister(f._name, 'shared_memory')\n"
        "b = np.ndarray((2,), dtype='>f8', buffer=f.buf)\n"
        "b[:] = [2.5, -1e300]\n"
        "del a, b\n"
        "u.close()\n"
        "f.close()\n",
        {ints.str(), floats.str()});
    INFO(made.output);
    REQUIRE(made.exit_code == 0);

    constexpr std::uint64_t big = (std::uint64_t{1} << 40U) + 3;
    auto a = shared_memory_array<std::uint64_t>::attach_python(
        ints, {3}, {.unlocked = true, .byte_order = axds::shm_byte_order::big});
    CHECK(a.byte_order() == axds::shm_byte_order::big);
    CHECK(a.read() == std::vector<std::uint64_t>{1, big, UINT64_MAX - 1});
    CHECK(a.get(1) == big);
    CHECK(a.read(1, 2) == std::vector<std::uint64_t>{big});
    a.set(0, 0x0102030405060708ULL);
    const std::vector<std::uint64_t> seven{7};
    a.write(1, seven);
    CHECK(a.describe() ==
          fmt::format("SharedMemoryArray(name='{}', shape=(3,), datatype=>u8, connected=True)", ints.str()));
    CHECK_THROWS_MATCHES(a.array(), axds::value_error,
                         message_contains(ints.str()) && message_contains("big-endian byte order (>u8)"));
    CHECK_THROWS_AS(a.array(false), axds::value_error);
    // The buffer holds big-endian bytes.
    CHECK(axds::test::read_file("/dev/shm/" + ints.str()).substr(0, 8) == "\x01\x02\x03\x04\x05\x06\x07\x08");
    // Nothing in the buffer records the order: attached as native, the values come out swapped (documented).
    auto wrong = shared_memory_array<std::uint64_t>::attach_python(ints, {3}, {.unlocked = true});
    CHECK(wrong.get(0) == 0x0807060504030201ULL);

    auto f = shared_memory_array<double>::attach_python(floats, {2},
                                                        {.unlocked = true, .byte_order = axds::shm_byte_order::big});
    CHECK(f.read() == std::vector<double>{2.5, -1e300});
    f.set(1, 0.125);
    CHECK(f.describe().find("datatype=>f8") != std::string::npos);
    // Little-endian is this machine's order: no conversion, views allowed.
    auto little = shared_memory_array<std::uint16_t>::attach_python(
        ints, {12}, {.unlocked = true, .byte_order = axds::shm_byte_order::little});
    CHECK(little.array(false)[0] == 0x0201);

    const auto seen = axds::test::run_python(
        "import sys, numpy as np\n"
        "from multiprocessing import shared_memory, resource_tracker\n"
        "u = shared_memory.SharedMemory(name=sys.argv[1])\n"
        "resource_tracker.unregister(u._name, 'shared_memory')\n"
        "f = shared_memory.SharedMemory(name=sys.argv[2])\n"
        "resource_tracker.unregister(f._name, 'shared_memory')\n"
        "print(np.ndarray((3,), dtype='>u8', buffer=u.buf).tolist())\n"
        "print(np.ndarray((2,), dtype='>f8', buffer=f.buf).tolist())\n"
        "u.close()\n"
        "f.close()\n",
        {ints.str(), floats.str()});
    INFO(seen.output);
    REQUIRE(seen.exit_code == 0);
    CHECK(seen.output == "[72623859790382856, 7, 18446744073709551614]\n[2.5, 0.125]\n");
}

// Issue 21: async_lock on the robust mutex waits on the mutex's futex word (a helper thread), not on a timer.
namespace {

/// Threads of this process (/proc/self/task entries).
std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/task")) {
        ++n;
    }
    return n;
}

/// Waits up to 2 s for the process to be back to `expected` threads (the waiter thread exits after 50 ms idle).
bool threads_back_to(std::size_t expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (thread_count() > expected) {
        if (std::chrono::steady_clock::now() > deadline) {
            for (const auto& entry : fs::directory_iterator("/proc/self/task")) {  // which thread stayed
                std::ifstream comm(entry.path() / "comm");
                std::string thread_name;
                std::getline(comm, thread_name);
                UNSCOPED_INFO("thread " << entry.path().filename().string() << ": " << thread_name);
            }
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

}  // namespace

TEST_CASE("async_lock on the robust mutex can be cancelled and leaves no waiter behind", "[shm][async_lock]") {
    const shm_name name("cancelrobust");
    auto a = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{0});
    auto waiter = shared_memory_array<std::int64_t>::attach(name, {1});
    std::thread([] {}).join();  // TSan starts its background thread with the process's first thread: not ours
    const std::size_t threads_before = thread_count();
    std::optional<axds::shm_lock_guard> held = a.lock();
    asio::io_context io;
    asio::cancellation_signal cancel;
    bool locked = false;
    bool finished = false;
    std::exception_ptr error;
    auto attempt = [](shared_memory_array<std::int64_t>& array, bool& got) -> asio::awaitable<void> {
        auto guard = co_await array.async_lock(std::chrono::seconds(5));  // a broken cancel ends in timeout_error
        got = true;
    };
    asio::steady_timer timer(io, std::chrono::milliseconds(30));
    timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
    asio::co_spawn(io, attempt(waiter, locked), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                       error = std::move(e);
                       finished = true;
                   }));
    const auto start = std::chrono::steady_clock::now();
    io.run();
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    REQUIRE(finished);
    CHECK_FALSE(locked);
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const std::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
    }
    // The cancelled wait took nothing: the holder still has the lock, and its release lets others in.
    CHECK_FALSE(waiter.try_lock().has_value());
    held.reset();
    CHECK(waiter.try_lock().has_value());
    CHECK(threads_back_to(threads_before));  // the waiter thread went away
    // The object still waits and locks after a cancelled wait.
    std::atomic<bool> holding{false};
    std::thread release([&] {  // a robust mutex is released by the thread that took it
        auto guard = a.lock();
        holding.store(true);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    });
    while (!holding.load()) {
        std::this_thread::yield();
    }
    asio::io_context again;
    std::string failure;
    try {
        axds::test::run_async(again, [&]() -> asio::awaitable<void> {
            auto guard = co_await waiter.async_lock(std::chrono::seconds(5));
            CHECK_FALSE(guard.previous_owner_died());
        });
    } catch (const std::exception& e) {
        failure = e.what();
    }
    release.join();
    CHECK(failure.empty());
    CHECK(threads_back_to(threads_before));
}

TEST_CASE("async_lock waiting on a holder killed with -9 gets the lock at once with the dead-owner flag",
          "[shm][async_lock]") {
    const shm_name name("killedasync");
    auto a = shared_memory_array<std::int64_t>::create(name, {2}, std::int64_t{0});
    axds::test::child_process holder({AXDS_SHM_WORKER, "hold", name.str(), "2"});
    REQUIRE(holder.read_line() == "locked");
    asio::io_context io;
    std::chrono::steady_clock::time_point killed;
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        auto killer = [](axds::test::child_process& child,
                         std::chrono::steady_clock::time_point& when) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(30));
            co_await timer.async_wait(asio::use_awaitable);  // the waiter is asleep on the futex by now
            when = std::chrono::steady_clock::now();
            child.kill9();
        };
        asio::co_spawn(co_await asio::this_coro::executor, killer(holder, killed), asio::detached);
        auto guard = co_await a.async_lock(std::chrono::seconds(5));
        CHECK(std::chrono::steady_clock::now() - killed < std::chrono::milliseconds(500));
        CHECK(guard.previous_owner_died());
        CHECK(a.array(false)[0] == 777);
    });
    CHECK(holder.wait() == 128 + 9);
    CHECK(a.try_lock().has_value());  // consistent again: the next holder sees a plain lock
    CHECK_FALSE(a.try_lock()->previous_owner_died());
}

TEST_CASE("async_lock and blocking lock() waiters on one robust mutex all get it in turn", "[shm][async_lock]") {
    // The waiter thread sets FUTEX_WAITERS and consumes wakes meant for any sleeper: none may be lost for a thread
    // blocked in pthread_mutex_lock (a lost wake would hang this test until ctest's timeout).
    const shm_name name("mixedwaiters");
    auto a = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{0});
    auto b = shared_memory_array<std::int64_t>::attach(name, {1});
    constexpr int rounds = 200;
    std::atomic<bool> go{false};
    std::thread blocking([&] {
        while (!go.load()) {
            std::this_thread::yield();
        }
        for (int i = 0; i < rounds; ++i) {
            auto guard = b.lock();
            b.array(false)[0] += 1;
        }
    });
    asio::io_context io;
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        go.store(true);
        for (int i = 0; i < rounds; ++i) {
            auto guard = co_await a.async_lock(std::chrono::seconds(10));
            a.array(false)[0] += 1;
            std::this_thread::sleep_for(std::chrono::microseconds(50));  // hold it: the other side must wait
        }
    });
    blocking.join();
    CHECK(a.get(0) == 2 * rounds);
}

// Issue 21, second step: the wait is an io_uring futex wait watched by the executor (one wake-up), with the helper
// thread as the fallback (AXDS_NO_IO_URING=1, or a kernel before 6.7). ctest runs every [async_lock] test on both.
namespace {

/// Open descriptors of this process.
std::size_t fd_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        ++n;
    }
    return n;
}

/// Linux 6.7 or later (IORING_OP_FUTEX_WAIT).
bool kernel_has_io_uring_futex() {
    utsname name{};
    ::uname(&name);
    int major = 0;
    int minor = 0;
    std::sscanf(name.release, "%d.%d", &major, &minor);  // NOLINT(cert-err34-c)
    return major > 6 || (major == 6 && minor >= 7);
}

}  // namespace

TEST_CASE("async_lock waits through io_uring unless AXDS_NO_IO_URING is set and starts no thread",
          "[shm][async_lock]") {
    const bool forced_off = std::getenv("AXDS_NO_IO_URING") != nullptr;  // NOLINT(concurrency-mt-unsafe)
    if (kernel_has_io_uring_futex()) {
        CHECK(axds::sys::uring_enabled(axds::sys::uring_feature::futex_wait) ==
              !forced_off);  // a probe that fails here means a broken SQE
    }
    const shm_name name("uringpath");
    auto a = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{0});
    std::thread([] {}).join();  // TSan starts its background thread with the process's first thread: not ours
    const std::size_t threads_before = thread_count();
    std::optional<axds::shm_lock_guard> held = a.lock();
    asio::io_context io;
    std::size_t threads_while_waiting = 0;
    axds::test::run_async(io, [&]() -> asio::awaitable<void> {
        auto releaser = [](std::optional<axds::shm_lock_guard>& release,
                           std::size_t& threads) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
            co_await timer.async_wait(asio::use_awaitable);
            threads = thread_count();  // the other coroutine is waiting now
            release.reset();
        };
        asio::co_spawn(co_await asio::this_coro::executor, releaser(held, threads_while_waiting), asio::detached);
        auto guard = co_await a.async_lock(std::chrono::seconds(5));
        CHECK_FALSE(guard.previous_owner_died());
    });
    if (axds::sys::uring_enabled(axds::sys::uring_feature::futex_wait)) {
        CHECK(threads_while_waiting == threads_before);  // the kernel waits, not a helper thread
    } else {
        CHECK(threads_while_waiting == threads_before + 1);
    }
}

TEST_CASE("a cancelled async_lock leaves no waiter in the kernel and no descriptor behind", "[shm][async_lock]") {
    const std::size_t fds_before = fd_count();
    {
        const shm_name name("cancelnowaiter");
        auto a = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{0});
        auto b = shared_memory_array<std::int64_t>::attach(name, {1});
        std::optional<axds::shm_lock_guard> held = a.lock();
        for (int round = 0; round < 3; ++round) {  // cancel several waits: each must leave nothing behind
            asio::io_context io;
            asio::cancellation_signal cancel;
            std::exception_ptr error;
            asio::steady_timer timer(io, std::chrono::milliseconds(10));
            timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
            auto attempt = [](shared_memory_array<std::int64_t>& array) -> asio::awaitable<void> {
                auto guard = co_await array.async_lock(std::chrono::seconds(5));
            };
            asio::co_spawn(io, attempt(b), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                               error = std::move(e);
                           }));
            io.run();
            REQUIRE(error);
            CHECK_THROWS_AS(std::rethrow_exception(error), std::system_error);
        }
        // A waiter left in the kernel would take the one wake the holder's unlock sends, and this thread blocked in
        // pthread_mutex_lock (queued after it) would sleep for ever.
        std::atomic<bool> got{false};
        std::thread blocked([&] {
            auto guard = b.lock();
            got.store(true);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(30));  // asleep in the kernel by now
        held.reset();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (!got.load() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (!got.load()) {
            blocked.detach();  // asleep for ever: a wait the cancel left in the kernel took its wake
            FAIL("a thread blocked in lock() was not woken by the holder's unlock after cancelled async_locks");
        }
        blocked.join();
        // And the object still waits and locks.
        asio::io_context again;
        axds::test::run_async(again, [&]() -> asio::awaitable<void> {
            auto guard = co_await b.async_lock(std::chrono::seconds(5));
            CHECK_FALSE(guard.previous_owner_died());
        });
    }
    CHECK(fd_count() == fds_before);  // no ring, eventfd or watching descriptor left
}

TEST_CASE("many async_lock waiters on two threads each get the lock once per try and never together",
          "[shm][async_lock]") {
    const shm_name name("manywaiters");
    auto a = shared_memory_array<std::int64_t>::create(name, {1}, std::int64_t{0});
    auto b = shared_memory_array<std::int64_t>::attach(name, {1});
    constexpr int coroutines = 6;
    constexpr int rounds = 15;
    std::atomic<bool> inside{false};
    std::atomic<int> overlaps{0};
    std::atomic<int> failures{0};
    std::vector<int> taken(2 * coroutines, 0);
    auto worker = [&](shared_memory_array<std::int64_t>& array, int first) {
        asio::io_context io;
        auto one = [&](int index) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            for (int r = 0; r < rounds; ++r) {
                auto guard = co_await array.async_lock(std::chrono::seconds(20));
                if (inside.exchange(true)) {
                    overlaps.fetch_add(1);
                }
                ++taken[static_cast<std::size_t>(index)];
                const std::int64_t value = array.array(false)[0];
                timer.expires_after(std::chrono::microseconds(200));  // held across a suspension: others wait
                co_await timer.async_wait(asio::use_awaitable);
                array.array(false)[0] = value + 1;
                inside.store(false);
            }
        };
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(io, one(first + c), [&](std::exception_ptr e) {
                if (e) {
                    failures.fetch_add(1);
                }
            });
        }
        io.run();
    };
    std::thread other([&] { worker(b, coroutines); });
    worker(a, 0);
    other.join();
    CHECK(failures.load() == 0);
    CHECK(overlaps.load() == 0);
    CHECK(taken == std::vector<int>(2 * coroutines, rounds));
    CHECK(a.get(0) == 2 * coroutines * rounds);
}

TEST_CASE("async_lock waiters in three processes make exact locked increments", "[shm][async_lock]") {
    const shm_name name("asyncprocs");
    auto a = shared_memory_array<std::int64_t>::create(name, {4}, std::int64_t{0});
    std::vector<axds::test::child_process> workers;
    for (int p = 0; p < 3; ++p) {  // 4 coroutines each, holding the lock across a suspension
        workers.emplace_back(std::vector<std::string>{AXDS_SHM_WORKER, "async-increment", name.str(), "4", "100", "4"});
    }
    for (auto& w : workers) {
        CHECK(w.wait() == 0);
    }
    CHECK(a.read() == std::vector<std::int64_t>(4, 3 * 4 * 100));
}

// Issue 21, third step: before each sleep async_lock spins for a few microseconds on the mutex word
// (detail::spin_for_lock, src/shm/lock_spin.hpp), trying the lock whenever the word shows it free or its holder dead.
namespace {

/// A robust process-shared mutex in anonymous shared memory, inherited by forked children.
class shared_robust_mutex {
public:
    shared_robust_mutex() {
        void* memory =
            ::mmap(nullptr, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(memory != MAP_FAILED);
        mutex_ = static_cast<pthread_mutex_t*>(memory);
        pthread_mutexattr_t attributes;
        pthread_mutexattr_init(&attributes);
        pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(mutex_, &attributes);
        pthread_mutexattr_destroy(&attributes);
    }

    shared_robust_mutex(const shared_robust_mutex&) = delete;
    shared_robust_mutex& operator=(const shared_robust_mutex&) = delete;

    ~shared_robust_mutex() {
        pthread_mutex_destroy(mutex_);
        ::munmap(mutex_, sizeof(pthread_mutex_t));
    }

    [[nodiscard]] pthread_mutex_t* get() const noexcept { return mutex_; }

    [[nodiscard]] int* word() const noexcept { return &mutex_->__data.__lock; }

    /// The trylock's result when it took the mutex (0, or EOWNERDEAD), std::nullopt while someone else holds it.
    [[nodiscard]] std::optional<int> try_take() const {
        const int rc = pthread_mutex_trylock(mutex_);
        return rc == EBUSY ? std::nullopt : std::optional<int>(rc);
    }

private:
    pthread_mutex_t* mutex_ = nullptr;
};

}  // namespace

TEST_CASE("the lock spin takes a mutex whose holder is killed with -9 while it spins and reports the death",
          "[shm][async_lock]") {
    const shared_robust_mutex shared;
    std::array<int, 2> ready{};
    REQUIRE(::pipe(ready.data()) == 0);
    const pid_t holder = ::fork();
    if (holder == 0) {
        pthread_mutex_lock(shared.get());
        (void)!::write(ready[1], "x", 1);
        ::pause();
        ::_exit(0);
    }
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
    std::thread killer([holder] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the spin below is under way
        ::kill(holder, SIGKILL);
    });
    const auto start = std::chrono::steady_clock::now();
    const std::optional<int> taken = axds::detail::spin_for_lock(shared.word(), start + std::chrono::seconds(10),
                                                                 [&shared] { return shared.try_take(); });
    const auto elapsed = std::chrono::steady_clock::now() - start;
    killer.join();
    int status = 0;
    ::waitpid(holder, &status, 0);
    CHECK(WIFSIGNALED(status));
    REQUIRE(taken.has_value());
    CHECK(*taken == EOWNERDEAD);  // not a plain 0: the death is reported
    CHECK(elapsed >= std::chrono::milliseconds(25));
    CHECK(elapsed < std::chrono::seconds(5));  // taken on the death, not at the deadline
    pthread_mutex_consistent(shared.get());
    pthread_mutex_unlock(shared.get());
}

TEST_CASE("the lock spin takes a mutex released while it spins and gives up at its deadline", "[shm][async_lock]") {
    const shared_robust_mutex shared;
    std::atomic<bool> holding{false};
    std::atomic<bool> release{false};
    std::thread holder([&] {  // a robust mutex is released by the thread that took it
        pthread_mutex_lock(shared.get());
        holding.store(true);
        while (!release.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        pthread_mutex_unlock(shared.get());
    });
    while (!holding.load()) {
        std::this_thread::yield();
    }
    auto start = std::chrono::steady_clock::now();
    const std::optional<int> expired = axds::detail::spin_for_lock(shared.word(), start + std::chrono::milliseconds(5),
                                                                   [&shared] { return shared.try_take(); });
    const auto spun = std::chrono::steady_clock::now() - start;
    CHECK_FALSE(expired.has_value());  // the holder kept it all the while
    CHECK(spun >= std::chrono::milliseconds(5));
    CHECK(spun < std::chrono::seconds(2));
    release.store(true);
    start = std::chrono::steady_clock::now();
    const std::optional<int> taken = axds::detail::spin_for_lock(shared.word(), start + std::chrono::seconds(10),
                                                                 [&shared] { return shared.try_take(); });
    const auto waited = std::chrono::steady_clock::now() - start;
    holder.join();
    REQUIRE(taken.has_value());
    CHECK(*taken == 0);
    CHECK(waited < std::chrono::seconds(5));  // on the release, not at the deadline
    pthread_mutex_unlock(shared.get());
}
