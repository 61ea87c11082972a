#pragma once
// The per-file and combined digests of the directory checksum (spec §9.1), shared by the checksum and by the
// transfer, which hashes files while it copies them. Private to src/.

#include <array>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

/// One file's contribution to the directory digest.
struct file_digest {
    std::string relative;
    digest128 digest{};
};

/// The directory digest (32 lowercase hex characters): XXH3-128 over every file's relative path and digest, in byte
/// order of the relative paths. Sorts `files`.
[[nodiscard]] std::string combine_file_digests(std::vector<file_digest>& files);

/// Writes `digest` to `{directory}/ax_checksum.txt` (no newline). @throws os_error family naming the file.
void save_checksum_file(const std::filesystem::path& directory, const std::string& digest);

}  // namespace axds::detail
