#pragma once
// Reading one large file with several threads while its bytes are consumed in order on the calling thread (hashing
// a file is sequential; copying it into memory is not). Private to src/.

#include "sys/io.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace axds::detail {

/// Chunk of one read of read_in_order (1 MiB: small enough to still be in the core's L2 cache when it is consumed
/// right after, see bench/README.md "chunk size for hashing while reading").
inline constexpr std::size_t ordered_chunk_size = std::size_t{1} << 20;

/// Reads [offset, offset + length) of `fd` in chunks of ordered_chunk_size, `readers` threads reading at once (each
/// chunk with pread into one of a few buffers), and hands every chunk to `consume` on the calling thread, in file
/// order, each exactly once. A chunk shorter than asked ends the reading (the file shrank: the caller reads on to its
/// end itself). Returns the bytes consumed, or the first read error (`bytes` then counts what was consumed before
/// it). Without threads to be had, reads on the calling thread alone.
sys::io_result read_in_order(int fd, std::uint64_t offset, std::uint64_t length, unsigned readers,
                             const std::function<void(std::span<const std::byte>)>& consume);

}  // namespace axds::detail
