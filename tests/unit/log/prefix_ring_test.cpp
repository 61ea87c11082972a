// detail::prefix_ring: the assembly reads log entries through it, this thread and a helper reading chunks of files
// ahead of the consumer into a ring of slots. Every file must reach the consumer once, in index order, with its own
// bytes, however far the helper runs ahead (its slots are reused only once consumed).
#include "detail/prefix_ring.hpp"

#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using axds::detail::prefix_read;
using axds::detail::prefix_ring;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

constexpr std::size_t slot = 4096;

/// `count` files f0 … f{count-1}, each holding its own index and a size that varies with it.
std::vector<std::string> make_files(const std::filesystem::path& directory, std::size_t count) {
    std::vector<std::string> paths;
    for (std::size_t i = 0; i < count; ++i) {
        paths.push_back((directory / fmt::format("f{}", i)).string());
        write_file(paths.back(), fmt::format("{}:{}", i, std::string(i % 97, 'x')));
    }
    return paths;
}

struct ring_fixture {
    std::vector<std::string> paths;
    std::vector<std::uint8_t> scratch;

    ring_fixture(const std::filesystem::path& directory, std::size_t count, std::size_t ring_chunks)
        : paths(make_files(directory, count)), scratch(ring_chunks * prefix_ring::chunk_files * slot) {}

    prefix_ring ring(bool helper, bool io_uring = false) {
        return {paths.size(), scratch, slot, io_uring, helper, [this](std::size_t i, prefix_read& read) {
                    read.path = paths[i].c_str();
                }};
    }
};

std::string expected(std::size_t i) {
    return fmt::format("{}:{}", i, std::string(i % 97, 'x'));
}

}  // namespace

TEST_CASE("prefix_ring hands every file over once, in order, with its own bytes, however far the helper runs ahead",
          "[log]") {
    const temp_dir tmp;
    const bool helper = GENERATE(true, false);
    const bool io_uring = GENERATE(false, true);
    // Two chunks of slots for 1000 files (not a whole number of chunks): every slot is reused many times.
    ring_fixture fixture(tmp.path(), 1000, 2);
    prefix_ring ring = fixture.ring(helper, io_uring);
    std::size_t next = 0;
    std::size_t mismatches = 0;
    std::vector<std::size_t> chunk_ends;
    const bool finished = ring.run(
        [&](std::size_t index, const prefix_read& read) {
            CHECK(index == next++);
            if (index % 200 == 0) {  // a slow consumer: a helper that overran its slots would show here
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
            REQUIRE_FALSE(read.error);
            const std::string got(reinterpret_cast<const char*>(read.buffer.data()), read.bytes);
            mismatches += got == expected(index) ? 0U : 1U;
        },
        [&](std::size_t consumed) {
            chunk_ends.push_back(consumed);
            return true;
        });
    CHECK(finished);
    CHECK(next == 1000);
    CHECK(mismatches == 0);
    REQUIRE(chunk_ends.size() == 16);
    CHECK(chunk_ends.front() == 64);
    CHECK(chunk_ends.back() == 1000);
}

TEST_CASE("prefix_ring reports a file it cannot read on that file alone", "[log]") {
    const temp_dir tmp;
    ring_fixture fixture(tmp.path(), 300, 2);
    std::filesystem::remove(fixture.paths[123]);
    prefix_ring ring = fixture.ring(true);
    std::vector<std::size_t> failed;
    ring.run(
        [&](std::size_t index, const prefix_read& read) {
            if (read.error) {
                CHECK(read.error.value() == ENOENT);
                failed.push_back(index);
            }
        },
        {});
    CHECK(failed == std::vector<std::size_t>{123});
}

TEST_CASE("prefix_ring stops its helper when the consumer throws or after_chunk says stop", "[log]") {
    const temp_dir tmp;
    ring_fixture fixture(tmp.path(), 2000, 2);
    {
        prefix_ring ring = fixture.ring(true);
        CHECK_THROWS_AS(ring.run(
                            [](std::size_t index, const prefix_read&) {
                                if (index == 700) {
                                    throw std::runtime_error("bad entry");
                                }
                            },
                            {}),
                        std::runtime_error);
    }  // the helper is joined here or above: a helper left waiting would hang the test
    prefix_ring ring = fixture.ring(true);
    std::size_t consumed_files = 0;
    const bool finished = ring.run([&](std::size_t, const prefix_read&) { ++consumed_files; },
                                   [](std::size_t consumed) { return consumed < 256; });
    CHECK_FALSE(finished);
    CHECK(consumed_files == 256);
}
