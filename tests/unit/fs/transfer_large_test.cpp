// A verified transfer of a large file copies it in-kernel (copy_file_range) while another thread hashes the source;
// every copy is read back while it is open, and read again by the verification only if it changed since.
#include <axds/fs/transfer.hpp>

#include "detail/fault_hooks.hpp"
#include "support/temp_dir.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace fs = std::filesystem;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {}  // namespace

TEST_CASE("A verified transfer of a large file hashes the source beside the in-kernel copy", "[fs]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    std::string large((std::size_t{8} << 20) + 4097, '\0');  // at the in-kernel threshold, not a chunk multiple
    for (std::size_t i = 0; i < large.size(); ++i) {
        large[i] = static_cast<char>((i * 2654435761U) >> 11U);
    }
    write_file(source / "big.bin", large);
    write_file(source / "sub" / "small.txt", "small");

    const auto report = axds::block_on(
        axds::async_transfer_directory(source, tmp.path() / "dest", {.workers = 2, .verify_integrity = true}));
    CHECK(report.verified);
    CHECK(read_file(tmp.path() / "dest" / "big.bin") == large);
    // The digest computed beside the copy is the directory checksum of the source, computed on its own.
    const std::string saved = read_file(source / axds::checksum_file_name);
    CHECK(saved == axds::block_on(axds::async_calculate_directory_checksum(source, {.save_checksum = false})));
    CHECK(read_file(tmp.path() / "dest" / axds::checksum_file_name) == saved);

    // A flipped byte in the large copy is caught.
    fs::remove(source / axds::checksum_file_name);
    axds::detail::transfer_hooks corrupt{.after_copy = [](const fs::path& destination) {
        std::string content = read_file(destination / "big.bin");
        content[content.size() - 100] ^= 1;
        write_file(destination / "big.bin", content);
    }};
    CHECK_THROWS_AS(axds::block_on(axds::detail::async_transfer_directory(
                        source, tmp.path() / "dest2", {.workers = 2, .verify_integrity = true}, std::move(corrupt))),
                    axds::runtime_error);
}

TEST_CASE("A file read back during its copy is read again when it changed before the verification", "[fs]") {
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    // Large (pipelined: read back chunk by chunk during the copy) and small (read back right after it is written).
    const std::size_t size = GENERATE(std::size_t{20000}, (std::size_t{8} << 20) + 1);
    const std::string large(size, 'a');
    write_file(source / "big.bin", large);
    // Rewritten after the copy, same size, its mtime put back: only the ctime tells (the pause outlasts a coarse
    // timestamp tick on kernels without fine-grained ctimes).
    const axds::detail::transfer_hooks rewrite{.after_copy = [](const fs::path& destination) {
        const fs::path big = destination / "big.bin";
        const auto mtime = fs::last_write_time(big);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::string content = read_file(big);
        content[12345] = 'b';
        write_file(big, content);
        fs::last_write_time(big, mtime);
    }};
    CHECK_THROWS_AS(axds::block_on(axds::detail::async_transfer_directory(
                        source, tmp.path() / "dest", {.workers = 2, .verify_integrity = true}, rewrite)),
                    axds::runtime_error);
    // With the checksum reused from the source (no source hashing during the copy) too.
    CHECK_THROWS_AS(axds::block_on(axds::detail::async_transfer_directory(
                        source, tmp.path() / "dest2", {.workers = 2, .verify_integrity = true}, rewrite)),
                    axds::runtime_error);
    const auto report = axds::block_on(
        axds::async_transfer_directory(source, tmp.path() / "dest3", {.workers = 2, .verify_integrity = true}));
    CHECK(report.verified);
}
