#pragma once
// The per-file and combined digests of the directory checksum (spec §9.1), shared by the checksum and by the
// transfer, which hashes files while it copies them. Private to src/.

#include <axds/fs/checksum.hpp>

#include "sys/io.hpp"

#include <array>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/stat.h>

namespace axds::detail {

/// Bytes per read when hashing a file (checksum) or copying it through a buffer (hashed or cross-filesystem
/// transfer); see bench/README.md for the sizes measured.
inline constexpr std::size_t read_chunk_size = std::size_t{1} << 20;

/// The calling thread's read buffer of read_chunk_size bytes, page-aligned, made on first use and kept for the
/// thread's life. The checksum's reads and the transfer's copy fallback share it (they never nest on a thread).
[[nodiscard]] std::span<std::byte> thread_read_buffer();

/// Canonical (big-endian) XXH3-128 digest bytes.
using digest128 = std::array<unsigned char, 16>;

/// Streams XXH3-128 over `relative ‖ content` for one file (runtime AVX2/AVX-512 dispatch on x86-64).
class file_hasher {
public:
    file_hasher();
    ~file_hasher();
    file_hasher(const file_hasher&) = delete;
    file_hasher& operator=(const file_hasher&) = delete;

    /// Starts a file: resets the state and feeds its '/'-separated relative path.
    void start(std::string_view relative);
    void update(const void* data, std::size_t size);
    [[nodiscard]] digest128 finish();

private:
    struct state;
    std::unique_ptr<state> state_;
};

/// One file's contribution to the directory digest. `relative` views a string the caller keeps alive (the checksum's
/// file list, the transfer's copy list) until the digests are combined: no copy of every path.
struct file_digest {
    std::string_view relative;
    digest128 digest{};
};

/// The directory digest (32 lowercase hex characters): XXH3-128 over every file's relative path and digest, in byte
/// order of the relative paths. Sorts `files`.
[[nodiscard]] std::string combine_file_digests(std::vector<file_digest>& files);

/// A destination file's digest computed from its bytes read back right after they were written (the transfer's
/// pipelined verification), and what the file was when its copy was finished. The verification's checksum uses it
/// only while the file is still exactly that (device, inode, size, mtime and ctime: any later write changes the
/// mtime, which the copy had set to the source's, and the ctime); otherwise it reads the file again.
struct known_digest {
    digest128 digest{};
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;  ///< -1: no digest (the file was not hashed during its copy)
    timespec mtime{};
    timespec ctime{};

    [[nodiscard]] bool matches(const struct stat& st) const noexcept {
        return size >= 0 && st.st_dev == device && st.st_ino == inode && st.st_size == size &&
               st.st_mtim.tv_sec == mtime.tv_sec && st.st_mtim.tv_nsec == mtime.tv_nsec &&
               st.st_ctim.tv_sec == ctime.tv_sec && st.st_ctim.tv_nsec == ctime.tv_nsec;
    }
};

/// Known digests by '/'-separated relative path (views of the transfer's copy list, which outlives the verification
/// that looks them up).
using known_digests = std::unordered_map<std::string_view, known_digest>;

/// async_calculate_directory_checksum, taking the digest of a file listed in `known` from there when the file still
/// matches it (see known_digest) instead of reading it. `known` may be null. The walk runs on the CPU pool, never on
/// the caller's executor; `after_walk` (tests) is called right after it, on the thread that walked.
asio::awaitable<std::string> async_directory_checksum(std::filesystem::path directory, checksum_options options,
                                                      std::shared_ptr<const known_digests> known,
                                                      std::function<void()> after_walk = {});

/// Streams `size` bytes of `fd` from `offset`, in file order, to `observe`; returns the bytes streamed or an error
/// (after which `observe` may already have seen some chunks). The checksum streams the rest of a large file with
/// detail::uring_copy (no output); tests substitute one that fails midway.
using rest_streamer = std::function<sys::io_result(int fd, std::uint64_t offset, std::uint64_t size,
                                                   const std::function<void(std::span<const char>)>& observe)>;

/// One file's digest and size exactly as the directory checksum computes them (`relative` ‖ content), reading
/// `path` through the thread's buffer and, for the rest of a large file, through `streamer` when it is set (tests;
/// the checksum's own otherwise). @throws os_error family naming the file.
std::pair<digest128, std::uint64_t> file_digest_of(const std::string& path, std::string_view relative,
                                                   const rest_streamer& streamer = {});

/// Makes a file's data durable: 0 or an errno. save_checksum_file's is fdatasync; tests substitute one that fails.
using file_sync_fn = std::function<int(int fd)>;

/// fdatasync(fd): 0 or its errno.
int sync_file_data(int fd) noexcept;

/// Writes `digest` to `{directory}/ax_checksum.txt` (no newline), synced before it replaces the previous file.
/// @throws os_error family naming the file.
void save_checksum_file(const std::filesystem::path& directory, const std::string& digest,
                        const file_sync_fn& sync = sync_file_data);

}  // namespace axds::detail
