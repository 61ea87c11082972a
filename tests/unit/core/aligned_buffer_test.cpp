// Every buffer the kernel copies into or out of must be 64-byte aligned (issue 17: on AMD Zen the kernel's copy into
// a misaligned buffer ran ~4x slower). These tests fail when a path's buffer is not.
#include "sys/aligned_buffer.hpp"

#include "detail/huge_pages.hpp"
#include "detail/uring_copy.hpp"
#include "detail/uring_reader.hpp"
#include "fs/file_digest.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using axds::sys::aligned_buffer;
using axds::sys::io_aligned;

namespace {

bool page_aligned(const void* address) {
    return reinterpret_cast<std::uintptr_t>(address) % axds::sys::buffer_alignment == 0;
}

}  // namespace

TEST_CASE("aligned_buffer starts every buffer on a page and counts its own allocations", "[core][aligned_buffer]") {
    const aligned_buffer none;
    CHECK(none.empty());
    CHECK(none.data() == nullptr);
    CHECK(none.allocations() == 0);
    for (const std::size_t size : {std::size_t{1}, std::size_t{63}, std::size_t{4096}, std::size_t{4097},
                                   std::size_t{65536} + 16, std::size_t{8} << 20}) {
        INFO(size);
        aligned_buffer buffer(size);
        REQUIRE(buffer.size() == size);
        CHECK(page_aligned(buffer.data()));
        CHECK(io_aligned(buffer.as<char>().data()));
        if (size >= axds::sys::huge_buffer_alignment) {  // huge-page advice then covers all of it
            CHECK(reinterpret_cast<std::uintptr_t>(buffer.data()) % axds::sys::huge_buffer_alignment == 0);
        }
        CHECK(buffer.allocations() == 1);
        buffer.as<std::uint8_t>().back() = 0x5A;  // the whole size is usable
        buffer.reserve_discarding(size);          // fits: kept
        CHECK(buffer.allocations() == 1);
        buffer.reserve_discarding(size * 3 + 1);  // grows: a new, aligned block
        CHECK(buffer.allocations() == 2);
        CHECK(buffer.size() == size * 3 + 1);
        CHECK(page_aligned(buffer.data()));
        aligned_buffer moved(std::move(buffer));
        CHECK(page_aligned(moved.data()));
        CHECK(moved.allocations() == 2);
        CHECK(buffer.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    }
}

TEST_CASE("huge_page_allocator puts large per-file arrays on 2 MiB boundaries and keeps small ones on the heap",
          "[core][aligned_buffer]") {
    constexpr std::size_t huge = std::size_t{2} << 20U;
    std::vector<std::uint64_t, axds::detail::huge_page_allocator<std::uint64_t>> values;
    values.reserve(16);
    const auto* small = values.data();
    for (std::uint64_t i = 0; i < 200000; ++i) {  // grows through both kinds of block, elements moved across
        values.push_back(i * 7);
    }
    CHECK(small != values.data());
    CHECK(reinterpret_cast<std::uintptr_t>(values.data()) % huge == 0);
    bool intact = true;
    for (std::uint64_t i = 0; i < values.size(); ++i) {
        intact = intact && values[i] == i * 7;
    }
    CHECK(intact);
    std::basic_string<char, std::char_traits<char>, axds::detail::huge_page_allocator<char>> names;
    for (int i = 0; i < 20000; ++i) {
        names += "001_00000000000000001500.npy";
    }
    CHECK(reinterpret_cast<std::uintptr_t>(names.data()) % huge == 0);
    CHECK(std::string_view(names).substr(28, 28) == "001_00000000000000001500.npy");
    values.clear();
    values.shrink_to_fit();
    CHECK(values.capacity() == 0);
}

TEST_CASE("The checksum and copy read buffer is aligned on every thread", "[core][aligned_buffer]") {
    const auto check = [] {
        const auto buffer = axds::detail::thread_read_buffer();
        CHECK(buffer.size() == axds::detail::read_chunk_size);
        CHECK(io_aligned(buffer.data()));
        CHECK(page_aligned(buffer.data()));
        CHECK(axds::detail::thread_read_buffer().data() == buffer.data());  // made once per thread
    };
    check();
    std::thread other(check);
    other.join();
}

TEST_CASE("uring_copy hands out only aligned chunks", "[core][aligned_buffer][io_uring]") {
    if (!axds::io_uring_available()) {
        WARN("io_uring unavailable: uring_copy is not used");
        return;
    }
    const axds::test::temp_dir tmp;
    axds::test::write_file(tmp.path() / "in.bin", std::string((std::size_t{5} << 20) + 7, 'x'));
    const int in = ::open((tmp.path() / "in.bin").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(in >= 0);
    std::size_t chunks = 0;
    std::size_t misaligned = 0;
    const axds::sys::io_result read =
        axds::detail::uring_copy(in, -1, (std::size_t{5} << 20) + 7, [&](std::span<const char> c) {
            ++chunks;
            misaligned += io_aligned(c.data()) ? 0U : 1U;
        });
    ::close(in);
    CHECK_FALSE(read.error);
    CHECK(read.bytes == (std::size_t{5} << 20) + 7);
    CHECK(chunks == 6);
    CHECK(misaligned == 0);
}

TEST_CASE("read_whole_file reads into an aligned buffer and reuses it", "[core][aligned_buffer]") {
    const axds::test::temp_dir tmp;
    axds::test::write_file(tmp.path() / "a.bin", std::string(70000, 'a'));
    axds::test::write_file(tmp.path() / "b.bin", std::string(30000, 'b'));
    aligned_buffer buffer;
    REQUIRE(axds::detail::read_whole_file((tmp.path() / "a.bin").c_str(), buffer).bytes == 70000);
    CHECK(io_aligned(buffer.data()));
    CHECK(buffer.as<char>()[69999] == 'a');
    REQUIRE(axds::detail::read_whole_file((tmp.path() / "b.bin").c_str(), buffer).bytes == 30000);
    CHECK(buffer.allocations() == 1);  // the smaller file reused the block
    CHECK(buffer.as<char>()[29999] == 'b');
}
