#pragma once
// The verified copy of a large file: copied in-kernel chunk by chunk while one thread hashes the source and another
// reads each copied chunk back from the destination and hashes it, so both hashes overlap the copy instead of
// following it. Private to src/.

#include "fs/file_digest.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>

namespace axds::detail {

/// copy_file_range refused the copy itself (another filesystem, no support): the content must move through buffers.
[[nodiscard]] bool kernel_refuses_copy(int error) noexcept;

/// Bytes per copy_file_range call of a pipelined copy (see bench/README.md for the sizes measured).
inline constexpr std::size_t pipeline_chunk_size = std::size_t{16} << 20;

/// What copy_and_hash did.
struct pipelined_copy {
    int error = 0;             ///< 0 or an errno (of the copy, or of a read for hashing)
    std::uint64_t copied = 0;  ///< bytes copied
    bool in_kernel = true;     ///< false: the kernel refused copy_file_range before any byte moved (nothing hashed)
};

/// The hashers of a pipelined copy, both started by the caller (`source` may be null: only the copy is verified;
/// `destination` may not).
struct pipeline_hashers {
    file_hasher* source = nullptr;
    file_hasher* destination = nullptr;
};

/// Copies `in` (from its offset 0) to `out` (opened for reading and writing, empty) with copy_file_range calls of
/// `chunk` bytes until the source's end. Once the first chunk is copied, two helper threads run along: one reads
/// the source from its start to its end and feeds `hashers.source` (independent of the copy), the other follows the
/// copy, reading each copied range back from `out` (1 MiB at a time, still in the page cache) into
/// `hashers.destination`, so `destination` digests what the destination file holds after the write, over the whole
/// file. The source is hashed to its end, so a source that grew meanwhile digests differently from its copy
/// (verification then fails). Without threads to be had, the hashing runs after the copy on this thread.
/// `after_chunk(copied)` (tests only) runs on this thread after each chunk is copied and before the follower may
/// hash it.
pipelined_copy copy_and_hash(int in, int out, pipeline_hashers hashers, std::size_t chunk = pipeline_chunk_size,
                             const std::function<void(std::uint64_t copied)>& after_chunk = {});

}  // namespace axds::detail
