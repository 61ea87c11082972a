// The pipelined verified copy (detail::copy_and_hash), by both methods (in-kernel and through a ring of buffers): the
// destination digest comes from the bytes read back from the destination after they were written, over the whole
// file, so a chunk damaged after its copy is caught.
#include "fs/copy_pipeline.hpp"

#include "support/temp_dir.hpp"
#include "support/tmpfs_mount.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace fs = std::filesystem;
using axds::test::random_bytes;
using axds::test::read_file;
using axds::test::temp_dir;
using axds::test::write_file;

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;

using axds::detail::copy_method;

std::string name_of(copy_method method) {
    return method == copy_method::kernel ? "kernel" : "buffers";
}

axds::detail::digest128 digest_of(std::string_view relative, std::string_view content) {
    axds::detail::file_hasher hasher;
    hasher.start(relative);
    hasher.update(content.data(), content.size());
    return hasher.finish();
}

/// The two descriptors of one copy, closed at the end.
struct copy_files {
    int in = -1;
    int out = -1;

    copy_files(const fs::path& from, const fs::path& to)
        : in(::open(from.c_str(), O_RDONLY | O_CLOEXEC)),
          out(::open(to.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {}

    copy_files(const copy_files&) = delete;
    copy_files& operator=(const copy_files&) = delete;

    ~copy_files() {
        ::close(in);
        ::close(out);
    }
};

/// The source's and the copy's hashers of one copy, both started for `relative`.
struct hasher_pair {
    axds::detail::file_hasher source;
    axds::detail::file_hasher destination;

    explicit hasher_pair(std::string_view relative) {
        source.start(relative);
        destination.start(relative);
    }

    /// What copy_and_hash takes; without the source's (a reused source checksum), only the copy is hashed.
    axds::detail::pipeline_hashers both(bool with_source = true) {
        return {with_source ? &source : nullptr, &destination};
    }
};

}  // namespace

TEST_CASE("copy_and_hash copies in chunks and digests the source and the copy read back", "[fs]") {
    const temp_dir tmp;
    const copy_method method = GENERATE(copy_method::kernel, copy_method::buffers);
    // 9 MiB + 123: more chunks than the ring has buffers, so each is reused (after its source hash).
    const std::size_t size = GENERATE(std::size_t{1}, mib, (std::size_t{9} * mib) + 123);
    INFO(name_of(method) << ", " << size << " bytes");
    const std::string content = random_bytes(size, size);
    write_file(tmp.path() / "in.bin", content);
    const copy_files files(tmp.path() / "in.bin", tmp.path() / "out.bin");
    REQUIRE((files.in >= 0 && files.out >= 0));
    hasher_pair hashers("big.bin");
    std::size_t chunks = 0;
    const auto result =
        axds::detail::copy_and_hash(files.in, files.out, hashers.both(), method, mib, [&](std::uint64_t) { ++chunks; });
    REQUIRE(result.error == 0);
    REQUIRE(result.in_kernel);
    CHECK(result.copied == size);
    CHECK(chunks == (size + mib - 1) / mib);
    CHECK(read_file(tmp.path() / "out.bin") == content);
    const auto expected = digest_of("big.bin", content);
    CHECK(hashers.source.finish() == expected);
    CHECK(hashers.destination.finish() == expected);
}

TEST_CASE("copy_and_hash digests what the destination holds: a chunk damaged after its copy mismatches", "[fs]") {
    const temp_dir tmp;
    const std::string content = random_bytes((std::size_t{4} * mib) + 7, 42);
    write_file(tmp.path() / "in.bin", content);
    const copy_files files(tmp.path() / "in.bin", tmp.path() / "out.bin");
    REQUIRE((files.in >= 0 && files.out >= 0));
    const copy_method method = GENERATE(copy_method::kernel, copy_method::buffers);
    const bool with_source = GENERATE(true, false);  // false: a reused source checksum, only the copy is hashed
    INFO(name_of(method) << (with_source ? ", with the source hashed" : ", only the copy hashed"));
    hasher_pair hashers("x");
    // After the second chunk is copied and before the hashing thread may read it, one byte of it flips on disk.
    const off_t flipped = static_cast<off_t>(mib + 4096);
    const auto damage = [&](std::uint64_t copied) {
        if (copied == 2 * mib) {
            const char byte = static_cast<char>(content[static_cast<std::size_t>(flipped)] ^ 1);
            REQUIRE(::pwrite(files.out, &byte, 1, flipped) == 1);
        }
    };
    const auto result =
        axds::detail::copy_and_hash(files.in, files.out, hashers.both(with_source), method, mib, damage);
    REQUIRE(result.error == 0);
    std::string damaged = content;
    damaged[static_cast<std::size_t>(flipped)] ^= 1;
    REQUIRE(read_file(tmp.path() / "out.bin") == damaged);
    CHECK(hashers.destination.finish() == digest_of("x", damaged));  // read back from the destination, not the source
    if (with_source) {
        CHECK(hashers.source.finish() == digest_of("x", content));
    }
}

TEST_CASE("copy_and_hash digests a source that grows during the copy as each file holds it", "[fs]") {
    const temp_dir tmp;
    const copy_method method = GENERATE(copy_method::kernel, copy_method::buffers);
    INFO(name_of(method));
    const std::string content = random_bytes((std::size_t{2} * mib) + 5, 7);
    write_file(tmp.path() / "in.bin", content);
    const copy_files files(tmp.path() / "in.bin", tmp.path() / "out.bin");
    REQUIRE((files.in >= 0 && files.out >= 0));
    hasher_pair hashers("g");
    // Appended after the last chunk of the original size is copied: the source digest covers the new end.
    const int append = ::open((tmp.path() / "in.bin").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    REQUIRE(append >= 0);
    const auto grow = [&](std::uint64_t copied) {
        if (copied == content.size()) {
            REQUIRE(::write(append, "tail", 4) == 4);
        }
    };
    const auto result = axds::detail::copy_and_hash(files.in, files.out, hashers.both(), method, mib, grow);
    ::close(append);
    REQUIRE(result.error == 0);
    const std::string grown = content + "tail";
    // The source's hasher reads on a thread of its own from the first chunk on: it may reach the original end before
    // the append (seen once in a loaded run) or read the tail too. Either is what the source held when it was read;
    // a digest of anything else (a chunk missed or hashed twice) is the failure.
    const axds::detail::digest128 source_digest = hashers.source.finish();
    CHECK((source_digest == digest_of("g", grown) || source_digest == digest_of("g", content)));
    // Whatever the copy caught of the growth, the destination digest is that of the destination's bytes.
    CHECK(hashers.destination.finish() == digest_of("g", read_file(tmp.path() / "out.bin")));
}

TEST_CASE("copy_and_hash notices a destination resized by name during the copy", "[fs][safety]") {
    // Found by review: a truncation by name (no open, so no inotify event) of bytes already read back, followed by the
    // copy's next write past it, leaves zeros where the read-back saw data, in a file of the right size with no hole
    // big enough to show in its blocks. The copy reports it, so that the caller reads the copy again.
    const temp_dir tmp;
    const copy_method method = GENERATE(copy_method::kernel, copy_method::buffers);
    const bool resize = GENERATE(false, true);
    INFO(name_of(method) << (resize ? ", truncated by 100 bytes after the second chunk" : ", untouched"));
    const std::string content = random_bytes(std::size_t{4} * mib, 9);
    write_file(tmp.path() / "in.bin", content);
    const copy_files files(tmp.path() / "in.bin", tmp.path() / "out.bin");
    REQUIRE((files.in >= 0 && files.out >= 0));
    hasher_pair hashers("r");
    const auto cut = [&](std::uint64_t copied) {
        if (resize && copied == 2 * mib) {
            REQUIRE(::truncate((tmp.path() / "out.bin").c_str(), static_cast<off_t>(copied - 100)) == 0);
        }
    };
    const auto result = axds::detail::copy_and_hash(files.in, files.out, hashers.both(), method, mib, cut);
    REQUIRE(result.error == 0);
    CHECK(result.resized == resize);
}

TEST_CASE("copy_and_hash on a full disk returns ENOSPC and stops both sides", "[fs][disk_full]") {
    const temp_dir tmp;
    const copy_method method = GENERATE(copy_method::kernel, copy_method::buffers);
    INFO(name_of(method));
    axds::test::tmpfs_mount disk(tmp.path() / "disk", "16m");
    AXDS_SKIP_IF(!disk.mounted(), "mounting a tmpfs is not permitted here (needs root): full-disk copy untested");
    // Both files on the small disk (copy_file_range refuses to copy between filesystems): 12 MiB, of which about 4
    // fit a second time.
    const std::string content = random_bytes(std::size_t{12} * mib, 3);
    write_file(disk.path() / "in.bin", content);
    const copy_files files(disk.path() / "in.bin", disk.path() / "out.bin");
    REQUIRE((files.in >= 0 && files.out >= 0));
    hasher_pair hashers("f");
    const auto result = axds::detail::copy_and_hash(files.in, files.out, hashers.both(), method, mib);
    REQUIRE(result.in_kernel);
    CHECK(result.error == ENOSPC);
    CHECK(result.copied < content.size());
}

TEST_CASE("read_back reads what pread reads, through a pipe or not, at any offset and across the pipe's size", "[fs]") {
    const temp_dir tmp;
    const bool splice = GENERATE(true, false);
    // 3 MiB + 4097: more than one pipe's worth (1 MiB at most for a user), and a tail that is not a whole page.
    const std::size_t size = (std::size_t{3} * mib) + 4097;
    const std::string content = random_bytes(size, 19);
    write_file(tmp.path() / "file.bin", content);
    const int fd = ::open((tmp.path() / "file.bin").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    axds::detail::read_back reader(fd, splice);
    std::string buffer(size + 100, '\0');
    // (offset, length): aligned, unaligned, spanning pipes, up to and past the end of the file, and past it.
    const std::vector<std::pair<std::size_t, std::size_t>> reads{
        {0, mib}, {1, 4095}, {4093, (2 * mib) + 7}, {mib - 1, size - mib + 1}, {size - 10, 100}, {size, 16}, {0, size}};
    for (const auto& [offset, length] : reads) {
        INFO((splice ? "splice" : "pread") << ": " << length << " bytes at " << offset);
        const axds::sys::io_result n = reader.read(buffer.data(), length, static_cast<off_t>(offset));
        REQUIRE_FALSE(n.error);
        const std::size_t expected = offset >= size ? 0 : std::min(length, size - offset);
        REQUIRE(n.bytes == expected);
        CHECK(buffer.compare(0, expected, content, offset, expected) == 0);
    }
    CHECK(reader.spliced() == splice);  // a regular file splices: no fall-back to pread was needed
    ::close(fd);
}

TEST_CASE("read_back falls back to pread where the kernel refuses to splice, and reports read errors", "[fs]") {
    // A directory: splice refuses it (EINVAL), then pread fails with EISDIR, which is what the caller sees.
    const temp_dir tmp;
    const int dir = ::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dir >= 0);
    axds::detail::read_back reader(dir);
    std::string buffer(64, '\0');
    const axds::sys::io_result n = reader.read(buffer.data(), buffer.size(), 0);
    CHECK_FALSE(reader.spliced());
    CHECK(n.error.value() == EISDIR);
    CHECK(n.bytes == 0);
    ::close(dir);
}
