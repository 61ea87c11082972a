#include "detail/uring_copy.hpp"

#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

TEST_CASE("uring_copy copies every size exactly and shows the chunks in file order", "[core][io_uring]") {
    if (!axds::io_uring_available()) {
        WARN("io_uring unavailable: uring_copy falls back (ENOSYS), tested elsewhere");
        return;
    }
    const temp_dir tmp;
    constexpr std::size_t mib = std::size_t{1} << 20;
    const std::size_t size = GENERATE(std::size_t{1}, (std::size_t{1} << 20) - 1, std::size_t{1} << 20,
                                      (std::size_t{1} << 20) + 1, (std::size_t{5} << 20) + 3, std::size_t{9} << 20);
    std::string content(size, '\0');
    std::mt19937_64 random(size);
    for (auto& c : content) {
        c = static_cast<char>(random());
    }
    write_file(tmp.path() / "in.bin", content);
    const int in = ::open((tmp.path() / "in.bin").c_str(), O_RDONLY | O_CLOEXEC);
    const int out = ::open((tmp.path() / "out.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE((in >= 0 && out >= 0));
    std::string seen;
    std::size_t chunks = 0;
    const axds::sys::io_result copied = axds::detail::uring_copy(in, out, size, [&](std::span<const char> chunk) {
        seen.append(chunk.data(), chunk.size());
        ++chunks;
    });
    ::close(in);
    ::close(out);
    CHECK_FALSE(copied.error);
    CHECK(copied.bytes == size);
    CHECK(chunks == (size + mib - 1) / mib);
    CHECK(seen == content);  // in order
    CHECK(read_file(tmp.path() / "out.bin") == content);
}

TEST_CASE("uring_copy reports a failing read as an error_code and a shrunken file as a short count",
          "[core][io_uring]") {
    if (!axds::io_uring_available()) {
        return;
    }
    const temp_dir tmp;
    write_file(tmp.path() / "in.bin", std::string(3 << 20, 'x'));
    const int write_only = ::open((tmp.path() / "in.bin").c_str(), O_WRONLY | O_CLOEXEC);
    const int out = ::open((tmp.path() / "out.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(axds::detail::uring_copy(write_only, out, 3 << 20).error == std::errc::bad_file_descriptor);
    ::close(write_only);
    // The caller believes the file is 5 MiB, but it holds 3: the copy stops at the real end.
    const int in = ::open((tmp.path() / "in.bin").c_str(), O_RDONLY | O_CLOEXEC);
    const axds::sys::io_result shrunk = axds::detail::uring_copy(in, out, 5 << 20);
    CHECK_FALSE(shrunk.error);
    CHECK(shrunk.bytes == (3U << 20));
    ::close(in);
    ::close(out);
    CHECK(fs::file_size(tmp.path() / "out.bin") == (3U << 20));
}
