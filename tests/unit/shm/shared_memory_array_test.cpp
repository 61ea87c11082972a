#include <axds/shm/shared_memory_array.hpp>

#include "support/child_process.hpp"
#include "support/matchers.hpp"
#include "support/run_async.hpp"
#include "support/temp_dir.hpp"

#include <axds/error.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
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

TEST_CASE("shared memory array async_lock lets the executor run other handlers while it waits", "[shm]") {
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
