#include "detail/uring_reader.hpp"

#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

TEST_CASE("read_file_prefixes reads many files in batches and reports per-file errors", "[core][io_uring]") {
    axds::test::temp_dir tmp;
    std::vector<std::string> paths;
    for (int i = 0; i < 300; ++i) {
        paths.push_back((tmp.path() / ("f" + std::to_string(i))).string());
        axds::test::write_file(paths.back(), std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
    }
    paths.push_back((tmp.path() / "missing").string());
    paths.push_back(tmp.path().string());  // a directory: read fails with EISDIR
    std::vector<std::vector<std::uint8_t>> buffers(paths.size(), std::vector<std::uint8_t>(256));
    std::vector<axds::detail::prefix_read> reads(paths.size());
    for (std::size_t i = 0; i < paths.size(); ++i) {
        reads[i].path = paths[i].c_str();
        reads[i].buffer = buffers[i];
    }
    const bool used_io_uring = axds::detail::read_file_prefixes(reads);
    // Where io_uring works, the batched chains must really run (a rejected open flag once made every batch
    // silently fall back to plain reads).
    CHECK(used_io_uring == (axds::io_uring_available() && std::getenv("AXDS_NO_IO_URING") == nullptr));
    for (std::size_t i = 0; i < 300; ++i) {
        INFO(i);
        REQUIRE_FALSE(reads[i].error);
        REQUIRE(reads[i].bytes == std::min<std::size_t>(i, 256));
        if (i > 0) {
            CHECK(buffers[i][0] == static_cast<std::uint8_t>('a' + i % 26));
        }
    }
    CHECK(reads[300].error == std::errc::no_such_file_or_directory);
    CHECK(reads[301].error == std::errc::is_a_directory);

    axds::sys::aligned_buffer whole;
    const axds::sys::io_result read = axds::detail::read_whole_file(paths[299].c_str(), whole);
    CHECK_FALSE(read.error);
    CHECK(read.bytes == 299);
    CHECK(whole.size() >= 299);
    CHECK(axds::sys::io_aligned(whole.data()));
    CHECK(axds::detail::read_whole_file(paths[300].c_str(), whole).error == std::errc::no_such_file_or_directory);
}
