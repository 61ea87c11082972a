// detail::read_in_order: several threads read one file while the caller consumes its chunks in file order. Hashing a
// large file relies on it (the checksum), so every byte must arrive once, in order, whatever the thread count.
#include "detail/ordered_reader.hpp"

#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <unistd.h>

using axds::detail::ordered_chunk_size;
using axds::detail::read_in_order;
using axds::test::random_bytes;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

struct read_only {
    int fd;

    explicit read_only(const std::filesystem::path& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}

    read_only(const read_only&) = delete;
    read_only& operator=(const read_only&) = delete;

    ~read_only() { ::close(fd); }
};

}  // namespace

TEST_CASE("read_in_order hands every chunk over once and in file order with 0 to 4 reader threads", "[fs]") {
    const temp_dir tmp;
    // Past the 8 chunks read ahead, and not a whole number of chunks.
    const std::string content = random_bytes(ordered_chunk_size * 19 + 12345, 7);
    write_file(tmp.path() / "big.bin", content);
    const read_only file(tmp.path() / "big.bin");
    REQUIRE(file.fd >= 0);
    for (const unsigned readers : {0U, 1U, 2U, 4U}) {
        for (const std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{ordered_chunk_size} + 3}) {
            std::string seen;
            std::size_t calls = 0;
            const auto result =
                read_in_order(file.fd, offset, content.size() - offset, readers, [&](std::span<const std::byte> c) {
                    seen.append(reinterpret_cast<const char*>(c.data()), c.size());
                    ++calls;
                });
            INFO("readers " << readers << ", offset " << offset);
            CHECK_FALSE(result.error);
            CHECK(result.bytes == content.size() - offset);
            CHECK(calls == (content.size() - offset + ordered_chunk_size - 1) / ordered_chunk_size);
            CHECK(seen == content.substr(offset));  // one comparison: 19 MiB of INFO on failure helps nobody
        }
    }
}

TEST_CASE("read_in_order stops at a file that ended early and reports a read error", "[fs]") {
    const temp_dir tmp;
    const std::string content = random_bytes(ordered_chunk_size * 3 + 5, 8);
    write_file(tmp.path() / "short.bin", content);
    const read_only file(tmp.path() / "short.bin");
    std::string seen;
    // Asked for 12 chunks of a file of 3 chunks and 5 bytes (it "shrank"): what is there, then the end.
    const auto result = read_in_order(file.fd, 0, ordered_chunk_size * 12, 2, [&](std::span<const std::byte> c) {
        seen.append(reinterpret_cast<const char*>(c.data()), c.size());
    });
    CHECK_FALSE(result.error);
    CHECK(result.bytes == content.size());
    CHECK(seen == content);

    const int write_only = ::open((tmp.path() / "w.bin").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(write_only >= 0);
    REQUIRE(::ftruncate(write_only, static_cast<off_t>(ordered_chunk_size * 4)) == 0);
    const auto failed = read_in_order(write_only, 0, ordered_chunk_size * 4, 2, [](std::span<const std::byte>) {});
    CHECK(failed.error == std::errc::bad_file_descriptor);
    CHECK(failed.bytes == 0);
    ::close(write_only);
}

TEST_CASE("read_in_order releases its reader threads when the consumer throws", "[fs]") {
    const temp_dir tmp;
    write_file(tmp.path() / "big.bin", random_bytes(ordered_chunk_size * 12, 9));
    const read_only file(tmp.path() / "big.bin");
    std::size_t calls = 0;
    CHECK_THROWS_AS(read_in_order(file.fd, 0, ordered_chunk_size * 12, 3,
                                  [&](std::span<const std::byte>) {
                                      if (++calls == 2) {
                                          throw std::runtime_error("consumer failed");
                                      }
                                  }),
                    std::runtime_error);
    CHECK(calls == 2);  // and the test returns: no reader is left waiting for a slot
}
