// A verified transfer of a large file copies it in-kernel (copy_file_range) while another thread hashes the source;
// every copy is read back while it is open, and read again by the verification only if it changed since.
#include <axds/fs/transfer.hpp>

#include "detail/fault_hooks.hpp"
#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

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

TEST_CASE("A verified copy never shares its temporary file with another writer", "[fs][safety]") {
    // Another writer (say, a second transfer into the same destination) has a file's temporary open when this transfer
    // reaches it, and writes through it after this transfer wrote and read its copy. The copy must be an inode of its
    // own (the other writer's bytes never reach it), and a verification must never pass over bytes it did not read.
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    const fs::path destination = tmp.path() / "dest";
    const std::string first(16384, 'a');
    const std::string second(16384, 'b');
    write_file(source / "one.bin", first);
    write_file(source / "two.bin", second);
    fs::create_directories(destination);
    std::map<std::string, int> held;  // temporary name -> the other writer's descriptor
    const axds::detail::transfer_hooks hooks{.content_copied = [&](const fs::path& partial) {
        if (held.empty()) {  // the first copy: the other writer opens the temporaries of the files still to come
            for (const char* name : {"one.bin", "two.bin"}) {
                const fs::path other = destination / (std::string(".") + name + ".axds-partial");
                if (other != partial) {
                    held[other.filename().string()] = ::open(other.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                }
            }
        } else if (const auto it = held.find(partial.filename().string()); it != held.end()) {
            const std::string junk(16384, 'X');
            REQUIRE(::pwrite(it->second, junk.data(), junk.size(), 0) == static_cast<ssize_t>(junk.size()));
        }
    }};
    const auto report = axds::block_on(
        axds::detail::async_transfer_directory(source, destination, {.workers = 1, .verify_integrity = true}, hooks));
    for (const auto& [name, fd] : held) {
        ::close(fd);
    }
    CHECK(held.size() == 1);
    CHECK(report.verified);
    CHECK(read_file(destination / "one.bin") == first);
    CHECK(read_file(destination / "two.bin") == second);
}

TEST_CASE("A verified transfer catches another process's write into a large copy read back during the copy",
          "[fs][safety]") {
    // Found by a hostile-user run: a large file's copy is read back (and hashed) while it is copied; its times are
    // then set to the source's, which hid a write that another process made into the temporary meanwhile: the
    // verification trusted the digest of the read-back, reported success over a corrupt copy, and a move removed the
    // source. Now the read-back is trusted only if nobody else opened the temporary (and it has no hole): otherwise
    // the copy is read again, and the write is caught.
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    // The same filesystem (copied in-kernel) or another one (copied through buffers: a tmpfs mounted for the test).
    const bool across = GENERATE(false, true);
    std::optional<axds::test::tmpfs_mount> disk;
    if (across) {
        disk.emplace(tmp.path() / "disk", "64m");
        AXDS_SKIP_IF(!disk->mounted(),
                     "mounting a tmpfs is not permitted here (needs root): the copy across "
                     "filesystems is untested");
    }
    const fs::path destination = across ? disk->path() / "dest" : tmp.path() / "dest";
    std::string large((std::size_t{8} << 20) + 123, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) {
        large[i] = static_cast<char>((i * 2654435761U) >> 13U);
    }
    write_file(source / "big.bin", large);
    const bool truncate = GENERATE(false, true);  // an open and a write, or a truncation by name (a hole, no open)
    INFO((truncate ? "truncated by name and extended again" : "opened and written") << (across ? ", across" : ""));
    const axds::detail::transfer_hooks hooks{.content_copied = [&](const fs::path& partial) {
        if (truncate) {
            REQUIRE(::truncate(partial.c_str(), 4096) == 0);
            REQUIRE(::truncate(partial.c_str(), static_cast<off_t>(large.size())) == 0);  // zeros after 4 KiB
        } else {
            const int fd = ::open(partial.c_str(), O_WRONLY | O_CLOEXEC);
            REQUIRE(fd >= 0);
            REQUIRE(::pwrite(fd, "GARBAGE!", 8, 1 << 20) == 8);
            ::close(fd);
        }
    }};
    CHECK_THROWS_AS(axds::block_on(axds::detail::async_transfer_directory(
                        source, destination, {.workers = 2, .verify_integrity = true, .remove_source = true}, hooks)),
                    axds::runtime_error);
    CHECK(read_file(source / "big.bin") == large);  // the move did not remove the only intact copy
}

TEST_CASE("A verified transfer refuses a file that changed while it was copied", "[fs][safety]") {
    // Found by a hostile-user run: without an ax_checksum.txt to reuse, the source checksum is computed from the bytes
    // the copy reads; a file truncated (or overwritten) during its copy was copied as a mix of old and new bytes that
    // this checksum vouched for ("verified", exit 0), a file that never existed as such.
    const temp_dir tmp;
    const fs::path source = tmp.path() / "source";
    const fs::path destination = tmp.path() / "dest";
    const std::size_t size = GENERATE(std::size_t{20000}, (std::size_t{8} << 20) + 5);  // read back after / during
    const bool move = GENERATE(false, true);
    INFO(size << " bytes" << (move ? ", moved" : ""));
    const std::string content(size, 'c');
    write_file(source / "changing.bin", content);
    write_file(source / "steady.txt", "steady");
    const axds::detail::transfer_hooks hooks{.content_copied = [&](const fs::path& partial) {
        if (partial.filename() == ".changing.bin.axds-partial") {
            REQUIRE(::truncate((source / "changing.bin").c_str(), 4096) == 0);  // another process cuts it
        }
    }};
    const auto transfer = [&] {
        return axds::block_on(axds::detail::async_transfer_directory(
            source, destination, {.workers = 1, .verify_integrity = true, .remove_source = move}, hooks));
    };
    CHECK_THROWS_WITH(transfer(), Catch::Contains("changing.bin") && Catch::Contains("changed while it was copied"));
    CHECK_FALSE(fs::exists(destination / "changing.bin"));
    CHECK_FALSE(fs::exists(destination / ".changing.bin.axds-partial"));
    CHECK(read_file(source / "changing.bin") == content.substr(0, 4096));  // the source is as the other process left it
    CHECK(read_file(source / "steady.txt") == "steady");
}
